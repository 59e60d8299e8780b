#!/usr/bin/env python3
"""Registration on camera renderings of DeepPCB pairs: corner error against the known transform.

Figures only; nothing is asserted. Each pair is rendered as `pcb-inspector evaluate --camera` renders it
(inspector.evaluation.camera_domain, the same seeds): the golden board square to the camera, a second
capture of it ("good", the known-good check) and the defective board ("board"), both up to --shift px and
--rot deg off. One registrar registers them in sequence, as a station does. The true transform of "good" is
the rendering's own; for "board" it is composed with the DeepPCB pair's own offset (a slow full-resolution
ECC on the binarised pair), which is itself unsure along long traces, so the board column is a guide only.

    nice -n 10 .venv/bin/python scripts/bench_registration_camera.py [--group 44000] [--pairs 25] [--camera gray]
"""

from __future__ import annotations

import argparse
import time
import zlib
from pathlib import Path

import cv2
import numpy as np

from inspector.datasets.deeppcb import load_list, read_gray
from inspector.evaluation.camera_domain import capture_pair
from inspector.registration import BoardRegistrar, RegistrationError, RegistrationSettings


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[2] / "shared/datasets/deeppcb")
    ap.add_argument("--group", default="44000")
    ap.add_argument("--pairs", type=int, default=25)
    ap.add_argument("--camera", choices=("gray", "colour"), default="gray")
    ap.add_argument("--shift", type=float, default=3.0)
    ap.add_argument("--rot", type=float, default=0.5)
    ap.add_argument("--highpass", type=float, default=None, help="RegistrationSettings.highpass_px (0: raw images)")
    ap.add_argument("--search", type=float, default=None, help="RegistrationSettings.search_px (0: no check)")
    args = ap.parse_args()
    cv2.setNumThreads(1)
    kw = {k: v for k, v in (("highpass_px", args.highpass), ("search_px", args.search)) if v is not None}
    reg = BoardRegistrar(RegistrationSettings(**kw))
    slow = RegistrationSettings(solver="ecc", full_resolution=True, iterations=200, epsilon=1e-8, highpass_px=0)
    pairs = [p for p in load_list(args.root, None) if p.group == args.group][: args.pairs]
    c = np.array([[0, 0], [639, 0], [0, 639], [639, 639]], np.float64).reshape(-1, 1, 2)
    errs: dict[str, list[float]] = {"good": [], "board": []}
    fails: list[str] = []
    cpu: list[float] = []
    for p in pairs:
        test, temp = read_gray(p.test_path), read_gray(p.template_path)
        f = capture_pair(
            test, temp, zlib.crc32(p.id.encode()), mode=args.camera, max_shift=args.shift, max_rot_deg=args.rot
        )
        own = BoardRegistrar(slow).estimate(test, temp).matrix  # the pair's own offset, test -> template
        truth = {k: np.vstack([f[k][1].matrix, [0.0, 0.0, 1.0]]) for k in ("good", "board")}
        truth["board"] = truth["board"] @ np.linalg.inv(own)
        for k in ("good", "board"):
            t0 = time.thread_time()
            try:
                r = reg.register(f[k][0], f["golden"][0])
            except RegistrationError as exc:
                fails.append(f"{p.id} {k}: {exc}")
                continue
            cpu.append((time.thread_time() - t0) * 1000)
            e = float(np.linalg.norm(cv2.perspectiveTransform(c, r.matrix @ truth[k]) - c, axis=2).max())
            errs[k].append(e)
            if e > 1.0:
                print(f"  {p.id} {k}: corner error {e:.2f} px, quality {r.quality:.3f}, {r.method}")
    print(
        f"group {args.group}, {len(pairs)} pairs, camera {args.camera}, <= {args.shift:g} px / {args.rot:g} deg, "
        f"settings {kw or 'default'}: CPU p50 {np.median(cpu):.1f} ms"
    )
    for k, v in errs.items():
        a = np.array(v) if v else np.array([np.nan])
        print(
            f"  {k:5s}: {len(v)} registered, corner error p50 {np.median(a):.3f} p90 {np.percentile(a, 90):.3f} "
            f"max {a.max():.2f} px, > 1 px: {int((a > 1).sum())}"
        )
    print(f"  not registered: {len(fails)}")
    for f_ in fails:
        print(f"    {f_[:160]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
