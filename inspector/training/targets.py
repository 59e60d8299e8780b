"""CenterNet training targets, in numpy so they are built in the input pipeline, not the graph."""

from __future__ import annotations

import numpy as np


def make_targets(
    boxes: np.ndarray, classes: np.ndarray, size: int, stride: int, num_classes: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Elliptical Gaussian heatmaps (TTFNet-style sigma = 0.54 * side / 6) plus regression at centres.

    Returns heatmap (S, S, C), regression (S, S, 4) = log(w/stride), log(h/stride), dx, dy, and a
    (S, S, 1) mask that is 1 at each object centre.
    """
    s = size // stride
    hm = np.zeros((s, s, num_classes), np.float32)
    reg = np.zeros((s, s, 4), np.float32)
    mask = np.zeros((s, s, 1), np.float32)
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
    for (x1, y1, x2, y2), c in zip(boxes, classes):
        w, h = (x2 - x1) / stride, (y2 - y1) / stride
        if w <= 0 or h <= 0:
            continue
        cx, cy = (x1 + x2) / 2 / stride, (y1 + y2) / 2 / stride
        ix, iy = min(int(cx), s - 1), min(int(cy), s - 1)
        sx, sy = max(0.54 * w / 6, 0.35), max(0.54 * h / 6, 0.35)
        g = np.exp(-((xx - ix) ** 2) / (2 * sx * sx) - ((yy - iy) ** 2) / (2 * sy * sy))
        np.maximum(hm[:, :, c], g, out=hm[:, :, c])
        hm[iy, ix, c] = 1.0
        reg[iy, ix] = (np.log(w), np.log(h), cx - ix, cy - iy)
        mask[iy, ix, 0] = 1.0
    return hm, reg, mask
