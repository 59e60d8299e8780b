"""Focus, light and colour drift against the baseline measured on the golden board."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest

from calibration.health import COMPONENT, OpticsLimits, OpticsMonitor, compare, measure_optics
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
