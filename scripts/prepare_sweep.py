"""Choose the camera preparation (`input_domain`) on the TRAINING boards, never on the held-out ones.

    .venv/bin/python scripts/prepare_sweep.py --root ../shared/datasets/deeppcb \
        --model models/pcb-defect-det.tflite [--seed 7] [--profile line|harsh] [--every 1] [--json] \
        shipped same_band=0.3 speck_px=8

For each variant (`shipped`, or comma-separated `field=value` overrides of the sidecar's `input_domain`) the
script writes a package beside the cache (the same model file, the changed sidecar), renders every training
pair as a gray and a colour camera see it (3 px / 0.5 deg off, `--seed`; renderings are cached, so later
variants only inspect), runs each board, a second capture of its golden board and a good board of another physical
board (its own weave and grain, as a line's good boards are) through `inspect_board` as the station does, and prints
mAP@0.5 and the known-good captures of each kind rejected. The held-out groups
(`held_out_split`) are left out: a choice made here can still be reported on them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _variant(meta: dict, spec: str) -> dict:
    meta = json.loads(json.dumps(meta))
    if spec == "shipped":
        return meta
    dom = meta["input_domain"]
    for item in spec.split(","):
        key, _, value = item.partition("=")
        if not value:
            raise SystemExit(f"variant {spec!r}: expected field=value, got {item!r}")
        dom[key] = json.loads(value) if value[:1] in "0123456789-[{" else value
    return meta


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("variants", nargs="+", help="'shipped' or field=value[,field=value] overrides of input_domain")
    ap.add_argument("--root", type=Path, required=True, help="DeepPCB-layout dataset")
    ap.add_argument("--model", type=Path, default=Path("models/pcb-defect-det.tflite"))
    ap.add_argument("--seed", type=int, default=7, help="camera seed (evaluate --camera uses 0 and 1)")
    ap.add_argument(
        "--profile", choices=("line", "harsh"), default="line", help="camera set-up of the renderings (camera_domain)"
    )
    ap.add_argument("--every", type=int, default=1, help="every Nth training pair (1 = all)")
    ap.add_argument("--cache", type=Path, default=Path("runs/prepare-sweep"))
    ap.add_argument("--json", action="store_true", help="one JSON object per variant and camera")
    args = ap.parse_args(argv)

    from inspector.commands.evaluate import _camera_frames
    from inspector.config import CalibrationSection, Recipe
    from inspector.datasets.deeppcb import CLASS_NAMES, held_out_split, load_list, read_gray
    from inspector.decision import RecipeRules
    from inspector.detect.factory import create_detector
    from inspector.detect.package import write_sidecar
    from inspector.detect.registry import default_detector, settings_for_model
    from inspector.evaluation.coco import coco_map
    from inspector.inspection import inspect_board
    from inspector.registration import BoardRegistrar, settings_from_config

    pairs = load_list(args.root)
    train, _, _ = held_out_split(args.root, pairs)
    train = train[:: args.every]
    renders = args.cache / (f"renders-seed{args.seed}" + ("" if args.profile == "line" else f"-{args.profile}"))
    renders.mkdir(parents=True, exist_ok=True)
    shipped = json.loads(args.model.with_suffix(".json").read_text())

    def frames(pair, mode: str):
        f = renders / f"{pair.id}-{mode}.npz"
        if f.exists():
            z = np.load(f)
            if "o" in z:  # caches written before the other board was kept are rendered again
                return z["b"], z["r"], z["g"], z["t"], z["o"]
        cam = {"mode": mode, "shift": 3.0, "rotate": 0.5, "seed": args.seed, "profile": args.profile}
        b, r, g, t, o = _camera_frames(read_gray(pair.test_path), read_gray(pair.template_path), pair, cam)
        t = np.asarray(t, np.float32).reshape(-1, 4)
        np.savez(f.with_suffix(".tmp.npz"), b=b, r=r, g=g, t=t, o=o)
        f.with_suffix(".tmp.npz").replace(f)
        return b, r, g, t, o

    rules = RecipeRules(Recipe())
    floor = {c: 0.05 for c in range(1, len(CLASS_NAMES) + 1)}
    for spec in args.variants:
        pkg = args.cache / "packages" / spec.replace(",", "_").replace("=", "-")
        pkg.mkdir(parents=True, exist_ok=True)
        shutil.copy(args.model, pkg / args.model.name)
        write_sidecar(pkg / args.model.name, _variant(shipped, spec))
        cfg = settings_for_model(default_detector(), pkg / args.model.name).cpu_only()
        cfg.threads = 2
        det = create_detector(cfg)
        det.load()
        for mode in ("gray", "colour"):
            # a fresh registrar per variant and camera: each starts from the first board's pose, so two variants
            # see the same registrations (a shared one carried the last variant's final pose into the next)
            registrar = BoardRegistrar(settings_from_config(CalibrationSection()))
            gts, dets, rejected, other_rejected, escapes = [], [], [], [], 0
            for p in train:
                board, ref, good, truth, other = frames(p, mode)
                st = inspect_board(board, ref, rules, det, registrar)
                found = st.to_frame(det.detect(st.board_image, st.reference, floor)) if st.inspected else []
                gts.append((truth, p.classes))
                dets.append(
                    (
                        np.array([d.box for d in found], np.float32).reshape(-1, 4),
                        np.array([d.score for d in found], np.float32),
                        np.array([d.class_id - 1 for d in found], np.int64),
                    )
                )
                escapes += int(len(p.boxes) > 0 and st.passed)
                if not inspect_board(good, ref, rules, det, registrar).passed:
                    rejected.append(p.id)
                if not inspect_board(other, ref, rules, det, registrar).passed:
                    other_rejected.append(p.id)
            m = coco_map(gts, dets, CLASS_NAMES)
            row = {
                "variant": spec,
                "camera": mode,
                "profile": args.profile,
                "boards": len(train),
                "map50": round(m.map50, 4),
                "escapes": escapes,
                "known_good_rejected": len(rejected),
                "rejected": rejected,
                "other_board_rejected": len(other_rejected),
                "other_rejected": other_rejected,
            }
            if args.json:
                print(json.dumps(row), flush=True)
            else:
                print(
                    f"{spec:30s} {mode:6s} {args.profile:5s} boards {len(train)}  mAP@0.5 {m.map50:.4f}  escapes {escapes}  "
                    f"known-good rejected: second capture {len(rejected)} {' '.join(rejected)}; "
                    f"other board {len(other_rejected)} {' '.join(other_rejected)}",
                    flush=True,
                )
        det.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
