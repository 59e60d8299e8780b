"""A second, independent camera renderer for DeepPCB's binarised boards, built from the physics of a line camera.

Why: the detector was fine-tuned on `camera_domain` renderings, so measuring on them flatters it. This renderer
shares only the geometry (`camera_domain.board_in_frame`: misregistration, etching, resolution, scale) so ground truth
maps the same way; its surface, light, optics and sensor are modelled otherwise and no training has seen them:

- the board (`board_seed`, moves with the board): glass-fibre weave of FR-4, resin-rich patches, brushed copper grain,
  tarnish, rare specular glints, and dark etched sidewalls along every copper edge;
- the camera (fixed: one camera takes every capture): ring-light geometry, cos^4 fall-off, lateral chromatic
  aberration, PRNU and hot pixels;
- the capture (`seed`): exposure jitter, defocus (pillbox) and lens blur (Gaussian), shot, read and row noise.

Colour frames go through a real RGGB mosaic and OpenCV's demosaicing, as a host receiving BayerRG8 would do.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

import cv2
import numpy as np

from inspector.evaluation.camera_domain import Capture, board_in_frame

#: Linear reflectances (BGR, white-balanced, fraction of white) under the ring light: bare copper is orange; bare
#: FR-4 is pale yellow-green and, in red, well below copper (red 2.7:1, mono 2.1:1 with the sensor's weights below).
_COPPER = np.array([0.26, 0.56, 0.85], np.float32)
_LAMINATE = np.array([0.155, 0.325, 0.317], np.float32)
_MONO_QE = np.array([0.20, 0.44, 0.36], np.float32)  # a monochrome sensor's response to the LEDs' B, G, R parts
_TARNISH_TINT = np.array([1.3, 1.15, 1.0], np.float32)  # oxide browns copper: blue and green lose more than red
_FULL_WELL_E = 10_000.0  # electrons at 1023 DN (10 bit): sets the shot noise
_CAMERA_SEED = 0x0C0FFEE  # the one camera of the station
_DEMOSAIC = cv2.COLOR_BayerRGGB2BGR_EA  # R at (0, 0): OpenCV names this layout "BayerBG" (BayerRG swaps R and B)
_EXPOSURE = 0.76  # copper's nominal level in the plane the station reads, as a fraction of full scale


def unmodelled_options(
    profile: str = "line",
    copper_look: str = "bright",
    gamma: float = 1.0,
    motion_px: float = 0.0,
    defocus_px: float = 0.0,
) -> list[str]:
    """The options (as `evaluate` names them) this renderer does not model: refused rather than ignored, by
    `render_optics` and, before any rendering, by `evaluate`; a figure measured "on the optics renderer" must be
    what it says."""
    return [
        option
        for option, on in (
            (f"--camera-profile {profile}", profile != "line"),
            (f"--camera-copper {copper_look}", copper_look != "bright"),
            (f"--camera-gamma {gamma:g}", gamma != 1.0),
            (f"--camera-motion {motion_px:g}", motion_px != 0.0),
            (f"--camera-defocus {defocus_px:g}", defocus_px != 0.0),
        )
        if on
    ]


def _value_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """Unit-variance lattice noise with features about `cell` px wide: random values on a coarse grid, bicubic in
    between. Large-scale variations of a board (tarnish, resin, the weave's strength) have no fine structure."""
    h, w = shape
    gh, gw = int(h / cell) + 4, int(w / cell) + 4
    up = cv2.resize(
        rng.standard_normal((gh, gw)).astype(np.float32), None, fx=cell, fy=cell, interpolation=cv2.INTER_CUBIC
    )
    n = up[int(cell) : int(cell) + h, int(cell) : int(cell) + w]
    return (n - n.mean()) / max(float(n.std()), 1e-6)


def _weave(rng: np.random.Generator, shape: tuple[int, int], resolution: float) -> np.ndarray:
    """FR-4's plain glass weave seen through the resin, in -1..1: two orthogonal families of rounded bundles, each on
    top at every other crossing, bundles slightly wavy. The period is the cloth's (14-22 px at 48 px/mm)."""
    h, w = shape
    period = float(rng.uniform(14.0, 22.0)) * resolution
    a1 = np.deg2rad(float(rng.uniform(-4.0, 4.0)) + float(rng.choice([0.0, 90.0])))
    a2 = a1 + np.deg2rad(90.0 + float(rng.uniform(-1.5, 1.5)))
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    phase = []
    for a in (a1, a2):
        across = xx * np.float32(np.cos(a)) + yy * np.float32(np.sin(a))
        wobble = np.float32(0.6) * _value_noise(rng, shape, 6.0 * period)  # bundles are not ruler-straight
        phase.append(np.float32(2 * np.pi / period) * across + wobble + np.float32(rng.uniform(0, 2 * np.pi)))
    ridge1, ridge2 = (0.5 + 0.5 * np.cos(p) for p in phase)
    # plain weave: the on-top family alternates from crossing to crossing (changes sign across every bundle gap)
    on_top = 0.5 + 0.5 * np.tanh(4.0 * np.cos(phase[0] / 2) * np.cos(phase[1] / 2))
    return 2.0 * (on_top * ridge1 + (1.0 - on_top) * 0.85 * ridge2) - 1.0


def _grain(rng: np.random.Generator, shape: tuple[int, int], resolution: float) -> np.ndarray:
    """Rolled/brushed copper: unit-variance streaks along one direction per board (long along, sub-pixel across)."""
    along, across = float(rng.uniform(8.0, 14.0)) * resolution, 0.6 * resolution
    angle = float(rng.uniform(0.0, np.pi))
    r = int(np.ceil(2.5 * along))
    ky, kx = np.mgrid[-r : r + 1, -r : r + 1].astype(np.float32)
    u, v = kx * np.cos(angle) + ky * np.sin(angle), -kx * np.sin(angle) + ky * np.cos(angle)
    kern = np.exp(-0.5 * ((u / along) ** 2 + (v / across) ** 2)).astype(np.float32)
    g = cv2.filter2D(
        rng.standard_normal(shape).astype(np.float32), -1, kern / kern.sum(), borderType=cv2.BORDER_REFLECT
    )
    return (g - g.mean()) / max(float(g.std()), 1e-6)


def _glints(rng: np.random.Generator, shape: tuple[int, int]) -> np.ndarray:
    """A few tiny specular spots (peak 1): a scratch or a burr facing the ring light straight back into the lens."""
    h, w = shape
    out = np.zeros(shape, np.float32)
    for _ in range(int(rng.integers(10, 25))):  # only those landing on copper show
        x, y, s = float(rng.uniform(3, w - 4)), float(rng.uniform(3, h - 4)), float(rng.uniform(0.4, 0.7))
        x0, y0 = int(x) - 3, int(y) - 3
        gy, gx = np.mgrid[y0 : y0 + 8, x0 : x0 + 8].astype(np.float32)
        spot = np.exp(-0.5 * ((gx - x) ** 2 + (gy - y) ** 2) / s**2)
        out[y0 : y0 + 8, x0 : x0 + 8] = np.maximum(out[y0 : y0 + 8, x0 : x0 + 8], spot * rng.uniform(0.6, 1.0))
    return out


def _edge_offset(cover: np.ndarray, nx: np.ndarray, ny: np.ndarray) -> np.ndarray:
    """Signed distance (positive on copper) of a pixel's centre from a straight edge of normal (nx, ny) that covers
    `cover` of it: the exact area of a unit square cut by a line (Gustavson and Strand's anti-aliased EDT)."""
    gx, gy = np.maximum(np.abs(nx), np.abs(ny)), np.minimum(np.abs(nx), np.abs(ny))
    gx = np.maximum(gx, 1e-6)
    a1 = 0.5 * gy / gx
    lo = 0.5 * (gx + gy) - np.sqrt(2 * gx * gy * cover)
    hi = -0.5 * (gx + gy) + np.sqrt(2 * gx * gy * (1 - cover))
    return -np.where(cover < a1, lo, np.where(cover < 1 - a1, (0.5 - cover) * gx, hi))


def _edge_distance(cover: np.ndarray) -> np.ndarray:
    """Signed distance (px, positive on copper) of every pixel from the copper edge, to a fraction of a pixel.

    Why from the coverage and not the hard mask: the warped, anti-aliased coverage says where inside its pixel the
    edge lies, so the rim follows sub-pixel shifts and etching instead of snapping to whole pixels. A pixel next to
    the edge places it from its coverage and the coverage's gradient; any other pixel takes its distance to the edge's
    tangent at the nearest such pixel (a distance transform with labels finds it)."""
    eps = 1e-3
    h, w = cover.shape
    gx = cv2.Sobel(cover, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(cover, cv2.CV_32F, 0, 1, ksize=3)
    norm = np.hypot(gx, gy)
    flat = norm < 1e-6
    nx, ny = -gx / np.where(flat, 1, norm), -gy / np.where(flat, 1, norm)  # from copper towards laminate
    out = _edge_offset(cover, np.where(flat, 1, nx), ny)
    yy, xx = np.mgrid[0:h, 0:w]
    for inside in (False, True):
        target = cover < 1 - eps if inside else cover > eps  # the pixels the distance is taken to
        sel = ~target  # the pixels it is taken from: wholly copper (inside) or wholly laminate
        if not target.any():
            out[sel] = 1e3 if inside else -1e3
            continue
        dist, labels = cv2.distanceTransformWithLabels(
            sel.astype(np.uint8), cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL
        )
        ty, tx = np.nonzero(target)  # label k is the k-th target pixel in raster order
        near = labels[sel] - 1
        py, px = ty[near], tx[near]
        dx, dy = xx[sel] - px, yy[sel] - py
        along = np.where(flat[py, px], np.hypot(dx, dy) * (1 if inside else -1), nx[py, px] * dx + ny[py, px] * dy)
        # The tangent is only good near its pixel: beyond a corner (a strip of one material ending in the other)
        # it passes close to pixels deep inside the other material, which then took a rim. No pixel is nearer the
        # edge than the centre of the nearest edge pixel, less half a pixel's diagonal.
        floor = np.maximum(dist[sel] - np.float32(0.71), 0.0)
        d = out[py, px] - along
        out[sel] = np.maximum(d, floor) if inside else np.minimum(d, -floor)
    return out


@dataclass(frozen=True)
class _Camera:
    light: np.ndarray  # the ring light through the lens, relative to the optical centre
    prnu: np.ndarray  # per-photosite gain
    hot: np.ndarray  # dark signal of the hot photosites, 10-bit DN
    centre: tuple[float, float]  # the optical axis in the frame (x, y)
    ca: float  # red is imaged at magnification 1 + ca, blue at 1 - ca


@lru_cache(maxsize=8)
def _camera(h: int, w: int) -> _Camera:
    """The station's one camera and ring light, drawn from a fixed seed (its pixel maps per frame size): every
    capture, golden or not, shares its fixed pattern, as on a line."""
    rng = np.random.default_rng([_CAMERA_SEED, 1])
    ring_c = rng.uniform(-0.05, 0.05, 2)  # the ring light sits a little off the lens axis
    lens_c = rng.uniform(-0.02, 0.02, 2)
    annulus = (float(rng.uniform(0.03, 0.06)), float(rng.uniform(0.45, 0.65)), float(rng.uniform(0.12, 0.18)))
    corner = float(rng.uniform(0.74, 0.82))  # cos^4 at the half diagonal
    ca = float(rng.uniform(0.0005, 0.001)) * float(rng.choice([-1.0, 1.0]))  # red magnified by +ca, blue by -ca
    half_diag = 0.5 * np.hypot(h, w)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    cx, cy = (w - 1) / 2 + lens_c[0] * w, (h - 1) / 2 + lens_c[1] * h
    rho = np.hypot(xx - (w - 1) / 2 - ring_c[0] * w, yy - (h - 1) / 2 - ring_c[1] * h) / half_diag
    amp, r0, width = annulus
    ring = 1.0 + amp * np.exp(-0.5 * ((rho - r0) / width) ** 2)
    focal = half_diag / np.tan(np.arccos(corner**0.25))
    cos4 = (focal**2 / (focal**2 + (xx - cx) ** 2 + (yy - cy) ** 2)) ** 2
    light = (ring * cos4).astype(np.float32)
    light /= light[int(round(cy)), int(round(cx))]
    pix = np.random.default_rng([_CAMERA_SEED, 2, h, w])
    prnu = (1.0 + 0.005 * pix.standard_normal((h, w))).clip(0.985, 1.015).astype(np.float32)
    hot = np.zeros((h, w), np.float32)
    n_hot = int(pix.integers(5, 12))
    hot[pix.integers(0, h, n_hot), pix.integers(0, w, n_hot)] = pix.uniform(60.0, 400.0, n_hot)  # DN at 10 bit
    for a in (light, prnu, hot):
        a.flags.writeable = False  # shared by every capture
    return _Camera(light, prnu, hot, (float(cx), float(cy)), ca)


def _psf(radius: float, sigma: float) -> np.ndarray:
    """Defocus (a pillbox of `radius`, its edge pixels covered in proportion) convolved with the lens's Gaussian."""
    r = int(np.ceil(radius + 3 * sigma))
    sub = 8
    g = (np.arange((2 * r + 1) * sub, dtype=np.float32) + 0.5) / sub - (r + 0.5)
    disc = (g[None, :] ** 2 + g[:, None] ** 2 <= radius**2).astype(np.float32)
    disc = disc.reshape(2 * r + 1, sub, 2 * r + 1, sub).mean(axis=(1, 3))
    gauss = cv2.getGaussianKernel(2 * r + 1, sigma).astype(np.float32)
    kern = cv2.sepFilter2D(disc, -1, gauss, gauss, borderType=cv2.BORDER_CONSTANT)
    return kern / kern.sum()


def render_optics(
    binary: np.ndarray,
    seed: int,
    *,
    board_seed: int | None = None,
    mode: Literal["gray", "colour"] = "gray",
    max_shift: float = 0.0,
    max_rot_deg: float = 0.0,
    scale: float = 1.0,
    resolution: float = 1.0,
    etch_px: float = 0.0,
    profile: str = "line",
    copper_look: str = "bright",
    gamma: float = 1.0,
    motion_px: float = 0.0,
    defocus_px: float = 0.0,
) -> tuple[np.ndarray, Capture]:
    """One capture of the board whose binarised image (copper dark, as in DeepPCB) is `binary`: the contract of
    `camera_domain.render` (same geometry and options), by another model. uint8 (H, W) for 'gray', (H, W, 3) BGR
    for 'colour'. `Capture.laminate`/`copper` are the nominal levels in the plane the station reads (gray, or red)."""
    if mode not in ("gray", "colour"):
        raise ValueError(f"camera mode must be 'gray' or 'colour', got {mode!r}")
    unmodelled = unmodelled_options(profile, copper_look, gamma, motion_px, defocus_px)
    if unmodelled:
        raise ValueError(f"the optics renderer draws a line camera only: {', '.join(unmodelled)} is not modelled")
    # Geometry: camera_domain's own (the same matrix for the same seed and options).
    cover, m, board_to_frame = board_in_frame(
        binary, np.random.default_rng([int(seed), 11]), max_shift, max_rot_deg, scale, resolution, etch_px
    )
    h, w = cover.shape

    # The physical board: its surface is drawn where the board rests and moves with it.
    board = np.random.default_rng([int(board_seed if board_seed is not None else seed), 31])
    cap = np.random.default_rng([int(seed), 29])  # streams camera_domain does not use
    k_cu, k_lam = (float(v) for v in board.uniform(0.975, 1.025, 2))  # this board's finish and laminate batch
    weave_amp = float(board.uniform(0.04, 0.08))
    resin = np.clip((_value_noise(board, (h, w), 90.0 * resolution) - 0.6) / 0.8, 0.0, 1.0)
    strength = 0.75 + 0.25 * np.clip(_value_noise(board, (h, w), 70.0 * resolution), -1, 1)  # 0.5..1 of its peak
    weave = _weave(board, (h, w), resolution) * strength
    speckle = cv2.blur(board.standard_normal((h, w)).astype(np.float32), (2, 2))  # single fibres, ~1 px
    laminate = 1.0 + weave_amp * weave * (1.0 - 0.5 * resin) + 0.02 * speckle - 0.02 * resin
    grain = float(board.uniform(0.025, 0.04)) * _grain(board, (h, w), resolution)
    tarnish = float(board.uniform(0.06, 0.12)) * np.clip((_value_noise(board, (h, w), 110 * resolution) - 0.3), 0, 1)
    copper = 1.0 + grain + float(board.uniform(0.6, 0.9)) * _glints(board, (h, w))
    surface = cv2.merge([laminate.astype(np.float32), copper.astype(np.float32), tarnish.astype(np.float32)])
    laminate, copper, tarnish = cv2.split(cv2.warpAffine(surface, m, (w, h), borderMode=cv2.BORDER_REFLECT))

    # Etched sidewalls scatter the coaxial/ring light away from the lens: a dark band straddling each copper edge.
    fwhm, centre = float(board.uniform(1.0, 1.5)) * resolution, float(board.uniform(-0.4, -0.1)) * resolution
    wall = np.float32(0.9) * np.exp(-0.5 * ((_edge_distance(cover) - centre) / (fwhm / 2.355)) ** 2)

    cam = _camera(h, w)
    expo = float(cap.uniform(0.97, 1.03))  # the strobe's and the shutter's capture-to-capture jitter
    radius, sigma = float(cap.uniform(0.6, 1.2)), float(cap.uniform(0.4, 0.6))
    read_dn = float(cap.uniform(1.5, 3.0))  # 8-bit DN; the sensor's temperature and gain differ between captures
    weights = _MONO_QE[None, :] if mode == "gray" else np.eye(3, dtype=np.float32)
    read_plane = 0 if mode == "gray" else 2
    gain = _EXPOSURE / float((weights @ _COPPER)[read_plane])
    planes = []
    for wc in weights:  # one plane per colour filter (one for the mono sensor), linear irradiance, 1 = full scale
        cu_c, lam_c, tint = float(wc @ _COPPER), float(wc @ _LAMINATE), float(wc @ (_COPPER * _TARNISH_TINT))
        refl = cover * (k_cu * (cu_c * copper - tint * tarnish)) + (1 - cover) * (k_lam * lam_c * laminate)
        refl = (1 - wall) * refl + wall * (0.45 * k_lam * lam_c)
        planes.append(refl * cam.light * np.float32(gain * expo))
    if mode == "colour":  # lateral chromatic aberration: red and blue imaged at slightly other magnifications
        for c, mag in ((2, 1 + cam.ca), (0, 1 - cam.ca)):
            a = cv2.getRotationMatrix2D(cam.centre, 0.0, mag)
            planes[c] = cv2.warpAffine(planes[c], a, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    psf = _psf(radius, sigma)
    irr = [cv2.filter2D(p, -1, psf, borderType=cv2.BORDER_REFLECT) for p in planes]
    if mode == "gray":
        signal = irr[0]
    else:  # the RGGB colour filter array: each photosite sees one colour
        signal = irr[1].copy()
        signal[0::2, 0::2] = irr[2][0::2, 0::2]
        signal[1::2, 1::2] = irr[0][1::2, 1::2]

    # The sensor, in 10-bit DN: PRNU, shot noise (Poisson: variance ~ electrons), read and row noise, hot pixels.
    dn = signal * np.float32(1023.0) * cam.prnu
    variance = np.maximum(dn, 0.0) * np.float32(1023.0 / _FULL_WELL_E) + np.float32((4 * read_dn) ** 2)
    noise = np.sqrt(variance) * cap.standard_normal((h, w), dtype=np.float32)
    rows = np.float32(4 * 0.5) * cap.standard_normal((h, 1), dtype=np.float32)
    raw10 = np.clip(np.rint(dn + noise + rows + cam.hot), 0, 1023).astype(np.uint16)
    raw8 = (raw10 >> 2).astype(np.uint8)  # Mono8 / BayerRG8: the camera streams the top 8 bits, uncompressed
    frame = raw8 if mode == "gray" else cv2.cvtColor(raw8, _DEMOSAIC)

    mid = float(np.median(cam.light)) * gain * expo * 255.0
    wr = weights[read_plane]
    return frame, Capture(
        board_to_frame,
        laminate=mid * k_lam * float(wr @ _LAMINATE),
        copper=mid * k_cu * float(wr @ _COPPER),
        blur_sigma=float(np.hypot(sigma, radius / 2.0)),  # the PSF's own sigma: a pillbox of radius r has r/2
        noise_sigma=read_dn,
        jpeg_quality=100,  # no JPEG: industrial cameras stream raw
    )


__all__ = ["render_optics"]
