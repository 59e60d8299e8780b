"""The reduced pass on the graph at the shrunk board's own size (`Runtime.at_input_size`).

A 640 px board shrunk to 0.8 is 512 px; letterboxed into the 640 px input, a third of the invoke is padding.
LiteRT runs the same weights at 512 x 512 once the upsampling layers' stored sizes are scaled.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from inspector.detect.litert import LiteRTDetector
from inspector.detect.runtimes.base import Runtime
from inspector.detect.runtimes.litert import LiteRTRuntime
from inspector.detect.tiling import box_iou

SHIPPED = Path(__file__).resolve().parents[2] / "models" / "pcb-defect-det.tflite"
DEEPPCB = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "deeppcb"
needs_deeppcb = pytest.mark.skipif(not DEEPPCB.is_dir(), reason="DeepPCB is only on the development machine")


def _loaded(path=SHIPPED) -> LiteRTDetector:
    det = LiteRTDetector(path, delegate="cpu")
    det.load()
    return det


def _pair(stem: str):
    base = DEEPPCB / "group20085" / "20085" / stem
    img = cv2.imread(f"{base}_test.jpg", cv2.IMREAD_GRAYSCALE)
    ref = cv2.imread(f"{base}_temp.jpg", cv2.IMREAD_GRAYSCALE)
    assert img is not None and ref is not None, base
    return img, ref


def _stacked(img: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return cv2.merge([img, ref, cv2.absdiff(img, ref)])


def test_the_shipped_graph_runs_at_the_reduced_size_with_its_own_tensors():
    det = _loaded()
    sized = det._rt.at_input_size(512, 512)
    assert isinstance(sized, LiteRTRuntime) and sized is not det._rt
    assert sized.inputs[0].shape == (1, 512, 512, 3)
    full = {d.index: d for d in det._rt.outputs}
    for d in sized.outputs:
        assert d.shape[:3] == (1, 128, 128)  # stride 4
        assert d.shape[3] == full[d.index].shape[3]
        assert d.quantisation == full[d.index].quantisation
    assert det._rt.at_input_size(640, 640) is det._rt
    # 500 / 640 of a 40-cell upsampling is 31.25 cells: no whole-number graph, so the letterboxed pass stays
    assert det._rt.at_input_size(500, 500) is None
    sized.close()
    det.close()


@needs_deeppcb
def test_far_from_the_new_edges_the_sized_graph_gives_the_full_graphs_outputs_bit_for_bit():
    """Same weights, same quantisation: on a real board shrunk to 512 px, the outputs of the 512 px graph equal
    those of the 640 px graph on the same board letterboxed (as the reduced pass did before) over the top-left
    256 px, out of the reach of the padding the two differ in."""
    det = _loaded()
    img, ref = _pair("20085010")
    small = _stacked(*(cv2.resize(a, (512, 512), interpolation=cv2.INTER_LINEAR) for a in (img, ref)))
    boxed = np.empty((640, 640, 3), np.uint8)
    boxed[:512, :512] = small
    boxed[:512, 512:] = small[:, 511:512]
    boxed[512:] = boxed[511:512]
    full, sized = det._rt, det._rt.at_input_size(512, 512)
    full.set_input(boxed[None])
    full.invoke()
    sized.set_input(small[None])
    sized.invoke()
    for index in (det._hm_index, det._rg_index):
        a, b = full.output(index)[0], sized.output(index)[0]
        assert np.array_equal(a[:64, :64], b[:64, :64])
        assert not np.array_equal(a[:128, :128], b)  # the far edges do differ: the test compares real outputs
    sized.close()
    det.close()


def test_warm_up_builds_the_reduced_pass_graph():
    det = _loaded()
    assert det.meta.multiscale is not None and det.meta.multiscale.scales == (0.8,)
    det.warm_up(runs=1)
    assert det._sized[(512, 512)].inputs[0].shape == (1, 512, 512, 3)
    det.close()
    assert det._sized == {}


@needs_deeppcb
def test_a_board_shows_the_same_defects_with_the_reduced_pass_letterboxed_or_sized(monkeypatch):
    """The reduced pass on its own graph against the letterboxed one (a runtime that cannot re-size): the same
    defects, classes and boxes; scores a little apart where a defect lies near the shrunk board's far edges."""
    sized = _loaded()
    with monkeypatch.context() as m:
        m.setattr(LiteRTRuntime, "_built_at", Runtime._built_at)
        boxed = _loaded()
        letterboxed = {stem: boxed.detect(*_pair(stem)) for stem in ("20085000", "20085040", "20085080", "20085120")}
        assert boxed._sized == {(512, 512): None}
    compared = 0
    for stem, want in letterboxed.items():
        got = sized.detect(*_pair(stem))
        assert sized._sized[(512, 512)].inputs[0].shape == (1, 512, 512, 3)
        assert len(got) == len(want), stem
        gb = np.array([d.box for d in got], np.float32)
        for d in want:
            iou = box_iou(np.array([d.box], np.float32), gb)[0]
            j = int(iou.argmax())
            assert iou[j] >= 0.8 and got[j].class_id == d.class_id, (stem, d)
            assert abs(got[j].score - d.score) <= 0.05, (stem, d, got[j])
            compared += 1
    assert compared >= 15
    sized.close()
    boxed.close()


def _counting(rt: Runtime, counts: dict, key) -> None:
    """Counts the real runtime's invokes (it still runs them)."""
    invoke = rt.invoke

    def counted() -> None:
        counts[key] = counts.get(key, 0) + 1
        invoke()

    rt.invoke = counted


@needs_deeppcb
@pytest.mark.parametrize(("mirror", "want"), [(True, {640: 2, 512: 2}), (False, {640: 2, 512: 1})])
def test_the_reduced_pass_is_mirrored_as_the_sidecar_says(tmp_path, mirror, want):
    """`multiscale.mirror`: with `tta: hflip` the full pass is always mirrored; the reduced pass twice or once."""
    from .conftest import package_with

    meta = _loaded().meta
    ms = {"scales": list(meta.multiscale.scales), "min_box_px": meta.multiscale.min_box_px}
    ms |= {"label_margin_px": meta.multiscale.label_margin_px, "mirror": mirror}
    det = _loaded(package_with(SHIPPED, tmp_path / "pkg", multiscale=ms))
    assert det.meta.tta == "hflip" and det.meta.multiscale.mirror is mirror
    det.warm_up(runs=1)
    counts: dict = {}
    _counting(det._rt, counts, 640)
    _counting(det._sized[(512, 512)], counts, 512)
    det.detect(*_pair("20085000"))
    assert counts == want
    det.close()


@needs_deeppcb
def test_an_unmirrored_reduced_pass_is_the_reduced_pass_of_a_package_without_the_mirror(tmp_path):
    """The same boxes, scores and classes, to the bit, as the reduced pass of the same graph with `tta` off."""
    from .conftest import package_with

    meta = _loaded().meta
    ms = {"scales": [0.8], "min_box_px": 50.0, "label_margin_px": 9.0}
    once = _loaded(package_with(SHIPPED, tmp_path / "once", multiscale={**ms, "mirror": False}))
    plain = _loaded(package_with(SHIPPED, tmp_path / "plain", multiscale=ms, tta="none"))
    assert meta.tta == "hflip" and plain.meta.tta == "none"
    found = 0
    for stem in ("20085000", "20085040", "20085080"):
        img, ref = _pair(stem)
        got = [
            det._reduced_pass(
                img, ref, 0.8, det.meta.multiscale, 0.1, {"post": 0.0, "pre": 0.0, "invoke": 0.0, "tiles": 0}
            )
            for det in (once, plain)
        ]
        for a, b in zip(*got):
            assert np.array_equal(a, b), stem
        found += len(got[0][1])
    assert found > 0
    once.close()
    plain.close()


def test_a_size_constant_shared_by_two_upsampling_layers_is_scaled_once():
    """The converter stores equal resize sizes once: that constant is scaled once, not once per layer."""
    pytest.importorskip("tensorflow")
    import keras
    import tensorflow as tf
    from ai_edge_litert.interpreter import Interpreter

    from inspector.detect.runtimes.litert import _graph_at

    x = keras.Input((64, 64, 3))
    branches = []
    for _ in range(2):
        y = keras.layers.Conv2D(4, 3, strides=2, padding="same")(x)
        branches.append(keras.layers.Lambda(lambda t: keras.ops.image.resize(t, (64, 64), interpolation="nearest"))(y))
    conv = tf.lite.TFLiteConverter.from_keras_model(keras.Model(x, keras.layers.Add()(branches)))
    conv.optimizations = [tf.lite.Optimize.DEFAULT]
    rng = np.random.default_rng(0)
    conv.representative_dataset = lambda: ([rng.random((1, 64, 64, 3), np.float32)] for _ in range(4))
    conv.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    conv.inference_input_type = conv.inference_output_type = tf.uint8
    blob = conv.convert()

    small = _graph_at(blob, (64, 64), (32, 32))
    it = Interpreter(model_content=small)
    it.resize_tensor_input(it.get_input_details()[0]["index"], [1, 32, 32, 3])
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], np.full((1, 32, 32, 3), 128, np.uint8))
    it.invoke()
    assert tuple(it.get_output_details()[0]["shape"]) == (1, 32, 32, 4)  # scaled twice: 16 x 16
