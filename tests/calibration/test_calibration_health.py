"""Focus, light and colour drift against the baseline measured on the golden board."""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.health import COMPONENT, OpticsLimits, OpticsMonitor, OpticsSample, compare, measure_optics
from inspector.domain import InspectionResult, Verdict
from inspector.health import Health
from inspector.synth import make_board


@pytest.fixture(scope="module")
def frames():
    """Golden board as the camera sees it (a little blur, grey laminate), and production boards."""

    def seen(img):
        return cv2.GaussianBlur(img, (0, 0), 0.8).astype(np.float32) * 0.8 + 20

    ref = make_board(5).reference
    boards = [seen(make_board(5, defect_rate=1.0).image)] + [seen(ref) for _ in range(2)]
    return seen(ref), boards


def u8(img):
    return np.clip(img, 0, 255).astype(np.uint8)


def test_production_boards_are_within_limits(frames):
    golden, boards = frames
    base = measure_optics(u8(golden))
    for b in boards:
        assert compare(measure_optics(u8(b)), base, OpticsLimits()) == []


def test_blurred_frame_is_focus_drift_only(frames):
    golden, boards = frames
    base = measure_optics(u8(golden))
    drift = compare(measure_optics(u8(cv2.GaussianBlur(boards[0], (0, 0), 2.0))), base, OpticsLimits())
    assert len(drift) == 1 and drift[0].startswith("focus") and "check the lens focus" in drift[0]


def test_darkened_frame_is_light_drift_not_focus(frames):
    golden, boards = frames
    base = measure_optics(u8(golden))
    drift = compare(measure_optics(u8(boards[0] * 0.6)), base, OpticsLimits())
    assert len(drift) == 1 and drift[0].startswith("illumination") and "darker" in drift[0]


def test_failed_lamp_segment_is_uniformity_drift(frames):
    golden, boards = frames
    base = measure_optics(u8(golden))
    h, w = boards[0].shape
    ramp = np.tile(np.linspace(1.0, 0.7, w, dtype=np.float32), (h, 1))
    drift = compare(measure_optics(u8(boards[0] * ramp)), base, OpticsLimits())
    assert any(d.startswith("illumination uniformity") for d in drift)


def test_colour_cast_is_detected_on_colour_cameras(frames):
    golden, _ = frames
    colour = cv2.cvtColor(u8(golden), cv2.COLOR_GRAY2BGR)
    base = measure_optics(colour)
    assert base.colour == pytest.approx((1.0, 1.0), abs=1e-6)
    warm = colour.astype(np.float32) * np.array([0.85, 1.0, 1.0], np.float32)  # blue channel down
    drift = compare(measure_optics(u8(warm)), base, OpticsLimits())
    assert drift and "B/G" in drift[0]
    assert measure_optics(u8(golden)).colour is None


def test_monitor_alarms_without_dropping_ready_by_default(frames):
    golden, boards = frames
    health = Health()
    mon = OpticsMonitor(measure_optics(u8(golden)), OpticsLimits(window=1), health)
    alarms = []
    mon.on_alarm(alarms.append)
    assert mon.check(u8(boards[0])).ok and health.ready
    assert not mon.check(u8(boards[0] * 0.5)).ok
    state = health.get(COMPONENT)
    assert health.ready and state.ok and state.detail.startswith("ALARM optics drift: illumination")
    assert len(alarms) == 1 and mon.alarm is not None
    mon.check(u8(boards[1]))
    assert mon.alarm is None and health.get(COMPONENT).detail == "optics within limits"


def test_monitor_drops_ready_where_configured_and_ignores_one_odd_board(frames):
    golden, boards = frames
    health = Health()
    mon = OpticsMonitor(measure_optics(u8(golden)), OpticsLimits(window=3, drop_ready=True), health)
    blurred = u8(cv2.GaussianBlur(boards[0], (0, 0), 2.5))
    mon.check(u8(boards[0]))
    mon.check(u8(boards[1]))
    assert mon.check(blurred).ok and health.ready  # one blurred board in three: median still fine
    mon.check(blurred)
    assert not health.ready
    assert health.reasons()[0].startswith("calibration: optics drift: focus")


def test_monitor_as_a_result_sink_runs_in_its_own_thread(frames):
    golden, boards = frames
    mon = OpticsMonitor(measure_optics(u8(golden)), OpticsLimits(window=1))
    mon.start()
    try:
        for i in range(20):
            mon.submit(InspectionResult(i, "demo", Verdict.PASS, [], {}, "m", image=u8(boards[i % 3] * 0.5)))
        mon.submit(InspectionResult(99, "demo", Verdict.REJECT, [], {}, "m"))  # no image: ignored
        deadline = time.monotonic() + 10
        while (mon.alarm is None or mon.checked + mon.dropped < 20) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        mon.stop()
    assert mon.alarm is not None and "darker" in mon.alarm.drift[0]
    assert mon.checked + mon.dropped == 20


def test_a_camera_drifting_out_of_focus_raises_the_focus_alarm_and_one_in_focus_does_not():
    """On camera renderings of a real DeepPCB board (gray line camera: textured laminate and copper, uneven light,
    sensor noise, JPEG), the golden capture as the baseline and ten captures of the board 3 px / 0.5 deg off, in a
    window of five: in focus no window raises the focus alarm; 1.5 px and 2.5 px of defocus raise it in every window.
    The variance of the Laplacian, which the alarm compared before, measured the captures' noise: it raised the focus
    alarm in 4 of 6 windows in focus (and 6 of 6 out of focus), so it told nothing."""
    from inspector.evaluation.camera_domain import capture_pair

    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "deeppcb" / "92000010_temp.jpg"
    template = cv2.imread(str(fixture), cv2.IMREAD_GRAYSCALE)
    base = measure_optics(capture_pair(template, template, 0)["golden"][0])
    assert base.sharpness is not None and base.sharpness > 0

    def focus_alarms(defocus: float) -> int:
        mon = OpticsMonitor(base, OpticsLimits(window=5))
        alarms = 0
        for seed in range(1, 11):
            frame = capture_pair(template, template, seed, max_shift=3, max_rot_deg=0.5, defocus_px=defocus)["good"][0]
            check = mon.check(frame)
            if seed >= 5:  # a full window
                alarms += any(line.startswith("focus: check the lens focus") for line in check.drift)
        return alarms

    assert focus_alarms(0.0) == 0
    assert focus_alarms(1.5) == 6
    assert focus_alarms(2.5) == 6


def test_a_baseline_stored_before_the_sharpness_measure_is_still_compared_by_its_focus(frames):
    golden, boards = frames
    stored = measure_optics(u8(golden)).to_json()
    del stored["sharpness"]  # as `calibrate reference` stored it before
    old = OpticsSample.from_json(stored)
    assert old.sharpness is None
    assert compare(measure_optics(u8(boards[1])), old, OpticsLimits()) == []
    drift = compare(measure_optics(u8(cv2.GaussianBlur(boards[0], (0, 0), 2.0))), old, OpticsLimits())
    assert len(drift) == 1 and drift[0].startswith("focus ") and "check the lens focus" in drift[0]
