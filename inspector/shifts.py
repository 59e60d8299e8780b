"""The plant's shift plan (`storage.shift_starts`, `storage.timezone`), parsed by one set of rules.

Why one module: the UI's shift counters, yield per shift in the history and the config check each
parsed the plan on their own, with different rules (one accepted 06:30, another refused it). Here a
plan is HH:MM starts, at least one, none twice, in a known IANA zone; yield per shift additionally
needs starts on the hour (`require_whole_hours`), as does the station file (it feeds that report).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

DEFAULT_STARTS = ("06:00", "14:00", "22:00")


def parse_starts(starts: list[str] | tuple[str, ...]) -> tuple[time, ...]:
    """HH:MM strings -> sorted times; ValueError naming the first bad start."""
    seen: list[time] = []
    for s in starts:
        if not isinstance(s, str) or not re.fullmatch(r"\d{2}:\d{2}", s):
            raise ValueError(f"shift start {s!r} is not HH:MM")
        try:
            t = time.fromisoformat(s)
        except ValueError:
            raise ValueError(f"shift start {s!r} is not a time of day (HH:MM, 00:00..23:59)") from None
        if t in seen:
            raise ValueError(f"shift start {s!r} is listed twice")
        seen.append(t)
    if not seen:
        raise ValueError("shift starts: at least one is needed")
    return tuple(sorted(seen))


def parse_zone(tz: str | None) -> ZoneInfo | None:
    """An IANA zone, or None (the system's local time); ValueError naming an unknown one."""
    if not tz:
        return None
    try:
        return ZoneInfo(tz)
    except Exception:
        raise ValueError(f"unknown time zone {tz!r}") from None


@dataclass(frozen=True)
class ShiftPlan:
    starts: tuple[time, ...]
    """Shift start times, sorted; shift names are A, B, C... in this order."""
    zone: ZoneInfo | None = None
    """The plant's zone; None: the system's local time (naive datetimes)."""

    @classmethod
    def parse(cls, starts: list[str] | tuple[str, ...], tz: str | None = None) -> ShiftPlan:
        return cls(parse_starts(starts), parse_zone(tz))

    def require_whole_hours(self) -> ShiftPlan:
        """This plan, or ValueError when a start is not on the hour (the rule yield per shift is written for)."""
        for t in self.starts:
            if t.minute or t.second:
                raise ValueError(f"shift start {t.strftime('%H:%M')!r}: shifts must start on the hour")
        return self

    @property
    def names(self) -> list[str]:
        return [chr(ord("A") + i) for i in range(len(self.starts))]

    def shift_of(self, local: datetime) -> tuple[int, date]:
        """(index of the shift, the date it started on) for a time already in the plan's zone; a shift
        that runs past midnight started the day before."""
        clock = local.time().replace(tzinfo=None)
        past = [i for i, t in enumerate(self.starts) if t <= clock]
        if past:
            return past[-1], local.date()
        return len(self.starts) - 1, local.date() - timedelta(days=1)

    def start_of(self, now: datetime | None = None) -> datetime:
        """Start of the shift `now` belongs to: in the plan's zone when it has one, else naive local time."""
        zone = self.zone
        if now is None:
            now = datetime.now(zone) if zone is not None else datetime.now()
        elif zone is not None:
            now = now.astimezone(zone)  # a naive `now` is taken as the system's local time
        k, day = self.shift_of(now)
        start = datetime.combine(day, self.starts[k])
        return start.replace(tzinfo=zone) if zone is not None else start


DEFAULT_PLAN = ShiftPlan.parse(DEFAULT_STARTS)
