"""The detector registry: one plug-in module plus one registry line gives a detector type everywhere.

The runtime below lives in a file of the test's own, outside the package, and runs a tiny model
format of its own (a JSON file: the graph is "the absolute difference of board and reference, per
output cell"); the only other change is the registry line. A station file with `[detector] type =
"diffrt"` (and the runtime's own key, `gain`), the sidecar check, `create_detector`, the start check
and `config show` then all know it, and the detector it builds finds a defect through
`PackagedDetector`'s tiles, decoding and merging. Also here: a package on the wrong type is refused
naming both, and station files written before detectors were plug-ins still load.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from inspector.config import REPO_ROOT, ConfigError, DetectorSection, StationConfig, load_config, parse_config
from inspector.detect.base import ModelError
from inspector.detect.classical import ClassicalSettings
from inspector.detect.factory import create_detector
from inspector.detect.package import write_sidecar
from inspector.detect.registry import DETECTOR_MODULES, detector_backends, detector_configs
from inspector.detect.runtimes import runtimes
from inspector.detect.runtimes.litert import LiteRTSettings
from inspector.detect.runtimes.onnxruntime import OnnxRuntimeSettings
from inspector.detect.settings import PackagedModelSettings
from inspector.startcheck import check_config

TFLITE = REPO_ROOT / "models" / "pcb-defect-det.tflite"
ONNX = REPO_ROOT / "models" / "pcb-defect-det-onnx.onnx"

DIFF_RUNTIME = '''
"""A runtime for a model format of the test's own: |board - reference| per output cell, times `gain`."""
from __future__ import annotations
import json
from typing import Any, Literal
import numpy as np
from pydantic import Field
from inspector.detect.delegates import Backend
from inspector.detect.runtimes.base import Runtime, TensorSpec
from inspector.detect.settings import PackagedModelSettings


class DiffSettings(PackagedModelSettings):
    model_suffixes = (".diff",)
    type: Literal["diffrt"] = Field("diffrt", description="The test's difference runtime.")
    gain: float = Field(1.0, gt=0, le=10, description="Score per unit of grey difference (x 255).")


class DiffRuntime(Runtime):
    name = "diffrt"

    def __init__(self, blob: bytes, where: str, settings: DiffSettings, **hooks: Any):
        spec = json.loads(blob)
        n, self.stride, c = spec["size"], spec["stride"], spec["classes"]
        g = n // self.stride
        self.gain = settings.gain
        self.inputs = [TensorSpec(0, "x", (1, n, n, 2), np.dtype(np.uint8), (1.0, 0))]
        self.outputs = [
            TensorSpec(0, "heatmap", (1, g, g, c), np.dtype(np.float32), None),
            TensorSpec(1, "regression", (1, g, g, 4), np.dtype(np.float32), None),
        ]
        self._x = np.zeros((1, n, n, 2), np.uint8)
        self._out: list[np.ndarray] = []
        self.backend = Backend(f"CPU numpy (gain {self.gain:g})", threads=settings.threads, runtime=self.name)

    def input_view(self) -> np.ndarray:
        return self._x[0]

    def set_input(self, x: np.ndarray) -> None:
        np.copyto(self._x, x, casting="unsafe")

    def invoke(self) -> None:
        x = self._x[0].astype(np.float32)
        diff = np.abs(x[:, :, 0] - x[:, :, 1])
        g, s = diff.shape[0] // self.stride, self.stride
        cells = diff.reshape(g, s, g, s).max(axis=(1, 3)) / 255.0
        hm = np.zeros(self.outputs[0].shape, np.float32)
        hm[0, :, :, 0] = np.clip(cells * self.gain, 0.0, 1.0)
        reg = np.zeros(self.outputs[1].shape, np.float32)
        reg[..., 0:2] = np.log(2.0)  # boxes of two cells, centred on the cell
        reg[..., 2:4] = 0.5
        self._out = [hm, reg]

    def output(self, index: int) -> np.ndarray:
        return self._out[index].copy()


def create(cfg: DiffSettings):
    from inspector.detect.packaged import PackagedDetector
    return PackagedDetector(cfg.model, cfg)


CONFIG = DiffSettings
RUNTIME = DiffRuntime
'''

LABELS = ["open", "short", "mousebite", "spur", "copper", "pin-hole"]


def _diff_package(folder: Path) -> Path:
    """A model package for the test's runtime: the model file and its sidecar naming runtime 'diffrt'."""
    folder.mkdir(parents=True, exist_ok=True)
    model = folder / "tiny.diff"
    model.write_text(json.dumps({"size": 64, "stride": 4, "classes": len(LABELS)}))
    write_sidecar(
        model,
        {
            "name": "tiny-diff",
            "version": "1.0.0",
            "runtime": "diffrt",
            "labels": LABELS,
            "input": {
                "shape": [1, 64, 64, 2],
                "dtype": "uint8",
                "quantisation": {"scale": 1.0, "zero_point": 0},
                "channels": ["board", "reference"],
                "value_range": [0.0, 255.0],
            },
            "needs_reference": True,
            "output": {"head": "centernet", "strides": [4], "heatmap_activation": "sigmoid"},
            "thresholds": dict.fromkeys(LABELS, 0.3),
        },
    )
    return model


def test_every_registered_detector_owns_its_config_and_create():
    assert list(detector_backends()) == list(DETECTOR_MODULES) == ["litert", "onnxruntime", "classical"]
    for name, backend in detector_backends().items():
        assert backend.config.model_fields["type"].default == name
        assert backend.config is detector_configs()[name]
    # The [detector] union is the registry's classes, nothing typed by hand.
    union = StationConfig.model_fields["detector"].annotation.__args__
    assert set(union) == set(detector_configs().values())
    # A runtime is a detector type whose module has a RUNTIME; its CONFIG holds the shared package keys.
    assert list(runtimes()) == ["litert", "onnxruntime"]
    for name in runtimes():
        assert issubclass(detector_configs()[name], PackagedModelSettings)
    # Each runtime's own keys live in its own class only.
    assert "delegate" in LiteRTSettings.model_fields and "delegate" not in OnnxRuntimeSettings.model_fields
    assert "providers" in OnnxRuntimeSettings.model_fields and "providers" not in LiteRTSettings.model_fields
    assert (
        "providers" not in PackagedModelSettings.model_fields and "delegate" not in PackagedModelSettings.model_fields
    )
    assert set(ClassicalSettings.model_fields) == {"type"}


def test_a_new_runtime_is_one_module_and_one_registry_line(tmp_path: Path):
    (tmp_path / "diff_runtime.py").write_text(DIFF_RUNTIME)
    model = _diff_package(tmp_path / "models")
    station = tmp_path / "station.toml"
    station.write_text(
        '[detector]\ntype = "diffrt"\nmodel = "models/tiny.diff"\ngain = 1.0\nthreads = 1\n[plc]\nmode = "off"\n'
    )
    script = textwrap.dedent(
        f"""
        import json, sys
        import numpy as np
        sys.path.insert(0, {str(tmp_path)!r})
        from inspector.detect import registry
        registry.DETECTOR_MODULES["diffrt"] = "diff_runtime"   # the one registry line
        from inspector.config import ConfigError, dump_toml, load_config, parse_config
        from inspector.detect.base import ModelError
        from inspector.detect.factory import create_detector
        from inspector.startcheck import check_config

        cfg = load_config({str(station)!r})
        det = create_detector(cfg.detector)
        info = det.load()
        board = np.full((64, 64), 40, np.uint8)
        ref = board.copy()
        board[20:28, 36:44] = 240
        found = det.detect(board, ref)
        weak = create_detector(cfg.detector.model_copy(update={{"gain": 0.25}}))
        weak.load()
        try:
            parse_config({{"detector": {{"type": "diffrt", "gain": 50}}}})
        except ConfigError as exc:
            bad_gain = str(exc)
        wrong = parse_config({{"detector": {{"type": "litert", "model": {str(model)!r}, "delegate": "cpu"}}}})
        try:
            create_detector(wrong.detector).load()
        except ModelError as exc:
            mismatch = str(exc)
        print(json.dumps({{
            "type": cfg.detector.type, "gain": cfg.detector.gain, "backend": info.backend,
            "model_id": info.model_id, "found": [[d.class_id, d.box] for d in found],
            "weak": len(weak.detect(board, ref)), "bad_gain": bad_gain, "mismatch": mismatch,
            "problems": check_config(cfg).problems, "shown": dump_toml(cfg),
        }}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["type"] == "diffrt" and got["gain"] == 1.0
    assert got["backend"] == "CPU numpy (gain 1)" and got["model_id"].startswith("tiny-diff@1.0.0")
    # One defect, class 'open', where the board differs from its reference (x 36..44, y 20..28).
    assert len(got["found"]) == 1
    cls, (x1, y1, x2, y2) = got["found"][0]
    assert cls == 1 and 32 <= (x1 + x2) / 2 <= 44 and 18 <= (y1 + y2) / 2 <= 28
    assert got["weak"] == 0  # the runtime's own key reached the runtime: 0.25 x 200/255 is below 0.3
    assert "detector.gain: 50 is above 10" in got["bad_gain"]
    assert "names runtime 'diffrt' but detector.type is 'litert'" in got["mismatch"]
    assert got["problems"] == []
    assert 'type = "diffrt"' in got["shown"] and "gain = 1.0" in got["shown"]


def test_a_package_of_another_runtime_is_refused_naming_both():
    cfg = DetectorSection(type="litert", model=ONNX, delegate="cpu", threads=1)
    with pytest.raises(ModelError, match=r"names runtime 'onnxruntime' but detector.type is 'litert'.*type = "):
        create_detector(cfg).load()
    station = parse_config({"detector": {"type": "litert", "model": str(ONNX)}, "plc": {"mode": "off"}})
    problems = check_config(station).problems
    assert any(
        p.startswith("detector.type: 'litert', but the sidecar of pcb-defect-det-onnx.onnx names runtime 'onnxruntime'")
        for p in problems
    ), problems
    onnx = parse_config({"detector": {"type": "onnxruntime", "model": str(TFLITE)}})
    with pytest.raises(ModelError, match="names runtime 'litert' but detector.type is 'onnxruntime'"):
        create_detector(onnx.detector).load()


def test_a_wrong_type_or_key_names_the_key():
    with pytest.raises(ConfigError, match=r"detector.type: 'tensorrt' is not one of 'litert', 'onnxruntime'"):
        parse_config({"detector": {"type": "tensorrt"}})
    with pytest.raises(ConfigError, match=r"detector.delgate: unknown key"):
        parse_config({"detector": {"type": "litert", "delgate": "cpu"}})
    with pytest.raises(ConfigError, match=r"detector.threads: 0 is below 1"):
        parse_config({"detector": {"type": "onnxruntime", "threads": 0}})


def test_old_station_files_load(tmp_path: Path, caplog):
    """engine =, and keys of every runtime in one [detector] (as docs/station.example.toml had them)."""
    old = tmp_path / "old.toml"
    old.write_text(
        f'[detector]\nengine = "litert"\nmodel = "{TFLITE}"\ndelegate = "cpu"\nthreads = 1\nproviders = []\n'
        '[plc]\nmode = "off"\n'
    )
    with pytest.warns(DeprecationWarning) as seen:
        cfg = load_config(old)
    messages = [str(w.message) for w in seen]
    assert "detector.engine is deprecated: write `type = 'litert'` in [detector]" in messages
    assert any(
        m.startswith("detector.providers is a setting of type 'onnxruntime', not of type 'litert'") for m in messages
    )
    assert "detector.providers is a setting of type 'onnxruntime'" in caplog.text
    assert isinstance(cfg.detector, LiteRTSettings) and cfg.detector.delegate == "cpu"
    det = create_detector(cfg.detector)
    assert det.load().backend == "CPU XNNPACK x1"  # the shipped package, exactly as before
    det.close()

    # No `type` (every file before the registry): the model file's ending picks the runtime, as the sidecar did.
    onnx = parse_config({"detector": {"model": str(ONNX), "providers": ["CPUExecutionProvider"], "threads": 1}})
    assert isinstance(onnx.detector, OnnxRuntimeSettings)
    det = create_detector(onnx.detector)
    assert det.load().backend == "CPU (ONNX Runtime x1)"
    det.close()
    assert isinstance(parse_config({"detector": {"delegate": "cpu"}}).detector, LiteRTSettings)
    assert isinstance(StationConfig().detector, LiteRTSettings)  # the demo default: the bundled .tflite

    # The classical detector in a file that still carries the packaged-model keys.
    with pytest.warns(DeprecationWarning, match="detector.delegate is a setting of type 'litert'"):
        classical = parse_config({"detector": {"engine": "classical", "delegate": "cpu", "threads": 2}})
    assert isinstance(classical.detector, ClassicalSettings)
