"""The reduced pass taught to the full-size pass: the teacher's soft targets, the loss, and the trainer with them.

Needs TensorFlow (the `train` extra); builds tiny real graphs.
"""

from __future__ import annotations

import numpy as np
import pytest

from .test_train_resume import _layout

pytestmark = pytest.mark.slow

tf = pytest.importorskip("tensorflow")

BUILD = dict(backbone="small", alpha=0.5, neck=16, detail=0)


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from inspector.training.model import build_detector

    tf.keras.utils.set_random_seed(3)
    path = tmp_path_factory.mktemp("teacher") / "teacher.weights.h5"
    build_detector(64, None, **BUILD).save_weights(path)
    return path


def _batch(seed: int) -> tf.Tensor:
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 2, (2, 64, 64, 2)).astype(np.float32)
    return tf.constant(np.concatenate([x, np.abs(x[..., :1] - x[..., 1:])], axis=-1))


def test_the_target_is_the_full_pass_where_the_reduced_pass_draws_no_large_box(weights):
    """Above the full-size pass everywhere; exactly it when no box of the reduced pass is long enough to count (the
    package keeps only the reduced pass's large boxes); raised somewhere when every box counts."""
    from inspector.training.distill import ReducedPassTeacher

    x = _batch(0)
    strict = ReducedPassTeacher(weights, 64, 0.5, min_box_px=1e9, **BUILD)
    full = tf.sigmoid(strict.full(x, training=False)[0]).numpy()
    target = strict.target(x).numpy()
    assert target.shape == (2, 16, 16, 6) and target.min() >= 0.0 and target.max() <= 1.0
    np.testing.assert_array_equal(target, full)
    loose = ReducedPassTeacher(weights, 64, 0.5, min_box_px=0.0, **BUILD).target(x).numpy()
    assert (loose >= full).all() and (loose > full + 1e-6).any()


def test_a_scale_whose_crop_is_no_multiple_of_32_is_refused(weights):
    from inspector.training.distill import ReducedPassTeacher

    with pytest.raises(SystemExit, match="multiple of 32"):
        ReducedPassTeacher(weights, 64, 0.8, min_box_px=50, **BUILD)


def test_the_loss_is_zero_at_the_target_and_leaves_the_labelled_centres_to_the_labels():
    from inspector.training.distill import distill_loss

    rng = np.random.default_rng(1)
    logits = tf.constant(rng.normal(0, 2, (1, 8, 8, 6)).astype(np.float32))
    labels = np.zeros((1, 8, 8, 6), np.float32)
    labels[0, 3, 4, 2] = 1.0
    labels = tf.constant(labels)
    assert float(distill_loss(logits, tf.sigmoid(logits), labels)) == pytest.approx(0.0, abs=1e-6)
    other = tf.clip_by_value(tf.sigmoid(logits) + 0.3, 0.0, 1.0)
    assert float(distill_loss(logits, other, labels)) > 0.01
    only_centre = tf.tensor_scatter_nd_update(tf.sigmoid(logits), [[0, 3, 4, 2]], [0.0])
    assert float(distill_loss(logits, only_centre, labels)) == pytest.approx(0.0, abs=1e-6)


def test_the_trainer_distils_from_a_teacher(tmp_path, weights, capsys):
    from inspector.training.train import main

    data = tmp_path / "data"
    _layout(data)
    args = ["--data", str(data), "--out", str(tmp_path / "run"), "--batch", "2", "--crop", "64", "--alpha", "0.5",
            "--neck", "16", "--warmup", "1", "--log-every", "1", "--eval-every", "2", "--val-groups", "20000",
            "--steps", "2", "--init-weights", str(weights), "--distill-from", str(weights), "--distill-scale", "0.5",
            "--distill-min-box", "0"]  # fmt: skip
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "distilling" in out and "x0.5" in out and "VAL step 2: mAP@0.5" in out
    assert (tmp_path / "run" / "last.weights.h5").is_file()
