"""CenterNet output decoding, shared by training-time validation and the station runtime.

Kept free of TensorFlow so the station (LiteRT only) and the trainer decode identically.
"""

from __future__ import annotations

import cv2
import numpy as np

from .tiling import nms_classwise


def _at(scores: np.ndarray, ys: np.ndarray, xs: np.ndarray, cs: np.ndarray) -> np.ndarray:
    """scores[ys, xs, cs], with -inf outside the map."""
    h, w, _ = scores.shape
    inside = (ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)
    out = np.full(ys.shape, -np.inf, np.float32)
    out[inside] = scores[ys[inside], xs[inside], cs[inside]]
    return out


def decode(
    scores: np.ndarray,
    regression: np.ndarray,
    stride: int,
    floor: float = 0.05,
    top_k: int = 100,
    nms_iou: float = 0.5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn one image's heatmap scores (H, W, C, already 0..1) and regression (H, W, 4) into boxes.

    Regression channels are log(w/stride), log(h/stride), x offset, y offset. Returns boxes (N, 4)
    x1y1x2y2 in input pixels, scores (N,) and 0-based classes (N,), best first. Boxes of one class
    overlapping a better one by more than `nms_iou` are dropped (1.0 keeps all): peaks a cell or two
    apart on one defect (an elongated open, a score ridge) survive the 3x3 peak search and would each
    be a false positive.
    """
    h, w, c = scores.shape
    scores = np.ascontiguousarray(scores, dtype=np.float32)
    # Candidates first: only the few cells at or above the floor can be peaks, so the peak tests below
    # look at those cells only (the whole-map comparisons cost more than the rest of the decode).
    ys, xs, cs = np.nonzero(scores >= floor)
    if ys.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    v = scores[ys, xs, cs]
    # 3x3 max-pool peak search: a cell is a peak when it equals its neighbourhood maximum.
    pooled = cv2.dilate(scores, np.ones((3, 3), np.uint8))
    # Ties: INT8 scores come in steps of 1/256, so the top of one defect is often a plateau of two or
    # more equal cells, each "equal to its neighbourhood maximum". Keeping them all gave every such
    # defect a duplicate box (192 of 1,428 detections >= 0.3 on the validation boards) and cost
    # precision. A plateau keeps only its first cell in raster order: a cell must beat every
    # neighbour that comes before it (up-left, up, up-right, left).
    earlier = np.maximum.reduce([_at(scores, ys + dy, xs + dx, cs) for dy, dx in ((-1, -1), (-1, 0), (-1, 1), (0, -1))])
    peak = (v >= pooled[ys, xs, cs]) & (v > earlier)
    ys, xs, cs = ys[peak], xs[peak], cs[peak]
    if ys.size == 0:
        return np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0,), np.int64)
    sc = scores[ys, xs, cs]
    if sc.size > top_k:
        keep = np.argpartition(-sc, top_k)[:top_k]
        ys, xs, cs, sc = ys[keep], xs[keep], cs[keep], sc[keep]
    order = np.argsort(-sc, kind="stable")
    ys, xs, cs, sc = ys[order], xs[order], cs[order], sc[order]
    reg = regression[ys, xs].astype(np.float32)
    bw = np.exp(np.clip(reg[:, 0], -4.0, 6.0)) * stride
    bh = np.exp(np.clip(reg[:, 1], -4.0, 6.0)) * stride
    cx = (xs + reg[:, 2]) * stride
    cy = (ys + reg[:, 3]) * stride
    boxes = np.stack([cx - bw / 2, cy - bh / 2, cx + bw / 2, cy + bh / 2], axis=1).astype(np.float32)
    if nms_iou < 1.0 and len(sc) > 1:
        keep = np.sort(nms_classwise(boxes, sc, cs, nms_iou))  # sorted: still best first
        boxes, sc, cs = boxes[keep], sc[keep], cs[keep]
    return boxes, sc.astype(np.float32), cs.astype(np.int64)
