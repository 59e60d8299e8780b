"""Union boxes for touching same-class pieces (`join_fragments` in the sidecar)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from inspector.detect.base import ModelError
from inspector.detect.fragments import join_touching
from inspector.detect.litert import LiteRTDetector

from .conftest import M640, copy_package, defective_boards, package_with, split_release

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pcb-defect-det.tflite"
DEEPPCB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "deeppcb"


def _join(boxes, scores, classes, **kw):
    kw.setdefault("min_score", 0.1)
    return join_touching(
        np.array(boxes, np.float32).reshape(-1, 4), np.array(scores, np.float32), np.array(classes, np.int64), **kw
    )


def test_two_touching_pieces_of_one_class_gain_their_union_scored_as_the_weaker():
    b, s, c = _join([[10, 10, 40, 30], [38, 12, 70, 35]], [0.7, 0.4], [3, 3])
    assert b.tolist()[:2] == [[10, 10, 40, 30], [38, 12, 70, 35]]  # the pieces stay, in their order
    assert b.tolist()[2] == [10, 10, 70, 35]
    assert s[2] == pytest.approx(0.4) and c[2] == 3 and len(s) == 3


def test_boxes_sharing_only_an_edge_touch():
    b, _, _ = _join([[0, 0, 20, 20], [20, 5, 40, 25]], [0.5, 0.5], [1, 1])
    assert b.tolist()[2] == [0, 0, 40, 25]


@pytest.mark.parametrize(
    ("boxes", "scores", "classes", "kw"),
    [
        ([[0, 0, 20, 20], [25, 0, 45, 20]], [0.5, 0.5], [1, 1], {}),  # 5 px apart
        ([[0, 0, 20, 20], [15, 5, 40, 25]], [0.5, 0.5], [1, 2], {}),  # overlap, different classes
        ([[0, 0, 20, 20], [15, 5, 40, 25]], [0.5, 0.08], [1, 1], {}),  # one piece under min_score
        ([[0, 0, 40, 40], [10, 10, 20, 20]], [0.5, 0.5], [1, 1], {}),  # one inside the other: union == outer
        ([[0, 0, 40, 40], [2, 2, 41, 41]], [0.5, 0.5], [1, 1], {}),  # nearly the same box (IoU 0.9 >= 0.8)
        ([[0, 0, 20, 20]], [0.9], [1], {}),  # nothing to pair
    ],
)
def test_no_union_where_none_belongs(boxes, scores, classes, kw):
    b, s, c = _join(boxes, scores, classes, **kw)
    assert len(b) == len(s) == len(c) == len(scores)


def test_gap_allowance_and_every_pair_once():
    boxes = [[0, 0, 20, 20], [24, 0, 44, 20], [48, 0, 68, 20]]  # a chain with 4 px gaps
    assert len(_join(boxes, [0.9, 0.8, 0.7], [2, 2, 2])[1]) == 3
    b, s, _ = _join(boxes, [0.9, 0.8, 0.7], [2, 2, 2], max_gap_px=4)
    assert sorted(map(tuple, b[3:].tolist())) == [(0, 0, 44, 20), (24, 0, 68, 20)]  # neighbours only
    assert sorted(s[3:].tolist()) == pytest.approx([0.7, 0.8])


def _with(tmp_path, name: str, **changes) -> Path:
    return package_with(M640, tmp_path / name, **changes)


def _loaded(path: Path) -> LiteRTDetector:
    det = LiteRTDetector(path, delegate="cpu")
    det.load()
    return det


def test_detector_appends_the_unions_of_its_own_answer(tmp_path):
    """The station's answer with `join_fragments` is the plain answer plus `join_touching` of it."""
    plain = _loaded(M640)
    joined = _loaded(_with(tmp_path, "jf", join_fragments={"min_score": 0.05, "max_gap_px": 8}))
    thr = {k: 0.05 for k in range(1, 7)}
    unions = 0
    for b in defective_boards(12, 8100):
        base = plain.detect(b.image, b.reference, thresholds=thr)
        got = joined.detect(b.image, b.reference, thresholds=thr)
        assert got[: len(base)] == base
        want = _join(
            [d.box for d in base], [d.score for d in base], [d.class_id for d in base], min_score=0.05, max_gap_px=8
        )
        extra = got[len(base) :]
        np.testing.assert_allclose(np.array([d.box for d in extra]).reshape(-1, 4), want[0][len(base) :], rtol=1e-6)
        np.testing.assert_allclose([d.score for d in extra], want[1][len(base) :], rtol=1e-6)
        assert [d.class_id for d in extra] == want[2][len(base) :].tolist()
        unions += len(extra)
    assert unions > 0, "no board gave touching pieces; the comparison above checked nothing new"


def test_clean_board_gains_nothing(tmp_path):
    joined = _loaded(_with(tmp_path, "jf", join_fragments={"min_score": 0.1}))
    b = defective_boards(1, 8100)[0]
    assert joined.detect(b.reference, b.reference) == []


@pytest.mark.parametrize(
    ("join", "named"),
    [
        ({"min_score": 0}, "join_fragments.min_score"),
        ({"min_score": 0.1, "max_gap_px": -1}, "join_fragments.max_gap_px"),
        ({"min_score": 0.1, "max_part_iou": 1.5}, "join_fragments.max_part_iou"),
        ({"min_score": 0.1, "gap": 3}, "join_fragments.gap"),
        ({}, "join_fragments.min_score"),
    ],
)
def test_bad_join_fragments_is_named(tmp_path, join, named):
    with pytest.raises(ModelError, match=named.replace(".", r"\.")):
        LiteRTDetector(_with(tmp_path, "bad", join_fragments=join), delegate="cpu").load()


def test_export_refuses_a_bad_join_fragments_before_loading_anything(tmp_path):
    pytest.importorskip("tensorflow")
    from inspector.training.export import main

    with pytest.raises(SystemExit, match="--join-fragments"):
        main(
            [
                "--weights",
                str(tmp_path / "none.weights.h5"),
                "--out",
                str(tmp_path / "m.tflite"),
                "--join-fragments",
                "2",
            ]
        )
    assert not (tmp_path / "m.tflite").exists()


@pytest.mark.skipif(not DEEPPCB.is_dir(), reason="DeepPCB is only on the development machine (../shared)")
def test_shipped_model_finds_more_whole_defects_with_unions(tmp_path):
    """What the unions are for: defects the model found in pieces, on held-out DeepPCB boards (group 44000).
    Measured with 1.9.2 (`split_release`): the shipped model learnt these boards. The shipped sidecar joins
    fragments as 1.9.2's does."""
    from inspector.datasets.deeppcb import load_list, read_gray
    from inspector.detect.tiling import box_iou

    assert json.loads(SHIPPED.with_suffix(".json").read_text()).get("join_fragments"), (
        "the shipped sidecar does not join fragments"
    )
    split = split_release(tmp_path / "split")
    meta = json.loads(split.with_suffix(".json").read_text())
    assert meta.get("join_fragments"), "1.9.2's sidecar does not join fragments"
    plain = copy_package(split, tmp_path / "plain")
    plain.with_suffix(".json").write_text(json.dumps({k: v for k, v in meta.items() if k != "join_fragments"}))
    one, both = _loaded(plain), _loaded(split)
    found = {"one": 0, "both": 0}
    for p in [p for p in load_list(DEEPPCB) if p.group == "44000"]:
        img, ref = read_gray(p.test_path), read_gray(p.template_path)
        for name, det in (("one", one), ("both", both)):
            dets = det.detect(img, ref)
            for k, cls in enumerate(p.classes):
                same = [d.box for d in dets if d.class_id == int(cls) + 1]
                if same and box_iou(p.boxes[k : k + 1].astype(np.float32), np.array(same, np.float32)).max() >= 0.5:
                    found[name] += 1
    assert found["both"] > found["one"], found
