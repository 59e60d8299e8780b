"""Camera intrinsics and lens distortion from checkerboard or ChArUco views.

Why the view checks come first: a blurred view or one where the target fills a corner of the frame
still "calibrates" and can even lower the RMS, while leaving focal length and distortion wrong at
the frame edges, which is where the board's outline and fiducials sit. Every rejected view is
reported with its reason, so the engineer knows which pictures to retake.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from inspector.image_file import ImageFileError, read_image_file

from .errors import CalibrationError
from .pattern import CoverageMap, Pattern, ViewFeedback, view_feedback
from .undistort import Undistorter

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".pgm", ".ppm"}

__all__ = ["IntrinsicsResult", "RejectedView", "Undistorter", "calibrate_intrinsics", "load_views"]


@dataclass(frozen=True, slots=True)
class RejectedView:
    """A view the fit left out, with the English reason (logs, the command line, the stored record) and what was
    measured, so a screen can word the reason in its own language."""

    name: str
    reason: str
    feedback: ViewFeedback | None = None
    """Left out before the fit: the view's measurement (no pattern, too small, blurred)."""
    error_px: float | None = None
    limit_px: float | None = None
    """Left out after the fit: its reprojection error and the limit it exceeded."""


@dataclass(slots=True)
class IntrinsicsResult:
    camera_matrix: np.ndarray
    dist_coeffs: np.ndarray
    image_size: tuple[int, int]
    """(width, height) the calibration holds for."""
    rms_px: float
    per_view_error_px: dict[str, float]
    views_used: int
    rejected: list[RejectedView] = field(default_factory=list)
    coverage: float = 0.0
    """Fraction of frame cells (8 x 6 grid) that got corners from the views used."""
    pattern: str = ""

    def undistorter(self, alpha: float | None = None) -> Undistorter:
        return Undistorter(self.camera_matrix, self.dist_coeffs, self.image_size, alpha=alpha)

    def to_json(self) -> dict:
        return {
            "camera_matrix": [[float(v) for v in row] for row in self.camera_matrix],
            "dist_coeffs": [float(v) for v in self.dist_coeffs.reshape(-1)],
            "rms_px": float(self.rms_px),
            "views_used": int(self.views_used),
            "image_size": list(self.image_size),
            "per_view_error_px": {k: round(float(v), 4) for k, v in self.per_view_error_px.items()},
            "rejected": [{"view": r.name, "reason": r.reason} for r in self.rejected],
            "coverage": round(self.coverage, 4),
            "pattern": self.pattern,
        }

    @classmethod
    def from_json(cls, data: dict) -> IntrinsicsResult:
        try:
            return cls(
                camera_matrix=np.array(data["camera_matrix"], np.float64).reshape(3, 3),
                dist_coeffs=np.array(data["dist_coeffs"], np.float64).reshape(-1),
                image_size=(int(data["image_size"][0]), int(data["image_size"][1])),
                rms_px=float(data["rms_px"]),
                per_view_error_px=dict(data.get("per_view_error_px", {})),
                views_used=int(data["views_used"]),
                rejected=[RejectedView(r["view"], r["reason"]) for r in data.get("rejected", [])],
                coverage=float(data.get("coverage", 0.0)),
                pattern=str(data.get("pattern", "")),
            )
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise CalibrationError(f"stored intrinsics are incomplete or malformed: {exc!r}") from None


def load_views(folder: Path) -> list[tuple[str, np.ndarray]]:
    """All images of a folder, sorted by name; clear errors for a missing, empty or unreadable folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"--images {folder}: not a folder")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise CalibrationError(f"--images {folder}: no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    views = []
    for p in files:
        try:  # the station's strict reader: an empty file was a cv2.error traceback
            img = read_image_file(p)
        except ImageFileError as exc:
            raise CalibrationError(f"{p}: {exc}") from None
        views.append((p.name, img))
    return views


def _check_sizes(views: Sequence[tuple[str, np.ndarray]]) -> tuple[int, int]:
    sizes: dict[tuple[int, int], list[str]] = {}
    for name, img in views:
        sizes.setdefault((img.shape[1], img.shape[0]), []).append(name)
    if len(sizes) > 1:
        parts = [
            f"{w}x{h}: {', '.join(names[:3])}{' ...' if len(names) > 3 else ''}" for (w, h), names in sizes.items()
        ]
        raise CalibrationError(
            "views have mixed resolutions (" + "; ".join(parts) + "); calibrate one camera mode at a time"
        )
    return next(iter(sizes))


#: Two views whose corners lie within this many pixels of each other (on average) show the pattern in one pose.
SAME_POSE_PX = 2.0


def _same_pose(a: np.ndarray, b: np.ndarray) -> bool:
    """Same corners in the same places: the corner order of a symmetric pattern may start at either end."""
    return (
        min(float(np.mean(np.linalg.norm(a - b, axis=1))), float(np.mean(np.linalg.norm(a - b[::-1], axis=1))))
        < SAME_POSE_PX
    )


def calibrate_intrinsics(
    views: Iterable[tuple[str, np.ndarray]],
    pattern: Pattern,
    *,
    min_views: int = 8,
    min_coverage: float = 0.05,
    max_blur_px: float = 4.0,
    outlier_factor: float = 3.0,
    fix_k3: bool = True,
) -> IntrinsicsResult:
    """Fit K and the distortion coefficients (k1, k2, p1, p2, k3) to named views.

    Views with no pattern, too little coverage or blur are rejected before the fit; after it, views
    whose reprojection error exceeds `outlier_factor` x the median (and 1 px) are dropped and the fit
    is redone once. `fix_k3` (default) keeps the sixth-order radial term at 0: machine-vision lenses
    rarely need it, and a free k3 fitted to views that miss the frame corners extrapolates badly
    there; wide-angle lenses pass False. Raises CalibrationError when fewer than `min_views` usable views remain, naming
    every rejected view and its reason.
    """
    views = list(views)
    if not views:
        raise CalibrationError("no views given")
    size = _check_sizes(views)
    rejected: list[RejectedView] = []
    used: list[tuple[str, np.ndarray, np.ndarray]] = []
    for name, img in views:
        fb = view_feedback(img, pattern, min_coverage=min_coverage, max_blur_px=max_blur_px)
        if not fb.usable:
            rejected.append(RejectedView(name, "; ".join(fb.reasons), feedback=fb))
            continue
        pts = fb.detection.image_points.reshape(-1, 2)
        twin = next(
            (n for n, _, p in used if p.shape == fb.detection.image_points.shape and _same_pose(p.reshape(-1, 2), pts)),
            None,
        )
        if twin is not None:
            # Twelve copies of one view fitted fx 40 % off with an RMS of 0.1 px: the same pose adds no constraint,
            # and the small RMS made the wrong lens look good.
            rejected.append(
                RejectedView(name, f"same pose as {twin} (move or tilt the pattern between views)", feedback=fb)
            )
            continue
        used.append((name, fb.detection.object_points, fb.detection.image_points))

    def too_few() -> CalibrationError:
        lines = "".join(f"\n  {r.name}: {r.reason}" for r in rejected)
        found = sum(1 for r in rejected if r.reason != "pattern not found")
        hint = (
            f"no view shows the pattern {pattern.spec} (check --pattern: a checkerboard counts inner corners)"
            if not used and not found
            else "take more sharp views that cover the whole frame"
        )
        return CalibrationError(
            f"too few usable views: {len(used)} of {len(views)} (need at least {min_views}); {hint}{lines}"
        )

    if len(used) < min_views:
        raise too_few()
    flags = cv2.CALIB_FIX_K3 if fix_k3 else 0
    criteria = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 100, 1e-12)
    for attempt in range(2):
        obj = [u[1] for u in used]
        img = [u[2] for u in used]
        try:
            rms, K, dist, rvecs, tvecs = cv2.calibrateCamera(obj, img, size, None, None, flags=flags, criteria=criteria)
        except cv2.error as exc:
            raise CalibrationError(f"the fit failed ({exc.err}); the views are probably all nearly parallel") from None
        errors = {}
        for (name, o, i), r, t in zip(used, rvecs, tvecs):
            proj, _ = cv2.projectPoints(o, r, t, K, dist)
            errors[name] = float(np.sqrt(np.mean(np.sum((proj.reshape(-1, 2) - i.reshape(-1, 2)) ** 2, axis=1))))
        if attempt == 1:
            break
        limit = max(1.0, outlier_factor * float(np.median(list(errors.values()))))
        bad = [n for n, e in errors.items() if e > limit]
        if not bad or len(used) - len(bad) < min_views:
            break
        for n in bad:
            rejected.append(
                RejectedView(
                    n, f"reprojection error {errors[n]:.2f} px (> {limit:.2f} px)", error_px=errors[n], limit_px=limit
                )
            )
        used = [u for u in used if u[0] not in bad]
    cover = CoverageMap(size)
    for _, _, i in used:
        cover.add(i)
    return IntrinsicsResult(
        camera_matrix=np.asarray(K, np.float64),
        dist_coeffs=np.asarray(dist, np.float64).reshape(-1),
        image_size=size,
        rms_px=float(rms),
        per_view_error_px=errors,
        views_used=len(used),
        rejected=rejected,
        coverage=cover.fraction,
        pattern=pattern.spec,
    )
