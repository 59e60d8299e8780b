"""The export tool end to end: Keras weights -> INT8 package (+ float reference) the runtime verifies.

Needs TensorFlow (the `train` extra); slow because it converts and calibrates a real graph.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

pytestmark = pytest.mark.slow


def test_export_writes_a_package_the_runtime_accepts(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from inspector.detect.litert import LiteRTDetector
    from inspector.synth import make_board
    from inspector.training.export import main
    from inspector.training.model import build_detector

    weights = tmp_path / "run" / "best.weights.h5"
    weights.parent.mkdir()
    # With the stride-4 detail branch, as the shipped model has it; the export reads it from config.json.
    build_detector(64, None, "small", 0.5, 16, detail=8).save_weights(weights)
    (weights.parent / "config.json").write_text(
        json.dumps({"backbone": "small", "alpha": 0.5, "neck": 16, "detail": 8})
    )
    out = tmp_path / "m" / "tiny.tflite"
    rc = main(
        ["--weights", str(weights), "--out", str(out), "--size", "96", "--data", "synth", "--calib", "2",
         "--check", "2", "--recalibrate-bn", "2", "--max-defect-px", "24", "--name", "tiny", "--version", "0.1.0", "--tta", "hflip",
         "--multiscale", "0.8", "--label-margin", "9",
         "--float-out", str(tmp_path / "m" / "tiny-float.tflite")]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert rc == 0 and "INT8 vs float on" in printed and "BatchNorm statistics re-estimated" in printed
    meta = json.loads(out.with_suffix(".json").read_text())
    assert meta["input"]["shape"] == [1, 96, 96, 3] and meta["input"]["dtype"] == "uint8"
    assert meta["input"]["quantisation"]["zero_point"] == 0 and meta["needs_reference"] is True
    assert meta["output"] == {
        "head": "centernet",
        "strides": [4],
        "heatmap_activation": "sigmoid",
        "regression": "log_wh_offset",
    } or meta["output"]["strides"] == [4]
    assert "int8_vs_float" in meta["metrics"] and meta["training"]["architecture"]["alpha"] == 0.5
    assert meta["training"]["architecture"]["detail_branch"] == 8
    assert meta["tta"] == "hflip"  # the station mirrors each tile too (tiled path below)
    assert meta["multiscale"] == {"scales": [0.8], "min_box_px": 50.0, "label_margin_px": 9.0}

    b = make_board(1)
    for path, dtype in ((out, np.uint8), (tmp_path / "m" / "tiny-float.tflite", np.float32)):
        det = LiteRTDetector(path, delegate="cpu")
        info = det.load()
        assert info.input_size == (96, 96) and det._in_dtype == dtype
        assert info.model_id.startswith("tiny")
        det.detect(b.image, b.reference)  # a 640 px board through 96 px tiles
        # 9 x 9 tiles of 96 px with >= 24 px overlap, and 7 x 7 over the board reduced to 512 px
        assert det.last_timings["tiles"] == 81 + 49
    capped = LiteRTDetector(out, delegate="cpu", tile_overlap=200)
    capped.load()
    capped.detect(b.image, b.reference)  # an overlap beyond half a tile is capped, not 500 x 500 tiles
    assert capped.last_timings["tiles"] == 13 * 13 + 10 * 10
