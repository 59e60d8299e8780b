"""`pcb-inspector camera probe --camera SPEC [--frames N] [--json]`: open a camera and measure it.

Why a probe and not just the station: at commissioning the question is "does this camera, on this
cable and NIC, deliver what the line needs?", answered before a model or PLC is involved. It opens
the camera exactly as the station would (same backend, same settings, same conversion), grabs N
frames the way the capture thread does, and prints resolution, pixel format, achieved fps, dropped
and incomplete frames and the capture-to-handoff latency (driver arrival of the last packet to an
owned, converted image ready for the inference thread).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from typing import Any

from ..capture.base import CameraError, FrameTimeout, IncompleteFrame


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("camera", help="camera tools (probe: open a camera and measure fps, drops, latency)")
    csub = p.add_subparsers(dest="camera_cmd", metavar="ACTION", required=True)
    pr = csub.add_parser(
        "probe",
        help="open a camera, grab N frames, print resolution, pixel format, fps, dropped/incomplete, latency",
    )
    from ..capture.spec import spec_help

    pr.add_argument("--camera", metavar="SPEC", help=spec_help())
    pr.add_argument("--config", help="station.toml whose [camera] to probe (--camera overrides it)")
    pr.add_argument("--frames", type=int, default=100, help="frames to receive (default 100)")
    pr.add_argument("--roi", metavar="WxH[+X+Y]", help="sensor region, e.g. 640x640 (aravis)")
    pr.add_argument("--pixel-format", help="e.g. Mono8, Mono16, RGB8, BayerRG8 (aravis, genicam)")
    pr.add_argument("--fps", type=float, help="acquisition frame rate to set")
    pr.add_argument(
        "--trigger", choices=["free_run", "software"], help="trigger mode (software: one trigger per frame)"
    )
    pr.add_argument("--timeout", type=float, help="frame timeout in seconds (default: the camera's timeout_s)")
    pr.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    pr.set_defaults(func=probe)


_ROI = re.compile(r"^(\d+)x(\d+)(?:\+(\d+)\+(\d+))?$")


def _camera_config(args: argparse.Namespace):
    from ..cli import CommandError
    from .common import station_config

    if not args.camera and not args.config:
        raise CommandError("camera probe needs --camera SPEC (or --config FILE with a [camera] section)")
    if args.frames < 1:
        raise CommandError(f"--frames {args.frames}: must be at least 1")
    cfg = station_config(args)
    update: dict[str, Any] = {}
    cam = cfg.camera
    if args.roi:
        m = _ROI.match(args.roi)
        if not m:
            raise CommandError(f"--roi {args.roi!r}: expected WxH or WxH+X+Y, e.g. 640x640")
        if not hasattr(cam, "roi"):
            raise CommandError(f"--roi is not supported by camera type {cam.type!r}")
        w, h, x, y = (int(v) if v else 0 for v in m.groups())
        update["roi"] = {"x": x, "y": y, "width": w, "height": h}
    if args.pixel_format:
        if not hasattr(cam, "pixel_format"):
            raise CommandError(f"--pixel-format is not supported by camera type {cam.type!r}")
        update["pixel_format"] = args.pixel_format
    if args.fps is not None:
        update["fps"] = args.fps
    if args.trigger:
        update["trigger"] = args.trigger
    if args.timeout is not None and hasattr(cam, "timeout_s"):
        update["timeout_s"] = args.timeout
    if update:
        from pydantic import ValidationError

        from ..config import validation_problems

        data = cam.model_dump()
        data.update(update)
        try:
            cfg.camera = type(cam).model_validate(data)
        except ValidationError as exc:
            raise CommandError("camera options: " + "; ".join(validation_problems(exc))) from None
    return cfg


def _stats(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    s = sorted(values)

    def pct(q: float) -> float:
        return s[min(len(s) - 1, int(round(q * (len(s) - 1))))]

    return {
        "mean": round(statistics.fmean(s), 3),
        "p50": round(pct(0.50), 3),
        "p95": round(pct(0.95), 3),
        "p99": round(pct(0.99), 3),
        "max": round(s[-1], 3),
    }


def run_probe(camera, frames: int, timeout_s: float, max_consecutive_failures: int = 5) -> dict[str, Any]:
    """Grab `frames` frames like the capture thread does and return the figures (used by tests too)."""
    t_open = time.monotonic()
    info = camera.open()
    open_s = time.monotonic() - t_open
    out: dict[str, Any] = {
        "camera": camera.description,
        "model": info.model,
        "serial": info.serial,
        "width": info.width,
        "height": info.height,
        "pixel_format": info.pixel_format,
        "output_format": None,
        "triggered": bool(camera.triggered),
        "nominal_fps": camera.nominal_fps,
        "requested_frames": frames,
        "frames": 0,
        "dropped": 0,
        "incomplete": 0,
        "timeouts": 0,
        "fps": 0.0,
        "open_s": round(open_s, 3),
        "error": None,
    }
    latencies: list[float] = []
    round_trips: list[float] = []
    arrivals: list[float] = []
    failures = 0
    t0 = time.monotonic()
    try:
        while out["frames"] < frames:
            fired = None
            if camera.triggered:
                camera.flush()
                fired = time.monotonic()
                camera.trigger()
            try:
                grab = camera.grab(timeout_s)
            except IncompleteFrame:
                out["incomplete"] += 1
                failures += 1
            except FrameTimeout:
                out["timeouts"] += 1
                failures += 1
            else:
                handoff = time.monotonic()
                failures = 0
                out["frames"] += 1
                ts = float(grab.meta.get("timestamp", handoff))
                arrivals.append(ts)
                latencies.append((handoff - ts) * 1000)
                if fired is not None:
                    round_trips.append((handoff - fired) * 1000)
                out["dropped"] += int(grab.meta.get("dropped_before", 0) or 0)
                img = grab.image
                out["output_format"] = "Mono8" if img.ndim == 2 else "BGR8"
                out["width"], out["height"] = int(img.shape[1]), int(img.shape[0])
            if failures >= max_consecutive_failures:
                out["error"] = f"{failures} consecutive timeouts/incomplete frames"
                break
    except CameraError as exc:
        out["error"] = str(exc)
    finally:
        elapsed = time.monotonic() - t0
        stats = getattr(camera, "stream_statistics", None)
        if callable(stats):
            out["driver"] = stats()
        camera.close()
    out["elapsed_s"] = round(elapsed, 3)
    if len(arrivals) > 1 and arrivals[-1] > arrivals[0]:
        out["fps"] = round((len(arrivals) - 1) / (arrivals[-1] - arrivals[0]), 2)
    out["capture_to_handoff_ms"] = _stats(latencies)
    if round_trips:
        out["trigger_round_trip_ms"] = _stats(round_trips)
    return out


def _text(r: dict[str, Any]) -> str:
    lines = [
        f"camera        {r['camera']}  ({r['model']} {r['serial']})".rstrip(),
        f"resolution    {r['width']}x{r['height']}  {r['pixel_format']} -> {r['output_format']}",
        f"frames        {r['frames']}/{r['requested_frames']} in {r['elapsed_s']:.2f} s  "
        f"fps {r['fps']:.2f}" + (f" (nominal {r['nominal_fps']:g})" if r["nominal_fps"] else ""),
        f"dropped       {r['dropped']}   incomplete {r['incomplete']}   timeouts {r['timeouts']}",
    ]
    lat = r["capture_to_handoff_ms"]
    if lat:
        lines.append(
            f"latency       capture->handoff p50 {lat['p50']:.2f} ms  p99 {lat['p99']:.2f} ms  max {lat['max']:.2f} ms"
        )
    rt = r.get("trigger_round_trip_ms")
    if rt:
        lines.append(f"trigger       round trip p50 {rt['p50']:.2f} ms  p99 {rt['p99']:.2f} ms  max {rt['max']:.2f} ms")
    if r.get("error"):
        lines.append(f"error         {r['error']}")
    return "\n".join(lines)


def probe(args: argparse.Namespace) -> int:
    from ..capture import create_camera
    from ..cli import CommandError

    cfg = _camera_config(args)
    camera = create_camera(cfg)
    timeout = getattr(cfg.camera, "timeout_s", 2.0)
    try:
        result = run_probe(camera, args.frames, timeout)
    except CameraError as exc:
        raise CommandError(f"camera probe: {exc}") from None
    if args.json:
        json.dump(result, sys.stdout)
        sys.stdout.write("\n")
    else:
        print(_text(result))
    return 0 if result["frames"] >= args.frames and not result["error"] else 1
