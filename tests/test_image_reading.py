"""Image files are read one way, strictly, wherever the station reads them.

A truncated JPEG, a PNG whose header claims a 100000x100000 image or an empty file is refused with one error
naming the file: as a recipe's golden reference (`config check`, the station), as a replayed frame or its
reference (`run`), as a teaching board (`reference teach`), as a board or reference of `inspect` and of
`evaluate`. And `evaluate` reads a board as `inspect` and `run` do (as stored: colour by the model's rule,
16-bit by its significant bits, no EXIF rotation), so it gives the same verdict for the same board.

Real files in tmp_path, real DeepPCB boards and the shipped model where a verdict is compared; the CLI as a user
runs it (subprocess) where the point is an error line instead of a traceback.
"""

from __future__ import annotations

import json
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.capture.base import CameraError
from inspector.capture.replay import ReplayCamera, ReplayCameraSource
from inspector.cli import main
from inspector.config import Recipe
from inspector.decision import RecipeError, RecipeRules

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "pcb-defect-det.tflite"
DEEPPCB = REPO.parent / "shared" / "datasets" / "deeppcb"
PAIR = DEEPPCB / "group00041" / "00041" / "00041000"
FIXTURES = REPO / "tests" / "fixtures" / "deeppcb"

needs_model_and_deeppcb = pytest.mark.skipif(
    not MODEL.is_file() or not Path(f"{PAIR}_temp.jpg").is_file(),
    reason="needs the shipped model and the DeepPCB dataset under ../shared/datasets/deeppcb",
)


def cli(*args: str, cwd: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


def _board(seed: int = 0) -> np.ndarray:
    """A real DeepPCB template (gray, 640x640), shifted a few pixels per seed."""
    temp = cv2.imread(str(FIXTURES / "92000010_temp.jpg"), cv2.IMREAD_GRAYSCALE)
    return np.roll(temp, (seed, 2 * seed), axis=(0, 1))


def truncated_jpeg(path: Path, image: np.ndarray, keep: float = 0.6) -> Path:
    """A real JPEG of `image` cut after `keep` of its bytes (a copy interrupted, a full disk)."""
    ok, enc = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])
    assert ok
    data = enc.tobytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def forged_png(path: Path, width: int = 100_000, height: int = 100_000) -> Path:
    """A well-formed PNG whose header claims `width`x`height` but which holds a few rows (a damaged header)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(64) for _ in range(4))
    sig = b"\x89PNG\r\n\x1a\n"
    path.write_bytes(sig + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return path


def test_the_reader_refuses_partial_and_forged_files_and_keeps_whole_ones_as_stored(tmp_path):
    from inspector.image_file import ImageFileError, read_image_file

    board = _board()
    whole = tmp_path / "whole.jpg"
    cv2.imwrite(str(whole), board)
    assert read_image_file(whole).shape == board.shape
    deep = tmp_path / "deep.png"
    cv2.imwrite(str(deep), board.astype(np.uint16) << 4)
    assert read_image_file(deep).dtype == np.uint16  # as stored: 16-bit stays 16-bit
    with pytest.raises(ImageFileError, match="not a readable image"):
        read_image_file(truncated_jpeg(tmp_path / "cut.jpg", board))
    png = tmp_path / "cut.png"
    cv2.imwrite(str(png), board)
    png.write_bytes(png.read_bytes()[:-12])  # the IEND chunk lost
    with pytest.raises(ImageFileError, match="not a readable image"):
        read_image_file(png)
    with pytest.raises(ImageFileError, match="100000x100000"):
        read_image_file(forged_png(tmp_path / "huge.png"))
    (tmp_path / "empty.jpg").write_bytes(b"")
    with pytest.raises(ImageFileError, match="empty"):
        read_image_file(tmp_path / "empty.jpg")


def test_a_truncated_golden_image_is_refused_by_the_recipe_and_config_check(tmp_path):
    golden = truncated_jpeg(tmp_path / "golden_cut.jpg", _board())
    with pytest.raises(RecipeError, match=r"reference image .*golden_cut\.jpg.*not a readable image"):
        RecipeRules(Recipe(reference=golden))
    station = tmp_path / "station.toml"
    station.write_text(
        '[detector]\ntype = "classical"\n[plc]\nmode = "off"\n'
        '[[recipes]]\nname = "demo"\nreference = "golden_cut.jpg"\n'
    )
    r = cli("config", "check", str(station))
    assert r.returncode != 0, r.stdout + r.stderr
    assert "golden_cut.jpg" in r.stderr and "OK" not in r.stdout
    assert "Traceback" not in r.stderr


def test_a_forged_header_is_an_error_line_in_inspect_and_config_check(tmp_path):
    board = tmp_path / "board_test.png"
    cv2.imwrite(str(board), _board())
    huge = forged_png(tmp_path / "huge.png")
    station = tmp_path / "station.toml"
    station.write_text(
        '[detector]\ntype = "classical"\n[plc]\nmode = "off"\n[[recipes]]\nname = "demo"\nreference = "huge.png"\n'
    )
    r = cli("config", "check", str(station))
    assert r.returncode != 0 and "huge.png" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr

    plain = tmp_path / "plain.toml"
    plain.write_text('[detector]\ntype = "classical"\n[plc]\nmode = "off"\n')
    r = cli("inspect", "--config", str(plain), "--reference", str(board), str(huge), str(board))
    assert r.returncode == 1, r.stderr
    assert f"error: {huge}: not a readable image" in r.stderr and "100000x100000" in r.stderr
    assert f"{board}: PASS" in r.stdout  # the good board is still inspected
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("bad", ["missing", "truncated", "forged"])
def test_a_bad_reference_for_inspect_is_one_error_line(tmp_path, bad):
    board = tmp_path / "board_test.png"
    cv2.imwrite(str(board), _board())
    ref = {
        "missing": lambda: tmp_path / "nosuch_golden.png",
        "truncated": lambda: truncated_jpeg(tmp_path / "golden_cut.jpg", _board()),
        "forged": lambda: forged_png(tmp_path / "huge.png"),
    }[bad]()
    plain = tmp_path / "plain.toml"
    plain.write_text('[detector]\ntype = "classical"\n[plc]\nmode = "off"\n')
    r = cli("inspect", "--config", str(plain), "--reference", str(ref), str(board))
    assert r.returncode != 0
    assert "Traceback" not in r.stderr, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and ref.name in errors[0], r.stderr
    assert "PASS" not in r.stdout and "REJECT" not in r.stdout


def test_a_truncated_golden_image_beside_a_board_is_named_by_inspect(tmp_path):
    cv2.imwrite(str(tmp_path / "a_test.png"), _board())
    truncated_jpeg(tmp_path / "a_temp.jpg", _board())
    plain = tmp_path / "plain.toml"
    plain.write_text('[detector]\ntype = "classical"\n[plc]\nmode = "off"\n')
    r = cli("inspect", "--config", str(plain), str(tmp_path / "a_test.png"))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "a_temp.jpg: not a readable image" in r.stderr, r.stderr
    assert "PASS" not in r.stdout and "REJECT" not in r.stdout


def test_reference_teach_refuses_a_truncated_board(tmp_path, capsys):
    good = [tmp_path / f"good{i}.png" for i in range(2)]
    for i, p in enumerate(good):
        cv2.imwrite(str(p), _board(i))
    cut = truncated_jpeg(tmp_path / "cut.jpg", _board(2))
    out = tmp_path / "golden.png"
    assert main(["reference", "teach", "--out", str(out), *map(str, good), str(cut)]) == 2
    err = capsys.readouterr().err
    assert "cut.jpg" in err and "not a readable image" in err, err
    assert not out.exists()


def test_the_replay_camera_refuses_truncated_frames_and_references_and_goes_on(tmp_path):
    board = _board()
    truncated_jpeg(tmp_path / "a_test.jpg", board)  # the frame is cut
    cv2.imwrite(str(tmp_path / "a_temp.png"), board)
    cv2.imwrite(str(tmp_path / "b_test.png"), board)
    truncated_jpeg(tmp_path / "b_temp.jpg", board)  # its golden image is cut
    forged_png(tmp_path / "c_test.png")  # a damaged header
    cv2.imwrite(str(tmp_path / "d_test.png"), board)
    cv2.imwrite(str(tmp_path / "d_temp.png"), board)
    cam = ReplayCameraSource(ReplayCamera(path=tmp_path, fps=None, loop=False))
    cam.open()
    try:
        for name in ("a_test.jpg", "b_temp.jpg", "c_test.png"):
            with pytest.raises(CameraError, match=rf"{name}.*not a readable image"):
                cam.grab(1.0)
        grab = cam.grab(1.0)  # the camera goes on with the next board
        assert grab.meta["name"] == "d" and np.array_equal(grab.image, board)
        assert np.array_equal(grab.meta["reference"], board)
    finally:
        cam.close()


def test_evaluate_stops_on_an_empty_board_with_one_error_line(tmp_path):
    folder = tmp_path / "group00041" / "00041"
    notes = tmp_path / "group00041" / "00041_not"
    folder.mkdir(parents=True)
    notes.mkdir()
    (folder / "x_test.jpg").write_bytes(b"")
    cv2.imwrite(str(folder / "x_temp.jpg"), _board())
    (notes / "x.txt").write_text("")
    (tmp_path / "trainval.txt").write_text("group00041/00041/x.jpg group00041/00041_not/x.txt\n")
    r = cli("evaluate", "--root", str(tmp_path), "--out", str(tmp_path / "out"))
    assert r.returncode == 2, r.stderr
    assert "Traceback" not in r.stderr
    assert "x_test.jpg" in r.stderr and "empty" in r.stderr


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 Exif segment whose Orientation tag is `orientation` (6: rotate 90 deg to view)."""
    assert jpeg[:2] == b"\xff\xd8"
    entry = struct.pack(">HHIHH", 0x0112, 3, 1, orientation, 0)
    tiff = b"MM\x00\x2a" + struct.pack(">I", 8) + struct.pack(">H", 1) + entry + struct.pack(">I", 0)
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


@needs_model_and_deeppcb
def test_evaluate_reads_boards_as_inspect_does(tmp_path, capsys):
    """A known-good DeepPCB board as a colour camera, a 10-bit camera in a 16-bit PNG and a phone's JPEG with EXIF
    orientation 6 store it: `inspect` and `evaluate` both PASS it (and the golden board itself)."""
    temp = cv2.imread(f"{PAIR}_temp.jpg", cv2.IMREAD_GRAYSCALE)
    colour = np.zeros((*temp.shape, 3), np.uint8)
    colour[..., 2], colour[..., 1], colour[..., 0] = temp, 255 - temp, 128  # the red plane carries the board
    root = tmp_path / "ds"
    folder, notes = root / "group00041" / "00041", root / "group00041" / "00041_not"
    folder.mkdir(parents=True)
    notes.mkdir()
    # DeepPCB's list names `<id>_test.jpg`/`<id>_temp.jpg`; the decoder goes by the bytes, not the name.
    ok, png = cv2.imencode(".png", colour)
    (folder / "cgood_test.jpg").write_bytes(png.tobytes())
    cv2.imwrite(str(folder / "cgood_temp.jpg"), temp)
    for name in ("b10_test.jpg", "b10_temp.jpg"):
        ok, png = cv2.imencode(".png", temp.astype(np.uint16) << 2)
        (folder / name).write_bytes(png.tobytes())
    raw = Path(f"{PAIR}_temp.jpg").read_bytes()
    (folder / "exif_test.jpg").write_bytes(_with_exif_orientation(raw, 6))
    (folder / "exif_temp.jpg").write_bytes(raw)
    ids = ["cgood", "b10", "exif"]
    for i in ids:
        (notes / f"{i}.txt").write_text("")
    (root / "trainval.txt").write_text("".join(f"group00041/00041/{i}.jpg group00041/00041_not/{i}.txt\n" for i in ids))

    station = tmp_path / "station.toml"
    station.write_text(f'[detector]\nmodel = "{MODEL}"\ndelegate = "cpu"\nthreads = 2\n[plc]\nmode = "off"\n')
    boards = [folder / f"{i}_test.jpg" for i in ids]
    assert main(["inspect", "--config", str(station), "--json", *map(str, boards)]) == 0
    by_inspect = {
        Path(r["image"]).stem.removesuffix("_test"): r
        for r in map(json.loads, (s for s in capsys.readouterr().out.splitlines() if s.startswith("{")))
    }
    assert {i: r["verdict"] for i, r in by_inspect.items()} == dict.fromkeys(ids, "PASS")

    out = tmp_path / "eval"
    assert main(["evaluate", "--root", str(root), "--out", str(out), "--model", str(MODEL)]) == 0
    capsys.readouterr()
    by_evaluate = {v["id"]: v for v in map(json.loads, (out / "verdicts.jsonl").read_text().splitlines())}
    assert {i: v["verdict"] for i, v in by_evaluate.items()} == dict.fromkeys(ids, "PASS"), by_evaluate
    assert (out / "known_good_rejects.jsonl").read_text() == ""  # the golden boards themselves pass too


def test_training_and_quantisation_refuse_a_truncated_board_instead_of_learning_its_gray_fill(tmp_path):
    """`read_gray` (training, calibration of the INT8 export) read with `cv2.imread`, which returns a truncated JPEG's
    missing part as gray: a network would be trained or calibrated on pixels nobody captured."""
    from inspector.datasets.deeppcb import DatasetError, read_gray
    from inspector.training.export import board_pairs

    whole = _board()
    cut = truncated_jpeg(tmp_path / "b_test.jpg", whole)
    assert cv2.imread(str(cut), cv2.IMREAD_GRAYSCALE) is not None  # what the old read took as a board
    with pytest.raises(DatasetError, match=r"b_test\.jpg: not a readable image"):
        read_gray(cut)
    assert np.array_equal(read_gray(FIXTURES / "92000010_temp.jpg"), whole)

    # A station's synthetic export (truth.json) read for the INT8 calibration: the damaged board is named.
    folder = tmp_path / "boards"
    folder.mkdir()
    (folder / "truth.json").write_text(json.dumps({"b0": [], "b1": []}))
    for n in ("b0", "b1"):
        cv2.imwrite(str(folder / f"{n}_temp.png"), whole)
        cv2.imwrite(str(folder / f"{n}_test.png"), whole)
    (folder / "b0_test.png").write_bytes((folder / "b0_test.png").read_bytes()[:-30])  # IEND cut off
    with pytest.raises(DatasetError, match=r"b0_test\.png: not a readable image"):
        board_pairs(folder, 2, split="train")
    assert len(board_pairs(folder, 2, split="val")) == 1
