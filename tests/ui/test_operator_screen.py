"""Operator screen fed by a real pipeline through the UI bridge; alarms raised and acknowledged."""

from __future__ import annotations

import pytest

from inspector.domain import Verdict
from ui.alarms import AlarmModel
from ui.bridge import UiBridge
from ui.operator_screen import OperatorScreen

from .conftest import save_shot


def _screen(bridge: UiBridge) -> tuple[OperatorScreen, AlarmModel]:
    alarms = AlarmModel()
    scr = OperatorScreen(alarms)
    scr.set_recipes(["demo"], "demo")
    bridge.updated.connect(scr.on_update)
    bridge.updated.connect(lambda _u: bridge.ack())
    scr.live.size_changed.connect(bridge.set_display_size)  # as ui/app.py wires it
    bridge.health_changed.connect(scr.on_health)
    bridge.health_changed.connect(alarms.on_health)
    return scr, alarms


def test_operator_screen_updates_from_pipeline_results(qtbot, ui_app, live_pipeline):
    bridge = UiBridge(display_fps=10)
    scr, _ = _screen(bridge)
    qtbot.addWidget(scr)
    scr.resize(1280, 800)
    scr.show()
    seen = []
    live_pipeline.on_result(seen.append)
    bridge.attach(live_pipeline)
    bridge.start()
    live_pipeline.start()
    try:
        qtbot.waitUntil(lambda: scr.update_count >= 3 and len(seen) >= 8, timeout=30000)
        qtbot.waitUntil(lambda: scr.last_update.counts.inspected >= 8, timeout=10000)
    finally:
        live_pipeline.stop()
    qtbot.waitUntil(lambda: scr.last_update.counts.inspected == len(seen), timeout=5000)
    u = scr.last_update
    # Counters are exact (every result counts) even though pictures are throttled.
    assert u.counts.inspected == len(seen)
    assert u.counts.passed == sum(r.verdict is Verdict.PASS for r in seen)
    assert u.counts.rejected == sum(r.verdict is Verdict.REJECT for r in seen)
    assert scr.tiles["inspected"].value.text() == f"{len(seen):,}"
    # The banner, the overlays and the strip show the newest board.
    last = seen[-1]
    assert u.latest.uid == last.uid
    assert scr.verdict.word.text() == ("PASS" if last.passed else "REJECT")
    assert len(scr.live.overlays) == len(last.detections)
    assert [r.uid for r in scr.strip.results] == [r.uid for r in seen[-20:]]
    # Pictures are owned copies, scaled to at most the bridge's max side.
    assert scr.live.image is not None and not scr.live.image.isNull()
    assert max(scr.live.image.width(), scr.live.image.height()) <= bridge.max_side
    # ...and a second copy pre-scaled to the live view, which the GUI thread paints 1:1.
    d, view = u.display, scr.live
    assert d is not None and d.format() == d.Format.Format_RGB32
    assert min(abs(d.width() - view.width()), abs(d.height() - view.height())) <= 1
    assert view.blits >= 1
    # Lamps: the camera and the backend that actually runs.
    assert scr.lamps["camera"].state.ok
    assert "classical" in scr.lamps["model"].reason.text()
    assert bridge.emitted <= bridge.submitted
    save_shot(scr, "operator_live_1280x800")
    # A defect tap opens the zoom on that defect.
    rejects = [i for i, r in enumerate(seen) if r.detections]
    if scr.live.overlays:
        scr.open_zoom(0)
        assert scr.zoom is not None and scr.zoom.canvas.image is not None
        scr.zoom.close()
    assert rejects or u.counts.passed == u.counts.inspected
    bridge.stop()


def test_display_image_fits_the_view_and_keeps_the_aspect(ui_app):
    import numpy as np

    from ui.bridge import to_display_qimage

    img = np.zeros((1586, 3034), np.uint8)  # a PKU-Market-PCB sized board
    img[:, 1517:] = 255
    q = to_display_qimage(img, (900, 700))
    assert (q.width(), q.height()) == (900, round(1586 * 900 / 3034))
    assert q.pixelColor(10, 10).red() == 0 and q.pixelColor(890, 10).red() == 255
    col = to_display_qimage(np.full((100, 200, 3), (255, 0, 0), np.uint8), (400, 400))  # BGR blue
    assert (col.width(), col.height()) == (400, 200) and col.pixelColor(5, 5).blue() == 255


def test_alarm_raises_and_is_acknowledged(qtbot, ui_app):
    from inspector.health import Health

    health = Health()
    bridge = UiBridge()
    scr, alarms = _screen(bridge)
    qtbot.addWidget(scr)
    scr.resize(1280, 800)
    scr.show()
    bridge.attach_health(health)
    health.ok("camera", "640x640 Mono8")
    health.ok("plc", "link up")
    health.fail("model", "loading")  # start-up, not a fault: no alarm
    health.fail("database", "connecting")  # never healthy yet: alarm only after the grace period
    qtbot.wait(20)
    assert not scr.alarm_banner.isVisible() and alarms.unacknowledged == []

    acked = []
    alarms.acknowledged.connect(lambda a, who: acked.append((a, who)))
    scr.acknowledge_requested.connect(lambda: alarms.acknowledge_all("op1"))
    health.fail("camera", "lost: 3 consecutive failures; reconnecting")
    health.fail("plc", "heartbeat lost for 3.1 s")
    qtbot.waitUntil(lambda: scr.alarm_banner.isVisible(), timeout=2000)
    assert len(alarms.unacknowledged) == 2
    assert "PLC down" in scr.alarm_banner.text.text()
    assert not scr.lamps["camera"].state.ok and not scr.lamps["plc"].state.ok
    save_shot(scr, "operator_alarm_1280x800")

    # The same fault changing wording does not raise a second alarm.
    health.fail("camera", "cannot open: no device")
    qtbot.wait(20)
    assert len(alarms.unacknowledged) == 2

    qtbot.mouseClick(scr.alarm_banner.ack, __import__("PySide6.QtCore").QtCore.Qt.MouseButton.LeftButton)
    assert not scr.alarm_banner.isVisible()
    assert acked and acked[0][1] == "op1" and {a.component for a in acked[0][0]} == {"camera", "plc"}
    # Still active after acknowledgement: the lamp stays red, the banner stays down.
    assert not scr.lamps["plc"].state.ok
    # Recovery then a new loss raises a new alarm.
    health.ok("plc", "link up")
    health.fail("plc", "link down: connection refused")
    qtbot.waitUntil(lambda: scr.alarm_banner.isVisible(), timeout=2000)
    assert [a.component for a in alarms.unacknowledged] == ["plc"]
    alarms._grace_over("database")  # the grace period ends with the database still down
    assert [a.component for a in alarms.unacknowledged] == ["plc", "database"]


_IMAGE_FAULTS = {
    "operator_image_alarm": "3 boards in a row: board image: over-exposed, lower the exposure, gain or light: 47% of "
    "the pixels at full scale and copper no longer told from laminate",
    "operator_gamma_alarm": None,  # the preparation's own words: `_low_contrast_fault`
}


def _low_contrast_fault() -> str:
    """What the pipeline reports after three golden images in a row it cannot read: the fixture board rendered by a
    camera whose gamma (0.3) is on, prepared as the shipped model asks, and the refusal's own message."""
    from pathlib import Path

    import cv2

    from inspector.detect.package import read_meta
    from inspector.detect.prepare import LowContrastError, prepare
    from inspector.evaluation.camera_domain import render

    root = Path(__file__).resolve().parents[2]
    template = cv2.imread(str(root / "tests" / "fixtures" / "deeppcb" / "92000010_temp.jpg"), cv2.IMREAD_GRAYSCALE)
    frame, _ = render(template, 3, gamma=0.3)
    with pytest.raises(LowContrastError) as refused:
        prepare(frame, read_meta(root / "models" / "pcb-defect-det.tflite").input_domain, "reference image")
    return f"3 boards in a row: {refused.value}"


def _alarm_on_screen(qtbot, component: str, reason: str):
    """An operator screen at 1280x800 whose station's `component` went from healthy to `reason`, its banner up."""
    from inspector.health import Health

    health = Health()
    bridge = UiBridge()
    scr, _ = _screen(bridge)
    qtbot.addWidget(scr)
    scr.resize(1280, 800)
    scr.show()
    bridge.attach_health(health)
    health.ok(component)
    health.fail(component, reason)
    qtbot.waitUntil(lambda: scr.alarm_banner.isVisible(), timeout=2000)
    return scr


@pytest.mark.parametrize("shot", sorted(_IMAGE_FAULTS))
def test_an_image_the_station_cannot_inspect_is_an_alarm_in_english_and_chinese(qtbot, ui_app, shot):
    """After three boards in a row it cannot inspect (over-exposed; a camera gamma that leaves too little contrast)
    the pipeline fails its `image` component: the operator sees it, and the remedy comes first."""
    from ui import i18n

    scr = _alarm_on_screen(qtbot, "image", _IMAGE_FAULTS[shot] or _low_contrast_fault())
    assert "Camera image unusable" in scr.alarm_banner.text.text()
    save_shot(scr, f"{shot}_1280x800")
    try:
        i18n.set_language("zh_CN")
        qtbot.waitUntil(lambda: "相机图像不可用" in scr.alarm_banner.text.text(), timeout=2000)
        # The remedy is the operator's too: in Chinese, the detail after it stays as the core wrote it.
        remedy = {"operator_image_alarm": "板图像：过曝，请降低曝光", "operator_gamma_alarm": "参考图像：对比度低"}[
            shot
        ]
        assert remedy in scr.alarm_banner.text.text(), scr.alarm_banner.text.text()
        save_shot(scr, f"{shot}_zh_CN_1280x800")
    finally:
        i18n.set_language("en")


def test_the_same_defect_board_after_board_is_an_alarm_with_its_place_and_remedy(qtbot, ui_app):
    """Dust on the lens (or a process fault) makes the pipeline fail its `repeat` component: the operator's banner
    names it, where in the frame, the class and what to do, in English and Chinese (the core's own message)."""
    from inspector.repeat_watch import RepeatedDefect
    from ui import i18n
    from ui.labels import lamp_label

    scr = _alarm_on_screen(qtbot, "repeat", RepeatedDefect(455.2, 543.8, 5, "pin-hole").reason)
    text = scr.alarm_banner.text.text()
    assert "Same defect, board after board" in text and "x 455, y 544" in text and "clean the lens" in text, text
    save_shot(scr, "operator_repeat_alarm_1280x800")
    try:
        i18n.set_language("zh_CN")
        qtbot.waitUntil(lambda: "连续多块板同一处缺陷" in scr.alarm_banner.text.text(), timeout=2000)
        text = scr.alarm_banner.text.text()
        assert "请清洁镜头" in text and "x 455、y 544" in text and "pin-hole" not in text, text
        save_shot(scr, "operator_repeat_alarm_zh_CN_1280x800")
        # Where only the board's place repeats (a loose fixture), the remedy is the process's alone.
        board = lamp_label(RepeatedDefect(120.0, 80.0, 5, "short", "board").reason)
        assert "请检查上游工序" in board and "板上 x 120、y 80" in board and "镜头" not in board, board
    finally:
        i18n.set_language("en")


def test_a_lens_out_of_focus_is_an_optics_alarm_with_the_remedy_first(qtbot, ui_app):
    """The optics monitor (with `drop_ready`) fails the `calibration` component when the boards' sharpness falls: the
    operator's banner says what it is and what to do before any figure, in English and Chinese."""
    from calibration.health import OpticsLimits, OpticsSample, compare
    from ui import i18n

    base, now = OpticsSample(300.0, 100.0, 0.8, None, 0.00129), OpticsSample(290.0, 100.0, 0.8, None, 0.000653)
    scr = _alarm_on_screen(qtbot, "calibration", "optics drift: " + "; ".join(compare(now, base, OpticsLimits())))
    text = scr.alarm_banner.text.text()
    assert "Camera calibration and optics: focus: check the lens focus and the board height (sharpness 49%" in text, (
        text
    )
    save_shot(scr, "operator_focus_alarm_1280x800")
    try:
        i18n.set_language("zh_CN")
        qtbot.waitUntil(lambda: "相机标定与光学" in scr.alarm_banner.text.text(), timeout=2000)
        text = scr.alarm_banner.text.text()
        assert "请检查镜头对焦" in text and "49%" in text and "sharpness" not in text, text
        save_shot(scr, "operator_focus_alarm_zh_CN_1280x800")
    finally:
        i18n.set_language("en")


def test_a_long_serial_and_cycle_time_do_not_widen_the_operator_screen(qtbot, ui_app):
    """The verdict banner's serial and cycle line wraps: unwrapped, 'cycle 137 ms' on a busy machine made the screen
    1286 px wide (the window grows to its widest page's minimum) and a longer board serial would push it further."""
    from datetime import datetime

    from ui.bridge import ResultSummary

    bridge = UiBridge()
    scr, _ = _screen(bridge)
    qtbot.addWidget(scr)
    scr.resize(1280, 800)
    scr.show()
    before = scr.minimumSizeHint().width()
    r = ResultSummary(
        "u1",
        7,
        Verdict.REJECT,
        "PCB-2026-12-06-LINE3-000123456",
        "demo",
        1375.0,
        (),
        None,
        datetime.now(),
        "pcb-defect-det@1.10.0",
        (640, 640),
    )
    scr.verdict.show_result(r)
    qtbot.wait(20)
    assert scr.minimumSizeHint().width() <= before, (before, scr.minimumSizeHint().width())  # 810 -> 1159 unwrapped
    assert scr.width() == 1280
    save_shot(scr, "operator_long_serial_1280x800")


def _wrapped_lines(label) -> list[str]:
    """The lines `label` (word-wrapped) shows at its present width, as Qt lays its text out."""
    from PySide6.QtGui import QTextLayout, QTextOption

    layout = QTextLayout(label.text(), label.font())
    option = QTextOption()
    option.setWrapMode(QTextOption.WrapMode.WordWrap)
    layout.setTextOption(option)
    layout.beginLayout()
    lines = []
    while (line := layout.createLine()).isValid():
        line.setLineWidth(label.contentsRect().width())
        lines.append(label.text()[line.textStart() : line.textStart() + line.textLength()].strip())
    layout.endLayout()
    return lines


@pytest.mark.parametrize("language", ["en", "zh_CN"])
def test_a_three_digit_cycle_time_keeps_its_unit_on_its_line(qtbot, ui_app, language):
    """On a slower CPU (a cycle of 219 ms) the demo's banner, 505 px wide beside the live image at 1280 x 800, broke
    its line before "ms" and left the unit alone on a line of its own; the serial and the cycle each stay whole, the
    line may only wrap between them."""
    from datetime import datetime

    from ui import i18n
    from ui.bridge import ResultSummary
    from ui.operator_screen import VerdictBanner

    i18n.set_language(language)
    try:
        banner = VerdictBanner()
        qtbot.addWidget(banner)
        banner.resize(505, 245)  # its size in the demo's screenshot (`pcb-inspector ui --demo --screenshot`)
        banner.show()
        r = ResultSummary(
            "u1", 15, Verdict.PASS, "SIM00000015", "demo", 219.0, (), None, datetime.now(), "m@1", (640, 640)
        )
        banner.show_result(r)
        qtbot.wait(20)
        lines = [line.replace("\u00a0", " ") for line in _wrapped_lines(banner.line1)]
        cycle = "cycle 219 ms" if language == "en" else "节拍 219 ms"
        assert any(cycle in line for line in lines), lines
        assert any("SIM00000015" in line for line in lines) and "ms" not in lines, lines
        save_shot(banner, f"verdict_cycle_219ms_{language}_505px")
    finally:
        i18n.set_language("en")


def test_a_long_recipe_name_does_not_widen_the_operator_screen(qtbot, ui_app):
    """Recipe names come from the plant (product, revision, side): the closed box shows about 18 characters, the
    open list every name whole; the 20-board strip keeps its width (a 44-character name squeezed it to slivers)."""
    from ui.alarms import AlarmModel
    from ui.operator_screen import OperatorScreen

    short = OperatorScreen(AlarmModel())
    short.set_recipes(["demo"], "demo")
    qtbot.addWidget(short)
    long_name = "PCB-4471-rev-C-top-side-panel-of-6-lead-free"
    scr = OperatorScreen(AlarmModel())
    scr.set_recipes(["demo", long_name], long_name)
    qtbot.addWidget(scr)
    scr.resize(1280, 800)
    scr.show()
    short.resize(1280, 800)
    short.show()
    assert scr.minimumSizeHint().width() <= short.minimumSizeHint().width() + 40, (
        scr.minimumSizeHint().width(),
        short.minimumSizeHint().width(),
    )
    assert scr.recipe.currentText() == long_name
    assert scr.strip.width() >= short.strip.width() - 20, (scr.strip.width(), short.strip.width())
    save_shot(scr, "operator_long_recipe_1280x800")
