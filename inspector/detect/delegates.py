"""LiteRT delegate loading: try the configured accelerators, fall back to the CPU, and say what runs.

Why so careful: a station that silently fell back from its NPU to the CPU would miss its cycle
time with nobody knowing why. Every failure is caught, logged with its cause and folded into the
backend string the health panel and the UI show, e.g.
`CPU XNNPACK x2 (fallback: libvx_delegate.so not found)`.

LiteRT's `load_delegate` raises OSError for a missing library, AttributeError for a library that
is not a delegate (no `tflite_plugin_create_delegate`), and ValueError when the plugin returns null.

Also here: `ExternalDelegate`, the settings of one delegate (the LiteRT plug-in's `delegate` and
`auto_delegates` keys; a light class, since plug-in settings load with `inspector.config`), and
`Backend`, what every runtime reports about the hardware that took the graph.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import Field

from ..config_base import Section

log = logging.getLogger(__name__)


class ExternalDelegate(Section):
    """One LiteRT external delegate (`[detector] delegate = {...}` or an `auto_delegates` entry)."""

    library: str = Field(..., min_length=1, description="Delegate shared library, e.g. libvx_delegate.so.")
    options: dict[str, str | int | float | bool] = Field(
        default_factory=dict, description="Options passed to the delegate, e.g. {backends = 'GpuAcc,CpuAcc'}."
    )
    label: str | None = Field(None, description="Name shown in the UI, e.g. 'NPU (vx)'.")


DEFAULT_AUTO_DELEGATES = [
    ExternalDelegate(library="libvx_delegate.so", label="NPU (vx)"),
    ExternalDelegate(library="libedgetpu.so.1", label="Edge TPU"),
    ExternalDelegate(library="libarmnnDelegate.so", options={"backends": "GpuAcc,CpuAcc"}, label="GPU (Arm NN)"),
]


def _import_runtime():
    """LiteRT first (XNNPACK INT8, numpy 2); tflite_runtime for older images."""
    try:
        from ai_edge_litert import interpreter as rt  # type: ignore[import-not-found]
    except ImportError:  # pragma: no cover - depends on the image
        from tflite_runtime import interpreter as rt  # type: ignore[import-not-found,no-redef]
    return rt


def runtime():
    """The interpreter module (imported lazily so config-only commands stay fast)."""
    global _RT
    if _RT is None:
        _RT = _import_runtime()
    return _RT


_RT = None


@dataclass(slots=True)
class DelegateAttempt:
    library: str
    ok: bool
    reason: str = ""
    """Short cause for the backend string: 'not found', 'not a delegate', 'refused: ...'."""


@dataclass(slots=True)
class Backend:
    """What the interpreter was built with, and what really runs the graph."""

    label: str
    """Shown to people: `NPU (vx)` or `CPU XNNPACK x2 (fallback: ...)`."""
    delegate: Any | None = None
    delegate_cfg: ExternalDelegate | None = None
    threads: int = 1
    attempts: list[DelegateAttempt] = field(default_factory=list)
    runtime: str = "litert"
    accelerator_nodes: int = 0
    """Graph nodes an accelerator took (counted, not assumed); XNNPACK's CPU kernels never count."""
    graph_nodes: int = 0
    """Nodes in the model graph (0 when the runtime cannot tell)."""
    cpu_delegate_nodes: int = 0
    """Nodes the CPU's own delegate (XNNPACK) took: fast CPU kernels, not an accelerator."""
    accelerator_requested: bool = False
    """The configuration asked for an accelerator (a delegate or an execution provider besides the CPU)."""

    @property
    def accelerated(self) -> bool:
        return self.accelerator_nodes > 0

    @property
    def is_cpu(self) -> bool:
        return not self.accelerated

    @property
    def cpu_fallback(self) -> bool:
        """An accelerator was asked for and the CPU runs the graph: an amber lamp, not a green one."""
        return self.accelerator_requested and not self.accelerated

    def fallback_reason(self) -> str:
        failed = [f"{a.library} {a.reason}" for a in self.attempts if not a.ok]
        return "; ".join(failed) or "no accelerator took the graph"


def cpu_label(threads: int) -> str:
    return f"CPU XNNPACK x{threads}"


def delegate_label(cfg: ExternalDelegate) -> str:
    return cfg.label or cfg.library


def short_reason(exc: BaseException) -> str:
    if isinstance(exc, OSError):
        return "not found" if "No such file" in str(exc) or "cannot open" in str(exc) else f"cannot load: {exc}"
    if isinstance(exc, AttributeError):
        return "not a delegate"
    msg = str(exc).strip().splitlines()
    detail = msg[-1] if msg else ""
    return f"refused{': ' + detail if detail else ''}"


def try_load(cfg: ExternalDelegate, loader: Callable | None = None) -> tuple[Any | None, DelegateAttempt]:
    """Load one external delegate; never raises for the three documented failure kinds."""
    loader = loader or runtime().load_delegate
    try:
        d = loader(cfg.library, dict(cfg.options) or None)
    except (OSError, AttributeError, ValueError) as exc:
        _disarm(exc)
        reason = short_reason(exc)
        log.warning(
            "delegate %s (%s) not used: %s [%s: %s]",
            delegate_label(cfg),
            cfg.library,
            reason,
            type(exc).__name__,
            str(exc).strip().replace("\n", " "),
        )
        return None, DelegateAttempt(cfg.library, False, reason)
    log.info("delegate %s loaded from %s with options %s", delegate_label(cfg), cfg.library, dict(cfg.options))
    return d, DelegateAttempt(cfg.library, True)


def _disarm(exc: BaseException) -> None:
    """Stop a half-built LiteRT `Delegate` from failing again in its finaliser.

    `Delegate.__del__` calls the plugin's destroy function, which a missing library, a library
    without the symbol or a null plugin cannot serve; it would print "Exception ignored" noise
    (or call destroy on a null pointer) when the object is collected.
    """
    tb = exc.__traceback__
    while tb is not None:
        obj = tb.tb_frame.f_locals.get("self")
        if obj is not None and type(obj).__name__ == "Delegate":
            obj._library = None
        tb = tb.tb_next


def candidates(delegate: str | ExternalDelegate, auto_list: Sequence[ExternalDelegate]) -> list[ExternalDelegate]:
    """The external delegates to try, in order, for a `detector.delegate` value."""
    if isinstance(delegate, ExternalDelegate):
        return [delegate]
    if delegate == "auto":
        return list(auto_list)
    if delegate == "cpu":
        return []
    raise ValueError(f"detector.delegate {delegate!r} is not 'auto', 'cpu' or {{library, options}}")


def fallback_note(attempts: Sequence[DelegateAttempt]) -> str:
    failed = [a for a in attempts if not a.ok]
    if not failed:
        return ""
    if len(failed) > 1 and all(a.reason == "not found" for a in failed):
        return f" (fallback: none of {', '.join(a.library for a in failed)} found)"
    return " (fallback: " + "; ".join(f"{a.library} {a.reason}" for a in failed) + ")"


def describe(backend: Backend) -> str:
    return backend.label


def delegated_nodes(it) -> tuple[int, int]:
    """(graph nodes inside DELEGATE kernels, graph nodes) of an allocated LiteRT interpreter.

    Why a walk: LiteRT lists the original nodes and, after them, one DELEGATE node per partition a
    delegate took, but not which nodes each partition holds. A partition's nodes are the producers
    found walking back from its outputs until its inputs. (0, 0) when the runtime cannot tell.
    """
    try:
        ops = it._get_ops_details()  # private API; absent on some runtimes
    except Exception:
        return 0, 0
    graph = [o for o in ops if o.get("op_name", "").upper() != "DELEGATE"]
    producer = {int(t): int(o["index"]) for o in graph for t in o["outputs"]}
    by_index = {int(o["index"]): o for o in graph}
    taken: set[int] = set()
    for d in ops:
        if d.get("op_name", "").upper() != "DELEGATE":
            continue
        bounds = {int(t) for t in d["inputs"]}
        stack = [int(t) for t in d["outputs"]]
        seen: set[int] = set()
        while stack:
            t = stack.pop()
            if t in seen or t in bounds or t not in producer:
                continue
            seen.add(t)
            node = producer[t]
            if node not in taken:
                taken.add(node)
                stack.extend(int(x) for x in by_index[node]["inputs"] if int(x) >= 0)
    return len(taken), len(graph)
