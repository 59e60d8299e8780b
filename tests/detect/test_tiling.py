"""Tiling: full coverage with the requested overlap, exact ownership, class-wise NMS, and a real
defect placed across a tile seam that must come back as one box in frame coordinates."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.detect.litert import LiteRTDetector
from inspector.detect.tiling import box_iou, cut, keep_owned, nms_classwise, pad_from_reference, plan_tiles
from inspector.synth import make_board

from .conftest import M320, M640


@pytest.mark.parametrize("h, w, tile, overlap", [(640, 640, 320, 64), (1586, 3034, 640, 180), (500, 700, 640, 180)])
def test_tiles_cover_the_frame_with_overlap_and_own_each_pixel_once(h, w, tile, overlap):
    tiles = plan_tiles(h, w, tile, tile, overlap)
    covered = np.zeros((h, w), np.int32)
    owned = np.zeros((h, w), np.int32)
    ys, xs = np.mgrid[0:h, 0:w]
    for t in tiles:
        covered[t.y0 : t.y0 + tile, t.x0 : t.x0 + tile] += 1
        x1, y1, x2, y2 = t.own
        owned += (xs + 0.5 >= x1) & (xs + 0.5 < x2) & (ys + 0.5 >= y1) & (ys + 0.5 < y2)
        # what a tile owns lies at least overlap/2 inside it, unless it is the frame edge
        if np.isfinite(x1):
            assert x1 - t.x0 >= overlap / 2
        if np.isfinite(x2):
            assert t.x0 + tile - x2 >= overlap / 2
    assert covered.min() >= 1 and (owned == 1).all()
    xs0 = sorted({t.x0 for t in tiles})
    assert all(b - a <= tile - overlap for a, b in zip(xs0, xs0[1:]))
    assert xs0[-1] + tile >= w or len(xs0) == 1


def test_small_frame_is_letterboxed_not_resized():
    img = np.arange(200 * 300, dtype=np.uint32).reshape(200, 300).astype(np.uint8)
    (t,) = plan_tiles(200, 300, 320, 320, 64)
    out = cut(img, t, 320, 320)
    assert out.shape == (320, 320)
    assert (out[:200, :300] == img).all()  # native scale kept
    assert (out[250, :300] == img[199]).all() and (out[:200, 310] == img[:, 299]).all()  # border replicated


def test_board_and_reference_are_padded_alike_where_they_differ_at_the_edge():
    """A board whose last column and row differ from its reference's (a dark scanner column, a board a pixel off)
    is padded with the reference's border: the difference stays one pixel wide instead of filling the padding."""
    ref = np.full((200, 300), 255, np.uint8)
    ref[50:60, :] = 0  # a trace running off the right edge
    board = ref.copy()
    board[:, -1] = 0  # the dark last column
    board[-1, :] = 0
    b, r = pad_from_reference(board, ref, 320, 320)
    assert b.shape == r.shape == (320, 320)
    assert (b[:200, :300] == board).all() and (r[:200, :300] == ref).all()  # the frames themselves untouched
    assert (b[200:, :] == r[200:, :]).all() and (b[:, 300:] == r[:, 300:]).all()  # one padding for both
    assert (r[55, 300:] == 0).all() and (r[100, 300:] == 255).all()  # the reference's own border, replicated
    assert int((b != r).sum()) == int((board != ref).sum())  # no difference added
    same_b, same_r = pad_from_reference(board, ref, 200, 300)
    assert same_b is board and same_r is ref  # large enough: nothing to pad


def test_owned_filter_and_classwise_nms():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [1, 1, 11, 11], [50, 50, 60, 60]], np.float32)
    scores = np.array([0.9, 0.8, 0.7, 0.6], np.float32)
    classes = np.array([1, 1, 2, 1])
    keep = nms_classwise(boxes, scores, classes, 0.5)
    assert keep.tolist() == [0, 2, 3]  # same-class duplicate gone, other class kept
    assert box_iou(boxes[:1], boxes[1:2])[0, 0] == pytest.approx(81 / 119)
    (t0, t1) = plan_tiles(100, 180, 100, 100, 20)[:2]
    centres = np.array([[75, 0, 95, 10], [85, 0, 105, 10]], np.float32)  # centres x=85 and x=95; seam at 90
    assert keep_owned(centres, t0).tolist() == [True, False] and keep_owned(centres, t1).tolist() == [False, True]


def _seam_board():
    """A synthetic board shifted so its first defect straddles x=320, the edge of the first 320 px tile."""
    for seed in range(200):
        b = make_board(4000 + seed, defect_rate=1.0, max_defects=1)
        if b.defects and b.defects[0][4] in (2, 5):  # short or copper: large, unambiguous defects
            x1, y1, x2, y2, cls = b.defects[0]
            dx = 320 - (x1 + x2) // 2 + 6  # centre just right of the tile edge, box across it
            dy = 0
            img = np.roll(b.image, (dy, dx), axis=(0, 1))
            ref = np.roll(b.reference, (dy, dx), axis=(0, 1))
            box = np.array([[x1 + dx, y1 + dy, x2 + dx, y2 + dy]], np.float32)
            return img, ref, box, cls
    raise AssertionError("no suitable synthetic board")


def test_defect_across_a_tile_seam_is_found_once_with_the_whole_box():
    img, ref, truth, cls = _seam_board()
    tiled = LiteRTDetector(M320, delegate="cpu", tile_overlap=64)
    tiled.load()
    seams = [t.x0 + 320 for t in plan_tiles(640, 640, 320, 320, 64)]
    assert truth[0, 0] < 320 < truth[0, 2] and 320 in seams  # the defect really crosses a tile edge
    dets = tiled.detect(img, ref)
    assert tiled.last_timings["tiles"] == 9
    near = [d for d in dets if box_iou(np.array([d.box], np.float32), truth)[0, 0] > 0.1]
    assert len(near) == 1, f"expected one merged box at the seam, got {near}"
    assert box_iou(np.array([near[0].box], np.float32), truth)[0, 0] >= 0.5
    # the same weights on one 640 px tile (no seam at all) give the same box
    whole = LiteRTDetector(M640, delegate="cpu")
    whole.load()
    ref_dets = [d for d in whole.detect(img, ref) if box_iou(np.array([d.box], np.float32), truth)[0, 0] > 0.1]
    assert len(ref_dets) == 1
    assert box_iou(np.array([near[0].box], np.float32), np.array([ref_dets[0].box], np.float32))[0, 0] >= 0.8
    assert near[0].class_id == ref_dets[0].class_id
