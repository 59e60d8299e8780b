"""The camera renderer behind `evaluate --camera`: deterministic, textured, misregistered within its bounds."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.detect.package import InputDomain
from inspector.detect.prepare import is_binary, prepare, to_gray
from inspector.evaluation.camera_domain import capture_pair, map_boxes, render

PAIR = Path(__file__).resolve().parent / "fixtures" / "deeppcb"


def _pair() -> tuple[np.ndarray, np.ndarray]:
    stem = sorted(PAIR.glob("*_test.jpg"))[0]
    test = cv2.imread(str(stem), cv2.IMREAD_GRAYSCALE)
    temp = cv2.imread(str(stem).replace("_test", "_temp"), cv2.IMREAD_GRAYSCALE)
    return test, temp


def test_render_is_deterministic_per_seed_and_differs_between_seeds():
    test, _ = _pair()
    a, ca = render(test, 5, max_shift=3, max_rot_deg=0.5)
    b, cb = render(test, 5, max_shift=3, max_rot_deg=0.5)
    c, _ = render(test, 6, max_shift=3, max_rot_deg=0.5)
    assert np.array_equal(a, b) and np.array_equal(ca.matrix, cb.matrix)
    assert not np.array_equal(a, c)


def test_rendering_is_gray_textured_and_not_binary():
    test, _ = _pair()
    frame, cap = render(test, 1)
    assert frame.dtype == np.uint8 and frame.shape == test.shape
    assert not is_binary(frame, 40, 0.98)
    assert len(np.unique(frame)) > 60
    copper = test < 128
    # two materials, each textured, copper brighter (the light and texture spread each level)
    assert frame[copper].mean() > frame[~copper].mean() + 40
    assert frame[copper].std() > 4 and frame[~copper].std() > 4
    assert 50 <= cap.laminate <= 90 and 145 <= cap.copper <= 195


def test_colour_rendering_has_three_distinct_channels():
    test, _ = _pair()
    frame, _ = render(test, 2, mode="colour")
    assert frame.shape == (*test.shape, 3)
    b, g, r = cv2.split(frame)
    copper = test < 128
    assert r[copper].mean() > b[copper].mean() + 30  # copper is orange, not gray
    with pytest.raises(ValueError, match="gray' or 'colour"):
        render(test, 2, mode="ir")


def test_harsh_profile_is_the_same_capture_taken_by_a_worse_set_up():
    """Same seed, same board and misregistration; lower contrast, more blur, noise and JPEG loss (over many seeds,
    within the documented ranges); 'line' is the default and an unknown profile is refused."""
    test, _ = _pair()
    copper = test < 128
    for seed in range(12):
        line, cl = render(test, seed, max_shift=3, max_rot_deg=0.5)
        assert np.array_equal(line, render(test, seed, max_shift=3, max_rot_deg=0.5, profile="line")[0])
        harsh, ch = render(test, seed, max_shift=3, max_rot_deg=0.5, profile="harsh")
        assert np.array_equal(cl.matrix, ch.matrix)
        assert 1.5 <= ch.copper / ch.laminate < cl.copper / cl.laminate
        assert 1.0 <= ch.blur_sigma <= 2.0 and ch.blur_sigma > cl.blur_sigma
        assert 4.0 <= ch.noise_sigma <= 8.0 and ch.noise_sigma == 2 * cl.noise_sigma
        assert 60 <= ch.jpeg_quality <= 80 and ch.jpeg_quality < cl.jpeg_quality
        # what the camera shows: the copper/laminate step is smaller than on the line camera's frame
        step = lambda f: float(np.median(f[copper])) - float(np.median(f[~copper]))  # noqa: E731
        assert step(harsh) < step(line)
    with pytest.raises(ValueError, match="'line' or 'harsh'"):
        render(test, 1, profile="night")


def test_misregistration_stays_within_3_px_and_half_a_degree():
    test, temp = _pair()
    h, w = test.shape
    for seed in range(20):
        f = capture_pair(test, temp, seed, max_shift=3, max_rot_deg=0.5)
        assert np.allclose(f["golden"][1].matrix, [[1, 0, 0], [0, 1, 0]])  # the reference is square to the camera
        for key in ("board", "good"):
            m = f[key][1].matrix
            angle = math.degrees(math.atan2(m[1, 0], m[0, 0]))
            assert abs(angle) <= 0.5 + 1e-9
            centre = m @ np.array([(w - 1) / 2, (h - 1) / 2, 1.0])
            assert np.all(np.abs(centre - [(w - 1) / 2, (h - 1) / 2]) <= 3 + 1e-9)


def test_second_capture_of_the_golden_board_has_the_same_surface_and_other_noise():
    _, temp = _pair()
    f = capture_pair(temp, temp, 9)
    golden, good = f["golden"][0].astype(np.int16), f["good"][0].astype(np.int16)
    assert not np.array_equal(golden, good)
    # the same physical board: its texture correlates between captures far more than with another board
    other = render(temp, 9 * 3 + 2, board_seed=12345)[0].astype(np.int16)
    lam = cv2.erode((temp > 128).astype(np.uint8), np.ones((9, 9), np.uint8)) > 0

    def corr(a, b):
        a, b = (
            a - cv2.GaussianBlur(a.astype(np.float32), (0, 0), 8),
            b - cv2.GaussianBlur(b.astype(np.float32), (0, 0), 8),
        )
        return float(np.corrcoef(a[lam], b[lam])[0, 1])

    assert corr(golden, good) > corr(golden, other) + 0.2
    # Asked for, the line's kind of good board: the same copper, a surface of its own (not the golden board's).
    g = capture_pair(temp, temp, 9, other=True)
    assert set(g) == {"golden", "board", "good", "other"} and "other" not in f
    assert np.array_equal(g["good"][0], f["good"][0])  # asking for it changes none of the other captures
    line_good = g["other"][0].astype(np.int16)
    assert corr(golden, good) > corr(golden, line_good) + 0.2


def test_map_boxes_follows_the_capture_transform():
    m = cv2.getRotationMatrix2D((100.0, 100.0), 0.0, 1.0)
    m[:, 2] += (2.5, -1.0)
    out = map_boxes(np.array([[10, 20, 30, 40]], np.float32), m)
    assert np.allclose(out, [[12.5, 19, 32.5, 39]])
    assert map_boxes(np.zeros((0, 4)), m).shape == (0, 4)


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_preparation_recovers_the_binary_board_from_a_camera_rendering(mode):
    test, temp = _pair()
    spec = InputDomain(kind="binary_copper")
    f = capture_pair(test, temp, 4, mode=mode, max_shift=3, max_rot_deg=0.5)
    for key, src in (("golden", temp), ("board", test), ("good", temp)):
        frame, cap = f[key]
        truth = cv2.warpAffine(
            src, cap.matrix, src.shape[::-1], flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE
        )
        got = prepare(frame, spec)
        assert set(np.unique(got)) <= {0, 255}
        a, b = truth < 128, got < 128
        iou = (a & b).sum() / (a | b).sum()
        assert iou > 0.95, (key, iou)


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_a_registered_second_capture_binarised_with_the_golden_materials_matches_the_golden_mask(mode):
    """The known-good check: the second capture, registered, binarised with the golden image's materials
    (`binarise_like`), gives the golden mask but for a fraction of a percent of edge pixels, no more than when it
    is binarised on its own (here both are down to the edges' last pixels: 233 and 229 of 389,376 gray since the
    light follows the corners, 241 and 246 before); where the camera did not see the board (the reference's
    pixels) it is the golden mask exactly."""
    from inspector.registration import BoardRegistrar

    test, temp = _pair()
    spec = InputDomain(kind="binary_copper")
    f = capture_pair(test, temp, 32, mode=mode, max_shift=3, max_rot_deg=0.5)
    golden = f["golden"][0]
    reg = BoardRegistrar().register(f["good"][0], golden)
    board = reg.warp_to_reference(f["good"][0], golden)
    gold_mask = prepare(golden, spec)
    joint = prepare(board, spec, reference=(golden, gold_mask))
    alone = prepare(board, spec)
    assert set(np.unique(joint)) <= {0, 255}
    inner = (slice(8, -8), slice(8, -8))
    differ = float((joint[inner] != gold_mask[inner]).mean())
    assert differ < 0.003, differ
    assert differ <= 1.02 * float((alone[inner] != gold_mask[inner]).mean())
    unseen = _unseen(board, golden, spec)
    assert unseen.any()  # the capture is 3.7 px off: a band of the board is the reference's own pixels
    assert np.array_equal(joint[unseen], gold_mask[unseen])


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_the_captures_own_border_is_not_judged_where_the_registration_puts_it_inside_the_frame(mode):
    """A capture's outermost pixels are where its blur, resampling and JPEG run out of neighbours (and where a
    sensor's edge rows misbehave): a bright line along them, 3.7 px inside the golden frame after registration,
    is not a defect. Next to the area the camera did not see, the prepared board is the golden mask."""
    from inspector.registration import BoardRegistrar

    test, temp = _pair()
    spec = InputDomain(kind="binary_copper")
    f = capture_pair(test, temp, 32, mode=mode, max_shift=3, max_rot_deg=0.5)
    golden = f["golden"][0]
    good = f["good"][0].copy()
    for edge in (np.s_[:2], np.s_[-2:], np.s_[:, :2], np.s_[:, -2:]):
        good[edge] = 255
    reg = BoardRegistrar().register(good, golden)
    board = reg.warp_to_reference(good, golden)
    gold_mask = prepare(golden, spec)
    joint = prepare(board, spec, reference=(golden, gold_mask))
    unseen = _unseen(board, golden, spec)
    assert unseen.any()
    near = cv2.dilate(unseen.astype(np.uint8), np.ones((7, 7), np.uint8)).astype(bool) & ~unseen
    line = near & (to_gray(board, "b", spec.colour) == 255)
    assert line.sum() > 100  # the bright line is inside the frame, beside the unseen band
    assert np.array_equal(joint[near], gold_mask[near])


def _unseen(board: np.ndarray, golden: np.ndarray, spec: InputDomain) -> np.ndarray:
    """Pixels of the board image that are the golden image's own (not seen by the camera), 3x3-eroded."""

    same = (to_gray(board, "b", spec.colour) == to_gray(golden, "g", spec.colour)).astype(np.uint8)
    return cv2.erode(same, np.ones((3, 3), np.uint8)).astype(bool)


def test_teaching_boards_are_other_physical_boards_of_the_design_and_repeat_per_seed():
    test, temp = _pair()
    f = capture_pair(test, temp, 7, max_shift=3, max_rot_deg=0.5, other=True, teach=2)
    again = capture_pair(test, temp, 7, max_shift=3, max_rot_deg=0.5, teach=2)
    assert len(f["teach"]) == 2 and "teach" not in capture_pair(test, temp, 7)
    frames = [f["golden"][0], f["good"][0], f["other"][0], *(t[0] for t in f["teach"])]
    assert all(not np.array_equal(a, b) for i, a in enumerate(frames) for b in frames[i + 1 :])
    assert all(np.array_equal(a[0], b[0]) for a, b in zip(f["teach"], again["teach"]))


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_a_camera_with_its_gamma_on_compresses_the_contrast_with_the_same_draws(mode):
    """`gamma=0.45` (an sRGB-like camera): the same board, light and misregistration, each sensor value raised to
    that power before the JPEG, so the copper/laminate ratio arrives near its 0.45th power (2.5:1 as about 1.5:1);
    a gamma no camera has is refused."""
    test, _ = _pair()
    copper = cv2.erode((test < 128).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    laminate = cv2.erode((test >= 128).astype(np.uint8), np.ones((5, 5), np.uint8)).astype(bool)
    plane = (lambda f: f.astype(np.float64)) if mode == "gray" else (lambda f: f[..., 2].astype(np.float64))
    for seed in range(3):
        linear, cl = render(test, seed, mode=mode, max_shift=3, max_rot_deg=0.5)
        curved, cg = render(test, seed, mode=mode, max_shift=3, max_rot_deg=0.5, gamma=0.45)
        assert np.array_equal(cl.matrix, cg.matrix) and (cl.copper, cl.laminate) == (cg.copper, cg.laminate)
        ratio = np.median(plane(linear)[copper]) / np.median(plane(linear)[laminate])
        arrives = np.median(plane(curved)[copper]) / np.median(plane(curved)[laminate])
        assert ratio > 1.8 and arrives < 1.6
        assert math.log(arrives) == pytest.approx(0.45 * math.log(ratio), rel=0.1)
    with pytest.raises(ValueError, match="gamma"):
        render(test, 1, gamma=0.1)


@pytest.mark.parametrize("mode", ["gray", "colour"])
def test_a_dark_field_camera_shows_copper_darker_with_the_same_draws(mode):
    """`copper_look='dark'`: the same board, light and misregistration, the two materials' levels exchanged (each
    keeps its own texture), so copper is the darker material, in gray and in the red plane a colour frame is read
    by; an unknown look is refused."""
    test, _ = _pair()
    copper = test < 128
    for seed in range(4):
        bright, cb = render(test, seed, mode=mode)
        dark, cd = render(test, seed, mode=mode, copper_look="dark")
        assert np.array_equal(cb.matrix, cd.matrix) and cb.blur_sigma == cd.blur_sigma
        assert (cd.copper, cd.laminate) == (cb.laminate, cb.copper)
        plane = (lambda f: f) if mode == "gray" else (lambda f: f[..., 2])
        assert plane(bright)[copper].mean() > plane(bright)[~copper].mean() + 40
        assert plane(dark)[copper].mean() + 40 < plane(dark)[~copper].mean()
    with pytest.raises(ValueError, match="'bright' or 'dark'"):
        render(test, 1, copper_look="shiny")


def test_a_board_nearer_the_lens_is_magnified_about_the_centre_with_the_same_draws():
    """`scale=1.02`: the same board, light and noise draws, its copper 2 % larger about the frame's centre on top
    of the misregistration; the capture's matrix says so, so the ground truth follows; a scale no fixed camera
    gives is refused."""
    test, _ = _pair()
    h, w = test.shape
    ys, xs = np.nonzero(cv2.erode((test < 128).astype(np.uint8), np.ones((7, 7), np.uint8)))
    pts = np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)  # the board's copper, 3 px in from its edges

    def copper_level(frame: np.ndarray, matrix: np.ndarray) -> float:
        """Mean of `frame` where `matrix` puts the board's copper."""
        fx, fy = np.rint(matrix @ pts).astype(int)
        ok = (fx >= 0) & (fx < w) & (fy >= 0) & (fy < h)
        return float(frame[fy[ok], fx[ok]].mean())

    for seed in range(3):
        flat, cf = render(test, seed, max_shift=3, max_rot_deg=0.5)
        near, cn = render(test, seed, max_shift=3, max_rot_deg=0.5, scale=1.02)
        assert (cf.copper, cf.laminate, cf.blur_sigma, cf.noise_sigma) == (
            cn.copper,
            cn.laminate,
            cn.blur_sigma,
            cn.noise_sigma,
        )
        assert math.sqrt(abs(np.linalg.det(cn.matrix[:, :2]))) == pytest.approx(1.02, abs=1e-9)
        # Every point of the board lands 2 % further from the frame's centre than it did without the scale.
        centre = np.array([(w - 1) / 2.0, (h - 1) / 2.0])
        for point in ([0.0, 0.0, 1.0], [w - 1.0, 40.0, 1.0], [200.0, h - 1.0, 1.0]):
            assert np.allclose(cn.matrix @ point - centre, 1.02 * (cf.matrix @ point - centre), atol=1e-4)
        # The copper really moved with it: its pixels, mapped by each capture's matrix, are bright in each frame.
        assert copper_level(flat, cf.matrix) > flat.mean() + 20
        assert copper_level(near, cn.matrix) > near.mean() + 20
        # A magnified frame's copper is where its own matrix says, not where the unscaled one would put it (at 5 %,
        # where the fixture's wide traces leave the unscaled guess off copper often enough to tell).
        far, c5 = render(test, seed, max_shift=3, max_rot_deg=0.5, scale=1.05)
        assert copper_level(far, c5.matrix) > copper_level(far, cf.matrix) + 3
    with pytest.raises(ValueError, match="scale"):
        render(test, 1, scale=1.5)


def test_a_board_moving_during_the_exposure_is_smeared_along_the_rows_only():
    """`motion_px=6`: the same draws, the image averaged over a 6 px travel along the rows: edges across the rows
    (vertical ones) lose much of their sharpness, edges along them keep it; a travel past 32 px is refused."""
    test, _ = _pair()

    def sharpness(frame: np.ndarray) -> tuple[float, float]:
        # Gradient energy, not mean gradient: a blur spreads an edge's step over more pixels but keeps its sum.
        f = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 1.0)  # the sensor noise out of the comparison
        return float((np.diff(f, axis=1) ** 2).mean()), float((np.diff(f, axis=0) ** 2).mean())

    for seed in range(3):
        still, cs = render(test, seed)
        moving, cm = render(test, seed, motion_px=6)
        assert np.array_equal(cs.matrix, cm.matrix) and cs.blur_sigma == cm.blur_sigma
        across_s, along_s = sharpness(still)
        across_m, along_m = sharpness(moving)
        # Across the rows the edges lose about 40 % of their energy; along them only the texture's share (< 25 %).
        assert across_m / across_s < 0.7 and along_m / along_s > 0.75
        assert across_m / across_s < along_m / along_s - 0.15
    with pytest.raises(ValueError, match="motion"):
        render(test, 1, motion_px=40)


def test_a_board_seen_out_of_focus_is_blurred_in_both_directions_with_the_same_draws():
    """`defocus_px=2`: the same draws, the capture's own blur and 2 px more added in quadrature; edges lose sharpness
    across and along the rows alike. In a pair only the boards after the golden capture are out of focus (the lens
    drifted after the reference was taken); a defocus past 8 px is refused."""
    test, temp = _pair()

    def energy(frame: np.ndarray) -> float:
        f = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 1.0)
        return float((np.diff(f, axis=1) ** 2).mean() + (np.diff(f, axis=0) ** 2).mean())

    for seed in range(3):
        sharp, cs = render(test, seed, max_shift=3, max_rot_deg=0.5)
        soft, cd = render(test, seed, max_shift=3, max_rot_deg=0.5, defocus_px=2.0)
        assert np.array_equal(cs.matrix, cd.matrix) and cs.noise_sigma == cd.noise_sigma
        assert cd.blur_sigma == pytest.approx(math.hypot(cs.blur_sigma, 2.0))
        assert energy(soft) < 0.7 * energy(sharp)  # measured 0.61 and below
    f = capture_pair(test, temp, 4, max_shift=3, max_rot_deg=0.5, defocus_px=2.0)
    g = capture_pair(test, temp, 4, max_shift=3, max_rot_deg=0.5)
    assert np.array_equal(f["golden"][0], g["golden"][0])
    assert f["board"][1].blur_sigma == pytest.approx(math.hypot(g["board"][1].blur_sigma, 2.0))
    assert f["good"][1].blur_sigma == pytest.approx(math.hypot(g["good"][1].blur_sigma, 2.0))
    with pytest.raises(ValueError, match="defocus"):
        render(test, 1, defocus_px=9)


def test_a_camera_of_another_resolution_images_the_board_on_more_or_fewer_pixels():
    """`resolution=0.75`: a camera at three quarters of DeepPCB's 48 px/mm sees the same board on 480 x 480 px; the
    capture's matrix carries the board's pixels into the frame's (so the ground truth follows), and the copper is
    where it says. Blur and noise stay in the camera's pixels; a resolution outside what a line would use is refused."""
    test, _ = _pair()
    h, w = test.shape
    ys, xs = np.nonzero(cv2.erode((test < 128).astype(np.uint8), np.ones((9, 9), np.uint8)))
    pts = np.stack([xs, ys, np.ones_like(xs)]).astype(np.float64)  # the board's copper, 4 px in from its edges
    for r, size in ((0.75, 480), (1.5, 960)):
        frame, cap = render(test, 3, max_shift=3, max_rot_deg=0.5, resolution=r)
        same, cs = render(test, 3, max_shift=3, max_rot_deg=0.5)
        assert frame.shape == (size, size)
        assert math.sqrt(abs(np.linalg.det(cap.matrix[:, :2]))) == pytest.approx(r, abs=1e-6)
        assert (cap.copper, cap.laminate, cap.blur_sigma, cap.noise_sigma) == (
            cs.copper,
            cs.laminate,
            cs.blur_sigma,
            cs.noise_sigma,
        )
        fx, fy = np.rint(cap.matrix @ pts).astype(int)
        ok = (fx >= 0) & (fx < size) & (fy >= 0) & (fy < size)
        assert frame[fy[ok], fx[ok]].mean() > frame.mean() + 20  # copper (bright) where the matrix puts it
        # A labelled box lands where the board's copper change does: its mapped corners scale with the resolution.
        box = np.array([[100.0, 200.0, 140.0, 260.0]], np.float32)
        assert np.allclose(map_boxes(box, cap.matrix) / r, map_boxes(box, cs.matrix), atol=3.5 / r + 0.5)
    with pytest.raises(ValueError, match="resolution"):
        render(test, 1, resolution=3.0)


def test_a_board_etched_otherwise_moves_its_copper_edges_by_fractions_of_a_pixel():
    """`etch_px`: another physical board's traces a little wider (or narrower) than the golden board's, as etching
    varies from board to board. The edge moves by the distance asked, fractions of a pixel included; the second capture
    of the golden board is that same board and keeps its copper; the other boards of the pair take the etch."""
    from inspector.evaluation.camera_domain import etched

    trace = np.zeros((20, 20), bool)
    trace[5:15, 8:12] = True  # a trace 4 px wide
    for etch, width in ((0.0, 4.0), (0.5, 5.0), (1.0, 6.0), (-0.5, 3.0)):
        assert etched(trace, etch)[10].sum() == pytest.approx(width, abs=1e-6)
    test, temp = _pair()
    same = capture_pair(test, temp, 4, max_shift=3, max_rot_deg=0.5, other=True)
    wide = capture_pair(test, temp, 4, max_shift=3, max_rot_deg=0.5, other=True, etch_px=1.0)
    assert np.array_equal(same["golden"][0], wide["golden"][0]) and np.array_equal(same["good"][0], wide["good"][0])
    for name in ("board", "other"):
        # Same draws, more copper (bright): the frame is brighter on the whole, never darker.
        assert wide[name][0].astype(float).mean() > same[name][0].astype(float).mean() + 1.0
    with pytest.raises(ValueError, match="etch"):
        render(test, 1, etch_px=5.0)


def test_a_camera_that_shows_copper_narrower_narrows_it_on_every_board_the_golden_one_too():
    """`width_px`: how wide copper looks is the camera's as much as the board's (the trace's top under coaxial light):
    every capture, golden included, shows its edges that far in or out, on top of a board's own `etch_px`; 0 renders
    exactly as before."""
    test, temp = _pair()
    same = capture_pair(test, temp, 4, max_shift=3, max_rot_deg=0.5, other=True)
    zero = capture_pair(test, temp, 4, max_shift=3, max_rot_deg=0.5, other=True, width_px=0.0)
    narrow = capture_pair(test, temp, 4, max_shift=3, max_rot_deg=0.5, other=True, width_px=-0.75)
    both = capture_pair(test, temp, 4, max_shift=3, max_rot_deg=0.5, other=True, width_px=-0.75, etch_px=0.75)
    for name in ("golden", "board", "good", "other"):
        assert np.array_equal(same[name][0], zero[name][0])
        # Same draws, less copper (bright): the frame is darker on the whole, never brighter.
        assert narrow[name][0].astype(float).mean() < same[name][0].astype(float).mean() - 1.0, name
        assert np.array_equal(narrow[name][1].matrix, same[name][1].matrix)
    # a board etched 0.75 px wider by a camera that shows 0.75 px narrower looks as DeepPCB drew it
    for name in ("board", "other"):
        assert np.array_equal(both[name][0], same[name][0])
    assert np.array_equal(both["golden"][0], narrow["golden"][0])
