"""DeepPCB's own evaluation protocol, so our figures compare with the dataset authors' 98.6 %.

Their rule: a detection matches a ground-truth box of the same class when IoU > 0.33; all
detections of all images are ranked by confidence into ONE class-agnostic precision/recall curve;
AP is the area under it (all-point interpolation) and the F-score is taken at the operating point.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)), np.float32)
    x1 = np.maximum(a[:, None, 0], b[None, :, 0])
    y1 = np.maximum(a[:, None, 1], b[None, :, 1])
    x2 = np.minimum(a[:, None, 2], b[None, :, 2])
    y2 = np.minimum(a[:, None, 3], b[None, :, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass(frozen=True)
class DeepPcbMetrics:
    ap: float
    precision: float
    recall: float
    fscore: float


def deeppcb_metrics(gts, dets, score_threshold: float | dict[int, float] = 0.5, iou: float = 0.33) -> DeepPcbMetrics:
    """gts: per image (boxes, classes); dets: per image (boxes, scores, classes); classes share one base.

    `score_threshold` (one value or per class) gives the operating point for precision/recall/F.
    """
    records = []  # (score, is_tp, class)
    n_gt = 0
    for (gb, gc), (db, ds, dc) in zip(gts, dets, strict=True):
        gb, gc = np.asarray(gb, np.float32).reshape(-1, 4), np.asarray(gc)
        n_gt += len(gb)
        order = np.argsort(-np.asarray(ds), kind="stable")
        used = np.zeros(len(gb), bool)
        ious = iou_matrix(np.asarray(db, np.float32).reshape(-1, 4)[order], gb)
        for row, k in enumerate(order):
            cand = np.where((gc == dc[k]) & ~used & (ious[row] > iou))[0]
            tp = False
            if cand.size:
                j = cand[np.argmax(ious[row, cand])]
                used[j] = True
                tp = True
            records.append((float(ds[k]), tp, int(dc[k])))
    if not records or n_gt == 0:
        return DeepPcbMetrics(0.0, 0.0, 0.0, 0.0)
    records.sort(key=lambda r: -r[0])
    tps = np.array([r[1] for r in records], np.float64)
    ctp = np.cumsum(tps)
    recall = ctp / n_gt
    precision = ctp / np.arange(1, len(tps) + 1)
    # all-point interpolated AP
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    idx = np.where(mrec[1:] != mrec[:-1])[0]
    ap = float(np.sum((mrec[idx + 1] - mrec[idx]) * mpre[idx + 1]))

    def thr(c: int) -> float:
        return score_threshold.get(c, 0.5) if isinstance(score_threshold, dict) else score_threshold

    kept = [r for r in records if r[0] >= thr(r[2])]
    tp = sum(r[1] for r in kept)
    p = tp / len(kept) if kept else 0.0
    r = tp / n_gt
    f = 2 * p * r / (p + r) if p + r else 0.0
    return DeepPcbMetrics(ap, p, r, f)
