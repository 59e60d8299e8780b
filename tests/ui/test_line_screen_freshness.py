"""The Line screen shows the line as it is now: after a visit to another screen, and across a shift change on an
idle line (not only when the next board arrives)."""

from __future__ import annotations

from datetime import datetime, timedelta
from types import SimpleNamespace

from PySide6.QtWidgets import QWidget

from inspector.config import StationConfig
from inspector.domain import Detection, InspectionResult, Verdict
from inspector.health import Health
from inspector.shifts import ShiftPlan
from ui import bridge
from ui.alarms import AlarmModel
from ui.app import MainWindow
from ui.auth import Session
from ui.controller import StationController
from ui.operator_screen import OperatorScreen


def _board(i: int, reject: bool = False) -> InspectionResult:
    dets = [Detection((5, 5, 30, 30), 2, 0.9)] if reject else []
    return InspectionResult(
        i, "demo", Verdict.REJECT if reject else Verdict.PASS, dets, {"total": 5.0}, "m", board_serial=f"SN{i:03d}"
    )


def test_coming_back_to_the_line_screen_shows_the_last_board(qtbot):
    pipeline = SimpleNamespace(running=False, detector_info=None, rules=None, counters=None)
    controller = StationController(StationConfig(), pipeline, Health())
    b = bridge.UiBridge(display_fps=30)
    b.start()
    w = MainWindow(controller, b, Session(lambda n, p: None), audit=lambda *a, **k: None)
    qtbot.addWidget(w)
    w.add_screen("history", QWidget())
    w.resize(1280, 800)
    w.show()
    try:
        w.show_screen("history")
        for i in range(1, 14):  # 13 boards while another screen is shown; the last one a REJECT
            b.submit(_board(i, reject=i == 13))
            qtbot.wait(60)
        qtbot.waitUntil(lambda: b.submitted == 13, timeout=5000)
        qtbot.wait(500)  # the bridge's last update (15 a second at most) has reached the window
        w.show_screen("operator")
        op = w.operator
        assert op.tiles["inspected"].value.text() == "13"
        assert op.tiles["rejected"].value.text() == "1"
        assert op.last_update.latest.serial == "SN013" and op.last_update.latest.verdict is Verdict.REJECT
    finally:
        b.stop()


def test_shift_counters_roll_over_on_an_idle_line(qtbot, monkeypatch):
    now = datetime.now()
    nxt = (now + timedelta(seconds=3)).time().replace(microsecond=0)
    prev = (now - timedelta(hours=1)).time().replace(microsecond=0)
    monkeypatch.setattr(bridge, "_PLAN", ShiftPlan(tuple(sorted([prev, nxt])), None))
    b = bridge.UiBridge(display_fps=15)
    screen = OperatorScreen(AlarmModel())
    qtbot.addWidget(screen)
    b.updated.connect(lambda u: (screen.on_update(u), b.ack()))
    b.start()
    try:
        for i in range(4):
            b.submit(_board(i))
            qtbot.wait(100)
        qtbot.waitUntil(lambda: screen.tiles["inspected"].value.text() == "4", timeout=5000)
        # The shift changes 3 s from the start; no board comes.
        qtbot.waitUntil(lambda: screen.tiles["inspected"].value.text() == "0", timeout=10000)
        assert screen.last_update.counts.shift_started.time() == nxt
    finally:
        b.stop()
