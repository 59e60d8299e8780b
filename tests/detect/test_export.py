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


def test_weights_trained_on_every_pair_carry_their_recipes_figures_and_say_so(tmp_path, capsys):
    """Trained on every pair, a model has no held-out board: its package carries the split run's figures, named."""
    pytest.importorskip("tensorflow")
    import subprocess
    import sys
    from pathlib import Path

    from inspector.cli import main as cli
    from inspector.training.export import main
    from inspector.training.model import build_detector

    root = Path(__file__).resolve().parents[2]
    weights = tmp_path / "run" / "last.weights.h5"
    weights.parent.mkdir()
    build_detector(64, None, "small", 0.5, 16).save_weights(weights)
    (weights.parent / "config.json").write_text(
        json.dumps({"backbone": "small", "alpha": 0.5, "neck": 16, "train_on": "all"})
    )
    out = tmp_path / "m" / "tiny.tflite"
    common = ["--weights", str(weights), "--out", str(out), "--size", "96", "--data", "synth", "--calib", "2",
              "--check", "2", "--max-defect-px", "24", "--name", "tiny", "--version", "0.2.0"]  # fmt: skip
    with pytest.raises(SystemExit, match="no held-out figures of its own"):
        main(common)
    # The shipped model was itself trained on every pair: it measured nothing to borrow.
    with pytest.raises(SystemExit, match="trained on every pair too"):
        main([*common, "--recipe-metrics", str(root / "models" / "pcb-defect-det.json")])
    split = root / "models" / "releases" / "pcb-defect-det-1.9.2.json"  # the same recipe trained on the split
    assert main([*common, "--recipe-metrics", str(split)]) == 0
    meta = json.loads(out.with_suffix(".json").read_text())
    shipped = json.loads(split.read_text())
    assert meta["training"]["train_on"] == "all" and "none held out" in meta["training"]["split"]
    assert meta["metrics"]["val_int8"] == shipped["metrics"]["val_int8"]
    assert meta["metrics"]["measured_on"]["model"] == f"pcb-defect-det@{shipped['version']}"
    assert meta["metrics"]["measured_on"]["sha256"] == shipped["sha256"]
    assert "int8_vs_float" in meta["metrics"]  # its own quantisation check still runs

    # Its figures cannot be overwritten with figures on boards it trained on: refused before any board is inspected.
    import cv2

    from inspector.synth import make_board

    data = tmp_path / "data"
    (data / "group10000" / "10000").mkdir(parents=True)
    (data / "group10000" / "10000_not").mkdir()
    b = make_board(3, defect_rate=1.0)
    cv2.imwrite(str(data / "group10000" / "10000" / "10000000_test.jpg"), b.image)
    cv2.imwrite(str(data / "group10000" / "10000" / "10000000_temp.jpg"), b.reference)
    (data / "group10000" / "10000_not" / "10000000.txt").write_text("10,10,40,40,1\n")
    (data / "trainval.txt").write_text("group10000/10000/10000000.jpg group10000/10000_not/10000000.txt\n")
    capsys.readouterr()
    rc = cli(["evaluate", "--root", str(data), "--out", str(tmp_path / "e"), "--model", str(out), "--write-sidecar"])
    assert rc == 2 and "trained on every pair" in capsys.readouterr().err
    assert not (tmp_path / "e" / "metrics.json").exists()
    assert json.loads(out.with_suffix(".json").read_text())["metrics"] == meta["metrics"]

    card = subprocess.run(
        [sys.executable, str(root / "scripts" / "model_card_metrics.py"), str(out.with_suffix(".json"))],
        capture_output=True,
        text=True,
    )
    assert card.returncode == 0 and f"figures of `pcb-defect-det@{shipped['version']}`" in card.stdout
    assert "has no held-out figure of its own" in card.stdout
    assert f"| INT8 (pcb-defect-det@{shipped['version']}) |" in card.stdout and "INT8 (shipped)" not in card.stdout

    # Split-trained weights measure themselves: borrowed figures are refused.
    (weights.parent / "config.json").write_text(json.dumps({"backbone": "small", "alpha": 0.5, "neck": 16}))
    with pytest.raises(SystemExit, match="borrowed figures are for weights trained on every pair"):
        main([*common, "--recipe-metrics", str(split)])
