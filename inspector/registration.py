"""Registration of each capture to the recipe's golden reference (board coordinates).

Why on the inspection path: the model compares the board with its golden image pixel by pixel, and
a board shifted by 2 px in the fixture turns every trace edge into a "defect". Every command that
uses a reference (`run`, `inspect`, `evaluate`, `bench`) registers through `inspector.inspection`.
`BoardRegistrar.register(image, reference)` returns the `Registration`: the transform from capture
pixels to reference (board) pixels and its quality. The transform is kept so detections can be
reported in frame pixels and the recipe's ROI tested in board coordinates. A board that cannot be
registered raises RegistrationError, which the inspection turns into a REJECT with the reason --
never a PASS against a misaligned reference.

Method: the transform is refined by ECC (enhanced correlation coefficient, sub-pixel, robust to
exposure change) on a coarse-to-fine pyramid. The start comes from the previous board (the fixture
holds boards in nearly the same place), else from phase correlation (shift), else from ORB features
with RANSAC (large rotation or scale). The quality is the ECC correlation between the capture and
the warped reference (1 = identical).

Cost: the correlation is maximised in inverse-compositional form (solver "ic"): the reference's
pyramid, gradients and normal matrices are fixed, so they are built once per reference and cached,
and each step only resamples the capture. It reaches the same optimum as OpenCV's findTransformECC
(solver "ecc", kept for homographies and for comparison) at about a third of the CPU per board, and
it stops on the size of the step in pixels, so the result does not depend on where it started
(scripts/bench_registration.py prints both, and the start dependence).

This module lives in `inspector` (not `calibration`) because the station cannot inspect without it;
`calibration.registration` re-exports it for the calibration tools.
"""

from __future__ import annotations

import logging
import math
import threading
import time
import zlib
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .config import CalibrationSection
from .detect.base import ColourRule
from .detect.prepare import is_binary, to_8bit, to_gray

log = logging.getLogger(__name__)

#: Reason prefix of a board that could not be aligned to its reference (REJECT, health "registration").
UNREGISTERED = "board not registered to the reference"


class RegistrationError(Exception):
    """A capture that cannot be aligned to its golden reference.

    The inspection turns it into a REJECT with this message as the reason: a board that cannot be
    registered is never inspected against a misaligned reference, and never passes silently.
    """

    def __init__(self, message: str, quality: float = 0.0):
        super().__init__(message)
        self.quality = quality


def gray8(image: np.ndarray, colour: ColourRule = "red") -> np.ndarray:
    """uint8 grayscale for ECC; a pixel type ECC cannot use is a RegistrationError naming it.

    A colour frame becomes gray by the preparation's own rule (`inspector.detect.prepare.to_gray`, `colour`
    as the model's `input_domain.colour`): registration and the model then look at the same copper/laminate
    contrast. Luma mixes in the green and blue planes, where bare copper and laminate differ far less; on
    colour renderings of group 44000 that halved the edge contrast and one defective board was not
    registered (quality 0.63, red plane 0.90). 16-bit goes onto 8 bit by its significant bits (`to_8bit`).
    """
    try:
        g = to_gray(image, "registration input", colour)
    except ValueError as exc:
        raise RegistrationError(str(exc)) from None
    g = to_8bit(g)
    return np.ascontiguousarray(g)


_MOTION = {
    "translation": cv2.MOTION_TRANSLATION,
    "euclidean": cv2.MOTION_EUCLIDEAN,
    "affine": cv2.MOTION_AFFINE,
    "homography": cv2.MOTION_HOMOGRAPHY,
}


class RegistrationSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    method: Literal["auto", "ecc", "features"] = Field(
        "auto", description="auto: ECC from the last pose or phase correlation, features if that fails."
    )
    motion: Literal["translation", "euclidean", "similarity", "affine", "homography"] = Field(
        "affine",
        description="Transform model; affine covers shift, rotation, scale and slight shear; similarity is shift, "
        "rotation and one scale (always solved by ic).",
    )
    min_quality: float = Field(0.7, ge=0, le=1, description="Below this ECC correlation the board is not registered.")
    max_shift_px: float = Field(200.0, gt=0, description="Larger board displacement is a fixture fault.")
    max_rotation_deg: float = Field(15.0, gt=0, le=180, description="Larger board rotation is a fixture fault.")
    max_scale_change: float = Field(0.1, gt=0, lt=1, description="Larger relative scale change is a set-up fault.")
    max_stretch: float | None = Field(
        0.03,
        ge=0,
        description="An affine solve that stretches (or shears) the board by more than this, one axis against the "
        "other, is solved again as a similarity (shift, rotation, one scale), which is what a fixed camera does to a "
        "board. Why: on long parallel traces through the view the image does not fix the scale along them, and the "
        "affine solve stretched a camera capture 1.2x along them at a good correlation. None: never.",
    )
    coarse_size: int = Field(160, ge=64, le=2048, description="Long side of the coarsest pyramid level, px.")
    solver: Literal["ic", "ecc"] = Field(
        "ic",
        description="ic: the ECC correlation maximised by inverse-compositional steps on the reference's cached "
        "pyramid and gradients (the reference is the same for every board of a recipe, so each step only "
        "resamples the capture; several times cheaper, same optimum); ecc: OpenCV findTransformECC at every level "
        "(the earlier method; homography always uses it).",
    )
    iterations: int = Field(60, ge=5, le=1000, description="ECC iterations per pyramid level (a cap for ic).")
    fine_iterations: int | None = Field(
        None,
        ge=1,
        le=1000,
        description="Iteration cap at the finest level (None: `iterations` for ecc, 10 for ic); the finest level "
        "starts within a fraction of a pixel of its optimum. It bounds the worst board: on a board whose image "
        "barely fixes one direction (long parallel traces) ic can creep along it for all 60 steps (37 ms).",
    )
    epsilon: float = Field(
        1e-5,
        gt=0,
        description="ecc: stop when the correlation improves less than this (ic stops on `step_px` instead). Looser (1e-4) is about 25 % faster but "
        "leaves the result dependent on where it started (the last board's pose), so the same board can get "
        "boxes a few px apart depending on the board before it.",
    )
    step_px: float = Field(
        0.02,
        gt=0,
        le=0.1,
        description="ic: stop at the finest level when a step moves no corner of the board by more than this, in that "
        "level's pixels (half resolution by default: 0.04 px on the board); coarser levels stop at 10x this. Tight "
        "enough that the result does not depend on the start (the last board's pose or phase correlation): 0.006 px "
        "apart at most in scripts/bench_registration.py, against 0.003 px for the ECC solver at epsilon 1e-5.",
    )
    full_resolution: bool = Field(
        False,
        description="Also refine at full resolution: a little more accurate, about 3x slower; "
        "off stops at half resolution (0.15 px worst case in scripts/bench_calibration.py).",
    )
    search_px: float = Field(
        32.0,
        ge=0,
        le=256,
        description="After the solve, the correlation over all shifts up to this far (px) is checked at a quarter of "
        "the resolution: a better match elsewhere restarts the solve there, an equal one separated by a dip "
        "(a repeated pattern) is a board that cannot be registered; 0: no check. Why: the solver follows the "
        "slope from its start, and where long parallel traces barely fix the position along them it can stop "
        "20 px off with a good quality score.",
    )
    ambiguity: float = Field(
        0.03,
        ge=0,
        le=1,
        description="A second match, separated from the best by a dip, within this much correlation of it makes "
        "the position ambiguous (REJECT, not registered).",
    )
    highpass_px: float = Field(
        16.0,
        ge=0,
        le=256,
        description="Both images are aligned with their smooth part (a Gaussian of this sigma, px) subtracted, the "
        "quality is scored on them too; 0: raw images. Why: a camera frame carries the lamp's gradient, vignetting "
        "and exposure, different on every capture, and a textured laminate; on the raw images the correlation "
        "is dominated by that light, and the solver slid or collapsed on 8 of 50 camera-rendered pairs (none with "
        "it). Two binary images (DeepPCB's, a line that binarises upstream) have no light to take out and are aligned "
        "as they are.",
    )
    edge_solve: bool = Field(
        False,
        description="Solve filtered (camera) captures on the reference's copper edge band only (where the quality is "
        "scored), not on every pixel. Off by default: on seven sparse DeepPCB views, gray camera, another physical "
        "board than the golden one, it took the error at the copper (95th percentile) from 0.8-3.6 px to 0.3-1.9 px, "
        "but the golden board's own second capture from 0.0-0.1 to 0.1-0.4 px, and on long parallel traces the "
        "corners from 0.3 to 0.95 px: the weave that differs between boards also pins the position along traces.",
    )
    colour: ColourRule = Field(
        "red",
        description="How a colour image handed to the registrar itself becomes gray, by the preparation's rule "
        "(`inspector.detect.prepare.to_gray`). The station never does that: `inspect_board` converts frame and "
        "reference first, by the model's `input_domain.colour` (`DetectorInfo.colour`).",
    )


@dataclass(slots=True)
class Registration:
    """The outcome for one capture."""

    matrix: np.ndarray
    """3x3 transform from capture pixels to reference pixels."""
    quality: float
    method: str
    elapsed_ms: float

    def reference_to_image(self) -> np.ndarray:
        return np.linalg.inv(self.matrix)

    @property
    def homography(self) -> bool:
        return not np.allclose(self.matrix[2], (0.0, 0.0, 1.0))

    def max_displacement_px(self, shape: tuple[int, ...]) -> float:
        """Largest distance any corner of an image of `shape` moves under the transform, px."""
        h, w = shape[:2]
        corners = np.array([[0, 0], [w - 1, 0], [0, h - 1], [w - 1, h - 1]], np.float64).reshape(-1, 1, 2)
        moved = cv2.perspectiveTransform(corners, self.matrix)
        return float(np.linalg.norm((moved - corners).reshape(-1, 2), axis=1).max())

    def warp_to_reference(self, image: np.ndarray, reference: np.ndarray) -> np.ndarray:
        """The capture resampled into reference (board) pixels.

        Board areas the capture does not show keep the reference's own pixels: nothing seen is
        nothing to compare, so a board that sits off-centre never shows its missing edge as a defect.
        """
        if image.ndim != reference.ndim or image.dtype != reference.dtype:
            raise RegistrationError(
                f"capture {image.shape} {image.dtype} and reference {reference.shape} {reference.dtype} differ in "
                "kind (colour, bit depth): convert one to the other's domain first"
            )
        h, w = reference.shape[:2]
        out = reference.copy()
        if self.homography:
            cv2.warpPerspective(
                image, self.matrix, (w, h), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
            )
        else:
            cv2.warpAffine(
                image, self.matrix[:2], (w, h), dst=out, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT
            )
        return out

    def warp_reference(self, reference: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """The reference resampled into capture pixels (for display beside the capture)."""
        h, w = shape[:2]
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        if self.homography:
            return cv2.warpPerspective(reference, self.matrix, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        return cv2.warpAffine(reference, self.matrix[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)

    @property
    def shift_px(self) -> tuple[float, float]:
        """Where the capture's centre-less origin moved: the translation part, px."""
        m = self.reference_to_image()
        return float(m[0, 2]), float(m[1, 2])

    @property
    def rotation_deg(self) -> float:
        m = self.reference_to_image()
        return math.degrees(math.atan2(m[1, 0] - m[0, 1], m[0, 0] + m[1, 1]))

    @property
    def scale(self) -> float:
        m = self.reference_to_image()
        return float(math.sqrt(abs(np.linalg.det(m[:2, :2]))))


def _to_ecc(m: np.ndarray, motion: str) -> np.ndarray:
    return m.astype(np.float32) if motion == "homography" else m[:2].astype(np.float32)


def _from_ecc(w: np.ndarray) -> np.ndarray:
    m = np.eye(3)
    m[: w.shape[0]] = w
    return m


class _NoConvergence(Exception):
    """An inverse-compositional solve that cannot go on (no correlation left, the board left the view)."""


_IC_COARSE_STEPS = 10.0
"""Coarser levels stop at this multiple of `step_px`: they only give the finest its start, which needs to be well
inside its reach, not exact."""
_IC_FINE_ITERATIONS = 10
"""ic's cap at the finest level unless `fine_iterations` says otherwise: 2-3 steps are typical."""
_ANCHOR_KEEP = 1e-2
"""The last start (`ecc+nominal+anchored`) moves the board only along directions whose curvature of the correlation
is at least this fraction of the strongest one (each direction's parameters counted in pixels of displacement over
the level, `_ANCHOR_STIFFNESS`). Over DeepPCB's 1,000 references the weakest direction has a median of 2e-3 and a
1st percentile of 5e-6; the two views with one straight copper edge, 2e-9 and 2e-5: along the edge nothing in the
image fixes the board. A board reaches this start only when every other start failed, so the threshold leans to
keeping the fixture's pose."""
_ANCHOR_STIFFNESS = 10.0
"""The anchored start counts a pixel of displacement made by turning, scaling or shearing the board as this many
made by shifting it: of two moves that put the one edge in view where it belongs, it takes the shift (a board moves in
its fixture; its scale is the camera's, and fixed), so the rest of the view does not swing about the edge."""
_EDGE_SOLVE_MIN = 0.002
"""`edge_solve`: a level whose edge band covers less than this share of it is solved on every pixel."""
_CACHE_SIZE = 4
"""References kept (recipes in use by one station); one 640x640 reference costs about 7 MB."""
_SURFACE_SCALE = 0.25
"""Resolution of the correlation surface `_settle` checks (a quarter: about 0.5 ms for +-32 px on a 640x640 board)."""
_SURFACE_GAIN = 0.005
"""A match elsewhere must beat the solution's own correlation by this to restart the solve there (below it, the
two are the same within the noise of two captures: a flat ridge)."""
_SURFACE_DIP = 0.02
"""How far the surface must dip between two matches for them to be two (a ridge of parallel traces does not)."""
_CACHE_LOCK = threading.Lock()
_LEVEL_CACHE: OrderedDict[tuple, list[_Level]] = OrderedDict()
_FILTER_CACHE: OrderedDict[tuple, tuple[np.ndarray, np.ndarray | None]] = OrderedDict()
_EDGE_FRACTION = 0.3
"""`_edge_mask`: edges are where the reference's gradient exceeds this share of its 99.5th percentile..."""
_EDGE_NOISE = 5.0
"""... and this many times its median (the surface's own gradient: laminate weave, copper grain). On a sparse view
(under 1 % copper) the 99.5th percentile lies in the weave, and the "edges" covered half the view: camera renderings
of DeepPCB views, median gradient 9-13, 99th percentile 27-33, copper edges 100-190."""
_EDGE_MIN_SHARE = 0.002
"""A reference whose edge band covers less of it has no edges to score or solve on (a blank view)."""


def is_blank(gray: np.ndarray) -> bool:
    """No contrast to align on (standard deviation under 2 gray levels): no board in view, or no light."""
    return float(cv2.meanStdDev(gray)[1][0, 0]) < 2.0


def _is_binary(gray: np.ndarray) -> bool:
    """At least 90 % of the pixels within 40 of black or white: the test the model's input preparation makes
    (`inspector.detect.prepare.is_binary` with the shipped sidecar's margins)."""
    return is_binary(gray, 40, 0.9)


def _ecc(img: np.ndarray, warped: np.ndarray, mask: np.ndarray | None) -> float:
    """The correlation coefficient of the two images (on `mask` when given and not nearly empty)."""
    if mask is not None and cv2.countNonZero(mask) >= _EDGE_MIN_SHARE * mask.size:
        return float(cv2.computeECC(img, warped, mask))
    return float(cv2.computeECC(img, warped))


def _edge_mask(filtered: np.ndarray) -> np.ndarray | None:
    """Where the (filtered) reference has the board's structure: its edges, 3 px wide; None if it has hardly any.

    Why the quality is scored there only: a plain area carries nothing but the surface (laminate weave,
    copper grain), which differs from one physical board to the next; on a sparse board it outweighs the
    few edges, and a defective board of the right type scored 0.59 where a wrong board scores 0.1. On the
    edges, the same board scores >= 0.94 and the wrong one <= 0.14 (camera renderings, group 44000).
    """
    g = cv2.GaussianBlur(filtered.astype(np.float32), (0, 0), 1.5)
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    top, median = (float(v) for v in np.percentile(mag[::2, ::2], (99.5, 50)))
    if top <= 0:
        return None
    mask = cv2.dilate((mag > max(_EDGE_FRACTION * top, _EDGE_NOISE * median)).view(np.uint8), np.ones((3, 3), np.uint8))
    return mask if float(mask.mean()) >= _EDGE_MIN_SHARE else None


def _highpass(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """`image` less its smooth part (a Gaussian of `sigma_px`), float32; `image` itself when `sigma_px` is 0.

    Why: what registration must match is the board's edges; the light across the field, the exposure
    and a coarse surface tint differ between two captures of the same board and would otherwise be
    matched too. The blur runs on a 4x-reduced image (a 16 px Gaussian in 1 ms instead of 30).
    """
    if sigma_px <= 0:
        return image
    f = image.astype(np.float32)
    h, w = f.shape
    k = max(1, min(4, int(sigma_px // 2), min(h, w) // 16))
    small = f if k == 1 else cv2.resize(f, (max(1, w // k), max(1, h // k)), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma_px / k, borderType=cv2.BORDER_REFLECT)
    low = small if k == 1 else cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)
    return f - low


def _translate(x: float, y: float) -> np.ndarray:
    return np.array([[1.0, 0.0, x], [0.0, 1.0, y], [0.0, 0.0, 1.0]])


@dataclass(slots=True, eq=False)
class _Level:
    """One pyramid level of a reference, with everything an inverse-compositional step needs from it."""

    scale: float
    blur: int
    motion: str
    size: tuple[int, int]
    """(width, height) of the level image."""
    rows: np.ndarray
    """(k + 1, N) float32: the k steepest-descent images, then the template, each zero-mean."""
    rows64: np.ndarray
    moments: np.ndarray
    """(k + 1, k + 1) sums of products of the rows over the whole level (float64)."""
    hess: np.ndarray
    b_t: np.ndarray
    tt: float
    sel: np.ndarray | None = None
    """Flat indices of the level's pixels the solve compares (the reference's edge band); None: all of them."""

    @classmethod
    def build(cls, ref: np.ndarray, sc: float, blur: int, motion: str, mask: np.ndarray | None = None) -> _Level:
        r = ref if sc == 1.0 else cv2.resize(ref, None, fx=sc, fy=sc, interpolation=cv2.INTER_AREA)
        r = cv2.GaussianBlur(r.astype(np.float32), (blur, blur), 0)
        # OpenCV's ECC gradients: 3x3 Sobel scaled to a unit central difference
        gx = cv2.Sobel(r, cv2.CV_32F, 1, 0, ksize=3) * 0.125
        gy = cv2.Sobel(r, cv2.CV_32F, 0, 1, ksize=3) * 0.125
        h, w = r.shape
        ys, xs = np.mgrid[0:h, 0:w]
        x, y = (xs - (w - 1) / 2).astype(np.float32), (ys - (h - 1) / 2).astype(np.float32)
        if motion == "translation":
            cols = [gx, gy]
        elif motion == "euclidean":
            cols = [gy * x - gx * y, gx, gy]
        elif motion == "similarity":
            cols = [gx * x + gy * y, gy * x - gx * y, gx, gy]
        else:
            cols = [gx * x, gx * y, gx, gy * x, gy * y, gy]
        rows64 = np.stack([c.ravel() for c in cols] + [r.ravel()]).astype(np.float64)
        sel = None
        if mask is not None:
            # The edge band at this level, widened by a level pixel each side: the solve's reach.
            band = mask if mask.shape == (h, w) else cv2.resize(mask, (w, h), interpolation=cv2.INTER_AREA)
            band = cv2.dilate((band > 0).view(np.uint8), np.ones((3, 3), np.uint8))
            if cv2.countNonZero(band) >= _EDGE_SOLVE_MIN * band.size:
                sel = np.flatnonzero(band)
                rows64 = rows64[:, sel]
        rows64 -= rows64.mean(axis=1, keepdims=True)
        moments = np.einsum("kn,ln->kl", rows64, rows64)
        k = len(cols)
        if np.linalg.cond(moments[:k, :k]) > 1e12:
            raise _NoConvergence("the reference has no texture to align on")
        hess, b_t, tt = moments[:k, :k], moments[:k, k], float(moments[k, k])
        return cls(sc, blur, motion, (w, h), rows64.astype(np.float32), rows64, moments, hess, b_t, tt, sel)

    def solve(self, a: np.ndarray, wl: np.ndarray, cap: int, tol: float, keep: float = 0.0) -> np.ndarray:
        """Refine `wl` (level reference pixels -> level capture pixels) on the blurred capture level `a`.

        Like OpenCV's ECC, the whole reference is compared except where the warped capture has no pixels
        (an offset board). Those few pixels' share is taken out of the cached sums instead of recomputing
        them, so an offset costs a gather of the border band, not a pass over the image per parameter pair.
        `keep` > 0: steps only along the directions the reference determines (`_anchored_inverse`).
        """
        w, h = self.size
        k = self.rows.shape[0] - 1
        n = self.rows.shape[1]
        corners = np.array([[0, w - 1, 0, w - 1], [0, 0, h - 1, h - 1]], np.float64)
        shown: tuple[np.ndarray, np.ndarray, np.ndarray, float] | None = None  # (hidden pixels, hess, b_t, tt)
        for _ in range(cap):
            aff = wl[:2]
            iw = cv2.warpAffine(
                a, aff, (w, h), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                borderMode=cv2.BORDER_CONSTANT, borderValue=float("nan"),
            ).ravel()  # fmt: skip
            if self.sel is not None:
                iw = iw[self.sel]
            pts = aff[:, :2] @ corners + aff[:, 2:]
            if pts.min() >= 0 and pts[0].max() <= a.shape[1] - 1.001 and pts[1].max() <= a.shape[0] - 1.001:
                hess, b_t, tt = self.hess, self.b_t, self.tt
                iw -= float(iw.mean())
            else:
                bad = np.flatnonzero(np.isnan(iw))
                if n - bad.size < 0.25 * n:
                    raise _NoConvergence("the board left the view")
                if shown is None or not np.array_equal(shown[0], bad):  # the hidden band rarely changes
                    out = self.rows64[:, bad]
                    sums = -out.sum(axis=1)  # the rows are zero-mean over the level: the shown pixels' sums
                    mom = self.moments - np.einsum("kn,ln->kl", out, out) - np.outer(sums, sums) / (n - bad.size)
                    shown = (bad, mom[:k, :k], mom[:k, k], float(mom[k, k]))
                _, hess, b_t, tt = shown
                iw[bad] = 0.0
                iw -= float(iw.sum()) / (n - bad.size)
                iw[bad] = 0.0
            # einsum, not @: a matrix product goes to BLAS threads, slow on a busy 2-core station
            p = np.einsum("kn,n->k", self.rows, iw).astype(np.float64)
            b_i, it = p[:k], float(p[k])
            try:
                rhs = np.stack([b_t, b_i], axis=1)
                hb, hbi = (self._anchored_inverse(hess, keep) @ rhs if keep > 0 else np.linalg.solve(hess, rhs)).T
            except np.linalg.LinAlgError:
                raise _NoConvergence("the reference has no texture to align on") from None
            denom = it - float(b_i @ hb)
            if not denom > 0:
                raise _NoConvergence("no correlation with the reference left")
            lam = (tt - float(b_t @ hb)) / denom
            step = self._step(lam * hbi - hb)
            if not np.all(np.isfinite(step)):
                raise _NoConvergence("the step diverged")
            wl = wl @ _inv_affine(step)
            moved = step[:2, :2] @ corners + step[:2, 2:] - corners
            if float(np.abs(moved).max()) < tol:
                break
        return wl

    def _anchored_inverse(self, hess: np.ndarray, keep: float) -> np.ndarray:
        """The inverse of `hess` on the directions it determines; no step at all along the others.

        Why: with one straight copper edge in view, moving the board along the edge (or stretching it along the
        edge) leaves the correlation as it is. A plain solve then follows the noise along that direction until
        the board stretches 2x or leaves the view, and the board is not registered. Moving it there changes
        nothing that is compared either, so the board stays where the start put it (the fixture's nominal pose):
        the eigen-directions of the Hessian, each parameter scaled to pixels of displacement over the level,
        that are weaker than `keep` times the strongest get no step.
        """
        w, h = self.size
        # RMS of x and y over the level, times the linear terms' stiffness
        sx, sy = (_ANCHOR_STIFFNESS * (n - 1) / math.sqrt(12.0) for n in (w, h))
        r = math.hypot(sx, sy)
        scale = {
            "translation": (1.0, 1.0),
            "euclidean": (r, 1.0, 1.0),
            "similarity": (r, r, 1.0, 1.0),
            "affine": (sx, sy, 1.0, sx, sy, 1.0),
        }[self.motion]
        d = np.asarray(scale, np.float64)
        val, vec = np.linalg.eigh(hess / np.outer(d, d))
        if not val[-1] > 0:
            raise _NoConvergence("the reference has no texture to align on")
        inv = np.where(val >= keep * val[-1], 1.0 / np.maximum(val, 1e-300), 0.0)
        return (vec * inv) @ vec.T / np.outer(d, d)

    def _step(self, dp: np.ndarray) -> np.ndarray:
        """The step's warp in level pixels (the parameters are about the level's centre)."""
        if self.motion == "translation":
            return _translate(dp[0], dp[1])
        if self.motion == "euclidean":
            c, s_ = math.cos(dp[0]), math.sin(dp[0])
            lin, t = ((c, -s_), (s_, c)), (dp[1], dp[2])
        elif self.motion == "similarity":
            lin, t = ((1 + dp[0], -dp[1]), (dp[1], 1 + dp[0])), (dp[2], dp[3])
        else:
            lin, t = ((1 + dp[0], dp[1]), (dp[3], 1 + dp[4])), (dp[2], dp[5])
        cx, cy = (self.size[0] - 1) / 2, (self.size[1] - 1) / 2
        (a, b), (c_, d) = lin
        return np.array([[a, b, cx + t[0] - a * cx - b * cy], [c_, d, cy + t[1] - c_ * cx - d * cy], [0.0, 0.0, 1.0]])


def stretch(m: np.ndarray) -> float:
    """How far a transform's linear part is from a similarity: largest over smallest singular value, minus 1.

    A rotation with one scale gives 0; 0.18 is a board stretched 1.18x along one axis relative to the other
    (or sheared by as much). The mean scale (`Registration.scale`) does not see it.
    """
    sv = np.linalg.svd(np.asarray(m, np.float64)[:2, :2], compute_uv=False)
    return float(sv[0] / sv[1] - 1.0) if sv[1] > 0 else math.inf


def _nearest_similarity(m: np.ndarray, centre: tuple[float, float]) -> np.ndarray:
    """The similarity (rotation, one scale) nearest `m`'s linear part that maps `centre` where `m` does."""
    u, sv, vt = np.linalg.svd(m[:2, :2])
    if np.linalg.det(u @ vt) < 0:  # a reflection is no camera pose: keep the rotation
        u[:, -1] *= -1
    lin = (u @ vt) * float(sv.mean())
    c = np.asarray(centre, np.float64)
    out = np.eye(3)
    out[:2, :2] = lin
    out[:2, 2] = m[:2, :2] @ c + m[:2, 2] - lin @ c
    return out


def _inv_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 3x3 affine matrix (a general inverse costs more in call overhead than the whole step)."""
    a, b, c, d = m[0, 0], m[0, 1], m[1, 0], m[1, 1]
    det = a * d - b * c
    ia = np.array([[d, -b], [-c, a]]) / det
    out = np.eye(3)
    out[:2, :2] = ia
    out[:2, 2] = -ia @ m[:2, 2]
    return out


class BoardRegistrar:
    """Implements `inspector.inspection.Registrar`; one instance per inference thread (keeps the last pose)."""

    def __init__(self, settings: RegistrationSettings | None = None):
        self.settings = settings or RegistrationSettings()
        self.last: Registration | None = None
        self._orb = None
        # set by `estimate` for the board at hand: the reference's pixel CRC, whether both images are aligned
        # filtered, and then the reference's `_edge_mask`
        self._ref_crc = 0
        self._filtered = False
        self._edges: np.ndarray | None = None
        # Resized copies, each made once: of the reference (kept while its CRC and filtering stay the same) and of
        # the capture at hand (only during `estimate`); the solver's pyramid, the surface check and the quality
        # all ask for the same few sizes.
        self._ref_key: tuple = ()
        self._ref_small: dict[tuple, np.ndarray] = {}
        self._ref_now: np.ndarray | None = None  # the reference array of the board at hand (its copies' key holds)
        self._img_small: tuple[np.ndarray | None, dict[tuple, np.ndarray]] = (None, {})

    # ------------------------------------------------------------------ protocol
    def register(self, image: np.ndarray, reference: np.ndarray) -> Registration:
        """The transform from `image` to `reference` pixels and its quality; raises RegistrationError.

        Warping is left to the caller (`Registration.warp_to_reference` / `warp_reference`), which
        knows which side it needs; the transform itself is what boxes and the ROI are mapped with.
        """
        return self.estimate(image, reference)

    def prepare(self, reference: np.ndarray) -> None:
        """Build the reference's cached pyramid now (when a recipe is loaded), not on its first board.

        Raises RegistrationError for a reference that cannot be registered to (pixel type, no texture).
        """
        if self._ic():
            ref = gray8(reference, self.settings.colour)
            crc = zlib.crc32(ref)
            filtered, edges, binary = self._filtered_reference(ref, crc)
            try:  # a binary reference is most likely met by binary captures, which are aligned unfiltered
                self._reference_levels(ref if binary else filtered, crc, not binary, edges=edges)
            except _NoConvergence as exc:
                raise RegistrationError(f"reference {reference.shape}: {exc}") from None

    # ------------------------------------------------------------------ estimate
    def estimate(self, image: np.ndarray, reference: np.ndarray) -> Registration:
        t0 = time.perf_counter()
        img, ref = gray8(image, self.settings.colour), gray8(reference, self.settings.colour)
        if min(img.shape) < 32 or min(ref.shape) < 32:
            raise RegistrationError(f"image {img.shape[1]}x{img.shape[0]} is too small to register")
        if is_blank(img):
            raise RegistrationError("the capture is blank (no contrast): no board in view, or no light")
        s = self.settings
        raw_img, raw_ref = img, ref  # features work on the images as they are
        self._ref_crc = zlib.crc32(ref)
        filtered, edges, binary = self._filtered_reference(ref, self._ref_crc)
        # Two binary images (DeepPCB, a line that binarises upstream) have no light field to take out:
        # they are aligned as they are, as before the filter existed.
        self._filtered = s.highpass_px > 0 and not (binary and _is_binary(img))
        self._edges = None
        if self._filtered:
            img, ref, self._edges = _highpass(img, s.highpass_px), filtered, edges
        key = (self._ref_crc, ref.shape, self._filtered and s.highpass_px)
        if self._ref_key != key:
            self._ref_key, self._ref_small = key, {}
        self._img_small, self._ref_now = (img, {}), ref
        try:
            return self._estimate(img, ref, raw_img, raw_ref, t0)
        finally:
            self._img_small, self._ref_now = (None, {}), None  # the capture's copies are not kept past its board

    def _estimate(
        self, img: np.ndarray, ref: np.ndarray, raw_img: np.ndarray, raw_ref: np.ndarray, t0: float
    ) -> Registration:
        s = self.settings
        # Starts are computed only when needed: the last pose usually suffices, and the phase
        # correlation (two resizes and an FFT) would be wasted on every such board.
        # The fixture's nominal pose (no move) comes before phase correlation: where the image barely fixes one
        # direction (long parallel traces through the view), every position along it correlates alike, and the
        # start decides where the solve stops; the nominal pose is where a fixtured board is, phase
        # correlation's peak on such a ridge is anywhere (a capture 3 px off settled 114 px along the traces).
        starts: list[tuple[str, Callable[[], np.ndarray]]] = []
        if s.method in ("auto", "ecc"):
            if self.last is not None:
                last = self.last.matrix
                starts.append(("ecc+last", lambda: last))
            if self.last is None or not np.allclose(self.last.matrix, np.eye(3)):
                starts.append(("ecc+nominal", lambda: np.eye(3)))
            starts.append(("ecc+phase", lambda: self._phase_start(img, ref)))
        best: Registration | None = None
        failures: list[str] = []
        for name, start in starts:
            reg = self._try(name, img, ref, start(), failures)
            if reg and (best is None or reg.quality > best.quality):
                best = reg
            if best and best.quality >= s.min_quality:
                break
        if (best is None or best.quality < s.min_quality) and s.method in ("auto", "features"):
            m0 = self._feature_start(raw_img, raw_ref, failures)
            if m0 is not None:
                reg = self._try("ecc+features", img, ref, m0, failures)
                if reg and (best is None or reg.quality > best.quality):
                    best = reg
        keep = 0.0
        if (best is None or best.quality < s.min_quality) and self._ic():
            # Last: from the fixture's nominal pose, moving the board only where the reference says where it is
            # (one straight edge in view fixes nothing along it). Tried last, so a board any other start registers
            # is registered exactly as before.
            reg = self._try("ecc+nominal+anchored", img, ref, np.eye(3), failures, keep=_ANCHOR_KEEP)
            if reg and (best is None or reg.quality > best.quality):
                best, keep = reg, _ANCHOR_KEEP
        if best is None:
            raise RegistrationError(f"{UNREGISTERED}: " + "; ".join(failures or ["no start"]))
        if best.quality < s.min_quality:
            raise RegistrationError(
                f"{UNREGISTERED}: quality {best.quality:.2f} < {s.min_quality:.2f} "
                "(wrong board or recipe, board missing, or heavy damage)",
                best.quality,
            )
        if s.search_px > 0:
            best = self._settle(img, ref, best, failures, keep)
        self._check_limits(best)
        best.elapsed_ms = (time.perf_counter() - t0) * 1000
        self.last = best
        return best

    def _check_limits(self, reg: Registration) -> None:
        s = self.settings
        m = reg.reference_to_image()
        centre_shift = float(np.hypot(m[0, 2], m[1, 2]))
        if abs(reg.rotation_deg) > s.max_rotation_deg:
            raise RegistrationError(
                f"board rotated {reg.rotation_deg:.1f} deg (> {s.max_rotation_deg:g}): check the fixture", reg.quality
            )
        if abs(reg.scale - 1) > s.max_scale_change:
            raise RegistrationError(
                f"board scale {reg.scale:.3f} differs from the reference by more than {s.max_scale_change:.0%}: "
                "check the camera distance and the recipe's reference",
                reg.quality,
            )
        if centre_shift > s.max_shift_px + abs(reg.rotation_deg) * 20:
            raise RegistrationError(
                f"board shifted {centre_shift:.0f} px (> {s.max_shift_px:g}): check the fixture", reg.quality
            )

    def _ic(self) -> bool:
        """Whether boards are solved inverse-compositionally (OpenCV's ECC has no similarity motion)."""
        s = self.settings
        return s.motion != "homography" and (s.solver == "ic" or s.motion == "similarity")

    def _try(self, name: str, img: np.ndarray, ref: np.ndarray, m0: np.ndarray, failures: list[str], keep: float = 0.0):
        try:
            if self._ic():
                levels = self._reference_levels(ref, self._ref_crc, self._filtered, edges=self._edges)
                m, q = self._ic_pyramid(img, levels, m0, keep)
            else:
                m, q = self._ecc_pyramid(img, ref, m0)
        except np.linalg.LinAlgError:
            # A degenerate start (e.g. features all on one line give a singular transform).
            failures.append(f"{name}: degenerate start transform (singular)")
            return None
        except (cv2.error, _NoConvergence) as exc:
            why = exc.err.strip() if isinstance(exc, cv2.error) else str(exc)
            failures.append(f"{name}: ECC did not converge ({why or 'cv2.error'})")
            return None
        if not np.all(np.isfinite(m)):
            failures.append(f"{name}: ECC diverged")
            return None
        if self._ic():
            q = self._quality_sampled(img, ref, m)
        limit = self.settings.max_stretch
        if self.settings.motion == "affine" and limit is not None and stretch(m) > limit:
            return self._unstretched(name, img, ref, m, failures, keep)
        return Registration(m, float(q), name, 0.0)

    def _unstretched(
        self, name: str, img: np.ndarray, ref: np.ndarray, m: np.ndarray, failures: list[str], keep: float = 0.0
    ) -> Registration | None:
        """The board solved again as a similarity (shift, rotation, one scale), from the nearest one to `m`.

        Why: where the image barely fixes one direction (long parallel traces through the view), the affine
        solve is free to stretch the board along them at an unchanged correlation, and does (1.2x along the
        traces on a DeepPCB board's camera capture). A fixed camera does not stretch one axis of a board; the
        similarity keeps everything a camera does and drops the freedom the image cannot pin down.
        """
        factor = stretch(m)
        try:
            levels = self._reference_levels(ref, self._ref_crc, self._filtered, motion="similarity", edges=self._edges)
            start = _nearest_similarity(m, ((img.shape[1] - 1) / 2, (img.shape[0] - 1) / 2))
            m1, _ = self._ic_pyramid(img, levels, start, keep)
        except (np.linalg.LinAlgError, _NoConvergence) as exc:
            failures.append(f"{name}: stretched {1 + factor:.2f}x along one axis, similarity re-solve failed ({exc})")
            return None
        if not np.all(np.isfinite(m1)):
            failures.append(f"{name}: stretched {1 + factor:.2f}x along one axis, similarity re-solve diverged")
            return None
        return Registration(m1, float(self._quality_sampled(img, ref, m1)), f"{name}+similarity", 0.0)

    def _settle(
        self, img: np.ndarray, ref: np.ndarray, reg: Registration, failures: list[str], keep: float = 0.0
    ) -> Registration:
        """`reg`, or a better solve where the correlation surface around it shows one; raises on a repeated pattern.

        Why: the solver finds the optimum nearest its start. The surface of the correlation over every shift
        within `search_px` (the capture warped by `reg`, against the reference) shows what the start hid: a
        higher match elsewhere (the solver stopped on a shallow slope, e.g. along long parallel traces: the
        solve is restarted there) or a second, separate match as good as the best (a repeated pattern: the
        image does not say which, so the board is not registered). A flat ridge along parallel traces that no
        feature ends is no such case: every position on it compares the same pixels, and it is accepted.
        """
        s = self.settings
        for _ in range(2):
            surf, sc = self._surface(img, ref, reg.matrix)
            r = (surf.shape[0] - 1) // 2
            iy, ix = np.unravel_index(int(np.argmax(surf)), surf.shape)
            best, centre = float(surf[iy, ix]), float(surf[r, r])
            if max(abs(ix - r), abs(iy - r)) < 1 or best - centre <= _SURFACE_GAIN:
                break
            # the capture's content at reference position p matches the reference at p + d
            m0 = _translate((ix - r) / sc, (iy - r) / sc) @ reg.matrix
            moved = self._try(f"{reg.method}+search", img, ref, m0, failures, keep)
            if moved is None or moved.quality <= reg.quality:
                break
            reg = moved
        else:
            surf, sc = self._surface(img, ref, reg.matrix)
        other = _second_match(surf)
        if other is not None and other[0] >= float(surf.max()) - s.ambiguity:
            dx, dy = other[1][0] / sc, other[1][1] / sc
            raise RegistrationError(
                f"{UNREGISTERED}: position ambiguous: the board matches its reference as well ({other[0]:.2f}) "
                f"{math.hypot(dx, dy):.0f} px away (a repeated pattern: the reference needs a unique feature in view)",
                reg.quality,
            )
        return reg

    def _surface(self, img: np.ndarray, ref: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, float]:
        """Normalised correlation of the capture warped by `m` with the reference over shifts up to `search_px`.

        At a quarter of the resolution (about 0.5 ms): what is looked for is a match some px away, not its fraction.
        Returns the (2r + 1)^2 surface (centre: no shift) and the scale it was computed at.
        """
        h, w = ref.shape
        sc = min(1.0, max(_SURFACE_SCALE, 64.0 / min(h, w)))
        r = max(1, math.ceil(self.settings.search_px * sc))
        a = self._shrunk(img, sc) if sc < 1 else img
        b = self._shrunk(ref, sc) if sc < 1 else ref
        bh, bw = b.shape
        r = min(r, (min(bh, bw) - 8) // 4)
        ms = _centre_scale(m, sc)
        flags = cv2.INTER_LINEAR
        if self.settings.motion == "homography" or not np.allclose(ms[2], (0.0, 0.0, 1.0)):
            wa = cv2.warpPerspective(a.astype(np.float32), ms, (bw, bh), flags=flags)
        else:
            wa = cv2.warpAffine(a.astype(np.float32), ms[:2], (bw, bh), flags=flags)
        return cv2.matchTemplate(b.astype(np.float32), wa[r : bh - r, r : bw - r], cv2.TM_CCOEFF_NORMED), sc

    def _scales(self, long_side: int) -> list[float]:
        """Pyramid scales, coarsest first: halvings down to about `coarse_size`, full size only when asked."""
        s = self.settings
        scales = []
        sc = 1.0
        while long_side * sc > s.coarse_size * 1.5:
            sc /= 2
        while sc < 1.0:
            scales.append(sc)
            sc *= 2
        scales.append(1.0)
        if not s.full_resolution and len(scales) > 1:
            scales = scales[:-1]
        return scales

    def _ecc_pyramid(self, img: np.ndarray, ref: np.ndarray, m0: np.ndarray) -> tuple[np.ndarray, float]:
        s = self.settings
        motion = _MOTION[s.motion]
        scales = self._scales(max(img.shape))
        m = m0.copy()
        q = 0.0
        for k, sc in enumerate(scales):
            if sc < 1.0:
                a = cv2.resize(img, None, fx=sc, fy=sc, interpolation=cv2.INTER_AREA)
                b = cv2.resize(ref, None, fx=sc, fy=sc, interpolation=cv2.INTER_AREA)
            else:
                a, b = img, ref
            # Pixel centres: x_s = s * (x + 0.5) - 0.5, folded into the scaled transform.
            w = _to_ecc(_centre_scale(m, sc), s.motion)
            last = k == len(scales) - 1
            blur = 3 if last else 5
            cap = s.fine_iterations if last and s.fine_iterations else s.iterations
            criteria = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, cap, s.epsilon)
            q, w = cv2.findTransformECC(a, b, w, motion, criteria, None, blur)
            m = _centre_scale(_from_ecc(w), 1.0 / sc)
        if not s.full_resolution:
            # quality at full resolution so the score means the same whatever the speed setting
            q = self._quality(img, ref, m)
        return m, q

    def _filtered_reference(self, ref: np.ndarray, crc: int) -> tuple[np.ndarray, np.ndarray | None, bool]:
        """The reference as the solver sees it (`_highpass`), where the quality is scored (`_edge_mask`), and
        whether the reference is binary. Computed once per reference (`crc`: of its pixels), like its pyramid.
        """
        s = self.settings
        key = ("highpass", crc, ref.shape, s.highpass_px)
        with _CACHE_LOCK:
            out = _FILTER_CACHE.get(key)
            if out is not None:
                _FILTER_CACHE.move_to_end(key)
                return out
        if s.highpass_px > 0:
            filtered = _highpass(ref, s.highpass_px)
            mask = _edge_mask(filtered)
        else:
            filtered, mask = ref, None
        for a in (filtered, mask):
            if a is not None:
                a.flags.writeable = False  # shared between boards: nobody may edit it in place
        out = (filtered, mask, _is_binary(ref))
        with _CACHE_LOCK:
            _FILTER_CACHE[key] = out
            while len(_FILTER_CACHE) > _CACHE_SIZE:
                _FILTER_CACHE.popitem(last=False)
        return out

    # ------------------------------------------------------------------ inverse-compositional ECC
    def _reference_levels(
        self, ref: np.ndarray, crc: int, filtered: bool, motion: str | None = None, edges: np.ndarray | None = None
    ) -> list[_Level]:
        """The reference's pyramid with its gradients and normal matrices, built once per reference.

        Why a cache: the golden board is the same for every board of a recipe, and in the inverse-
        compositional form everything derived from it (blur, gradients, the 6x6 Hessian) is fixed, so a
        board costs only the resampling of its own capture. Keyed by content (CRC of the pixels, 0.1 ms),
        not by object: a reference re-read from its file hits, one edited in place misses. `crc` is of the
        reference's own pixels; `ref` is them or, `filtered`, their `_highpass`. `motion`: the settings' unless
        given (the similarity re-solve of a stretched board).
        """
        s = self.settings
        motion = motion or s.motion
        edges = edges if filtered and s.edge_solve else None
        key = (
            crc,
            ref.shape,
            s.highpass_px if filtered else 0.0,
            motion,
            s.coarse_size,
            s.full_resolution,
            edges is None,
        )
        with _CACHE_LOCK:
            levels = _LEVEL_CACHE.get(key)
            if levels is not None:
                _LEVEL_CACHE.move_to_end(key)
                return levels
        scales = self._scales(max(ref.shape))
        levels = [_Level.build(ref, sc, 3 if k == len(scales) - 1 else 5, motion, edges) for k, sc in enumerate(scales)]
        with _CACHE_LOCK:
            _LEVEL_CACHE[key] = levels
            while len(_LEVEL_CACHE) > _CACHE_SIZE:
                _LEVEL_CACHE.popitem(last=False)
        return levels

    def _ic_pyramid(
        self, img: np.ndarray, levels: list[_Level], m0: np.ndarray, keep: float = 0.0
    ) -> tuple[np.ndarray, float]:
        """ECC's optimum (the warp that maximises the correlation coefficient) by inverse-compositional steps.

        The warp `w` maps reference pixels into the capture; each step is solved on the reference's own
        gradients (fixed, cached) and composed in inversely, so the per-step work is one resampling of the
        capture and one 7-row product. The illumination gain is ECC's (OpenCV's lambda with the roles of the
        two images swapped), so the fixed point is the same correlation maximum ECC converges to.
        """
        s = self.settings
        w = np.linalg.inv(m0)
        for k, lv in enumerate(levels):
            last = k == len(levels) - 1
            cap = (s.fine_iterations or _IC_FINE_ITERATIONS) if last else s.iterations
            a = img if lv.scale == 1.0 else self._shrunk(img, lv.scale)
            a = cv2.GaussianBlur(a.astype(np.float32), (lv.blur, lv.blur), 0)
            wl = _centre_scale(w, lv.scale)
            tol = s.step_px if last else s.step_px * _IC_COARSE_STEPS
            wl = lv.solve(a, wl, cap, tol, keep)
            w = _centre_scale(wl, 1.0 / lv.scale)
        return np.linalg.inv(w), 0.0

    def _quality(self, img: np.ndarray, ref: np.ndarray, m: np.ndarray) -> float:
        if self._filtered:
            return self._quality_averaged(img, ref, m)
        h, w = img.shape
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        if self.settings.motion == "homography":
            warped = cv2.warpPerspective(ref, m, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = cv2.warpAffine(ref, m[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        return _ecc(img, warped, self._warped_edges(m, (w, h)))

    def _warped_edges(self, m: np.ndarray, size: tuple[int, int]) -> np.ndarray | None:
        """The reference's edge mask in capture pixels of `size` (`m`: capture -> reference); None without one."""
        if self._edges is None:
            return None
        flags = cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP
        if self.settings.motion == "homography":
            return cv2.warpPerspective(self._edges, m, size, flags=flags)
        return cv2.warpAffine(self._edges, m[:2], size, flags=flags)

    def _quality_sampled(self, img: np.ndarray, ref: np.ndarray, m: np.ndarray) -> float:
        """`_quality` on every second pixel of every second row (full-resolution samples, a quarter of them).

        The same statistic as the full pass (not a blurred half-resolution one, which would read higher) at
        a quarter of the cost; it was the largest single cost left after the inverse-compositional solve.
        Camera captures (`_filtered`) are scored by `_quality_averaged` instead.
        """
        if self._filtered:
            return self._quality_averaged(img, ref, m)
        h, w = img.shape
        sub = np.ascontiguousarray(img[::2, ::2])
        pick = np.array([[2.0, 0.0, 0.0], [0.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        warped = cv2.warpAffine(ref, (m @ pick)[:2], (sub.shape[1], sub.shape[0]), flags=flags,
                                borderMode=cv2.BORDER_REPLICATE)  # fmt: skip
        return _ecc(sub, warped, self._warped_edges(m @ pick, (sub.shape[1], sub.shape[0])))

    def _quality_averaged(self, img: np.ndarray, ref: np.ndarray, m: np.ndarray) -> float:
        """The correlation on the reference's edges, both images first averaged over 2x2 pixels (camera captures).

        Why: two captures carry independent sensor noise and JPEG loss, which cap their correlation below 1
        however well they are aligned. A harsh camera (docs/model.md) took known-good captures of sparse
        boards to 0.50 and defective boards of a validation group to 0.67-0.70, under the 0.7 gate, while a
        wrong board scores at most 0.18-0.38. Averaging four pixels halves the noise and keeps the edges
        (harsh renderings of the 420 training pairs: known-good lowest 0.50 -> 0.71, 2 -> 0 under the gate;
        wrong boards' highest 0.17 -> 0.18). Binary captures have no noise to average: blurring their edges
        would only raise every score, a wrong binary board's too (0.698 -> 0.704 seen), so they keep the
        full-resolution statistic.
        """
        c = np.array([[2.0, 0.0, 0.5], [0.0, 2.0, 0.5], [0.0, 0.0, 1.0]])  # half-size pixel -> full-size pixel
        h, w = img.shape[0] // 2, img.shape[1] // 2
        a = self._shrunk(img, size=(w, h))
        rh = self._shrunk(ref, size=(ref.shape[1] // 2, ref.shape[0] // 2))
        flags = cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP
        mh = np.linalg.inv(c) @ m @ c
        if self.settings.motion == "homography":
            warped = cv2.warpPerspective(rh, mh, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        else:
            warped = cv2.warpAffine(rh, mh[:2], (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)
        return _ecc(a, warped, self._warped_edges(m @ c, (w, h)))

    def _shrunk(self, image: np.ndarray, sc: float = 0.0, size: tuple[int, int] | None = None) -> np.ndarray:
        """`image` reduced by area averaging, by `sc` or to `size` (width, height), made once per board or reference.

        `image` is the capture being registered (its copies live for this `estimate`) or the reference it is
        registered to (its copies live while the reference does). Why: the pyramid, the correlation surface and
        the quality asked for the same quarter- and half-size copies, and resizing a 640x640 board cost 0.2 ms
        each time. Anything else is resized as asked and not kept.
        """
        if image is self._img_small[0]:
            memo = self._img_small[1]
        elif image is self._ref_now:
            memo = self._ref_small
        else:
            memo = None
        if size is not None and (2 * size[0], 2 * size[1]) == (image.shape[1], image.shape[0]):
            sc, size = 0.5, None  # an exact halving: the same call to OpenCV, so the same copy (an odd side is not)
        key = (sc, size)
        out = memo.get(key) if memo is not None else None
        if out is None:
            if size is None:
                out = cv2.resize(image, None, fx=sc, fy=sc, interpolation=cv2.INTER_AREA)
            else:
                out = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
            if memo is not None:
                out.flags.writeable = False
                memo[key] = out
        return out

    def _phase_start(self, img: np.ndarray, ref: np.ndarray) -> np.ndarray:
        """Translation from phase correlation at low resolution (handles shifts, not large rotations)."""
        sc = min(1.0, 256 / max(img.shape))
        a = cv2.resize(img, None, fx=sc, fy=sc, interpolation=cv2.INTER_AREA).astype(np.float32)
        b = cv2.resize(ref, None, fx=sc, fy=sc, interpolation=cv2.INTER_AREA).astype(np.float32)
        if a.shape != b.shape:
            b = cv2.resize(b, (a.shape[1], a.shape[0]), interpolation=cv2.INTER_AREA)
        win = cv2.createHanningWindow((a.shape[1], a.shape[0]), cv2.CV_32F)
        (dx, dy), _ = cv2.phaseCorrelate(b, a, win)
        m = np.eye(3)
        m[0, 2], m[1, 2] = -dx / sc, -dy / sc
        return m

    def _feature_start(self, img: np.ndarray, ref: np.ndarray, failures: list[str]) -> np.ndarray | None:
        if self._orb is None:
            self._orb = cv2.ORB_create(nfeatures=3000, scaleFactor=1.2, nlevels=8, fastThreshold=10)
        k1, d1 = self._orb.detectAndCompute(img, None)
        k2, d2 = self._orb.detectAndCompute(ref, None)
        if d1 is None or d2 is None or len(k1) < 10 or len(k2) < 10:
            failures.append(
                f"features: too few keypoints ({len(k1 or ())} in the capture, {len(k2 or ())} in the reference)"
            )
            return None
        matches = cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(d1, d2, k=2)
        good = [m[0] for m in matches if len(m) == 2 and m[0].distance < 0.8 * m[1].distance]
        if len(good) < 10:
            failures.append(f"features: only {len(good)} distinctive matches")
            return None
        src = np.float32([k1[m.queryIdx].pt for m in good])
        dst = np.float32([k2[m.trainIdx].pt for m in good])
        if self.settings.motion == "homography":
            h, inl = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
        else:
            a, inl = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC, ransacReprojThreshold=3.0)
            h = None if a is None else np.vstack([a, [0, 0, 1]])
        n = int(inl.sum()) if inl is not None else 0
        if h is None or n < 8:
            failures.append(f"features: no consistent transform ({n} inliers of {len(good)} matches)")
            return None
        return h


def _second_match(surf: np.ndarray) -> tuple[float, tuple[int, int]] | None:
    """The best local maximum of `surf` that is a match of its own: (its value, its offset from the best).

    Its own: at least 2 cells from the best, and the surface dips on the straight way between the two by
    at least `_SURFACE_DIP` below it; a ridge (parallel traces) rises or stays level all the way and is one
    match, not two. None when there is no other.
    """
    iy, ix = np.unravel_index(int(np.argmax(surf)), surf.shape)
    peaks = surf >= cv2.dilate(surf, np.ones((3, 3), np.uint8))
    peaks[max(0, iy - 1) : iy + 2, max(0, ix - 1) : ix + 2] = False
    ys, xs = np.nonzero(peaks)
    order = np.argsort(-surf[ys, xs])
    for y, x in zip(ys[order].tolist(), xs[order].tolist(), strict=True):
        dist = math.hypot(y - iy, x - ix)
        if dist < 2:
            continue
        n = int(math.ceil(dist)) * 2 + 1
        line = cv2.remap(
            surf, np.linspace(ix, x, n, dtype=np.float32)[None], np.linspace(iy, y, n, dtype=np.float32)[None],
            cv2.INTER_LINEAR,
        )  # fmt: skip
        if float(surf[y, x]) - float(line.min()) >= _SURFACE_DIP:
            return float(surf[y, x]), (x - ix, y - iy)
    return None


def _centre_scale(m: np.ndarray, s: float) -> np.ndarray:
    """The same transform expressed on an image resized by `s` (pixel-centre convention)."""
    A = np.array([[s, 0, 0.5 * s - 0.5], [0, s, 0.5 * s - 0.5], [0, 0, 1.0]])
    return A @ m @ np.linalg.inv(A)


def settings_from_config(section: CalibrationSection) -> RegistrationSettings:
    """The registrar settings of a station's `[calibration]` section."""
    return RegistrationSettings(
        motion=section.motion,
        min_quality=section.min_quality,
        max_shift_px=section.max_shift_px,
        max_rotation_deg=section.max_rotation_deg,
        max_scale_change=section.max_scale_change,
        full_resolution=section.full_resolution,
    )
