"""Shift counters follow the plant's plan (storage.shift_starts / storage.timezone), not fixed hours."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from ui import bridge


@pytest.fixture
def plan():
    yield bridge.configure_shifts
    bridge.configure_shifts(["06:00", "14:00", "22:00"], None)


def test_shift_start_uses_the_configured_plan_and_zone(plan):
    plan(["07:30", "19:30"], "Europe/Berlin")
    berlin = ZoneInfo("Europe/Berlin")
    # 10:00 UTC is 11:00 in Berlin (winter): the 07:30 shift.
    s = bridge.shift_start(datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    assert s == datetime(2026, 11, 29, 7, 30, tzinfo=berlin)
    # 05:00 Berlin is before the first start: the night shift that began 19:30 the day before.
    s = bridge.shift_start(datetime(2026, 11, 29, 5, 0, tzinfo=berlin))
    assert s == datetime(2026, 11, 28, 19, 30, tzinfo=berlin)
    # Exactly at a start belongs to the new shift.
    assert bridge.shift_start(datetime(2026, 11, 29, 19, 30, tzinfo=berlin)).hour == 19


def test_bad_shift_plans_are_named(plan):
    with pytest.raises(ValueError, match="25:00"):
        plan(["25:00"], None)
    with pytest.raises(ValueError, match="Mars/Olympus"):
        plan(["06:00"], "Mars/Olympus")
    with pytest.raises(ValueError, match="at least one"):
        plan([], None)


def test_counters_reset_when_the_configured_shift_changes(plan, ui_app):
    from inspector.domain import InspectionResult, Verdict

    plan(["00:00"], "UTC")  # one shift a day
    b = bridge.UiBridge()
    b.submit(InspectionResult(1, "demo", Verdict.PASS, [], {"total": 5.0}, "test"))
    assert b._counts(0.0).inspected == 1
    b._shift = datetime(2000, 1, 1, tzinfo=UTC)  # as if the counters were from an older shift
    b._roll_shift()
    assert b._counts(0.0).inspected == 0
    assert b._shift == bridge.shift_start()
