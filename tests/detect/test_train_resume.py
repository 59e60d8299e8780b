"""The trainer end to end on a tiny dataset in the DeepPCB layout: progress, validation, resume.

Needs TensorFlow (the `train` extra); slow because it builds and trains a real (tiny) graph.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest

from inspector.synth import make_board

pytestmark = pytest.mark.slow


def _layout(root: Path) -> None:
    """Two board groups (one to train on, one held out), jpg pairs and x1,y1,x2,y2,class notes."""
    lines = []
    for g, seeds in (("10000", range(900, 906)), ("20000", range(950, 952))):
        (root / f"group{g}" / g).mkdir(parents=True)
        (root / f"group{g}" / f"{g}_not").mkdir()
        for i, s in enumerate(seeds):
            b = make_board(s, defect_rate=1.0)
            stem = f"{g[:4]}{i:04d}"
            cv2.imwrite(str(root / f"group{g}" / g / f"{stem}_test.jpg"), b.image)
            cv2.imwrite(str(root / f"group{g}" / g / f"{stem}_temp.jpg"), b.reference)
            notes = "".join(f"{x1},{y1},{x2},{y2},{c}\n" for x1, y1, x2, y2, c in b.defects)
            (root / f"group{g}" / f"{g}_not" / f"{stem}.txt").write_text(notes)
            lines.append(f"group{g}/{g}/{stem}.jpg group{g}/{g}_not/{stem}.txt")
    (root / "trainval.txt").write_text("\n".join(lines) + "\n")


def test_training_prints_progress_validates_and_resumes(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    from inspector.training.train import main

    data, out = tmp_path / "data", tmp_path / "run"
    _layout(data)
    common = ["--data", str(data), "--out", str(out), "--batch", "2", "--crop", "64", "--alpha", "0.5",
              "--neck", "16", "--warmup", "1", "--ckpt-every", "2", "--log-every", "1", "--eval-every", "4", "--val-groups", "20000",
              "--scale-max", "1.5", "--scale-min", "0.8"]  # fmt: skip
    assert main([*common, "--steps", "2"]) == 0  # "interrupted" after step 2: a checkpoint is there
    first = capsys.readouterr().out
    assert "train 6 pairs, val 2 pairs" in first and "resumed" not in first
    assert main([*common, "--steps", "4"]) == 0
    second = capsys.readouterr().out
    assert "resumed from" in second and "at step 2" in second
    assert "VAL step 4: mAP@0.5" in second
    assert "step 4/4 epoch" in second and "loss" in second and "crops/s ETA" in second
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [2, 4]  # the end of each invocation is validated
    assert set(log[-1]["per_class"]) == {"open", "short", "mousebite", "spur", "copper", "pin-hole"}
    assert (out / "last.weights.h5").is_file() and (out / "best.weights.h5").is_file()
    with pytest.raises(SystemExit, match="neck=16, not 24"):
        main([*common[:-4], "--neck", "24", "--steps", "6"])  # another architecture in the same run folder
    with pytest.raises(SystemExit, match="--scale-min 1.2"):
        main([*common[:-2], "--scale-min", "1.2", "--steps", "6"])


def test_training_on_every_pair_holds_nothing_out_and_reports_no_validation(tmp_path, capsys):
    """The shipped model's run: the held-out group is trained on, so no figure of it is computed or selected on."""
    pytest.importorskip("tensorflow")
    from inspector.training.train import main

    data, out = tmp_path / "data", tmp_path / "run"
    _layout(data)
    common = ["--data", str(data), "--out", str(out), "--batch", "2", "--crop", "64", "--alpha", "0.5",
              "--neck", "16", "--warmup", "1", "--ckpt-every", "2", "--eval-every", "2", "--val-groups", "20000"]  # fmt: skip
    assert main([*common, "--steps", "2", "--train-on", "all"]) == 0
    printed = capsys.readouterr().out
    assert "train 8 pairs: all of them" in printed and "would be board groups 20000" in printed
    assert "VAL step" not in printed and "trained on all pairs, not validated" in printed
    assert (out / "last.weights.h5").is_file() and not (out / "best.weights.h5").exists()
    assert not (out / "log.jsonl").exists() or (out / "log.jsonl").read_text() == ""
    with pytest.raises(SystemExit, match="train_on=all, not split"):
        main([*common, "--steps", "4"])  # resuming that run as a split run would validate on trained boards


def test_weight_average_is_checkpointed_and_is_what_is_saved(tmp_path, capsys):
    pytest.importorskip("tensorflow")
    import numpy as np
    import tensorflow as tf

    from inspector.training.model import build_detector
    from inspector.training.train import main

    data, out = tmp_path / "data", tmp_path / "run"
    _layout(data)
    common = ["--data", str(data), "--out", str(out), "--batch", "2", "--crop", "64", "--alpha", "0.5",
              "--neck", "16", "--warmup", "1", "--ckpt-every", "2", "--eval-every", "4", "--val-groups", "20000",
              "--lr", "5e-2", "--ema", "0.5"]  # fmt: skip
    assert main([*common, "--steps", "2"]) == 0
    assert main([*common, "--steps", "4"]) == 0
    assert "resumed from" in capsys.readouterr().out
    live = build_detector(64, None, "small", 0.5, 16)
    tf.train.Checkpoint(model=live).restore(tf.train.latest_checkpoint(out / "ckpt")).expect_partial()
    saved = build_detector(64, None, "small", 0.5, 16)
    saved.load_weights(out / "last.weights.h5")
    # The optimizer's slots per trainable variable: momentum, velocity and the average; all in the checkpoint.
    slots = [
        n for n, _ in tf.train.list_variables(tf.train.latest_checkpoint(out / "ckpt")) if "optimizer/_variables" in n
    ]
    assert len(slots) == 3 * len(live.trainable_variables)
    differ = [
        not np.allclose(a.numpy(), b.numpy()) for a, b in zip(live.trainable_variables, saved.trainable_variables)
    ]
    assert sum(differ) > len(differ) // 2  # the saved weights are the average, not the last step's
    with pytest.raises(SystemExit, match="--ema 1.0"):
        main([*common[:-2], "--ema", "1.0", "--steps", "6"])
