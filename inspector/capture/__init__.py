"""Camera backends, one module per variant, chosen by `camera.type`."""

from __future__ import annotations

from ..config import StationConfig
from .base import Camera, CameraError


def create_camera(cfg: StationConfig) -> Camera:
    """Build (but do not open) the camera the configuration names.

    Backends import their driver lazily so that a station without Aravis or harvesters installed
    still runs the others.
    """
    cam = cfg.camera
    if cam.type == "replay":
        from .replay import ReplayCameraSource

        return ReplayCameraSource(cam)
    if cam.type == "opencv":
        from .opencv import OpenCVCameraSource

        return OpenCVCameraSource(cam)
    if cam.type == "aravis":
        from .aravis import AravisCameraSource

        return AravisCameraSource(cam)
    if cam.type == "genicam":
        from .genicam import GenicamCameraSource

        return GenicamCameraSource(cam)
    raise CameraError(f"camera.type {cam.type!r} is not supported")


__all__ = ["Camera", "CameraError", "create_camera"]
