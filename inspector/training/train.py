"""Train the reference-aware CenterNet detector on DeepPCB, on the CPU, resumably.

    python -m inspector.training.train --data ../shared/datasets/deeppcb --out runs/det

Progress (step, epoch, loss, crops/s, ETA, validation mAP) goes to stdout and `log.jsonl`. The
run checkpoints model + optimizer + step every `--ckpt-every` steps and resumes from the last
checkpoint when started again with the same `--out`. The best validation weights are kept in
`best.weights.h5`, because scores move by about +-0.01 between evaluations.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import threading
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from inspector.datasets.deeppcb import CLASS_NAMES, held_out_split, load_list, read_gray  # noqa: E402
from inspector.detect.centernet import decode  # noqa: E402
from inspector.evaluation.coco import coco_map  # noqa: E402
from inspector.training.model import NUM_CLASSES, STRIDE, build_detector  # noqa: E402
from inspector.training.targets import make_targets  # noqa: E402


def stack_input(board: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """Board, reference and their absolute difference as 3 uint8 channels (the model's input)."""
    diff = cv2.absdiff(board, reference)
    return np.dstack([board, reference, diff])


class Sampler:
    """Random crops with D4 flips/rotations, photometric noise on the board only, and known-good negatives."""

    def __init__(
        self,
        pairs,
        crop: int,
        seed: int,
        scale_max: float = 1.0,
        scale_min: float = 1.0,
        camera: list[dict] | None = None,
        camera_mix: float = 0.0,
        etch_px: int = 0,
        etch_p: float = 0.5,
    ):
        self.boards = [read_gray(p.test_path) for p in pairs]
        # Camera-prepared boards (inspector.training.camera_cache): a `camera_mix` share of the crops comes
        # from them, so the network learns the station's binarisation of camera frames as well as DeepPCB's.
        self.camera = camera or []
        self.camera_mix = camera_mix if self.camera else 0.0
        self.temps = [read_gray(p.template_path) for p in pairs]
        self.pairs = pairs
        self.crop = crop
        self.rng = np.random.default_rng(seed)
        # Etching varies from board to board: a `etch_p` share of the boards (known-good negatives included) have every
        # copper edge moved by a whole number of px up to `etch_px` against their template. Drawn from a stream of its
        # own, so a run with it sees the same crops otherwise (and a run without it the very same crops as before).
        self.etch_px, self.etch_p = etch_px, etch_p
        self.etch_rng = np.random.default_rng([seed, 13])
        # Zoom-in: DeepPCB's training groups have few defects over 60 px (90th percentile 51-65 px)
        # while other board designs have many (validation: 90th percentile 72-93 px); recall on those
        # was 0.67-0.92 against 0.99 on small ones. Off (1.0) by default so earlier stages reproduce.
        # Zoom-out (scale_min < 1) shows the model boards as the station's reduced pass sees them.
        scale = (
            [A.RandomScale(scale_limit=(scale_min - 1.0, scale_max - 1.0), p=0.5)]
            if scale_max > 1.0 or scale_min < 1.0
            else []
        )
        # Boards smaller than the crop (a station's ROI, a small product) are padded with black, board
        # and reference alike; only then, so runs on larger boards draw the same random numbers as before.
        small = any(min(b.shape[:2]) < crop for b in self.boards)
        pad = [A.PadIfNeeded(crop, crop, position="top_left", border_mode=cv2.BORDER_CONSTANT, fill=0)] if small else []
        self.geo = A.Compose(
            [*scale, *pad, A.D4(p=1.0), A.RandomCrop(crop, crop, p=1.0)],
            bbox_params=A.BboxParams(format="pascal_voc", label_fields=["classes"], min_visibility=0.3),
            additional_targets={"template": "image"},
            seed=seed,
        )
        self.photo = A.Compose(
            [
                A.RandomBrightnessContrast(brightness_limit=0.12, contrast_limit=0.12, p=0.4),
                A.GaussianBlur(blur_limit=(3, 3), sigma_limit=(0.2, 0.7), p=0.15),
                A.GaussNoise(std_range=(0.01, 0.04), p=0.2),
            ],
            seed=seed + 1,
        )

    def _pick(self):
        """(board, template, known-good board, boxes, classes) of one training pair, DeepPCB's or a camera's."""
        if self.camera_mix and self.rng.random() < self.camera_mix:
            e = self.camera[int(self.rng.integers(len(self.camera)))]
            return e["board"], e["template"], e["good"], e["boxes"], e["classes"]
        i = int(self.rng.integers(len(self.pairs)))
        p = self.pairs[i]
        return self.boards[i], self.temps[i], self.temps[i], p.boxes, p.classes

    def sample(self):
        board, temp, good, boxes, classes = self._pick()
        if self.rng.random() < 0.08:  # a known-good board: the template, or a second camera capture of it
            board, boxes, classes = good, np.zeros((0, 4), np.float32), np.zeros((0,), np.int64)
        h, w = board.shape
        boxes = np.clip(boxes, 0, [w - 1, h - 1, w, h])
        out = self.geo(image=board, template=temp, bboxes=boxes, classes=classes)
        b, t = out["image"], out["template"]
        if self.rng.random() < 0.15:  # slight misregistration, as a real station's reference has
            dx, dy = self.rng.integers(-1, 2, size=2)
            t = np.roll(t, (int(dy), int(dx)), axis=(0, 1))
        if self.etch_px and self.etch_rng.random() < self.etch_p:
            shift = int(self.etch_rng.choice([k for k in range(-self.etch_px, self.etch_px + 1) if k]))
            b = etch_mask(b, shift)
        b = self.photo(image=b)["image"]
        bx = np.asarray(out["bboxes"], np.float32).reshape(-1, 4)
        cl = np.asarray(out["classes"], np.int64)
        x = stack_input(b, t)
        hm, reg, mask = make_targets(bx, cl, self.crop, STRIDE, NUM_CLASSES)
        return x, hm, reg, mask


def etch_mask(board: np.ndarray, px: int) -> np.ndarray:
    """A binarised board (copper dark) with every copper edge `px` further out (negative: further in).

    Why: a line's boards are each etched a little otherwise than the golden board, while every DeepPCB board has its
    template's traces exactly; boards 1 px (21 um) wider than their golden board drew false shorts on narrowed gaps
    (docs/model.md, *Etching*). Whole pixels, as the station's prepared masks are binary."""
    kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * abs(px) + 1, 2 * abs(px) + 1))
    # Copper is dark: growing it is eroding the bright laminate.
    return cv2.erode(board, kern) if px > 0 else cv2.dilate(board, kern)


def batches(sampler: Sampler, batch: int, q: queue.Queue, stop: threading.Event):
    while not stop.is_set():
        items = [sampler.sample() for _ in range(batch)]
        arrs = tuple(np.stack(a) for a in zip(*items))
        while not stop.is_set():
            try:
                q.put(arrs, timeout=0.5)
                break
            except queue.Full:
                continue


def focal_loss(logits, gt):
    pos = tf.cast(gt >= 1.0, tf.float32)
    p = tf.sigmoid(logits)
    logp = tf.math.log_sigmoid(logits)
    log1mp = tf.math.log_sigmoid(-logits)
    pos_l = tf.pow(1 - p, 2) * logp * pos
    neg_l = tf.pow(1 - gt, 4) * tf.pow(p, 2) * log1mp * (1 - pos)
    npos = tf.maximum(tf.reduce_sum(pos), 1.0)
    return -(tf.reduce_sum(pos_l) + tf.reduce_sum(neg_l)) / npos


def fit_board(img: np.ndarray, size: int) -> tuple[np.ndarray, float]:
    """`img` scaled down (never up) to fit `size` x `size` and padded bottom/right with black; the scale.

    The validation model has a fixed square input; a station's boards can have any size (ROI,
    product). 640x640 boards pass unchanged."""
    h, w = img.shape[:2]
    s = min(1.0, size / max(h, w))
    if s < 1.0:
        img = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    out = np.zeros((size, size), np.uint8)
    out[: img.shape[0], : img.shape[1]] = img
    return out, s


def evaluate_float(model640, val_pairs) -> dict:
    gts, dets = [], []
    size = int(model640.input_shape[1])
    for p in val_pairs:
        board, s = fit_board(read_gray(p.test_path), size)
        temp, _ = fit_board(read_gray(p.template_path), size)
        x = stack_input(board, temp)[None].astype(np.float32) / 255.0
        hm, rg = model640(x, training=False)
        boxes, scores, classes = decode(tf.sigmoid(hm)[0].numpy(), rg[0].numpy(), STRIDE, floor=0.05)
        boxes = np.asarray(boxes, np.float32).reshape(-1, 4) / s
        gts.append((p.boxes, p.classes))
        dets.append((boxes, scores, classes))
    m = coco_map(gts, dets, CLASS_NAMES)
    return {"map50": m.map50, "map50_95": m.map50_95, "per_class": m.per_class_ap50}


def averaged_weights(model, opt) -> list:
    """The model's weights with the optimizer's moving average in place of the trainable ones.

    Keras only offers the average by writing it over the variables, so the live values are put back
    afterwards and training continues from them.
    """
    live = [v.numpy() for v in model.trainable_variables]
    opt.finalize_variable_values(model.trainable_variables)
    weights = model.get_weights()
    for v, value in zip(model.trainable_variables, live):
        v.assign(value)
    return weights


def lr_at(step: int, total: int, base: float, warmup: int) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return base * (0.02 + 0.98 * 0.5 * (1 + math.cos(math.pi * t)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, required=True, help="DeepPCB root (holds trainval.txt)")
    ap.add_argument("--out", type=Path, required=True, help="run folder: checkpoints, log, best weights")
    ap.add_argument("--steps", type=int, default=7000, help="total optimiser steps (cosine schedule length)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--crop", type=int, default=320)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=300)
    ap.add_argument("--backbone", default="small", choices=["small", "large"])
    ap.add_argument("--alpha", type=float, default=1.0)
    ap.add_argument("--neck", type=int, default=64)
    ap.add_argument("--detail", type=int, default=0, help="channels of the plain-conv stride-4 detail branch (0: none)")
    ap.add_argument("--eval-every", type=int, default=500)
    ap.add_argument("--ckpt-every", type=int, default=250)
    ap.add_argument("--log-every", type=int, default=50, help="progress line every N steps")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--scale-max",
        type=float,
        default=1.0,
        help="zoom half of the crops in by a factor drawn from 1..SCALE_MAX (1.0: no zoom), for larger defects",
    )
    ap.add_argument(
        "--scale-min",
        type=float,
        default=1.0,
        help="with --scale-max: the zoom factor is drawn from SCALE_MIN..SCALE_MAX (below 1: zoom out; "
        "the crop must still fit)",
    )
    ap.add_argument(
        "--camera-cache",
        type=Path,
        default=None,
        help="folder of camera-prepared training boards (python -m inspector.training.camera_cache)",
    )
    ap.add_argument(
        "--camera-mix",
        type=float,
        default=0.5,
        help="with --camera-cache: the share of crops taken from the camera-prepared boards",
    )
    ap.add_argument(
        "--ema",
        type=float,
        default=0.0,
        help="keep an exponential moving average of the weights with this momentum (e.g. 0.999; 0: off); "
        "validation and last.weights.h5 then use the average",
    )
    ap.add_argument(
        "--val-groups",
        default=None,
        help="board groups held out for validation (default: the data's heldout.txt (a station export), "
        "else DeepPCB's 44000,92000, else 20%% of the boards chosen by board)",
    )
    ap.add_argument(
        "--train-on",
        choices=("split", "all"),
        default="split",
        help="'split': train on the training boards and validate on the held-out ones (how a recipe is chosen and "
        "measured); 'all': train on every pair, for the shipped model once the recipe is fixed on the split. "
        "Nothing is validated then (the held-out boards are trained on) and no best.weights.h5 is written",
    )
    ap.add_argument(
        "--etch-px",
        type=int,
        default=0,
        help="draw half of the boards (known-good negatives too) with every copper edge moved by up to this many whole "
        "px against the template (0: off), as etching varies from board to board",
    )
    ap.add_argument(
        "--distill-from",
        type=Path,
        default=None,
        help="weights of a frozen teacher whose full-size and reduced pass (--distill-scale) give soft heatmap targets "
        "(inspector/training/distill.py): one pass taught what the package's extra pass finds",
    )
    ap.add_argument("--distill-weight", type=float, default=1.0, help="with --distill-from: the soft targets' weight")
    ap.add_argument("--distill-scale", type=float, default=0.8, help="with --distill-from: the reduced pass's scale")
    ap.add_argument(
        "--distill-min-box",
        type=float,
        default=50.0,
        help="with --distill-from: the reduced pass counts where its box is at least this long (px), as the package's",
    )
    ap.add_argument(
        "--init-weights",
        type=Path,
        default=None,
        help="start from these weights (e.g. the shipped model's .weights.h5) to fine-tune on your own boards",
    )
    args = ap.parse_args(argv)
    if not 0.0 < args.scale_min <= 1.0 or args.scale_max < 1.0:
        raise SystemExit(f"--scale-min {args.scale_min} / --scale-max {args.scale_max}: need 0 < min <= 1 <= max")
    if not 0 <= args.etch_px <= 3:
        raise SystemExit(f"--etch-px {args.etch_px}: within 0..3 (a pixel is about 21 um at DeepPCB's resolution)")
    if not 0.0 <= args.ema < 1.0:
        raise SystemExit(f"--ema {args.ema}: the momentum must be in [0, 1)")
    args.out.mkdir(parents=True, exist_ok=True)
    cfg_path = args.out / "config.json"
    cfg = {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()}
    if cfg_path.exists():
        old = json.loads(cfg_path.read_text())
        defaults = {"detail": 0, "train_on": "split"}
        for k in ("backbone", "alpha", "neck", "crop", "batch", "detail", "train_on"):
            if old.get(k, defaults.get(k)) != cfg[k]:
                raise SystemExit(
                    f"{args.out} was trained with {k}={old.get(k, defaults.get(k))}, not {cfg[k]}; use another --out"
                )
    cfg_path.write_text(json.dumps(cfg, indent=2))

    tf.keras.utils.set_random_seed(args.seed)
    pairs = load_list(args.data)
    groups = frozenset(g.strip() for g in args.val_groups.split(",")) if args.val_groups else None
    train_pairs, val_pairs, how = held_out_split(args.data, pairs, groups)
    if not train_pairs or not val_pairs:
        raise SystemExit(
            f"held out {how}: {len(train_pairs)} training and {len(val_pairs)} validation boards; "
            f"groups present: {sorted({p.group for p in pairs})}"
        )
    if args.train_on == "all":
        # Figures of this run would be on boards it trained on: none are computed. The recipe's figures are its
        # run on the split, with the same stages and steps.
        train_pairs, val_pairs = train_pairs + val_pairs, []
        print(
            f"train {len(train_pairs)} pairs: all of them (--train-on all; no validation, would be {how})", flush=True
        )
    else:
        print(f"train {len(train_pairs)} pairs, val {len(val_pairs)} pairs (held out: {how})", flush=True)

    model = build_detector(args.crop, None, args.backbone, args.alpha, args.neck, detail=args.detail)
    model640 = build_detector(640, 1, args.backbone, args.alpha, args.neck, detail=args.detail)
    print(f"{model.name}: {model.count_params():,} parameters", flush=True)
    # Keras keeps the average inside the optimizer, so the checkpoint carries it and a resumed run
    # continues the same average.
    opt = tf.keras.optimizers.AdamW(
        learning_rate=args.lr,
        weight_decay=1e-4,
        clipnorm=5.0,
        use_ema=args.ema > 0,
        ema_momentum=args.ema if args.ema > 0 else 0.99,
    )
    step_var = tf.Variable(0, dtype=tf.int64, trainable=False)
    best_var = tf.Variable(-1.0, dtype=tf.float64, trainable=False)
    ckpt = tf.train.Checkpoint(model=model, optimizer=opt, step=step_var, best=best_var)
    mgr = tf.train.CheckpointManager(ckpt, str(args.out / "ckpt"), max_to_keep=2)
    if args.init_weights and not mgr.latest_checkpoint:
        model.load_weights(args.init_weights)
        print(f"initialised from {args.init_weights}", flush=True)
    if mgr.latest_checkpoint:
        ckpt.restore(mgr.latest_checkpoint)
        print(f"resumed from {mgr.latest_checkpoint} at step {int(step_var.numpy())}", flush=True)

    teacher = None
    if args.distill_from is not None:
        from inspector.training.distill import ReducedPassTeacher, distill_loss

        build = dict(backbone=args.backbone, alpha=args.alpha, neck=args.neck, detail=args.detail)
        teacher = ReducedPassTeacher(args.distill_from, args.crop, args.distill_scale, args.distill_min_box, **build)
        print(f"distilling {args.distill_from} (full size and x{args.distill_scale}), weight {args.distill_weight}")

    @tf.function(reduce_retracing=True)
    def train_step(x, hm, reg, mask, lr):
        opt.learning_rate.assign(lr)
        xf = tf.cast(x, tf.float32) / 255.0
        soft = None if teacher is None else teacher.target(xf)  # before the tape: the frozen teacher takes no gradient
        with tf.GradientTape() as tape:
            hl, rl = model(xf, training=True)
            lf = focal_loss(hl, hm)
            if soft is not None:
                lf = lf + args.distill_weight * distill_loss(hl, soft, hm)
            npos = tf.maximum(tf.reduce_sum(mask), 1.0)
            lwh = tf.reduce_sum(tf.abs(rl[..., :2] - reg[..., :2]) * mask) / npos
            loff = tf.reduce_sum(tf.abs(rl[..., 2:] - reg[..., 2:]) * mask) / npos
            loss = lf + lwh + loff
        grads = tape.gradient(loss, model.trainable_variables)
        opt.apply_gradients(zip(grads, model.trainable_variables))
        return loss, lf, lwh, loff

    camera = None
    if args.camera_cache is not None:
        if not 0.0 < args.camera_mix <= 1.0:
            raise SystemExit(f"--camera-mix {args.camera_mix}: must be in (0, 1]")
        from inspector.training.camera_cache import load_cache

        camera = load_cache(args.camera_cache)
        print(f"camera-prepared boards: {len(camera)} from {args.camera_cache}, mix {args.camera_mix}", flush=True)
    sampler = Sampler(
        train_pairs,
        args.crop,
        args.seed + int(step_var.numpy()),
        args.scale_max,
        args.scale_min,
        camera=camera,
        camera_mix=args.camera_mix,
        etch_px=args.etch_px,
    )
    q: queue.Queue = queue.Queue(maxsize=4)
    stop = threading.Event()
    th = threading.Thread(target=batches, args=(sampler, args.batch, q, stop), daemon=True)
    th.start()
    log = (args.out / "log.jsonl").open("a")
    step = int(step_var.numpy())
    t0, s0 = time.time(), step
    smooth = None
    try:
        while step < args.steps:
            x, hm, reg, mask = q.get()
            lr = lr_at(step, args.steps, args.lr, args.warmup)
            loss, lf, lwh, loff = (float(v) for v in train_step(x, hm, reg, mask, tf.constant(lr, tf.float32)))
            if not math.isfinite(loss):
                raise SystemExit(
                    f"loss became {loss} at step {step}; restart from the last checkpoint with a lower --lr"
                )
            step += 1
            step_var.assign(step)
            smooth = loss if smooth is None else 0.98 * smooth + 0.02 * loss
            if step % args.log_every == 0:
                rate = (step - s0) * args.batch / max(time.time() - t0, 1e-6)
                eta = (args.steps - step) * args.batch / max(rate, 1e-6)
                epoch = step * args.batch / len(train_pairs) / 4  # a 320 crop is a quarter board
                print(
                    f"step {step}/{args.steps} epoch {epoch:.1f} loss {smooth:.3f} (hm {lf:.3f} wh {lwh:.3f} "
                    f"off {loff:.3f}) lr {lr:.2e} {rate:.1f} crops/s ETA {eta / 60:.0f} min",
                    flush=True,
                )
            if step % args.ckpt_every == 0 or step == args.steps:
                mgr.save(checkpoint_number=step)
            if val_pairs and (step % args.eval_every == 0 or step == args.steps):
                te = time.time()
                # The trained BatchNorm statistics, as the export ships them (re-estimating them on whole
                # boards scored worse; see inspector/training/export.py recalibrate_batchnorm).
                model640.set_weights(averaged_weights(model, opt) if args.ema else model.get_weights())
                m = evaluate_float(model640, val_pairs)
                rec = {"step": step, "time": time.time(), "loss": smooth, **m}
                log.write(json.dumps(rec) + "\n")
                log.flush()
                pc = " ".join(f"{k} {v:.3f}" for k, v in m["per_class"].items())
                print(
                    f"VAL step {step}: mAP@0.5 {m['map50']:.4f} mAP@0.5:0.95 {m['map50_95']:.4f} | {pc} "
                    f"({time.time() - te:.0f} s)",
                    flush=True,
                )
                if m["map50"] > float(best_var.numpy()):
                    best_var.assign(m["map50"])
                    model640.save_weights(args.out / "best.weights.h5")
                    (args.out / "best.json").write_text(json.dumps(rec, indent=2))
                    print(f"  new best {m['map50']:.4f}", flush=True)
                mgr.save(checkpoint_number=step)
                t0, s0 = time.time(), step
    finally:
        stop.set()
    if args.ema:
        opt.finalize_variable_values(model.trainable_variables)
    model.save_weights(args.out / "last.weights.h5")
    if val_pairs:
        print(f"done: best val mAP@0.5 {float(best_var.numpy()):.4f}", flush=True)
    else:
        print(f"done: {args.out / 'last.weights.h5'} (trained on all pairs, not validated)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
