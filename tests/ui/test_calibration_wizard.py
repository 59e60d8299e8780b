"""Calibration wizard: synthetic checkerboard frames fed like the pipeline's results, views kept or
refused, intrinsics fitted in a worker and stored (who = the logged-in engineer), roles enforced."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from calibration.pattern import Pattern
from calibration.store import INTRINSICS, CalibrationStore
from calibration.synthetic import SyntheticCamera, calibration_views, render_view
from inspector.config import StationConfig
from inspector.domain import InspectionResult, Verdict
from ui.auth import Session

from .conftest import save_shot

REPO = Path(__file__).resolve().parents[2]


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
    assert f"阈值位置 #{info.id}，eng 于" in wiz.active_label.text() and ", 0.11" in wiz.active_label.text()
    assert wiz.reason.text() == "等待相机图像…"  # the waiting line follows the language too
    save_shot(win, "calibration_wizard_threshold_zh_CN_1280x800")


def test_the_engineer_calibrates_the_threshold_from_the_recipes_golden_reference_and_a_design(
    qtbot, station_window, tmp_path
):
    """The wizard's threshold row measures the active recipe's golden reference (a camera whose dark etched rims put
    every copper edge inward) against the board's design file, stores and audits it as the engineer's, and says
    which station.toml line makes the station run it; an operator may not, a recipe without a golden reference and
    a design of another board are refused by name, and nothing is stored then."""
    import cv2

    from calibration.store import THRESHOLD
    from inspector.evaluation.camera_domain import capture_pair

    win, records, session, controller = station_window
    wiz = win.screens["calibration"]
    fixtures = REPO / "tests" / "fixtures" / "deeppcb"
    design = cv2.imread(str(fixtures / "92000010_temp.jpg"), cv2.IMREAD_GRAYSCALE)
    golden = capture_pair(design, design, 11, mode="gray", max_shift=3, max_rot_deg=0.5, renderer="optics")["golden"][0]
    cv2.imwrite(str(tmp_path / "golden.png"), golden)
    cv2.imwrite(str(tmp_path / "design.png"), design)
    other = cv2.imread(str(fixtures / "20085164_temp.jpg"), cv2.IMREAD_GRAYSCALE)
    cv2.imwrite(str(tmp_path / "other-board.png"), other)
    store = CalibrationStore(records.db)

    session.login("op", "1111")
    assert not wiz.threshold.button.isEnabled()
    assert not wiz.threshold.calibrate(tmp_path / "design.png") and "engineer" in wiz.threshold.outcome.text()
    session.logout()

    session.login("eng", "2222")
    assert win.show_screen("calibration") and wiz.threshold.button.isEnabled()
    assert wiz.threshold.running.text() == "Station runs 0.50 · recipe demo"
    # The demo recipe has no golden reference yet: nothing to measure.
    assert not wiz.threshold.calibrate(tmp_path / "design.png")
    assert "recipe demo has no golden reference" in wiz.threshold.outcome.text()

    controller.cfg.recipes[0].reference = tmp_path / "golden.png"
    assert wiz.threshold.calibrate(tmp_path / "other-board.png")  # another board's design: refused by name
    qtbot.waitUntil(lambda: not wiz.threshold.busy, timeout=30000)
    assert wiz.threshold.last_fit is None and "golden.png (design other-board.png)" in wiz.threshold.last_error
    assert wiz.threshold.outcome.text().startswith("Not calibrated: ") and store.active(THRESHOLD) is None
    # What is wrong and what to do on the screen; the registrar's account of it only in the tooltip.
    assert "not this board" in wiz.threshold.outcome.text() and "registration:" not in wiz.threshold.outcome.text()
    assert "registration:" in wiz.threshold.outcome.toolTip()
    save_shot(win, "calibration_wizard_threshold_refused_en_1280x800")

    assert wiz.threshold.calibrate(tmp_path / "design.png")
    qtbot.waitUntil(lambda: not wiz.threshold.busy, timeout=30000)
    fit = wiz.threshold.last_fit
    assert fit is not None, wiz.threshold.last_error
    assert fit.position < 0.4 and fit.offset_at_midpoint_px < -0.15  # the rims: edges inward at the midpoint
    info = store.active(THRESHOLD)
    assert info is not None and info.id == wiz.threshold.saved_id and info.created_by == "eng"
    assert info.results["threshold_position"] == round(fit.position, 3) and info.results["recipe"] == "demo"
    line = f"[detector] threshold_position = {fit.position:.2f}"
    assert line in wiz.threshold.outcome.text() and "restart the station" in wiz.threshold.outcome.text()
    assert f"threshold #{info.id} by eng" in wiz.active_label.text()
    qtbot.waitUntil(lambda: any(e.action == "calibration_threshold" for e in records.audit_events()), timeout=10000)
    assert any(e.action == "calibration_threshold" and e.who == "eng" for e in records.audit_events())
    win.toast.setText("")
    save_shot(win, "calibration_wizard_threshold_measured_en_1280x800")

    from ui import i18n

    i18n.set_language("zh_CN")
    qtbot.waitUntil(lambda: wiz.threshold.title.text() != "THRESHOLD POSITION", timeout=10000)
    assert line in wiz.threshold.outcome.text() and "station.toml" in wiz.threshold.outcome.text()
    save_shot(win, "calibration_wizard_threshold_measured_zh_CN_1280x800")
    i18n.set_language("en")

    # Set up as told, the station runs the measured position, and the row says so.
    controller.cfg.detector = controller.cfg.detector.model_copy(update={"threshold_position": round(fit.position, 2)})
    wiz.threshold.refresh()
    assert wiz.threshold.running.text() == f"Station runs {fit.position:.2f} · recipe demo"


def test_why_a_view_is_refused_is_said_in_the_screens_language(qtbot, station_window, synthetic):
    """The tiles' reasons (no pattern, blurred) are measured by the calibration core, which words them in English for
    logs and the command line; the wizard words them from the measurement, so a zh_CN screen says them in Chinese,
    and a language change redraws the line at once, with no new frame."""
    win, records, session, _ = station_window
    _, _, blurred = synthetic
    wiz = win.screens["calibration"]
    session.login("eng", "2222")
    assert win.show_screen("calibration")
    from ui import i18n

    _feed(qtbot, wiz, np.full((480, 640), 128, np.uint8), 1)
    assert wiz.reason.text() == "✖  pattern not found"
    i18n.set_language("zh_CN")
    qtbot.waitUntil(lambda: wiz.reason.text() == "✖  未找到图案", timeout=10000)
    _feed(qtbot, wiz, blurred, 2)
    assert wiz.ind_found.ok is True and wiz.ind_sharp.ok is False and wiz.ind_coverage.ok is True
    assert wiz.reason.text().startswith("✖  模糊：边缘宽 ") and "blurred" not in wiz.reason.text()
    assert not wiz.capture() and wiz.message.text().startswith("视图未保留：模糊")
    save_shot(win, "calibration_wizard_blurred_zh_CN_1280x800")
    i18n.set_language("en")
    qtbot.waitUntil(lambda: wiz.reason.text().startswith("✖  blurred: edges "), timeout=10000)


def test_why_the_fit_left_a_view_out_is_said_in_the_screens_language(qtbot, station_window, synthetic):
    """A view the fit drops after the fact (its reprojection error: here two views of another lens among ten of the
    camera's) is listed with its reason; the calibration core words it in English for the stored record, the wizard in
    the screen's language."""
    win, records, session, _ = station_window
    _, views, _ = synthetic
    wiz = win.screens["calibration"]
    session.login("eng", "2222")
    assert win.show_screen("calibration")
    from ui import i18n

    pattern = Pattern.parse("checkerboard:9x6:5mm")
    other_lens = calibration_views(pattern, SyntheticCamera(dist=(0.35, -0.2, 0.01, 0.01, 0.0)), 2, seed=7)
    i18n.set_language("zh_CN")
    try:
        for i, v in enumerate([*views, *other_lens]):
            _feed(qtbot, wiz, v.image, 10 + i)
            assert wiz.capture(), wiz.message.text()
        assert wiz.compute()
        qtbot.waitUntil(lambda: not wiz.computing, timeout=30000)
        r = wiz.last_result
        assert r is not None, wiz.last_error
        assert len(r.rejected) == 2 and all(rej.reason.startswith("reprojection error") for rej in r.rejected)
        lines = [wiz.results.item(i).text() for i in range(wiz.results.count())]
        left_out = [line for line in lines if "已拒绝" in line]
        assert len(left_out) == 2 and lines[:2] == left_out, lines  # what to retake, on top
        assert all("重投影误差" in line and "reprojection" not in line for line in left_out), left_out
        save_shot(win, "calibration_wizard_fit_rejected_zh_CN_1280x800")
    finally:
        i18n.set_language("en")
