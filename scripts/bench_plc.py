#!/usr/bin/env python
"""Trigger -> RESULTS_VALID latency over loopback, and what the PLC link adds to the pipeline's own time.

A real station, built by the composition root (`inspector.station.build_station`) from a
StationConfig as the line builds it: replay camera in triggered mode over synthetic boards, the
classical detector, board registration, the PLC link in server mode on 127.0.0.1; and the line PLC
simulator polling as fast as it can.
For each board:
  PLC latency  = trigger write sent -> first status read showing RESULTS_VALID (measured by the PLC)
  pipeline     = pipeline.trigger() called -> result published (capture + inference + decision)
  added        = PLC latency - pipeline: Modbus round trips, handshake wake-ups, status writes.
  durable wait = result published -> the recorder reports the record durable (with --durable on).
Target: added p99 <= 5 ms (without durability gating: the link's own cost).
--durable both (default) runs the same boards twice, without then with a real recorder (SQLite in a
temp folder, synchronous FULL, archive as --archive) gating RESULTS_VALID, and prints the ratios.
--protocol opcua runs the same over the OPC UA server transport, the PLC being an asyncua client in
its own process (writes Trigger, polls TriggerAck and ResultsValid as fast as it can, acknowledges),
with --security Basic256Sha256 (sign and encrypt, default) or None.
Usage: .venv/bin/python scripts/bench_plc.py [--boards 300] [--rate 20] [--durable off|on|both]
       [--protocol modbus|opcua] [--security Basic256Sha256|None]
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from inspector.config import StationConfig, parse_config  # noqa: E402
from inspector.health import Health  # noqa: E402
from inspector.station import build_station  # noqa: E402
from plc.modbus.simulator import LinePlcSimulator  # noqa: E402
from plc.opcua import OpcUaSettings  # noqa: E402
from plc.simulator import SimStats  # noqa: E402


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))]


PLC_PROGRAM = """
import json, sys
from plc.modbus.simulator import LinePlcSimulator
sim = LinePlcSimulator("127.0.0.1", int(sys.argv[1]), rate=float(sys.argv[2]), boards=int(sys.argv[3]), poll_s=0.0)
st = sim.run()
print(json.dumps({"per_board": list(st.per_board), "violations": list(st.violations), "passed": st.passed,
                  "rejected": st.rejected}))
"""


def run_plc_process(port: int, rate: float, boards: int):
    """The PLC in its own process, as on a line (time.monotonic is the same clock across processes)."""
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", PLC_PROGRAM, str(port), str(rate), str(boards)],
        capture_output=True,
        text=True,
        cwd=root,
        check=True,
    )
    data = json.loads(out.stdout.strip().splitlines()[-1])
    stats = SimStats(
        passed=data["passed"],
        rejected=data["rejected"],
        violations=data["violations"],
        violation_count=len(data["violations"]),
    )
    stats.per_board = [tuple(x) for x in data["per_board"]]
    return stats


OPCUA_PLC_PROGRAM = """
import asyncio, json, sys, time
from pathlib import Path
from asyncua import Client, ua
from asyncua.crypto.cert_gen import setup_self_signed_certificate
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from cryptography.x509.oid import ExtendedKeyUsageOID

url, namespace, rate, boards, security, pki = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4]), sys.argv[5], Path(sys.argv[6])
B, U16, U32, S = ua.VariantType.Boolean, ua.VariantType.UInt16, ua.VariantType.UInt32, ua.VariantType.String

async def main():
    client = Client(url, timeout=5)
    client.application_uri = "urn:bench:plc"
    if security != "None":
        cert, key = pki / "plc-cert.der", pki / "plc-key.pem"
        await setup_self_signed_certificate(key, cert, "urn:bench:plc", "localhost", [ExtendedKeyUsageOID.CLIENT_AUTH], {"commonName": "bench PLC"})
        await client.set_security(SecurityPolicyBasic256Sha256, str(cert), str(key), mode=ua.MessageSecurityMode.SignAndEncrypt)
    async with client:
        idx = await client.get_namespace_index(namespace)
        obj = await client.nodes.objects.get_child(f"{idx}:PcbInspector")
        n = {(await c.read_browse_name()).Name: c for c in await obj.get_children()}
        w = lambda name, v, t=B: n[name].write_value(ua.DataValue(ua.Variant(v, t)))
        async def wait(name, value, timeout=30.0):
            end = time.monotonic() + timeout
            while (await n[name].read_value()) != value:
                if time.monotonic() > end:
                    raise TimeoutError(name)
        async def heartbeat():
            beat = False
            while True:
                beat = not beat
                await w("PlcHeartbeat", beat)
                await asyncio.sleep(0.25)
        hb = asyncio.create_task(heartbeat())
        await w("TriggerEnable", True)
        await wait("Ready", True, 120)
        per_board, violations, passed, rejected = [], [], 0, 0
        period, nxt = 1.0 / rate, time.monotonic()
        for seq in range(1, boards + 1):
            await asyncio.sleep(max(0.0, nxt - time.monotonic()))
            nxt += period
            await wait("Ready", True)
            await w("PartSeq", seq, U32)
            t0 = time.monotonic()
            await w("Trigger", True)
            await wait("TriggerAck", True)
            await w("Trigger", False)
            await wait("ResultsValid", True)
            t1 = time.monotonic()
            ok, echo = await n["Pass"].read_value(), await n["PartSeqEcho"].read_value()
            if echo != seq:
                violations.append(f"board {seq}: PartSeqEcho {echo}")
            passed += bool(ok)
            rejected += not ok
            per_board.append((seq, t0, t1))
            await w("ResultsAck", True)
            await wait("ResultsValid", False)
            await w("ResultsAck", False)
        hb.cancel()
    print(json.dumps({"per_board": per_board, "violations": violations, "passed": passed, "rejected": rejected}))

asyncio.run(main())
"""


def run_opcua_plc_process(link, cfg: OpcUaSettings, rate: float, boards: int, pki: Path):
    """The OPC UA PLC (an asyncua client) in its own process."""
    root = Path(__file__).resolve().parent.parent
    url = cfg.endpoint(link.port)
    argv = [url, cfg.namespace, str(rate), str(boards), cfg.security, str(pki)]
    out = subprocess.run(
        [sys.executable, "-c", OPCUA_PLC_PROGRAM, *argv], capture_output=True, text=True, cwd=root, check=False
    )
    if out.returncode:
        raise RuntimeError(f"OPC UA PLC process failed:\n{out.stderr[-2000:]}")
    data = json.loads(out.stdout.strip().splitlines()[-1])
    stats = SimStats(
        passed=data["passed"],
        rejected=data["rejected"],
        violations=data["violations"],
        violation_count=len(data["violations"]),
    )
    stats.per_board = [tuple(x) for x in data["per_board"]]
    return stats


def station_config(args, durable: bool, tmp: Path) -> StationConfig:
    """The benchmark station as a station file would describe it (no simulator beside the PLC process)."""
    if args.protocol == "opcua":
        plc = {
            "protocol": "opcua",
            "security": args.security,
            "certificate": str(tmp / "pki" / "server.der"),
            "private_key": str(tmp / "pki" / "server.pem"),
            "simulator": False,
        }
    else:
        plc = {"protocol": "modbus", "mode": "server", "simulator": False}
    data = {
        # No calibration plug-in: it would read the calibrations stored in the working directory's database.
        "station": {"plugins": {"plc": "station"}},
        "camera": {"type": "replay", "path": None, "trigger": "software", "fps": None},
        "detector": {"type": "classical"},
        "plc": plc,
        # Used with --durable on (SQLite synchronous FULL, the default, gating RESULTS_VALID); the free-space
        # floor is off, the benchmark's temp folder is not the station's disk.
        "storage": {
            "database_url": f"sqlite:///{tmp / 'records.db'}",
            "archive_dir": str(tmp / "archive"),
            "spool_dir": str(tmp / "spool"),
            "archive": args.archive,
            "min_free_mb": 0,
        },
    }
    return parse_config(data, "bench_plc")


def run_once(args, durable: bool, tmp: Path) -> tuple[dict[str, list[float]], object]:
    cfg = station_config(args, durable, tmp)
    health = Health()
    if not durable:
        health.ok("database", "bench: no recorder")
    station = build_station(cfg, with_storage=durable, health=health, plc_options={"port": 0})
    pipeline, link, recorder = station.pipeline, station.plc, station.recorder
    issued: dict[int, float] = {}
    published: dict[int, float] = {}
    inspect_ms: dict[int, float] = {}
    durable_at: dict[str, float] = {}
    seq_of: dict[str, int] = {}
    lock = threading.Lock()
    orig_trigger = pipeline.trigger

    def trigger(req=None):
        with lock:
            issued[req.part_seq] = time.monotonic()
        return orig_trigger(req)

    pipeline.trigger = trigger  # type: ignore[method-assign]

    def on_result(r):
        with lock:
            published[r.part_seq] = time.monotonic()
            inspect_ms[r.part_seq] = r.timings_ms.get("inspect", float("nan"))
            seq_of[r.uid] = r.part_seq

    def on_durable(uid, where):
        with lock:
            durable_at[uid] = time.monotonic()

    pipeline.on_result(on_result)
    if recorder is not None:
        recorder.add_durable_listener(on_durable)
    station.start()
    try:
        if args.protocol == "opcua":
            stats = run_opcua_plc_process(link, cfg.plc, args.rate, args.boards + args.warmup, tmp)
        elif args.in_process:
            sim = LinePlcSimulator(
                "127.0.0.1", link.port, rate=args.rate, boards=args.boards + args.warmup, poll_s=0.0, first_part_seq=1
            )
            stats = sim.run()
        else:
            stats = run_plc_process(link.port, args.rate, args.boards + args.warmup)
    finally:
        station.stop()
    durable_seq = {seq_of[u]: t for u, t in durable_at.items() if u in seq_of}
    rows = [(seq, t0, t1) for seq, t0, t1 in stats.per_board if seq > args.warmup and seq in published]
    plc_ms = [(t1 - t0) * 1000 for _, t0, t1 in rows]
    pipe_ms = [(published[s] - issued[s]) * 1000 for s, _, _ in rows]
    series = {
        "trigger -> RESULTS_VALID (PLC side)": plc_ms,
        "pipeline trigger() -> result published": pipe_ms,
        "  of which detector+decision (inspect)": [inspect_ms[s] for s, _, _ in rows],
        "added by the PLC link (incl. durable wait)" if durable else "added by the PLC link": [
            a - b for a, b in zip(plc_ms, pipe_ms, strict=True)
        ],
    }
    if durable:
        series["  of which durable wait (published -> durable)"] = [
            (durable_seq[s] - published[s]) * 1000 for s, _, _ in rows if s in durable_seq
        ]
    mode = f"durable gating ON (SQLite synchronous FULL, archive={args.archive})" if durable else "durable gating OFF"
    proto = "Modbus TCP" if args.protocol == "modbus" else f"OPC UA, security {args.security}"
    print(f"--- {proto}, {mode}")
    print(f"boards measured: {len(rows)} (after {args.warmup} warm-up), rate {args.rate}/s, loopback 127.0.0.1")
    print(
        f"violations: {stats.violation_count}; PASS {stats.passed}, REJECT {stats.rejected}; "
        f"durable timeouts {link.durable_timeouts}"
    )
    for name, xs in series.items():
        print(
            f"{name:46s} p50 {pct(xs, 50):7.2f} ms  p90 {pct(xs, 90):7.2f} ms  p99 {pct(xs, 99):7.2f} ms  mean {statistics.fmean(xs):7.2f} ms"
        )
    if not durable:
        added = series["added by the PLC link"]
        print(f"target: added p99 <= 5 ms -> {'MET' if pct(added, 99) <= 5.0 else 'NOT MET'}")
    return series, stats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--boards", type=int, default=300)
    ap.add_argument("--rate", type=float, default=20.0, help="boards per second")
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--in-process", action="store_true", help="run the PLC simulator in this process (shares the GIL)")
    ap.add_argument(
        "--durable", choices=("off", "on", "both"), default="both", help="gate RESULTS_VALID on a durable record"
    )
    ap.add_argument("--archive", choices=("all", "rejects", "none"), default="all", help="recorder archive mode (on)")
    ap.add_argument("--protocol", choices=("modbus", "opcua"), default="modbus", help="PLC link transport")
    ap.add_argument(
        "--security", choices=("Basic256Sha256", "None"), default="Basic256Sha256", help="OPC UA security policy"
    )
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    modes = {"off": [False], "on": [True], "both": [False, True]}[args.durable]
    results = {}
    violations = 0
    with tempfile.TemporaryDirectory(prefix="bench-plc-") as tmp:
        for durable in modes:
            sub = Path(tmp) / ("on" if durable else "off")
            sub.mkdir()
            series, stats = run_once(args, durable, sub)
            results[durable] = series
            violations += stats.violation_count
    if len(modes) == 2:
        off = results[False]["trigger -> RESULTS_VALID (PLC side)"]
        on = results[True]["trigger -> RESULTS_VALID (PLC side)"]
        print("--- trigger -> RESULTS_VALID, durable ON / OFF")
        for q in (50, 90, 99):
            print(f"p{q}: {pct(on, q):7.2f} / {pct(off, q):7.2f} ms = x{pct(on, q) / pct(off, q):.2f}")
        m_on, m_off = statistics.fmean(on), statistics.fmean(off)
        print(f"mean: {m_on:7.2f} / {m_off:7.2f} ms = x{m_on / m_off:.2f}")
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
