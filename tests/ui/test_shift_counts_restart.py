"""A station UI restarted mid-shift shows the shift's counts from the records, not 0.

Written by the real recorder into a real SQLite file, read by the real UI start-up (`UiRuntime.create`): boards of
the previous shift and of another station sharing the database are not this station's shift.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

pytest.importorskip("PySide6")

from inspector.board_serial import CODE_UNREADABLE, SERIAL_MISMATCH  # noqa: E402
from inspector.domain import Verdict  # noqa: E402

from .conftest import board_results, pump, record_boards  # noqa: E402


@pytest.fixture
def mid_shift_cfg(ui_station_cfg):
    """A station whose current shift began one to two hours ago (UTC plan), so the test never straddles a shift start."""
    now = datetime.now(UTC)
    cfg = ui_station_cfg
    cfg.storage.timezone = "UTC"
    began = (now - timedelta(hours=1)).strftime("%H:00")  # 1-2 h ago: boards of the last hour are this shift's
    cfg.storage.shift_starts = sorted({began, (now + timedelta(hours=7)).strftime("%H:00")})
    return cfg, now


def _boards_of(now, minutes_ago, verdicts, reasons=None):
    out = []
    for i, (m, v) in enumerate(zip(minutes_ago, verdicts)):
        r = board_results(1)[0]
        r.timestamp = now - timedelta(minutes=m)
        r.verdict = v
        r.detections = [] if v is Verdict.PASS else r.detections
        r.reason = (reasons or {}).get(i)
        out.append(r)
    return out


def test_a_ui_restarted_mid_shift_shows_the_shifts_recorded_counts(mid_shift_cfg, ui_app, tmp_path):
    from ui.bridge import UiBridge
    from ui.session_setup import UiRuntime

    cfg, now = mid_shift_cfg
    P, R = Verdict.PASS, Verdict.REJECT
    this_shift = _boards_of(
        now,
        [50, 40, 30, 20, 10, 5],
        [P, P, P, R, R, R],
        {4: f"{SERIAL_MISMATCH}: code ABC, PLC XYZ", 5: f"{CODE_UNREADABLE}: no code found"},
    )
    earlier_shift = _boards_of(now, [130, 140, 150, 160], [P, R, R, R])
    record_boards(cfg, this_shift + earlier_shift)
    other = cfg.model_copy(deep=True)
    other.station.id = "station-2"
    record_boards(other, _boards_of(now, [15, 12], [R, R]))

    rt = UiRuntime.create(cfg)
    try:
        tiles = rt.window.operator.tiles
        shown = {}
        for _ in range(200):
            pump(ui_app, 0.02)
            shown = {
                k: tiles[k].value.text()
                for k in ("inspected", "passed", "rejected", "serial_mismatch", "code_unreadable")
            }
            if shown["inspected"] != "0":
                break
        assert shown == {
            "inspected": "6",
            "passed": "3",
            "rejected": "3",
            "serial_mismatch": "1",
            "code_unreadable": "1",
        }
        assert tiles["serial_mismatch"].isVisibleTo(rt.window.operator)

        # The boards of this run count on top of them (and the bridge still sends updates after the seeded one).
        rt.controller.start()
        for _ in range(1000):
            pump(ui_app, 0.02)
            if rt.bridge.submitted >= 2:
                break
        rt.controller.stop()
        pump(ui_app, 1.0)
        assert rt.bridge.submitted >= 2
        assert tiles["inspected"].value.text() == str(6 + rt.bridge.submitted)
    finally:
        rt.close()

    # Seeding never counts a board twice: once this run has counted one, the records are not added again.
    bridge = UiBridge()
    bridge.submit(board_results(1)[0])
    assert not bridge.seed_counts(bridge.shift, 6, 3)


def test_the_line_screen_starts_in_chinese_with_the_seeded_counts(ui_station_cfg, ui_app):
    """The seeded counts arrive as an update without a board; the placeholders must still follow the language
    (they stayed English under Chinese tabs: they were translated only before any update)."""
    from ui.session_setup import UiRuntime

    rt = UiRuntime.create(ui_station_cfg, language="zh_CN")
    try:
        op = rt.window.operator
        for _ in range(100):
            pump(ui_app, 0.02)
            if op.last_update is not None:
                break
        assert op.last_update is not None and op.last_update.latest is None
        for text in (op.live_caption.text(), op.live.placeholder):
            assert text and all(not ch.isascii() or ch in " ·…" for ch in text if ch.isalpha()), text
    finally:
        rt.close()
        from ui import i18n

        i18n.set_language("en")
