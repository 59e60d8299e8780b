"""The detector backends, named here once: `[detector] type = "<name>"` picks one.

Why a registry: the allowed values of `detector.type`, `create_detector` and the error for an unknown
type all come from this table, so a new backend is its module plus one line below. Each entry is
"module:function"; the function takes the `[detector]` section and returns a `Detector`, built but not
loaded (the inference thread loads it). Modules are imported only when their backend is built, so a
station without a runtime installed still runs the others.

This module must not import `inspector.config` (that module reads the names below while loading).
"""

from __future__ import annotations

import importlib
from typing import Any

#: Detector type -> "module:create function". The first entry is the default type.
DETECTOR_BACKENDS: dict[str, str] = {
    "litert": "inspector.detect.factory:create_litert",
    "classical": "inspector.detect.classical:create",
}


def detector_types() -> tuple[str, ...]:
    return tuple(DETECTOR_BACKENDS)


def detector_factory(type_: str) -> Any:
    """The create function of detector type `type_`; ValueError naming the known types otherwise."""
    target = DETECTOR_BACKENDS.get(type_)
    if target is None:
        raise ValueError(f"detector.type {type_!r} is not one of {', '.join(DETECTOR_BACKENDS)}")
    module_name, _, func = target.partition(":")
    return getattr(importlib.import_module(module_name), func)
