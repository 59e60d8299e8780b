"""`centernet.decode`: one box per defect, even when INT8 scores tie on a plateau."""

from __future__ import annotations

import numpy as np

from inspector.detect.centernet import decode


def _maps(h: int = 20, w: int = 20, c: int = 2):
    scores = np.zeros((h, w, c), np.float32)
    reg = np.zeros((h, w, 4), np.float32)
    reg[..., :2] = np.log(3.0)  # 12 px boxes at stride 4
    return scores, reg


def test_plateau_of_equal_scores_gives_one_box():
    scores, reg = _maps()
    # A quantised peak: a 2x2 block of equal scores, like INT8 output in steps of 1/256.
    scores[5:7, 8:10, 0] = 0.8
    scores[4:8, 7:11, 0] = np.maximum(scores[4:8, 7:11, 0], 0.4)
    boxes, sc, cls = decode(scores, reg, 4, floor=0.3, nms_iou=1.0)
    assert len(sc) == 1, sc
    assert cls[0] == 0 and sc[0] == np.float32(0.8)
    # The kept cell is the plateau's first in raster order.
    np.testing.assert_allclose(boxes[0], [8 * 4 - 6, 5 * 4 - 6, 8 * 4 + 6, 5 * 4 + 6])


def test_diagonal_and_vertical_plateaus_give_one_box():
    for cells in ([(3, 3), (4, 4)], [(3, 6), (4, 5)], [(10, 10), (11, 10), (12, 10)]):
        scores, reg = _maps()
        for y, x in cells:
            scores[y, x, 1] = 0.6
        _, sc, cls = decode(scores, reg, 4, floor=0.3, nms_iou=1.0)
        assert len(sc) == 1, (cells, sc)
        assert cls[0] == 1


def test_separate_defects_all_survive():
    scores, reg = _maps()
    scores[3, 3, 0] = 0.9
    scores[15, 15, 0] = 0.5  # far away: its own defect
    scores[3, 3, 1] = 0.7  # same place, other class: class-wise suppression keeps it
    boxes, sc, cls = decode(scores, reg, 4, floor=0.3)
    assert sorted(zip(cls.tolist(), [round(float(s), 2) for s in sc])) == [(0, 0.5), (0, 0.9), (1, 0.7)]


def test_nms_drops_a_near_duplicate_of_the_same_class():
    scores, reg = _maps()
    # Two peaks two cells apart on one defect (a ridge with a dip): both pass the 3x3 peak search.
    scores[5, 5, 0] = 0.9
    scores[5, 6, 0] = 0.5
    scores[5, 7, 0] = 0.8
    reg[5, 5, :2] = reg[5, 7, :2] = np.log(6.0)  # 24 px boxes 8 px apart: IoU 0.5
    _, sc_all, _ = decode(scores, reg, 4, floor=0.3, nms_iou=1.0)
    _, sc, _ = decode(scores, reg, 4, floor=0.3, nms_iou=0.3)
    assert len(sc_all) == 2
    assert sc.tolist() == [np.float32(0.9)]
