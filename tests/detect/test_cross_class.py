"""One physical defect, one box, one class; RESULT_CODE by the recipe's severity order."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspector.detect.cross_class import suppress_cross_class

from .conftest import copy_package

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "models" / "pcb-defect-det.tflite"
DEEPPCB = ROOT.parent / "shared" / "datasets" / "deeppcb"


def test_weaker_class_on_the_same_spot_becomes_the_runner_up():
    boxes = np.array([[10, 10, 50, 40], [12, 11, 50, 42], [200, 200, 230, 220]], np.float32)
    scores = np.array([0.30, 0.53, 0.9], np.float32)
    classes = np.array([4, 2, 4], np.int64)  # spur, short, spur elsewhere
    b, s, c, rc, rs = suppress_cross_class(boxes, scores, classes, 0.6)
    assert c.tolist() == [2, 4]
    assert s.tolist() == pytest.approx([0.53, 0.9])
    assert rc.tolist() == [4, -1]
    assert rs[0] == pytest.approx(0.30)
    assert b[0].tolist() == [12, 11, 50, 42]


def test_same_class_and_separate_boxes_are_left_alone():
    boxes = np.array([[10, 10, 50, 40], [12, 11, 50, 42], [45, 10, 90, 40]], np.float32)
    scores = np.array([0.8, 0.5, 0.4], np.float32)
    classes = np.array([1, 1, 3], np.int64)  # two opens (NMS's business), a mousebite barely touching
    b, s, c, rc, _ = suppress_cross_class(boxes, scores, classes, 0.6)
    assert c.tolist() == [1, 1, 3]
    assert rc.tolist() == [-1, -1, -1]


def test_a_chain_keeps_only_the_best_of_each_spot():
    # A (0.9, open) covers B (0.6, short); B would cover C (0.5, spur) but C is far from A: C stays.
    boxes = np.array([[0, 0, 40, 40], [2, 2, 42, 42], [30, 30, 70, 70]], np.float32)
    scores = np.array([0.9, 0.6, 0.5], np.float32)
    classes = np.array([1, 2, 4], np.int64)
    _, _, c, rc, _ = suppress_cross_class(boxes, scores, classes, 0.6)
    assert c.tolist() == [1, 4]
    assert rc.tolist() == [2, -1]


def test_bad_cross_class_is_named(tmp_path):
    from inspector.detect.base import ModelError
    from inspector.detect.package import read_meta

    pkg = copy_package(SHIPPED, tmp_path / "pkg")
    meta = json.loads(pkg.with_suffix(".json").read_text())
    meta["cross_class"] = {"iou": 1.5}
    pkg.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="cross_class"):
        read_meta(pkg)


def _result(dets, severity=None):
    from inspector.domain import InspectionResult, Verdict

    kw = {"severity": severity} if severity is not None else {}
    return InspectionResult(
        frame_id=1, recipe="r", verdict=Verdict.REJECT, detections=dets, timings_ms={}, model_id="m", **kw
    )


def test_result_code_is_the_most_severe_class_not_the_highest_score():
    from inspector.config import Recipe
    from inspector.decision import RecipeRules
    from inspector.domain import Detection
    from plc.handshake import PlcResult

    dets = [
        Detection((0, 0, 9, 9), 5, 0.95),
        Detection((20, 20, 30, 30), 2, 0.40),
        Detection((40, 40, 50, 50), 1, 0.35),
    ]
    default = _result(dets)
    assert PlcResult.from_inspection(default, 1).result_code == 1  # open before short before copper
    assert PlcResult.from_inspection(default, 1).max_score == 950  # MAX_SCORE is still the highest score
    rules = RecipeRules(Recipe(severity=["copper", "short", "open", "mousebite", "spur", "pin-hole"]))
    custom = _result(dets, rules.severity)
    assert PlcResult.from_inspection(custom, 1).result_code == 5
    # Equal severity: the higher score wins.
    two_shorts = _result([Detection((0, 0, 9, 9), 2, 0.4), Detection((20, 20, 30, 30), 2, 0.7)])
    assert two_shorts.worst.score == pytest.approx(0.7)


@pytest.mark.parametrize(
    "order, named",
    [
        (["open", "short"], "missing"),
        (["open"] * 6, "repeated"),
        (["open", "short", "x", "spur", "copper", "pin-hole"], "unknown"),
    ],
)
def test_bad_severity_order_is_refused_naming_the_key(order, named):
    from pydantic import ValidationError

    from inspector.config import Recipe

    with pytest.raises(ValidationError, match=f"(?s)severity.*{named}"):
        Recipe(severity=order)


def _cross_pairs(dets):
    """Pairs of boxes of different classes on one spot (IoU >= 0.6)."""
    from inspector.detect.tiling import box_iou

    if len(dets) < 2:
        return 0
    b = np.array([d.box for d in dets], np.float32)
    c = np.array([d.class_id for d in dets])
    iou = box_iou(b, b)
    return int(sum(1 for i in range(len(dets)) for j in range(i + 1, len(dets)) if c[i] != c[j] and iou[i, j] >= 0.6))


@pytest.mark.skipif(not DEEPPCB.is_dir(), reason="DeepPCB is only on the development machine (../shared)")
def test_real_boards_with_two_classes_on_one_defect_come_back_as_one_box(tmp_path):
    """Held-out DeepPCB boards where the network answers two classes on one defect: the shipped
    package (cross_class on) gives one box there, with the loser as runner-up, and no labelled
    defect loses its box of the right class where it had the better score.

    The boards are every 6th held-out board, not a list found with one model: which boards carry such
    pairs changes with every retraining (four of the six boards 1.6.0 had carry none with 1.9.0),
    the behaviour must not."""
    from inspector.config import DetectorSection
    from inspector.datasets.deeppcb import load_list, read_gray
    from inspector.detect.factory import create_detector

    meta = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert meta.get("cross_class"), "the shipped sidecar does not suppress across classes"
    plain = copy_package(SHIPPED, tmp_path / "plain")
    plain.with_suffix(".json").write_text(json.dumps({k: v for k, v in meta.items() if k != "cross_class"}))

    def loaded(model):
        det = create_detector(DetectorSection(model=model, threads=2, delegate="cpu"))
        det.load()
        return det

    before, after = loaded(plain), loaded(SHIPPED)
    held_out = [p for p in load_list(DEEPPCB) if p.group in ("44000", "92000")][::6]
    assert len(held_out) >= 25, "the held-out groups are not in the dataset"
    runner_ups, boards = 0, []
    for p in held_out:
        img, ref = read_gray(p.test_path), read_gray(p.template_path)
        a, b = before.detect(img, ref), after.detect(img, ref)
        if _cross_pairs(a) == 0:
            assert _cross_pairs(b) == 0 and len(b) == len(a), f"{p.id}: suppression touched a board without pairs"
            continue
        boards.append(p.id)
        assert _cross_pairs(b) == 0, f"{p.id}: two classes still on one defect"
        assert len(b) < len(a)
        runner_ups += sum(1 for d in b if d.runner_up is not None)
        # Never a PASS from suppression: the best box of each spot is kept.
        assert max(d.score for d in b) == pytest.approx(max(d.score for d in a))
    # 1.9.0 answers two classes on one defect on 36 of the 161 held-out boards without suppression
    assert len(boards) >= 3, f"only {boards} of the sampled boards carry a cross-class pair: nothing was tested"
    assert runner_ups >= len(boards)


def test_a_weak_box_never_removes_a_strong_one():
    """Below `min_score` a box is not suppressed; it must not suppress a better box either."""
    boxes = np.array([[0, 0, 40, 40], [1, 1, 41, 41]], np.float32)
    scores = np.array([0.69, 0.16], np.float32)
    classes = np.array([4, 2], np.int64)
    _, s, c, rc, _ = suppress_cross_class(boxes, scores, classes, 0.5, min_score=0.3)
    assert c.tolist() == [4, 2] and rc.tolist() == [-1, -1]
    _, s, c, rc, _ = suppress_cross_class(boxes, scores, classes, 0.5, min_score=0.1)
    assert c.tolist() == [4] and rc.tolist() == [2]
