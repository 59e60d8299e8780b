"""`pcb-inspector ui`: the touchscreen window, or one screenshot of it after N demo boards.

Registered through the `pcb_inspector.commands` entry point, so `inspector` never imports Qt.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

log = logging.getLogger(__name__)

SCREEN_CHOICES = ("operator", "history", "review", "charts", "recipe", "calibration", "model", "users", "audit")


def register(sub: argparse._SubParsersAction) -> None:
    from inspector.commands.common import add_station_args

    p = sub.add_parser("ui", help="touchscreen UI for operators and quality engineers")
    add_station_args(p)
    p.add_argument("--demo", action="store_true", help="demo station: replay camera, PLC simulator, throwaway DB")
    p.add_argument("--screenshot", metavar="PATH", help="render one screen to a PNG and exit")
    p.add_argument("--after-boards", type=int, default=10, metavar="N", help="boards to inspect before the shot")
    p.add_argument("--screen", choices=SCREEN_CHOICES, default="operator", help="screen to render")
    p.add_argument("--size", default="1280x800", metavar="WxH", help="window size for the screenshot")
    p.add_argument("--language", choices=("en", "zh_CN"), help="UI language (default: ui.language)")
    p.add_argument("--timeout", type=float, default=120.0, help="give up waiting for boards after this many s")
    p.set_defaults(func=run)


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise ValueError(f"--size {text!r}: expected WIDTHxHEIGHT, e.g. 1280x800") from None
    if not (320 <= w <= 7680 and 240 <= h <= 4320):
        raise ValueError(f"--size {text!r}: {w}x{h} is outside 320x240..7680x4320")
    return w, h


def run(args: argparse.Namespace) -> int:
    from inspector.cli import CommandError
    from inspector.commands.common import station_config

    if args.screenshot:
        import os

        os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    try:
        size = parse_size(args.size)
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    cfg = station_config(args)
    from .session_setup import UiRuntime

    rt = UiRuntime.create(cfg, demo=args.demo, language=args.language)
    try:
        if args.screenshot:
            return _screenshot(rt, Path(args.screenshot), args.after_boards, args.screen, size, args.timeout)
        rt.window.resize(*size)
        if cfg.ui.fullscreen:
            rt.window.showFullScreen()
        else:
            rt.window.show()
        if args.demo:
            rt.controller.start()
        return rt.app.exec()
    finally:
        rt.close()


def _screenshot(rt, path: Path, boards: int, screen: str, size: tuple[int, int], timeout: float) -> int:
    from inspector.cli import CommandError

    rt.window.resize(*size)
    rt.window.show()
    errors: list[str] = []
    rt.controller.error.connect(errors.append)
    rt.controller.start()
    deadline = time.monotonic() + timeout
    while rt.bridge.submitted < boards:
        if errors:
            raise CommandError(f"the station did not start: {errors[0]}")
        rt.app.processEvents()
        time.sleep(0.02)
        if time.monotonic() > deadline:
            raise CommandError(f"only {rt.bridge.submitted} of {boards} boards inspected within {timeout:.0f} s")
    rt.prepare_screen(screen)
    from .worker import shared_worker

    # The screen's page, charts or board are read off the GUI thread, sometimes in two steps (Review:
    # find the newest board, then read it): deliver each result, then wait for the next job.
    for _ in range(3):
        shared_worker().wait_idle()
        until = time.monotonic() + 0.2
        while time.monotonic() < until:
            rt.app.processEvents()
            time.sleep(0.02)
    shared_worker().wait_idle()
    settle = time.monotonic() + 1.0
    while time.monotonic() < settle:
        rt.app.processEvents()
        time.sleep(0.02)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not rt.window.grab().save(str(path)):
        raise CommandError(f"cannot write {path}")
    print(f"{path}: {screen} after {rt.bridge.submitted} boards, {size[0]}x{size[1]}", file=sys.stderr)
    return 0
