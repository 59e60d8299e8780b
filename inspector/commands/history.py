"""`pcb-inspector history [--db URL] [filters] [--csv FILE] [--stats]`: trace boards from the records.

Prints one line per inspection (newest first), or writes them all to a CSV file with a header line
and one row per inspection. `--stats` adds yield per hour and per shift, the defect Pareto and the
review figures (false-call rate, escapes) for the same filter.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("history", help="list recorded inspections, with filters, statistics and CSV export")
    p.add_argument("--config", help="station.toml (for the database URL, station id, shifts)")
    p.add_argument("--db", metavar="URL", help="database URL (default: the config's storage.database_url)")
    p.add_argument(
        "--since", metavar="TIME", help="from this time: ISO date/time (UTC unless it has an offset) or 8h / 2d"
    )
    p.add_argument("--until", metavar="TIME", help="up to (not including) this time, same forms as --since")
    p.add_argument("--verdict", choices=["PASS", "REJECT", "pass", "reject"], help="only this verdict")
    p.add_argument(
        "--class", dest="defect_class", metavar="CLASS", help="boards with a defect of this class (name or id)"
    )
    p.add_argument("--serial", help="board serial (a trailing * matches a prefix)")
    p.add_argument("--recipe", help="recipe name")
    p.add_argument("--station", help="station id (plant databases hold several)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--reviewed", action="store_true", help="reviewed boards only")
    g.add_argument("--unreviewed", action="store_true", help="unreviewed boards only")
    p.add_argument("--limit", type=int, default=50, help="lines to print (default 50; --csv writes all)")
    p.add_argument("--csv", metavar="FILE", help="write every matching inspection to FILE ('-' = stdout)")
    p.add_argument("--stats", action="store_true", help="also print yield per hour/shift, Pareto and review figures")
    p.set_defaults(func=run)


def parse_time(text: str, now: datetime | None = None) -> datetime:
    """ISO time (naive = UTC) or a relative `30m`, `8h`, `2d` before now."""
    from ..cli import CommandError

    now = now or datetime.now(UTC)
    t = text.strip()
    units = {"m": 60, "h": 3600, "d": 86400}
    if t and t[-1] in units and t[:-1].replace(".", "", 1).isdigit():
        return now - timedelta(seconds=float(t[:-1]) * units[t[-1]])
    try:
        dt = datetime.fromisoformat(t)
    except ValueError:
        raise CommandError(f"time {text!r}: expected ISO date/time (2025-03-01T06:00) or 30m / 8h / 2d") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt


def run(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from ..config import load_config
    from ..storage import (
        HistoryFilter,
        QueryError,
        StorageError,
        count,
        defect_pareto,
        history,
        iter_history,
        open_database,
        review_stats,
        write_csv,
        yield_per_hour,
        yield_per_shift,
    )

    cfg = load_config(args.config)
    url = args.db or cfg.storage.database_url
    flt = HistoryFilter(
        start=parse_time(args.since) if args.since else None,
        end=parse_time(args.until) if args.until else None,
        verdict=args.verdict.upper() if args.verdict else None,
        defect_class=args.defect_class,
        serial=args.serial,
        recipe=args.recipe,
        reviewed=True if args.reviewed else False if args.unreviewed else None,
        station_id=args.station,
    )
    try:
        db = open_database(url, station_id=cfg.station.id, migrate=False)
    except StorageError as exc:
        raise CommandError(str(exc)) from None
    try:
        if args.csv:
            if args.csv == "-":
                n = write_csv(iter_history(db, flt), sys.stdout)
            else:
                path = Path(args.csv)
                try:
                    from ..storage.queries import CSV_FILE_ENCODING

                    with path.open("w", newline="", encoding=CSV_FILE_ENCODING) as f:
                        n = write_csv(iter_history(db, flt), f)
                except OSError as exc:
                    raise CommandError(f"cannot write {path}: {exc.strerror}") from None
                print(f"wrote {n} inspections to {path}", file=sys.stderr)
        else:
            page = history(db, flt, limit=max(1, args.limit))
            total = count(db, flt)
            print(f"{'time (UTC)':19s}  {'verdict':7s} {'serial':16s} {'recipe':12s} defects  classes")
            for r in page.rows:
                print(
                    f"{r.created_at:%Y-%m-%d %H:%M:%S}  {r.verdict:7s} {(r.board_serial or '-'):16.16s} "
                    f"{r.recipe:12.12s} {r.defect_count:7d}  {','.join(r.classes) or '-'}"
                    + ("  [reviewed]" if r.reviewed else "")
                    + (f"  reason: {r.reason}" if r.reason else "")
                )
            print(f"{len(page.rows)} of {total} matching inspections shown", file=sys.stderr)
        if args.stats:
            st = cfg.storage
            print("\nyield per hour (UTC):")
            for b in yield_per_hour(db, flt):
                print(f"  {b.start:%Y-%m-%d %H:00}  {b.total:6d} boards  {b.yield_pct:5.1f} % pass")
            print(f"yield per shift ({st.timezone}):")
            for y in yield_per_shift(db, flt, shift_starts=st.shift_starts, tz=st.timezone):
                print(f"  {y.day} shift {y.shift}  {y.total:6d} boards  {y.yield_pct:5.1f} % pass")
            print("defect Pareto:")
            for p in defect_pareto(db, flt, reviewed_truth=True):
                print(f"  {p.class_name:10s} {p.count:6d}  {p.cumulative_pct:5.1f} % cumulative")
            rs = review_stats(db, flt)
            print(
                f"reviews: {rs.boards_reviewed} boards, {rs.defects_reviewed} detections judged, "
                f"false-call rate {100 * rs.false_call_rate:.1f} %, missed defects {rs.missed}, escapes {rs.escapes}"
            )
    except QueryError as exc:
        raise CommandError(str(exc)) from None
    finally:
        db.close()
    return 0
