"""Options shared by the commands that build a station (`run`, `inspect`, `bench`, `ui`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import StationConfig, load_config, parse_config


def add_station_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="station.toml (default: the demo station)")
    p.add_argument("--camera", metavar="SPEC", help="replay:DIR, replay:DIR@10fps, aravis:127.0.0.1, opencv:0, ...")
    p.add_argument("--model", metavar="PATH", help=".tflite model (its .json sidecar beside it)")
    p.add_argument(
        "--plc",
        metavar="SPEC",
        help="server:HOST:PORT, client:HOST:PORT or off; server:HOST:PORT+sim also runs the built-in PLC simulator",
    )
    p.add_argument("--db", metavar="URL", help="database URL, e.g. sqlite:///data/inspections.db")
    p.add_argument("--recipe", help="recipe name to start with")


def parse_plc_spec(spec: str) -> dict:
    """`off`, `server:HOST:PORT`, `client:HOST:PORT` (PORT optional: 1502 / 502), `server:HOST:PORT+sim`.

    Why `server` turns the simulator off: naming a server address means a real PLC will connect,
    and the demo's built-in simulator beside it would be a second master. `+sim` asks for it by name.
    """
    if spec == "off":
        return {"mode": "off"}
    body, plus, suffix = spec.partition("+")
    if plus and suffix != "sim":
        raise ValueError(f"--plc {spec!r}: unknown suffix '+{suffix}' (only server:HOST:PORT+sim)")
    mode, _, rest = body.partition(":")
    if mode not in {"server", "client"} or not rest:
        raise ValueError(f"--plc {spec!r}: expected off, server:HOST:PORT[+sim] or client:HOST:PORT")
    if plus and mode != "server":
        raise ValueError(f"--plc {spec!r}: '+sim' needs server mode (the simulator is a PLC polling our server)")
    host, _, port = rest.rpartition(":")
    if not host:
        host, port = rest, ("1502" if mode == "server" else "502")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--plc {spec!r}: port {port!r} is not a number 1..65535")
    out: dict = {"mode": mode, "host": host, "port": int(port)}
    if mode == "server":
        out["simulator"] = bool(plus)
    return out


def station_config(args: argparse.Namespace) -> StationConfig:
    """The config file (or demo defaults) with the command-line overrides applied and re-validated."""
    from ..cli import CommandError

    cfg = load_config(getattr(args, "config", None))
    data = cfg.model_dump()
    try:
        if getattr(args, "camera", None):
            from ..capture.spec import parse_camera_spec

            data["camera"] = parse_camera_spec(args.camera).model_dump()
        if getattr(args, "plc", None):
            data["plc"].update(parse_plc_spec(args.plc))
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    if getattr(args, "model", None):
        data["detector"]["model"] = Path(args.model)
    if getattr(args, "db", None):
        data["storage"]["database_url"] = args.db
    if getattr(args, "recipe", None):
        data["active_recipe"] = args.recipe
    # A bad override (`--plc server:300.1.2.3:1502`) is a configuration error naming the key, not a traceback.
    return parse_config(data, "command line (--config file with --camera/--plc/--model/--db/--recipe)")
