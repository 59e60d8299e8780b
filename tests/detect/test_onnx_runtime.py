"""The ONNX Runtime package beside the LiteRT one: same network, same sidecar behaviour, same defects.

Real parts: the shipped INT8 `.tflite` and INT8 QDQ `.onnx` packages (both exported from
models/pcb-defect-det.weights.h5), ONNX Runtime's CPU provider, real DeepPCB validation boards
when ../shared/datasets/deeppcb is there, synthetic boards otherwise.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import pytest

from inspector.config import REPO_ROOT, DetectorSection
from inspector.detect.base import ModelError
from inspector.detect.factory import create_detector
from inspector.detect.package import read_meta
from inspector.detect.packaged import PackagedDetector
from inspector.detect.runtimes import runtimes
from inspector.detect.runtimes.onnxruntime import CPU, select_providers
from inspector.detect.tiling import box_iou
from inspector.signing import SignatureError, VerifiedDetector, generate_keypair, sign_model
from inspector.synth import make_board

from .conftest import M320, package_with

ort = pytest.importorskip("onnxruntime")

TFLITE = REPO_ROOT / "models" / "pcb-defect-det.tflite"
ONNX = REPO_ROOT / "models" / "pcb-defect-det-onnx.onnx"
DEEPPCB = REPO_ROOT.parent / "shared" / "datasets" / "deeppcb"


@pytest.fixture(scope="module")
def pair():
    lite = PackagedDetector(TFLITE, threads=2)
    onnx = PackagedDetector(ONNX, threads=2)
    lite.load()
    onnx.load()
    yield lite, onnx
    lite.close()
    onnx.close()


def test_the_onnx_package_is_the_litert_package_on_another_runtime():
    lite, onnx = read_meta(TFLITE), read_meta(ONNX)
    assert lite.runtime == "litert" and onnx.runtime == "onnxruntime"
    assert onnx.file == ONNX.name and lite.file == TFLITE.name
    keys = ("labels", "input", "output", "thresholds", "nms_iou", "tta", "multiscale", "join_fragments")
    for key in (*keys, "cross_class", "input_domain", "version"):
        assert getattr(onnx, key) == getattr(lite, key), (
            f"sidecar key {key!r} differs between the packages; run python -m inspector.training.export_onnx "
            "--sync-only --out models/pcb-defect-det-onnx.onnx --like models/pcb-defect-det.json"
        )
    assert onnx.metrics["int8_vs_float"]["verdict_agreement"] == 1.0


def _same_defects(a, b, min_score: float = 0.3) -> tuple[int, int]:
    """(defects of `a` at or above min_score, how many of them `b` found: same class, IoU >= 0.5)."""
    a = [d for d in a if d.score >= min_score]
    if not a:
        return 0, 0
    if not b:
        return len(a), 0
    iou = box_iou(np.array([d.box for d in a], np.float32), np.array([d.box for d in b], np.float32))
    same = np.array([[x.class_id == y.class_id for y in b] for x in a])
    return len(a), int(((iou >= 0.5) & same).any(axis=1).sum())


def _compare(pair, boards) -> None:
    lite, onnx = pair
    assert onnx.info.backend == "CPU (ONNX Runtime x2)" and onnx.info.labels == lite.info.labels
    n_l = found_l = n_o = found_o = 0
    for image, reference in boards:
        dl = lite.detect(image, reference)
        do = onnx.detect(image, reference)
        assert bool(dl) == bool(do)  # the same verdict on every board
        n, f = _same_defects(dl, do)
        n_l, found_l = n_l + n, found_l + f
        n, f = _same_defects(do, dl)
        n_o, found_o = n_o + n, found_o + f
    assert n_l > 0 and n_o > 0
    assert found_l >= 0.9 * n_l and found_o >= 0.9 * n_o, (found_l, n_l, found_o, n_o)


def test_same_defects_as_litert_on_synthetic_boards(pair):
    boards = [make_board(seed, defect_rate=1.0) for seed in (4, 11, 23)]
    _compare(pair, [(b.image, b.reference) for b in boards])


@pytest.mark.skipif(not DEEPPCB.is_dir(), reason="../shared/datasets/deeppcb is not there")
def test_same_defects_as_litert_on_deeppcb_validation_boards(pair):
    from inspector.datasets.deeppcb import load_list, read_gray

    pairs = [p for p in load_list(DEEPPCB) if p.group in ("44000", "92000")][::40][:4]
    assert pairs
    _compare(pair, [(read_gray(p.test_path), read_gray(p.template_path)) for p in pairs])


def test_unknown_runtime_in_the_sidecar_names_the_key(tmp_path):
    model = package_with(M320, tmp_path / "pkg", runtime="tensorrt")
    with pytest.raises(ModelError, match=r"runtime 'tensorrt' is not one of .*sidecar key 'runtime'"):
        read_meta(model)
    with pytest.raises(ModelError, match="runtime"):
        PackagedDetector(model).load()
    assert set(runtimes()) >= {"litert", "onnxruntime"}


def test_provider_selection_skips_what_this_build_lacks(caplog):
    caplog.set_level(logging.WARNING)
    chosen, attempts = select_providers(["OpenVINOExecutionProvider", CPU], [CPU])
    assert chosen == [CPU]
    assert [(a.library, a.reason) for a in attempts] == [("OpenVINOExecutionProvider", "not available")]
    assert "OpenVINOExecutionProvider is not available" in caplog.text
    assert select_providers([], [CPU])[0] == [CPU]  # the CPU is always the last resort
    assert select_providers(["CUDAExecutionProvider"], ["CUDAExecutionProvider", CPU])[0] == [
        "CUDAExecutionProvider",
        CPU,
    ]


def test_configured_provider_that_is_missing_runs_on_the_cpu_and_says_so():
    section = DetectorSection(model=ONNX, providers=["OpenVINOExecutionProvider", CPU], threads=1)
    det = create_detector(section)
    info = det.load()
    assert info.backend == "CPU (ONNX Runtime x1) (fallback: OpenVINOExecutionProvider not available)"
    assert not info.accelerated and info.warning == "CPU fallback: OpenVINOExecutionProvider not available"
    det.close()


@pytest.mark.skipif("AzureExecutionProvider" not in ort.get_available_providers(), reason="no second provider here")
def test_a_registered_provider_that_takes_no_node_is_counted_not_assumed():
    """This build's Azure provider (remote endpoints) registers but runs no graph node: counted from the profile."""
    det = PackagedDetector(ONNX, providers=["AzureExecutionProvider"], threads=1)
    info = det.load()
    b = det.backend
    assert b.graph_nodes > 0 and b.accelerator_nodes == 0 and not info.accelerated
    assert "AzureExecutionProvider took none of the" in info.backend and info.warning.startswith("CPU fallback")
    with pytest.raises(ModelError, match="require_accelerator"):
        PackagedDetector(ONNX, providers=["AzureExecutionProvider"], threads=1, require_accelerator=True).load()


def test_signature_is_checked_in_detector_creation_for_the_onnx_package(tmp_path):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for suffix in (".onnx", ".json"):
        shutil.copy(ONNX.with_suffix(suffix), pkg / ONNX.with_suffix(suffix).name)
    model = pkg / ONNX.name
    generate_keypair(tmp_path / "plant.key", tmp_path / "plant.pub")
    sig = sign_model(model, tmp_path / "plant.key")
    assert ONNX.name in json.loads(sig.read_text())["files"]  # the model file the sidecar names is signed
    section = DetectorSection(model=model, trusted_keys=[tmp_path / "plant.pub"], threads=1)
    det = create_detector(section)
    assert isinstance(det, VerifiedDetector)
    assert det.load().model_id.startswith("pcb-defect-det-onnx@")
    det.close()
    data = bytearray(model.read_bytes())
    data[-1] ^= 1
    Path(model).write_bytes(bytes(data))
    with pytest.raises(SignatureError, match="tampered"):
        create_detector(section).load()


def test_model_store_installs_the_signed_onnx_package_by_its_sidecar(tmp_path):
    """The store finds the model file through the sidecar's `file`, verifies and installs it, and the
    detector the station builds from `active/` runs it on ONNX Runtime."""
    from inspector.model_store import ModelStore

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for suffix in (".onnx", ".json"):
        shutil.copy(ONNX.with_suffix(suffix), pkg / ONNX.with_suffix(suffix).name)
    generate_keypair(tmp_path / "plant.key", tmp_path / "plant.pub")
    sign_model(pkg / ONNX.name, tmp_path / "plant.key")
    store = ModelStore(tmp_path / "store")
    installed = store.install(pkg / ONNX.name, trusted_keys=[tmp_path / "plant.pub"])
    active = store.model_in(store.active_dir())
    assert active.name == ONNX.name and installed.model_id.startswith("pcb-defect-det-onnx@")
    det = create_detector(DetectorSection(model=active, trusted_keys=[tmp_path / "plant.pub"], threads=1))
    assert det.load().backend.startswith("CPU (ONNX Runtime")
    det.close()


def test_encrypted_onnx_package_runs_from_memory(tmp_path):
    """`model encrypt` takes the model file its sidecar names; ONNX Runtime gets the decrypted bytes."""
    from inspector.cli import main
    from inspector.model_crypt import ModelKeys, is_encrypted, new_plant_key, read_plant_key

    pkg = tmp_path / "pkg"
    pkg.mkdir()
    for suffix in (".onnx", ".json"):
        shutil.copy(ONNX.with_suffix(suffix), pkg / ONNX.with_suffix(suffix).name)
    new_plant_key(tmp_path / "plant.key")
    out = tmp_path / "fleet"
    args = ["model", "encrypt", str(pkg / ONNX.name), "--key-file", str(tmp_path / "plant.key"), "--fleet"]
    assert main([*args, "--out", str(out)]) == 0
    assert is_encrypted((out / ONNX.name).read_bytes())
    with pytest.raises(ModelError):
        PackagedDetector(out / ONNX.name, threads=1).load()  # no key: refused, not run
    keys = ModelKeys(read_plant_key(tmp_path / "plant.key"), None)
    det = PackagedDetector(out / ONNX.name, threads=1, model_keys=lambda: keys)
    assert det.load().backend.startswith("CPU (ONNX Runtime")
    b = make_board(11, defect_rate=1.0)
    assert det.detect(b.image, b.reference)
    det.close()


def test_the_onnx_graph_runs_at_the_reduced_size_with_the_letterboxed_outputs_far_from_its_edges():
    """As LiteRT's (`tests/detect/test_sized_graph.py`): the 0.8 pass of a 640 px board on a 512 px graph."""
    pytest.importorskip("onnx")
    det = PackagedDetector(ONNX, threads=2)
    det.load()
    det.warm_up(runs=1)
    sized = det._sized[(512, 512)]
    assert det.sized_inputs == [(512, 512)] and sized.inputs[0].shape == (1, 512, 512, 3)
    assert sorted(d.shape for d in sized.outputs) == [(1, 128, 128, 4), (1, 128, 128, 6)]
    assert det._rt.at_input_size(500, 500) is None  # a 125-cell grid: no whole number of cells
    b = make_board(8100)
    small = [np.ascontiguousarray(a[:512, :512]) for a in (b.image, b.reference)]
    stacked = np.dstack([small[0], small[1], np.abs(small[0].astype(int) - small[1]).astype(np.uint8)])
    boxed = np.empty((640, 640, 3), np.uint8)
    boxed[:512, :512] = stacked
    boxed[:512, 512:] = stacked[:, 511:512]
    boxed[512:] = boxed[511:512]
    det._rt.set_input(boxed[None])
    det._rt.invoke()
    sized.set_input(stacked[None])
    sized.invoke()
    for i in range(2):
        a, s = det._rt.output(i)[0], sized.output(i)[0]
        np.testing.assert_allclose(a[:64, :64], s[:64, :64], atol=1e-6)
        assert not np.allclose(a[:128, :128], s, atol=1e-3)  # they differ near the shrunk board's far edges
    det.close()


def test_a_graph_the_onnx_package_cannot_read_keeps_the_letterboxed_pass():
    pytest.importorskip("onnx")
    from inspector.detect.runtimes.onnxruntime import _model_at

    assert _model_at(b"\x0a\xff\xff\xff", (640, 640), (512, 512)) is None  # a truncated protobuf
    assert _model_at(ONNX.read_bytes(), (640, 640), (512, 512)) is not None
