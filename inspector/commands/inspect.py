"""`pcb-inspector inspect IMAGE... [--reference IMAGE] [--json]`: inspect files once.

Each image goes through the station's own inspection path (`inspector.inspection.inspect_board`):
registered to its reference, inspected, decided under the recipe, exactly as `run` judges a board.
Each image is judged on its own: a missing or unreadable image gets its own error line and a
non-zero exit status, and the other images are still inspected. A board that cannot be registered
is a REJECT with the reason, not an error.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..capture.replay import reference_for
from ..decision import RecipeRules, to_gray8
from ..detect.base import ColourRule
from ..detect.prepare import ImageDomainError
from ..image_file import ImageFileError, read_image_file
from .common import add_station_args, station_config


class ImageError(Exception):
    pass


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="inspect image files once and print the verdicts")
    add_station_args(p)
    p.add_argument("images", nargs="+", metavar="IMAGE")
    p.add_argument(
        "--reference",
        metavar="IMAGE",
        help="golden reference (default: <id>_temp beside <id>_test, else the recipe's reference)",
    )
    p.add_argument("--json", action="store_true", help="one JSON object per image")
    p.set_defaults(func=inspect)


def read_image(path: Path, colour: ColourRule = "red") -> np.ndarray:
    """Grayscale uint8 image (colour by the station's rule), or ImageError saying what is wrong with the file.

    Read by the station's one strict reader (`inspector.image_file`), so a file `inspect` refuses is refused as a
    recipe's reference, a replayed frame and a board of `evaluate` too.
    """
    try:
        img = read_image_file(path)
    except ImageFileError as exc:
        raise ImageError(str(exc)) from None
    if min(img.shape[:2]) < 8:
        raise ImageError(f"image too small ({img.shape[1]}x{img.shape[0]})")
    if img.dtype not in (np.uint8, np.uint16):
        raise ImageError(f"unsupported bit depth ({img.dtype}); expected 8 or 16 bit")
    try:
        return to_gray8(img, str(path), colour)
    except ValueError as exc:
        raise ImageError(str(exc)) from None


def inspect(args: argparse.Namespace) -> int:
    from ..board_serial import reader_for
    from ..cli import CommandError
    from ..detect.factory import create_detector
    from ..domain import InspectionResult
    from ..inspection import inspect_board
    from ..registration import BoardRegistrar, settings_from_config

    cfg = station_config(args)
    rules = RecipeRules(cfg.recipe())
    detector = create_detector(cfg.detector)
    info = detector.load()
    detector.warm_up(1)
    if not args.json:
        print(f"model: {info.model_id} on {info.backend}", file=sys.stderr)
    # the station's own registrar settings: a file is judged exactly as the line would judge it
    registrar = BoardRegistrar(settings_from_config(cfg.calibration))
    colour = info.colour  # the model's rule: as the line converts a colour frame and reference
    fixed_ref = None
    if args.reference:
        # One reference for every image: a bad one is one error line, not a verdict per board.
        try:
            fixed_ref = read_image(Path(args.reference), colour)
        except (ImageError, ImageDomainError) as exc:
            raise CommandError(f"--reference {args.reference}: {exc}") from None
    code_reader = reader_for(rules.recipe.code)
    failures = 0
    for name in args.images:
        path = Path(name)
        t0 = time.monotonic()
        try:
            image = read_image(path, colour)
            ref = fixed_ref
            if ref is None and (rp := reference_for(path)) is not None:
                try:
                    ref = read_image(rp, colour)
                except ImageError as exc:
                    raise ImageError(f"its golden reference {rp}: {exc}") from None
            if ref is None:
                ref = rules.reference_for(colour)
            if info.needs_reference and ref is None:
                raise ImageError("this model needs a golden reference: pass --reference or set the recipe's reference")
            board = inspect_board(image, ref, rules, detector, registrar, code_reader=code_reader)
        except (ImageError, ImageDomainError) as exc:
            failures += 1
            if args.json:
                print(json.dumps({"image": name, "error": str(exc)}), flush=True)
            print(f"error: {name}: {exc}", file=sys.stderr)
            continue
        timings = dict(board.timings_ms)
        timings["total"] = (time.monotonic() - t0) * 1000
        result = InspectionResult(
            frame_id=0,
            recipe=rules.name,
            severity=rules.severity,
            verdict=board.verdict,
            detections=board.detections,
            timings_ms=timings,
            model_id=info.model_id,
            reason=board.reason,
            board_serial=board.serial.serial if board.serial else None,
        )
        if args.json:
            out = result.to_json(name)
            keep = ("image", "verdict", "reason", "serial", "detections", "timings_ms", "model")
            extra = {"backend": info.backend, "registration": _registration_json(board.registration)}
            print(json.dumps({k: out[k] for k in keep} | extra), flush=True)
        else:
            parts = ", ".join(f"{d.label} {d.score:.2f} @ {[int(v) for v in d.box]}" for d in board.detections)
            why = f", {result.reason}" if result.reason else ""
            sn = f", serial {result.board_serial}" if result.board_serial else ""
            print(
                f"{name}: {result.verdict.value} ({len(board.detections)} defects{': ' + parts if parts else ''}{sn}{why})"
            )
    if code_reader is not None:
        code_reader.close()
    return 1 if failures else 0


def _registration_json(reg) -> dict | None:
    """Where the board lay against its reference (None without a reference)."""
    if reg is None:
        return None
    return {
        "quality": round(reg.quality, 4),
        "shift_px": [round(v, 2) for v in reg.shift_px],
        "rotation_deg": round(reg.rotation_deg, 3),
        "method": reg.method,
    }
