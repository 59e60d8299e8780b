"""Calibration wizard: synthetic checkerboard frames fed like the pipeline's results, views kept or
refused, intrinsics fitted in a worker and stored (who = the logged-in engineer), roles enforced."""

from __future__ import annotations

import numpy as np
import pytest

from calibration.pattern import Pattern
from calibration.store import INTRINSICS, CalibrationStore
from calibration.synthetic import SyntheticCamera, calibration_views, render_view
from inspector.config import StationConfig
from inspector.domain import InspectionResult, Verdict
from ui.auth import Session

from .conftest import save_shot


@pytest.fixture(scope="module")
def synthetic():
    pattern = Pattern.parse("checkerboard:9x6:5mm")
    cam = SyntheticCamera()
    views = calibration_views(pattern, cam, 10, seed=1)
    blurred = render_view(pattern, cam, views[0].rvec, views[0].tvec, blur_sigma=3.0)
    return cam, views, blurred.image


def _result(image: np.ndarray, frame_id: int) -> InspectionResult:
    return InspectionResult(frame_id, "demo", Verdict.PASS, [], {}, "", image=image)


def _feed(qtbot, wiz, image, frame_id: int) -> None:
    """Hand a frame to the wizard the way the pipeline does (result listener) and wait until it is drawn."""
    wiz.feed.submit(_result(image, frame_id))
    qtbot.waitUntil(lambda: wiz.current is not None and wiz.current.frame_id == frame_id, timeout=10000)


@pytest.fixture
def station_window(qtbot, ui_app, records_cfg, live_pipeline):
    from ui.app import MainWindow
    from ui.bridge import UiBridge
    from ui.controller import StationController
    from ui.records import Records
    from ui.session_setup import add_engineering_screens

    records = Records.open(records_cfg)
    for name, role, secret in (("op", "operator", "1111"), ("eng", "engineer", "2222")):
        records.create_user(name, role, secret, by="test")
    cfg = StationConfig()
    controller = StationController(cfg, live_pipeline, live_pipeline.health)
    session = Session(records.authenticate, 300, audit=records.audit)
    win = MainWindow(controller, UiBridge(), session, records=records, audit=records.audit, station_name="Line 1")
    add_engineering_screens(win, records, controller, session)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    yield win, records, session, controller
    win.screens["calibration"].leave()
    win.screens["calibration"].wait_fit()
    records.close()


def test_wizard_keeps_usable_views_and_stores_intrinsics(qtbot, station_window, synthetic):
    win, records, session, _ = station_window
    cam, views, blurred = synthetic
    wiz = win.screens["calibration"]

    # Operators cannot open the wizard, nor capture through it.
    session.login("op", "1111")
    assert not win.show_screen("calibration") and win.current_screen() == "operator"
    assert not wiz.capture() and "engineer" in wiz.message.text()
    # The refusal's audit row is written on the database worker, after the tap returned.
    qtbot.waitUntil(lambda: any(e.action == "denied" and e.who == "op" for e in records.audit_events()), timeout=10000)
    session.logout()

    session.login("eng", "2222")
    assert win.show_screen("calibration") and wiz.feed.active
    assert wiz.pattern_edit.text() == "checkerboard:9x6:5mm"

    # No pattern in the frame: red, refused.
    _feed(qtbot, wiz, np.full((480, 640), 128, np.uint8), 1)
    assert wiz.ind_found.ok is False and not wiz.capture() and wiz.views == []

    # A blurred view of the pattern: found, but the sharpness tile is red and the view is refused.
    _feed(qtbot, wiz, blurred, 2)
    assert wiz.ind_found.ok is True and wiz.ind_sharp.ok is False
    assert not wiz.capture() and "blurred" in wiz.message.text() and wiz.rejected_captures == 2
    assert wiz.live.corners is not None and not wiz.live.usable

    # Too few views: Compute refuses.
    assert not wiz.compute() and not wiz.compute_button.isEnabled()

    for i, v in enumerate(views):
        _feed(qtbot, wiz, v.image, 10 + i)
        assert wiz.ind_found.ok and wiz.ind_coverage.ok and wiz.ind_sharp.ok and wiz.live.usable
        assert len(wiz.live.corners) == 54
        assert wiz.capture(), wiz.message.text()
        assert not wiz.capture()  # the same frame is not kept twice
    assert len(wiz.views) == len(views) and wiz.coverage.fraction > 0.5
    assert wiz.compute_button.isEnabled()

    assert wiz.compute()
    qtbot.waitUntil(lambda: not wiz.computing, timeout=30000)
    r = wiz.last_result
    assert r is not None, wiz.last_error
    k = r.camera_matrix
    for got, want in ((k[0, 0], cam.fx), (k[1, 1], cam.fy), (k[0, 2], cam.cx), (k[1, 2], cam.cy)):
        assert abs(got - want) / want < 0.01, (got, want)
    assert r.rms_px < 0.5
    assert wiz.results.count() == len(r.per_view_error_px) + len(r.rejected) == len(views)
    assert f"{r.rms_px:.3f}" in wiz.result_label.text()

    # Stored as the active intrinsics, by the logged-in engineer, and audited.
    store = CalibrationStore(records.db)
    info = store.active(INTRINSICS)
    assert info is not None and info.id == wiz.saved_id and info.created_by == "eng"
    assert np.allclose(store.intrinsics().camera_matrix, k)
    qtbot.waitUntil(lambda: any(e.action == "calibration_intrinsics" for e in records.audit_events()), timeout=10000)
    events = records.audit_events()
    assert any(e.action == "calibration_intrinsics" and e.who == "eng" for e in events)
    assert any(e.action == "calibration.save" and e.who == "eng" for e in events)
    assert f"intrinsics #{info.id} by eng" in wiz.active_label.text()

    # A live frame after the fit, for the screenshot (docs/img/calibration_wizard.png comes from this).
    _feed(qtbot, wiz, views[3].image, 99)
    qtbot.wait(50)
    win.toast.setText("")  # the operator's refusal above is not part of the picture
    save_shot(win, "calibration_wizard_1280x800")

    # Leaving the screen (logout) stops the feed: frames are ignored.
    session.logout()
    assert win.current_screen() == "operator" and not wiz.feed.active
    n = wiz.feed.submitted
    wiz.feed.submit(_result(views[0].image, 200))
    assert wiz.feed.submitted == n


def test_the_active_threshold_position_is_in_the_engineers_header(qtbot, station_window):
    """A threshold position calibrated with `pcb-inspector calibrate threshold` is one of the station's active
    calibrations: the wizard's header names it with its value, who and when, like the intrinsics and the scale."""
    from calibration.store import THRESHOLD

    win, records, session, _ = station_window
    wiz = win.screens["calibration"]
    info = CalibrationStore(records.db).save(THRESHOLD, {"threshold_position": 0.106, "boards": 21}, "eng")
    session.login("eng", "2222")
    assert win.show_screen("calibration")
    wiz.refresh_active()
    assert f"threshold #{info.id} by eng" in wiz.active_label.text() and ", 0.11" in wiz.active_label.text()
    save_shot(win, "calibration_wizard_threshold_en_1280x800")
    from ui import i18n

    i18n.set_language("zh_CN")
    qtbot.waitUntil(lambda: wiz.active_label.text().startswith("当前标定："), timeout=10000)
    assert f"threshold #{info.id}，eng 于" in wiz.active_label.text() and ", 0.11" in wiz.active_label.text()
    assert wiz.reason.text() == "等待相机图像…"  # the waiting line follows the language too
    save_shot(win, "calibration_wizard_threshold_zh_CN_1280x800")
