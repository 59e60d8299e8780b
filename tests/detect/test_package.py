"""Model packages: a good package loads; corrupt, truncated, mismatched or missing ones are refused
with one clear error naming the file and the mismatch, and the station then rejects every board."""

from __future__ import annotations

import json
import threading

import pytest

from inspector.config import Recipe, ReplayCamera
from inspector.decision import RecipeRules
from inspector.detect.base import ModelError
from inspector.detect.litert import LiteRTDetector
from inspector.detect.package import read_meta, sha256_file
from inspector.domain import CLASS_NAMES, TriggerRequest, Verdict
from inspector.health import Health

from .conftest import M320, M640


def edit_sidecar(model, **changes):
    side = model.with_suffix(".json")
    data = json.loads(side.read_text())
    for key, value in changes.items():
        target = data
        *path, last = key.split("__")
        for p in path:
            target = target[p]
        target[last] = value
    side.write_text(json.dumps(data))


def load(model):
    return LiteRTDetector(model, delegate="cpu", threads=1).load()


def test_fixture_package_loads_and_names_itself():
    info = load(M320)
    meta = read_meta(M320)
    assert info.model_id == f"synth-det@1.0.0+{meta.computed_identity[:12]}" and meta.sha256 == sha256_file(M320)
    assert info.labels == CLASS_NAMES and info.input_size == (320, 320) and info.needs_reference
    assert info.default_thresholds == {i: meta.thresholds[n] for i, n in enumerate(CLASS_NAMES, 1)}
    assert info.backend == "CPU XNNPACK x1"
    assert meta.input.dtype == "uint8" and meta.input.quantisation is not None
    assert meta.licence and meta.output.head == "centernet" and meta.output.strides == (4,)
    assert M320.stat().st_size < 1_000_000 and M640.stat().st_size < 1_000_000


def test_truncated_model_is_refused_by_hash(model_copy):
    blob = model_copy.read_bytes()
    model_copy.write_bytes(blob[: len(blob) // 2])
    with pytest.raises(ModelError, match=r"synth-det-320\.tflite: sha256 .* does not match") as ei:
        load(model_copy)
    assert "truncated" in str(ei.value)


def test_truncated_model_with_matching_hash_is_refused_by_the_runtime(model_copy):
    blob = model_copy.read_bytes()
    model_copy.write_bytes(blob[: len(blob) // 3])
    edit_sidecar(model_copy, sha256=sha256_file(model_copy))
    with pytest.raises(ModelError, match=r"synth-det-320\.tflite: LiteRT cannot load the model"):
        load(model_copy)


def test_corrupt_byte_is_refused(model_copy):
    blob = bytearray(model_copy.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    model_copy.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match="sha256"):
        load(model_copy)


def test_wrong_hash_in_sidecar(model_copy):
    edit_sidecar(model_copy, sha256="0" * 64)
    with pytest.raises(ModelError, match=r"does not match the sidecar's 000000000000"):
        load(model_copy)


def test_wrong_label_count(model_copy):
    labels = list(CLASS_NAMES[:5])
    edit_sidecar(model_copy, labels=labels, thresholds={n: 0.3 for n in labels})
    with pytest.raises(ModelError, match=r"heatmap has 6 classes but the sidecar lists 5 labels") as ei:
        load(model_copy)
    assert str(model_copy) in str(ei.value)


def test_wrong_input_shape(model_copy):
    edit_sidecar(model_copy, input__shape=[1, 640, 640, 3])
    with pytest.raises(
        ModelError, match=r"input shape \[1, 320, 320, 3\] does not match the sidecar's \[1, 640, 640, 3\]"
    ):
        load(model_copy)


def test_wrong_input_dtype(model_copy):
    edit_sidecar(model_copy, input__dtype="int8")
    with pytest.raises(ModelError, match="input dtype uint8 does not match the sidecar's int8"):
        load(model_copy)


def test_wrong_quantisation(model_copy):
    edit_sidecar(model_copy, input__quantisation={"scale": 0.5, "zero_point": 3})
    with pytest.raises(ModelError, match="input quantisation"):
        load(model_copy)


def test_sidecar_describing_another_file(tmp_path):
    from .conftest import copy_package

    other = copy_package(M640, tmp_path / "x")
    other.with_suffix(".json").rename(tmp_path / "x" / "renamed.json")
    other.rename(tmp_path / "x" / "renamed.tflite")
    with pytest.raises(ModelError, match="describes 'synth-det-640.tflite', not 'renamed.tflite'"):
        load(tmp_path / "x" / "renamed.tflite")


@pytest.mark.parametrize(
    "change, message",
    [
        ({"version": "1.0"}, "version"),
        ({"format_version": 99}, "format_version 99 is not supported"),
        ({"thresholds": {"solder": 0.3}}, "unknown labels"),
        ({"thresholds": dict.fromkeys(CLASS_NAMES, 1.0)}, "every label's threshold is 1.0"),
        ({"needs_reference": False}, "contradicts channels"),
        ({"extra_key": 1}, "extra_key"),
    ],
)
def test_invalid_sidecar_values(model_copy, change, message):
    edit_sidecar(model_copy, **change)
    with pytest.raises(ModelError, match=message) as ei:
        load(model_copy)
    assert "synth-det-320.json" in str(ei.value)


def test_missing_files(tmp_path, model_copy):
    with pytest.raises(ModelError, match=r"nothing\.json: model sidecar not found"):
        load(tmp_path / "nothing.tflite")
    model_copy.unlink()
    with pytest.raises(ModelError, match=r"synth-det-320\.tflite: model file not found"):
        load(model_copy)
    model_copy.with_suffix(".json").write_text("{not json")
    with pytest.raises(ModelError, match="not readable JSON"):
        load(model_copy)


def test_station_with_a_bad_model_is_not_ready_and_rejects(model_copy, demo_boards):
    """Fail-safe: a model that cannot be verified is never run; every board is rejected."""
    from inspector.capture.replay import ReplayCameraSource
    from inspector.pipeline import Pipeline

    model_copy.write_bytes(model_copy.read_bytes()[:1000])
    health = Health()
    done = threading.Event()
    results = []

    class Sink:
        name = "t"

        def submit(self, r):
            results.append(r)
            done.set()

    cam = ReplayCameraSource(ReplayCamera(path=demo_boards, fps=None, loop=True, trigger="software"))
    p = Pipeline(
        cam, LiteRTDetector(model_copy, delegate="cpu"), RecipeRules(Recipe()), health, [Sink()], triggered=True
    )
    p.start()
    try:
        ticket = p.trigger(TriggerRequest(part_seq=1))
        assert ticket.done.wait(20)
    finally:
        p.stop()
    assert ticket.result.verdict is Verdict.REJECT and ticket.result.reason == "model not loaded"
    model = health.get("model")
    assert not model.ok and "sha256" in model.reason and str(model_copy) in model.reason
    assert not health.ready
