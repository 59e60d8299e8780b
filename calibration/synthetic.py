"""Synthetic calibration views: a planar target seen by a camera with known intrinsics, distortion and pose.

Why render instead of shipping photographs: the tests must know the true focal lengths, principal
point and distortion to prove the fit recovers them, and no third-party images may be copied into
the repository. Rendering is exact ray casting: every output pixel is un-distorted (inverting the
same Brown-Conrady model OpenCV fits), intersected with the board plane, and sampled from a
high-resolution texture, 2 x 2 times per pixel so edges are anti-aliased like a real lens.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from .pattern import Pattern


@dataclass(frozen=True, slots=True)
class SyntheticCamera:
    width: int = 640
    height: int = 480
    fx: float = 620.0
    fy: float = 616.0
    cx: float = 324.5
    cy: float = 236.2
    dist: tuple[float, ...] = (-0.18, 0.06, 0.0012, -0.0008, 0.0)
    """k1, k2, p1, p2, k3 (OpenCV order)."""

    @property
    def camera_matrix(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1]], np.float64)

    @property
    def dist_coeffs(self) -> np.ndarray:
        return np.array(self.dist, np.float64)

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height


@dataclass(slots=True)
class SyntheticView:
    image: np.ndarray
    rvec: np.ndarray
    tvec: np.ndarray
    corners: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))
    """True projected corner positions (N, 2), px."""


def _distort(x: np.ndarray, y: np.ndarray, d: tuple[float, ...]) -> tuple[np.ndarray, np.ndarray]:
    k1, k2, p1, p2, k3 = (tuple(d) + (0.0,) * 5)[:5]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    xd = x * radial + 2 * p1 * x * y + p2 * (r2 + 2 * x * x)
    yd = y * radial + p1 * (r2 + 2 * y * y) + 2 * p2 * x * y
    return xd, yd


def _newton_step(x, y, xd, yd, d):
    k1, k2, p1, p2, k3 = (tuple(d) + (0.0,) * 5)[:5]
    r2 = x * x + y * y
    radial = 1 + k1 * r2 + k2 * r2 * r2 + k3 * r2 * r2 * r2
    dr = k1 + 2 * k2 * r2 + 3 * k3 * r2 * r2
    fx, fy = _distort(x, y, d)
    a = radial + 2 * x * x * dr + 2 * p1 * y + 6 * p2 * x
    b = 2 * x * y * dr + 2 * p1 * x + 2 * p2 * y
    c = 2 * x * y * dr + 2 * p1 * x + 2 * p2 * y
    e = radial + 2 * y * y * dr + 6 * p1 * y + 2 * p2 * x
    rx, ry = xd - fx, yd - fy
    det = a * e - b * c
    return x + (e * rx - b * ry) / det, y + (a * ry - c * rx) / det


@lru_cache(maxsize=4)
def _rays(cam: SyntheticCamera, samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Undistorted normalised coordinates of every sub-pixel sample (depends on the camera only)."""
    offs = (np.arange(samples) + 0.5) / samples - 0.5
    us = (np.arange(cam.width)[None, :, None, None] + offs[None, None, None, :]).astype(np.float64)
    vs = (np.arange(cam.height)[:, None, None, None] + offs[None, None, :, None]).astype(np.float64)
    shape = (cam.height, cam.width, samples, samples)
    xd = (np.broadcast_to(us, shape) - cam.cx) / cam.fx
    yd = (np.broadcast_to(vs, shape) - cam.cy) / cam.fy
    # OpenCV's few iterations as the start, then Newton steps until the model round-trips exactly.
    pts = np.stack([xd.reshape(-1), yd.reshape(-1)], axis=1).reshape(-1, 1, 2)
    und = cv2.undistortPoints(pts, np.eye(3), cam.dist_coeffs).reshape(shape + (2,))
    x, y = und[..., 0].astype(np.float64), und[..., 1].astype(np.float64)
    x, y = _newton_step(x, y, xd, yd, cam.dist)
    fx_, fy_ = _distort(x, y, cam.dist)
    err = max(np.abs(fx_ - xd).max(), np.abs(fy_ - yd).max()) * max(cam.fx, cam.fy)
    if err > 1e-3:
        raise ValueError(f"distortion {cam.dist} too strong to invert over the frame (residual {err:.3g} px)")
    return x, y


@lru_cache(maxsize=8)
def _texture(pattern: Pattern, px_per_mm: float) -> tuple[np.ndarray, float]:
    """Board texture (white margin of one square around it) and the margin in mm."""
    bw, bh = pattern.board_size_mm()
    margin = pattern.square_mm
    tw, th = int(round((bw + 2 * margin) * px_per_mm)), int(round((bh + 2 * margin) * px_per_mm))
    tex = np.full((th, tw), 255, np.uint8)
    sq = pattern.square_mm * px_per_mm
    m = margin * px_per_mm
    if pattern.kind == "checkerboard":
        for j in range(pattern.rows + 1):
            for i in range(pattern.cols + 1):
                if (i + j) % 2 == 0:
                    x0, y0 = m + i * sq, m + j * sq
                    tex[int(round(y0)) : int(round(y0 + sq)), int(round(x0)) : int(round(x0 + sq))] = 0
    else:
        img = pattern.charuco_board().generateImage((int(round(bw * px_per_mm)), int(round(bh * px_per_mm))))
        y0, x0 = int(round(m)), int(round(m))
        tex[y0 : y0 + img.shape[0], x0 : x0 + img.shape[1]] = img
    return tex, margin


def render_view(
    pattern: Pattern,
    cam: SyntheticCamera,
    rvec: np.ndarray,
    tvec: np.ndarray,
    *,
    px_per_mm: float = 24.0,
    samples: int = 2,
    background: int = 70,
    noise: float = 1.5,
    blur_sigma: float = 0.0,
    seed: int = 0,
) -> SyntheticView:
    """One 8-bit grey view of the target at pose (rvec, tvec) in mm, object frame = pattern.object_points()."""
    x, y = _rays(cam, samples)
    R, _ = cv2.Rodrigues(np.asarray(rvec, np.float64).reshape(3, 1))
    H = np.column_stack([R[:, 0], R[:, 1], np.asarray(tvec, np.float64).reshape(3)])
    Hi = np.linalg.inv(H)
    X = Hi[0, 0] * x + Hi[0, 1] * y + Hi[0, 2]
    Y = Hi[1, 0] * x + Hi[1, 1] * y + Hi[1, 2]
    W = Hi[2, 0] * x + Hi[2, 1] * y + Hi[2, 2]
    tex, margin = _texture(pattern, px_per_mm)
    ox, oy = pattern.origin_offset_mm()
    # texture pixel centres sit at integer coordinates, like image pixels
    mx = ((X / W + ox + margin) * px_per_mm - 0.5).astype(np.float32)
    my = ((Y / W + oy + margin) * px_per_mm - 0.5).astype(np.float32)
    h, w = cam.height, cam.width
    mx = mx.transpose(0, 2, 1, 3).reshape(h * samples, w * samples)
    my = my.transpose(0, 2, 1, 3).reshape(h * samples, w * samples)
    hi = cv2.remap(tex, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    img = cv2.resize(hi.astype(np.float32), (w, h), interpolation=cv2.INTER_AREA)
    if blur_sigma > 0:
        img = cv2.GaussianBlur(img, (0, 0), blur_sigma)
    if noise > 0:
        img = img + np.random.default_rng(seed).normal(0, noise, img.shape).astype(np.float32)
    corners, _ = cv2.projectPoints(pattern.object_points(), rvec, tvec, cam.camera_matrix, cam.dist_coeffs)
    image = np.clip(np.round(img), 0, 255).astype(np.uint8)
    return SyntheticView(image, np.asarray(rvec, float), np.asarray(tvec, float), corners.reshape(-1, 2))


def random_poses(
    pattern: Pattern, cam: SyntheticCamera, count: int, seed: int = 1, *, fill: tuple[float, float] = (0.6, 0.95)
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Poses that keep the whole board (with its margin) inside the frame, tilted up to ~35 degrees.

    `fill` is the range of the board's width as a fraction of the frame width. The board centres are
    spread over the frame so the corners reach its edges, which is what pins the distortion down.
    """
    rng = np.random.default_rng(seed)
    bw, bh = pattern.board_size_mm()
    ox, oy = pattern.origin_offset_mm()
    m = pattern.square_mm
    outline = np.array(
        [[-ox - m, -oy - m, 0], [bw - ox + m, -oy - m, 0], [bw - ox + m, bh - oy + m, 0], [-ox - m, bh - oy + m, 0]],
        np.float64,
    )
    centre = np.array([bw / 2 - ox, bh / 2 - oy, 0.0])
    poses: list[tuple[np.ndarray, np.ndarray]] = []
    tries = 0
    while len(poses) < count:
        tries += 1
        if tries > 5000:
            raise RuntimeError("could not place the board in the frame; make the pattern smaller")
        angles = np.radians([rng.uniform(-35, 35), rng.uniform(-35, 35), rng.uniform(-25, 25)])
        R = cv2.Rodrigues(np.array([angles[0], 0, 0]))[0] @ cv2.Rodrigues(np.array([0, angles[1], 0]))[0]
        R = R @ cv2.Rodrigues(np.array([0, 0, angles[2]]))[0]
        z = cam.fx * (bw + 2 * m) / (rng.uniform(*fill) * cam.width)
        u = rng.uniform(0.2, 0.8) * cam.width
        v = rng.uniform(0.2, 0.8) * cam.height
        target = np.array([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, z])
        tvec = target - R @ centre
        rvec = cv2.Rodrigues(R)[0].reshape(3)
        cam_pts = (R @ outline.T).T + tvec
        if (cam_pts[:, 2] <= 1).any():
            continue
        px, _ = cv2.projectPoints(outline, rvec, tvec, cam.camera_matrix, cam.dist_coeffs)
        px = px.reshape(-1, 2)
        if (px[:, 0] < 4).any() or (px[:, 1] < 4).any() or (px[:, 0] > cam.width - 5).any():
            continue
        if (px[:, 1] > cam.height - 5).any():
            continue
        poses.append((rvec, tvec))
    return poses


def calibration_views(
    pattern: Pattern, cam: SyntheticCamera | None = None, count: int = 12, seed: int = 1, **render
) -> list[SyntheticView]:
    cam = cam or SyntheticCamera()
    return [
        render_view(pattern, cam, r, t, seed=seed * 1000 + i, **render)
        for i, (r, t) in enumerate(random_poses(pattern, cam, count, seed))
    ]


def write_views(folder: Path, views: list[SyntheticView], prefix: str = "view") -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, v in enumerate(views):
        p = folder / f"{prefix}{i:03d}.png"
        cv2.imwrite(str(p), v.image)
        paths.append(p)
    return paths


def fronto_parallel_view(
    pattern: Pattern, cam: SyntheticCamera, distance_mm: float, *, rotation_deg: float = 0.0, **render
) -> SyntheticView:
    """The target lying flat under the camera (the scale set-up), optionally turned in its plane."""
    bw, bh = pattern.board_size_mm()
    ox, oy = pattern.origin_offset_mm()
    centre = np.array([bw / 2 - ox, bh / 2 - oy, 0.0])
    R = cv2.Rodrigues(np.array([0.0, 0.0, np.radians(rotation_deg)]))[0]
    tvec = np.array([(cam.width / 2 - cam.cx) / cam.fx, (cam.height / 2 - cam.cy) / cam.fy, 1.0]) * distance_mm
    tvec = tvec - R @ centre
    return render_view(pattern, cam, cv2.Rodrigues(R)[0].reshape(3), tvec, **render)
