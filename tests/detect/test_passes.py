"""`[detector] passes`: a station runs fewer of the package's passes where its CPU cannot afford them all.

Measured cost on the held-out boards: docs/performance.md, *Fewer passes*.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import pytest
from pydantic import ValidationError

from inspector.config import StationConfig
from inspector.detect.base import ModelError
from inspector.detect.factory import create_detector
from inspector.detect.litert import LiteRTDetector
from inspector.detect.package import invokes_per_tile, read_meta, with_passes

from .conftest import package_with

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pcb-defect-det.tflite"
DEEPPCB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "deeppcb"
needs_deeppcb = pytest.mark.skipif(not DEEPPCB.is_dir(), reason="DeepPCB is only on the development machine")


def _pair(stem: str):
    base = DEEPPCB / "group20085" / "20085" / stem
    return cv2.imread(f"{base}_test.jpg", cv2.IMREAD_GRAYSCALE), cv2.imread(f"{base}_temp.jpg", cv2.IMREAD_GRAYSCALE)


def _counted(det: LiteRTDetector) -> dict:
    """Counts every real invoke of the detector's graphs, by input width (they still run)."""
    counts: dict = {}
    for rt in (det._rt, *det._sized.values()):
        if rt is None:
            continue
        width, invoke = rt.inputs[0].shape[2], rt.invoke

        def counted(invoke=invoke, width=width) -> None:
            counts[width] = counts.get(width, 0) + 1
            invoke()

        rt.invoke = counted
    return counts


def test_the_shipped_package_declares_four_invokes_and_each_setting_keeps_fewer():
    meta = read_meta(SHIPPED)
    assert invokes_per_tile(meta) == 4
    assert [invokes_per_tile(with_passes(meta, p)) for p in ("package", "mirror", "single")] == [4, 2, 1]
    assert with_passes(meta, "package") is meta  # nothing changed, nothing copied
    with pytest.raises(ModelError, match="detector.passes 'double': expected one of package, mirror, single"):
        with_passes(meta, "double")


def test_the_setting_is_refused_in_the_config_unless_it_is_one_of_the_three():
    with pytest.raises(ValidationError, match="passes"):
        StationConfig.model_validate({"detector": {"type": "litert", "passes": "half"}})
    assert StationConfig().detector.passes == "package"


@needs_deeppcb
@pytest.mark.parametrize(
    ("passes", "want"), [("package", {640: 2, 512: 2}), ("mirror", {640: 2}), ("single", {640: 1})]
)
def test_a_board_costs_the_invokes_its_setting_keeps(passes, want):
    cfg = StationConfig.model_validate({"detector": {"type": "litert", "delegate": "cpu", "passes": passes}})
    det = create_detector(cfg.detector)
    det.load()
    det.warm_up(runs=1)
    counts = _counted(det)
    assert det.detect(*_pair("20085000"))  # a defective board: found in every setting
    assert counts == want
    det.close()


@needs_deeppcb
def test_one_pass_is_to_the_bit_what_a_package_declaring_one_pass_gives(tmp_path):
    """The setting only leaves passes out: its boxes are a one-pass package's, on real boards."""
    cfg = StationConfig.model_validate({"detector": {"type": "litert", "delegate": "cpu", "passes": "single"}})
    single = create_detector(cfg.detector)
    single.load()
    one = LiteRTDetector(package_with(SHIPPED, tmp_path / "one", tta="none", multiscale=None), delegate="cpu")
    one.load()
    assert single.meta.tta == one.meta.tta == "none" and single.meta.multiscale is one.meta.multiscale is None
    found = 0
    for stem in ("20085000", "20085040", "20085080"):
        a, b = (det.detect(*_pair(stem)) for det in (single, one))
        assert [(d.box, d.class_id, d.score) for d in a] == [(d.box, d.class_id, d.score) for d in b], stem
        found += len(a)
    assert found > 0
    single.close()
    one.close()
