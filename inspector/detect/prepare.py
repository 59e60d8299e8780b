"""Bring a camera frame (and the golden image) into the image domain the network was trained on.

Why: the shipped network learnt DeepPCB's binarised, aligned board images (copper black, laminate
white). A camera sees copper and laminate as two textured gray (or colour) levels under uneven light,
with blur and noise; fed that, the model drops from mAP@0.5 0.98 to about 0.41. DeepPCB's own
acquisition binarised after alignment, so the station does the same, inside the detector, for
every caller: flatten the illumination (divide by a large blur), smooth the sensor noise, threshold
(Otsu or adaptive), remove specks (open/close). The model package declares this in its sidecar
(`input_domain`), so a model trained on another domain says so and gets no binarisation.

An input that is already binary (DeepPCB's own images, a line that binarises upstream) passes
through untouched, so the validation figures on DeepPCB stay byte-identical.
"""

from __future__ import annotations

import functools
import math

import cv2
import numpy as np

from .base import ColourRule, ModelError


class ImageDomainError(ValueError):
    """A frame the station cannot bring into the model's image domain (2-channel, float, 3-D ...)."""


def to_gray(image: np.ndarray, what: str = "image", colour: ColourRule = "luma") -> np.ndarray:
    """Single-channel uint8 or uint16 view/copy of `image`; colour (BGR/BGRA) is converted to gray.

    Anything else (float, signed, 2-channel, 5-D ...) is refused: passing it on would give the
    network numbers it never saw, and a plausible-looking wrong verdict.
    """
    if not isinstance(image, np.ndarray):
        raise ImageDomainError(f"{what}: expected a numpy image, got {type(image).__name__}")
    if image.dtype not in (np.uint8, np.uint16):
        raise ImageDomainError(f"{what}: pixel type {image.dtype} is not supported (expected 8- or 16-bit unsigned)")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[2] in (3, 4) and colour == "red":
        # Bare copper reflects red far more than laminate does: the red plane has the most contrast.
        return np.ascontiguousarray(image[:, :, 2])
    if image.ndim == 3 and image.shape[2] == 3:
        return cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    if image.ndim == 3 and image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2GRAY)
    raise ImageDomainError(
        f"{what}: shape {image.shape} is neither grayscale (H, W) nor colour (H, W, 3|4); "
        "a 2-channel or multi-plane frame cannot be converted"
    )


def to_8bit(image: np.ndarray) -> np.ndarray:
    """8-bit as it is; 16-bit shifted down by its significant bits, just far enough that its largest value fits in 8
    bits (a 12-bit sensor's 0..4095 in a 16-bit container: >> 4; a full-range 16-bit image: >> 8).

    Why not always the top 8 bits: a 12-bit frame saved as 16-bit holds its values in the low 12 bits, whose top 8
    are 0..15. Board and golden image both came out near black, passed as already binary, and a defective board
    PASSED with no box. Why a shift and not a stretch to the frame's own maximum: two frames of one sensor map
    alike (unless one stays under half the other's range, which the preparation's light fit absorbs).
    """
    if image.dtype != np.uint16:
        return image
    shift = max(int(image.max()).bit_length() - 8, 0)
    return (image >> shift).astype(np.uint8)


def to_gray8(image: np.ndarray, what: str = "image") -> np.ndarray:
    """`to_gray`, then 16-bit onto 8 bit by its significant bits (`to_8bit`)."""
    return to_8bit(to_gray(image, what))


def _clean(mask: np.ndarray, spec) -> np.ndarray:
    """The same clean-up for every two-level split (camera board or golden): open/close, then specks."""
    if spec.clean_px > 1:
        kern = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (spec.clean_px, spec.clean_px))
        mask = cv2.morphologyEx(mask, cv2.MORPH_OPEN, kern)
        mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, kern)
    if spec.speck_px > 0:
        mask = remove_specks(mask, spec.speck_px)
    return mask


def is_binary(gray8: np.ndarray, margin: int, fraction: float) -> bool:
    """At least `fraction` of the pixels lie within `margin` of black or white (JPEG ringing allowed), and at least
    `_BINARY_WHITE_MIN` of them within `margin` of white.

    Why white too: a binarised board shows laminate (every DeepPCB image at least 14 % white), while an
    under-exposed camera frame lies wholly within `margin` of black. Taken as binary, such a board and its golden
    image went to the network as they were, both near black, and defective boards PASSED with no box.
    Counted as the pixels between the two bands (one pass, one thread, exact in integers): a 256-bin histogram
    gave the same count but cost 0.8 ms of a board's time on the station's worker thread, twenty times this.
    """
    between = cv2.countNonZero(cv2.inRange(gray8, margin + 1, 254 - margin)) if margin < 127 else 0
    if gray8.size - between < fraction * gray8.size:
        return False
    return cv2.countNonZero(cv2.inRange(gray8, 255 - margin, 255)) >= _BINARY_WHITE_MIN * gray8.size


_BINARY_WHITE_MIN = 0.01
"""A binary image shows at least this fraction of white (laminate): see `is_binary`."""


class ExposureError(ImageDomainError):
    """A camera frame whose exposure leaves copper and laminate no longer told apart (saturated, not one material)."""


class LowContrastError(ImageDomainError):
    """A camera frame that shows two materials, but closer than the preparation can split (camera gamma on, dim
    copper light): taken for one material's texture, its defects went unseen."""


_SATURATED_MAX = 0.02
"""A frame whose two levels come out closer than `_MIN_CONTRAST` with more than this fraction of its pixels at full
scale (250 or more) is over-exposed, not a view of one material (`binarise`). Camera renderings of the training
pairs: gray at most 0.7 % saturated; colour (red plane) up to 23 %, but at 2:1 contrast or more."""


def _threshold_surface(s: np.ndarray, sigma_px: float) -> np.ndarray:
    """Per-pixel threshold between the two materials, interpolated from the material edges.

    At a copper/laminate edge the (blurred) image crosses the midpoint of the two local levels, so
    the intensity there, weighted by how strong the edge is, gives the threshold under the local
    light; a wide Gaussian (normalised convolution) carries it across areas without edges. This
    needs no first guess of which pixel is copper, so a dark corner of a copper pour is not taken
    for laminate (a global first split is, and every refinement then keeps the mistake).
    """
    h, w = s.shape
    f = s.astype(np.float32)
    g = cv2.GaussianBlur(f, (0, 0), 1.0)
    mag = cv2.magnitude(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))
    # Texture and sensor noise stay well below the material edges, which are the steepest few percent.
    sample = mag[::4, ::4]  # the statistics of every 16th pixel are as good and 16x cheaper
    noise = max(3.0 * float(np.median(sample)), 0.3 * float(np.percentile(sample, 99.5)))
    wgt = np.maximum(mag - noise, 0.0)
    wgt *= wgt
    otsu, _ = cv2.threshold(s if s.dtype == np.uint8 else cv2.convertScaleAbs(s), 0, 255, cv2.THRESH_OTSU)
    if not wgt.any():  # no edges at all (one material, or a blank frame): one global level
        return np.full((h, w), np.float32(otsu))
    k = 8 if min(h, w) >= 128 else 1
    size = (max(1, w // k), max(1, h // k))
    num = cv2.resize(f * wgt, size, interpolation=cv2.INTER_AREA)
    den = cv2.resize(wgt, size, interpolation=cv2.INTER_AREA)
    sigma = max(sigma_px / k, 0.5)
    num = cv2.GaussianBlur(num, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    den = cv2.GaussianBlur(den, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    floor = 1e-6 * float(den.max())
    t = np.where(den > floor, num / np.maximum(den, floor), np.float32(otsu)).astype(np.float32)
    return cv2.resize(t, (w, h), interpolation=cv2.INTER_LINEAR) if k > 1 else t


def _fit_light(light: np.ndarray, weight: np.ndarray, size: tuple[int, int], degree: int) -> np.ndarray:
    """A smooth polynomial light field of `degree` in x and y, fitted (weighted, in log) to `light`.

    Why a polynomial: a lamp's gradient and a lens's vignetting are smooth over the whole field, and a
    global fit is not fooled where one material covers a wide area or a corner holds few pixels of
    the other, which any local average is. Fitted on the reduced grid; evaluated at full size by `_poly_field`.
    """
    h, w = light.shape
    sw, sh = size
    lg = np.log(np.maximum(cv2.resize(light, size, interpolation=cv2.INTER_AREA), 1e-3)).ravel()
    wt = np.sqrt(cv2.resize(weight, size, interpolation=cv2.INTER_AREA).ravel())
    pairs = _terms(degree)
    xs, ys = _powers(sw, degree), _powers(sh, degree)
    design = np.stack([np.outer(ys[:, j], xs[:, i]).ravel() for i, j in pairs], axis=1)
    a = design * wt[:, None]
    # Normal equations: a 10x10 solve; lstsq's SVD costs 100x more on a busy machine for the same fit.
    # einsum, not BLAS: a multi-threaded BLAS call on matrices this small costs more than it saves.
    coef = np.linalg.solve(np.einsum("ki,kj->ij", a, a) + 1e-9 * np.eye(len(pairs)), np.einsum("ki,k->i", a, lg * wt))
    return cv2.exp(_poly_field(pairs, coef, w, h, degree))


def _terms(degree: int) -> list[tuple[int, int]]:
    """The (i, j) of every term x^i y^j of a polynomial light field of `degree`, in the order its fits use."""
    return [(i, j) for i in range(degree + 1) for j in range(degree + 1 - i)]


def _powers(n: int, degree: int) -> np.ndarray:
    """(n, degree + 1): t^0 .. t^degree for n points t evenly spaced over [-1, 1]."""
    t = np.linspace(-1.0, 1.0, n)
    return t[:, None] ** np.arange(degree + 1)[None, :]


def binarise(gray: np.ndarray, spec) -> np.ndarray:
    """Copper mask in the network's levels (copper `spec.copper_level`, laminate the other), uint8 0/255.

    `gray` is 8- or 16-bit single-channel; `spec` is the sidecar's `InputDomain`.

    Why two local levels rather than dividing by one blur: a blur of a board mixes copper and
    laminate in proportion to the local copper density, so a large pour or a wide bare area divides
    to "1" and breaks up into noise. Here a global Otsu split first says which pixel is which
    material; the light is then followed by the local mean of EACH material (a normalised
    convolution over `flatten_px`), and every pixel is thresholded at the midpoint of the two local
    levels. Two rounds settle it. 'adaptive' thresholds against the local mean instead.
    """
    gray = to_8bit(gray)  # 16-bit: by its significant bits (a 12-bit sensor keeps its precision)
    h, w = gray.shape
    s = cv2.medianBlur(gray, spec.smooth_px) if spec.smooth_px > 1 else gray
    copper_bright = spec.camera_copper == "bright"
    bright_to = 255 if copper_bright == (spec.copper_level == 255) else 0
    mode = cv2.THRESH_BINARY if bright_to == 255 else cv2.THRESH_BINARY_INV
    if spec.method == "adaptive":
        out = cv2.adaptiveThreshold(
            s, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, mode, spec.adaptive_block_px, spec.adaptive_c
        )
    else:
        sf = s.astype(np.float32) + 1.0
        mid = _threshold_surface(s, spec.flatten_px) + 1.0
        bright = sf > mid
        k = 8 if min(h, w) >= 128 else 1
        size = (max(1, w // k), max(1, h // k))
        sigma = max(spec.flatten_px / k, 0.5)
        for _ in range(spec.refine):
            if bright.all() or not bright.any():  # one material only: the split stands
                break
            # Every pixel over its material's level is the light there, and the light is smooth: this
            # reaches the middle of wide pours and bare areas, where no edge is near. Pixels close to
            # the current threshold are unsure of their material and count less.
            hi, lo = float(sf[bright].mean()), float(sf[~bright].mean())
            conf = np.minimum(np.abs(sf - mid) * np.float32(2.0 / max(hi - lo, 1e-3)), 1.0)
            light = sf / np.where(bright, np.float32(hi), np.float32(lo))
            if spec.light_degree > 0:
                light = _fit_light(light, conf, size, spec.light_degree)
            else:
                num = cv2.resize(light * conf, size, interpolation=cv2.INTER_AREA)
                den = cv2.resize(conf, size, interpolation=cv2.INTER_AREA)
                num = cv2.GaussianBlur(num, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
                den = cv2.GaussianBlur(den, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
                small = num / np.maximum(den, 1e-6)
                light = cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR) if k > 1 else small
            # Threshold midway between the two material levels under this light (a blurred edge crosses
            # the arithmetic midpoint at its true place).
            mid = light * np.float32((hi + lo) * 0.5)
            bright = sf > mid
        out = bright.astype(np.uint8) * 255
        if bright_to == 0:
            out = 255 - out
    out = _clean(out, spec)
    if spec.method != "adaptive" and spec.refine > 0 and spec.light_degree > 0:
        # Last round: the same rule a registered board is binarised with (`binarise_like`), on this frame's
        # own materials, so a golden image and the boards compared with it put their edges alike.
        again = _split_with_materials(gray, spec, out, None)
        if again is _LOW_CONTRAST:
            _refuse_if_over_exposed(gray)
        if again is _LOW_CONTRAST or (again is None and _minority(out, spec) <= _ONE_MATERIAL_FRACTION):
            # The split was not copper against laminate but one material's texture against itself (a view of
            # open laminate with a pad corner: the weave's edges outnumber the copper's), or there was nothing
            # to split (a bare board: the texture's specks would be its only "other material").
            out = _one_material(gray, spec)
        elif again is not None:
            out = again
    return out


_MIN_CONTRAST = 1.5
"""Two levels closer than this (brighter / darker, under the same light) are one material's texture, not copper
and laminate. The preparation assumes at least 1.6:1 (docs/model.md); camera renderings of DeepPCB boards
split into their materials at 2.2-3.0, while views of open laminate split their weave at 1.19-1.34."""
_LOW_CONTRAST = object()
"""`_split_with_materials`' answer when the two levels it fitted are closer than `_MIN_CONTRAST` and no further apart
than one material's texture (`_TWO_MATERIALS`)."""
_TWO_MATERIALS = 5.0
"""Two fitted levels this many within-material spreads apart (in log, robust, each material's own) are two materials,
however close their ratio. Why a separation and not only the ratio: a camera's gamma (0.45, sRGB-like, a default of
many cameras) raises every ratio to that power, so a 2.5:1 copper/laminate contrast arrives as 1.5:1 and was taken for
one material's texture, and defective boards PASSED with no box; the spreads shrink by the same power, so the
separation does not change. Camera renderings of training pairs (`runs/s13/sep2.py`: every 16th pair and every
sparse view, golden image, board, second capture and another board, gray and colour, line and harsh camera): every
split below 1.5:1 at gamma 1 (all of sparse views: one material's weave, or a few pads among weave tops) lies 1.7-4.1
spreads apart; at gamma 0.45, 618 of the 633 such splits of the other views lie 5 or more apart."""


def _refuse_if_over_exposed(gray: np.ndarray) -> None:
    saturated = cv2.countNonZero(cv2.inRange(gray, 250, 255)) / gray.size
    if saturated > _SATURATED_MAX:
        # Copper clipped at full scale comes out as close to the laminate as a weave to itself: taken for a view of one
        # material, the whole board was compared as bare laminate and defects PASSED.
        raise ExposureError(
            f"over-exposed, lower the exposure, gain or light: {saturated:.0%} of the pixels at full scale "
            "and copper no longer told from laminate"
        )


def _separation(design: np.ndarray, val: np.ndarray, coef: np.ndarray) -> float:
    """How many within-material spreads the two levels of a fit (`coef[-1]`, their log ratio) lie apart: each
    material's spread is 1.4826 x its residuals' median absolute deviation, the two combined as a root mean square.

    Why each material's own: a sparse view split into two pads and a scatter of weave tops has a 'copper' whose
    residuals spread from the pads to the weave, while the laminate's are tight; pooled, the laminate's spread alone
    made that split look like two materials."""
    res = val - design @ coef
    cu = design[:, -1] > 0.5
    spreads = []
    for part in (res[cu], res[~cu]):
        if part.size < 16:
            return 0.0
        spreads.append(1.4826 * float(np.median(np.abs(part - np.median(part)))))
    return abs(float(coef[-1])) / max(math.sqrt((spreads[0] ** 2 + spreads[1] ** 2) / 2), 1e-6)


def _one_material(gray: np.ndarray, spec) -> np.ndarray:
    """The mask of a view that is mostly one material: its light fitted over all of it, and only pixels at least
    midway to the other material's assumed level (1.6:1) taken as that material.

    Why: split in two, such a view's texture becomes a speckle of 'copper' over the whole laminate (47 % of a
    camera view of DeepPCB board 20085060, which has 0.8 % copper), and every board compared with it is a
    field of false calls. Which material dominates follows from which side the outliers lie on: pads and
    traces stand out on copper's side of the laminate (brighter for `camera_copper: bright`, darker for `dark`);
    laminate seen through a copper pour on the laminate's side.
    """
    h, w = gray.shape
    s = (cv2.medianBlur(gray, spec.smooth_px) if spec.smooth_px > 1 else gray).astype(np.float32) + 1.0
    k = 8 if min(h, w) >= 128 else 1
    size = (max(1, w // k), max(1, h // k))
    step = np.float32((1.0 + 1.6) / 2.0)
    level = float(np.median(s))
    weight = np.ones((h, w), np.float32)
    for _ in range(2):  # the second fit without the other material's pixels
        field = _fit_light(s / level, weight, size, max(spec.light_degree, 0)) * np.float32(level)
        weight = ((s < field * step) & (s > field / step)).astype(np.float32)
    # Which side the other material is on: counted at the full assumed contrast, where the texture's tails
    # (a few gray levels) do not reach and a real pad or hole does; with neither, the view is laminate.
    # A pixel is the other material at the full assumed contrast: midway (1.3:1), the weave's and the tarnish's
    # smooth blobs still cross in a few places, differently in every capture, and show as pin-holes.
    other = np.float32(_ONE_MATERIAL_CONTRAST)
    # Only islands that the clean-up keeps and that lie inside the view count, and only as many as a small pad
    # (`_ONE_MATERIAL_EVIDENCE`): the light fit runs out at the frame's edge, and a dark strip along it, or one
    # deep spot of the weave, decided that a bare board was all copper.
    # Laminate by default, whichever of the two is brighter in this camera: with `camera_copper: dark` the darker
    # default had made every bare view all copper.
    brighter, darker = s > field * other, s < field / other
    toward_cu, toward_lam = (brighter, darker) if spec.camera_copper == "bright" else (darker, brighter)
    lam_islands = _inner_islands(toward_lam, spec)
    if lam_islands < _ONE_MATERIAL_EVIDENCE * h * w or _inner_islands(toward_cu, spec) >= lam_islands:
        copper = toward_cu  # a view of laminate, with copper where it stands out
    else:  # a view of copper, with laminate where it stands out (holes in a pour)
        copper = ~toward_lam
    out = np.where(copper, np.uint8(spec.copper_level), np.uint8(255 - spec.copper_level))
    return _clean(out, spec)


def _inner_islands(mask: np.ndarray, spec) -> int:
    """Pixels of `mask` (bool) in islands the clean-up keeps (`speck_px`) that do not touch the frame's edge."""
    if spec.speck_px > 0:
        mask = remove_specks(mask.view(np.uint8) * np.uint8(255), spec.speck_px) == 255
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    h, w = mask.shape
    x, y, bw, bh, area = (stats[1:, i] for i in range(5))
    inner = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    return int(area[inner].sum())


def _unseen(gray: np.ndarray, ref_gray: np.ndarray) -> np.ndarray:
    """Pixels equal to the golden image's, 3x3-eroded (a pixel that merely happens to match is not one): the area
    the camera did not see, which `warp_to_reference` filled with the reference's own pixels."""
    return cv2.erode((gray == ref_gray).view(np.uint8), np.ones((3, 3), np.uint8)).view(bool)


def _follow_golden(gray: np.ndarray, spec, ref_gray: np.ndarray, ref_mask: np.ndarray, same: np.ndarray) -> np.ndarray:
    """A registered board whose golden image shows one material: the golden mask, with the other material wherever
    the board is brighter or darker than the golden image by the full assumed contrast (1.6:1) under the two
    captures' light ratio.

    Why against the golden image and not against the board's own level: it is the same physical board, so the
    weave's and the tarnish's deep spots (1.7:1 on a rendered laminate) are in both and cancel, and a blob of the
    other material shows whichever way it differs, even where the golden image's material was guessed wrong (a
    view of one material does not say which one it is). Pixels equal to the golden image's (areas the camera did
    not see) take its mask.
    """
    h, w = gray.shape
    sb = (cv2.medianBlur(gray, spec.smooth_px) if spec.smooth_px > 1 else gray).astype(np.float32) + 1.0
    sg = (cv2.medianBlur(ref_gray, spec.smooth_px) if spec.smooth_px > 1 else ref_gray).astype(np.float32) + 1.0
    ratio = sb / sg
    k = 8 if min(h, w) >= 128 else 1
    size = (max(1, w // k), max(1, h // k))
    step = np.float32((1.0 + _ONE_MATERIAL_CONTRAST) / 2.0)
    weight = (~same).astype(np.float32)
    for _ in range(2):  # the second fit without the pixels that differ (the defects)
        light = _fit_light(ratio, weight, size, max(spec.light_degree, 0))
        weight = ((ratio < light * step) & (ratio > light / step) & ~same).astype(np.float32)
    other = np.float32(_ONE_MATERIAL_CONTRAST)
    away = ((ratio > light * other) | (ratio < light / other)) & ~same
    if spec.speck_px > 0:
        away = remove_specks(away.view(np.uint8) * np.uint8(255), spec.speck_px) == 255
    out = ref_mask.copy()
    out[away] = 255 - ref_mask[away]
    return out


def _islands(binary: np.ndarray) -> tuple[int, np.ndarray]:
    """8-connected labels of a 0/1 uint8 image: 16-bit where they fit, else 32-bit.

    Why 16-bit first: labelling and counting a 640x640 frame take half the time; OpenCV refuses (rather than wraps)
    a 65,536th island, and then the frame is labelled again in 32 bits.
    """
    try:
        return cv2.connectedComponents(binary, connectivity=8, ltype=cv2.CV_16U)
    except cv2.error:
        return cv2.connectedComponents(binary, connectivity=8, ltype=cv2.CV_32S)


def _areas(labels: np.ndarray, n: int) -> np.ndarray:
    """Pixels per label 0..n-1 (OpenCV's histogram of 16-bit labels is twice as fast as numpy's bincount)."""
    if labels.dtype == np.uint16:
        return cv2.calcHist([labels], [0], None, [n], [0, n]).ravel()
    return np.bincount(labels.ravel(), minlength=n)


def remove_specks(mask: np.ndarray, max_area: int) -> np.ndarray:
    """Flip islands of either level smaller than `max_area` pixels to their surroundings.

    Why by area and not by opening: texture and noise leave specks of a few pixels that the network
    takes for spurious copper or pin-holes, while a real break in a trace or a thin spur is narrow
    but long, and an opening would erase it.
    """
    out = mask.copy()
    for level in (255, 0):
        # Labels, then areas by counting: OpenCV's own statistics cost 2 ms a frame more than the labelling.
        n, labels = _islands((out == level).view(np.uint8))
        small = np.flatnonzero(_areas(labels, n)[1:] < max_area) + 1
        if len(small):
            lut = np.zeros(n, bool)
            lut[small] = True
            out[lut[labels]] = 255 - level
    return out


_ONE_MATERIAL_FRACTION = 0.005
"""A mask with at most 0.5 % of one material in view is a view of the other one."""
_ONE_MATERIAL_EVIDENCE = 0.0005
"""A view of one material is copper only if at least this fraction of it is islands on the laminate's side (about a
16 px pad on a 640 px view); with less, laminate (what a sparse board mostly shows)."""
_ONE_MATERIAL_CONTRAST = 1.6
"""On a view of one material, a pixel this much brighter or darker than its surroundings is the other material:
the least copper/laminate contrast the preparation assumes (docs/model.md)."""


def _minority(mask: np.ndarray, spec) -> float:
    """The fraction of `mask` (network levels) taken by its rarer material."""
    copper = int(np.count_nonzero(mask == spec.copper_level))
    return min(copper, mask.size - copper) / max(mask.size, 1)


_EDGE_GUARD_PX = 2
"""Pixels this close to a copper/laminate edge of the golden image do not inform a board's material levels
(blur, the last fraction of a pixel of misregistration)."""
_BORDER_PX = 3
"""`binarise_like`: a board's outermost 3 px take the golden mask (not judged; see there)."""
_LEVEL_STEP = 4
"""Every 4th pixel of every 4th row is a sample of the level fit (a 640x640 board: 25,600)."""


def binarise_like(
    gray: np.ndarray, spec, ref_gray: np.ndarray, ref_mask: np.ndarray, unseen: np.ndarray | None = None
) -> np.ndarray:
    """A registered board binarised under its own light, its two material levels read where the golden image
    (`ref_gray`, prepared to `ref_mask`) has each material.

    Why: two binarisations of the same board that each guess from their own frame which pixel is copper
    disagree at edges and, on a wide bare area without edges, can split the laminate's weave into copper
    and laminate (a known-good second capture then showed dozens of "spurious copper"). The board is
    registered to its golden image, so the golden image already says, everywhere but at defects, which
    material each pixel is. One fit then gives this capture's light (a smooth polynomial of degree
    `light_degree`, in log) and its copper/laminate level ratio, from both materials wherever they are;
    pixels far from the fit (defects, dirt) are left out of a second round. Each pixel is then thresholded
    midway between the two levels under that light, the rule the golden image was binarised with, so the two
    masks put an edge in the same place. The thresholding itself does not look at the golden image: a
    defect is as far from the midpoint as the material it is made of. Pixels identical to the golden
    image's (areas the camera did not see, which `inspect_board` fills with the reference) take its mask.
    """
    gray = to_8bit(gray)
    if unseen is None:  # `unseen`: given when the frames were changed after capture (`camera_gamma`)
        unseen = _unseen(gray, ref_gray)
    out = _split_with_materials(gray, spec, ref_mask, ref_gray, unseen)
    if out is None or out is _LOW_CONTRAST:
        if _minority(ref_mask, spec) > _ONE_MATERIAL_FRACTION:
            return binarise(gray, spec)  # nothing seen, or levels against the sidecar: its own split
        # The golden image shows one material here: so does the board, but where it clearly differs from the
        # golden image. Its own split would take the weave or the tarnish for the other material (known-good
        # captures of a bare board came back as fields of pin-holes).
        out = _follow_golden(gray, spec, ref_gray, ref_mask, unseen)
    # The outermost rows and columns of two frames are where the median, the light fit and the resampling
    # run out of neighbours (and JPEG blocks end): 1-px lines along the border were most of the false calls
    # left on known-good boards. They are taken as not seen, like the area the camera did not show.
    b = _BORDER_PX
    for sl in (
        (slice(0, b), slice(None)),
        (slice(-b, None), slice(None)),
        (slice(None), slice(0, b)),
        (slice(None), slice(-b, None)),
    ):
        out[sl] = ref_mask[sl]
    # The same holds for the capture's own border wherever the registration put it inside the frame (a board
    # shifted or turned against its golden image): next to the area the camera did not see (the reference's own
    # pixels, see `warp_to_reference`), the capture's outermost pixels are as unreliable as the frame's.
    if unseen.any():
        near = cv2.dilate(unseen.view(np.uint8), np.ones((2 * b + 3, 2 * b + 3), np.uint8)).view(bool)
        out[near] = ref_mask[near]
    return out


def _split_with_materials(
    gray: np.ndarray, spec, materials: np.ndarray, ref_gray: np.ndarray | None, same: np.ndarray | None = None
):
    """`gray` (uint8) thresholded midway between its two material levels under its light, both fitted where
    `materials` (a mask in the network's levels) has each material; None where it shows only one, or the
    levels contradict `camera_copper`; `_LOW_CONTRAST` where the two levels are too close to be two materials.
    Pixels equal to `ref_gray`'s (when given; `same`, when the caller has them already) take `materials`' value
    and do not inform the fit.
    """
    h, w = gray.shape
    s = cv2.medianBlur(gray, spec.smooth_px) if spec.smooth_px > 1 else gray
    if same is None:
        same = np.zeros((h, w), bool) if ref_gray is None else _unseen(gray, ref_gray)
    copper = materials == spec.copper_level
    guard = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * _EDGE_GUARD_PX + 1,) * 2)
    inner_cu = cv2.erode(copper.view(np.uint8), guard).view(bool)
    inner_lam = cv2.erode((~copper).view(np.uint8), guard).view(bool)
    k = _LEVEL_STEP
    use = (inner_cu | inner_lam)[::k, ::k] & ~same[::k, ::k]
    ys, xs = np.nonzero(use)
    if len(ys) < 64 or not inner_cu[::k, ::k][use].any() or not inner_lam[::k, ::k][use].any():
        return None
    val = np.log(s[::k, ::k][ys, xs].astype(np.float64) + 1.0)
    cu = inner_cu[::k, ::k][ys, xs].astype(np.float64)
    deg = max(spec.light_degree, 0)
    pairs = _terms(deg)
    design = np.concatenate([_sample_powers(h, w, k, deg)[use], cu[:, None]], axis=1)
    gram = _gram(design)
    coef = _robust_fit(design, val, gram)
    ratio = math.exp(coef[-1])  # copper level / laminate level under the same light
    copper_bright = spec.camera_copper == "bright"
    if (ratio > 1.0) != copper_bright:  # the levels say the opposite of the sidecar: trust neither
        return None
    if max(ratio, 1.0 / ratio) < _MIN_CONTRAST:
        if _separation(design, val, coef) < _TWO_MATERIALS:
            return _LOW_CONTRAST  # one material's texture split against itself
        _refuse_if_over_exposed(gray)  # copper clipped: the exposure, not the gamma
        raise LowContrastError(
            # The remedy first and short: the operator's alarm banner shows about two lines of it.
            "low contrast: camera gamma to 1, black level to 0, or more light on copper: copper and laminate "
            f"only {max(ratio, 1.0 / ratio):.2f}:1 apart, closer than the {_MIN_CONTRAST}:1 the preparation can split "
            "(a gamma of 0.45 turns 2.5:1 into 1.5:1; a black level or stray light adds the same to both)"
        )
    # Compared in log: the laminate's level under the light is exp(field), the midpoint a constant factor above it,
    # and a pixel's log is a table look-up (no exponential of the whole field: a millisecond a board).
    field = _poly_field(pairs, coef[:-1], w, h, deg)
    if _LOCAL_LIGHT_PX > 0:  # what the polynomial cannot follow: the corners' fall-off, a soft shadow
        field += _local_light(val - design @ coef, ys * k, xs * k, h, w)
    logs = cv2.LUT(s, _LOG1P)
    bright = logs > field + np.float32(math.log(1.0 + (ratio - 1.0) * spec.threshold_position))
    bright_to = 255 if copper_bright == (spec.copper_level == 255) else 0
    out = bright.view(np.uint8) * np.uint8(255)
    if bright_to == 0:
        out = 255 - out
    if ref_gray is not None and (spec.same_band > 0.0 or spec.same_contrast > 1.0):
        unsure = np.zeros((h, w), bool)
        if spec.same_band > 0.0:
            lam = cv2.exp(field)
            mid = lam * np.float32(1.0 + (ratio - 1.0) * spec.threshold_position)
            unsure |= np.abs(np.exp(logs) - mid) < np.float32(spec.same_band) * np.abs(lam * (ratio - 1) / 2)
        if spec.same_contrast > 1.0:
            # Where the two captures agree (under their light and level ratios), a differing mask is the two
            # binarisations disagreeing, not the board: a faint trace the golden image's split lost, a dark dot
            # both captures show, the last fraction of an edge.
            # Judged only where the masks differ (a few percent of the pixels): the rest never reaches the test.
            sg = cv2.medianBlur(ref_gray, spec.smooth_px) if spec.smooth_px > 1 else ref_gray
            sample = val - np.log(sg[::k, ::k][ys, xs] + 1.0)
            rc = _robust_fit(design, sample, gram)
            dy, dx = np.divmod(np.flatnonzero(out != materials), w)  # np.nonzero's order, 4x faster
            light = _poly_at(pairs, rc[:-1], dx, dy, w, h, deg)
            lr = logs[dy, dx].astype(np.float64) - _LOG1P[sg[dy, dx]]
            near = math.log(spec.same_contrast)
            agree = np.abs(lr - (light + rc[-1] * copper[dy, dx])) < near
            if spec.same_material == "either":
                # Where the golden capture itself sits between its two levels, its mask's label may be wrong (a
                # tarnished spot of a pour its split took for laminate); judged against that label's ratio the
                # spot differed by the two captures' contrast ratio and kept a false difference. There, the same
                # material in both captures, whichever it is, is unsure. Where the golden capture is clearly one
                # material the label stands: the other material's ratio would also excuse a defect's blurred rim.
                gold_lam = field[dy, dx].astype(np.float64) - light  # the golden capture's levels, in log
                step = coef[-1] - rc[-1]  # its copper/laminate contrast
                pos = (_LOG1P[sg[dy, dx]] - gold_lam) / (step if abs(step) > 1e-6 else 1e-6)
                unclear = np.abs(pos - 0.5) < _UNCLEAR_BAND
                other = np.abs(lr - (light + rc[-1] * ~copper[dy, dx])) < near
                agree |= unclear & other
            unsure[dy, dx] |= agree
        out = _hysteresis(out, materials, unsure)
    out = _clean(out, spec)
    out[same] = materials[same]
    return out


_LOCAL_LIGHT_PX = 40
"""The light a fit follows beyond its polynomial: cells of this many pixels (see `_local_light`)."""
_LOCAL_PRIOR = 20.0
"""`_local_light`: a cell's mean residual is shrunk toward 0 as if it held this many more samples at 0 (a cell holds
about 100 samples; one mostly taken by edges or a defect holds few and says little)."""


def _local_light(res: np.ndarray, ys: np.ndarray, xs: np.ndarray, h: int, w: int) -> np.ndarray:
    """(h, w) float32 correction (in log) to a light field fitted as one polynomial: the fit's residuals at its
    samples (pixel rows `ys`, columns `xs`) averaged over cells of `_LOCAL_LIGHT_PX`, smoothed and interpolated.

    Why: one degree-3 polynomial over the frame cannot follow the corners' fall-off (a lens's vignetting is not a
    polynomial in log) nor a soft shadow; where the contrast is low (a worse camera: 1.6:1) the error moved the
    threshold far enough that either mask split texture into the other material there, and good boards were
    rejected for a spur or a mousebite at the frame's edge. Both materials' samples count (light multiplies both);
    samples the fit could not explain (beyond 4 robust sigmas: defects, dirt) are left out, so a defect does not
    become light, and a cell's mean is shrunk toward 0 where it has few samples. A shadow deep enough to be left out
    with the defects is not followed (docs/model.md).
    """
    c = _LOCAL_LIGHT_PX
    gh, gw = -(-h // c), -(-w // c)
    keep = ~_unexplained(res)
    cell = (ys[keep] // c) * gw + xs[keep] // c
    total = np.bincount(cell, weights=res[keep], minlength=gh * gw)
    count = np.bincount(cell, minlength=gh * gw)
    local = (total / (count + _LOCAL_PRIOR)).reshape(gh, gw).astype(np.float32)
    local = cv2.GaussianBlur(local, (0, 0), 0.7, borderType=cv2.BORDER_REPLICATE)
    # INTER_LINEAR puts cell (i, j)'s value at pixel ((j + 0.5) c, (i + 0.5) c), its centre.
    return cv2.resize(local, (gw * c, gh * c), interpolation=cv2.INTER_LINEAR)[:h, :w]


@functools.lru_cache(maxsize=8)
def _sample_powers(h: int, w: int, k: int, deg: int) -> np.ndarray:
    """(ceil(h/k), ceil(w/k), terms): x^i y^j (in `_terms` order) at every k-th pixel of
    every k-th row, x and y over [-1, 1]. Why cached: a station sees one frame size, and raising 25,600 samples to
    the third power on every board cost 3-4 ms; the samples of a board are rows of this table.
    """
    tx = (np.arange(0, w, k) * (2.0 / max(w - 1, 1)) - 1.0)[None, :]
    ty = (np.arange(0, h, k) * (2.0 / max(h - 1, 1)) - 1.0)[:, None]
    pairs = _terms(deg)
    table = np.stack([np.broadcast_to(tx**i * ty**j, (ty.shape[0], tx.shape[1])) for i, j in pairs], axis=2)
    table.flags.writeable = False
    return table


_UNCLEAR_BAND = 0.3
"""`same_material: either`: a golden pixel between 20 % and 80 % of the way from its laminate level to its copper
level (in log; within 0.3 of that span from the midpoint) is unclear: its mask's label may be wrong."""


def _robust_fit(design: np.ndarray, val: np.ndarray, gram: np.ndarray | None = None) -> np.ndarray:
    """Least-squares coefficients of `design` for `val`, refitted once without the samples the first fit could not
    explain (beyond 4 robust sigmas: defects, dirt). `gram`: `_gram(design)`, when the caller fits the same design
    more than once (a board's levels and its ratio to the golden capture share their samples).

    Why the second fit subtracts the dropped samples from the first one's normal equations: they are a few percent
    of the samples, and copying the kept 95 % of the design to rebuild its Gram matrix cost a millisecond a board.
    """
    if gram is None:
        gram = _gram(design)
    rhs = design.T @ val
    coef = np.linalg.solve(gram, rhs)
    drop = _unexplained(val - design @ coef)
    if drop.any():
        a = design[drop]
        coef = np.linalg.solve(gram - a.T @ a, rhs - a.T @ val[drop])
    return coef


def _unexplained(res: np.ndarray) -> np.ndarray:
    """The samples a fit could not explain (defects, dirt): residuals beyond 4 robust sigmas (1.4826 x the median
    absolute residual)."""
    mad = float(np.median(np.abs(res))) + 1e-6
    return np.abs(res) >= 4.0 * 1.4826 * mad


def _gram(design: np.ndarray) -> np.ndarray:
    """The normal equations' matrix of a least-squares fit of `design` (regularised by a hair)."""
    return design.T @ design + 1e-9 * np.eye(design.shape[1])


_LOG1P = np.log(np.arange(256, dtype=np.float64) + 1.0).astype(np.float32)
"""log(v + 1) for every 8-bit value: a board's pixels in log by one table look-up (`cv2.LUT`)."""


def _poly_field(pairs: list[tuple[int, int]], coef: np.ndarray, w: int, h: int, deg: int) -> np.ndarray:
    """(h, w) float32 values of the polynomial sum(coef * x^i y^j) over [-1, 1]^2 (x, y: the pixel's column and row
    mapped onto [-1, 1]), evaluated exactly at the centre of every `_FIELD_STEP` x `_FIELD_STEP` cell and
    interpolated between them.

    Why not at every pixel: that took about a millisecond a board (four 640x640 products and sums), the cells a tenth
    of it; interpolated over 8 px, even a field far steeper than a lens and a light give is within 1e-3 in log of the
    polynomial, a fifth of an 8-bit step at the copper's level (tested). A frame under 16 cells a side is evaluated at
    every pixel.
    """
    g = _FIELD_STEP if min(h, w) >= 16 * _FIELD_STEP else 1  # a frame a few cells wide: every pixel, exactly
    c = np.zeros((deg + 1, deg + 1), np.float64)
    for (i, j), v in zip(pairs, coef, strict=True):
        c[j, i] = v

    def powers(n: int) -> np.ndarray:  # t^0 .. t^deg at the cells' centres, one cell beyond each edge included
        px = np.arange(-1, -(-n // g) + 1) * g + (g - 1) / 2.0
        t = px * (2.0 / max(n - 1, 1)) - 1.0  # -1 at pixel 0, 1 at pixel n - 1
        return t[:, None] ** np.arange(deg + 1)[None, :]

    grid = (powers(h) @ c @ powers(w).T).astype(np.float32)
    # INTER_LINEAR puts cell (i, j)'s value at pixel ((j + 0.5) g - 0.5, (i + 0.5) g - 0.5) of its output, so with
    # the outer cells cut off every pixel lies between four centres (none is clamped to an edge's value).
    full = cv2.resize(grid, (grid.shape[1] * g, grid.shape[0] * g), interpolation=cv2.INTER_LINEAR)
    return full[g : g + h, g : g + w]


_FIELD_STEP = 8
"""`_poly_field`'s cells, px."""


@functools.lru_cache(maxsize=8)
def _axis_powers(n: int, deg: int) -> np.ndarray:
    """(n, deg + 1): t^0 .. t^deg of every pixel index 0..n-1 mapped onto [-1, 1], as `_poly_field` maps them."""
    t = np.arange(n) * (2.0 / max(n - 1, 1)) - 1.0
    table = t[:, None] ** np.arange(deg + 1)[None, :]
    table.flags.writeable = False
    return table


def _poly_at(
    pairs: list[tuple[int, int]], coef: np.ndarray, xs: np.ndarray, ys: np.ndarray, w: int, h: int, deg: int
) -> np.ndarray:
    """sum(coef * x^i y^j) at the pixels (`xs`, `ys`) of a w x h frame, in float64.

    Why separable: summed as y^j times (the column's polynomial in x for that j), the column part is computed
    once per column, not once per pixel; a camera board's thousands of differing pixels took 0.6 ms as ten
    products of powers, this a fraction of it (within 1e-14 of that sum)."""
    c = np.zeros((deg + 1, deg + 1), np.float64)
    for (i, j), v in zip(pairs, coef, strict=True):
        c[j, i] = v
    per_column = _axis_powers(w, deg) @ c.T  # (w, deg + 1): for each column x and power j, sum_i c[j, i] x^i
    return np.einsum("nj,nj->n", _axis_powers(h, deg)[ys], per_column[xs])


def _hysteresis(board: np.ndarray, golden: np.ndarray, unsure: np.ndarray) -> np.ndarray:
    """`board` (a mask) where it differs from `golden` in a region that holds at least one sure pixel, else `golden`.

    Why hysteresis: a board pixel near the midpoint of its two levels (`unsure`) is as likely tarnish, noise or
    the blurred last fraction of an edge as a defect; alone, such pixels made pin-holes and spurs on known-good
    captures. Joined to pixels that are clearly the other material they are a defect's rim, and kept, so a
    defect keeps its full extent (dropping every unsure pixel shrank defects and cost box overlap).
    """
    diff = board != golden
    if not diff.any():
        return board
    n, labels = _islands(diff.view(np.uint8))
    sure = np.zeros(n, bool)
    sure[labels[diff & ~unsure]] = True
    # Only the differing pixels (a few percent) can take the board's value: look up their labels alone.
    idx = np.flatnonzero(diff)
    idx = idx[sure[labels.ravel()[idx]]]
    out = golden.copy()
    out.ravel()[idx] = board.ravel()[idx]
    return out


@functools.lru_cache(maxsize=4)
def _linear_lut(gamma: float) -> np.ndarray:
    """8-bit table undoing a camera's output gamma: 255 * (v / 255) ** (1 / gamma)."""
    lut = np.rint(255.0 * (np.arange(256) / 255.0) ** (1.0 / gamma))
    out = np.clip(lut, 0, 255).astype(np.uint8)
    out.flags.writeable = False
    return out


def _gray8_in_domain(image: np.ndarray, spec, what: str) -> np.ndarray:
    return to_8bit(to_gray(image, what, spec.colour))  # a 12-bit sensor in a 16-bit container keeps its precision


def prepare(
    image: np.ndarray,
    spec,
    what: str = "image",
    reference: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The network's input for one frame: uint8 gray, binarised when `spec` asks for it and it is not yet.

    `spec` None (a model that declares no input domain) only converts colour and 16-bit frames.
    `reference`: the golden image the frame is registered to, as given and as prepared; a camera frame is
    then binarised with the golden image's materials (`binarise_like`), otherwise on its own (`binarise`).
    """
    if spec is None:
        return to_gray8(image, what)
    g = _gray8_in_domain(image, spec, what)
    camera_golden = None
    if reference is not None:
        ref_raw, ref_mask = reference
        ref_gray = _gray8_in_domain(ref_raw, spec, "reference image")
        prepared = ref_mask is not ref_gray and not np.array_equal(ref_gray, ref_mask)  # `is`: a binary one, as given
        if ref_gray.shape == g.shape and ref_mask.shape == g.shape and prepared:
            camera_golden = ref_gray, ref_mask  # the golden image was a camera's, and was prepared
    # A board compared with a camera's golden image is a camera frame too, however binary it looks: under hard
    # contrast (copper clipped white, laminate crushed black) a capture passed the binary test while its golden
    # image did not, went to the network in the camera's polarity against the golden mask in DeepPCB's, and
    # defective boards PASSED. The decision is the pair's, not each image's.
    if camera_golden is None and is_binary(g, spec.binary_margin, spec.binary_fraction):
        return g
    unseen = None
    if spec.camera_gamma != 1.0:  # the camera's gamma undone: the preparation's ratios are then the scene's
        lut = _linear_lut(spec.camera_gamma)
        if camera_golden is not None:
            # What the camera did not see is read before the table: it maps several dark values to one, and pixels
            # that differed would then count as the golden image's own.
            unseen = _unseen(g, camera_golden[0])
            camera_golden = cv2.LUT(camera_golden[0], lut), camera_golden[1]
        g = cv2.LUT(g, lut)
    if spec.kind != "binary_copper":  # the sidecar parser admits only known kinds; keep the station safe anyway
        raise ModelError(f"input_domain.kind {spec.kind!r} is not supported by this runtime")
    try:
        if camera_golden is not None:
            return binarise_like(g, spec, *camera_golden, unseen=unseen)
        return binarise(g, spec)
    except (ExposureError, LowContrastError) as exc:
        raise type(exc)(f"{what}: {exc}") from None


__all__ = [
    "ExposureError",
    "ImageDomainError",
    "LowContrastError",
    "binarise",
    "binarise_like",
    "is_binary",
    "prepare",
    "remove_specks",
    "to_8bit",
    "to_gray",
    "to_gray8",
]
