"""Board serial from a code printed on the board: real zxing-cpp codes pasted on real test boards.

The codes are made by zxing-cpp's encoder and read back by its decoder; the boards are the synthetic
demo boards with their references; the detector is the shipped INT8 model or the real difference
detector; runs go through the CLI as a user runs them.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.board_serial import CODE_UNREADABLE, SERIAL_MISMATCH, CodeReader, paste_code
from inspector.config import BoardCode, ConfigError, Recipe, parse_config
from inspector.decision import RecipeError, RecipeRules
from inspector.domain import Detection, Verdict

CORNER = (560, 8)  # top-right corner of a 640x640 board; a 3 px-module DataMatrix with quiet zone is ~48 px
REGION = (560, 8, 72, 72)


def cli(*args, cwd=None, timeout=180):
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def coded_boards(src: Path, dst: Path, names: list[str], serials: list[str | None], at=CORNER) -> Path:
    """Copy boards (with their references) and paste each serial's DataMatrix on the board image only."""
    dst.mkdir(parents=True, exist_ok=True)
    truth = json.loads((src / "truth.json").read_text())
    for name, serial in zip(names, serials, strict=True):
        img = cv2.imread(str(src / f"{name}_test.png"), cv2.IMREAD_GRAYSCALE)
        if serial is not None:
            img, _ = paste_code(img, serial, at)
        cv2.imwrite(str(dst / f"{name}_test.png"), img)
        (dst / f"{name}_temp.png").write_bytes((src / f"{name}_temp.png").read_bytes())
    (dst / "truth.json").write_text(json.dumps({n: truth[n] for n in names}))
    return dst


@pytest.fixture()
def clean_names(demo_truth) -> list[str]:
    return [n for n in sorted(demo_truth) if not demo_truth[n]]


def test_reader_finds_datamatrix_qr_and_code128_in_region_and_whole_frame(demo_boards, clean_names):
    board = cv2.imread(str(demo_boards / f"{clean_names[0]}_test.png"), cv2.IMREAD_GRAYSCALE)
    for sym, at in (("datamatrix", CORNER), ("qr", (540, 8)), ("code128", (300, 520))):
        img, box = paste_code(board, "PCB-0042", at, sym, module_px=3 if sym != "code128" else 2)
        whole = CodeReader(BoardCode(symbologies=[sym])).read(img)
        assert whole.text == "PCB-0042", sym
        assert box[0] <= whole.box[0] and whole.box[2] <= box[2] and box[1] <= whole.box[1] and whole.box[3] <= box[3]
        region = (box[0], box[1], box[2] - box[0], box[3] - box[1])
        reader = CodeReader(BoardCode(region=region, symbologies=[sym]))
        assert reader.read(img).text == "PCB-0042"
        assert reader.read(img).searched[2] - reader.read(img).searched[0] < 400  # only the crop was searched
    # a DataMatrix is not found when only QR codes are asked for, nor on the board without a code
    img, _ = paste_code(board, "PCB-0042", CORNER)
    assert CodeReader(BoardCode(symbologies=["qr"])).read(img).text is None
    assert CodeReader(BoardCode()).read(board).text is None


def test_check_mismatch_missing_code_and_defects_on_the_code():
    reader = CodeReader(BoardCode(require_code=True))
    area = (0, 0, 100, 100)
    read = reader.read(np.full((100, 100), 255, np.uint8))
    assert read.text is None
    on_code = Detection((10, 10, 30, 30), 1, 0.9)
    elsewhere = Detection((300, 300, 320, 320), 2, 0.9)
    missing = reader.check(read, [elsewhere], "PLC-1")
    assert missing.reason.startswith(CODE_UNREADABLE) and missing.serial == "PLC-1"
    assert missing.verdict(Verdict.PASS) is Verdict.REJECT
    # optional code: no reason, PLC serial kept
    optional = CodeReader(BoardCode(require_code=False)).check(read, [], "PLC-1")
    assert optional.reason is None and optional.serial == "PLC-1" and optional.verdict(Verdict.PASS) is Verdict.PASS
    # decoded code vs PLC
    from inspector.board_serial import CodeRead

    found = CodeRead("SN-7", "Data Matrix", (5.0, 5.0, 40.0, 40.0), area, 0.1)
    same = reader.check(found, [on_code, elsewhere], "SN-7")
    assert same.reason is None and same.serial == "SN-7" and same.kept == [elsewhere]
    other = reader.check(found, [], "SN-8")
    assert other.reason == f"{SERIAL_MISMATCH}: code 'SN-7', PLC 'SN-8'" and other.serial == "SN-7"
    assert reader.check(found, [], None).reason is None  # no PLC serial: nothing to compare
    kept = CodeReader(BoardCode(ignore_defects=False)).check(found, [on_code], None).kept
    assert kept == [on_code]


def test_recipe_code_section_is_validated():
    cfg = parse_config({"recipes": [{"name": "demo", "code": {"region": [1, 2, 30, 40], "symbologies": ["qr"]}}]})
    assert cfg.recipe().code.region == (1, 2, 30, 40)
    with pytest.raises(ConfigError, match="recipes.0.code.symbologies.0"):
        parse_config({"recipes": [{"name": "demo", "code": {"symbologies": ["pdf417"]}}]})
    with pytest.raises(ConfigError, match="width, height > 0"):
        parse_config({"recipes": [{"name": "demo", "code": {"region": [0, 0, 0, 10]}}]})
    with pytest.raises(ConfigError, match="require_cod"):
        parse_config({"recipes": [{"name": "demo", "code": {"require_cod": True}}]})
    # a region off the board is refused where every recipe is compiled (start, recipe switch: ERROR_CODE 60)
    with pytest.raises(RecipeError, match=r"code.region \[700, 0, 40, 40\] starts outside the 640x640 board"):
        RecipeRules(Recipe(code=BoardCode(region=(700, 0, 40, 40))), board_size=(640, 640))
    assert RecipeRules(Recipe(code=BoardCode(region=(600, 0, 40, 40))), board_size=(640, 640)).recipe.code


def _station(path: Path, code: str | None, detector: str = 'engine = "litert"\ndelegate = "cpu"\nthreads = 1') -> Path:
    text = f'[detector]\n{detector}\n[plc]\nmode = "off"\n[[recipes]]\nname = "demo"\n'
    if code:
        text += f"[recipes.code]\n{code}\n"
    path.write_text(text)
    return path


def test_inspect_json_prints_the_serial_and_ignores_the_code_as_a_defect(tmp_path, demo_boards, clean_names):
    names = clean_names[:2]
    boards = coded_boards(demo_boards, tmp_path / "b", names + [clean_names[2]], ["PCB-0001", "PCB-0002", None])
    images = [str(boards / f"{n}_test.png") for n in [*names, clean_names[2]]]
    cfg = _station(tmp_path / "s.toml", f"region = {list(REGION)}\nrequire_code = true")
    r = cli("inspect", "--config", str(cfg), "--json", *images)
    assert r.returncode == 0, r.stderr
    rows = {row["image"]: row for row in map(json.loads, r.stdout.splitlines())}
    assert rows[images[0]]["serial"] == "PCB-0001" and rows[images[1]]["serial"] == "PCB-0002"
    for img in images[:2]:  # defect-free boards: the code is no defect
        assert rows[img]["verdict"] == "PASS" and rows[img]["reason"] is None, rows[img]
        assert rows[img]["timings_ms"]["serial"] >= 0
    bare = rows[images[2]]
    assert bare["verdict"] == "REJECT" and bare["serial"] is None and bare["reason"].startswith(CODE_UNREADABLE)
    # The same coded board without a code section: the shipped model flags the code, and no serial is read.
    plain = _station(tmp_path / "p.toml", None)
    r = cli("inspect", "--config", str(plain), "--json", images[0])
    row = json.loads(r.stdout.splitlines()[0])
    assert row["serial"] is None and row["verdict"] == "REJECT" and row["detections"]


def test_headless_run_records_the_serial_from_the_image(tmp_path, demo_boards, demo_truth):
    names = sorted(demo_truth)[:4]
    serials = [f"SN-{i:05d}" for i in range(4)]
    boards = coded_boards(demo_boards, tmp_path / "b", names, serials)
    cfg = _station(tmp_path / "s.toml", "require_code = true", detector='engine = "classical"')
    r = cli(
        "run",
        "--headless",
        "--config",
        str(cfg),
        "--camera",
        f"replay:{boards}@5fps",
        "--boards",
        "4",
        "--db",
        f"sqlite:///{tmp_path}/i.db",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    with sqlite3.connect(tmp_path / "i.db") as db:
        rows = db.execute("SELECT board_serial, reason, frame_meta FROM inspections ORDER BY id").fetchall()
    assert len(rows) >= 4
    expected = dict(zip(names, serials, strict=True))
    for serial, reason, meta in rows:  # each record carries the serial printed on its own board
        assert serial == expected[json.loads(meta)["name"]], (serial, meta)
        assert reason is None or not reason.startswith(CODE_UNREADABLE), reason
    assert {row[0] for row in rows} == set(serials)


def test_board_not_registered_still_gets_the_serial_printed_on_it():
    """A board the registrar refuses (here: another board than the reference) is a REJECT for that
    reason, but its record still carries the serial read from its code (else the PLC's)."""
    from inspector.detect.classical import DifferenceDetector
    from inspector.inspection import inspect_board
    from inspector.registration import UNREGISTERED, BoardRegistrar
    from inspector.synth import make_board

    board, other = make_board(1), make_board(2)
    img, _ = paste_code(board.image, "SN-77", CORNER)
    det = DifferenceDetector()
    det.load()
    reader = CodeReader(BoardCode(region=(*CORNER, 48, 48), require_code=True))
    got = inspect_board(
        img, other.reference, RecipeRules(Recipe()), det, BoardRegistrar(), code_reader=reader, plc_serial="PLC-1"
    )
    assert got.verdict is Verdict.REJECT and got.reason.startswith(UNREGISTERED)  # the registration reason stays
    assert got.serial.serial == "SN-77"
    bare = inspect_board(
        other.image,
        board.reference,
        RecipeRules(Recipe()),
        det,
        BoardRegistrar(),
        code_reader=reader,
        plc_serial="PLC-1",
    )
    assert bare.reason.startswith(UNREGISTERED) and bare.serial.serial == "PLC-1"
    reader.close()
