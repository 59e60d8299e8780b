"""What tamper evidence costs: signing a record, appending an audit event, verifying both.

Prints figures (no assertions): per-record signing time in the writer thread, the recorder's
commit time per batch with signing on, one audit append (SQLite, synchronous=FULL), and how fast
`db verify` / `audit verify` walk a database. Run:

    nice -n 10 .venv/bin/python scripts/bench_signing.py [--records 5000] [--events 500]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from inspector import station_key
from inspector.domain import Detection, InspectionResult, Verdict
from inspector.health import Health
from inspector.storage import audit
from inspector.storage.db import open_database
from inspector.storage.signed import sign_record, verify_records
from inspector.storage.writer import Recorder, RecorderSettings, result_record


def _result(i: int) -> InspectionResult:
    dets = [Detection((10.0 + k, 20.0, 40.0 + k, 60.0), 1 + k % 6, 0.5 + k / 10) for k in range(i % 4)]
    return InspectionResult(
        frame_id=i,
        recipe="demo",
        verdict=Verdict.REJECT if dets else Verdict.PASS,
        detections=dets,
        timings_ms={"total": 12.0},
        model_id="pcb-defect-det@1.6.0",
        board_serial=f"SN{i:06d}",
        part_seq=i,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=5000)
    ap.add_argument("--events", type=int, default=500)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        key = station_key.load_or_create(tmp / "station.key")
        recs = [result_record(_result(i), "station-1") for i in range(2000)]
        t0 = time.perf_counter()
        for r in recs:
            sign_record(r, key)
        sign_us = (time.perf_counter() - t0) / len(recs) * 1e6
        print(f"sign one record (content + Ed25519): {sign_us:.1f} us")

        from inspector.storage import writer

        real_sign = writer.sign_record
        for label, signing in (("unsigned", False), ("signed", True)):
            url = f"sqlite:///{tmp / f'{label}.db'}"
            writer.sign_record = real_sign if signing else (lambda rec, key: None)
            rec = Recorder(
                RecorderSettings(
                    url,
                    archive="none",
                    spool_dir=tmp / "spool",
                    archive_dir=tmp / "a",
                    min_free_mb=0,
                    queue_size=args.records + 10,
                    station_key=tmp / "station.key",
                ),
                Health(),
            )
            rec.start()
            t0 = time.perf_counter()
            for i in range(args.records):
                rec.submit(_result(i))
            rec.flush(300)
            wall = time.perf_counter() - t0
            rec.stop()
            print(f"recorder, {label}: {args.records} records in {wall:.2f} s ({args.records / wall:.0f}/s)")
        writer.sign_record = real_sign

        db = open_database(url, station_key=key)
        times = []
        for i in range(args.events):
            t = time.perf_counter()
            audit.append(db, "bench", "recipe.edit", "demo", {"v": i}, {"v": i + 1}, source="cli")
            times.append((time.perf_counter() - t) * 1000)
        times.sort()
        print(
            f"audit append (SQLite FULL, own transaction): p50 {statistics.median(times):.2f} ms, "
            f"p99 {times[int(0.99 * (len(times) - 1))]:.2f} ms"
        )
        verifier = key.verifier()
        t0 = time.perf_counter()
        rep = audit.verify(db, verifier)
        dt = time.perf_counter() - t0
        print(f"audit verify: {rep.checked} events in {dt:.3f} s ({rep.checked / dt:.0f}/s), ok={rep.ok}")
        t0 = time.perf_counter()
        with db.engine.connect() as c:
            rrep = verify_records(c, verifier)
        dt = time.perf_counter() - t0
        print(f"db verify: {rrep.checked} records in {dt:.2f} s ({rrep.checked / dt:.0f}/s), ok={rrep.ok}")
        db.close()


if __name__ == "__main__":
    main()
