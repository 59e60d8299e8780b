"""Delegate loading: try the configured accelerators, fall back to the CPU, and say what runs.

Why so careful: a station that silently fell back from its NPU to the CPU would miss its cycle
time with nobody knowing why. Every failure is caught, logged with its cause and folded into the
backend string the health panel and the UI show, e.g.
`CPU XNNPACK x2 (fallback: libvx_delegate.so not found)`.

LiteRT's `load_delegate` raises OSError for a missing library, AttributeError for a library that
is not a delegate (no `tflite_plugin_create_delegate`), and ValueError when the plugin returns null.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..config import ExternalDelegate

log = logging.getLogger(__name__)


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
    """What the interpreter was built with."""

    label: str
    """Shown to people: `NPU (vx)` or `CPU XNNPACK x2 (fallback: ...)`."""
    delegate: Any | None = None
    delegate_cfg: ExternalDelegate | None = None
    threads: int = 1
    attempts: list[DelegateAttempt] = field(default_factory=list)

    @property
    def is_cpu(self) -> bool:
        return self.delegate is None


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
