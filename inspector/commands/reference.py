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

_LOSSLESS = {".png", ".tif", ".tiff", ".bmp"}


def register(sub: argparse._SubParsersAction) -> None:
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
        choices=("red", "luma"),
        default="red",
        help="how colour captures become gray for the registration: the model's input_domain.colour (default red)",
    )
    t.add_argument("--json", action="store_true", help="print one JSON object")
    t.set_defaults(func=teach)


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
    if args.json:
        print(json.dumps({"out": str(out), "boards": rows}))
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
    return 0
