"""The threshold position: where the preparation splits a camera frame between laminate and copper, calibrated on a
golden board against its design, on real DeepPCB templates drawn by both camera renderers."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.cli import main
from inspector.detect.package import InputDomain, read_meta, station_input_domain
from inspector.detect.prepare import prepare
from inspector.detect.threshold_position import ThresholdCalibrationError, fit_threshold_position
from inspector.evaluation.camera_domain import capture_pair

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures" / "deeppcb"
MODEL = REPO / "models" / "pcb-defect-det.tflite"


def _design(name: str = "92000010") -> np.ndarray:
    """A real board's copper layer as DeepPCB binarised it (copper 0, laminate 255): the design the network learnt."""
    return cv2.imread(str(FIXTURES / f"{name}_temp.jpg"), cv2.IMREAD_GRAYSCALE)


def _golden(renderer: str, mode: str = "gray", **options) -> np.ndarray:
    design = _design()
    return capture_pair(design, design, 11, mode=mode, max_shift=3, max_rot_deg=0.5, renderer=renderer, **options)[
        "golden"
    ][0]


def _spec(**update) -> InputDomain:
    """The shipped package's preparation (the station's), at the midpoint unless told otherwise."""
    spec = read_meta(MODEL).input_domain
    return spec.model_copy(update={"threshold_position": 0.5, **update})


def _copper(mask: np.ndarray) -> int:
    return int(np.count_nonzero(mask[12:-12, 12:-12] == 0))


def _edge_px(design: np.ndarray) -> int:
    d = design[12:-12, 12:-12] < 128
    return int(np.count_nonzero(d[1:] != d[:-1]) + np.count_nonzero(d[:, 1:] != d[:, :-1]))


@pytest.mark.parametrize("look", ["bright", "dark"])
def test_a_lower_position_takes_more_of_each_edge_as_copper(look):
    """The position runs from the laminate's level (0) to the copper's (1), whichever of the two is brighter: lower
    positions put every edge further out into the laminate, with copper bright and with copper dark."""
    golden = _golden("textures", copper_look=look)
    counts = [_copper(prepare(golden, _spec(camera_copper=look, threshold_position=p))) for p in (0.3, 0.5, 0.7)]
    assert counts[0] > counts[1] > counts[2], counts


def test_a_camera_whose_edges_are_clean_steps_keeps_the_midpoint():
    """The first renderer's copper edges are blurred steps: the midpoint already puts them where the design has them,
    and the calibration says so."""
    fit = fit_threshold_position([(_golden("textures"), _design())], _spec())
    assert abs(fit.offset_at_midpoint_px) < 0.1, fit
    assert 0.42 <= fit.position <= 0.58, fit
    assert fit.boards == 1 and fit.edge_px > 5000 and fit.mismatch < 0.01, fit


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_dark_etched_rims_move_the_midpoint_inward_and_the_calibrated_position_puts_the_edges_back(mode):
    """The second renderer darkens the outermost fraction of a pixel of every copper edge (etched sidewalls under a
    ring light): at the midpoint the prepared copper lies inward of the design's; at the calibrated position the
    golden board holds its design's copper area to within a tenth of a pixel per edge."""
    golden, design = _golden("optics", mode), _design()
    fit = fit_threshold_position([(golden, design)], _spec())
    assert fit.offset_at_midpoint_px < -0.2, fit
    assert fit.position < 0.4, fit
    at_mid = _copper(prepare(golden, _spec()))
    at_fit = _copper(prepare(golden, _spec(threshold_position=fit.position)))
    want = int(np.count_nonzero(design[12:-12, 12:-12] < 128))
    assert abs(at_fit - want) / _edge_px(design) < 0.1, (at_fit, want)
    assert abs(at_fit - want) < abs(at_mid - want) / 3, (at_mid, at_fit, want)


@pytest.mark.parametrize(
    ("shift", "rotate_deg", "scale"), [((4.0, -3.0), 0.0, 1.0), ((0.0, 0.0), 0.3, 1.01), ((2.0, 1.0), -0.2, 0.995)]
)
def test_a_design_rasterised_off_the_captures_pose_or_scale_measures_the_same(shift, rotate_deg, scale):
    """The design is registered to the capture (shift, rotation and one scale) before the areas are compared: a design
    a few pixels off, turned, or rasterised 0.5-1 % off the camera's scale measures the same edge offset. (Aligned
    rigidly, a design 0.5 % large read as 0.14 px more copper per edge.)"""
    golden, design = _golden("optics"), _design()
    m = cv2.getRotationMatrix2D((320.0, 320.0), rotate_deg, scale)
    m[:, 2] += shift
    moved = cv2.warpAffine(design, m, design.shape[::-1], flags=cv2.INTER_LINEAR, borderValue=255)
    moved = np.where(moved < 128, 0, 255).astype(np.uint8)  # a design is two levels
    here = fit_threshold_position([(golden, design)], _spec()).offset_at_midpoint_px
    there = fit_threshold_position([(golden, moved)], _spec()).offset_at_midpoint_px
    assert abs(here - there) < 0.03, (here, there)


def test_designs_that_are_not_the_boards_are_refused_by_name():
    """Another board's design, another revision, a design with copper in the other level, a design of another size,
    a photograph instead of a two-level design and no pairs at all are each refused with what is wrong, never
    fitted."""
    golden = _golden("textures")
    with pytest.raises(ThresholdCalibrationError, match=r"golden-1: the design could not be aligned .* not this board"):
        fit_threshold_position([(golden, _design("20085164"))], _spec(), ["golden-1"])
    edited = _design()
    edited[100:300, 100:300] = 255 - edited[100:300, 100:300]  # another revision: a tenth of the board changed
    with pytest.raises(ThresholdCalibrationError, match=r"golden-1: the design and the golden capture disagree on"):
        fit_threshold_position([(golden, edited)], _spec(), ["golden-1"])
    with pytest.raises(ThresholdCalibrationError, match=r"golden-1: the design draws copper white.*invert the design"):
        fit_threshold_position([(golden, 255 - _design())], _spec(), ["golden-1"])
    with pytest.raises(ThresholdCalibrationError, match="rasterise the copper layer at the camera's resolution"):
        fit_threshold_position([(golden, _design()[:600, :600])], _spec())
    with pytest.raises(ThresholdCalibrationError, match="not a design"):
        fit_threshold_position([(golden, golden)], _spec())
    with pytest.raises(ThresholdCalibrationError, match="no golden capture"):
        fit_threshold_position([], _spec())


def test_the_station_setting_lays_the_position_over_the_packages(tmp_path):
    """`[detector] threshold_position` is a station setting like the camera's gamma: the input domain the station runs
    its model with carries it; unset, the package's midpoint stands."""
    from inspector.detect.registry import default_detector

    base = default_detector()
    assert station_input_domain(base).threshold_position == 0.5
    told = base.model_copy(update={"threshold_position": 0.3})
    assert station_input_domain(told).threshold_position == 0.3
    # The detector the station builds prepares its frames with it (the package's own sidecar keeps 0.5).
    from inspector.config import DetectorSection
    from inspector.detect.factory import create_detector

    det = create_detector(DetectorSection(model=MODEL, delegate="cpu", threads=1, threshold_position=0.3))
    det.load()
    try:
        assert det.meta.input_domain.threshold_position == 0.3
    finally:
        det.close()
    assert read_meta(MODEL).input_domain.threshold_position == 0.5
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="threshold_position"):  # a split at a material's own level: refused
        DetectorSection(model=MODEL, threshold_position=0.95)


def test_calibrate_threshold_prints_the_setting_and_stores_it(tmp_path, monkeypatch, capsys):
    """`pcb-inspector calibrate threshold`: golden captures and their designs in, the position and the line for
    station.toml out; stored as the station's active calibration of its kind; a mismatched count of images and
    designs is refused."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PCB_INSPECTOR_OPERATOR", "eng.lee")
    cv2.imwrite(str(tmp_path / "golden.png"), _golden("optics"))
    cv2.imwrite(str(tmp_path / "design.png"), _design())
    db = ["--db", f"sqlite:///{tmp_path}/records.db"]
    args = ["calibrate", "threshold", "--image", "golden.png", "--design", "design.png", "--no-undistort"]
    assert main([*args, *db]) == 0
    out = capsys.readouterr().out
    position = float(out.split("[detector] threshold_position = ")[1].split()[0])
    assert position < 0.4 and "inward of the design's" in out, out
    assert main(["calibrate", "history", "--json", *db]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["kind"], r["created_by"], r["active"]) for r in rows] == [("threshold", "eng.lee", True)], rows
    assert main([*args, "--image", "golden.png", "--no-save", *db]) == 2
    assert "2 --image but 1 --design" in capsys.readouterr().err


def test_the_station_measures_its_camera_not_its_last_calibration():
    """`calibration.threshold` (the CLI's and the wizard's) takes the input domain the station runs: a station already
    set to another position measures the same camera the same way (a second calibration does not measure the first);
    a model that takes frames as they are has nothing to calibrate, and says so."""
    from calibration.errors import CalibrationError
    from calibration.threshold import calibrate_threshold

    pairs = [(_golden("optics"), _design())]
    fresh = calibrate_threshold(pairs, _spec(), ["golden"])
    set_up = calibrate_threshold(pairs, _spec(threshold_position=0.3), ["golden"])
    assert set_up == fresh and fresh.position < 0.4
    with pytest.raises(CalibrationError, match="takes frames as they are"):
        calibrate_threshold(pairs, None, ["golden"])
