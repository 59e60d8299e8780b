#!/usr/bin/env python3
"""Print calibration figures: intrinsics accuracy on synthetic views, registration error and time,
undistortion and optics-check cost per frame. Figures only; nothing is asserted.

    nice -n 10 .venv/bin/python scripts/bench_calibration.py [--boards 20]
"""

from __future__ import annotations

import argparse
import statistics
import time

import cv2
import numpy as np

from calibration.health import measure_optics
from calibration.intrinsics import calibrate_intrinsics
from calibration.pattern import Pattern
from calibration.registration import BoardRegistrar, RegistrationSettings
from calibration.synthetic import SyntheticCamera, calibration_views
from inspector.synth import make_board


def ms(fn, n):
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times), max(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--boards", type=int, default=20)
    args = ap.parse_args()
    cam = SyntheticCamera()
    pattern = Pattern.parse("checkerboard:9x6:5mm")
    views = calibration_views(pattern, cam, 15, seed=3)
    t = time.perf_counter()
    r = calibrate_intrinsics([(str(i), v.image) for i, v in enumerate(views)], pattern)
    fit_s = time.perf_counter() - t
    K = r.camera_matrix
    print(f"intrinsics: {r.views_used} views 640x480, fit {fit_s:.2f} s, RMS {r.rms_px:.3f} px")
    for name, got, true in [("fx", K[0, 0], cam.fx), ("fy", K[1, 1], cam.fy), ("cx", K[0, 2], cam.cx),
                            ("cy", K[1, 2], cam.cy)]:  # fmt: skip
        print(f"  {name}: {got:.2f} (true {true:.2f}, error {100 * (got / true - 1):+.3f} %)")
    und = r.undistorter()
    med, worst = ms(lambda: und.apply(views[0].image), 50)
    print(f"undistort 640x480: median {med:.2f} ms, max {worst:.2f} ms (maps built once)")

    rng = np.random.default_rng(0)
    errors, times, methods = [], [], {}
    for i in range(args.boards):
        b = make_board(1000 + i, defect_rate=1.0)
        h, w = b.reference.shape
        dx, dy, rot, sc = rng.uniform(-20, 20), rng.uniform(-20, 20), rng.uniform(-5, 5), rng.uniform(0.97, 1.03)
        T = cv2.getRotationMatrix2D((w / 2, h / 2), rot, sc)
        T[:, 2] += (dx, dy)
        img = cv2.warpAffine(b.image, T, (w, h), borderValue=128)
        img = cv2.GaussianBlur(img, (0, 0), 0.7)
        for full in (True, False):
            reg_ = BoardRegistrar(RegistrationSettings(full_resolution=full))
            t = time.perf_counter()
            reg = reg_.estimate(img, b.reference)
            times.append((full, (time.perf_counter() - t) * 1000))
            grid = np.stack(np.meshgrid(np.linspace(20, w - 20, 10), np.linspace(20, h - 20, 10)), -1).reshape(-1, 2)
            there = grid @ T[:2, :2].T + T[:2, 2]
            back = there @ reg.matrix[:2, :2].T + reg.matrix[:2, 2]
            errors.append((full, float(np.linalg.norm(back - grid, axis=1).max())))
            methods[reg.method] = methods.get(reg.method, 0) + 1
    for full in (True, False):
        e = [v for f, v in errors if f is full]
        tt = [v for f, v in times if f is full]
        print(
            f"registration 640x640 ({'full' if full else 'half'} resolution), {args.boards} boards, "
            f"shift +-20 px, rotation +-5 deg, scale +-3 %: max error {max(e):.3f} px, "
            f"median {statistics.median(tt):.1f} ms, max {max(tt):.1f} ms (cold start per board)"
        )
    print(f"  starts used: {methods}")
    b = make_board(5)
    warm = BoardRegistrar()
    warm.estimate(b.image, b.reference)
    med, worst = ms(lambda: warm.estimate(b.image, b.reference), 20)
    print(f"registration, next board from the last pose: median {med:.1f} ms, max {worst:.1f} ms")
    med, worst = ms(lambda: measure_optics(b.image), 50)
    print(f"optics measures 640x640: median {med:.2f} ms, max {worst:.2f} ms")


if __name__ == "__main__":
    main()
