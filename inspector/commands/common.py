"""Options shared by the commands that build a station (`run`, `inspect`, `bench`, `ui`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..config import StationConfig, load_config, parse_config
from ..plc_settings import parse_plc_spec as _parse_plc_spec


def add_station_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", help="station.toml (default: the demo station)")
    from ..capture.spec import spec_help

    p.add_argument("--camera", metavar="SPEC", help=spec_help())
    p.add_argument("--model", metavar="PATH", help=".tflite model (its .json sidecar beside it)")
    p.add_argument(
        "--plc",
        metavar="SPEC",
        help="server:HOST:PORT, client:HOST:PORT (Modbus), opcua:HOST:PORT (OPC UA server) or off; "
        "server:HOST:PORT+sim or opcua:HOST:PORT+sim also runs the built-in PLC simulator",
    )
    p.add_argument("--db", metavar="URL", help="database URL, e.g. sqlite:///data/inspections.db")
    p.add_argument("--recipe", help="recipe name to start with")


def parse_plc_spec(spec: str) -> dict:
    """`off`, `server:HOST:PORT`, `client:HOST:PORT`, `server:HOST:PORT+sim` (Modbus), `opcua:HOST:PORT`, ...

    Each protocol plug-in parses its own spec (inspector/plc_settings.py); see its settings class.
    """
    return _parse_plc_spec(spec)


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
            spec = parse_plc_spec(args.plc)
            if spec.get("protocol", data["plc"]["protocol"]) != data["plc"]["protocol"]:
                data["plc"] = spec  # another protocol: its own keys, not the file's
            else:
                data["plc"].update(spec)
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
