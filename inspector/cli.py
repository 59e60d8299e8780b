"""`pcb-inspector`: one console script, one sub-command per concern.

Sub-commands live in `inspector.commands.*`. Packages that `inspector` must not import (`plc`, `ui`,
`calibration`) add theirs through the `pcb_inspector.commands` entry-point group, so the dependency
arrow keeps pointing one way while the user still sees one tool.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from importlib.metadata import entry_points

BUILTIN = (
    "run",
    "inspect",
    "config",
    "bench",
    "evaluate",
    "history",
    "db",
    "camera",
    "model",
    "dataset",
    "sync",
    "audit",
    "soak",
    "reference",
)


class CommandError(Exception):
    """An error the user can act on: printed as one line, exit status 2."""


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="pcb-inspector",
        description="PCB defect inspection station: capture, INT8 detection, PLC link, records, UI.",
    )
    ap.add_argument("-v", "--verbose", action="count", default=0, help="more log output (-vv for debug)")
    sub = ap.add_subparsers(dest="command", metavar="COMMAND")
    for name in BUILTIN:
        try:
            mod = importlib.import_module(f"inspector.commands.{name}")
        except ModuleNotFoundError as exc:
            if exc.name and exc.name.startswith("inspector.commands"):
                continue  # command not built in this version
            raise
        mod.register(sub)
    for ep in entry_points(group="pcb_inspector.commands"):
        try:
            ep.load()(sub)
        except ModuleNotFoundError as exc:
            # An optional part (e.g. the UI without PySide6) is not installed: say so in the help.
            p = sub.add_parser(ep.name, help=f"(unavailable: {exc.name} is not installed)")
            p.set_defaults(func=_unavailable(ep.name, exc))
    return ap


def _unavailable(name: str, exc: ModuleNotFoundError):
    def run(args: argparse.Namespace) -> int:
        raise CommandError(f"`{name}` needs {exc.name}, which is not installed (see README)")

    return run


def setup_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)-7s %(threadName)s %(name)s: %(message)s")


def main(argv: list[str] | None = None) -> int:
    ap = build_parser()
    args = ap.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        ap.print_help()
        return 2
    from .config import ConfigError
    from .datasets.deeppcb import DatasetError
    from .decision import RecipeError
    from .detect.base import ModelError
    from .station import StationError
    from .station_key import StationKeyError

    try:
        return int(args.func(args) or 0)
    except (CommandError, ConfigError, DatasetError, ModelError, RecipeError, StationError, StationKeyError) as exc:
        if isinstance(exc, ConfigError):
            print(f"error: invalid configuration in {exc.source}:", file=sys.stderr)
            for p in exc.problems:
                print(f"  {p}", file=sys.stderr)
        else:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        # Disk full, permissions, a vanished network share: one line naming the file, no traceback.
        where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except Exception as exc:
        if type(exc).__module__.startswith(("sqlalchemy", "inspector.storage")):
            print(f"error: database: {str(exc).splitlines()[0]}", file=sys.stderr)
            return 2
        raise
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    # `python -m inspector.cli` runs this file as `__main__`, a second copy of the module: the commands raise
    # `inspector.cli.CommandError`, which only the package's own copy catches (else a traceback, not one line).
    from inspector.cli import main as package_main

    sys.exit(package_main())
