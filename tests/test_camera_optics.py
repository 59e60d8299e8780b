"""The physics-based second camera renderer: deterministic, camera_domain's geometry, a line camera's contrast, dark
etched rims, a real Bayer mosaic, and a refusal of what it does not model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.evaluation.camera_domain import render
from inspector.evaluation.camera_optics import _DEMOSAIC, _camera, _edge_distance, render_optics

DEEPPCB = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "deeppcb"
SIZE = 640
SQUARE = 24
# top-left corners of copper squares, in the central part of the field (where chromatic aberration is < 0.2 px)
CORNERS = [(200, 200), (300, 260), (380, 180), (220, 400), (416, 416), (300, 330)]


def _squares() -> np.ndarray:
    """A DeepPCB-like binarised board: laminate 255, copper squares 0."""
    b = np.full((SIZE, SIZE), 255, np.uint8)
    for x, y in CORNERS:
        b[y : y + SQUARE, x : x + SQUARE] = 0
    return b


def _stripes() -> np.ndarray:
    """Copper and laminate across the whole field: 40 px copper bars every 100 px."""
    b = np.full((SIZE, SIZE), 255, np.uint8)
    for x in range(30, SIZE - 40, 100):
        b[:, x : x + 40] = 0
    return b


def _plane(frame: np.ndarray) -> np.ndarray:
    """The plane the station reads: gray, or a colour frame's red plane."""
    return frame if frame.ndim == 2 else frame[..., 2]


def _mask(binary: np.ndarray, matrix: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The board's copper carried into the frame by the capture's matrix."""
    cu = (binary < 128).astype(np.float32)
    frame = (shape[1], shape[0])
    return cv2.warpAffine(cu, matrix, frame, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE) >= 0.5


def _distance_from_copper(copper: np.ndarray) -> np.ndarray:
    return cv2.distanceTransform((~copper).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def _crossings_midpoint(profile: np.ndarray, level: float) -> float:
    """Midpoint of where a bright run crosses `level` on its way up and down, by linear interpolation (sub-pixel)."""
    above = profile > level
    i, j = int(np.argmax(above)), len(profile) - 1 - int(np.argmax(above[::-1]))
    left = i - 1 + (level - profile[i - 1]) / (profile[i] - profile[i - 1])
    right = j + (profile[j] - level) / (profile[j] - profile[j + 1])
    return (left + right) / 2


def _blob_centre(win: np.ndarray, side: float) -> tuple[float, float]:
    """Centre (x, y) of the bright square in `win`, from the sub-pixel half-level crossings of its central rows and
    columns: a binary centroid would be off by up to half a pixel from rounding alone."""
    level = (np.percentile(win, 10) + np.percentile(win, 90)) / 2
    c, k = win.shape[0] // 2, int(0.15 * win.shape[0])
    assert 0.75 < (win > level).sum() / side**2 < 1.25  # the square is there, at its size
    cx = np.mean([_crossings_midpoint(win[r], level) for r in range(c - k, c + k + 1)])
    cy = np.mean([_crossings_midpoint(win[:, q], level) for q in range(c - k, c + k + 1)])
    return float(cx), float(cy)


def _band_pass(plane: np.ndarray) -> np.ndarray:
    p = plane.astype(np.float32)
    return cv2.GaussianBlur(p, (0, 0), 1.0) - cv2.GaussianBlur(p, (0, 0), 6.0)


# --- determinism and what each seed draws ---------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_same_seeds_give_the_same_frame_another_capture_seed_another(mode):
    b = _squares()
    a, ca = render_optics(b, 5, board_seed=9, mode=mode, max_shift=3, max_rot_deg=0.5)
    a2, ca2 = render_optics(b, 5, board_seed=9, mode=mode, max_shift=3, max_rot_deg=0.5)
    c, _ = render_optics(b, 6, board_seed=9, mode=mode, max_shift=3, max_rot_deg=0.5)
    assert a.dtype == np.uint8 and a.shape == ((SIZE, SIZE) if mode == "gray" else (SIZE, SIZE, 3))
    assert np.array_equal(a, a2) and np.array_equal(ca.matrix, ca2.matrix)
    fields = ("laminate", "copper", "blur_sigma", "noise_sigma", "jpeg_quality")
    assert [getattr(ca, f) for f in fields] == [getattr(ca2, f) for f in fields]
    assert not np.array_equal(a, c)


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_the_board_surface_belongs_to_the_board_not_to_the_capture(mode):
    """Two captures of one physical board (no shift) share its weave; another board's weave is unrelated."""
    b = _squares()
    far = _distance_from_copper(b < 128) >= 20
    far[:20], far[-20:], far[:, :20], far[:, -20:] = False, False, False, False

    def texture(seed: int, board_seed: int) -> np.ndarray:
        frame, _ = render_optics(b, seed, board_seed=board_seed, mode=mode)
        return _band_pass(frame if mode == "gray" else cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY))[far]

    for board in (5, 6, 7):
        first, again, other = texture(2 * board, board), texture(2 * board + 1, board), texture(99, board + 50)
        assert np.corrcoef(first, again)[0, 1] > (0.6 if mode == "gray" else 0.5)  # demosaicing adds noise
        assert abs(np.corrcoef(first, other)[0, 1]) < 0.1


def test_the_camera_is_the_same_for_every_capture():
    """Fixed pattern (PRNU, hot pixels, light, chromatic aberration) comes from the camera, not from any seed."""
    cam = _camera(SIZE, SIZE)
    assert cam is _camera(SIZE, SIZE)
    hot = np.argwhere(cam.hot > 0)
    assert 5 <= len(hot) <= 12
    assert 0.985 <= cam.prnu.min() and cam.prnu.max() <= 1.015 and 0.003 < cam.prnu.std() < 0.008
    light = cam.light
    for corner in (light[0, 0], light[0, -1], light[-1, 0], light[-1, -1]):
        assert 0.70 <= corner <= 0.85  # cos^4-like fall-off against the optical centre
    assert 0.0005 <= abs(cam.ca) <= 0.001
    frames = [render_optics(np.full((SIZE, SIZE), 255, np.uint8), s, board_seed=s)[0] for s in (1, 2)]
    for y, x in hot:  # a hot pixel stands out of its neighbourhood in every capture
        if cam.hot[y, x] > 150 and 2 <= y < SIZE - 2 and 2 <= x < SIZE - 2:
            for f in frames:
                assert int(f[y, x]) > np.median(f[y - 2 : y + 3, x - 2 : x + 3]) + 20


# --- geometry: camera_domain's convention --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "resolution", "scale", "seed"),
    [("gray", 1.0, 1.0, 3), ("colour", 1.0, 1.0, 4), ("gray", 0.75, 1.01, 5), ("colour", 0.75, 1.01, 6)],
)
def test_copper_lies_where_the_matrix_maps_it(mode, resolution, scale, seed):
    b = _squares()
    opts = {"max_shift": 3.0, "max_rot_deg": 0.5, "resolution": resolution, "scale": scale}
    frame, cap = render_optics(b, seed, board_seed=seed + 1, mode=mode, **opts)
    _, ref = render(b, seed, board_seed=seed + 1, mode=mode, **opts)
    assert np.array_equal(cap.matrix, ref.matrix)  # the same geometry convention, to the bit
    side = round(SIZE * resolution)
    assert frame.shape[:2] == (side, side)
    plane = _plane(frame).astype(np.float32)
    errors = []
    for x, y in CORNERS:
        fx, fy = cap.matrix @ np.array([x + (SQUARE - 1) / 2, y + (SQUARE - 1) / 2, 1.0])
        r = int(SQUARE * resolution)  # a window well around the square, centred on where it should be
        x0, y0 = int(round(fx)) - r, int(round(fy)) - r
        cx, cy = _blob_centre(plane[y0 : y0 + 2 * r + 1, x0 : x0 + 2 * r + 1], SQUARE * resolution * scale)
        errors.append(max(abs(cx + x0 - fx), abs(cy + y0 - fy)))
    assert max(errors) < 0.5 and np.mean(errors) < 0.2


def test_etching_moves_the_edges_not_the_matrix():
    b = _squares()
    plain, cp = render_optics(b, 8, board_seed=1, max_shift=2)
    wide, cw = render_optics(b, 8, board_seed=1, max_shift=2, etch_px=1.0)
    assert np.array_equal(cp.matrix, cw.matrix)
    mid = (cp.laminate + cp.copper) / 2
    grown = (wide > mid).sum() - (plain > mid).sum()  # each 24 px square 1 px wider on every side: 4 * 25 px more
    assert 0.8 * len(CORNERS) * 4 * (SQUARE + 1) < grown < 1.2 * len(CORNERS) * 4 * (SQUARE + 1)


# --- a line camera's levels ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_copper_is_1_8_to_3_times_the_laminate_everywhere_in_the_field(mode):
    b = _stripes()
    copper = b < 128
    solid = cv2.erode(copper.astype(np.uint8), np.ones((9, 9))) > 0
    bare = _distance_from_copper(copper) >= 6
    for seed in range(4):
        frame, cap = render_optics(b, seed, board_seed=10 + seed, mode=mode)
        plane = _plane(frame)
        assert 1.8 <= cap.copper / cap.laminate <= 3.0 and cap.jpeg_quality == 100
        assert 1.8 <= np.median(plane[solid]) / np.median(plane[bare]) <= 3.0
        assert (
            abs(np.median(plane[solid]) / cap.copper - 1) < 0.12
            and abs(np.median(plane[bare]) / cap.laminate - 1) < 0.12
        )
        for ty in range(3):  # and in every part of the field, under the ring light's fall-off
            for tx in range(3):
                tile = (slice(ty * 213, (ty + 1) * 213), slice(tx * 213, (tx + 1) * 213))
                ratio = np.median(plane[tile][solid[tile]]) / np.median(plane[tile][bare[tile]])
                assert 1.8 <= ratio <= 3.0, (seed, ty, tx, ratio)
        assert np.percentile(plane[solid], 99.5) < 240  # no clipping of the materials
        assert (plane >= 250).mean() <= 0.005


def test_the_light_falls_off_towards_the_corners():
    frame, _ = render_optics(np.zeros((SIZE, SIZE), np.uint8), 2, board_seed=2)  # all copper
    f = frame.astype(np.float32)
    centre = np.median(f[280:360, 280:360])
    for corner in (f[:40, :40], f[:40, -40:], f[-40:, :40], f[-40:, -40:]):
        assert 0.68 <= np.median(corner) / centre <= 0.87


def test_the_edge_distance_is_sub_pixel_from_the_anti_aliased_coverage():
    """The rim is placed by the coverage's distance to the edge: on a disc drawn with a sub-pixel centre and radius,
    it is the true distance to a small fraction of a pixel (a hard mask would be off by up to half a pixel)."""
    n, sub, cx, cy, radius = 64, 8, 31.3, 30.7, 14.2
    grid = (np.arange(n * sub) + 0.5) / sub - 0.5
    gy, gx = np.meshgrid(grid, grid, indexing="ij")
    cover = ((gx - cx) ** 2 + (gy - cy) ** 2 < radius**2).reshape(n, sub, n, sub).mean(axis=(1, 3))
    yy, xx = np.mgrid[0:n, 0:n]
    truth = radius - np.hypot(xx - cx, yy - cy)  # positive on copper
    near = np.abs(truth) < 3
    err = np.abs(_edge_distance(cover.astype(np.float32)) - truth)[near]
    assert err.mean() < 0.05 and err.max() < 0.25


def test_copper_beyond_the_end_of_a_laminate_strip_has_no_rim():
    """A thin strip of laminate ending inside a copper pour (DeepPCB's 2 px border strips do): the copper past its end
    is copper. The strip's edge tangent, carried beyond the strip's end, put every pixel of the pour near it 'at the
    edge': a dark, laminate-like wedge 17 px wide that the station called a defect on known-good boards."""
    b = np.zeros((SIZE, SIZE), np.uint8)  # all copper
    b[:300, :2] = 255  # laminate strip along the left border, ending at row 300
    for seed in range(6):  # shifted and turned: the border's coverage is then fractional, its tangents slanted
        frame, _ = render_optics(b, seed, board_seed=4, mode="gray", max_shift=3, max_rot_deg=0.5)
        rows = frame[:, 4:24].astype(np.float32).mean(axis=1)  # copper 2+ px from the strip, in every row
        assert rows.min() > 0.75 * float(np.median(frame[:, 120:140])), (seed, int(np.argmin(rows)), rows.min())


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_etched_sidewalls_draw_a_dark_rim_just_outside_the_copper(mode):
    """The first laminate pixel along an edge is darker than the laminate 6-15 px away (gray, and green in colour:
    the red plane is sampled at every other pixel and demosaicing fills the rim there from the bright copper)."""
    b = _squares()
    rims, bares = [], []
    for seed in range(3):
        frame, cap = render_optics(b, seed, board_seed=seed, mode=mode, max_shift=2, max_rot_deg=0.3)
        copper = _mask(b, cap.matrix, frame.shape[:2])
        dist = _distance_from_copper(copper)
        plane = frame if mode == "gray" else frame[..., 1]
        rims.append(plane[(dist > 0) & (dist <= 1.0)].mean())
        bares.append(plane[(dist >= 6) & (dist <= 15)].mean())
    assert np.mean(rims) < np.mean(bares) - (6 if mode == "gray" else 3)


# --- colour: a real Bayer sensor ----------------------------------------------------------------------------------


def test_the_demosaicing_constant_matches_an_rggb_mosaic():
    raw = np.zeros((16, 16), np.uint8)
    raw[0::2, 0::2] = 200  # only the red photosites lit
    bgr = cv2.cvtColor(raw, _DEMOSAIC)[4:12, 4:12].reshape(-1, 3).mean(axis=0)
    assert bgr[2] > 150 and bgr[0] < 10 and bgr[1] < 10


def test_colour_frames_have_orange_copper_and_colour_fringes_at_edges():
    b = _stripes()
    frame, cap = render_optics(b, 4, board_seed=4, mode="colour")
    copper = _mask(b, cap.matrix, frame.shape[:2])
    solid = cv2.erode(copper.astype(np.uint8), np.ones((9, 9))) > 0
    blue, green, red = (frame[..., c][solid].astype(float).mean() for c in range(3))
    assert red > green + 20 and green > blue + 20  # bare copper is orange
    lam = frame[_distance_from_copper(copper) >= 6].astype(float).mean(axis=0)
    assert lam[1] >= lam[2] > lam[0] and lam[2] < red / 1.8  # pale yellow-green laminate, darker in red
    # Without a mosaic every edge pixel would be a mix of the two materials: its (g, r) chromaticity on the segment
    # between theirs (whatever the light). Demosaicing and chromatic aberration push edge pixels off it.
    f = frame.astype(np.float32)
    chroma = f[..., 1:] / np.maximum(f.sum(axis=-1, keepdims=True), 1.0)
    bare = _distance_from_copper(copper) >= 6
    lam_c, cu_c = np.median(chroma[bare], axis=0), np.median(chroma[solid], axis=0)
    normal = np.array([cu_c[1] - lam_c[1], lam_c[0] - cu_c[0]]) / np.linalg.norm(cu_c - lam_c)
    off = np.abs((chroma - lam_c) @ normal)
    edge = cv2.morphologyEx(copper.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3))) > 0
    assert off[edge].mean() > 1.8 * max(off[solid].mean(), off[bare].mean())
    colourless = cv2.cvtColor(cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY), cv2.COLOR_GRAY2BGR)
    assert not np.array_equal(frame, colourless)


# --- what it does not model ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("option", "named"),
    [
        ({"profile": "harsh"}, "--camera-profile harsh"),
        ({"copper_look": "dark"}, "--camera-copper dark"),
        ({"gamma": 0.45}, "--camera-gamma"),
        ({"motion_px": 3.0}, "--camera-motion"),
        ({"defocus_px": 2.0}, "--camera-defocus"),
    ],
)
def test_unmodelled_options_are_refused_by_name(option, named):
    with pytest.raises(ValueError, match="line camera only") as err:
        render_optics(_squares(), 1, **option)
    assert named in str(err.value)


def test_out_of_range_geometry_and_modes_are_refused():
    for kwargs in ({"mode": "ir"}, {"scale": 1.5}, {"etch_px": 4.0}, {"resolution": 3.0}):
        with pytest.raises(ValueError):
            render_optics(_squares(), 1, **kwargs)


# --- a real DeepPCB board -------------------------------------------------------------------------------------------


@pytest.mark.skipif(not (DEEPPCB / "trainval.txt").is_file(), reason="DeepPCB is not at ../shared/datasets/deeppcb")
@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_a_real_deeppcb_board(mode):
    from inspector.datasets.deeppcb import load_list, read_gray

    pair = load_list(DEEPPCB)[0]
    template = read_gray(pair.template_path)
    frame, cap = render_optics(template, 11, board_seed=12, mode=mode, max_shift=3, max_rot_deg=0.5)
    again, _ = render_optics(template, 11, board_seed=12, mode=mode, max_shift=3, max_rot_deg=0.5)
    assert np.array_equal(frame, again) and frame.shape[:2] == template.shape
    plane = _plane(frame)
    copper = _mask(template, cap.matrix, plane.shape)
    solid = cv2.erode(copper.astype(np.uint8), np.ones((5, 5))) > 0
    dist = _distance_from_copper(copper)
    bare = dist >= 6
    assert 1.8 <= np.median(plane[solid]) / np.median(plane[bare]) <= 3.0
    assert (plane >= 250).mean() <= 0.005
    # the mapped copper and the bright pixels agree (boxes would map the same way)
    mid = (cap.copper + cap.laminate) / 2
    assert ((plane > mid) == copper).mean() > 0.97
    if mode == "gray":
        assert plane[(dist > 0) & (dist <= 1.0)].mean() < plane[(dist >= 6) & (dist <= 15)].mean() - 5
