"""Where the remaining points are: every detection and every labelled defect sorted into one error kind.

Why: mAP says how much is lost, not why. Before spending CPU hours on a longer schedule or a wider
head, the loss has to be located: boxes of the right class placed too loosely (a label-convention or
regression problem), a second class on a true defect (a classification problem that cross-class
suppression can hide), duplicates (a post-processing problem), boxes on clean copper (false calls) or
defects never found (recall). The kinds follow TIDE (Bolya et al. 2020) in a simplified, greedy form:
detections at or above one score are matched best-score first.

Kinds of detection:
- ``tp``: right class, IoU >= 0.5 with a labelled defect not matched yet;
- ``duplicate``: right class, IoU >= 0.5, but that defect already has its true positive;
- ``localisation``: right class, best IoU in [0.1, 0.5);
- ``wrong_class``: another class, IoU >= 0.5 with a labelled defect (not a right-class box);
- ``both``: another class, IoU in [0.1, 0.5);
- ``background``: IoU < 0.1 with every labelled defect.
A labelled defect without a true positive is ``missed``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from ..detect.tiling import box_iou

DET_KINDS = ("tp", "duplicate", "localisation", "wrong_class", "both", "background")
SIZE_BINS = ((0, 40), (40, 60), (60, 90), (90, 10_000))
"""Longer side of the labelled box, px (the bins the model card's recall-by-size uses)."""


def size_bin(box: Sequence[float]) -> str:
    longer = max(box[2] - box[0], box[3] - box[1])
    for lo, hi in SIZE_BINS:
        if lo <= longer < hi:
            return f"<{hi}" if lo == 0 else (f">={lo}" if hi == 10_000 else f"{lo}-{hi}")
    return "?"


@dataclass
class Breakdown:
    """Counts by kind, overall and by group and by the size of the defect involved."""

    score: float
    kinds: Counter = field(default_factory=Counter)
    missed: int = 0
    labels: int = 0
    by_group: dict[str, Counter] = field(default_factory=dict)
    by_size: dict[str, Counter] = field(default_factory=dict)

    def add(self, group: str, size: str | None, kind: str) -> None:
        self.kinds[kind] += 1
        self.by_group.setdefault(group, Counter())[kind] += 1
        if size is not None:
            self.by_size.setdefault(size, Counter())[kind] += 1

    def as_dict(self) -> dict:
        return {
            "score": self.score,
            "labels": self.labels,
            "detections": {k: self.kinds.get(k, 0) for k in DET_KINDS},
            "missed": self.missed,
            "by_group": {g: dict(c) for g, c in sorted(self.by_group.items())},
            "by_size": {s: dict(c) for s, c in self.by_size.items()},
        }


def classify_board(
    gt_boxes: np.ndarray, gt_classes: np.ndarray, boxes: np.ndarray, scores: np.ndarray, classes: np.ndarray
) -> tuple[list[tuple[str, int | None]], np.ndarray]:
    """Kind of each detection (best score first, with the index of the labelled defect it concerns)
    and, per labelled defect, whether it got a true positive."""
    n_gt = len(gt_boxes)
    matched = np.zeros(n_gt, bool)
    out: list[tuple[str, int | None]] = []
    if len(scores) == 0:
        return out, matched
    iou = box_iou(boxes.astype(np.float32), gt_boxes.astype(np.float32)) if n_gt else np.zeros((len(scores), 0))
    for i in np.argsort(-scores, kind="stable"):
        if n_gt == 0:
            out.append(("background", None))
            continue
        same = gt_classes == classes[i]
        same_iou = np.where(same, iou[i], -1.0)
        other_iou = np.where(~same, iou[i], -1.0)
        free = same & ~matched & (iou[i] >= 0.5)
        if free.any():
            j = int(np.argmax(np.where(free, iou[i], -1.0)))
            matched[j] = True
            out.append(("tp", j))
        elif same_iou.max() >= 0.5:
            out.append(("duplicate", int(np.argmax(same_iou))))
        elif same_iou.max() >= 0.1:
            out.append(("localisation", int(np.argmax(same_iou))))
        elif other_iou.max() >= 0.5:
            out.append(("wrong_class", int(np.argmax(other_iou))))
        elif other_iou.max() >= 0.1:
            out.append(("both", int(np.argmax(other_iou))))
        else:
            out.append(("background", None))
    return out, matched


def breakdown(
    boards: Iterable[tuple[str, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]], score: float = 0.3
) -> Breakdown:
    """`boards`: (group, gt_boxes, gt_classes, boxes, scores, classes) per board; classes 0-based."""
    bd = Breakdown(score=score)
    for group, gb, gc, b, s, c in boards:
        keep = s >= score
        kinds, matched = classify_board(gb, gc, b[keep], s[keep], c[keep])
        bd.labels += len(gb)
        for kind, j in kinds:
            bd.add(group, size_bin(gb[j]) if j is not None else None, kind)
        for j in np.nonzero(~matched)[0]:
            bd.missed += 1
            bd.add(group, size_bin(gb[j]), "missed")
    return bd


def oracle_gains(
    gts: list[tuple[np.ndarray, np.ndarray]],
    dets: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: tuple[str, ...],
) -> dict[str, float]:
    """COCO mAP@0.5 with one error kind fixed at a time (every score, not only above a threshold),
    minus the mAP as it is: how many points each kind costs.

    Fixes: localisation boxes are snapped to their labelled box; duplicates, wrong-class, both and
    background boxes are dropped; missed defects are added with their labelled box at the lowest
    score of the board (they are found, but ranked last).
    """
    from .coco import coco_map

    base = coco_map(gts, dets, class_names).map50
    kinds_per_board = [classify_board(gb, gc, b, s, c) for (gb, gc), (b, s, c) in zip(gts, dets, strict=True)]
    gains: dict[str, float] = {}
    for fix in ("localisation", "duplicate", "wrong_class", "both", "background", "missed"):
        fixed = []
        for (gb, gc), (b, s, c), (kinds, matched) in zip(gts, dets, kinds_per_board, strict=True):
            order = np.argsort(-s, kind="stable")
            b2, s2, c2 = b[order].copy(), s[order].copy(), c[order].copy()
            keep = np.ones(len(s2), bool)
            for k, (kind, j) in enumerate(kinds):
                if kind != fix:
                    continue
                if fix == "localisation":
                    b2[k] = gb[j]
                elif fix != "missed":
                    keep[k] = False
            b2, s2, c2 = b2[keep], s2[keep], c2[keep]
            if fix == "missed" and (~matched).any():
                low = float(s2.min()) if len(s2) else 0.05
                miss = np.nonzero(~matched)[0]
                b2 = np.concatenate([b2.reshape(-1, 4), gb[miss].astype(np.float32)])
                s2 = np.concatenate([s2, np.full(len(miss), low * 0.999, np.float32)])
                c2 = np.concatenate([c2, gc[miss].astype(np.int64)])
            fixed.append((b2.astype(np.float32), s2.astype(np.float32), c2.astype(np.int64)))
        gains[fix] = coco_map(gts, fixed, class_names).map50 - base
    gains["base_map50"] = base
    return gains
