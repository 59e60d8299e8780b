"""Millimetres per pixel in the inspection plane, from a target of known size.

Why: recipes give minimum defect sizes in mm (`min_defect_mm`) and the UI shows sizes in mm; both
need the scale of the plane where boards lie, on undistorted images. Two targets are supported:
- a calibration pattern laid flat in the fixture (best: hundreds of sub-pixel corners, and it shows
  whether the target or camera is tilted);
- any object of known outline, e.g. a bare board of known width x height (no print needed).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from .errors import CalibrationError
from .pattern import Pattern, find_pattern, gray8
from .undistort import Undistorter


@dataclass(slots=True)
class ScaleResult:
    mm_per_px: float
    """Geometric mean of the two axes: what RecipeRules takes."""
    mm_per_px_x: float
    """Along the target's first axis (pattern rows; an object's long side)."""
    mm_per_px_y: float
    """Along the target's second axis (pattern columns; an object's short side)."""
    method: str
    residual_px: float = 0.0
    """RMS misfit of a flat, square-pixel model: large when the target or camera is tilted."""
    warnings: list[str] = field(default_factory=list)

    @property
    def anisotropy(self) -> float:
        return self.mm_per_px_x / self.mm_per_px_y - 1.0

    def to_json(self) -> dict:
        return {
            "mm_per_px": self.mm_per_px,
            "mm_per_px_x": self.mm_per_px_x,
            "mm_per_px_y": self.mm_per_px_y,
            "anisotropy": self.anisotropy,
            "method": self.method,
            "residual_px": self.residual_px,
            "warnings": list(self.warnings),
        }


def scale_from_pattern(
    image: np.ndarray, pattern: Pattern, undistorter: Undistorter | None = None, *, max_residual_px: float = 0.5
) -> ScaleResult:
    """Scale from a flat pattern; with an undistorter the corners are un-distorted first (pass one!)."""
    det = find_pattern(image, pattern)
    if det is None:
        raise CalibrationError(f"pattern {pattern.spec} not found in the image (whole target in view, lit, sharp?)")
    px = det.image_points.reshape(-1, 2).astype(np.float64)
    if undistorter is not None:
        px = undistorter.undistort_points(px)
    mm = det.object_points[:, :2].astype(np.float64)
    # Affine fit mm -> px by least squares: columns of A are the board's x and y axes in px per mm.
    X = np.hstack([mm, np.ones((len(mm), 1))])
    sol, *_ = np.linalg.lstsq(X, px, rcond=None)
    A = sol[:2].T
    fit = X @ sol
    residual = float(np.sqrt(np.mean(np.sum((fit - px) ** 2, axis=1))))
    sx, sy = np.linalg.norm(A[:, 0]), np.linalg.norm(A[:, 1])
    det_a = abs(float(np.linalg.det(A)))
    warnings = []
    if residual > max_residual_px:
        warnings.append(
            f"corners depart {residual:.2f} px from a flat, square-on view: the target or camera is tilted; "
            "mm per pixel varies over the frame"
        )
    if undistorter is None:
        warnings.append("no intrinsics applied: lens distortion makes the scale vary towards the frame edges")
    return ScaleResult(1.0 / np.sqrt(det_a), 1.0 / sx, 1.0 / sy, f"pattern {pattern.spec}", residual, warnings)


def scale_from_object(
    image: np.ndarray, width_mm: float, height_mm: float, undistorter: Undistorter | None = None
) -> ScaleResult:
    """Scale from the largest object in view (against a contrasting background) of known outline size."""
    if width_mm <= 0 or height_mm <= 0:
        raise CalibrationError(f"object size {width_mm} x {height_mm} mm: both sides must be positive")
    gray = gray8(undistorter.apply(image) if undistorter is not None else image)
    h, w = gray.shape
    _, bw = cv2.threshold(cv2.GaussianBlur(gray, (5, 5), 0), 0, 255, cv2.THRESH_BINARY + cv2.THRESH_OTSU)
    best = None
    for mask in (bw, 255 - bw):
        contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        for c in contours:
            x, y, cw, ch = cv2.boundingRect(c)
            if x <= 1 or y <= 1 or x + cw >= w - 1 or y + ch >= h - 1:
                continue  # touches the frame: background, or an object cut off
            area = cv2.contourArea(c)
            if best is None or area > best[0]:
                best = (area, c)
    if best is None or best[0] < 0.01 * w * h:
        raise CalibrationError(
            "no object found that lies wholly inside the frame against a contrasting background "
            "(put the reference object in the middle of the fixture)"
        )
    (_, _), (rw, rh), _ = cv2.minAreaRect(best[1])
    fill = best[0] / (rw * rh)
    # Sub-pixel area: each edge pixel counts by its grey level between the background and the object.
    region = np.zeros_like(gray)
    cv2.drawContours(region, [best[1]], -1, 255, -1)
    kernel = np.ones((5, 5), np.uint8)
    inner, outer = cv2.erode(region, kernel, iterations=2), cv2.dilate(region, kernel, iterations=2)
    ring = (outer > 0) & (cv2.dilate(region, kernel) == 0)
    if not inner.any() or not ring.any():
        raise CalibrationError("the object is too small to measure; use a larger one")
    fg, bg = float(np.median(gray[inner > 0])), float(np.median(gray[ring]))
    frac = np.clip((gray[outer > 0].astype(np.float64) - bg) / (fg - bg), 0.0, 1.0)
    area = float(frac.sum())
    aspect = max(rw, rh) / min(rw, rh)
    long_px, short_px = np.sqrt(area * aspect), np.sqrt(area / aspect)
    long_mm, short_mm = max(width_mm, height_mm), min(width_mm, height_mm)
    warnings = []
    if fill < 0.95:
        warnings.append(f"the object fills only {fill:.0%} of its bounding rectangle: is it a rectangle?")
    ratio = aspect / (long_mm / short_mm) - 1
    if abs(ratio) > 0.05:
        warnings.append(f"the object's aspect ratio differs by {ratio:+.0%} from {width_mm:g} x {height_mm:g} mm")
    sx, sy = long_mm / long_px, short_mm / short_px
    if undistorter is None:
        warnings.append("no intrinsics applied: lens distortion makes the scale vary towards the frame edges")
    return ScaleResult(
        float(np.sqrt(sx * sy)), float(sx), float(sy), f"object {width_mm:g}x{height_mm:g}mm", 0.0, warnings
    )
