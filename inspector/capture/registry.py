"""The camera backends: one module each, named here once.

Why a registry: the `[camera]` union in the station file, `--camera KIND:...` on the command line
and `create_camera` are all built from this list, so a new camera is one new module plus one line
below. Each module exports
- `CONFIG`: its settings class (`type: Literal["<name>"]`, built on `inspector.config_base.Section`);
- `create(cfg) -> Camera`: the camera, built but not opened (drivers are imported when it opens, so a
  station without Aravis or harvesters still runs the others);
- `parse_spec(spec, rest)` (optional): `--camera <name>:REST` -> a validated `CONFIG`.

This module and the backend modules must not import `inspector.config`: it imports them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import BaseModel

#: Camera type -> the module that implements it (the order is the order shown in help and errors).
CAMERA_MODULES: dict[str, str] = {
    "replay": "inspector.capture.replay",
    "aravis": "inspector.capture.aravis",
    "opencv": "inspector.capture.opencv",
    "genicam": "inspector.capture.genicam",
}


@dataclass(frozen=True)
class CameraBackend:
    name: str
    config: type[BaseModel]
    create: Callable[[Any], Any]
    parse_spec: Callable[[str, str], BaseModel] | None


@cache
def camera_backends() -> dict[str, CameraBackend]:
    """Camera type -> its backend; a module whose CONFIG names another type is an error, named."""
    out: dict[str, CameraBackend] = {}
    for name, module_name in CAMERA_MODULES.items():
        module = importlib.import_module(module_name)
        config = getattr(module, "CONFIG", None)
        create = getattr(module, "create", None)
        if config is None or create is None:
            raise ImportError(f"camera module {module_name} must export CONFIG and create()")
        declared = config.model_fields["type"].default
        if declared != name:
            raise ImportError(f"camera module {module_name}: CONFIG.type is {declared!r}, registered as {name!r}")
        out[name] = CameraBackend(name, config, create, getattr(module, "parse_spec", None))
    return out


def camera_configs() -> dict[str, type[BaseModel]]:
    """Camera type -> settings class: what `[camera]` in a station file may hold."""
    return {name: b.config for name, b in camera_backends().items()}
