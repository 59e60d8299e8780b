"""`pcb-inspector reference teach --out GOLDEN.png BOARD1 BOARD2 ...`: a recipe's golden reference from several
good boards (`inspector.teach_reference`: each registered to the first, then the per-pixel median).

Why a command: teaching happens at set-up, from captures of known-good boards, before the recipe points at the
result (`[[recipes]] reference = "GOLDEN.png"`). The output is written losslessly and atomically, and an existing
reference is replaced only when asked: every recipe that points at it changes with it.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import get_args

_LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}


def register(sub: argparse._SubParsersAction) -> None:
    from ..detect.base import ColourRule

    p = sub.add_parser("reference", help="golden reference tools (teach: from several good boards)")
    rsub = p.add_subparsers(dest="reference_cmd", metavar="ACTION", required=True)
    t = rsub.add_parser(
        "teach",
        help="register good boards to the first and write their per-pixel median as the golden reference",
    )
    t.add_argument("boards", nargs="+", type=Path, help="captures of known-good boards; the first fixes the pose")
    t.add_argument("--out", type=Path, required=True, help="golden reference to write (.png, .tif, .bmp)")
    t.add_argument("--force", action="store_true", help="replace an existing file at --out")
    t.add_argument(
        "--colour",
        choices=get_args(ColourRule),
        default="red",
        help="how colour captures become gray for the registration: the model's input_domain.colour (default red)",
    )
    t.add_argument(
        "--config",
        help="station.toml whose [detector] (model and camera_copper) draws GOLDEN.copper.png, the golden image as "
        "the model will read it (default: the demo station)",
    )
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=teach)


def copper_view(golden, config: str | None):
    """The golden image as the station's model reads it (its input domain, with the station's camera settings from
    `config`'s `[detector]`), and that domain; None when the model takes frames as they are.

    Why before the golden image is written: a golden image the model cannot read (copper and laminate too close: the
    camera's gamma on; copper clipped) would make every board a REJECT; it is refused here with the remedy, and
    nothing is written.
    """
    from ..cli import CommandError
    from ..config import ConfigError, load_config
    from ..detect.base import ModelError
    from ..detect.package import station_input_domain
    from ..detect.prepare import ImageDomainError, prepare

    try:
        cfg = load_config(config)
    except ConfigError as exc:
        raise CommandError(str(exc)) from None
    try:
        domain = station_input_domain(cfg.detector)
    except ModelError as exc:
        raise CommandError(f"copper preview: {exc}") from None
    if domain is None:
        return None
    try:
        return domain, prepare(golden, domain, "golden reference")
    except ImageDomainError as exc:
        raise CommandError(f"the model cannot read this golden image, nothing written: {exc}") from None


def write_copper_preview(view, out: Path) -> dict:
    """`GOLDEN.copper.png` beside the golden image: the model's view of it, copper drawn black.

    Why: nothing in a camera image says which material is copper; the station takes `detector.camera_copper` (or
    the model's word: bright) on trust. Set the wrong way round for the camera's light, every board still rejects
    when it has a defect, but each defect is reported as its opposite (an open as a short, a pin-hole as copper).
    At teach time a person can see it at a glance: the traces and pads must be black in this picture.
    """
    import cv2
    import numpy as np

    from ..cli import CommandError

    domain, mask = view
    copper = mask == domain.copper_level
    preview = out.with_name(out.stem + ".copper.png")
    if not cv2.imwrite(str(preview), np.where(copper, np.uint8(0), np.uint8(255))):
        raise CommandError(f"{preview}: OpenCV could not write the copper preview")
    return {
        "copper_preview": str(preview),
        "copper_fraction": round(float(copper.mean()), 4),
        "camera_copper": domain.camera_copper,
    }


def teach(args: argparse.Namespace) -> int:
    import cv2

    from ..cli import CommandError
    from ..decision import RecipeError, read_image
    from ..registration import BoardRegistrar, RegistrationSettings
    from ..teach_reference import TeachError, teach_reference

    out: Path = args.out
    if out.suffix.lower() not in _LOSSLESS:
        raise CommandError(
            f"--out {out}: a golden reference must be stored losslessly ({', '.join(sorted(_LOSSLESS))}); "
            "JPEG would add its own blocks to every comparison"
        )
    if out.exists() and not args.force:
        raise CommandError(f"--out {out} exists: recipes may point at it; add --force to replace it")
    try:
        boards = [read_image(b, "board capture") for b in args.boards]
    except RecipeError as exc:
        raise CommandError(str(exc)) from None
    registrar = BoardRegistrar(RegistrationSettings(colour=args.colour))
    try:
        taught = teach_reference(boards, [str(b) for b in args.boards], registrar)
    except TeachError as exc:
        raise CommandError(str(exc)) from None
    view = copper_view(taught.image, args.config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{out.suffix}")
    if not cv2.imwrite(str(tmp), taught.image):
        tmp.unlink(missing_ok=True)
        raise CommandError(f"--out {out}: OpenCV could not write the image")
    os.replace(tmp, out)
    rows = []
    for name, reg in zip(args.boards, taught.registrations, strict=True):
        if reg is None:
            rows.append({"board": str(name), "role": "pose"})
        else:
            dx, dy = reg.shift_px
            rows.append(
                {
                    "board": str(name),
                    "shift_px": [round(dx, 2), round(dy, 2)],
                    "rotation_deg": round(reg.rotation_deg, 3),
                    "quality": round(reg.quality, 3),
                }
            )
    preview = write_copper_preview(view, out) if view is not None else None
    if args.json:
        print(json.dumps({"out": str(out), "boards": rows, **(preview or {})}))
    else:
        for r in rows:
            if "role" in r:
                print(f"{r['board']}: fixes the pose")
            else:
                print(
                    f"{r['board']}: shift {r['shift_px'][0]:+.2f},{r['shift_px'][1]:+.2f} px, "
                    f"rotation {r['rotation_deg']:+.3f} deg, quality {r['quality']:.3f}"
                )
        print(f"golden reference of {len(rows)} boards written to {out}")
        # The same good boards make a steadier optics baseline than the golden image alone (docs/calibration.md).
        goods = " ".join(f"--good-board {b}" for b in args.boards)
        print(
            f"store it with its optics baseline over these boards: pcb-inspector calibrate reference --recipe NAME "
            f"--image {out} {goods}"
        )
        if preview is not None:
            other = "dark" if preview["camera_copper"] == "bright" else "bright"
            print(
                f"copper as the model will read it ({preview['copper_fraction']:.0%} of the view, camera_copper "
                f"{preview['camera_copper']}): {preview['copper_preview']}, copper drawn black. Check it: the traces "
                f"and pads must be black. If they are white, the camera shows copper {other}er than the laminate: set "
                f'[detector] camera_copper = "{other}", or every defect is reported as its opposite (open as short, '
                "pin-hole as copper)"
            )
    return 0
