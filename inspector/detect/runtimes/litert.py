"""LiteRT (TensorFlow Lite): `[detector] type = "litert"`, packages whose sidecar names runtime "litert".

A detector plug-in (`inspector.detect.registry`): `CONFIG` (the shared package keys plus LiteRT's own,
`delegate` and `auto_delegates`), `create` and `RUNTIME`, an interpreter on the first accelerator
delegate that takes the graph, else XNNPACK.

Why it is built this way:
- The interpreter is created in the thread that loads the detector (the pipeline's inference
  thread, or a hot swap's loader) and only one thread invokes it at a time: LiteRT interpreters are
  not thread-safe.
- An external delegate is applied without LiteRT's default XNNPACK delegate, so every DELEGATE
  kernel in the graph is the accelerator's and the count of nodes it took is exact
  (`delegates.delegated_nodes`). A delegate that loads but takes no node is not used: the CPU with
  XNNPACK is faster than the builtin kernels it would leave behind, and the backend string says why.
- The input is written in place (`input_view`): the stacked board goes straight into the tensor.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..base import Detector, ModelError
from ..delegates import (
    DEFAULT_AUTO_DELEGATES,
    Backend,
    ExternalDelegate,
    candidates,
    cpu_label,
    delegate_label,
    delegated_nodes,
    fallback_note,
    runtime,
    try_load,
)
from ..settings import PackagedModelSettings
from .base import Runtime, TensorSpec

log = logging.getLogger(__name__)


class LiteRTSettings(PackagedModelSettings):
    """`[detector]` for a LiteRT package: the shared package keys plus the delegates to try."""

    model_suffixes = (".tflite",)

    type: Literal["litert"] = Field(
        "litert", description="A packaged model on LiteRT (.tflite; its sidecar names runtime 'litert')."
    )
    delegate: Literal["auto", "cpu"] | ExternalDelegate = Field(
        "auto", description="auto: try `auto_delegates` then CPU; cpu: XNNPACK; or one external delegate."
    )
    auto_delegates: list[ExternalDelegate] = Field(
        default_factory=lambda: list(DEFAULT_AUTO_DELEGATES), description="Delegates tried in order by 'auto'."
    )

    def cpu_only(self) -> LiteRTSettings:
        return super().cpu_only().model_copy(update={"delegate": "cpu"})


def _spec(d: dict) -> TensorSpec:
    dtype = np.dtype(d["dtype"])
    scale, zp = d["quantization"]
    q = None if dtype == np.float32 else (float(scale), int(zp))
    return TensorSpec(int(d["index"]), str(d.get("name", "")), tuple(int(v) for v in d["shape"]), dtype, q)


class LiteRTRuntime(Runtime):
    name = "litert"

    def __init__(self, blob: bytes, where: str, settings: LiteRTSettings, **hooks: Any):
        self.where = where
        self.settings = settings
        self._loader = hooks.get("delegate_loader")
        """Replaces LiteRT's `load_delegate` (tests)."""
        self._blob = blob
        self._it, self.backend = self._build(blob)
        self.inputs = [_spec(d) for d in self._it.get_input_details()]
        self.outputs = [_spec(d) for d in self._it.get_output_details()]

    # ------------------------------------------------------------------ build
    def _interpreter(self, blob: bytes, delegate=None):
        rt = runtime()
        kwargs = {"model_content": blob, "num_threads": self.settings.threads}
        if delegate is not None:
            kwargs["experimental_delegates"] = [delegate]
            kwargs["experimental_op_resolver_type"] = rt.OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES
        it = rt.Interpreter(**kwargs)
        it.allocate_tensors()
        return it

    def _build(self, blob: bytes):
        """Interpreter on the first delegate that loads and takes part of the graph, else on XNNPACK."""
        opts = self.settings
        cands = candidates(opts.delegate, opts.auto_delegates)
        attempts = []
        for cfg in cands:
            d, attempt = try_load(cfg, self._loader)
            attempts.append(attempt)
            if d is None:
                continue
            try:
                it = self._interpreter(blob, d)
            except (ValueError, RuntimeError, AttributeError, TypeError) as exc:
                attempt.ok, attempt.reason = False, "refused the graph"
                log.warning("delegate %s loaded but could not run %s: %s", cfg.library, self.where, exc)
                continue
            taken, total = delegated_nodes(it)
            label = delegate_label(cfg)
            if total and taken == 0:
                attempt.ok, attempt.reason = False, f"took none of the {total} nodes"
                log.warning(
                    "delegate %s (%s) loaded but took none of the %d graph nodes of %s: not used, the CPU runs it",
                    label,
                    cfg.library,
                    total,
                    self.where,
                )
                del it
                continue
            if taken < total:
                log.warning(
                    "delegate %s took %d of %d graph nodes; the other %d run on the CPU's builtin kernels",
                    label,
                    taken,
                    total,
                    total - taken,
                )
            else:
                log.info("delegate %s took all %d graph nodes", label, total)
            # Counting needs the private op listing; when absent the delegate is trusted, as before.
            backend = Backend(
                label,
                d,
                cfg,
                opts.threads,
                attempts,
                runtime=self.name,
                accelerator_nodes=taken if total else 1,
                graph_nodes=total,
                accelerator_requested=True,
            )
            return it, backend
        try:
            it = self._interpreter(blob)
        except (ValueError, RuntimeError) as exc:
            raise ModelError(f"{self.where}: LiteRT cannot load the model: {exc}") from None
        xnn, total = delegated_nodes(it)
        label = cpu_label(opts.threads) + fallback_note(attempts)
        return it, Backend(
            label,
            threads=opts.threads,
            attempts=attempts,
            runtime=self.name,
            graph_nodes=total,
            cpu_delegate_nodes=xnn,
            accelerator_requested=bool(cands),
        )

    # ------------------------------------------------------------------ run
    def input_view(self) -> np.ndarray:
        return self._it.tensor(self.inputs[0].index)()[0]

    def set_input(self, x: np.ndarray) -> None:
        self._it.set_tensor(self.inputs[0].index, x)

    def invoke(self) -> None:
        self._it.invoke()

    def output(self, index: int) -> np.ndarray:
        return self._it.get_tensor(index)  # a copy: stays valid after the next invoke

    def cpu_twin(self) -> Runtime | None:
        if not self.backend.accelerated:
            return None
        twin = LiteRTRuntime.__new__(LiteRTRuntime)
        twin.where, twin.settings, twin._blob = self.where, self.settings, self._blob
        twin._it = self._interpreter(self._blob)
        twin.backend = Backend(cpu_label(self.settings.threads), threads=self.settings.threads)
        twin.inputs, twin.outputs = self.inputs, self.outputs
        return twin

    def _built_at(self, old: tuple[int, int], new: tuple[int, int]) -> Runtime | None:
        """LiteRT can re-size a fully convolutional graph's input, but an upsampling layer stores its output
        size as a constant; those constants are scaled with the input (`_graph_at`) in a copy of the
        verified bytes. A graph whose sizes do not scale to whole numbers, or that LiteRT will not
        allocate at the new size, gives None.
        """
        spec = self.inputs[0]
        height, width = new
        blob = _graph_at(self._blob, old, new)
        if blob is None:
            return None
        try:
            it = runtime().Interpreter(model_content=blob, num_threads=self.settings.threads)
            it.resize_tensor_input(spec.index, [1, height, width, spec.shape[3]])
            it.allocate_tensors()
        except (ValueError, RuntimeError) as exc:
            log.info("%s: the graph does not run at %dx%d (%s)", self.where, width, height, exc)
            return None
        sized = LiteRTRuntime.__new__(LiteRTRuntime)
        sized.where, sized.settings, sized._loader, sized._blob = self.where, self.settings, self._loader, blob
        sized._it, sized.backend = it, replace(self.backend)  # its own: `close` clears a backend's delegate
        sized.inputs = [_spec(d) for d in it.get_input_details()]
        sized.outputs = [_spec(d) for d in it.get_output_details()]
        return sized

    def close(self) -> None:
        self._it = None
        self._blob = b""
        self.backend.delegate = None


_RESIZE_OPS = ("RESIZE_NEAREST_NEIGHBOR", "RESIZE_BILINEAR")


def _graph_at(blob: bytes, old: tuple[int, int], new: tuple[int, int]) -> bytes | None:
    """`blob` with every resize layer's constant output size scaled from input size `old` to `new` (h, w).

    None when the schema module is missing, a size is computed rather than stored, or a size would not
    be a whole number (the graph's strides do not divide the new input). Sizes are read from `blob` and
    written to the copy, so a constant the converter shares between equal layers is scaled once.
    """
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        return None
    model = schema.Model.GetRootAs(blob, 0)
    codes = {getattr(schema.BuiltinOperator, name) for name in _RESIZE_OPS}
    out = bytearray(blob)
    for g in range(model.SubgraphsLength()):
        sub = model.Subgraphs(g)
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            if max(code.BuiltinCode(), code.DeprecatedBuiltinCode()) not in codes:
                continue
            buf = model.Buffers(sub.Tensors(op.Inputs(1)).Buffer())
            if buf.DataLength() != 8:  # not two stored int32: computed at run time, or outside the file
                return None
            start = buf._tab.Vector(buf._tab.Offset(4))  # field 0 (`data`): the vector's first byte in `blob`
            h, w = (int(v) for v in np.frombuffer(blob, "<i4", 2, start))
            if (h * new[0]) % old[0] or (w * new[1]) % old[1]:
                return None
            out[start : start + 8] = np.array([h * new[0] // old[0], w * new[1] // old[1]], "<i4").tobytes()
    return bytes(out)


def create(cfg: LiteRTSettings) -> Detector:
    """The package `cfg.model` on LiteRT, built but not loaded."""
    from ..packaged import PackagedDetector

    return PackagedDetector(cfg.model, cfg)


CONFIG = LiteRTSettings
RUNTIME = LiteRTRuntime
