"""The station's reduced pass taught to its full-size pass: soft heatmap targets from a frozen teacher.

Why: the shipped package runs the network four times a board (mirrored, and shrunk to 0.8 for large irregular
defects that the full-size pass draws in fragments); that is three quarters of its time, and the model issue's
15 ms needs one pass. The reduced pass is most of what the extra passes buy on held-out boards. Here a frozen copy
of the weights (the teacher) looks at every training crop at full size and shrunk, as the station's reduced pass
does (board and reference area-averaged, the difference taken after), keeps the shrunk pass's heatmap only where
its own box is large (the package's `min_box_px`), and the student's full-size heatmap is pulled towards the larger
of the two. The labels' loss stays as it is; the labelled centres are left to it.
"""

from __future__ import annotations

import tensorflow as tf

from .model import STRIDE, build_detector


class ReducedPassTeacher:
    """Frozen weights at the crop's size and at `scale` of it; `target(x)` gives the soft heatmap (probabilities)."""

    def __init__(self, weights, crop: int, scale: float, min_box_px: float, **build):
        small = round(crop * scale)
        if small % 32 or not 0.0 < scale < 1.0:
            raise SystemExit(f"--distill-scale {scale}: the crop shrunk to it ({small} px) must be a multiple of 32")
        self.full = build_detector(crop, None, **build)
        self.small = build_detector(small, None, **build)
        for m in (self.full, self.small):
            m.load_weights(weights)
            m.trainable = False
        self.crop, self.small_px, self.scale, self.min_box_px = crop, small, scale, min_box_px

    def target(self, x: tf.Tensor) -> tf.Tensor:
        """`x`: float [0, 1] batch (board, reference, |difference|) at the crop's size -> (B, S, S, C) in [0, 1]."""
        full = tf.sigmoid(self.full(x, training=False)[0])
        pair = tf.image.resize(x[..., :2], (self.small_px, self.small_px), method="area")
        shrunk = tf.concat([pair, tf.abs(pair[..., :1] - pair[..., 1:2])], axis=-1)
        hm, reg = self.small(shrunk, training=False)
        # The box each cell would draw, in full-size pixels; the package keeps the reduced pass's large boxes only.
        side = tf.exp(tf.reduce_max(reg[..., :2], axis=-1, keepdims=True)) * STRIDE / self.scale
        large = tf.cast(side >= self.min_box_px, tf.float32)
        s = self.crop // STRIDE
        reduced = tf.image.resize(tf.sigmoid(hm) * large, (s, s), method="bilinear")
        return tf.maximum(full, reduced)


def distill_loss(logits: tf.Tensor, target: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
    """Quality-focal binary cross-entropy of the student's heatmap against the teacher's, off the labelled centres,
    normalised like the labels' focal loss (per labelled centre)."""
    p = tf.sigmoid(logits)
    bce = -(target * tf.math.log_sigmoid(logits) + (1.0 - target) * tf.math.log_sigmoid(-logits))
    off_centre = tf.cast(labels < 1.0, tf.float32)
    npos = tf.maximum(tf.reduce_sum(tf.cast(labels >= 1.0, tf.float32)), 1.0)
    return tf.reduce_sum(bce * tf.square(target - p) * off_centre) / npos
