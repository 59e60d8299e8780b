"""COCO-style mAP through pycocotools, so the figures match what papers on DeepPCB report."""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CocoMetrics:
    map50: float
    map50_95: float
    per_class_ap50: dict[str, float]


def coco_map(
    gts: list[tuple[np.ndarray, np.ndarray]],
    dets: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
    class_names: tuple[str, ...],
) -> CocoMetrics:
    """gts: per image (boxes xyxy, classes); dets: per image (boxes xyxy, scores, classes)."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    images, anns, results = [], [], []
    aid = 1
    for i, ((gb, gc), (db, ds, dc)) in enumerate(zip(gts, dets, strict=True)):
        images.append({"id": i, "width": 640, "height": 640})
        for b, c in zip(gb, gc):
            w, h = float(b[2] - b[0]), float(b[3] - b[1])
            anns.append(
                {
                    "id": aid,
                    "image_id": i,
                    "category_id": int(c) + 1,
                    "bbox": [float(b[0]), float(b[1]), w, h],
                    "area": w * h,
                    "iscrowd": 0,
                }
            )
            aid += 1
        for b, s, c in zip(db, ds, dc):
            results.append(
                {
                    "image_id": i,
                    "category_id": int(c) + 1,
                    "score": float(s),
                    "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])],
                }
            )
    cats = [{"id": k + 1, "name": n} for k, n in enumerate(class_names)]
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO()
        gt.dataset = {"images": images, "annotations": anns, "categories": cats}
        gt.createIndex()
        if not results:
            return CocoMetrics(0.0, 0.0, {n: 0.0 for n in class_names})
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.params.maxDets = [1, 10, 100]
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    # precision: [T, R, K, A, M]; T index 0 is IoU 0.5, A 0 = all areas, M -1 = 100 dets
    prec = ev.eval["precision"][0, :, :, 0, -1]
    per_class = {}
    for k, n in enumerate(class_names):
        p = prec[:, k]
        p = p[p > -1]
        per_class[n] = float(p.mean()) if p.size else 0.0
    return CocoMetrics(float(ev.stats[1]), float(ev.stats[0]), per_class)
