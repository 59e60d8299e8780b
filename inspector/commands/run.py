"""`pcb-inspector run --headless`: the station without a window, one log line per board."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
import time

from ..domain import InspectionResult
from .common import add_station_args, station_config

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the station (use --headless for no window)")
    add_station_args(p)
    p.add_argument("--headless", action="store_true", help="no window: log one line per board")
    p.add_argument(
        "--boards",
        type=int,
        default=0,
        help="stop after N boards (0 = run until Ctrl-C); a board already captured then is still inspected and "
        "recorded, so one or two more may be logged",
    )
    p.add_argument("--metrics", metavar="HOST:PORT", help="serve /metrics and /health here")
    p.set_defaults(func=run)


class _BoardLog:
    name = "log"

    def __init__(self, out=sys.stdout):
        self.out = out
        self.count = 0
        self.done = threading.Event()
        self.limit = 0

    def submit(self, r: InspectionResult) -> None:
        self.count += 1
        classes = ",".join(sorted({d.label for d in r.detections})) or "-"
        src = r.frame_meta.get("name") or r.frame_meta.get("file") or f"frame {r.frame_id}"
        serial = f" serial={r.board_serial}" if r.board_serial else ""
        reason = f" reason={r.reason!r}" if r.reason else ""
        print(
            f"board {self.count:5d} {src}{serial} {r.verdict.value:6s} defects={len(r.detections)} [{classes}] "
            f"cycle={r.cycle_ms:.1f}ms model={r.model_id}{reason}",
            file=self.out,
            flush=True,
        )
        if self.limit and self.count >= self.limit:
            self.done.set()


def run(args: argparse.Namespace) -> int:
    from ..cli import CommandError
    from ..station import build_station

    if not args.headless:
        from importlib.metadata import entry_points

        if not [ep for ep in entry_points(group="pcb_inspector.commands") if ep.name == "ui"]:
            raise CommandError("no UI installed: use `pcb-inspector run --headless`")
        raise CommandError("the touchscreen UI starts with `pcb-inspector ui`; use --headless for no window")
    cfg = station_config(args)
    if args.metrics:
        if cfg.metrics.listen and cfg.metrics.listen != args.metrics:
            # Said, not silent: a plant that set 127.0.0.1 in the file to keep /health local got 0.0.0.0 from a unit.
            log.warning(
                "--metrics %s overrides metrics.listen = %s of the configuration", args.metrics, cfg.metrics.listen
            )
        cfg.metrics.listen = args.metrics
    board_log = _BoardLog()
    board_log.limit = args.boards
    station = build_station(cfg, sinks=[board_log])
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print(
        f"station {cfg.station.id}: camera {station.pipeline.camera.description}, "
        f"model {getattr(cfg.detector, 'model', cfg.detector.type)}",
        file=sys.stderr,
        flush=True,
    )
    station.start()
    last_state = ""
    model_shown = None
    try:
        while not stop.is_set() and not board_log.done.is_set():
            state = station.health.summary()
            if state != last_state:
                print(f"state: {state}", file=sys.stderr, flush=True)
                last_state = state
            info = station.pipeline.detector_info
            if info is not None and info.model_id != model_shown:
                print(f"model: {info.model_id} on {info.backend}", file=sys.stderr, flush=True)
                model_shown = info.model_id
            board_log.done.wait(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        info = station.pipeline.detector_info
        if info is not None and info.model_id != model_shown:
            print(f"model: {info.model_id} on {info.backend}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        station.stop()
        c = station.pipeline.counters
        print(
            f"stopped in {time.monotonic() - t0:.2f} s: {board_log.count} boards, frames {c.frames}, "
            f"dropped {c.dropped}, missed triggers {c.missed_triggers}",
            file=sys.stderr,
        )
    return 0
