"""The runtimes a model package can name in its sidecar (`runtime`), each a module in this package.

Why a registry of import paths: a station without ONNX Runtime installed still runs LiteRT
packages, and a package naming a runtime that is not listed is refused with the key named.
"""

from __future__ import annotations

import importlib

from ..base import ModelError
from .base import Runtime, RuntimeOptions, TensorSpec

#: sidecar `runtime` value -> "module:class". Adding a runtime adds one line here.
RUNTIMES: dict[str, str] = {
    "litert": "inspector.detect.runtimes.litert:LiteRTRuntime",
    "onnxruntime": "inspector.detect.runtimes.onnxruntime:OnnxRuntime",
}


def runtime_class(name: str, where: str = "") -> type[Runtime]:
    """The Runtime class for a sidecar's `runtime`; ModelError naming the key for an unknown one."""
    target = RUNTIMES.get(name)
    if target is None:
        raise ModelError(f"{where}: runtime {name!r} is not one of {sorted(RUNTIMES)}")
    module, cls = target.split(":")
    return getattr(importlib.import_module(module), cls)


__all__ = ["RUNTIMES", "Runtime", "RuntimeOptions", "TensorSpec", "runtime_class"]
