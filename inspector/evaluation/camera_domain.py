"""Render a binarised DeepPCB board as a grayscale or colour camera would see the bare board.

Why: DeepPCB's images were binarised and aligned before anyone saw them; a line camera gives
neither. The validation groups rendered through this (two materials with texture, uneven light,
optical blur, sensor noise, JPEG, a small residual misregistration, the golden board captured
separately) measure what the station does on camera images, without a camera.

Two seeds keep physical and photographic variation apart, as on a line: `board_seed` draws the
board's own surface (laminate weave, copper grain and tarnish), `seed` draws one capture of it
(lighting, blur, noise, JPEG quality). A known-good board against "a second capture of itself" is
the same `board_seed` with another `seed` and a small shift/rotation. Everything is deterministic
per seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

Mode = Literal["gray", "colour"]
Profile = Literal["line", "harsh"]
"""'line': a camera set up as docs/model.md asks (copper/laminate 1.8-3.5:1, blur sigma 0.7-1.3 px, read noise
2-4, JPEG 80-92). 'harsh': the same board and the same random draws (the same light and misregistration), taken by
a worse camera at the edge of what the preparation assumes: contrast 1.56-2.8:1, blur sigma 1.0-2.0 px, read noise
4-8, JPEG 60-80. A choice made on 'line' renderings is checked on 'harsh' ones, so it does not rest on the
renderer's own friendliness. (Steeper light than 'line' draws, which reaches about 60 % fall-off in a corner, is
outside the set-up the preparation assumes: a corner of copper pour at 16 % of the centre's light came out as
laminate speckle in the golden mask.)"""
Renderer = Literal["textures", "optics"]
"""Which model of a camera draws the captures. 'textures': this module's `render`, whose renderings of the training
boards the shipped model was also fine-tuned on (`inspector.training.camera_cache`), so figures on it are friendlier
than a real camera's. 'optics': `inspector.evaluation.camera_optics.render_optics`, written apart from it with other
models of the surface, light, lens and sensor (weave crosshatch, etched-edge rims, ring light, pillbox PSF, Bayer
mosaic), that no training ever saw: a line camera set up as docs/model.md asks, and nothing else."""
Copper = Literal["bright", "dark"]
"""How the camera shows bare copper against the laminate. 'bright': a diffuse ring or coaxial light on bare copper
(the metal reflects into the lens). 'dark': dark-field light, or a board seen as DeepPCB's binarised images show it
(copper dark): the same draws with the two materials' levels exchanged, each keeping its own texture. A station
whose camera shows copper dark must say so (`[detector] camera_copper = "dark"`): prepared with the model's
'bright', every defect came back as its opposite class (an open as a short, a pin-hole as copper)."""

#: Material colours (BGR) of a bare FR-4 board under white light: tinted laminate, bare copper.
_LAMINATE_BGR = np.array([70.0, 112.0, 104.0], np.float32)
_COPPER_BGR = np.array([92.0, 150.0, 205.0], np.float32)


@dataclass(frozen=True)
class Capture:
    """What one rendering did (for tests and for mapping ground truth into the frame)."""

    matrix: np.ndarray  # 2x3 affine: DeepPCB (board) pixels -> frame pixels
    laminate: float
    copper: float
    blur_sigma: float
    noise_sigma: float
    jpeg_quality: int


def misregistration(rng: np.random.Generator, shape: tuple[int, int], max_shift: float, max_rot_deg: float):
    """A 2x3 affine with a shift of at most `max_shift` px per axis and a rotation of at most `max_rot_deg`."""
    h, w = shape
    angle = float(rng.uniform(-max_rot_deg, max_rot_deg)) if max_rot_deg > 0 else 0.0
    dx, dy = (float(v) for v in rng.uniform(-max_shift, max_shift, 2)) if max_shift > 0 else (0.0, 0.0)
    m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), angle, 1.0)
    m[:, 2] += (dx, dy)
    return m.astype(np.float64)


def _smooth_noise(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise with spatial correlation `sigma` px (texture, tarnish)."""
    n = rng.standard_normal(shape).astype(np.float32)
    if sigma > 0:
        n = cv2.GaussianBlur(n, (0, 0), sigma)
        n /= max(float(n.std()), 1e-6)
    return n


def etched(copper: np.ndarray, etch_px: float) -> np.ndarray:
    """Copper coverage (float 0..1) of the boolean mask `copper` with every edge moved `etch_px` outward.

    Why a distance and not a dilation: etching varies by fractions of a trace's edge from board to board (tens of
    micrometres, a pixel or less here), which a whole-pixel dilation cannot show; the edge is placed at its signed
    distance and the pixel it crosses is covered in proportion."""
    cu = copper.astype(np.uint8)
    inside = cv2.distanceTransform(cu, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    outside = cv2.distanceTransform(1 - cu, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    signed = np.where(copper, inside - 0.5, 0.5 - outside)  # distance from the edge, positive on copper
    return np.clip(signed + np.float32(etch_px + 0.5), 0.0, 1.0).astype(np.float32)


def _motion_blur(plane: np.ndarray, length: float) -> np.ndarray:
    """`plane` averaged over a travel of `length` px along its rows (a fractional length weights its end taps)."""
    n = int(np.ceil(length)) + 1
    kern = np.ones(n, np.float32)
    kern[0] = kern[-1] = np.float32((length - (n - 2)) / 2.0)
    kern /= kern.sum()
    return cv2.filter2D(plane, -1, kern[None, :], borderType=cv2.BORDER_REFLECT)


def render(
    binary: np.ndarray,
    seed: int,
    *,
    board_seed: int | None = None,
    mode: Mode = "gray",
    max_shift: float = 0.0,
    max_rot_deg: float = 0.0,
    profile: Profile = "line",
    copper_look: Copper = "bright",
    gamma: float = 1.0,
    scale: float = 1.0,
    motion_px: float = 0.0,
    defocus_px: float = 0.0,
    resolution: float = 1.0,
    etch_px: float = 0.0,
) -> tuple[np.ndarray, Capture]:
    """One camera capture of the board whose binarised image (copper dark, as in DeepPCB) is `binary`.

    Returns the frame (uint8 (H, W) for 'gray', (H, W, 3) BGR for 'colour') and what was drawn. `gamma`: the
    camera's output gamma (0.45 an sRGB-like curve), applied to the sensor's values before the JPEG encoder, as a
    camera's image processor does; 1 (linear) is what docs/camera.md asks of a line camera. `scale`: the board's
    magnification against the golden capture's (a thicker or warped board nearer the lens), about the frame's
    centre, on top of the misregistration. `motion_px`: the board's travel during the exposure, along the frame's
    rows (a conveyor that does not stop the board), a box blur of that length before the sensor's noise.
    `defocus_px`: a lens out of focus (a loosened focus ring, a thicker board): a Gaussian of this sigma on top of the
    capture's own optical blur (added in quadrature). None of the three draws anything: the same seed gives the same
    board, light and noise with or without them. `resolution`: the camera's pixels per mm on the board against
    DeepPCB's (about 48 px/mm): 0.75 images the same board on 480 x 480 px, 1.5 on 960 x 960; blur, noise and texture
    stay in the camera's pixels. It changes every draw made per pixel (a frame of another size), none per capture.
    `etch_px`: this physical board's copper edges lie this far further out (positive: under-etched, wider traces,
    narrower gaps; negative: over-etched) than the golden board's, in DeepPCB's pixels (1 px: about 21 um); the
    edge moves by fractions of a pixel too (anti-aliased). Draws nothing.
    """
    if mode not in ("gray", "colour"):
        raise ValueError(f"camera mode must be 'gray' or 'colour', got {mode!r}")
    if profile not in ("line", "harsh"):
        raise ValueError(f"camera profile must be 'line' or 'harsh', got {profile!r}")
    if copper_look not in ("bright", "dark"):
        raise ValueError(f"camera copper must be 'bright' or 'dark', got {copper_look!r}")
    if not 0.25 <= gamma <= 4.0:
        raise ValueError(f"camera gamma must be within 0.25..4, got {gamma!r}")
    if not 0.0 <= motion_px <= 32.0:
        raise ValueError(f"camera motion must be within 0..32 px, got {motion_px!r}")
    if not 0.0 <= defocus_px <= 8.0:
        raise ValueError(f"camera defocus must be within 0..8 px, got {defocus_px!r}")
    harsh = profile == "harsh"
    board = np.random.default_rng([int(board_seed if board_seed is not None else seed), 7])
    cap = np.random.default_rng([int(seed), 11])
    copper, m, board_to_frame = board_in_frame(binary, cap, max_shift, max_rot_deg, scale, resolution, etch_px)
    h, w = copper.shape

    # The board's own surface, fixed per physical board: it moves with the board.
    weave = _smooth_noise(board, (h, w), 3.0)
    grain = _smooth_noise(board, (h, w), 1.0)
    tarnish = _smooth_noise(board, (h // 8 + 1, w // 8 + 1), 2.0)
    tarnish = cv2.resize(tarnish, (w, h), interpolation=cv2.INTER_LINEAR)
    surface = np.stack([weave, grain, tarnish])
    for i in range(3):
        surface[i] = cv2.warpAffine(surface[i], m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    lam_tex = 7.0 * surface[0]
    cu_tex = 5.0 * surface[1] + 9.0 * surface[2]

    # This capture's exposure and light: a gradient across the field and vignetting.
    gain = float(cap.uniform(0.8, 1.1))
    laminate = float(cap.uniform(55, 85))
    copper_level = float(cap.uniform(150, 190))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    u, v = (xx - w / 2) / (w / 2), (yy - h / 2) / (h / 2)
    theta = float(cap.uniform(0, 2 * np.pi))
    slope = float(cap.uniform(0.1, 0.25))
    vignette = float(cap.uniform(0.1, 0.25))
    if harsh:  # the same draws, mapped onto a worse set-up (`Profile`)
        laminate = 65.0 + (laminate - 55.0) * (25.0 / 30.0)
        copper_level -= 10.0
    cx, cy = (float(c) for c in cap.uniform(-0.3, 0.3, 2))
    light = (
        gain
        * (1.0 + slope * (np.cos(theta) * u + np.sin(theta) * v))
        * (1.0 - vignette * ((u - cx) ** 2 + (v - cy) ** 2) / 2)
    )

    blur = float(cap.uniform(0.7, 1.3))
    read_noise = float(cap.uniform(2.0, 4.0))
    quality = int(cap.integers(80, 93))
    if harsh:
        blur = 1.0 + (blur - 0.7) * (1.0 / 0.6)
        read_noise *= 2.0
        quality = 60 + round((quality - 80) * (20 / 12))
    if defocus_px > 0:
        blur = float(np.hypot(blur, defocus_px))
    dark, bright = laminate, copper_level  # the two levels drawn; which material takes which is the light's
    if copper_look == "dark":
        laminate, copper_level = bright, dark
    if mode == "gray":
        base = copper * (copper_level + cu_tex) + (1.0 - copper) * (laminate + lam_tex)
        planes = [base]
    elif copper_look == "dark":  # the materials' tints, copper at the dark draw and laminate at the bright one
        cu_bgr = _COPPER_BGR * np.float32(dark / 205.0)
        lam_bgr = _LAMINATE_BGR * np.float32(bright / 112.0)
        planes = [copper * (cu_bgr[c] + cu_tex) + (1.0 - copper) * (lam_bgr[c] + lam_tex) for c in range(3)]
    else:
        scale = np.array([laminate / 85.0, copper_level / 170.0], np.float32)
        planes = [
            copper * (_COPPER_BGR[c] * scale[1] + cu_tex) + (1.0 - copper) * (_LAMINATE_BGR[c] * scale[0] + lam_tex)
            for c in range(3)
        ]
    out = []
    for p in planes:
        p = cv2.GaussianBlur(p * light, (0, 0), blur)
        if motion_px > 0:
            p = _motion_blur(p, motion_px)
        shot = np.sqrt(np.maximum(p, 0.0) * 0.05 + read_noise**2)
        p = p + shot * cap.standard_normal((h, w)).astype(np.float32)
        if gamma != 1.0:  # the draws above are the same with or without it
            p = np.float32(255.0) * (np.clip(p, 0.0, 255.0) * np.float32(1.0 / 255.0)) ** np.float32(gamma)
        out.append(np.clip(np.rint(p), 0, 255).astype(np.uint8))
    frame = out[0] if mode == "gray" else cv2.merge(out)
    ok, enc = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV always encodes a uint8 image
        raise RuntimeError("JPEG encoding failed")
    frame = cv2.imdecode(enc, cv2.IMREAD_GRAYSCALE if mode == "gray" else cv2.IMREAD_COLOR)
    return frame, Capture(board_to_frame, laminate, copper_level, blur, read_noise, quality)


def board_in_frame(
    binary: np.ndarray,
    cap: np.random.Generator,
    max_shift: float,
    max_rot_deg: float,
    scale: float,
    resolution: float,
    etch_px: float,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Where one capture puts the board: its copper coverage (float, anti-aliased) in the frame's pixels, the 2x3
    warp of the board's surface (frame pixels of the board at the camera's resolution) and the 2x3 matrix from
    DeepPCB's pixels to the frame's.

    Shared by every renderer so that ground truth maps alike; the misregistration is the first draw of the capture's
    stream `cap`, which the renderer goes on drawing from. Resolution: the board on more or fewer pixels
    (area-averaged: a pixel sees its part of the board); scale about the frame's centre, after the misregistration.
    """
    if not 0.8 <= scale <= 1.25:
        raise ValueError(f"camera scale must be within 0.8..1.25, got {scale!r}")
    if not -3.0 <= etch_px <= 3.0:
        raise ValueError(f"board etch must be within -3..3 px, got {etch_px!r}")
    if not 0.4 <= resolution <= 2.5:
        raise ValueError(f"camera resolution must be within 0.4..2.5 of DeepPCB's, got {resolution!r}")
    g = binary if binary.ndim == 2 else cv2.cvtColor(binary, cv2.COLOR_BGR2GRAY)
    h, w = g.shape
    copper = (g < 128).astype(np.float32) if etch_px == 0 else etched(g < 128, etch_px)
    to_camera = np.eye(3)
    if resolution != 1.0:
        size = (max(1, round(w * resolution)), max(1, round(h * resolution)))
        fx, fy = size[0] / w, size[1] / h
        copper = cv2.resize(copper, size, interpolation=cv2.INTER_AREA if resolution < 1 else cv2.INTER_LINEAR)
        to_camera = np.array([[fx, 0.0, 0.5 * fx - 0.5], [0.0, fy, 0.5 * fy - 0.5], [0.0, 0.0, 1.0]])
        w, h = size
    m = misregistration(cap, (h, w), max_shift, max_rot_deg)
    if scale != 1.0:
        m = cv2.getRotationMatrix2D(((w - 1) / 2.0, (h - 1) / 2.0), 0.0, scale) @ np.vstack([m, [0.0, 0.0, 1.0]])
    copper = cv2.warpAffine(copper, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    board_to_frame = (np.vstack([m, [0.0, 0.0, 1.0]]) @ to_camera)[:2] if resolution != 1.0 else m
    return copper, m, board_to_frame


def map_boxes(boxes: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Axis-aligned boxes (x1, y1, x2, y2) carried through the affine `matrix` (bounding box of the corners)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    if not len(boxes):
        return boxes
    x1, y1, x2, y2 = boxes.T
    corners = np.stack([np.stack([x1, y1], 1), np.stack([x2, y1], 1), np.stack([x1, y2], 1), np.stack([x2, y2], 1)], 1)
    pts = corners @ matrix[:, :2].T.astype(np.float32) + matrix[:, 2].astype(np.float32)
    return np.concatenate([pts.min(axis=1), pts.max(axis=1)], axis=1).astype(np.float32)


def capture_pair(
    test: np.ndarray,
    template: np.ndarray,
    seed: int,
    *,
    mode: Mode = "gray",
    max_shift: float = 0.0,
    max_rot_deg: float = 0.0,
    profile: Profile = "line",
    other: bool = False,
    teach: int = 0,
    copper_look: Copper = "bright",
    gamma: float = 1.0,
    scale: float = 1.0,
    motion_px: float = 0.0,
    defocus_px: float = 0.0,
    resolution: float = 1.0,
    etch_px: float = 0.0,
    renderer: Renderer = "textures",
    width_px: float = 0.0,
) -> dict[str, tuple[np.ndarray, Capture] | list[tuple[np.ndarray, Capture]]]:
    """Camera frames for one DeepPCB pair, as a line would take them.

    - 'golden': the template board captured once, square to the camera (the recipe's reference);
    - 'board': the defective board (another physical board: its own surface), misregistered;
    - 'good': the golden board captured a second time, misregistered (the known-good check the issue names);
    - 'other' (when asked): another physical board of the same design without defects, misregistered: what a line's good boards
      are. Its laminate weave and copper grain are its own, so nothing but the copper matches the golden capture.
    - 'teach' (when `teach` > 0): a list of that many more good boards of the design, each its own physical board,
      misregistered: with 'golden', the boards a golden reference is taught from (`inspector.teach_reference`).

    `renderer` names the camera model that draws every capture (`Renderer`); the seeds are the same for both.
    `width_px`: every capture of every board, the golden one too, shows its copper edges this far further out than
    DeepPCB's binarisation put them (negative: further in), on top of `etch_px`. Why: how wide copper looks is the
    camera's as much as the board's (a bare-copper camera under coaxial light sees the trace's top, narrower than its
    foot by the etched sidewall: 0.6-0.7 px at 48 px/mm on `camera_optics`' renderings), and the network learnt
    DeepPCB's widths.
    """
    if renderer == "textures":
        draw = render
    elif renderer == "optics":
        from .camera_optics import render_optics as draw
    else:
        raise ValueError(f"camera renderer must be 'textures' or 'optics', got {renderer!r}")
    # One camera takes them all, on a line that moves every board the same (`motion_px`); the boards after the golden
    # one may sit nearer the lens (`scale`) or be seen out of focus (`defocus_px`).
    camera = {
        "mode": mode,
        "profile": profile,
        "copper_look": copper_look,
        "gamma": gamma,
        "motion_px": motion_px,
        "resolution": resolution,
    }
    off = {"max_shift": max_shift, "max_rot_deg": max_rot_deg, "scale": scale, "defocus_px": defocus_px, **camera}
    # Other physical boards (the defective one, another good one, the teaching boards) may be etched otherwise than
    # the golden board (`etch_px`); a second capture of the golden board is that same board.
    golden_board = 2 * int(seed)
    other_etch = width_px + etch_px
    frames = {
        "golden": draw(template, 3 * int(seed), board_seed=golden_board, etch_px=width_px, **camera),
        "board": draw(test, 3 * int(seed) + 1, board_seed=golden_board + 1, etch_px=other_etch, **off),
        "good": draw(template, 3 * int(seed) + 2, board_seed=golden_board, etch_px=width_px, **off),
    }
    if other:
        frames["other"] = draw(
            template, _OTHER + 3 * int(seed), board_seed=_OTHER + golden_board, etch_px=other_etch, **off
        )
    if teach > 0:
        frames["teach"] = []
        for k in range(teach):
            s = _TEACH + 7919 * k + int(seed)
            frames["teach"].append(draw(template, s, board_seed=s + 1, etch_px=other_etch, **off))
    return frames


_OTHER = 1 << 40
"""Offset of the seeds of the 'other' board and its capture: streams no golden board or capture of any pair uses."""
_TEACH = 1 << 41
"""Offset of the seeds of the teaching boards (board and capture): streams no other rendering uses."""


__all__ = [
    "Capture",
    "Profile",
    "Renderer",
    "board_in_frame",
    "capture_pair",
    "etched",
    "map_boxes",
    "misregistration",
    "render",
]
