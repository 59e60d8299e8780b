"""History, paging, yield, Pareto and review figures: same answers on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from inspector.cli import main
from inspector.domain import Verdict
from inspector.storage import (
    Cursor,
    HistoryFilter,
    QueryError,
    RecordError,
    add_missed_defect,
    count,
    defect_pareto,
    history,
    inspection_detail,
    iter_history,
    latest,
    mark_reviewed,
    open_database,
    review_defect,
    review_stats,
    yield_per_hour,
    yield_per_shift,
)

from .conftest import make_result

T0 = datetime(2025, 3, 3, 5, 0, tzinfo=UTC)  # a Monday, 05:00 UTC


def _fill(url, make_recorder, results):
    rec = make_recorder(url, archive="none")
    rec.start()
    for r in results:
        rec.submit(r)
    assert rec.flush(30)
    rec.stop()
    return open_database(url)


@pytest.fixture
def line(db_url, make_recorder):
    """24 boards over 6 hours: every 4th a REJECT with known classes; two recipes; serial prefixes."""
    results = []
    for i in range(24):
        when = T0 + timedelta(minutes=15 * i)
        classes = {0: (2, 2, 5), 1: (1,), 2: (), 3: ()}[i % 4] if i % 4 < 2 else ()
        results.append(
            make_result(
                i,
                classes=classes,
                when=when,
                serial=f"{'AB' if i < 12 else 'CD'}{i:04d}",
                recipe="demo" if i % 2 == 0 else "other",
                image=None,
                reference=None,
            )
        )
    db = _fill(db_url, make_recorder, results)
    yield db, results
    db.close()


def test_filters(line):
    db, res = line
    assert count(db) == 24
    assert count(db, HistoryFilter(verdict="REJECT")) == 12
    assert count(db, HistoryFilter(verdict="pass")) == 12
    assert count(db, HistoryFilter(defect_class="short")) == 6
    assert count(db, HistoryFilter(defect_class=1)) == 6
    assert count(db, HistoryFilter(defect_class="copper", recipe="demo")) == 6
    assert count(db, HistoryFilter(recipe="other")) == 12
    assert count(db, HistoryFilter(serial="AB0003")) == 1
    assert count(db, HistoryFilter(serial="CD*")) == 12
    start, end = T0 + timedelta(hours=1), T0 + timedelta(hours=2)
    got = history(db, HistoryFilter(start=start, end=end)).rows
    assert len(got) == 4 and all(start <= r.created_at < end for r in got)
    assert count(db, HistoryFilter(reviewed=True)) == 0
    rows = history(db, HistoryFilter(serial="AB0000")).rows
    assert rows[0].classes == ["short", "copper"] and rows[0].defect_count == 3
    with pytest.raises(RecordError, match="3 detection\\(s\\) nobody judged"):  # "Board OK" says nothing of them
        mark_reviewed(db, rows[0].id, "qa")
    detail = inspection_detail(db, rows[0].id)
    for k, d in enumerate(detail.defects):
        review_defect(db, d.id, "confirmed", "qa")
        # Reviewed only once every detection is judged: with one of three it stays on the to-do list.
        assert count(db, HistoryFilter(reviewed=True)) == (1 if k == len(detail.defects) - 1 else 0)
    mark_reviewed(db, rows[0].id, "qa")
    assert [r.id for r in history(db, HistoryFilter(reviewed=True)).rows] == [rows[0].id]
    assert count(db, HistoryFilter(reviewed=False)) == 23
    with pytest.raises(QueryError, match="solder"):
        count(db, HistoryFilter(defect_class="solder"))
    with pytest.raises(QueryError, match="time zone"):
        count(db, HistoryFilter(start=datetime(2025, 1, 1)))


def test_latest(line):
    db, res = line
    assert [r.uid for r in latest(db, 5)] == [r.uid for r in reversed(res[-5:])]


def test_keyset_paging_with_equal_timestamps(db_url, make_recorder):
    """Pages never skip or repeat a row, even when many inspections share one timestamp."""
    when = [T0 + timedelta(seconds=i // 7) for i in range(300)]  # ties of 7
    results = [make_result(i, when=w, image=None, reference=None) for i, w in enumerate(when)]
    db = _fill(db_url, make_recorder, results)
    seen, cursor, pages = [], None, 0
    while True:
        page = history(db, limit=32, cursor=cursor)
        seen += [(r.created_at, r.id) for r in page.rows]
        pages += 1
        if page.next_cursor is None:
            break
        cursor = Cursor.decode(page.next_cursor.encode())  # round-trips through the UI's string form
    assert len(seen) == 300 and len(set(seen)) == 300
    assert seen == sorted(seen, reverse=True)
    assert pages == 10
    assert [r.uid for r in iter_history(db, page_size=64)] == [r.uid for r in history(db, limit=300).rows]
    db.close()


def test_yield_per_hour_and_shift(line):
    db, res = line
    hours = yield_per_hour(db)
    assert [h.start for h in hours] == [T0 + timedelta(hours=k) for k in range(6)]
    assert all(h.total == 4 and h.passed == 2 and h.rejected == 2 for h in hours)
    assert hours[0].yield_pct == 50.0
    # UTC shifts 06/14/22: 05:00-06:00 belongs to the previous day's C shift
    shifts = yield_per_shift(db)
    assert [(s.day.isoformat(), s.shift, s.total) for s in shifts] == [("2025-03-02", "C", 4), ("2025-03-03", "A", 20)]
    # Berlin is UTC+1 in March: 06:00 local = 05:00 UTC, shift A gets everything
    berlin = yield_per_shift(db, tz="Europe/Berlin")
    assert [(s.shift, s.total) for s in berlin] == [("A", 24)]
    assert berlin[0].start == T0
    two = yield_per_shift(db, shift_starts=["08:00", "20:00"])
    assert [(s.day.isoformat(), s.shift, s.total) for s in two] == [("2025-03-02", "B", 12), ("2025-03-03", "A", 12)]
    with pytest.raises(QueryError, match="on the hour"):
        yield_per_shift(db, shift_starts=["06:30"])
    assert sum(h.total for h in yield_per_hour(db, HistoryFilter(recipe="demo"))) == 12


def _local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


# (zone, shift starts, boards as (local time, REJECT?), expected (local day, shift, total, rejected))
SHIFT_CHANGES = {
    "half-hour offset (India, UTC+05:30)": (
        "Asia/Kolkata",
        ["06:00", "14:00", "22:00"],
        [
            ((2025, 3, 3, 5, 50), False),
            ((2025, 3, 3, 5, 59, 59), True),
            ((2025, 3, 3, 6, 0), False),
            ((2025, 3, 3, 6, 5), True),
            ((2025, 3, 3, 6, 23), False),
            ((2025, 3, 3, 6, 31), False),
            ((2025, 3, 3, 13, 59), False),
            ((2025, 3, 3, 14, 1), True),
        ],
        [("2025-03-02", "C", 2, 1), ("2025-03-03", "A", 5, 1), ("2025-03-03", "B", 1, 1)],
    ),
    "45-minute offset (Nepal, UTC+05:45)": (
        "Asia/Kathmandu",
        ["06:00", "14:00", "22:00"],
        [
            ((2025, 3, 4, 5, 50), False),
            ((2025, 3, 4, 6, 5), True),
            ((2025, 3, 4, 21, 50), False),
            ((2025, 3, 4, 22, 10), False),
        ],
        [("2025-03-03", "C", 1, 0), ("2025-03-04", "A", 1, 1), ("2025-03-04", "B", 1, 0), ("2025-03-04", "C", 1, 0)],
    ),
    "DST starts (Berlin, 02:00 CET -> 03:00 CEST)": (
        "Europe/Berlin",
        ["06:00", "14:00", "22:00"],
        [
            ((2025, 3, 30, 1, 59), False),
            ((2025, 3, 30, 3, 1), False),
            ((2025, 3, 30, 5, 59), True),
            ((2025, 3, 30, 6, 1), False),
            ((2025, 3, 30, 22, 0), False),
        ],
        [("2025-03-29", "C", 3, 1), ("2025-03-30", "A", 1, 0), ("2025-03-30", "C", 1, 0)],
    ),
    "DST ends (Berlin, 03:00 CEST -> 02:00 CET), shift change at 02:00": (
        "Europe/Berlin",
        ["02:00", "14:00"],
        [
            ((2025, 10, 26, 1, 59), False),
            ((2025, 10, 26, 2, 30), True),
            ((2025, 10, 26, 13, 59), False),
            ((2025, 10, 26, 14, 0), False),
        ],
        [("2025-10-25", "B", 1, 0), ("2025-10-26", "A", 2, 1), ("2025-10-26", "B", 1, 0)],
    ),
    "offset with seconds (Liberia 1971, UTC-00:44:30)": (
        "Africa/Monrovia",
        ["06:00", "18:00"],
        [((1971, 6, 1, 5, 59, 50), True), ((1971, 6, 1, 6, 0, 10), False), ((1971, 6, 1, 6, 0, 20), True)],
        [("1971-05-31", "B", 1, 1), ("1971-06-01", "A", 2, 1)],
    ),
}


def test_yield_per_shift_is_exact_at_shift_changes_in_any_time_zone(db_url, make_recorder):
    """A board counts in the shift whose local start it follows, whatever the zone's offset from UTC.

    Hourly UTC buckets put the first half hour of an India shift (UTC+05:30) into the shift before;
    the same goes for Nepal (+05:45), historic offsets in seconds, and the DST changes of the day.
    """
    results, i = [], 0
    for tz, _starts, boards, _want in SHIFT_CHANGES.values():
        for when, reject in boards:
            results.append(
                make_result(i, classes=(1,) if reject else (), when=_local(tz, *when), image=None, reference=None)
            )
            i += 1
    db = _fill(db_url, make_recorder, results)
    try:
        for case_name, (tz, starts, boards, want) in SHIFT_CHANGES.items():
            times = [_local(tz, *when) for when, _ in boards]
            f = HistoryFilter(start=min(times) - timedelta(hours=1), end=max(times) + timedelta(hours=1))
            got = yield_per_shift(db, f, shift_starts=starts, tz=tz)
            assert [(s.day.isoformat(), s.shift, s.total, s.rejected) for s in got] == want, case_name
            zone = ZoneInfo(tz)
            for s in got:
                # In UTC: an aware time in a repeated hour never equals one of another zone.
                local_start = datetime.combine(s.day, time.fromisoformat(sorted(starts)[ord(s.shift) - ord("A")]), zone)
                assert s.start == local_start.astimezone(UTC), case_name
            starts_utc = {(s.day.isoformat(), s.shift): s.start for s in got}
            if tz == "Europe/Berlin" and "2025-03-30" in {d for d, _ in starts_utc}:
                assert starts_utc["2025-03-30", "A"] == datetime(2025, 3, 30, 4, 0, tzinfo=UTC)  # 06:00 CEST
                assert starts_utc["2025-03-29", "C"] == datetime(2025, 3, 29, 21, 0, tzinfo=UTC)  # 22:00 CET
            if tz == "Europe/Berlin" and "2025-10-26" in {d for d, _ in starts_utc}:
                assert starts_utc["2025-10-26", "A"] == datetime(2025, 10, 26, 0, 0, tzinfo=UTC)  # the first 02:00
    finally:
        db.close()


def test_pareto(line):
    db, res = line
    p = defect_pareto(db)
    assert [(x.class_name, x.count) for x in p] == [("short", 12), ("open", 6), ("copper", 6)]
    assert p[0].cumulative_pct == 50.0 and p[-1].cumulative_pct == 100.0
    assert [(x.class_name, x.count) for x in defect_pareto(db, HistoryFilter(recipe="other"))] == [("open", 6)]


def test_review_figures(line):
    db, res = line
    d0 = inspection_detail(db, res[0].uid)  # REJECT: short, short, copper
    review_defect(db, d0.defects[0].id, "confirmed", "qa")
    review_defect(db, d0.defects[1].id, "false_call", "qa")
    review_defect(db, d0.defects[2].id, "false_call", "qa")
    review_defect(db, d0.defects[2].id, "confirmed", "lead")  # a second opinion supersedes
    d2 = inspection_detail(db, res[2].uid)  # PASS
    add_missed_defect(db, d2.row.id, (10, 10, 40, 30), 3, "qa", "mousebite at U7")
    rs = review_stats(db)
    assert (rs.boards_reviewed, rs.defects_reviewed, rs.confirmed, rs.false_calls) == (2, 3, 2, 1)
    assert rs.false_call_rate == pytest.approx(1 / 3)
    assert rs.missed == 1 and rs.escapes == 1 and rs.escape_rate == 0.5
    d0 = inspection_detail(db, res[0].uid)
    assert [d.review for d in d0.defects] == ["confirmed", "false_call", "confirmed"]
    assert inspection_detail(db, res[2].uid).missed[0].class_name == "mousebite"
    assert [x.count for x in defect_pareto(db, exclude_false_calls=True)] == [11, 6, 6]


def test_history_command_and_csv(line, tmp_path, capsys):
    db, res = line
    out = tmp_path / "h.csv"
    assert main(["history", "--db", db.url, "--verdict", "reject", "--csv", str(out)]) == 0
    assert out.read_bytes().startswith(b"\xef\xbb\xbf")  # Excel reads UTF-8 only after a BOM
    with out.open(encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    assert rows[0][:3] == ["id", "uid", "created_at"] and "verdict" in rows[0]
    assert len(rows) == 1 + 12
    vi = rows[0].index("verdict")
    assert {r[vi] for r in rows[1:]} == {"REJECT"}
    assert {r[1] for r in rows[1:]} == {r.uid for r in res if r.verdict is Verdict.REJECT}
    capsys.readouterr()
    assert main(["history", "--db", db.url, "--class", "open", "--limit", "3", "--stats"]) == 0
    text = capsys.readouterr()
    lines = [ln for ln in text.out.splitlines() if ln.startswith("2025-")]
    assert len(lines) == 3 and all("open" in ln for ln in lines)
    assert "3 of 6 matching" in text.err
    assert "defect Pareto" in text.out and "false-call rate" in text.out
    assert main(["history", "--db", db.url, "--since", "not-a-time"]) == 2
    assert main(["history", "--db", db.url, "--class", "solder"]) == 2


def test_readers_refuse_a_database_that_is_not_there(tmp_path, capsys):
    """A mistyped --db for a reader names the missing file and creates nothing (it used to make an empty
    database, and its folder, and then fail on a missing table)."""
    typo = tmp_path / "no-such-dir" / "inspectoins.db"
    for argv in (["history", "--db", f"sqlite:///{typo}"], ["db", "check", "--db", f"sqlite:///{typo}"]):
        assert main(argv) == 2
        assert f"no database at {typo}" in capsys.readouterr().err
    assert not typo.parent.exists()


def test_shift_tally_counts_one_stations_boards_since_the_shift_start(db_url, make_recorder):
    """What a restarted Line screen starts from: the boards since the shift start, split by reject reason, only this
    station's (a plant database holds every station's)."""
    from inspector.board_serial import CODE_UNREADABLE, SERIAL_MISMATCH
    from inspector.storage.queries import tally_since

    start = T0 + timedelta(hours=1)
    results = [make_result(i, when=start + timedelta(minutes=i)) for i in range(4)]  # 4 PASS
    results += [make_result(10, classes=(1,), when=start)]  # a REJECT at the very start: counted
    mismatch = make_result(11, verdict=Verdict.REJECT, when=start + timedelta(minutes=20))
    mismatch.reason = f"{SERIAL_MISMATCH}: code 'A1', PLC 'B2'"
    unreadable = make_result(12, verdict=Verdict.REJECT, when=start + timedelta(minutes=21))
    unreadable.reason = f"{CODE_UNREADABLE}: no code in the region"
    percent = make_result(13, verdict=Verdict.REJECT, when=start + timedelta(minutes=22))
    percent.reason = "serial%mismatch"  # a LIKE wildcard in a reason is text, not a pattern
    before = [make_result(20 + i, when=start - timedelta(seconds=1 + i)) for i in range(3)]
    db = _fill(db_url, make_recorder, results + [mismatch, unreadable, percent] + before)

    t = tally_since(db, start, station_id=db.station_id)
    assert (t.inspected, t.passed, t.rejected, t.serial_mismatch, t.code_unreadable) == (8, 4, 4, 1, 1)
    assert tally_since(db, start, station_id="another-station").inspected == 0
    assert tally_since(db, start - timedelta(hours=1)).inspected == 11
    with pytest.raises(QueryError, match="no time zone"):
        tally_since(db, start.replace(tzinfo=None))


def test_a_serial_that_looks_like_a_formula_is_exported_as_text(db_url, make_recorder, tmp_path):
    """The serial is what the PLC or the board's code says: `=HYPERLINK(...)` fits in its 40 characters, and a
    spreadsheet opening the CSV ran it. Text cells starting with = + - @ get a leading quote."""
    evil = '=HYPERLINK("http://evil.example/x","click")'
    db = _fill(db_url, make_recorder, [make_result(1, serial=evil), make_result(2, serial="-5+A1"), make_result(3)])
    out = tmp_path / "h.csv"
    assert main(["history", "--db", db.url, "--csv", str(out)]) == 0
    with out.open(encoding="utf-8-sig") as f:
        rows = list(csv.DictReader(f))
    serials = {r["board_serial"] for r in rows}
    assert serials == {"'" + evil, "'-5+A1", "SN000003"}, serials
    assert all(not v.startswith(("=", "+", "-", "@")) for r in rows for v in r.values())


def test_a_class_false_call_rate_and_the_pareto_follow_the_reviews(db_url, make_recorder):
    """Board A: a short (confirmed) and an open (confirmed); board B: a short (false call); board C: PASS with a missed
    mousebite drawn. `--class short` counted the open's review (33 % instead of 50 %); the Pareto counted the false
    call and never showed the escape's class."""
    from inspector.storage.queries import defect_pareto

    a = make_result(1, classes=(2, 1), when=T0)
    b = make_result(2, classes=(2,), when=T0 + timedelta(minutes=1))
    c = make_result(3, when=T0 + timedelta(minutes=2))
    db = _fill(db_url, make_recorder, [a, b, c])
    for r, verdicts in ((a, ("confirmed", "confirmed")), (b, ("false_call",))):
        for d, v in zip(inspection_detail(db, r.uid).defects, verdicts):
            review_defect(db, d.id, v, "qe")
    add_missed_defect(db, inspection_detail(db, c.uid).row.id, (5, 5, 20, 20), 3, "qe")
    shorts = review_stats(db, HistoryFilter(defect_class="short"))
    assert (shorts.confirmed, shorts.false_calls, shorts.missed) == (1, 1, 0)
    assert shorts.false_call_rate == 0.5
    everything = review_stats(db)
    assert (everything.confirmed, everything.false_calls, everything.missed, everything.escapes) == (2, 1, 1, 1)
    raw = {p.class_name: p.count for p in defect_pareto(db)}
    truth = {p.class_name: p.count for p in defect_pareto(db, reviewed_truth=True)}
    assert raw == {"short": 2, "open": 1}
    assert truth == {"short": 1, "open": 1, "mousebite": 1}
