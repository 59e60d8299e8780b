"""Mirror test-time augmentation (`tta: hflip` in the sidecar): one more invoke, outputs averaged."""

from __future__ import annotations

import json

import numpy as np
import pytest

from inspector.detect.base import ModelError
from inspector.detect.centernet import decode
from inspector.detect.litert import LiteRTDetector
from inspector.detect.package import sha256_file
from inspector.synth import make_board

from .conftest import M640, copy_package, crop_around_first_defect, defective_boards


def _with_tta(tmp_path, value: str):
    model = copy_package(M640, tmp_path / "pkg")
    side = model.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta["tta"] = value
    meta["sha256"] = sha256_file(model)
    side.write_text(json.dumps(meta))
    return model


@pytest.fixture
def pair(tmp_path):
    plain = LiteRTDetector(M640, delegate="cpu")
    plain.load()
    mirrored = LiteRTDetector(_with_tta(tmp_path, "hflip"), delegate="cpu")
    mirrored.load()
    return plain, mirrored


def _boards(n=8):
    return defective_boards(n, 7000)


def test_hflip_decodes_the_mean_of_the_pass_and_the_unmirrored_mirror_pass(pair):
    """Computed here independently: run the plain detector on the board and on its mirror image."""
    plain, tta = pair
    checked = 0
    for b in _boards():
        plain.detect(b.image, b.reference)
        hm0, rg0 = (np.array(a, np.float32) for a in plain._outputs())
        plain.detect(np.ascontiguousarray(b.image[:, ::-1]), np.ascontiguousarray(b.reference[:, ::-1]))
        hm1, rg1 = (np.array(a, np.float32) for a in plain._outputs())
        rg1 = rg1[:, ::-1].copy()
        rg1[..., 2] = 1.0 - rg1[..., 2]
        want = decode((hm0 + hm1[:, ::-1]) / 2, (rg0 + rg1) / 2, 4, floor=0.3, nms_iou=plain.info.nms_iou)
        got = tta.detect(b.image, b.reference, thresholds={k: 0.3 for k in range(1, 7)})
        assert tta.last_timings["invoke"] > 0
        assert len(got) == len(want[1])
        for d, box, score in zip(got, want[0], want[1]):
            np.testing.assert_allclose(d.box, np.clip(box, 0, 640), atol=1e-3)
            assert d.score == pytest.approx(float(score), abs=1e-6)
        checked += len(got)
    assert checked > 0


def test_hflip_result_is_mirror_symmetric(pair):
    """Averaging a pass with its mirror makes the answer for a mirrored board the mirror of the answer."""
    _, tta = pair
    for b in _boards(4):
        a = tta.detect(b.image, b.reference)
        m = tta.detect(np.ascontiguousarray(b.image[:, ::-1]), np.ascontiguousarray(b.reference[:, ::-1]))
        assert len(a) == len(m) > 0
        flipped = sorted((640 - d.box[2], d.box[1], d.class_id) for d in m)
        for (x1, y1, c), (fx1, fy1, fc) in zip(sorted((d.box[0], d.box[1], d.class_id) for d in a), flipped):
            # Exact, or one cell (4 px) apart where a plateau's raster-order tie-break picks the other end.
            assert c == fc and min(abs(x1 - fx1), abs(abs(x1 - fx1) - 4.0)) <= 1e-2 and abs(y1 - fy1) <= 1e-2


def test_clean_board_stays_empty_with_hflip(pair):
    _, tta = pair
    b = make_board(7300, defect_rate=0.0)
    assert tta.detect(b.image, b.reference) == []
    assert tta.detect(b.reference, b.reference) == []


def test_unknown_tta_is_named(tmp_path):
    with pytest.raises(ModelError, match="tta"):
        LiteRTDetector(_with_tta(tmp_path, "rot90"), delegate="cpu").load()


def test_hflip_on_a_letterboxed_small_frame_keeps_boxes_on_the_board(pair):
    """A small frame sits in the corner of the input; mirrored, it sits in the other corner."""
    from inspector.detect.tiling import box_iou

    _, tta = pair
    img, ref, truth = crop_around_first_defect(_boards(1)[0], 300, 200)
    dets = tta.detect(img, ref)
    assert tta.last_timings["tiles"] == 1
    assert dets and all(0 <= d.box[0] < d.box[2] <= 300 and 0 <= d.box[1] < d.box[3] <= 200 for d in dets)
    assert box_iou(truth, np.array([d.box for d in dets], np.float32)).max() >= 0.3
