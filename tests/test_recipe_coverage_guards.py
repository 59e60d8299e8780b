"""Settings that would make the station inspect nothing (or much less than meant), and boards it cannot place.

Each was a silent PASS: a board-code region as large as the board ignored every defect on it; an ROI drawn on the
recipe's golden image was laid, unchecked, on a board that carried a golden image of another size; a camera
resolution with its decimal point slipped shrank every board to a tenth before the model saw it. A setting is
refused by `config check` and at station start / recipe switch naming its key; a board that cannot be judged is a
REJECT with the reason; `inspect` judges every image on its command line.

Real parts only: DeepPCB boards (group 00041, defects annotated), the shipped model, the real CLI.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.config import load_config
from inspector.decision import RecipeRules
from inspector.health import Health
from inspector.startcheck import check_config, checked_rules, start_recipe

REPO = Path(__file__).resolve().parent.parent
MODEL = REPO / "models" / "pcb-defect-det.tflite"
BOARDS = REPO.parent / "shared" / "datasets" / "deeppcb" / "group00041" / "00041"
BOARD = BOARDS / "00041000_test.jpg"
GOLDEN = BOARDS / "00041000_temp.jpg"
#: A copper defect annotated on 00041000 (00041_not/00041000.txt: 151 149 182 175, class 5), centre (166, 162).
DEFECT_CENTRE = (166, 162)

pytestmark = pytest.mark.skipif(
    not (MODEL.is_file() and BOARD.is_file()),
    reason="needs the shipped model and the DeepPCB dataset under ../shared/datasets/deeppcb",
)


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True, timeout=timeout, cwd=REPO
    )


def station(tmp: Path, recipe: str = "", detector: str = "", camera: str = "") -> Path:
    """A station file with the DeepPCB golden image as the recipe's reference."""
    golden = tmp / "golden.jpg"
    if not golden.exists():
        golden.write_bytes(GOLDEN.read_bytes())
    path = tmp / "station.toml"
    path.write_text(
        camera
        + '[detector]\ntype = "litert"\ndelegate = "cpu"\nthreads = 1\n'
        + detector
        + f'[plc]\nmode = "off"\n[storage]\ndatabase_url = "sqlite:///{tmp}/x.db"\n'
        + '[[recipes]]\nname = "demo"\nreference = "golden.jpg"\n'
        + recipe
    )
    return path


def recipe_problems(path: Path) -> list[str]:
    """`config check`'s problems for the file, without loading the model (the recipe checks only)."""
    return check_config(load_config(path), model=False).problems


def started_reason(path: Path) -> str | None:
    """The reason the station would start NOT READY with (None: ready), through the station's own compile path."""
    cfg = load_config(path)
    health = Health()
    rules = start_recipe(cfg, cfg.recipe(), health, lambda r: checked_rules(cfg, r, RecipeRules(r), True))
    return getattr(rules, "reason", None)


# ------------------------------------------------------------------ board-code region
@pytest.mark.parametrize(
    "code, key",
    [
        ("region = [0, 0, 640, 640]\nmargin_px = 16\n", "recipes.demo.code.region"),
        ("region = [560, 8, 72, 72]\nmargin_px = 600\n", "recipes.demo.code.margin_px"),
    ],
)
def test_a_code_region_covering_much_of_the_board_is_refused_by_name(tmp_path, code, key):
    path = station(tmp_path, "[recipes.code]\n" + code)
    r = cli("config", "check", str(path))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert key in out and "of the 640x640 board" in out, out
    assert "Traceback" not in out
    reason = started_reason(path)
    assert reason is not None and key in reason, reason


def test_a_code_region_counts_against_the_recipes_inspected_area(tmp_path):
    """A narrow ROI (10 % of the board, allowed) whose code region takes nearly all of it: the rest is below
    min_roi_fraction, so the recipe would inspect almost nothing."""
    roi = "roi = [[0, 0], [64, 0], [64, 640], [0, 640]]\n"
    assert recipe_problems(station(tmp_path, roi)) == []
    path = station(tmp_path, roi + "[recipes.code]\nregion = [0, 0, 48, 600]\nmargin_px = 8\n")
    problems = recipe_problems(path)
    assert len(problems) == 1 and "recipes.demo.code.region" in problems[0], problems
    assert "min_roi_fraction" in problems[0], problems
    # A code region of a sensible size beside a whole-board ROI is fine.
    assert recipe_problems(station(tmp_path, "[recipes.code]\nregion = [560, 8, 72, 72]\n")) == []


def test_a_defect_in_the_code_region_counts_when_no_code_was_read(tmp_path):
    """The board carries no code: nothing was read there, so a defect in the code region is a defect."""
    x, y = DEFECT_CENTRE
    path = station(tmp_path, f"[recipes.code]\nregion = [{x - 36}, {y - 36}, 72, 72]\n")
    assert recipe_problems(path) == []
    r = cli("inspect", "--config", str(path), "--json", str(BOARD))
    assert r.returncode == 0, r.stderr
    row = json.loads(r.stdout.splitlines()[0])
    assert row["verdict"] == "REJECT" and row["serial"] is None, row
    centres = [((d["box"][0] + d["box"][2]) / 2, (d["box"][1] + d["box"][3]) / 2) for d in row["detections"]]
    assert any(abs(cx - x) < 12 and abs(cy - y) < 12 for cx, cy in centres), row["detections"]


# ------------------------------------------------------------------ ROI against a reference of another size
def test_an_roi_on_a_board_with_a_reference_of_another_size_is_a_reject(tmp_path):
    """ROI = left half of the recipe's 640x640 golden image; the board and the golden image it carries are 1280x1280
    (a replay folder's <id>_temp, or --reference): the ROI's pixels are not that board's, so it cannot be judged."""
    big = tmp_path / "big"
    big.mkdir()
    for src, dst in ((BOARD, "b_test.png"), (GOLDEN, "b_temp.png")):
        img = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
        cv2.imwrite(str(big / dst), cv2.resize(img, (1280, 1280), interpolation=cv2.INTER_CUBIC))
    path = station(tmp_path, "roi = [[0, 0], [320, 0], [320, 640], [0, 640]]\n")
    r = cli("inspect", "--config", str(path), "--json", str(BOARD), str(big / "b_test.png"))
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert rows[0]["verdict"] == "REJECT" and rows[0]["detections"], rows[0]  # the same board at the ROI's size
    assert all((d["box"][0] + d["box"][2]) / 2 <= 320 for d in rows[0]["detections"])
    assert rows[1]["verdict"] == "REJECT", rows[1]
    reason = rows[1]["reason"] or ""
    assert "ROI" in reason and "640x640" in reason and "1280x1280" in reason, reason
    # The same board and reference without an ROI are judged as they are.
    plain = station(tmp_path)
    r = cli("inspect", "--config", str(plain), "--json", str(big / "b_test.png"))
    row = json.loads(r.stdout.splitlines()[0])
    assert row["reason"] is None and row["detections"], row


# ------------------------------------------------------------------ camera resolution
def test_a_camera_resolution_that_shrinks_the_board_below_the_model_is_refused(tmp_path):
    path = station(tmp_path, detector="camera_px_per_mm = 480.0\n")
    r = cli("config", "check", str(path))
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    assert "detector.camera_px_per_mm" in out and "64x64" in out, out
    assert "Traceback" not in out
    reason = started_reason(path)
    assert reason is not None and "detector.camera_px_per_mm" in reason, reason
    # `inspect` refuses it too, instead of a PASS on a board shrunk to a tenth.
    r = cli("inspect", "--config", str(path), str(BOARD))
    assert r.returncode != 0 and "PASS" not in r.stdout, r.stdout
    assert "detector.camera_px_per_mm" in r.stderr and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("px_per_mm", [24.0, 36.0, 48.0, 64.0, 96.0])
def test_plausible_camera_resolutions_still_run(tmp_path, px_per_mm):
    path = station(tmp_path, detector=f"camera_px_per_mm = {px_per_mm}\n")
    assert recipe_problems(path) == []
    assert started_reason(path) is None


def test_a_plausible_camera_resolution_still_finds_the_defects(tmp_path):
    path = station(tmp_path, detector="camera_px_per_mm = 40.0\n")
    r = cli("config", "check", str(path))
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("inspect", "--config", str(path), str(BOARD))
    assert r.returncode == 0 and "REJECT" in r.stdout, r.stdout + r.stderr


# ------------------------------------------------------------------ inspect goes on after a board it cannot place
def test_inspect_with_a_code_region_judges_an_unplaceable_board_and_goes_on(tmp_path):
    """A half board (320x640) ends before the code region (x 560): no code can be read in that frame, and the board
    cannot be placed on its golden image (half of it out of view); it is a REJECT with that reason, and the next
    image is judged."""
    crop = tmp_path / "crop.png"
    cv2.imwrite(str(crop), cv2.imread(str(BOARD), cv2.IMREAD_GRAYSCALE)[:, :320])
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), cv2.imread(str(GOLDEN), cv2.IMREAD_GRAYSCALE))
    path = station(tmp_path, "[recipes.code]\nregion = [560, 8, 72, 72]\nrequire_code = true\n")
    r = cli("inspect", "--config", str(path), "--json", str(crop), str(good))
    assert "Traceback" not in r.stderr, r.stderr
    assert r.returncode == 0, r.stderr
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    assert [row["image"] for row in rows] == [str(crop), str(good)]
    assert rows[0]["verdict"] == "REJECT", rows[0]
    assert rows[0]["reason"].startswith(("board not registered", "board not fully in view")), rows[0]
    assert rows[1]["verdict"] == "REJECT" and rows[1]["reason"].startswith("board code unreadable"), rows[1]
    assert rows[1]["detections"] == []


def test_code_search_area_is_clipped_to_a_small_frame():
    from inspector.board_serial import CodeReader
    from inspector.config import BoardCode

    reader = CodeReader(BoardCode(region=(560, 8, 72, 72)))
    try:
        read = reader.read(np.full((640, 320), 255, np.uint8))
        assert read.text is None
        x1, y1, x2, y2 = read.searched
        assert x1 <= x2 <= 320 and y1 <= y2 <= 640
    finally:
        reader.close()
