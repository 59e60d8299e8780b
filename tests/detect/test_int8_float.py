"""INT8 against float: the same weights, exported once quantised and once in float32 by the
project's export tool, run on fixed synthetic inputs; quantisation must not change what is found."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.detect.litert import LiteRTDetector
from inspector.detect.tiling import box_iou
from inspector.synth import make_board

from .conftest import M320, M320_FLOAT


@pytest.fixture(scope="module")
def pair():
    q = LiteRTDetector(M320, delegate="cpu")
    f = LiteRTDetector(M320_FLOAT, delegate="cpu")
    q.load(), f.load()
    return q, f


def _raw(det: LiteRTDetector, x: np.ndarray):
    det._write_input(x)
    det._it.invoke()
    return det._outputs()


def test_heatmaps_agree_on_fixed_inputs(pair):
    q, f = pair
    errs = []
    for seed in range(6):
        b = make_board(70_000 + seed)
        x = np.dstack([b.image, b.reference, np.abs(b.image.astype(int) - b.reference).astype(np.uint8)])[:320, :320]
        (hq, rq), (hf, rf) = _raw(q, x), _raw(f, x)
        assert hq.shape == hf.shape == (80, 80, 6) and rq.shape == rf.shape == (80, 80, 4)
        errs.append(np.abs(hq - hf))
        # where float sees a defect, INT8 sees it in the same cell and class
        peaks = np.argwhere(hf > 0.5)
        for y, xx, c in peaks:
            assert hq[y, xx, c] > 0.3, f"seed {seed}: INT8 score {hq[y, xx, c]:.2f} where float has {hf[y, xx, c]:.2f}"
    err = np.concatenate([e.ravel() for e in errs])
    assert err.mean() < 0.01 and err.max() < 0.25, f"heatmap MAE {err.mean():.4f}, max {err.max():.3f}"


def test_detections_and_verdicts_agree(pair):
    q, f = pair
    matched = total = 0
    for seed in range(10):
        b = make_board(71_000 + seed)
        dq, df = q.detect(b.image, b.reference), f.detect(b.image, b.reference)
        assert bool(dq) == bool(df), f"seed {seed}: verdict differs (int8 {len(dq)}, float {len(df)} defects)"
        total += max(len(dq), len(df))
        if dq and df:
            iou = box_iou(np.array([d.box for d in df], np.float32), np.array([d.box for d in dq], np.float32))
            same = np.array([[a.class_id == c.class_id for c in dq] for a in df])
            matched += int(((iou >= 0.7) & same).any(axis=1).sum())
    assert total > 0, "the fixed inputs must contain defects the models find"
    assert matched / total >= 0.9, f"only {matched}/{total} detections agree"
