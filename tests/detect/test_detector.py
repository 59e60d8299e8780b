"""The LiteRT detector's contract: frame coordinates, letterboxing, thresholds, reference, timings."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.detect.base import ModelError
from inspector.detect.litert import LiteRTDetector
from inspector.detect.tiling import box_iou
from inspector.synth import make_board

from .conftest import M320, M640, crop_around_first_defect


@pytest.fixture(scope="module")
def det320():
    d = LiteRTDetector(M320, delegate="cpu")
    d.load()
    return d


def _defective(seed0=5000):
    for s in range(seed0, seed0 + 100):
        b = make_board(s, defect_rate=1.0)
        if b.defects:
            return b
    raise AssertionError


def test_finds_synthetic_defects_in_frame_coordinates(det320):
    b = _defective()
    dets = det320.detect(b.image, b.reference)
    truth = np.array([d[:4] for d in b.defects], np.float32)
    assert dets, "the fixture model must find the defects of a synthetic board"
    iou = box_iou(truth, np.array([d.box for d in dets], np.float32))
    assert (iou.max(axis=1) >= 0.3).mean() >= 0.75, f"truth {b.defects} vs {[d.to_json() for d in dets]}"
    assert all(0 <= d.box[0] < d.box[2] <= 640 and 0 <= d.box[1] < d.box[3] <= 640 for d in dets)
    assert (
        set(det320.last_timings) == {"prepare", "pre", "invoke", "post", "tiles"} and det320.last_timings["tiles"] == 9
    )


def test_clean_board_gives_nothing(det320):
    b = make_board(5100, defect_rate=0.0)
    assert det320.detect(b.image, b.reference) == []
    assert det320.detect(b.reference, b.reference) == []


def test_small_frame_is_letterboxed_and_boxes_stay_inside(det320):
    img, ref, truth = crop_around_first_defect(_defective(5200), 240, 180)
    dets = det320.detect(img, ref)
    assert det320.last_timings["tiles"] == 1
    assert dets and all(0 <= d.box[0] and d.box[2] <= img.shape[1] and d.box[3] <= img.shape[0] for d in dets)
    assert box_iou(truth, np.array([d.box for d in dets], np.float32)).max() >= 0.3


def test_per_class_thresholds_filter_and_fall_back_to_defaults(det320):
    b = _defective()
    all_dets = det320.detect(b.image, b.reference)
    cls = all_dets[0].class_id
    none_of_cls = det320.detect(b.image, b.reference, {cls: 1.0})
    assert all(d.class_id != cls for d in none_of_cls)
    assert len(none_of_cls) == sum(d.class_id != cls for d in all_dets)  # other classes keep their defaults
    low = det320.detect(b.image, b.reference, {c: 0.06 for c in range(1, 7)})
    assert len(low) >= len(all_dets)


def test_reference_is_required_and_checked(det320):
    b = make_board(1)
    with pytest.raises(ModelError, match="needs the golden reference"):
        det320.detect(b.image)
    with pytest.raises(ValueError, match="differ in size"):
        det320.detect(b.image, b.reference[:100])
    with pytest.raises(ValueError, match="pixel type float32 is not supported"):
        det320.detect(b.image.astype(np.float32), b.reference)


def test_detect_before_load_is_a_model_error():
    with pytest.raises(ModelError, match="not loaded"):
        LiteRTDetector(M640).detect(np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))


@pytest.mark.parametrize("floor", [0.05, 0.3])
def test_restricted_decode_equals_full_decode(floor):
    """The detector decodes only the classes and region that can hold a peak; it must not change a box."""
    from inspector.detect.centernet import decode

    d = LiteRTDetector(M640, delegate="cpu")
    d.load()
    checked = 0
    for seed in range(12):
        b = make_board(6000 + seed)
        d.detect(b.image, b.reference)
        fast = d._decode(floor)
        full = decode(*d._outputs(), 4, floor=floor)
        assert len(fast[1]) == len(full[1])
        for a, e in zip(fast, full):
            np.testing.assert_allclose(a, e, rtol=1e-6)
        checked += len(full[1])
    assert checked > 0
