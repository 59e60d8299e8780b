"""Where between copper and laminate the preparation splits a camera frame, measured against the board's design.

Why: the network learnt copper edges where DeepPCB's binarisation put them. The preparation splits a camera frame
midway between the two material levels, which is where a blurred edge crosses at its true place, as long as the
edge is a clean step. Real copper is not: its etched sidewalls slope away from a ring light and darken the
outermost fraction of a pixel of every edge, and the midpoint then puts every edge inward (a second camera model
measured 0.64 px: thin traces thinner, gaps wider, mousebites deeper). Nothing in one frame says where the true
edge is; the board's design does (its copper layer rasterised at the camera's resolution, or for DeepPCB the
dataset's own binarised template). Calibrated once per camera and light on a golden board: the threshold position
at which the prepared golden capture holds as much copper as its design.

The comparison is by copper area inside the frame, after aligning the design to the capture, so it does not
depend on the capture's pose: a copper edge further out by `b` px adds `b` px of copper per px of edge.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from .prepare import ImageDomainError, prepare

POSITIONS = np.round(np.arange(0.10, 0.9001, 0.02), 2)
"""The threshold positions tried (the sidecar's bounds, 0.1..0.9)."""
MIDPOINT_INDEX = int(np.argmin(np.abs(POSITIONS - 0.5)))
"""Where the package's own position (0.5) is among them: the masks the design is aligned to and compared with."""

MARGIN_PX = 12
"""Rows and columns along the frame's border left out: where a capture's pose moves copper in and out of view."""

MAX_MISMATCH = 0.05
"""A design whose copper disagrees with the aligned capture on more than this fraction of the pixels is not this
board's (another design, another side, another scale): refused rather than fitted."""


TOLERANCE_PX = 0.1
"""Copper edges this close to the design's at the end of the positions' range are taken as on it (the position is
then that end); further off, the camera is refused."""


class ThresholdCalibrationError(ImageDomainError):
    """The golden captures and designs given cannot calibrate the threshold position (says why)."""


@dataclass(frozen=True)
class ThresholdFit:
    position: float
    """The threshold position at which the prepared captures hold their designs' copper area."""
    offset_at_midpoint_px: float
    """How far the midpoint (0.5) put copper edges out from the design's, px (negative: inward)."""
    offset_at_position_px: float
    """The same at `position`: 0 but where the range's end was taken (within TOLERANCE_PX)."""
    edge_px: int
    """Length of the designs' copper edges the fit saw, px."""
    boards: int
    mismatch: float
    """Largest fraction of pixels on which an aligned design and its capture (at the midpoint) disagreed."""

    def to_json(self) -> dict:
        return {
            "threshold_position": round(self.position, 3),
            "offset_at_midpoint_px": round(self.offset_at_midpoint_px, 3),
            "offset_at_position_px": round(self.offset_at_position_px, 3),
            "edge_px": self.edge_px,
            "boards": self.boards,
            "mismatch": round(self.mismatch, 4),
        }


def _design_mask(design: np.ndarray, copper_level: int, shape: tuple[int, int], what: str) -> np.ndarray:
    """The design as a boolean copper mask; refused unless it is a two-level image of the capture's size."""
    if design.ndim == 3:
        design = cv2.cvtColor(design, cv2.COLOR_BGR2GRAY)
    if design.dtype != np.uint8:
        raise ThresholdCalibrationError(f"{what}: a design must be an 8-bit two-level image, got {design.dtype}")
    if design.shape != shape:
        raise ThresholdCalibrationError(
            f"{what}: the design is {design.shape[1]}x{design.shape[0]} px, the golden capture {shape[1]}x{shape[0]}: "
            "rasterise the copper layer at the camera's resolution on the board"
        )
    dark, bright = int(np.count_nonzero(design < 64)), int(np.count_nonzero(design > 191))
    if dark + bright < 0.98 * design.size or min(dark, bright) < 0.001 * design.size:
        raise ThresholdCalibrationError(
            f"{what}: not a design: a design is copper and laminate in two levels, both present "
            f"({100.0 * (dark + bright) / design.size:.1f} % of the pixels are near 0 or 255)"
        )
    return (design < 128) if copper_level == 0 else (design >= 128)


def _align(design: np.ndarray, prepared: np.ndarray, what: str) -> np.ndarray:
    """`design` (bool) moved onto `prepared` (bool, the capture's mask at the midpoint) by the station's own registrar
    (shift, rotation and one scale, coarse to fine), the two masks as its images. Returns the design's copper
    coverage (0..1) in capture pixels.

    Why with a scale: a design rasterised at a scale 0.5 % off the camera's (`calibrate scale`'s own uncertainty)
    holds 1 % more or less copper, which a rigid fit leaves in the comparison as an edge offset."""
    from ..registration import BoardRegistrar, RegistrationError, RegistrationSettings

    a = design.view(np.uint8) * np.uint8(255)
    b = prepared.view(np.uint8) * np.uint8(255)
    try:
        reg = BoardRegistrar(RegistrationSettings(motion="similarity")).register(a, b)
    except RegistrationError as exc:
        raise ThresholdCalibrationError(
            f"{what}: the design could not be aligned with the golden capture: not this board, or not this side\n"
            f"  (registration: {exc})"
        ) from None
    h, w = prepared.shape
    return reg.warp_to_reference(design.astype(np.float32), np.zeros((h, w), np.float32))


def _refuse_if_inverted(copper: np.ndarray, mid: np.ndarray, inner, copper_level: int, what: str) -> None:
    """Raise the remedy when the design fits the capture once its two levels are swapped: copper drawn in the other
    level than the model's (a Gerber viewer's export draws copper white, DeepPCB and the shipped model black)."""
    try:
        flipped = _align(~copper, mid, what)[inner] >= 0.5
    except ThresholdCalibrationError:
        return
    if np.count_nonzero(flipped != mid[inner]) <= MAX_MISMATCH * flipped.size:
        drawn, want = ("white", "black") if copper_level == 0 else ("black", "white")
        raise ThresholdCalibrationError(
            f"{what}: the design draws copper {drawn}; this model's copper is {want} (input_domain.copper_level "
            f"{copper_level}): invert the design"
        )


def fit_threshold_position(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], spec, names: Sequence[str] | None = None
) -> ThresholdFit:
    """The threshold position from golden captures and their designs (`pairs`: capture, design; `spec`: the
    station's input domain). Raises ThresholdCalibrationError naming the pair and the problem."""
    if not pairs:
        raise ThresholdCalibrationError("no golden capture and design to calibrate on")
    if spec is None or spec.kind != "binary_copper":
        raise ThresholdCalibrationError("this model takes frames as they are: it has no threshold to calibrate")
    names = list(names) if names is not None else [f"pair {n + 1}" for n in range(len(pairs))]
    copper_level = spec.copper_level
    area = np.zeros(len(POSITIONS), np.float64)
    design_area, edges, worst = 0.0, 0, 0.0
    for (capture, design), what in zip(pairs, names, strict=True):
        h, w = capture.shape[:2]
        if min(h, w) <= 4 * MARGIN_PX:
            raise ThresholdCalibrationError(f"{what}: the golden capture is too small ({w}x{h} px)")
        masks = []
        for p in POSITIONS:
            out = prepare(capture, spec.model_copy(update={"threshold_position": float(p)}), what)
            masks.append(out == copper_level)
        mid = masks[MIDPOINT_INDEX]
        if mid.all() or not mid.any():
            raise ThresholdCalibrationError(f"{what}: the golden capture shows one material only: nothing to measure")
        copper = _design_mask(design, copper_level, (h, w), what)
        m = MARGIN_PX
        inner = (slice(m, h - m), slice(m, w - m))
        try:
            cover = _align(copper, mid, what)
            ref = cover[inner] >= 0.5
            mismatch = float(np.count_nonzero(ref != mid[inner])) / ref.size
            if mismatch > MAX_MISMATCH:
                raise ThresholdCalibrationError(
                    f"{what}: the design and the golden capture disagree on {100 * mismatch:.1f} % of the board "
                    f"(more than {100 * MAX_MISMATCH:.0f} %): not this board's design, or the capture is not sharp"
                )
        except ThresholdCalibrationError:
            _refuse_if_inverted(copper, mid, inner, copper_level, what)
            raise
        worst = max(worst, mismatch)
        design_area += float(cover[inner].sum())  # sub-pixel: the aligned design's coverage
        edges += int(np.count_nonzero(ref[1:, :] != ref[:-1, :]) + np.count_nonzero(ref[:, 1:] != ref[:, :-1]))
        area += [float(np.count_nonzero(k[inner])) for k in masks]
    offset = (area - design_area) / max(edges, 1)  # px of copper edge beyond the design's, at each position
    # More copper at lower positions; the first position whose copper falls below the design's brackets the answer.
    below = np.flatnonzero(offset <= 0.0)
    if len(below) == 0 or below[0] == 0:
        end = len(POSITIONS) - 1 if len(below) == 0 else 0
        if abs(offset[end]) > TOLERANCE_PX:
            side = "outward of" if offset[end] > 0 else "inward of"
            raise ThresholdCalibrationError(
                f"the prepared copper edges stay {abs(offset[end]):.2f} px {side} the design's even at threshold "
                f"position {POSITIONS[end]:.2f}: check the light and focus against docs/camera.md"
            )
        position, residual = float(POSITIONS[end]), float(offset[end])
    else:
        i = int(below[0])
        lo, hi = offset[i - 1], offset[i]
        t = lo / (lo - hi) if lo != hi else 0.0
        position, residual = float(POSITIONS[i - 1] + t * (POSITIONS[i] - POSITIONS[i - 1])), 0.0
    return ThresholdFit(
        position=position,
        offset_at_midpoint_px=float(offset[MIDPOINT_INDEX]),
        offset_at_position_px=residual,
        edge_px=edges,
        boards=len(pairs),
        mismatch=worst,
    )
