"""`pcb-inspector config check FILE` / `config show [--config FILE]`."""

from __future__ import annotations

import argparse
import sys

from ..config import ConfigError, dump_toml, load_config


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="check or show the station configuration")
    csub = p.add_subparsers(dest="config_cmd", metavar="ACTION", required=True)
    c = csub.add_parser("check", help="validate a station.toml; exit 1 and list every problem if bad")
    c.add_argument("file")
    c.set_defaults(func=check)
    s = csub.add_parser("show", help="print the effective configuration (defaults filled in)")
    s.add_argument("--config", dest="config", default=None, help="station.toml (default: demo defaults)")
    s.set_defaults(func=show)


def check(args: argparse.Namespace) -> int:
    try:
        load_config(args.file)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    return 0


def show(args: argparse.Namespace) -> int:
    print(dump_toml(load_config(args.config)), end="")
    return 0
