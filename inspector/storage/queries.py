"""Read side: history with filters and keyset paging, yield, Pareto, review statistics.

Every query is plain SQLAlchemy Core/ORM that runs unchanged on SQLite and PostgreSQL; the one
dialect differences (truncating a time to the UTC hour or quarter-hour) are isolated in `_hour` and
`_quarter`.
Paging is keyset ("seek") paging on (created_at, id), newest first: page 1000 costs the same as
page 1 because the index `ix_inspections_created` is entered at the cursor instead of skipping
OFFSET rows. Times in and out are aware UTC datetimes; shifts are computed in the plant's time zone.
"""

from __future__ import annotations

import base64
import csv
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from typing import IO, Any
from zoneinfo import ZoneInfo

from sqlalchemy import Integer, Select, and_, case, exists, func, or_, select

from ..board_serial import CODE_UNREADABLE, SERIAL_MISMATCH
from ..domain import CLASS_NAMES
from ..shifts import ShiftPlan
from .db import Database
from .models import Defect, Inspection, Review


class QueryError(ValueError):
    """A filter value that cannot be used; the message names it."""


@dataclass(frozen=True)
class HistoryFilter:
    start: datetime | None = None
    """Inclusive lower bound (aware)."""
    end: datetime | None = None
    """Exclusive upper bound (aware)."""
    verdict: str | None = None
    """'PASS' or 'REJECT'."""
    defect_class: int | str | None = None
    """Boards with at least one defect of this class (1-based id or name)."""
    serial: str | None = None
    """Exact board serial, or a prefix when it ends with '*'."""
    recipe: str | None = None
    reviewed: bool | None = None
    """True: reviewed boards only; False: unreviewed only; None: both."""
    station_id: str | None = None


@dataclass(frozen=True, slots=True)
class Cursor:
    created_at: datetime
    id: int

    def encode(self) -> str:
        """Opaque string form (for URLs or a UI's 'next' button)."""
        return base64.urlsafe_b64encode(f"{self.created_at.isoformat()}|{self.id}".encode()).decode()

    @classmethod
    def decode(cls, s: str) -> Cursor:
        try:
            ts, i = base64.urlsafe_b64decode(s.encode()).decode().split("|")
            return cls(datetime.fromisoformat(ts), int(i))
        except (ValueError, UnicodeDecodeError):
            raise QueryError(f"invalid page cursor {s!r}") from None


@dataclass(slots=True)
class InspectionRow:
    id: int
    uid: str
    created_at: datetime
    station_id: str
    recipe: str
    model_id: str
    board_serial: str | None
    part_seq: int | None
    verdict: str
    reason: str | None
    defect_count: int
    cycle_ms: float
    image_path: str | None
    thumb_path: str | None
    reviewed: bool
    classes: list[str] = field(default_factory=list)
    """Distinct defect class names on this board."""

    CSV_FIELDS = (
        "id", "uid", "created_at", "station_id", "recipe", "model_id", "board_serial", "part_seq",
        "verdict", "reason", "defect_count", "classes", "cycle_ms", "reviewed", "image_path",
    )  # fmt: skip

    def csv_row(self) -> list[Any]:
        return [
            self.id, self.uid, self.created_at.isoformat(), self.station_id, self.recipe, self.model_id,
            self.board_serial or "", "" if self.part_seq is None else self.part_seq, self.verdict,
            self.reason or "", self.defect_count, ";".join(self.classes), f"{self.cycle_ms:.1f}",
            int(self.reviewed), self.image_path or "",
        ]  # fmt: skip


@dataclass(slots=True)
class Page:
    rows: list[InspectionRow]
    next_cursor: Cursor | None
    """Pass to `history(..., cursor=)` for the next (older) page; None on the last page."""


@dataclass(slots=True)
class DefectView:
    id: int
    idx: int
    class_id: int
    class_name: str
    score: float
    box: tuple[float, float, float, float]
    crop_path: str | None
    review: str | None
    """'confirmed', 'false_call' or None (not reviewed)."""
    reviewer: str | None


@dataclass(slots=True)
class MissedView:
    review_id: int
    class_id: int
    class_name: str
    box: tuple[float, float, float, float]
    reviewer: str
    reviewed_at: datetime
    comment: str


@dataclass(slots=True)
class InspectionDetail:
    row: InspectionRow
    defects: list[DefectView]
    missed: list[MissedView]
    timings_ms: dict[str, float]
    frame_meta: dict[str, Any]
    reference_path: str | None
    archive_error: str | None


_COLS = (
    Inspection.id,
    Inspection.uid,
    Inspection.created_at,
    Inspection.station_id,
    Inspection.recipe_name,
    Inspection.model_id,
    Inspection.board_serial,
    Inspection.part_seq,
    Inspection.verdict,
    Inspection.reason,
    Inspection.defect_count,
    Inspection.cycle_ms,
    Inspection.image_path,
    Inspection.thumb_path,
    Inspection.reviewed,
)


def _class_id(c: int | str) -> int:
    if isinstance(c, int) or (isinstance(c, str) and c.isdigit()):
        cid = int(c)
        if not 1 <= cid <= len(CLASS_NAMES):
            raise QueryError(f"defect class {c} is not one of 1..{len(CLASS_NAMES)}")
        return cid
    if c not in CLASS_NAMES:
        raise QueryError(f"defect class {c!r} is not one of {', '.join(CLASS_NAMES)}")
    return CLASS_NAMES.index(c) + 1


def _aware(t: datetime, name: str) -> datetime:
    if t.tzinfo is None:
        raise QueryError(f"{name} {t.isoformat()} has no time zone; pass an aware datetime")
    return t


def apply_filter(q: Select, f: HistoryFilter | None) -> Select:
    if f is None:
        return q
    if f.start is not None:
        q = q.where(Inspection.created_at >= _aware(f.start, "start"))
    if f.end is not None:
        q = q.where(Inspection.created_at < _aware(f.end, "end"))
    if f.verdict is not None:
        v = f.verdict.upper()
        if v not in ("PASS", "REJECT"):
            raise QueryError(f"verdict {f.verdict!r} is not PASS or REJECT")
        q = q.where(Inspection.verdict == v)
    if f.defect_class is not None:
        cid = _class_id(f.defect_class)
        q = q.where(exists().where(and_(Defect.inspection_id == Inspection.id, Defect.class_id == cid)))
    if f.serial:
        if f.serial.endswith("*"):
            q = q.where(Inspection.board_serial.startswith(f.serial[:-1], autoescape=True))
        else:
            q = q.where(Inspection.board_serial == f.serial)
    if f.recipe:
        q = q.where(Inspection.recipe_name == f.recipe)
    if f.reviewed is not None:
        q = q.where(Inspection.reviewed.is_(f.reviewed))
    if f.station_id:
        q = q.where(Inspection.station_id == f.station_id)
    return q


def _rows(s, result) -> list[InspectionRow]:
    rows = [InspectionRow(*r) for r in result]
    ids = [r.id for r in rows if r.defect_count]
    if ids:
        by_id: dict[int, set[int]] = {}
        for iid, cid in s.execute(
            select(Defect.inspection_id, Defect.class_id).where(Defect.inspection_id.in_(ids)).distinct()
        ):
            by_id.setdefault(iid, set()).add(cid)
        for r in rows:
            r.classes = [
                CLASS_NAMES[c - 1] if 1 <= c <= len(CLASS_NAMES) else str(c) for c in sorted(by_id.get(r.id, ()))
            ]
    return rows


def history(db: Database, f: HistoryFilter | None = None, *, limit: int = 100, cursor: Cursor | None = None) -> Page:
    """One page of inspections, newest first. Fast at any depth (keyset on created_at, id)."""
    if not 1 <= limit <= 10_000:
        raise QueryError(f"limit {limit} is not in 1..10000")
    q = apply_filter(select(*_COLS), f)
    if cursor is not None:
        # `created_at <= c` enters the index range; the OR breaks ties on equal timestamps by id.
        q = q.where(
            Inspection.created_at <= cursor.created_at,
            or_(Inspection.created_at < cursor.created_at, Inspection.id < cursor.id),
        )
    q = q.order_by(Inspection.created_at.desc(), Inspection.id.desc()).limit(limit + 1)
    with db.session() as s:
        rows = _rows(s, s.execute(q))
    more = len(rows) > limit
    rows = rows[:limit]
    return Page(rows, Cursor(rows[-1].created_at, rows[-1].id) if more else None)


def iter_history(db: Database, f: HistoryFilter | None = None, *, page_size: int = 2000) -> Iterator[InspectionRow]:
    """Every matching inspection, newest first, fetched page by page (CSV export of large ranges)."""
    cursor = None
    while True:
        page = history(db, f, limit=page_size, cursor=cursor)
        yield from page.rows
        if page.next_cursor is None:
            return
        cursor = page.next_cursor


def count(db: Database, f: HistoryFilter | None = None) -> int:
    with db.session() as s:
        return int(s.scalar(apply_filter(select(func.count(Inspection.id)), f)) or 0)


@dataclass(frozen=True, slots=True)
class Tally:
    """What the Line screen counts for a shift, read back from the records."""

    inspected: int = 0
    passed: int = 0
    rejected: int = 0
    serial_mismatch: int = 0
    code_unreadable: int = 0


def tally_since(db: Database, since: datetime, *, station_id: str | None = None) -> Tally:
    """Boards recorded since `since` (one station's, or all): what a restarted UI shows for the running shift.

    The Line screen counted only the boards it saw itself, so a UI restarted mid-shift showed 0 inspected while
    the records held hundreds. Rejections are split by the reason prefixes the station writes.
    """
    f = HistoryFilter(start=_aware(since, "since"), station_id=station_id)
    q = apply_filter(
        select(
            func.count(Inspection.id),
            func.sum(case((Inspection.verdict == "PASS", 1), else_=0)),
            func.sum(case((Inspection.reason.startswith(SERIAL_MISMATCH, autoescape=True), 1), else_=0)),
            func.sum(case((Inspection.reason.startswith(CODE_UNREADABLE, autoescape=True), 1), else_=0)),
        ),
        f,
    )
    with db.session() as s:
        n, passed, mismatch, unreadable = s.execute(q).one()
    n, passed = int(n or 0), int(passed or 0)
    return Tally(n, passed, n - passed, int(mismatch or 0), int(unreadable or 0))


def latest(db: Database, n: int = 20, *, station_id: str | None = None) -> list[InspectionRow]:
    """The newest `n` inspections (the operator's strip), newest first."""
    return history(db, HistoryFilter(station_id=station_id), limit=max(1, n)).rows


def inspection_detail(db: Database, key: int | str) -> InspectionDetail | None:
    """One inspection by row id or uid, with its defects, their review verdicts and missed defects."""
    with db.session() as s:
        cond = Inspection.id == key if isinstance(key, int) else Inspection.uid == key
        found = s.execute(select(*_COLS, Inspection.timings_ms, Inspection.frame_meta,
                                 Inspection.reference_path, Inspection.archive_error).where(cond)).first()  # fmt: skip
        if found is None:
            return None
        row = _rows(s, [tuple(found)[: len(_COLS)]])[0]
        reviews = list(s.scalars(select(Review).where(Review.inspection_id == row.id).order_by(Review.id)))
        by_defect = {r.defect_id: r for r in reviews if r.defect_id is not None}
        defects = []
        for d in s.scalars(select(Defect).where(Defect.inspection_id == row.id).order_by(Defect.idx)):
            r = by_defect.get(d.id)
            defects.append(
                DefectView(
                    d.id,
                    d.idx,
                    d.class_id,
                    _name(d.class_id),
                    d.score,
                    (d.x1, d.y1, d.x2, d.y2),
                    d.crop_path,
                    r.verdict if r else None,
                    r.reviewer if r else None,
                )  # fmt: skip
            )
        missed = [
            MissedView(
                r.id,
                r.class_id or 0,
                _name(r.class_id or 0),
                (r.x1, r.y1, r.x2, r.y2),
                r.reviewer,
                r.reviewed_at,
                r.comment,
            )  # fmt: skip
            for r in reviews
            if r.verdict == "missed"
        ]
        return InspectionDetail(row, defects, missed, dict(found.timings_ms or {}), dict(found.frame_meta or {}),
                                found.reference_path, found.archive_error)  # fmt: skip


def _name(cid: int) -> str:
    return CLASS_NAMES[cid - 1] if 1 <= cid <= len(CLASS_NAMES) else f"class {cid}"


# ---------------------------------------------------------------- statistics
@dataclass(slots=True)
class YieldBucket:
    start: datetime
    total: int
    passed: int
    rejected: int

    @property
    def yield_pct(self) -> float:
        return 100.0 * self.passed / self.total if self.total else 0.0


@dataclass(slots=True)
class ShiftYield(YieldBucket):
    shift: str = ""
    """Shift name: 'A', 'B', 'C'... in the order of `shift_starts`."""
    day: date | None = None
    """Local date the shift started on."""


def _hour(db: Database):
    if db.dialect == "postgresql":
        return func.date_trunc("hour", Inspection.created_at)
    return func.strftime("%Y-%m-%d %H:00:00", Inspection.created_at)


def _as_utc(v: Any) -> datetime:
    if isinstance(v, str):
        v = datetime.fromisoformat(v)
    return v.replace(tzinfo=UTC) if v.tzinfo is None else v.astimezone(UTC)


def yield_per_hour(db: Database, f: HistoryFilter | None = None) -> list[YieldBucket]:
    """Inspected / passed / rejected per UTC hour, oldest first (hours with no boards are absent)."""
    hour = _hour(db).label("hour")
    passed = func.sum(case((Inspection.verdict == "PASS", 1), else_=0))
    q = apply_filter(select(hour, func.count(Inspection.id), passed), f).group_by(hour).order_by(hour)
    with db.session() as s:
        return [YieldBucket(_as_utc(h), int(n), int(p or 0), int(n) - int(p or 0)) for h, n, p in s.execute(q)]


QUARTER_S = 900
"""Bucket width for yield per shift: every UTC offset in use today is a multiple of 15 minutes."""


def _quarter(db: Database):
    """The UTC quarter-hour of `created_at`, as whole quarter-hours since 1970-01-01 00:00 (stored naive UTC)."""
    if db.dialect == "postgresql":
        # extract(epoch) of a timestamp without time zone counts its nominal seconds: UTC here.
        return func.floor(func.extract("epoch", Inspection.created_at) / QUARTER_S)
    return func.cast(func.strftime("%s", Inspection.created_at), Integer).op("/")(QUARTER_S)


def _yield_rows(db: Database, f: HistoryFilter | None, start: datetime, end: datetime) -> tuple[int, int]:
    """(total, passed) of the boards that match `f` in [start, end)."""
    passed = func.sum(case((Inspection.verdict == "PASS", 1), else_=0))
    q = apply_filter(select(func.count(Inspection.id), passed), f).where(
        Inspection.created_at >= start,
        Inspection.created_at < end,
    )
    with db.session() as s:
        n, p = s.execute(q).one()
    return int(n or 0), int(p or 0)


def yield_per_shift(
    db: Database,
    f: HistoryFilter | None = None,
    *,
    shift_starts: list[str] = ("06:00", "14:00", "22:00"),  # type: ignore[assignment]
    tz: str = "UTC",
) -> list[ShiftYield]:
    """Yield per shift (local time zone `tz`); a shift that runs past midnight counts on its start date.

    The database counts boards per UTC quarter-hour, not per UTC hour: a zone half an hour or 45
    minutes off UTC (India, Nepal, Newfoundland) changes shift in the middle of a UTC hour, and an
    hourly bucket would give its first boards to the shift before. Each quarter-hour is placed by
    the local time of its start, so DST days come out right too. A quarter-hour a shift change falls
    inside (a zone with an offset in odd minutes or seconds, as some were before the 1970s) is split
    at that instant with one more count. Shift starts must be whole hours in `tz` (the station
    file's rule, `ShiftPlan.require_whole_hours`).
    """
    try:
        plan = ShiftPlan.parse(list(shift_starts), tz).require_whole_hours()
    except ValueError as exc:
        raise QueryError(str(exc)) from None
    zone = plan.zone or ZoneInfo("UTC")
    starts, names = plan.starts, plan.names
    quarter = _quarter(db).label("quarter")
    passed = func.sum(case((Inspection.verdict == "PASS", 1), else_=0))
    q = apply_filter(select(quarter, func.count(Inspection.id), passed), f).group_by(quarter).order_by(quarter)
    with db.session() as s:
        buckets = [(int(k), int(n), int(p or 0)) for k, n, p in s.execute(q)]
    out: dict[tuple[date, int], ShiftYield] = {}

    def shift_start(key: tuple[date, int]) -> datetime:
        day, k = key
        return datetime.combine(day, starts[k], zone).astimezone(UTC)

    def add(key: tuple[date, int], n: int, p: int) -> None:
        if key not in out:
            out[key] = ShiftYield(shift_start(key), 0, 0, 0, shift=names[key[1]], day=key[0])
        y = out[key]
        y.total += n
        y.passed += p
        y.rejected += n - p

    for k, n, p in buckets:
        begin = datetime.fromtimestamp(k * QUARTER_S, UTC)
        end = begin + timedelta(seconds=QUARTER_S)
        first = _shift_key(plan, begin.astimezone(zone))
        last = _shift_key(plan, (end - timedelta(microseconds=1)).astimezone(zone))
        if first == last:
            add(first, n, p)
            continue
        # A shift change inside this quarter-hour (shifts are at least an hour long: one change at most).
        change = min(max(shift_start(last), begin), end)
        n2, p2 = _yield_rows(db, f, change, end)
        add(first, n - n2, p - p2)
        if n2:
            add(last, n2, p2)
    return [out[k] for k in sorted(out)]


def _shift_key(plan: ShiftPlan, local: datetime) -> tuple[date, int]:
    k, day = plan.shift_of(local)
    return day, k


@dataclass(slots=True)
class ParetoItem:
    class_id: int
    class_name: str
    count: int
    cumulative_pct: float


def defect_pareto(
    db: Database, f: HistoryFilter | None = None, *, exclude_false_calls: bool = False, reviewed_truth: bool = False
) -> list[ParetoItem]:
    """Defects per class, most frequent first, with the cumulative share (the Pareto line).

    `reviewed_truth`: what the reviews say the boards had: detections marked false calls left out, defects the
    reviewers drew as missed added. The quality engineer's Pareto (charts, `history --stats`) is this one: counting
    raw detections, it ranked classes by the detector's false calls and never showed an escape's class."""
    f_boards = replace(f, defect_class=None) if f else None
    q = select(Defect.class_id, func.count(Defect.id)).join(Inspection, Inspection.id == Defect.inspection_id)
    q = apply_filter(q, f_boards)
    if exclude_false_calls or reviewed_truth:
        q = q.where(~exists().where(and_(Review.defect_id == Defect.id, Review.verdict == "false_call")))
    q = q.group_by(Defect.class_id)
    counts: dict[int, int] = {}
    with db.session() as s:
        for c, n in s.execute(q):
            counts[int(c)] = counts.get(int(c), 0) + int(n)
        if reviewed_truth:
            mq = apply_filter(
                select(Review.class_id, func.count(Review.id))
                .join(Inspection, Inspection.id == Review.inspection_id)
                .where(Review.verdict == "missed", Review.class_id.isnot(None)),
                f_boards,
            ).group_by(Review.class_id)
            for c, n in s.execute(mq):
                counts[int(c)] = counts.get(int(c), 0) + int(n)
    ranked = sorted(counts.items(), key=lambda cn: (-cn[1], cn[0]))
    total = sum(n for _, n in ranked) or 1
    out, run = [], 0
    for c, n in ranked:
        run += n
        out.append(ParetoItem(c, _name(c), n, 100.0 * run / total))
    return out


@dataclass(slots=True)
class ReviewStats:
    boards_reviewed: int
    defects_reviewed: int
    confirmed: int
    false_calls: int
    missed: int
    """Defects the detector missed, drawn by reviewers."""
    escapes: int
    """Boards the station PASSED on which a reviewer found a missed defect (a defective board shipped)."""

    @property
    def false_call_rate(self) -> float:
        """False calls / reviewed detections (0..1)."""
        return self.false_calls / self.defects_reviewed if self.defects_reviewed else 0.0

    @property
    def escape_rate(self) -> float:
        """Escapes / reviewed boards (0..1)."""
        return self.escapes / self.boards_reviewed if self.boards_reviewed else 0.0


def review_stats(db: Database, f: HistoryFilter | None = None) -> ReviewStats:
    """False-call rate and escapes over the inspections that match `f`."""
    base = replace(f, reviewed=True) if f else HistoryFilter(reviewed=True)
    rq = select(
        func.sum(case((Review.verdict == "confirmed", 1), else_=0)),
        func.sum(case((Review.verdict == "false_call", 1), else_=0)),
        func.sum(case((Review.verdict == "missed", 1), else_=0)),
    ).join(Inspection, Inspection.id == Review.inspection_id)
    if f is not None and f.defect_class is not None:
        # The class's own judgements (its detections judged, its missed defects drawn): on a board with a short and an
        # open, `--class short` counted the open's review too (a 50 % false-call rate of shorts read 33 %).
        cid = _class_id(f.defect_class)
        rq = rq.outerjoin(Defect, Defect.id == Review.defect_id).where(
            or_(Defect.class_id == cid, and_(Review.verdict == "missed", Review.class_id == cid))
        )
        rq = apply_filter(rq, replace(base, defect_class=None))  # the board filter's own class test would correlate
    else:
        rq = apply_filter(rq, base)
    eq = apply_filter(
        select(func.count(Inspection.id)).where(
            Inspection.verdict == "PASS",
            exists().where(and_(Review.inspection_id == Inspection.id, Review.verdict == "missed")),
        ),
        base,
    )
    with db.session() as s:
        c, fc, m = (int(v or 0) for v in s.execute(rq).one())
        boards = int(s.scalar(apply_filter(select(func.count(Inspection.id)), base)) or 0)
        esc = int(s.scalar(eq) or 0)
    return ReviewStats(boards, c + fc, c, fc, m, esc)


#: Text that a spreadsheet would run as a formula (OWASP "CSV injection"): a board serial is whatever the PLC or the
#: code on the board says, and `=HYPERLINK("http://...")` fits in its 40 characters.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

#: How inspection CSV files are written for people (Excel): a UTF-8 byte-order mark, without which Excel shows a
#: Chinese recipe name or reason as mojibake. Streams (stdout) get none.
CSV_FILE_ENCODING = "utf-8-sig"


def spreadsheet_safe(value: Any) -> Any:
    """A text cell that starts like a formula, prefixed with `'` (shown as typed, never run); other values as they are."""
    return f"'{value}" if isinstance(value, str) and value.startswith(_FORMULA_START) else value


def write_csv(rows: Iterator[InspectionRow] | list[InspectionRow], out: IO[str]) -> int:
    """Header line, then one line per inspection. Returns the number of rows written. Text cells are
    `spreadsheet_safe`: the file goes to a quality engineer's spreadsheet."""
    w = csv.writer(out)
    w.writerow(InspectionRow.CSV_FIELDS)
    n = 0
    for r in rows:
        w.writerow([spreadsheet_safe(v) for v in r.csv_row()])
        n += 1
    return n
