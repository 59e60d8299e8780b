"""Time one training step of the recipe's network (batch 16, 320 px crops) under a Keras backend.

    KERAS_BACKEND=tensorflow python scripts/bench_train_step.py [STEPS]
    KERAS_BACKEND=jax python scripts/bench_train_step.py      # where jax is installed
    KERAS_BACKEND=torch python scripts/bench_train_step.py    # where torch is installed

Why: the recipe's wall clock is steps x this figure (the sampler runs in its own thread). The recipe
trains with TensorFlow (`inspector.training.train`); this asks whether another backend of the same
Keras model would train it faster on the CPU at hand. The loss is the recipe's (penalty-reduced focal
loss on the heatmap, L1 on size and offset at the centres), written in `keras.ops` so that every backend
runs the same formula; the batch is random (a step's cost does not depend on the pixels). Prints the
first step (graph building / compiling) apart from the median of the timed ones.
"""

from __future__ import annotations

import os
import sys
import time

import keras
import numpy as np
from keras import ops

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from inspector.training.model import build_detector  # noqa: E402

BATCH, CROP, NUM_CLASSES = 16, 320, 6


def loss_fn(hl, rl, hm, reg, mask):
    pos = ops.cast(hm >= 1.0, "float32")
    p = ops.sigmoid(hl)
    pos_l = ops.power(1 - p, 2) * ops.log_sigmoid(hl) * pos
    neg_l = ops.power(1 - hm, 4) * ops.power(p, 2) * ops.log_sigmoid(-hl) * (1 - pos)
    focal = -(ops.sum(pos_l) + ops.sum(neg_l)) / ops.maximum(ops.sum(pos), 1.0)
    n = ops.maximum(ops.sum(mask), 1.0)
    return focal + ops.sum(ops.abs(rl - reg) * mask) / n


def batch() -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(0)
    s = CROP // 4
    x = rng.integers(0, 256, (BATCH, CROP, CROP, 3)).astype(np.uint8)
    hm = (rng.random((BATCH, s, s, NUM_CLASSES)) ** 40).astype(np.float32)
    hm[:, 10, 10, :] = 1.0
    reg = rng.random((BATCH, s, s, 4)).astype(np.float32)
    mask = np.zeros((BATCH, s, s, 1), np.float32)
    mask[:, 10, 10] = 1.0
    return x, hm, reg, mask


def step_function(model, opt, data):
    """A callable doing one optimiser step on `data` and returning the loss, for the active backend."""
    backend = keras.backend.backend()
    x, hm, reg, mask = data
    if backend == "tensorflow":
        import tensorflow as tf

        @tf.function(reduce_retracing=True)
        def step():
            with tf.GradientTape() as tape:
                hl, rl = model(tf.cast(x, tf.float32) / 255.0, training=True)
                loss = loss_fn(hl, rl, hm, reg, mask)
            grads = tape.gradient(loss, model.trainable_variables)
            opt.apply_gradients(zip(grads, model.trainable_variables))
            return loss

        return lambda: float(step())
    if backend == "jax":
        import jax

        opt.build(model.trainable_variables)

        def compute(tv, ntv):
            (hl, rl), ntv = model.stateless_call(tv, ntv, x.astype(np.float32) / 255.0, training=True)
            return loss_fn(hl, rl, hm, reg, mask), ntv

        grad = jax.value_and_grad(compute, has_aux=True)

        @jax.jit
        def jstep(state):
            tv, ntv, ov = state
            (loss, ntv), g = grad(tv, ntv)
            tv, ov = opt.stateless_apply(ov, g, tv)
            return loss, (tv, ntv, ov)

        state = [
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            [v.value for v in opt.variables],
        ]

        def run():
            loss, state[:] = jstep(tuple(state))
            return float(loss)

        return run
    if backend == "torch":
        import torch

        xt = torch.from_numpy(x)
        hmt, regt, maskt = (torch.from_numpy(a) for a in (hm, reg, mask))

        def run():
            hl, rl = model(xt.float() / 255.0, training=True)
            loss = loss_fn(hl, rl, hmt, regt, maskt)
            model.zero_grad()
            loss.backward()
            opt.apply([v.value.grad for v in model.trainable_weights], model.trainable_weights)
            return float(loss)

        return run
    raise SystemExit(f"KERAS_BACKEND={backend}: this benchmark knows tensorflow, jax and torch")


def main() -> int:
    steps = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    model = build_detector(CROP, None, "small", 1.0, 64, detail=0)
    opt = keras.optimizers.AdamW(learning_rate=1e-3, weight_decay=1e-4, clipnorm=5.0)
    run = step_function(model, opt, batch())
    t = time.perf_counter()
    run()
    first = time.perf_counter() - t
    for _ in range(3):
        run()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        loss = run()
        times.append(time.perf_counter() - t)
    print(
        f"{keras.backend.backend()} {keras.__version__}: first step {first:.1f} s, then {np.median(times):.3f} s a step "
        f"p50 (min {min(times):.3f}, max {max(times):.3f}, {steps} steps, batch {BATCH} x {CROP} px), loss {loss:.3f}",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
