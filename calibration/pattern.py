"""Calibration targets: parse a pattern spec, find the pattern in an image, measure the view.

Why one module: the intrinsics fit, the scale measurement and the UI wizard's live feedback all need
the same "where are the corners, how sharp, how much of the frame" answers, and they must agree.

Pattern specs (what `--pattern` takes):
- `checkerboard:9x6:5mm` -- 9 x 6 *inner* corners (OpenCV's convention; the printed board has
  10 x 7 squares), 5 mm squares;
- `charuco:11x8:5mm:3.75mm[:DICT_5X5_100]` -- 11 x 8 *squares*, 5 mm squares, 3.75 mm markers, the
  ArUco dictionary (default DICT_5X5_100). ChArUco views may be partly occluded or cut by the frame.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import cv2
import numpy as np

from inspector.detect.prepare import to_8bit

from .errors import CalibrationError


class PatternError(CalibrationError):
    """A pattern spec that cannot be parsed; the message shows the expected form."""


_SIZE = re.compile(r"^(\d+)x(\d+)$")
_LEN = re.compile(r"^([0-9]*\.?[0-9]+)(mm|um|cm)?$")
_UNIT = {"mm": 1.0, None: 1.0, "cm": 10.0, "um": 0.001}


def _length_mm(text: str, what: str, spec: str) -> float:
    m = _LEN.match(text.strip().lower())
    if not m or float(m.group(1)) <= 0:
        raise PatternError(f"pattern {spec!r}: {what} {text!r} is not a positive length like 5mm")
    return float(m.group(1)) * _UNIT[m.group(2)]


@dataclass(frozen=True, slots=True)
class Pattern:
    kind: str
    """'checkerboard' or 'charuco'."""
    cols: int
    """checkerboard: inner corners per row; charuco: squares per row."""
    rows: int
    square_mm: float
    marker_mm: float = 0.0
    dictionary: str = "DICT_5X5_100"

    @classmethod
    def parse(cls, spec: str) -> Pattern:
        parts = [p.strip() for p in spec.split(":")]
        kind = parts[0].lower()
        if kind not in {"checkerboard", "chessboard", "charuco"}:
            raise PatternError(
                f"pattern {spec!r}: unknown kind {parts[0]!r}; expected checkerboard:COLSxROWS:SQUAREmm "
                "or charuco:COLSxROWS:SQUAREmm:MARKERmm[:DICT]"
            )
        kind = "checkerboard" if kind == "chessboard" else kind
        want = 3 if kind == "checkerboard" else 4
        if len(parts) < want or len(parts) > want + (kind == "charuco"):
            form = "checkerboard:9x6:5mm" if kind == "checkerboard" else "charuco:11x8:5mm:3.75mm[:DICT_5X5_100]"
            raise PatternError(f"pattern {spec!r}: expected the form {form}")
        m = _SIZE.match(parts[1].lower())
        if not m:
            raise PatternError(f"pattern {spec!r}: size {parts[1]!r} is not COLSxROWS like 9x6")
        cols, rows = int(m.group(1)), int(m.group(2))
        least = 2 if kind == "checkerboard" else 3
        if cols < least or rows < least:
            raise PatternError(f"pattern {spec!r}: {cols}x{rows} is too small (at least {least}x{least})")
        square = _length_mm(parts[2], "square size", spec)
        if kind == "checkerboard":
            return cls("checkerboard", cols, rows, square)
        marker = _length_mm(parts[3], "marker size", spec)
        if marker >= square:
            raise PatternError(f"pattern {spec!r}: marker {marker} mm must be smaller than the square {square} mm")
        dictionary = parts[4].upper() if len(parts) > 4 else "DICT_5X5_100"
        if not hasattr(cv2.aruco, dictionary):
            raise PatternError(f"pattern {spec!r}: unknown ArUco dictionary {dictionary!r} (e.g. DICT_5X5_100)")
        return cls("charuco", cols, rows, square, marker, dictionary)

    @property
    def spec(self) -> str:
        if self.kind == "checkerboard":
            return f"checkerboard:{self.cols}x{self.rows}:{self.square_mm:g}mm"
        return f"charuco:{self.cols}x{self.rows}:{self.square_mm:g}mm:{self.marker_mm:g}mm:{self.dictionary}"

    @property
    def corner_count(self) -> int:
        if self.kind == "checkerboard":
            return self.cols * self.rows
        return (self.cols - 1) * (self.rows - 1)

    @property
    def min_corners(self) -> int:
        """Fewest corners that still constrain a view (a ChArUco view may be partial)."""
        return self.corner_count if self.kind == "checkerboard" else max(8, self.corner_count // 3)

    def object_points(self) -> np.ndarray:
        """(N, 3) float32 corner positions on the board in mm, in the order the detector returns them."""
        if self.kind == "checkerboard":
            grid = np.mgrid[0 : self.cols, 0 : self.rows].T.reshape(-1, 2).astype(np.float32)
            return np.hstack([grid * self.square_mm, np.zeros((len(grid), 1), np.float32)])
        return np.asarray(self.charuco_board().getChessboardCorners(), np.float32).reshape(-1, 3)

    def board_size_mm(self) -> tuple[float, float]:
        """Outer size of the printed pattern (squares only, no margin)."""
        if self.kind == "checkerboard":
            return (self.cols + 1) * self.square_mm, (self.rows + 1) * self.square_mm
        return self.cols * self.square_mm, self.rows * self.square_mm

    def origin_offset_mm(self) -> tuple[float, float]:
        """Where object point (0, 0) lies from the board's outer top-left corner."""
        return (self.square_mm, self.square_mm) if self.kind == "checkerboard" else (0.0, 0.0)

    def charuco_board(self) -> cv2.aruco.CharucoBoard:
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.cols, self.rows), self.square_mm, self.marker_mm, d)


@dataclass(slots=True)
class Detection:
    """The pattern found in one image."""

    image_points: np.ndarray
    """(N, 1, 2) float32 sub-pixel corner positions."""
    object_points: np.ndarray
    """(N, 3) float32 matching positions on the board, mm."""
    ids: np.ndarray | None = None
    """ChArUco corner ids (None for a full checkerboard)."""


@dataclass(slots=True)
class ViewFeedback:
    """What the wizard shows per live frame, and what the fit uses to accept or reject a view."""

    found: bool
    coverage: float = 0.0
    """Fraction of the frame inside the pattern's outline (0..1)."""
    blur_px: float = float("inf")
    """Edge width at the corners in px (about 1 for a sharp view; grows with defocus and motion blur)."""
    corners: int = 0
    image_size: tuple[int, int] = (0, 0)
    reasons: list[str] = field(default_factory=list)
    """Why this view would be rejected (empty when usable), in English for logs and the command line."""
    detection: Detection | None = None
    min_coverage: float = 0.0
    max_blur_px: float = float("inf")
    """The limits the view was measured against (the UI words the reasons itself, in its language)."""
    error: str = ""
    """Why the frame could not be measured at all (an unreadable frame), else empty."""

    @property
    def too_small(self) -> bool:
        """The pattern covers less of the frame than the fit needs."""
        return self.found and self.coverage < self.min_coverage

    @property
    def blurred(self) -> bool:
        """The pattern's edges are wider than the fit accepts (defocus, motion)."""
        return self.found and not self.blur_px <= self.max_blur_px

    @property
    def sharpness(self) -> float:
        """0..1, 1 = sharp: the reciprocal of the edge width, capped (for a gauge in the UI)."""
        return 0.0 if not np.isfinite(self.blur_px) or self.blur_px <= 0 else float(min(1.0, 1.0 / self.blur_px))

    @property
    def usable(self) -> bool:
        return self.found and not self.reasons

    def to_json(self) -> dict:
        return {
            "found": self.found,
            "coverage": round(self.coverage, 4),
            "blur_px": round(self.blur_px, 3) if np.isfinite(self.blur_px) else None,
            "sharpness": round(self.sharpness, 4),
            "corners": self.corners,
            "usable": self.usable,
            "reasons": list(self.reasons),
        }


def gray8(image: np.ndarray) -> np.ndarray:
    if image.ndim == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY if image.shape[2] == 4 else cv2.COLOR_BGR2GRAY)
    image = to_8bit(image)  # 16-bit by its significant bits: a 12-bit capture in a 16-bit file keeps its contrast
    if image.dtype != np.uint8:
        raise CalibrationError(f"unsupported pixel type {image.dtype} (expected 8 or 16 bit)")
    return np.ascontiguousarray(image)


def find_pattern(image: np.ndarray, pattern: Pattern) -> Detection | None:
    """Sub-pixel corners of `pattern` in `image`, or None when it is not (fully enough) visible."""
    gray = gray8(image)
    if pattern.kind == "checkerboard":
        flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_ACCURACY
        ok, corners = cv2.findChessboardCornersSB(gray, (pattern.cols, pattern.rows), flags=flags)
        if not ok or corners is None:
            return None
        return Detection(corners.astype(np.float32).reshape(-1, 1, 2), pattern.object_points())
    detector = cv2.aruco.CharucoDetector(pattern.charuco_board())
    corners, ids, _, _ = detector.detectBoard(gray)
    if corners is None or ids is None or len(ids) < pattern.min_corners:
        return None
    ids = ids.reshape(-1)
    obj = pattern.object_points()[ids]
    return Detection(corners.astype(np.float32).reshape(-1, 1, 2), obj, ids)


def edge_width_px(gray: np.ndarray, points: np.ndarray, radius: int) -> float:
    """Median edge width around the corners: local contrast / steepest gradient.

    Why this and not the variance of the Laplacian: the Laplacian's variance depends on the scene and
    the pattern's size in the frame; an edge width in pixels means the same on every view, so one
    limit (e.g. 4 px) rejects defocused and motion-blurred views alike. For a step edge blurred by a
    Gaussian of sigma s, contrast / max gradient = s * sqrt(2 pi) (about 1 px when sharp).
    """
    h, w = gray.shape
    radius = int(np.clip(radius, 3, 40))
    g = gray.astype(np.float32)
    widths = []
    for x, y in points.reshape(-1, 2):
        x0, y0 = int(round(x)) - radius, int(round(y)) - radius
        x1, y1 = x0 + 2 * radius + 1, y0 + 2 * radius + 1
        if x0 < 1 or y0 < 1 or x1 > w - 1 or y1 > h - 1:
            continue
        patch = g[y0 - 1 : y1 + 1, x0 - 1 : x1 + 1]
        gx = cv2.Sobel(patch, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        gy = cv2.Sobel(patch, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        mag = np.sqrt(gx * gx + gy * gy)[1:-1, 1:-1]
        inner = patch[1:-1, 1:-1]
        contrast = float(np.percentile(inner, 95) - np.percentile(inner, 5))
        peak = float(np.percentile(mag, 99.5))
        if contrast < 10 or peak <= 0:
            continue
        widths.append(contrast / peak)
    return float(np.median(widths)) if widths else float("inf")


def outline_coverage(points: np.ndarray, image_size: tuple[int, int]) -> float:
    """Fraction of the frame inside the convex hull of the corners."""
    w, h = image_size
    hull = cv2.convexHull(points.reshape(-1, 1, 2).astype(np.float32))
    return float(cv2.contourArea(hull)) / float(w * h)


def view_feedback(
    image: np.ndarray,
    pattern: Pattern,
    *,
    min_coverage: float = 0.05,
    max_blur_px: float = 4.0,
) -> ViewFeedback:
    """Pure function for the calibration wizard: is the pattern there, how much frame, how sharp.

    The same checks decide which views the intrinsics fit accepts, so what the wizard shows as
    green is what the fit will use.
    """
    gray = gray8(image)
    h, w = gray.shape
    det = find_pattern(gray, pattern)
    if det is None:
        return ViewFeedback(
            False, image_size=(w, h), reasons=["pattern not found"], min_coverage=min_coverage, max_blur_px=max_blur_px
        )
    pts = det.image_points.reshape(-1, 2)
    coverage = outline_coverage(pts, (w, h))
    # Corner spacing in px sets the patch: a third of the smallest neighbour distance.
    d = np.linalg.norm(pts[:, None, :] - pts[None, :, :], axis=2)
    np.fill_diagonal(d, np.inf)
    spacing = float(np.median(d.min(axis=1)))
    blur = edge_width_px(gray, pts, int(spacing / 3))
    fb = ViewFeedback(True, coverage, blur, len(pts), (w, h), [], det, min_coverage, max_blur_px)
    if fb.too_small:
        fb.reasons.append(f"covers {coverage:.1%} of the frame (< {min_coverage:.0%}): move the target closer")
    if fb.blurred:
        fb.reasons.append(f"blurred: edges {blur:.1f} px wide (> {max_blur_px:g} px)")
    return fb


class CoverageMap:
    """Which cells of the frame the accepted views have put corners in (the wizard's coverage map).

    Why: distortion is estimated from corners near the frame edges; a set of views that all sit in
    the middle gives a fit with a low RMS that is wrong at the borders.
    """

    def __init__(self, image_size: tuple[int, int], cells: tuple[int, int] = (8, 6)):
        self.image_size = image_size
        self.cells = cells
        self.hits = np.zeros((cells[1], cells[0]), np.int32)

    def add(self, points: np.ndarray) -> None:
        w, h = self.image_size
        pts = points.reshape(-1, 2)
        cx = np.clip((pts[:, 0] / w * self.cells[0]).astype(int), 0, self.cells[0] - 1)
        cy = np.clip((pts[:, 1] / h * self.cells[1]).astype(int), 0, self.cells[1] - 1)
        np.add.at(self.hits, (cy, cx), 1)

    @property
    def fraction(self) -> float:
        return float((self.hits > 0).mean())
