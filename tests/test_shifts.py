"""One shift plan, one set of rules: the station file, the UI counters and yield per shift agree."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from inspector.config import ConfigError, parse_config
from inspector.shifts import ShiftPlan


@pytest.mark.parametrize(
    "starts, message",
    [
        (["6"], "shift start '6' is not HH:MM"),
        (["24:00"], "shift start '24:00' is not a time of day"),
        (["06:00", "06:00"], "shift start '06:00' is listed twice"),
        ([], "at least one"),
    ],
)
def test_every_reader_refuses_the_same_bad_plans(starts, message):
    with pytest.raises(ValueError, match=message):
        ShiftPlan.parse(starts)
    from ui import bridge  # the UI counters use the same parser

    try:
        with pytest.raises(ValueError, match=message):
            bridge.configure_shifts(starts, None)
    finally:
        bridge.configure_shifts(["06:00", "14:00", "22:00"], None)
    if starts:
        with pytest.raises(ConfigError, match=message):
            parse_config({"storage": {"shift_starts": starts}})


def test_whole_hours_only_where_hourly_buckets_need_them():
    plan = ShiftPlan.parse(["07:30", "19:30"], "Europe/Berlin")  # fine for the UI's counters
    with pytest.raises(ValueError, match="'07:30': shifts must start on the hour"):
        plan.require_whole_hours()
    with pytest.raises(ConfigError, match="shifts must start on the hour"):
        parse_config({"storage": {"shift_starts": ["07:30"]}})


def test_night_shift_counts_on_its_start_date():
    plan = ShiftPlan.parse(["22:00", "06:00", "14:00"], "UTC")
    assert plan.starts[0].hour == 6 and plan.names == ["A", "B", "C"]
    assert plan.shift_of(datetime(2026, 3, 3, 2, 0, tzinfo=UTC)) == (2, date(2026, 3, 2))
    assert plan.start_of(datetime(2026, 3, 3, 2, 0, tzinfo=UTC)) == datetime(2026, 3, 2, 22, 0, tzinfo=ZoneInfo("UTC"))
    assert plan.shift_of(datetime(2026, 3, 3, 6, 0, tzinfo=UTC)) == (0, date(2026, 3, 3))
