"""ROI settings that would inspect nothing: refused by `config check`, at station start and at a switch.

Real parts: synthetic boards with their golden references, real mask PNGs, the real CLI, the
station as `pcb-inspector run` builds it, and the classical golden-board detector (a real detector
that finds every synthetic defect; fast on this machine).
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.config import Recipe, load_config
from inspector.decision import RecipeError, RecipeRules
from inspector.domain import Detection, TriggerRequest, Verdict
from inspector.health import ERROR_CODES
from inspector.roi import check_roi
from inspector.station import build_station


def write_station(tmp: Path, boards: Path, recipe: str, *, trigger: str = "free_run") -> Path:
    path = tmp / "station.toml"
    path.write_text(
        "[camera]\n"
        'type = "replay"\n'
        f'path = "{boards}"\n'
        f'trigger = "{trigger}"\n'
        "fps = 50.0\n"
        "[detector]\n"
        'type = "classical"\n'
        "[plc]\n"
        'mode = "off"\n'
        "[[recipes]]\n"
        'name = "demo"\n' + recipe
    )
    return path


def mask_png(tmp: Path, name: str, shape: tuple[int, int], white: tuple[slice, slice] | None = None) -> Path:
    img = np.zeros(shape, np.uint8)
    if white is not None:
        img[white] = 255
    path = tmp / name
    cv2.imwrite(str(path), img)
    return path


def check(capsys, path: Path) -> tuple[int, str]:
    rc = main(["config", "check", str(path)])
    out = capsys.readouterr()
    return rc, out.out + out.err


@pytest.mark.parametrize(
    "recipe, expected",
    [
        ("roi = [[10, 10], [600, 600]]\n", "recipes.0.roi: 2 point(s); an ROI polygon needs at least 3 corners"),
        ("roi = [[10, 10], [300, 300], [600, 600]]\n", "recipes.0.roi: the corners enclose no area"),
        (
            "roi = [[10, 10], [700, 10], [700, 600], [10, 600]]\n",
            "recipes.demo.roi: corner (700, 10) lies outside the 640x640 board",
        ),
        ("roi = [[900, 900], [1200, 900], [1200, 1200]]\n", "recipes.demo.roi: corner (900, 900) lies outside"),
        ("roi = [[0, 0], [40, 0], [40, 40], [0, 40]]\n", "recipes.demo.roi: inspects 0.4% of the 640x640 board"),
        ('roi_mask = "black.png"\n', "recipes.demo.roi_mask: all black (640x640): it inspects nothing"),
        (
            'roi_mask = "small.png"\n',
            "recipes.demo.roi_mask: is 320x320 but the board is 640x640; give a mask of the board's size, or set "
            "roi_mask_scale = true to scale it",
        ),
        ('roi_mask = "tall.png"\nroi_mask_scale = true\n', "recipes.demo.roi_mask: is 320x640, another shape"),
        ('roi_mask = "speck.png"\n', "recipes.demo.roi_mask: inspects 0.0% of the 640x640 board"),
        ('roi_mask = "missing.png"\n', "recipes.demo.roi_mask: ROI mask"),
    ],
)
def test_config_check_names_the_bad_roi(tmp_path, demo_boards, capsys, recipe, expected):
    mask_png(tmp_path, "black.png", (640, 640))
    mask_png(tmp_path, "small.png", (320, 320), (slice(None), slice(None)))
    mask_png(tmp_path, "tall.png", (640, 320), (slice(None), slice(None)))
    mask_png(tmp_path, "speck.png", (640, 640), (slice(0, 3), slice(0, 3)))
    rc, out = check(capsys, write_station(tmp_path, demo_boards, recipe))
    assert rc == 1, out
    assert expected in out, out
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "recipe, expected",
    [
        (
            'thresholds = {open = 1.0, short = 1.0, mousebite = 1.0, spur = 1.0, copper = 1.0, "pin-hole" = 1.0}\n',
            "recipes.0.thresholds: every class's threshold is 1.0, which no score reaches: every board would PASS",
        ),
        ("min_defect_px = 640\n", "min_defect_px ignores every defect shorter than 640 px, as long as the 640x640"),
        ("max_defects_pass = 100\n", "recipes.0.max_defects_pass: 100 would pass every board of one tile"),
    ],
)
def test_a_recipe_that_would_pass_every_board_is_refused_by_name(tmp_path, demo_boards, capsys, recipe, expected):
    """Not an ROI, but the same failure: a recipe under which no board can be rejected inspects nothing."""
    rc, out = check(capsys, write_station(tmp_path, demo_boards, recipe))
    assert rc == 1 and expected in out and "Traceback" not in out, out


def test_the_limits_themselves_still_inspect(tmp_path, demo_boards, capsys):
    """One class on, defects up to the board's size counted, 99 tolerated: each still rejects some board."""
    recipe = (
        'thresholds = {open = 1.0, short = 1.0, mousebite = 1.0, spur = 1.0, copper = 1.0, "pin-hole" = 0.5}\n'
        "min_defect_px = 639\nmax_defects_pass = 99\n"
    )
    rc, out = check(capsys, write_station(tmp_path, demo_boards, recipe))
    assert rc == 0, out


def test_good_rois_pass_and_a_small_one_is_reported(tmp_path, demo_boards, capsys):
    mask_png(tmp_path, "half.png", (320, 320), (slice(None), slice(0, 160)))
    rc, out = check(capsys, write_station(tmp_path, demo_boards, 'roi_mask = "half.png"\nroi_mask_scale = true\n'))
    assert rc == 0, out
    assert "inspects only 50%" not in out  # exactly half: not "most of the board" excluded
    path = write_station(tmp_path, demo_boards, "roi = [[0, 0], [300, 0], [300, 640], [0, 640]]\n")
    rc, out = check(capsys, path)
    assert rc == 0 and "warning: recipes.demo: the ROI inspects only 47% of the board" in out, out
    assert main(["config", "show", "--config", str(path)]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("# warning: recipes.demo: the ROI inspects only 47% of the board"), shown[:300]
    # A lower floor, said in the recipe, lets a deliberately small ROI through.
    rc, out = check(
        capsys,
        write_station(tmp_path, demo_boards, "roi = [[0, 0], [40, 0], [40, 40], [0, 40]]\nmin_roi_fraction = 0.001\n"),
    )
    assert rc == 0 and "inspects only 0%" in out, out


def test_scaled_mask_follows_the_board_and_is_refused_without_permission(tmp_path, demo_boards):
    """A 320x320 mask whose left half is white, on 640x640 boards: scaled, the left 320 px are inspected."""
    mask = mask_png(tmp_path, "half.png", (320, 320), (slice(None), slice(0, 160)))
    reference = demo_boards / "board0000_temp.png"
    with pytest.raises(RecipeError, match="roi_mask: is 320x320 but the board is 640x640"):
        RecipeRules(Recipe(reference=reference, roi_mask=mask))
    rules = RecipeRules(Recipe(reference=reference, roi_mask=mask, roi_mask_scale=True))
    assert rules.mask.shape == (640, 640) and rules.roi.coverage == pytest.approx(0.5)
    inside = Detection((180.0, 300.0, 220.0, 340.0), 1, 0.9)  # x = 200: mask pixel 100 (white) once scaled
    outside = Detection((420.0, 300.0, 460.0, 340.0), 1, 0.9)
    d = rules.decide([inside, outside], {1: 0.5})
    assert d.kept == [inside] and d.verdict is Verdict.REJECT


def test_roi_against_the_frame_when_the_recipe_has_no_reference():
    rep = check_roi([(0, 0), (1000, 0), (1000, 700)], None, (1280, 720))
    assert rep.ok and 0.3 < rep.coverage < 0.45 and rep.excludes_most
    rep = check_roi([(0, 0), (1000, 0), (1000, 900)], None, (1280, 720))
    assert rep.messages() == ["roi: corner (1000, 900) lies outside the 1280x720 board (1 corner(s) outside)"]


def defective(truth: dict) -> list[str]:
    return [name for name, boxes in sorted(truth.items()) if boxes]


def test_station_with_an_all_black_mask_is_not_ready_and_rejects_every_board(tmp_path, demo_boards, demo_truth):
    """Before: READY, and every defective board PASSed (every defect 'outside the ROI')."""
    mask_png(tmp_path, "black.png", (640, 640))
    boards = tmp_path / "boards"
    boards.mkdir()
    names = defective(demo_truth)[:4]
    assert len(names) == 4
    for n in names:
        for suffix in ("_test.png", "_temp.png"):
            (boards / f"{n}{suffix}").write_bytes((demo_boards / f"{n}{suffix}").read_bytes())
    (boards / "truth.json").write_text(json.dumps({n: demo_truth[n] for n in names}))
    cfg = load_config(write_station(tmp_path, boards, 'roi_mask = "black.png"\n', trigger="software"))
    results = []

    class Sink:
        name = "test"

        def submit(self, r):
            results.append(r)

    station = build_station(cfg, sinks=[Sink()], with_storage=False, with_plc=False)
    state = station.health.get("recipe")
    assert state is not None and not state.ok
    assert "roi_mask: all black" in state.reason, state.reason
    assert "recipe: cannot run" in station.health.summary() and not station.health.ready
    assert ERROR_CODES["recipe"] == 60 and station.health.error_code() == 60
    station.start()
    try:
        for i in range(len(names)):
            t = station.pipeline.trigger(TriggerRequest(part_seq=i))
            assert t.done.wait(30)
    finally:
        station.stop()
    assert len(results) == len(names)
    assert all(r.verdict is Verdict.REJECT for r in results), [(r.verdict, r.reason) for r in results]
    assert all("roi_mask: all black" in (r.reason or "") for r in results), [r.reason for r in results]
