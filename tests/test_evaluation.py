import numpy as np

from inspector.evaluation.coco import coco_map
from inspector.evaluation.deeppcb_protocol import deeppcb_metrics, iou_matrix


def test_iou():
    a = np.array([[0, 0, 10, 10]], np.float32)
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], np.float32)
    assert np.allclose(iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_perfect_and_shifted_detections():
    gts = [(np.array([[10, 10, 50, 50], [100, 100, 140, 140]], np.float32), np.array([0, 3]))]
    perfect = [(gts[0][0], np.array([0.9, 0.8]), np.array([0, 3]))]
    m = deeppcb_metrics(gts, perfect)
    assert m.ap == 1.0 and m.fscore == 1.0
    c = coco_map(gts, perfect, ("a", "b", "c", "d", "e", "f"))
    assert abs(c.map50 - 1.0) < 1e-6
    # wrong class on one box: DeepPCB requires the class; one TP of two GT
    wrong = [(gts[0][0], np.array([0.9, 0.8]), np.array([0, 2]))]
    m = deeppcb_metrics(gts, wrong)
    assert m.recall == 0.5 and m.precision == 0.5
    # a box shifted to IoU ~0.4 still counts for DeepPCB (> 0.33) but not for COCO@0.5
    shifted = [(np.array([[27, 10, 67, 50]], np.float32), np.array([0.9]), np.array([0]))]
    gts1 = [(gts[0][0][:1], np.array([0]))]
    assert deeppcb_metrics(gts1, shifted).ap == 1.0
    assert coco_map(gts1, shifted, ("a", "b", "c", "d", "e", "f")).map50 == 0.0
