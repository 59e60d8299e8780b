"""`pcb-inspector plc-sim`: the line PLC simulator against a running station (entry point command)."""

from __future__ import annotations

import argparse
import re
import sys


def parse_rate(text: str) -> float:
    """'2/s', '2', '120/min' -> boards per second."""
    m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*(?:/\s*(s|sec|min|h))?\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"--rate {text!r}: expected e.g. 2/s or 120/min")
    value = float(m.group(1))
    per = {"s": 1, "sec": 1, None: 1, "min": 60, "h": 3600}[m.group(2)]
    if value <= 0:
        raise argparse.ArgumentTypeError(f"--rate {text!r}: must be above 0")
    return value / per


def parse_station(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"--station {text!r}: expected HOST:PORT, e.g. 127.0.0.1:1502")
    return host, int(port)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("plc-sim", help="line PLC simulator: drive a station's Modbus handshake, check every rule")
    p.add_argument("--station", type=parse_station, required=True, metavar="HOST:PORT", help="the station's server")
    p.add_argument("--rate", type=parse_rate, default=2.0, help="boards per time unit (default 2/s)")
    p.add_argument("--boards", type=int, default=0, help="stop after N boards (0 = until Ctrl-C)")
    p.add_argument("--device-id", type=int, default=1, help="Modbus device id (default 1)")
    p.add_argument("--first-part", type=int, default=1, help="first PART_SEQ")
    p.add_argument("--result-timeout", type=float, default=10.0, help="seconds to wait for RESULTS_VALID")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from .modbus.simulator import LinePlcSimulator

    host, port = args.station
    sim = LinePlcSimulator(
        host,
        port,
        device_id=args.device_id,
        rate=args.rate,
        boards=args.boards,
        first_part_seq=args.first_part,
        result_timeout_s=args.result_timeout,
        poll_s=0.001 if args.rate > 5 else 0.005,
    )

    def board(seq: int, info: dict) -> None:
        verdict = "PASS" if info["passed"] else f"REJECT code={info['result_code']}"
        print(f"part {seq}: {verdict} insp_id={info['insp_id']}", flush=True)

    sim.on_board = board
    try:
        stats = sim.run()
    except KeyboardInterrupt:
        stats = sim.stats
    for v in stats.violations:
        print(f"VIOLATION: {v}", file=sys.stderr)
    print(stats.summary(), flush=True)
    return 1 if stats.violations or stats.station_down else 0
