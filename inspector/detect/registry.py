"""The detector backends: one plug-in module each, named here once; `[detector] type = "<name>"` picks one.

Why a registry: the `[detector]` union in the station file, `create_detector`, the runtimes a
model package may name and the error for an unknown type are all built from this list, so a new
backend (or a new runtime for packaged models) is one new module plus one line below. Each module
exports
- `CONFIG`: its settings class (`type: Literal["<name>"]`, built on `inspector.config_base.Section`;
  a runtime for packaged models builds on `inspector.detect.settings.PackagedModelSettings`, which
  holds the keys every package has);
- `create(cfg) -> Detector`: the detector, built but not loaded (the inference thread loads it);
- `RUNTIME` (runtimes only): the `inspector.detect.runtimes.base.Runtime` subclass that runs a
  package whose sidecar says `"runtime": "<name>"`.

Plug-in modules import their runtime library when a graph loads, not at the top: they are imported
while `inspector.config` loads, and a station without one runtime installed still runs the others.
This module and the plug-in modules must not import `inspector.config`: it imports them.
"""

from __future__ import annotations

import importlib
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from .settings import PackagedModelSettings

log = logging.getLogger(__name__)

#: Detector type -> the module that implements it. The first entry is the default type.
DETECTOR_MODULES: dict[str, str] = {
    "litert": "inspector.detect.runtimes.litert",
    "onnxruntime": "inspector.detect.runtimes.onnxruntime",
    "classical": "inspector.detect.classical",
}


@dataclass(frozen=True)
class DetectorBackend:
    name: str
    config: type[BaseModel]
    create: Callable[[Any], Any]
    runtime: type | None
    """The Runtime class for packages whose sidecar names this type; None for other backends."""


@cache
def detector_backends() -> dict[str, DetectorBackend]:
    """Detector type -> its backend; a module that breaks the contract is an ImportError naming it."""
    out: dict[str, DetectorBackend] = {}
    for name, module_name in DETECTOR_MODULES.items():
        module = importlib.import_module(module_name)
        config = getattr(module, "CONFIG", None)
        create = getattr(module, "create", None)
        runtime = getattr(module, "RUNTIME", None)
        if config is None or create is None:
            raise ImportError(f"detector module {module_name} must export CONFIG and create()")
        declared = config.model_fields["type"].default if "type" in config.model_fields else None
        if declared != name:
            raise ImportError(f"detector module {module_name}: CONFIG.type is {declared!r}, registered as {name!r}")
        if runtime is not None:
            if not issubclass(config, PackagedModelSettings):
                raise ImportError(f"detector module {module_name}: a runtime's CONFIG must be a PackagedModelSettings")
            if getattr(runtime, "name", None) != name:
                raise ImportError(f"detector module {module_name}: RUNTIME.name is not {name!r}")
        out[name] = DetectorBackend(name, config, create, runtime)
    return out


def detector_configs() -> dict[str, type[BaseModel]]:
    """Detector type -> settings class: what `[detector]` in a station file may hold."""
    return {name: b.config for name, b in detector_backends().items()}


def detector_types() -> tuple[str, ...]:
    return tuple(detector_backends())


def default_detector() -> BaseModel:
    """The `[detector]` of a station file without one: the first type's defaults (the bundled model)."""
    return next(iter(detector_configs().values()))()


def detector_factory(type_: str) -> Callable[[Any], Any]:
    """The create function of detector type `type_`; ValueError naming the known types otherwise."""
    backend = detector_backends().get(type_)
    if backend is None:
        raise ValueError(f"detector.type {type_!r} is not one of {', '.join(detector_backends())}")
    return backend.create


def with_type(data: Any) -> Any:
    """A `[detector]` table as the plug-ins read it: `type` set, old spellings turned into today's.

    Station files written before detectors were plug-ins still load: `engine` is the old name of
    `type` (deprecation message); without `type` the model file's ending picks the runtime (`.onnx`:
    onnxruntime), as the sidecar did then; a key of another detector type (`providers` beside
    `type = "litert"`, `delegate` for the classical detector) had no effect there and is dropped with a
    deprecation message naming it. A key no detector type knows stays an error.
    """
    if not isinstance(data, dict):
        return data
    data = dict(data)
    if "engine" in data:
        engine = data.pop("engine")
        if "type" in data and data["type"] != engine:
            raise ValueError(f"give detector.type only (engine = {engine!r} is its old name)")
        data["type"] = engine
        _deprecated(f"detector.engine is deprecated: write `type = {engine!r}` in [detector]")
    configs = detector_configs()
    if "type" not in data:
        data["type"] = _type_for_model(data.get("model"), configs)
    own = configs.get(data["type"]) if isinstance(data["type"], str) else None
    if own is None:
        return data  # the union names the known types
    for key in [k for k in data if k not in own.model_fields]:
        owners = [name for name, cls in configs.items() if key in cls.model_fields]
        if owners:
            data.pop(key)
            _deprecated(
                f"detector.{key} is a setting of type {' / '.join(map(repr, owners))}, not of type "
                f"{data['type']!r}: ignored (remove it from [detector])"
            )
    return data


def _type_for_model(model: Any, configs: dict[str, type[BaseModel]]) -> str:
    suffix = Path(str(model)).suffix.lower() if model is not None else ""
    for name, cls in configs.items():
        if suffix and suffix in getattr(cls, "model_suffixes", ()):
            return name
    return next(iter(configs))


def _deprecated(msg: str) -> None:
    warnings.warn(msg, DeprecationWarning, stacklevel=4)
    log.warning("%s", msg)


def settings_for_model(base: BaseModel, model: Path | str) -> PackagedModelSettings:
    """`[detector]` settings for running the package `model` (whatever runtime its sidecar names).

    For tools that pick a package by hand (`bench --model`, `evaluate --model`, the UI's model
    panel): the shared keys (threads, keys, tile overlap, ...) come from `base`; the runtime's own keys
    too when the package is of `base`'s type, else that runtime's defaults. The station itself runs
    `detector.model` on `detector.type` as configured, and refuses a package of another runtime.
    """
    from .package import read_meta

    model = Path(model)
    runtime = read_meta(model).runtime
    if isinstance(base, PackagedModelSettings) and base.type == runtime:
        return base.model_copy(update={"model": model})
    cls = detector_configs()[runtime]
    shared = [k for k in PackagedModelSettings.model_fields if k != "type"]
    keys = {k: getattr(base, k) for k in shared if isinstance(base, PackagedModelSettings)}
    out = cls(**{**keys, "model": model})
    if isinstance(base, PackagedModelSettings):
        out._storage = base._storage
    return out
