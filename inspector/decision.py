"""PASS / REJECT from a recipe.

Why separate from the detector: thresholds, ROI and minimum size belong to the product (recipe),
which a quality engineer changes without touching the model. The detector returns everything above
a low floor; the recipe decides what counts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .config import Recipe
from .detect.base import ColourRule
from .detect.prepare import to_8bit, to_gray
from .domain import CLASS_NAMES, Detection, Verdict
from .roi import check_roi


class RecipeError(Exception):
    """A recipe that cannot be applied (unreadable reference or mask); names the recipe and file."""


def read_image(path: Path, what: str) -> np.ndarray:
    """Read an image as stored (colour stays colour), or raise RecipeError naming `what` and the file.

    Strictly (`inspector.image_file`): a truncated golden image read leniently comes back half gray, and every
    good board would be rejected for defects that are only the missing half.
    """
    from .image_file import ImageFileError, read_image_file

    try:
        return read_image_file(path)
    except ImageFileError as exc:
        if exc.missing:
            raise RecipeError(f"{what} {path} does not exist") from None
        raise RecipeError(f"{what} {path}: {exc}") from None


def read_image_gray(path: Path, what: str, colour: ColourRule = "red") -> np.ndarray:
    """Read an image as uint8 grayscale (colour by `colour`), or raise RecipeError naming `what` and the file."""
    try:
        return to_gray8(read_image(path, what), f"{what} {path}", colour)
    except ValueError as exc:
        raise RecipeError(str(exc)) from None


def to_gray8(img: np.ndarray, what: str = "image", colour: ColourRule = "red") -> np.ndarray:
    """uint8 single-channel view of an image; 16-bit is scaled, colour converted.

    Colour becomes gray by `colour`, the model's `input_domain.colour` (`DetectorInfo.colour`; red for the
    shipped model: bare copper and laminate differ most there). The station converts a camera frame and a
    colour reference once, by that rule, so the line judges the pixels `evaluate --camera colour` scored.
    """
    if img.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{what}: unsupported pixel type {img.dtype} (expected 8 or 16 bit)")
    # The preparation's own conversion (one rule for the line, `evaluate` and the registration); 16-bit onto 8 by its
    # significant bits: a 12-bit frame in a 16-bit file is not near black.
    img = to_8bit(to_gray(img, what, colour))
    return np.ascontiguousarray(img)


@dataclass(slots=True)
class Decision:
    verdict: Verdict
    kept: list[Detection]
    """The defects that count for this recipe (what the PLC and the UI report)."""
    ignored: int
    """Detections dropped by threshold, size or ROI."""


class RecipeRules:
    """A recipe compiled for fast use: thresholds by class id, ROI mask, loaded reference."""

    def __init__(self, recipe: Recipe, mm_per_px: float | None = None, board_size: tuple[int, int] | None = None):
        self.recipe = recipe
        self.name = recipe.name
        self.thresholds: dict[int, float] = {CLASS_NAMES.index(k) + 1: v for k, v in recipe.thresholds.items()}
        self.min_px = recipe.min_defect_px
        self.severity: tuple[int, ...] = tuple(CLASS_NAMES.index(n) + 1 for n in recipe.severity)
        if recipe.min_defect_mm is not None:
            if not mm_per_px:
                raise RecipeError(
                    f"recipe {recipe.name!r}: min_defect_mm is set but the station has no scale calibration "
                    "(run `pcb-inspector calibrate scale`)"
                )
            self.min_px = max(self.min_px, recipe.min_defect_mm / mm_per_px)
        stored = read_image(recipe.reference, "reference image") if recipe.reference else None
        self._reference_file = stored if stored is not None and stored.ndim == 3 else None
        self._reference_by_colour: dict[str, np.ndarray] = {}
        try:
            self.reference = to_gray8(stored, f"reference image {recipe.reference}") if stored is not None else None
        except ValueError as exc:
            raise RecipeError(str(exc)) from None
        """The golden image in gray by the red plane (size and ROI checks); `reference_for` gives the model's gray."""
        self.mask = read_image_gray(recipe.roi_mask, "ROI mask") if recipe.roi_mask else None
        self.polygon = np.array(recipe.roi, np.float32) if recipe.roi else None
        self._inspected_small: dict[tuple[int, int], np.ndarray] = {}  # `unseen_fraction`'s area, per board size
        # A bad ROI inspects nothing and passes every board: refuse it here, where every recipe is compiled.
        board = (self.reference.shape[1], self.reference.shape[0]) if self.reference is not None else board_size
        self.roi = check_roi(
            recipe.roi, self.mask, board, scale_mask=recipe.roi_mask_scale, min_fraction=recipe.min_roi_fraction
        )
        """The ROI check: coverage of the board (for `config show` and the recipe screen)."""
        if not self.roi.ok:
            raise RecipeError(f"recipe {recipe.name!r}: " + "; ".join(self.roi.messages()))
        if board is not None and self.min_px >= max(board):
            # No box is longer than the board: every defect would be ignored and every board PASS.
            what = "min_defect_mm" if self.min_px > recipe.min_defect_px else "min_defect_px"
            raise RecipeError(
                f"recipe {recipe.name!r}: {what} ignores every defect shorter than {self.min_px:.0f} px, as long as "
                f"the {board[0]}x{board[1]} board itself: every board would PASS"
            )
        code = recipe.code
        if code is not None and code.region is not None and board is not None:
            x, y, _w, _h = code.region
            if x >= board[0] or y >= board[1]:
                raise RecipeError(
                    f"recipe {recipe.name!r}: code.region {list(code.region)} starts outside the "
                    f"{board[0]}x{board[1]} board (x, y, width, height in board pixels)"
                )
        problem = code_area_problem(recipe, board, self.polygon, self.roi.mask)
        if problem:
            raise RecipeError(f"recipe {recipe.name!r}: {problem}")
        self.mask = self.roi.mask

    def reference_for(self, colour: ColourRule) -> np.ndarray | None:
        """The golden image as the running model sees it: a colour file turned gray by `colour` (the model's
        `input_domain.colour`), converted once per rule; a gray file is the same for every rule."""
        if self._reference_file is None or colour == "red":
            return self.reference
        out = self._reference_by_colour.get(colour)
        if out is None:
            out = to_gray8(self._reference_file, f"reference image {self.recipe.reference}", colour)
            self._reference_by_colour[colour] = out
        return out

    def thresholds_for(self, defaults: dict[int, float]) -> dict[int, float]:
        out = dict(defaults)
        out.update(self.thresholds)
        return out

    def unseen_fraction(self, board_to_frame: np.ndarray, frame_shape: tuple[int, int], board_shape: tuple[int, int]):
        """Share of the inspected area (the ROI, else the whole board) that the frame does not show, for a board
        registered with `board_to_frame` (3x3, board -> frame pixels). Rasterised at a quarter of the resolution."""
        k = 4
        bh, bw = board_shape
        sw, sh = max(1, -(-bw // k)), max(1, -(-bh // k))
        key = (sw, sh)
        area = self._inspected_small.get(key)
        if area is None:
            area = np.ones((sh, sw), np.uint8)
            if self.polygon is not None:
                area[:] = 0
                cv2.fillPoly(area, [np.round(self.polygon / k).astype(np.int32)], 1)
            if self.mask is not None:
                area &= (cv2.resize(self.mask, (sw, sh), interpolation=cv2.INTER_AREA) >= 128).astype(np.uint8)
            self._inspected_small[key] = area
        fh, fw = frame_shape
        corners = np.array([[0, 0], [fw, 0], [fw, fh], [0, fh]], np.float64).reshape(-1, 1, 2)
        on_board = cv2.perspectiveTransform(corners, np.linalg.inv(board_to_frame)).reshape(-1, 2) / k
        seen = np.zeros((sh, sw), np.uint8)
        cv2.fillConvexPoly(seen, np.round(on_board).astype(np.int32), 1)
        total = int(np.count_nonzero(area))
        return float(np.count_nonzero(area & (seen == 0))) / total if total else 0.0

    def _inside(self, d: Detection, to_board: np.ndarray | None = None) -> bool:
        """Whether the defect's centre lies in the ROI, which is drawn on the reference (board pixels).

        Boxes come in frame pixels; `to_board` (3x3, frame -> board, from registration) moves the
        centre onto the board first, so the ROI follows a board that sits off-centre in the fixture.
        """
        cx, cy = (d.box[0] + d.box[2]) / 2, (d.box[1] + d.box[3]) / 2
        if to_board is not None:
            x, y, z = to_board @ (cx, cy, 1.0)
            cx, cy = x / z, y / z
        if self.polygon is not None and cv2.pointPolygonTest(self.polygon, (float(cx), float(cy)), False) < 0:
            return False
        if self.mask is not None:
            h, w = self.mask.shape
            x, y = int(np.clip(cx, 0, w - 1)), int(np.clip(cy, 0, h - 1))
            if self.mask[y, x] < 128:
                return False
        return True

    def decide(
        self, detections: list[Detection], defaults: dict[int, float], to_board: np.ndarray | None = None
    ) -> Decision:
        """PASS / REJECT for detections in frame pixels; `to_board` maps frame to board pixels for the ROI."""
        thr = self.thresholds_for(defaults)
        kept = [
            d
            for d in detections
            if d.score >= thr.get(d.class_id, 0.5)
            and max(d.width, d.height) >= self.min_px
            and self._inside(d, to_board)
        ]
        verdict = Verdict.PASS if len(kept) <= self.recipe.max_defects_pass else Verdict.REJECT
        return Decision(verdict, kept, len(detections) - len(kept))


def code_area_problem(
    recipe: Recipe, board: tuple[int, int] | None, polygon: np.ndarray | None, mask: np.ndarray | None
) -> str | None:
    """Why the recipe's board-code region would switch off too much of the inspection, or None.

    Why: defects around the code do not count (`code.ignore_defects`), and the code is searched in the region
    plus `margin_px`. A region typed as the board's size, or a margin of hundreds of pixels, made that area the
    whole board: `config check` said OK and every board PASSED. So the search area (on the board) may cover at
    most `board_serial.MAX_CODE_AREA_FRACTION` of the board, and what the recipe still inspects (the ROI, else the
    board, less that area) must reach `min_roi_fraction`, as an ROI alone must. `board` is (width, height); the
    polygon and mask are the recipe's ROI in board pixels (the mask at the board's size).
    """
    from .board_serial import MAX_CODE_AREA_FRACTION

    code = recipe.code
    if code is None or code.region is None or board is None:
        return None
    bw, bh = board
    x, y, w, h = code.region
    m = code.margin_px

    def on_board(x1: int, y1: int, x2: int, y2: int) -> tuple[int, int, int, int]:
        return max(0, x1), max(0, y1), max(0, min(bw, x2)), max(0, min(bh, y2))

    def share(a: tuple[int, int, int, int]) -> float:
        return max(0, a[2] - a[0]) * max(0, a[3] - a[1]) / float(bw * bh)

    region = on_board(x, y, x + w, y + h)
    searched = on_board(x - m, y - m, x + w + m, y + h + m)
    limit = MAX_CODE_AREA_FRACTION
    if share(searched) > limit:
        key = "code.region" if share(region) > limit else "code.margin_px"
        return (
            f"{key}: the code search area (region {list(code.region)} and margin_px {m}) covers "
            f"{share(searched):.0%} of the {bw}x{bh} board, more than {limit:.0%}; a code takes a few per cent "
            "of a board, and defects around it do not count: give the code's own x, y, width, height in board "
            "pixels, or leave region out to search the whole board"
        )
    if not code.ignore_defects:
        return None
    inspected = np.ones((bh, bw), np.uint8)
    if polygon is not None:
        inspected[:] = 0
        cv2.fillPoly(inspected, [np.round(polygon).astype(np.int32)], 1)
    if mask is not None and mask.shape[:2] == (bh, bw):
        inspected &= (mask >= 128).astype(np.uint8)
    x1, y1, x2, y2 = searched
    inspected[y1:y2, x1:x2] = 0
    left = float(inspected.mean())
    if left < recipe.min_roi_fraction:
        return (
            f"code.region: defects around a code found in its search area (region {list(code.region)} and "
            f"margin_px {m}) do not count, which can leave {left:.1%} of the {bw}x{bh} board inspected, below "
            "min_roi_fraction "
            f"{recipe.min_roi_fraction:g}; move the code region off the ROI, or lower min_roi_fraction if that small "
            "an area is meant"
        )
    return None
