"""The runtimes a model package can name in its sidecar (`runtime`), each a detector plug-in module.

Why no table of its own: a runtime is a detector type (`[detector] type = "<runtime>"`) whose
plug-in module also exports `RUNTIME`, so the one line in `inspector.detect.registry.DETECTOR_MODULES`
names it for the station file, `create_detector` and the sidecar check alike. A station without
ONNX Runtime installed still runs LiteRT packages (the library is imported when a graph loads), and a
package naming a runtime that is not registered is refused with the key named.
"""

from __future__ import annotations

from ..base import ModelError
from .base import Runtime, TensorSpec


def runtimes() -> dict[str, type[Runtime]]:
    """Sidecar `runtime` value -> its Runtime class, in registry order."""
    from ..registry import detector_backends

    return {name: b.runtime for name, b in detector_backends().items() if b.runtime is not None}


def runtime_class(name: str, where: str = "") -> type[Runtime]:
    """The Runtime class for a sidecar's `runtime`; ModelError naming the key for an unknown one."""
    cls = runtimes().get(name)
    if cls is None:
        raise ModelError(f"{where}: runtime {name!r} is not one of {sorted(runtimes())}")
    return cls


__all__ = ["Runtime", "TensorSpec", "runtime_class", "runtimes"]
