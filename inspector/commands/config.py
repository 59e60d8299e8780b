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
    """The file's values, then every start check that needs no hardware (files, model, recipes)."""
    from ..startcheck import check_config

    try:
        cfg = load_config(args.file)
    except ConfigError as exc:
        print(f"{exc.source}: {len(exc.problems)} problem(s)", file=sys.stderr)
        for p in exc.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    report = check_config(cfg)
    for w in report.warnings:
        print(f"{args.file}: warning: {w}", file=sys.stderr)
    if not report.ok:
        print(f"{args.file}: {len(report.problems)} problem(s) at start", file=sys.stderr)
        for p in report.problems:
            print(f"  {p}", file=sys.stderr)
        return 1
    print(f"{args.file}: OK")
    return 0


def show(args: argparse.Namespace) -> int:
    """The effective configuration; recipes that ignore most of the board say so (as TOML comments)."""
    from ..startcheck import CheckReport, check_recipe, detector_needs_reference

    cfg = load_config(args.config)
    report = CheckReport()
    needs = detector_needs_reference(cfg)
    for recipe in cfg.recipes:
        check_recipe(cfg, recipe, needs, report)
    for line in [*(f"warning: {w}" for w in report.warnings), *(f"problem: {p}" for p in report.problems)]:
        print(f"# {line}")
    print(dump_toml(cfg), end="")
    return 0
