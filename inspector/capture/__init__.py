"""Camera backends, one module per variant, chosen by `camera.type` (see `registry.py`)."""

from __future__ import annotations

from typing import Any

from .base import Camera, CameraError


def create_camera(cfg: Any) -> Camera:
    """Build (but do not open) the camera the configuration (`StationConfig`) names.

    Backends import their driver lazily so that a station without Aravis or harvesters installed
    still runs the others.
    """
    from .registry import camera_backends

    cam = cfg.camera
    backend = camera_backends().get(cam.type)
    if backend is None:
        raise CameraError(f"camera.type {cam.type!r} is not supported")
    return backend.create(cam)


__all__ = ["Camera", "CameraError", "create_camera"]
