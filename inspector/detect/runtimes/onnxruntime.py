"""ONNX Runtime: `[detector] type = "onnxruntime"`, packages whose sidecar names runtime "onnxruntime".

A detector plug-in (`inspector.detect.registry`): `CONFIG` (the shared package keys plus ONNX
Runtime's own, `providers`), `create` and `RUNTIME`, the packaged graph on the execution providers the
configuration names, the CPU last.

Why it is built this way:
- Execution providers are chosen by name (`detector.providers`, e.g. OpenVINO, CUDA, QNN, CANN), in
  order; one this ONNX Runtime build does not have is warned about and skipped, and the CPU
  provider is always the last resort, so a station never stops for a missing accelerator unless
  `detector.require_accelerator` says it must.
- What an accelerator provider really took is counted, not assumed: the first invoke at load runs
  with ONNX Runtime's profiler, whose node events name the provider that ran each node.
- The input is a numpy buffer the detector writes in place (uint8 raw pixels for the shipped INT8
  QDQ package); outputs are the float tensors the graph dequantises itself.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..base import Detector, ModelError
from ..delegates import Backend, DelegateAttempt
from ..settings import PackagedModelSettings
from .base import Runtime, TensorSpec

log = logging.getLogger(__name__)

CPU = "CPUExecutionProvider"


class OnnxRuntimeSettings(PackagedModelSettings):
    """`[detector]` for an ONNX Runtime package: the shared package keys plus the execution providers."""

    model_suffixes = (".onnx",)

    type: Literal["onnxruntime"] = Field(
        "onnxruntime", description="A packaged model on ONNX Runtime (.onnx; its sidecar names runtime 'onnxruntime')."
    )
    providers: list[str] = Field(
        default_factory=list,
        description="Execution providers by name, in order of preference (e.g. ['OpenVINOExecutionProvider', "
        "'CPUExecutionProvider']); ones this build lacks are warned about and skipped; the CPU provider is "
        "always last.",
    )

    def cpu_only(self) -> OnnxRuntimeSettings:
        return super().cpu_only().model_copy(update={"providers": []})


_DTYPES = {
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(float)": np.float32,
}
#: Short names for the backend string the lamp shows.
_SHORT = {CPU: "CPU", "OpenVINOExecutionProvider": "OpenVINO", "CUDAExecutionProvider": "CUDA"}


def _ort():
    try:
        import onnxruntime as ort
    except ImportError:
        raise ModelError(
            "this model package names runtime 'onnxruntime', which is not installed (pip install onnxruntime)"
        ) from None
    global _QUIET
    if not _QUIET:  # graph-load notes (e.g. deprecated Resize attributes from the converter) are not for operators
        ort.set_default_logger_severity(3)
        _QUIET = True
    return ort


_QUIET = False


def short(provider: str) -> str:
    return _SHORT.get(provider, provider.removesuffix("ExecutionProvider"))


def select_providers(
    requested: list[str] | tuple[str, ...], available: list[str]
) -> tuple[list[str], list[DelegateAttempt]]:
    """The requested providers this build has, in order, then the CPU; an attempt for each one skipped."""
    chosen, attempts = [], []
    for name in requested:
        if name in chosen:
            continue
        if name not in available:
            log.warning(
                "execution provider %s is not available in this ONNX Runtime build (available: %s); skipped",
                name,
                ", ".join(available),
            )
            attempts.append(DelegateAttempt(name, False, "not available"))
            continue
        chosen.append(name)
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen, attempts


class OnnxRuntime(Runtime):
    name = "onnxruntime"

    def __init__(self, blob: bytes, where: str, settings: OnnxRuntimeSettings, **hooks: Any):
        ort = _ort()
        self.where = where
        self.settings = settings
        self._blob = blob
        wanted, attempts = select_providers(list(settings.providers), ort.get_available_providers())
        accel = [p for p in wanted if p != CPU]
        self._sess = self._session(blob, wanted, profile=bool(accel))
        ins, outs = self._sess.get_inputs(), self._sess.get_outputs()
        self.inputs = [self._spec(i, d) for i, d in enumerate(ins)]
        self.outputs = [self._spec(i, d) for i, d in enumerate(outs)]
        self._in_name = ins[0].name
        self._out_names = [o.name for o in outs]
        self._x = np.zeros(self.inputs[0].shape, self.inputs[0].dtype)
        self._outs: list[np.ndarray] = []
        active = self._sess.get_providers()
        for p in accel:
            if p not in active:
                log.warning("execution provider %s could not be registered for %s; skipped", p, where)
                attempts.append(DelegateAttempt(p, False, "could not be registered"))
        taken, total, by_provider = 0, 0, Counter()
        if accel:
            by_provider = self._profiled_invoke()
            total = sum(by_provider.values())
            taken = sum(n for p, n in by_provider.items() if p != CPU)
            for p in accel:
                if p in active and by_provider.get(p, 0) == 0:
                    log.warning("execution provider %s took none of the %d graph nodes of %s", p, total, where)
                    attempts.append(DelegateAttempt(p, False, f"took none of the {total} nodes"))
        runs_on = [p for p in active if p == CPU or by_provider.get(p, 0) > 0]
        label = " + ".join(short(p) for p in runs_on) + f" (ONNX Runtime x{settings.threads})"
        failed = [a for a in attempts if not a.ok]
        if failed:
            label += " (fallback: " + "; ".join(f"{a.library} {a.reason}" for a in failed) + ")"
        if taken and taken < total:
            log.warning("accelerator providers took %d of %d graph nodes; the rest run on the CPU", taken, total)
        self.backend = Backend(
            label,
            threads=settings.threads,
            attempts=attempts,
            runtime=self.name,
            accelerator_nodes=taken,
            graph_nodes=total,
            accelerator_requested=bool(settings.providers and any(p != CPU for p in settings.providers)),
        )

    def _session(self, blob: bytes, providers: list[str], profile: bool = False):
        ort = _ort()
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.settings.threads
        so.inter_op_num_threads = 1
        # Threads that spin between operators steal the cores the camera and PLC threads need.
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.log_severity_level = 3  # deprecation notes from the converter's Resize attributes are not for operators
        if profile:
            self._profile_dir = tempfile.mkdtemp(prefix="ort-profile-")
            so.enable_profiling = True
            so.profile_file_prefix = os.path.join(self._profile_dir, "load")
        try:
            return ort.InferenceSession(blob, so, providers=providers)
        except Exception as exc:  # ONNX Runtime raises its own exception types (Fail, InvalidGraph, ...)
            raise ModelError(f"{self.where}: ONNX Runtime cannot load the model: {exc}") from None

    def _profiled_invoke(self) -> Counter:
        """Nodes per provider, from the profile of one invoke (then profiling stops)."""
        self.invoke()
        path = Path(self._sess.end_profiling())
        try:
            events = json.loads(path.read_text())
        except (OSError, ValueError):
            return Counter()
        finally:
            path.unlink(missing_ok=True)
            try:
                os.rmdir(self._profile_dir)
            except OSError:
                pass
        nodes = {}
        for e in events:
            args = e.get("args") or {}
            if e.get("cat") == "Node" and "provider" in args:
                nodes[e.get("name", "").removesuffix("_kernel_time")] = args["provider"]
        return Counter(nodes.values())

    @staticmethod
    def _spec(i: int, d) -> TensorSpec:
        dtype = np.dtype(_DTYPES.get(d.type, np.float32))
        shape = tuple(int(v) if isinstance(v, int) else -1 for v in d.shape)
        # A uint8 graph input holds raw values: what LiteRT reports as scale 1, zero point 0.
        q = (1.0, 0) if dtype == np.uint8 else None
        return TensorSpec(i, d.name, shape, dtype, q)

    # ------------------------------------------------------------------ run
    def input_view(self) -> np.ndarray:
        return self._x[0]

    def set_input(self, x: np.ndarray) -> None:
        np.copyto(self._x, x, casting="unsafe")

    def invoke(self) -> None:
        self._outs = self._sess.run(self._out_names, {self._in_name: self._x})

    def output(self, index: int) -> np.ndarray:
        return self._outs[index]  # a fresh array per invoke

    def cpu_twin(self) -> Runtime | None:
        if not self.backend.accelerated:
            return None
        twin = OnnxRuntime.__new__(OnnxRuntime)
        twin.where, twin.settings, twin._blob = self.where, self.settings, self._blob
        twin._sess = twin._session(self._blob, [CPU])
        twin.inputs, twin.outputs = self.inputs, self.outputs
        twin._in_name, twin._out_names = self._in_name, self._out_names
        twin._x, twin._outs = np.zeros_like(self._x), []
        twin.backend = Backend(f"CPU (ONNX Runtime x{self.settings.threads})", runtime=self.name)
        return twin

    def _built_at(self, old: tuple[int, int], new: tuple[int, int]) -> Runtime | None:
        """The exported graph upsamples by scale factors, so only its declared input and output shapes name
        the size; `_model_at` rewrites them in a copy (with the `onnx` package; None without it). None too
        where ONNX Runtime will not build it.
        """
        height, width = new
        blob = _model_at(self._blob, old, new)
        if blob is None:
            return None
        sized = OnnxRuntime.__new__(OnnxRuntime)
        sized.where, sized.settings, sized._blob = self.where, self.settings, blob
        try:
            sized._sess = sized._session(blob, [CPU])
        except ModelError as exc:
            log.info("%s: the graph does not run at %dx%d (%s)", self.where, width, height, exc)
            return None
        ins, outs = sized._sess.get_inputs(), sized._sess.get_outputs()
        sized.inputs = [self._spec(i, d) for i, d in enumerate(ins)]
        sized.outputs = [self._spec(i, d) for i, d in enumerate(outs)]
        sized._in_name, sized._out_names = ins[0].name, [o.name for o in outs]
        sized._x, sized._outs = np.zeros(sized.inputs[0].shape, sized.inputs[0].dtype), []
        sized.backend = replace(self.backend)
        return sized

    def close(self) -> None:
        self._sess = None
        self._outs = []


def _model_at(blob: bytes, old: tuple[int, int], new: tuple[int, int]) -> bytes | None:
    """`blob` with its input declared (1, new h, new w, C) and each 4-d output's grid scaled alike.

    None without the `onnx` package, or where an output's grid would not be a whole number of cells.
    Shapes the converter inferred inside the graph (`value_info`) are dropped: ONNX Runtime infers them again.
    """
    try:
        import onnx
        from google.protobuf.message import DecodeError
    except ImportError:
        return None
    try:
        model = onnx.load_from_string(blob)
    except DecodeError as exc:  # ONNX Runtime read these bytes; the onnx package's protobuf may not
        log.info("the onnx package cannot read the graph (%s); the reduced pass stays letterboxed", exc)
        return None
    graph = model.graph
    dims = graph.input[0].type.tensor_type.shape.dim
    if len(dims) != 4:
        return None
    dims[1].dim_value, dims[2].dim_value = new
    for out in graph.output:
        d = out.type.tensor_type.shape.dim
        if len(d) != 4:
            continue
        grid = [d[1].dim_value * new[0], d[2].dim_value * new[1]]
        if grid[0] % old[0] or grid[1] % old[1]:
            return None
        d[1].dim_value, d[2].dim_value = grid[0] // old[0], grid[1] // old[1]
    del graph.value_info[:]
    return model.SerializeToString()


def create(cfg: OnnxRuntimeSettings) -> Detector:
    """The package `cfg.model` on ONNX Runtime, built but not loaded."""
    from ..packaged import PackagedDetector

    return PackagedDetector(cfg.model, cfg)


CONFIG = OnnxRuntimeSettings
RUNTIME = OnnxRuntime
