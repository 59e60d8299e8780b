"""The GUI thread only draws: a slow database query runs on the worker while the event loop keeps turning."""

from __future__ import annotations

import time

from PySide6.QtCore import QTimer

from ui.records import Records


class SlowRecords(Records):
    """The real records database, with each history page 300 ms slower (a big, cold database)."""

    def history(self, f, *, limit=50, cursor=None):
        time.sleep(0.3)
        return super().history(f, limit=limit, cursor=cursor)


def test_slow_history_query_does_not_block_the_event_loop(qtbot, ui_app, filled_records):
    from ui.history_screen import HistoryScreen

    records, results = filled_records
    slow = SlowRecords(records.db, records.archive_dir)
    scr = HistoryScreen(slow, lambda: ["demo", "board-b"])
    qtbot.addWidget(scr)
    scr.period.setCurrentIndex(scr.period.findData("all"))

    beats: list[float] = []
    timer = QTimer()
    timer.setInterval(10)
    timer.timeout.connect(lambda: beats.append(time.monotonic()))
    timer.start()
    qtbot.waitUntil(lambda: len(beats) >= 3, timeout=5000)
    t0 = time.monotonic()
    scr.enter()
    assert scr.loading and scr.status.text() == "Loading…"  # shown at once, the page is not there yet
    qtbot.waitUntil(lambda: not scr.loading, timeout=10000)
    took = time.monotonic() - t0
    timer.stop()

    assert took >= 0.3 and scr.total == 30 and len(scr.rows) == 30  # the slow query really ran
    during = [b for b in beats if b >= t0]
    gaps = [b - a for a, b in zip(during, during[1:])]
    print(f"history load {took * 1000:.0f} ms; heartbeat: {len(during)} beats, max gap {max(gaps) * 1000:.1f} ms")
    # The heartbeat kept ticking through the 300 ms query: a blocked GUI thread would give 0-1 beats.
    # (No bound on the gap itself: timing on a shared CI machine is not a test; the figure is printed.)
    assert len(during) >= 10


def test_newer_request_supersedes_an_older_one(qtbot, ui_app, filled_records):
    from ui.history_screen import HistoryScreen

    records, results = filled_records
    scr = HistoryScreen(SlowRecords(records.db, records.archive_dir), lambda: ["demo", "board-b"])
    qtbot.addWidget(scr)
    scr.period.setCurrentIndex(scr.period.findData("all"))
    filled: list[set] = []
    orig = scr._fill
    scr._fill = lambda: (orig(), filled.append({r.verdict for r in scr.rows}))
    scr.verdict.setCurrentIndex(scr.verdict.findData("REJECT"))
    scr.refresh()
    scr.verdict.setCurrentIndex(scr.verdict.findData("PASS"))
    scr.refresh()  # asked while the REJECT page is still being queried
    qtbot.waitUntil(lambda: not scr.loading, timeout=10000)
    scr.worker.wait_idle()
    qtbot.wait(50)
    assert filled == [{"PASS"}]  # the older (REJECT) page was dropped, never drawn
    assert scr.total == sum(r.passed for r in results)
