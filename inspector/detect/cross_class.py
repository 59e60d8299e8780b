"""One physical defect, one box, one class: suppression of boxes of another class on the same spot.

Why: class-wise NMS only merges boxes of one class. Where the network is unsure between two classes
(a short that looks like a spur, an open that looks like a mousebite) it returns both boxes on the
same defect, e.g. short 0.53 + spur 0.30 at IoU 0.84. Both then count as defects: DEFECT_COUNT,
CLASS_COUNTS and the Pareto chart show two defects where the board has one. Keeping the
better-scoring class and reporting the other as its runner-up gives one box per defect while the
engineer still sees that the class was close. A box is only ever removed in favour of a box that
covers the same place with a higher score, so a board that had a defect still has one: the
suppression cannot turn a REJECT into a PASS.
"""

from __future__ import annotations

import numpy as np

from .tiling import box_iou


def suppress_cross_class(
    boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray, iou: float, min_score: float = 0.0
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Greedy suppression across classes: a box scoring at least `min_score` that overlaps a
    better-scoring box of ANOTHER class by IoU >= `iou` is dropped, and the best dropped class
    becomes the keeper's runner-up.

    Why `min_score`: below the station's thresholds a second-class box is never reported, so it
    cannot inflate a count; kept there, it still ranks as the defect's second guess when the whole
    score range is scored (mAP over every candidate above the evaluation floor).

    Boxes of the same class are left alone (class-wise NMS and the fragment unions own those).
    Returns boxes, scores and classes of the kept boxes in their input order, and per kept box the
    runner-up class (-1 if none) and its score (0 if none).
    """
    n = len(scores)
    runner_cls = np.full(n, -1, np.int64)
    runner_score = np.zeros(n, np.float32)
    if n < 2:
        return boxes, scores, classes, runner_cls, runner_score
    overlap = box_iou(boxes, boxes)
    order = np.argsort(-scores, kind="stable")
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)
    alive = np.ones(n, bool)
    for i in order:
        if not alive[i]:
            continue
        # Only boxes ranked after this one: a weak box (below `min_score`) never removes a strong one.
        hit = alive & (overlap[i] >= iou) & (classes != classes[i]) & (scores >= min_score) & (rank > rank[i])
        if not hit.any():
            continue
        victims = np.nonzero(hit)[0]
        best = victims[np.argmax(scores[victims])]
        if scores[best] > runner_score[i] or runner_cls[i] < 0:
            runner_cls[i], runner_score[i] = classes[best], scores[best]
        alive[victims] = False
    keep = np.nonzero(alive)[0]
    return boxes[keep], scores[keep], classes[keep], runner_cls[keep], runner_score[keep]
