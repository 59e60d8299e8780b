#!/usr/bin/env python3
"""Records benchmark: sustained inspections/s written, acknowledgement latency, and query speed.

  .venv/bin/python scripts/bench_storage.py [--boards 1500] [--rows 100000] [--db URL]

Each board is a 640x640 frame with 10 defects: one full lossless PNG, a thumbnail, 10 crops and the
(shared) reference, and 1 + 10 rows. The recorder runs exactly as in the station (one writer thread,
batch commits, durable acknowledgement). Figures are printed; docs/storage.md quotes them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.domain import Detection, InspectionResult, Verdict  # noqa: E402
from inspector.health import Health  # noqa: E402
from inspector.storage import (  # noqa: E402
    Cursor,
    HistoryFilter,
    count,
    defect_pareto,
    history,
    open_database,
    yield_per_hour,
)
from inspector.storage.writer import Recorder, RecorderSettings  # noqa: E402
from inspector.synth import make_board  # noqa: E402


def results(n: int, board, when=None, image=True, defects=10):
    out = []
    for i in range(n):
        dets = [
            Detection((20.0 + 55 * k, 40.0 + 3 * k, 60.0 + 55 * k, 80.0 + 3 * k), k % 6 + 1, 0.8)
            for k in range(defects)
        ]
        r = InspectionResult(
            frame_id=i,
            recipe="demo",
            verdict=Verdict.REJECT if dets else Verdict.PASS,
            detections=dets,
            timings_ms={"inference": 30.0, "total": 40.0},
            model_id="pcb-det@1.0.0",
            board_serial=f"SN{i:08d}",
            part_seq=i,
            image=board.image if image else None,
            reference=board.reference if image else None,
        )
        if when is not None:
            r.timestamp = when(i)
        out.append(r)
    return out


def write_bench(url: str, tmp: Path, boards: int, label: str, **kw) -> None:
    board = make_board(5)
    rs = results(boards, board, image=kw.pop("image", True))
    rec = Recorder(
        RecorderSettings(
            url,
            archive_dir=tmp / "archive",
            spool_dir=tmp / "spool",
            queue_size=boards + 10,
            min_free_mb=0,
            retention_days=None,
            **kw,
        ),  # fmt: skip
        Health(),
    )
    t_sub: dict[str, float] = {}
    lat: list[float] = []
    done = threading.Event()

    def on_durable(uid: str, where: str) -> None:
        lat.append(time.perf_counter() - t_sub[uid])
        if len(lat) == boards:
            done.set()

    rec.add_durable_listener(on_durable)
    rec.start()
    submit_cost = []
    c0 = time.process_time()
    t0 = time.perf_counter()
    for r in rs:
        s = time.perf_counter()
        t_sub[r.uid] = s
        rec.submit(r)
        submit_cost.append(time.perf_counter() - s)
    done.wait(600)
    wall = time.perf_counter() - t0
    cpu = time.process_time() - c0
    rec.stop()
    lat.sort()
    submit_cost.sort()
    q = lambda xs, p: xs[min(len(xs) - 1, int(p * len(xs)))] * 1000  # noqa: E731
    print(
        f"{label:42s} {boards / wall:7.0f} inspections/s  ack p50 {q(lat, 0.5):7.1f} ms  p99 {q(lat, 0.99):7.1f} ms  "
        f"submit() p99 {q(submit_cost, 0.99):.3f} ms"
    )
    print(
        f"{'':42s} CPU {cpu / boards * 1000:.2f} ms per board (all threads) = {boards / cpu:.0f} inspections "
        f"per CPU-second; {rec.stats.batches} batches"
    )


def paced_latency(url: str, tmp: Path, rate: float, seconds: float, **kw) -> None:
    """Acknowledgement latency at a line-like rate (what the PLC waits for per board)."""
    board = make_board(6)
    n = int(rate * seconds)
    rs = results(n, board)
    rec = Recorder(
        RecorderSettings(
            url, archive_dir=tmp / "archive", spool_dir=tmp / "spool", min_free_mb=0, retention_days=None, **kw
        ),  # fmt: skip
        Health(),
    )
    rec.start()
    lat = []
    for r in rs:
        t = time.perf_counter()
        rec.submit(r)
        rec.wait_durable(r.uid, 10)
        lat.append(time.perf_counter() - t)
        time.sleep(max(0.0, 1 / rate - (time.perf_counter() - t)))
    rec.stop()
    lat.sort()
    print(
        f"ack latency at {rate:.0f} boards/s ({kw.get('sqlite_synchronous', 'FULL')}): "
        f"p50 {lat[len(lat) // 2] * 1000:.1f} ms  p99 {lat[int(0.99 * len(lat))] * 1000:.1f} ms  max {lat[-1] * 1000:.1f} ms"
    )


def query_bench(url: str, tmp: Path, rows: int) -> None:
    t0 = time.perf_counter()
    start = datetime(2025, 1, 1, tzinfo=UTC)
    board = make_board(7)
    rec = Recorder(
        RecorderSettings(
            url,
            archive="none",
            archive_dir=tmp / "qa",
            spool_dir=tmp / "qs",
            queue_size=rows + 10,
            min_free_mb=0,
            retention_days=None,
            batch_max=2000,
        ),  # fmt: skip
        Health(),
    )
    rec.start()
    for chunk in range(0, rows, 5000):
        n = min(5000, rows - chunk)
        for r in results(n, board, when=lambda i, c=chunk: start + timedelta(seconds=3 * (c + i)), image=False,
                         defects=(chunk // 5000) % 3):  # fmt: skip
            rec.submit(r)
    rec.flush(900)
    rec.stop()
    print(f"filled {rows} inspections (rows only) in {time.perf_counter() - t0:.1f} s")
    db = open_database(url)

    def timed(label, fn, reps=5):
        best = float("inf")
        for _ in range(reps):
            t = time.perf_counter()
            out = fn()
            best = min(best, time.perf_counter() - t)
        print(f"  {label:58s} {best * 1000:8.1f} ms")
        return out

    page = timed("history page 1 (50 rows, newest)", lambda: history(db, limit=50))
    mid = start + timedelta(seconds=3 * rows // 2)
    timed("history page at depth 50% (keyset cursor)", lambda: history(db, limit=50, cursor=Cursor(mid, 10**12)))
    old = start + timedelta(seconds=3 * 50)
    timed("history page at depth 99.9% (keyset cursor)", lambda: history(db, limit=50, cursor=Cursor(old, 10**12)))
    timed("history page, filter REJECT + class 'short', depth 50%",
          lambda: history(db, HistoryFilter(verdict="REJECT", defect_class="short"), limit=50,
                          cursor=Cursor(mid, 10**12)))  # fmt: skip
    timed("history page, unreviewed only", lambda: history(db, HistoryFilter(reviewed=False), limit=50))
    timed("history by serial", lambda: history(db, HistoryFilter(serial=page.rows[0].board_serial)))
    timed(f"count all ({rows})", lambda: count(db))
    day = HistoryFilter(start=mid, end=mid + timedelta(days=1))
    timed("yield per hour, one day", lambda: yield_per_hour(db, day))
    timed("yield per hour, everything", lambda: yield_per_hour(db), reps=2)
    timed("defect Pareto, one day", lambda: defect_pareto(db, day))
    timed("defect Pareto, everything", lambda: defect_pareto(db), reps=2)
    db.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--boards", type=int, default=1500, help="boards per write run")
    ap.add_argument("--rows", type=int, default=100_000, help="inspections for the query benchmark (0 = skip)")
    ap.add_argument("--db", help="benchmark this database URL instead of a temporary SQLite file")
    ap.add_argument(
        "--dir",
        default=str(Path(__file__).resolve().parent.parent / "data"),
        help="folder for the temporary database and archive (default: data/, where the station keeps its records; "
        "on this machine /tmp is ~30x slower at creating files)",
    )
    args = ap.parse_args()
    Path(args.dir).mkdir(parents=True, exist_ok=True)
    base = Path(tempfile.mkdtemp(prefix="bench-storage-", dir=args.dir))
    print(f"temporary files under {base}; {Path('/proc/loadavg').read_text().split()[:3]} load average")
    try:
        runs = [
            ("FULL", dict(sqlite_synchronous="FULL"), "SQLite FULL, full image + 10 crops"),
            ("NORMAL", dict(sqlite_synchronous="NORMAL"), "SQLite NORMAL, full image + 10 crops"),
            ("FULL-rows", dict(sqlite_synchronous="FULL", image=False), "SQLite FULL, rows only (no images)"),
        ]
        if args.db:
            runs = [("db", {}, f"{args.db.split(':')[0]}, full image + 10 crops")]
        for name, kw, label in runs:
            d = base / name
            url = args.db or f"sqlite:///{d / 'records.db'}"
            write_bench(url, d, args.boards, label, **kw)
        for sync in ("FULL", "NORMAL"):
            d = base / f"paced-{sync}"
            paced_latency(args.db or f"sqlite:///{d / 'records.db'}", d, 10, 10, sqlite_synchronous=sync)
        if args.rows:
            d = base / "query"
            query_bench(args.db or f"sqlite:///{d / 'records.db'}", d, args.rows)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
