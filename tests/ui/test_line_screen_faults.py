"""What the Line screen shows when the station cannot inspect, and when the operator stops it.

The real UI start-up (`UiRuntime.create`) over a real station (replay camera, classical detector, SQLite), driven
through its buttons. Screenshots go to build/ui-screenshots/ for a person to look at, in English and Chinese.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from PySide6.QtCore import Qt  # noqa: E402
from PySide6.QtGui import QFontMetrics  # noqa: E402

from inspector.domain import Detection, InspectionResult, Verdict  # noqa: E402
from inspector.health import ComponentState  # noqa: E402

from .conftest import pump, save_shot  # noqa: E402


def _runtime(cfg, language: str | None = None, size=(1280, 800)):
    from ui.session_setup import UiRuntime

    rt = UiRuntime.create(cfg, language=language)
    rt.window.resize(*size)
    rt.window.show()
    return rt


def _until(app, cond, seconds: float = 20.0) -> bool:
    for _ in range(int(seconds / 0.02)):
        if cond():
            return True
        pump(app, 0.02)
    return cond()


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_a_recipe_refused_at_start_shows_on_the_line_screen_not_only_in_an_alarm(
    ui_station_cfg, ui_app, qtbot, language
):
    """The station is built with a recipe it refuses (golden image missing): NOT READY from the first moment. That
    state was set before the window listened and never reached it: five green lamps, no alarm, a line standing."""
    ui_station_cfg.recipes[0].reference = Path(ui_station_cfg.storage.archive_dir).parent / "missing_golden.png"
    rt = _runtime(ui_station_cfg, None if language == "en" else language)
    try:
        rt.window.alarms.startup_grace_s = 0.2
        recipe = rt.controller.health.get("recipe")
        assert recipe is not None and not recipe.ok
        lamp = rt.window.operator.lamps["inspection"]
        assert _until(ui_app, lambda: lamp.state is not None and not lamp.state.ok)
        assert lamp.state.name == "recipe" and "missing_golden.png" in lamp.reason.text()
        # The alarm is raised too (after the start-up grace), and acknowledging it leaves the lamp red.
        assert _until(ui_app, lambda: rt.window.operator.alarm_banner.isVisible())
        save_shot(rt.window, f"operator_recipe_refused_{language}_1280x800")
        rt.session.login("op", "1111")
        rt.window.acknowledge_alarms()
        pump(ui_app, 0.2)
        assert not rt.window.alarms.unacknowledged and not rt.window.operator.alarm_banner.isVisible()
        assert not lamp.state.ok and "missing_golden.png" in lamp.reason.text()
    finally:
        rt.close()
        from ui import i18n

        i18n.set_language("en")


def test_stop_is_no_alarm_and_the_inspection_lamp_says_stopped(ui_station_cfg, ui_app, qtbot):
    rt = _runtime(ui_station_cfg)
    try:
        rt.controller.start()
        assert _until(ui_app, lambda: rt.bridge.submitted >= 2, 60)
        op = rt.window.operator
        rt.session.login("op", "1111")
        qtbot.mouseClick(op.start_stop, Qt.MouseButton.LeftButton)  # STOP
        assert _until(ui_app, lambda: not rt.controller.running)
        pump(ui_app, 0.5)
        assert not rt.window.alarms.unacknowledged, [(a.component, a.reason) for a in rt.window.alarms.unacknowledged]
        assert not op.alarm_banner.isVisible()
        lamp = op.lamps["inspection"]
        assert lamp.reason.text() == "stopped by operator"  # no "Inspection failed" before it: nothing failed
        save_shot(rt.window, "operator_stopped_en_1280x800")
        qtbot.mouseClick(op.start_stop, Qt.MouseButton.LeftButton)  # START
        assert _until(ui_app, lambda: rt.controller.running)
        assert _until(ui_app, lambda: lamp.state is not None and lamp.state.ok, 30)
        assert not rt.window.alarms.unacknowledged
    finally:
        rt.close()


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_the_verdict_stays_whole_under_an_alarm_with_four_defect_classes(ui_station_cfg, ui_app, language):
    """With an alarm banner above and four classes in the defect line, REJECT had 40 px for 107 px glyphs and the
    cycle time lay under the defect line."""
    from inspector.synth import make_board

    rt = _runtime(ui_station_cfg, None if language == "en" else language)
    try:
        alarms = rt.window.alarms
        alarms.on_health(ComponentState("plc", True, ""))
        alarms.on_health(ComponentState("plc", False, "PLC link down"))
        dets = [Detection((40.0 + 60 * k, 50.0, 90.0 + 60 * k, 95.0), c, 0.9) for k, c in enumerate((1, 3, 5, 6))]
        rt.bridge.submit(
            InspectionResult(
                frame_id=12,
                recipe="demo",
                verdict=Verdict.REJECT,
                detections=dets,
                timings_ms={"total": 576.0},
                model_id="pcb-defect-det@1.10.2+ddf0e698c56c",
                board_serial="SIM00000012",
                image=make_board(7).image,
            )
        )
        op = rt.window.operator
        assert _until(ui_app, lambda: op.last_update is not None and op.last_update.latest is not None)
        pump(ui_app, 0.5)
        v = op.verdict
        assert op.alarm_banner.isVisible()
        word = QFontMetrics(v.word.font())
        assert word.height() <= v.word.contentsRect().height(), (word.height(), v.word.height())
        assert word.horizontalAdvance(v.word.text()) <= v.word.contentsRect().width()
        assert word.height() >= 48  # still the biggest thing on the screen
        # The lines do not overlap: each starts below the one before ends, inside the panel.
        assert v.word.geometry().bottom() < v.line1.geometry().top()
        assert v.line1.geometry().bottom() < v.line2.geometry().top()
        for lab in (v.line1, v.line2):
            assert lab.height() >= lab.heightForWidth(lab.width()), lab.text()
        assert rt.window.height() <= 800, rt.window.minimumSizeHint()  # the 1280x800 panel, both languages
        # Every screen shares the window: the calibration wizard with a two-line reason made it 801 px tall in Chinese.
        rt.window.screens["calibration"].reason.setText("相机未就绪：" * 30)
        pump(ui_app, 0.2)
        assert rt.window.minimumSizeHint().height() <= 800, rt.window.minimumSizeHint()
        save_shot(rt.window, f"operator_alarm_four_classes_{language}_1280x800")
    finally:
        rt.close()
        from ui import i18n

        i18n.set_language("en")
