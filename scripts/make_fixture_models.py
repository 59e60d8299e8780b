"""Regenerate the small, real `.tflite` fixture models under tests/fixtures/models/.

    nice -n 10 .venv/bin/python scripts/make_fixture_models.py [--steps 700]

Why trained and not random: the end-to-end test checks every verdict against ground truth, so the
fixture must really find defects. A small CenterNet (MobileNetV3-Small alpha 0.5, neck 32, about
170k parameters) is trained for a few hundred steps on synthetic boards from `inspector.synth`, then
exported with the station's own export tool (`inspector.training.export`):
- synth-det-320.tflite        INT8, 320x320 input: 640 px boards are tiled (exercises tiling);
- synth-det-320-float.tflite  float32 reference of the same weights (INT8 vs float tests);
- synth-det-640.tflite        INT8, 640x640 input, same weights, version 1.1.0 (hot-swap target).
Takes about 5-10 minutes on 2 busy cores. Everything is seeded; files are each well under 1 MB.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

OUT = ROOT / "tests" / "fixtures" / "models"
ALPHA, NECK, CROP = 0.5, 32, 160


def set_bn_momentum(model, momentum: float) -> None:
    """Keras' MobileNetV3 uses BatchNorm momentum 0.999: after a short run the moving statistics are
    still mostly their initial values and inference-mode outputs are wrong. 0.9 tracks within ~50 steps."""
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = momentum


def recalibrate_bn(weights: Path, batches: int) -> Path:
    """Re-estimate BatchNorm moving statistics on whole synthetic boards (no weight update)."""
    import tensorflow as tf

    from inspector.synth import make_board
    from inspector.training.model import build_detector
    from inspector.training.train import stack_input

    model = build_detector(320, None, "small", ALPHA, NECK)
    model.load_weights(weights)
    set_bn_momentum(model, 0.9)
    rng = np.random.default_rng(5)
    for i in range(batches):
        xs = []
        for j in range(4):
            b = make_board(20_000 + i * 4 + j)
            y0, x0 = (int(v) for v in rng.integers(0, 321, size=2))
            xs.append(stack_input(b.image, b.reference)[y0 : y0 + 320, x0 : x0 + 320])
        model(tf.constant(np.stack(xs), tf.float32) / 255.0, training=True)
    out = weights.with_name("synth-det-bn.weights.h5")
    model.save_weights(out)
    print(f"BatchNorm statistics re-estimated on {batches} batches of 4 board crops", flush=True)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--boards", type=int, default=240)
    ap.add_argument("--out", type=Path, default=OUT)
    ap.add_argument("--weights", type=Path, default=None, help="skip training: export these weights")
    ap.add_argument("--recalibrate", type=int, default=150, help="batches to re-estimate BatchNorm statistics on")
    args = ap.parse_args(argv)

    import tensorflow as tf

    from inspector.synth import make_board
    from inspector.training.export import export_model, load_trained
    from inspector.training.model import NUM_CLASSES, build_detector
    from inspector.training.targets import make_targets
    from inspector.training.train import STRIDE, focal_loss, lr_at, stack_input

    tf.keras.utils.set_random_seed(1)
    weights = args.weights
    if weights is None:
        t0 = time.time()
        boards = [make_board(10_000 + i) for i in range(args.boards)]
        print(f"{len(boards)} synthetic boards in {time.time() - t0:.0f} s", flush=True)
        rng = np.random.default_rng(1)
        model = build_detector(CROP, None, "small", ALPHA, NECK)
        set_bn_momentum(model, 0.9)
        print(f"{model.name}: {model.count_params():,} parameters", flush=True)
        opt = tf.keras.optimizers.AdamW(learning_rate=2e-3, weight_decay=1e-4, clipnorm=5.0)

        def sample():
            b = boards[int(rng.integers(len(boards)))]
            x0, y0 = (int(v) for v in rng.integers(0, 640 - CROP + 1, size=2))
            if b.defects and rng.random() < 0.8:  # most crops around a defect: positives are rare otherwise
                x1, y1, x2, y2, _ = b.defects[int(rng.integers(len(b.defects)))]
                x0 = int(np.clip((x1 + x2) / 2 - rng.integers(16, CROP - 16), 0, 640 - CROP))
                y0 = int(np.clip((y1 + y2) / 2 - rng.integers(16, CROP - 16), 0, 640 - CROP))
            img = b.image[y0 : y0 + CROP, x0 : x0 + CROP]
            ref = b.reference[y0 : y0 + CROP, x0 : x0 + CROP]
            boxes, classes = [], []
            for x1, y1, x2, y2, c in b.defects:
                cx, cy = (x1 + x2) / 2 - x0, (y1 + y2) / 2 - y0
                if 0 <= cx < CROP and 0 <= cy < CROP:
                    boxes.append([max(x1 - x0, 0), max(y1 - y0, 0), min(x2 - x0, CROP), min(y2 - y0, CROP)])
                    classes.append(c - 1)
            k = int(rng.integers(4))
            x = np.rot90(stack_input(img, ref), k)
            bx = np.asarray(boxes, np.float32).reshape(-1, 4)
            for _ in range(k):  # rotate boxes 90 degrees counter-clockwise, like np.rot90
                bx = np.stack([bx[:, 1], CROP - bx[:, 2], bx[:, 3], CROP - bx[:, 0]], axis=1)
            hm, reg, mask = make_targets(bx, np.asarray(classes, np.int64), CROP, STRIDE, NUM_CLASSES)
            return np.ascontiguousarray(x), hm, reg, mask

        @tf.function(reduce_retracing=True)
        def step_fn(x, hm, reg, mask, lr):
            opt.learning_rate.assign(lr)
            with tf.GradientTape() as tape:
                hl, rl = model(tf.cast(x, tf.float32) / 255.0, training=True)
                npos = tf.maximum(tf.reduce_sum(mask), 1.0)
                loss = (
                    focal_loss(hl, hm)
                    + tf.reduce_sum(tf.abs(rl[..., :2] - reg[..., :2]) * mask) / npos
                    + tf.reduce_sum(tf.abs(rl[..., 2:] - reg[..., 2:]) * mask) / npos
                )
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        t0, ema = time.time(), None
        for step in range(args.steps):
            batch = [np.stack(a) for a in zip(*[sample() for _ in range(args.batch)])]
            loss = float(step_fn(*batch, tf.constant(lr_at(step, args.steps, 2e-3, 50), tf.float32)))
            ema = loss if ema is None else 0.95 * ema + 0.05 * loss
            if (step + 1) % 50 == 0:
                print(f"step {step + 1}/{args.steps} loss {ema:.3f} ({time.time() - t0:.0f} s)", flush=True)
        weights = Path("/tmp/synth-det.weights.h5")
        model.save_weights(weights)
    if args.recalibrate:
        weights = recalibrate_bn(weights, args.recalibrate)

    args.out.mkdir(parents=True, exist_ok=True)
    check = [(b.image, b.reference) for b in (make_board(900_000 + i) for i in range(8))]
    calib = [(b.image, b.reference) for b in (make_board(800_000 + i) for i in range(24))]
    common = dict(
        calib_pairs=calib,
        check_pairs=check,
        threshold=0.3,
        max_defect_px=64,
        training={"data": "inspector.synth boards 10000..", "steps": args.steps, "crop": CROP, "alpha": ALPHA},
        licence="Test fixture trained on synthetic boards; not for production.",
    )
    m320 = load_trained(weights, 320, "small", ALPHA, NECK)
    export_model(
        m320,
        args.out / "synth-det-320.tflite",
        size=320,
        name="synth-det",
        version="1.0.0",
        float_out=args.out / "synth-det-320-float.tflite",
        **common,
    )
    m640 = load_trained(weights, 640, "small", ALPHA, NECK)
    export_model(m640, args.out / "synth-det-640.tflite", size=640, name="synth-det", version="1.1.0", **common)
    for p in sorted(args.out.glob("*.tflite")):
        print(f"{p.name}: {p.stat().st_size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
