"""Training boards as the station sees them through a camera: rendered, registered, binarised.

    python -m inspector.training.camera_cache --data ../shared/datasets/deeppcb --out runs/cam-cache

Why: the shipped network learnt DeepPCB's own binarisation. A camera board goes through the station's
registration and the model's input preparation (`inspector.detect.prepare`) first, and the masks that
come out have ragged, blurred outlines and a few tarnish specks the network never saw; on the group the
parameters were chosen on it loses about 3 points. Fine-tuning on these masks (`train --camera-cache`)
teaches it that domain. Each entry is one training pair rendered once (`inspector.evaluation.camera_domain`,
gray and colour alternately), taken through exactly the station's steps (`BoardRegistrar`, `prepare` with
the package's `input_domain`), and stored as the network's inputs: board, golden image and a second capture
of the golden board (a known-good negative with its own noise), with the DeepPCB boxes.

Only training pairs are rendered (the same held-out split as the trainer), with seeds apart from the ones
`evaluate --camera` uses. Files are written atomically, one per pair and rendering, so an interrupted run
resumes where it stopped.
"""

from __future__ import annotations

import argparse
import json
import os
import zlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

#: Seed base for training renderings; `evaluate --camera` uses camera_seed * 1_000_003 + crc32(id).
SEED_BASE = 500_000_000


def _domain(sidecar: Path):
    from inspector.detect.package import InputDomain

    meta = json.loads(sidecar.read_text())
    if not meta.get("input_domain"):
        raise SystemExit(f"{sidecar}: the package declares no input_domain; nothing to prepare camera boards with")
    return InputDomain(**meta["input_domain"])


def render_entry(pair, k: int, spec, shift: float, rotate: float, width: float = 0.0) -> dict[str, np.ndarray] | None:
    """One camera rendering of `pair`, registered and prepared as the station would; None if unregistrable.

    `width` > 0: every capture of this rendering (golden image, board, second capture alike) shows its copper edges
    u px further out than DeepPCB's, u drawn uniformly in [-width, width] from a stream of its own (the rest of
    the rendering is the same as without it). Why: how wide copper looks depends on the camera (a bare-copper
    camera under coaxial light sees the trace's top, narrower than its foot), and a network that only ever saw
    DeepPCB's widths read narrower copper as defects of another class, or none (docs/model.md, *A second camera
    model*).
    """
    from inspector.config import CalibrationSection
    from inspector.datasets.deeppcb import read_gray
    from inspector.decision import to_gray8
    from inspector.detect.prepare import prepare
    from inspector.evaluation.camera_domain import capture_pair
    from inspector.registration import BoardRegistrar, RegistrationError, settings_from_config

    mode = "gray" if k % 2 == 0 else "colour"
    seed = SEED_BASE + k * 1_000_003 + zlib.crc32(pair.id.encode())
    u = float(np.random.default_rng([seed, 17]).uniform(-width, width)) if width > 0 else 0.0
    f = capture_pair(
        read_gray(pair.test_path),
        read_gray(pair.template_path),
        seed,
        mode=mode,
        max_shift=shift,
        max_rot_deg=rotate,
        width_px=u,
    )
    golden = to_gray8(f["golden"][0], "golden", spec.colour)  # gray passes as it is
    golden_in = prepare(golden, spec, "golden")
    out: dict[str, np.ndarray] = {"template": golden_in}
    registrar = BoardRegistrar(settings_from_config(CalibrationSection()))
    for name in ("board", "good"):
        frame = to_gray8(f[name][0], name, spec.colour)
        try:
            reg = registrar.register(frame, golden)
        except RegistrationError:
            return None
        warped = reg.warp_to_reference(frame, golden)
        out[name] = prepare(warped, spec, name, reference=(golden, golden_in))
    out["boxes"] = np.asarray(pair.boxes, np.float32).reshape(-1, 4)
    out["classes"] = np.asarray(pair.classes, np.int64)
    return out


def _job(args) -> tuple[str, bool]:
    pair, k, spec, shift, rotate, width, path = args
    if path.exists():
        return path.name, True
    entry = render_entry(pair, k, spec, shift, rotate, width)
    if entry is None:
        return path.name, False
    tmp = path.with_suffix(".tmp.npz")
    np.savez_compressed(tmp, **entry)
    os.replace(tmp, path)
    return path.name, True


def load_cache(folder: Path) -> list[dict[str, np.ndarray]]:
    """Every entry in `folder` (board, template, good, boxes, classes)."""
    files = sorted(Path(folder).glob("*.npz"))
    files = [f for f in files if not f.name.endswith(".tmp.npz")]
    if not files:
        raise SystemExit(f"{folder}: no camera cache entries (*.npz); build them with inspector.training.camera_cache")
    out = []
    for f in files:
        with np.load(f) as z:
            out.append({k: z[k] for k in ("board", "template", "good", "boxes", "classes")})
    return out


def main(argv=None) -> int:
    from inspector.datasets.deeppcb import held_out_split, load_list

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="DeepPCB root (holds trainval.txt)")
    ap.add_argument("--out", type=Path, required=True, help="cache folder (one .npz per pair and rendering)")
    ap.add_argument(
        "--sidecar",
        type=Path,
        default=Path("models/pcb-defect-det.json"),
        help="package whose input_domain prepares the boards",
    )
    ap.add_argument("--renders", type=int, default=2, help="renderings per pair, gray and colour alternately")
    ap.add_argument("--shift", type=float, default=3.0, help="largest residual shift of a capture, px")
    ap.add_argument("--rotate", type=float, default=0.5, help="largest residual rotation of a capture, deg")
    ap.add_argument(
        "--width-px",
        type=float,
        default=0.0,
        help="each rendering shows every copper edge (golden image and boards alike) u px further out, u uniform in "
        "[-W, W] (0: DeepPCB's widths, as the shipped recipe renders)",
    )
    ap.add_argument("--every", type=int, default=1, help="every Nth training pair only (1: all; for probes)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--val-groups", default=None, help="held-out groups, as for train (never rendered here)")
    ap.add_argument(
        "--train-on",
        choices=("split", "all"),
        default="split",
        help="as for train: 'all' renders the held-out pairs too (for a model trained on every pair)",
    )
    args = ap.parse_args(argv)
    spec = _domain(args.sidecar)
    pairs = load_list(args.data)
    groups = frozenset(g.strip() for g in args.val_groups.split(",")) if args.val_groups else None
    train, val, how = held_out_split(args.data, pairs, groups)
    if args.train_on == "all":
        train, how = train + val, f"none, --train-on all; would be {how}"
    if not 0.0 <= args.width_px <= 2.0:
        raise SystemExit(f"--width-px {args.width_px:g}: within 0..2 px")
    if args.every < 1:
        raise SystemExit(f"--every {args.every}: at least 1")
    train = train[:: args.every]
    args.out.mkdir(parents=True, exist_ok=True)
    jobs = [
        (p, k, spec, args.shift, args.rotate, args.width_px, args.out / f"{p.group}_{p.id}_{k}.npz")
        for k in range(args.renders)
        for p in train
    ]
    print(f"{len(train)} training pairs x {args.renders} renderings (held out: {how})", flush=True)
    failed = []
    with ProcessPoolExecutor(max_workers=max(1, args.workers)) as pool:
        for i, (name, ok) in enumerate(pool.map(_job, jobs, chunksize=8), 1):
            if not ok:
                failed.append(name)
            if i % 200 == 0 or i == len(jobs):
                print(f"{i}/{len(jobs)} done, {len(failed)} not registered", flush=True)
    if failed:
        print(f"not registered (left out): {', '.join(failed[:20])}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
