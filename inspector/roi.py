"""Checks on a recipe's region of interest (polygon and mask) before the station inspects with it.

Why: the ROI decides which defects count. A 2-point polygon, one drawn outside the board, an
all-black mask or a mask of another size does not fail at inspection time: it makes every defect
"outside the ROI" and every board PASS. So the ROI is checked wherever a recipe is compiled
(`config check`, station start, PLC and UI recipe switches) and a bad one stops the station with the
key named, instead of inspecting nothing.

Coordinates are board coordinates: the reference image's pixels, or the frame's when the recipe has
no reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

#: Below this share of the board inspected, `config show` and the recipe screen warn that the recipe
#: excludes most of the board (allowed, but rarely intended).
COVERAGE_WARNING = 0.5

#: A mask may be scaled (with `roi_mask_scale`) only to a board of the same shape: a relative
#: aspect-ratio difference above this would stretch it.
MAX_ASPECT_CHANGE = 0.01

#: Pixels at or above this value in a mask are inspected (white = inspect).
MASK_ON = 128


def polygon_area(points: Sequence[tuple[float, float]]) -> float:
    """Enclosed area (shoelace), px²; 0 for fewer than 3 points."""
    if len(points) < 3:
        return 0.0
    a = 0.0
    for (x0, y0), (x1, y1) in zip(points, [*points[1:], points[0]], strict=True):
        a += x0 * y1 - x1 * y0
    return abs(a) / 2


def polygon_shape_problem(points: Sequence[tuple[float, float]]) -> str | None:
    """What is wrong with a polygon regardless of the board it is drawn on, or None."""
    if len(points) < 3:
        return f"{len(points)} point(s); an ROI polygon needs at least 3 corners"
    for x, y in points:
        if not (math.isfinite(x) and math.isfinite(y)):
            return f"corner ({x}, {y}) is not a finite number"
        if x < 0 or y < 0:
            return f"corner ({x:g}, {y:g}) lies outside the board (negative coordinate)"
    if polygon_area(points) < 1.0:
        return "the corners enclose no area (all on one line or the same point)"
    return None


@dataclass
class RoiReport:
    """The outcome of checking one recipe's ROI against one board size."""

    problems: list[tuple[str, str]] = field(default_factory=list)
    """(key, message): key is `roi`, `roi_mask` or `min_roi_fraction` (the recipe's field)."""
    coverage: float | None = None
    """Share of the board the ROI inspects (polygon and mask together); None: no ROI or no board size."""
    board_size: tuple[int, int] | None = None
    """(width, height) the ROI was checked against; None when unknown."""
    mask: np.ndarray | None = None
    """The mask as it is to be used: scaled to the board when the recipe allows it."""

    @property
    def ok(self) -> bool:
        return not self.problems

    @property
    def excludes_most(self) -> bool:
        return self.coverage is not None and self.coverage < COVERAGE_WARNING

    def messages(self, prefix: str = "") -> list[str]:
        return [f"{prefix}{key}: {msg}" for key, msg in self.problems]


def check_roi(
    polygon: Sequence[tuple[float, float]] | None,
    mask: np.ndarray | None,
    board_size: tuple[int, int] | None,
    *,
    scale_mask: bool = False,
    min_fraction: float = 0.05,
) -> RoiReport:
    """Check a polygon and/or a grayscale mask against a board of `board_size` (width, height).

    Without a board size the mask's own size stands for the board; with neither, only the
    polygon's shape is checked.
    """
    rep = RoiReport(board_size=board_size)
    if polygon is not None:
        problem = polygon_shape_problem(polygon)
        if problem:
            rep.problems.append(("roi", problem))
            polygon = None
    if mask is not None:
        mh, mw = mask.shape[:2]
        if not (mask >= MASK_ON).any():
            rep.problems.append(("roi_mask", f"all black ({mw}x{mh}): it inspects nothing (white = inspect)"))
            mask = None
        elif board_size is not None and (mw, mh) != tuple(board_size):
            bw, bh = board_size
            if not scale_mask:
                rep.problems.append(
                    (
                        "roi_mask",
                        f"is {mw}x{mh} but the board is {bw}x{bh}; give a mask of the board's size, or set "
                        "roi_mask_scale = true to scale it",
                    )
                )
                mask = None
            elif abs((mw / mh) / (bw / bh) - 1) > MAX_ASPECT_CHANGE:
                rep.problems.append(
                    (
                        "roi_mask",
                        f"is {mw}x{mh}, another shape than the {bw}x{bh} board; roi_mask_scale only scales a mask "
                        "of the same aspect ratio",
                    )
                )
                mask = None
            else:
                mask = cv2.resize(mask, (bw, bh), interpolation=cv2.INTER_NEAREST)
        if mask is not None and board_size is None:
            board_size = rep.board_size = (mw, mh)
    rep.mask = mask
    if rep.problems or board_size is None or (polygon is None and mask is None):
        return rep
    bw, bh = board_size
    inspected = np.ones((bh, bw), np.uint8) if mask is None else (mask >= MASK_ON).astype(np.uint8)
    if polygon is not None:
        outside = [(x, y) for x, y in polygon if x > bw or y > bh]
        if outside:
            x, y = outside[0]
            rep.problems.append(
                ("roi", f"corner ({x:g}, {y:g}) lies outside the {bw}x{bh} board ({len(outside)} corner(s) outside)")
            )
            return rep
        canvas = np.zeros((bh, bw), np.uint8)
        cv2.fillPoly(canvas, [np.round(np.array(polygon, np.float64)).astype(np.int32)], 1)
        inspected &= canvas
    rep.coverage = float(inspected.mean())
    if rep.coverage < min_fraction:
        key = "roi" if polygon is not None else "roi_mask"
        rep.problems.append(
            (
                key,
                f"inspects {rep.coverage:.1%} of the {bw}x{bh} board, below min_roi_fraction "
                f"{min_fraction:g}; lower min_roi_fraction if that small an area is meant",
            )
        )
    return rep
