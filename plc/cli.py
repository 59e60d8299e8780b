"""`pcb-inspector plc-sim`: the line PLC simulator against a running station (entry point command).

Modbus (`--station HOST:PORT`) or OPC UA (`--station opc.tcp://HOST:PORT/pcb-inspector/`): the same PLC
program (plc/simulator.py) over the protocol the station serves, for a bring-up without a PLC.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path


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


def parse_station(text: str) -> tuple[str, int] | str:
    """HOST:PORT (a Modbus server) -> (host, port); an opc.tcp:// endpoint URL is returned as it is."""
    if text.startswith("opc.tcp://"):
        return text
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(
            f"--station {text!r}: expected HOST:PORT (Modbus, e.g. 127.0.0.1:1502) or an OPC UA endpoint "
            "(opc.tcp://127.0.0.1:4840/pcb-inspector/)"
        )
    return host, int(port)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "plc-sim", help="line PLC simulator: drive a station's handshake (Modbus or OPC UA), check every rule"
    )
    p.add_argument(
        "--station",
        type=parse_station,
        required=True,
        metavar="HOST:PORT|opc.tcp://HOST:PORT/pcb-inspector/",
        help="the station's Modbus server, or its OPC UA endpoint",
    )
    p.add_argument("--rate", type=parse_rate, default=2.0, help="boards per time unit (default 2/s)")
    p.add_argument("--boards", type=int, default=0, help="stop after N boards (0 = until Ctrl-C)")
    p.add_argument("--device-id", type=int, default=1, help="Modbus device id (default 1)")
    p.add_argument("--first-part", type=int, default=1, help="first PART_SEQ")
    p.add_argument("--result-timeout", type=float, default=10.0, help="seconds to wait for RESULTS_VALID")
    ua = p.add_argument_group("OPC UA (--station opc.tcp://...)")
    ua.add_argument("--namespace", default="urn:pcb-inspector:station", help="the station's plc.namespace")
    ua.add_argument(
        "--security", choices=("Basic256Sha256", "None"), default="Basic256Sha256", help="the station's plc.security"
    )
    ua.add_argument(
        "--certificate",
        type=Path,
        help="this PLC's certificate (DER), made with --private-key if both are missing; trust it in the "
        "station's plc.trusted_clients once. Default: one made in memory for this run",
    )
    ua.add_argument("--private-key", type=Path, help="the key of --certificate (PEM)")
    ua.add_argument("--server-certificate", type=Path, help="the station's certificate to pin (plc.certificate)")
    p.set_defaults(func=run)


def opcua_simulator(url: str, args: argparse.Namespace, **kw):
    """The OPC UA simulator as the command line describes it (its own certificate from files, or in memory)."""
    from inspector.cli import CommandError

    from .opcua.simulator import SIMULATOR_URI, OpcUaLinePlcSimulator

    certificate = None
    if (args.certificate is None) != (args.private_key is None):
        raise CommandError("plc-sim: --certificate and --private-key go together")
    if args.certificate is not None and args.security != "None":
        from .opcua.certs import ensure_certificate

        cert, key = ensure_certificate(
            args.certificate,
            args.private_key,
            SIMULATOR_URI,
            "127.0.0.1",
            role="line PLC simulator",
            named_by="--certificate / --private-key",
            trust_in="the station's plc.trusted_clients folder",
        )
        raw = cert.read_bytes()
        if b"-----BEGIN" in raw:  # a PEM certificate (the plant's CA may hand out PEM): the client takes DER
            from cryptography import x509
            from cryptography.hazmat.primitives.serialization import Encoding

            raw = x509.load_pem_x509_certificate(raw).public_bytes(Encoding.DER)
        certificate = (raw, key.read_bytes())
    return OpcUaLinePlcSimulator(
        url,
        args.namespace,
        security=args.security,
        certificate=certificate,
        server_certificate=args.server_certificate,
        **kw,
    )


def run(args: argparse.Namespace) -> int:
    kw = dict(
        rate=args.rate,
        boards=args.boards,
        first_part_seq=args.first_part,
        result_timeout_s=args.result_timeout,
        poll_s=0.001 if args.rate > 5 else 0.005,
    )
    if isinstance(args.station, str):
        sim = opcua_simulator(args.station, args, **kw)
    else:
        from .modbus.simulator import LinePlcSimulator

        host, port = args.station
        sim = LinePlcSimulator(host, port, device_id=args.device_id, **kw)

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
    return 1 if stats.violation_count or stats.station_down else 0
