"""USB (UVC) cameras, RTSP/HTTP streams and GStreamer pipelines through OpenCV's VideoCapture.

Why it is here even though industrial cameras use Aravis/GenTL: bring-up rigs, retrofit stations
with a UVC camera, and IP cameras on older lines. It gives the same owned frames and the same errors
as the other backends, so the supervisor treats a dropped RTSP stream like a pulled GigE cable.

Limits that are OpenCV's, not the station's:
- `read()` blocks; for network sources the FFmpeg open/read timeouts are set from `timeout_s`, for a
  USB device the kernel driver decides. The backend starts no thread of its own (one owner per device).
- There is no hardware or camera-side software trigger: in `software` mode a trigger means "the next
  frame captured after it"; frames already queued in the driver are flushed first.
- GStreamer pipelines need an OpenCV built with GStreamer (the PyPI wheels are not); that is checked
  at open and named in the error.
"""

from __future__ import annotations

import logging
import time
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from ..config_base import Section, TriggerMode
from .base import Camera, CameraError, CameraInfo, FrameTimeout, Grab

log = logging.getLogger(__name__)

#: A read that returns faster than this after a trigger came from the driver's queue, not the sensor.
_QUEUED_S = 0.004
_MAX_FLUSH = 8


class OpenCVCamera(Section):
    type: Literal["opencv"] = Field("opencv", description="USB camera index, RTSP/HTTP URL or GStreamer pipeline.")
    source: int | str = Field(0, description="Device index, URL, or GStreamer pipeline string.")
    width: int | None = Field(None, ge=1, description="Requested frame width; None = device default.")
    height: int | None = Field(None, ge=1, description="Requested frame height; None = device default.")
    fps: float | None = Field(None, gt=0, description="Requested frame rate; None = device default.")
    trigger: TriggerMode = Field("free_run", description="free_run, or software (next frame per trigger).")
    timeout_s: float = Field(2.0, gt=0, le=60, description="Frame timeout before the watchdog counts a stall.")

    def frame_size(self) -> tuple[int, int] | None:
        return (self.width, self.height) if self.width and self.height else None


def _has_gstreamer() -> bool:
    for line in cv2.getBuildInformation().splitlines():
        if line.strip().startswith("GStreamer:"):
            return "YES" in line.split(":", 1)[1]
    return False


def source_kind(source: int | str) -> str:
    if isinstance(source, int):
        return "device"
    if "!" in source:
        return "gstreamer"
    if "://" in source:
        return "url"
    return "file"


class OpenCVCameraSource(Camera):
    def __init__(self, cfg: OpenCVCamera):
        self.cfg = cfg
        self.triggered = cfg.trigger != "free_run"
        self._cap: cv2.VideoCapture | None = None
        self._kind = source_kind(cfg.source)
        self.flushed = 0

    @property
    def description(self) -> str:
        from ..redact import safe_url

        src = self.cfg.source
        return f"opencv:{safe_url(src) if isinstance(src, str) else src}"  # never print stream credentials

    @property
    def nominal_fps(self) -> float | None:
        return None if self.triggered else self.cfg.fps

    def open(self) -> CameraInfo:
        self.close()
        cfg = self.cfg
        ms = int(cfg.timeout_s * 1000)
        if self._kind == "gstreamer":
            if not _has_gstreamer():
                raise CameraError(
                    f"{self.description}: this OpenCV has no GStreamer support (PyPI wheels do not); "
                    "use a device index or URL, or an OpenCV built with GStreamer"
                )
            cap = cv2.VideoCapture(cfg.source, cv2.CAP_GSTREAMER)
        elif self._kind == "device":
            cap = cv2.VideoCapture(cfg.source, cv2.CAP_ANY)
        else:
            params = [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, ms, cv2.CAP_PROP_READ_TIMEOUT_MSEC, ms]
            cap = cv2.VideoCapture(str(cfg.source), cv2.CAP_FFMPEG, params)
        if not cap.isOpened():
            cap.release()
            raise CameraError(f"{self.description}: cannot open ({self._kind})")
        if cfg.width:
            cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
        if cfg.height:
            cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
        if cfg.fps:
            cap.set(cv2.CAP_PROP_FPS, cfg.fps)
        if self._kind == "device":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver queue short: fresher frames
        self._cap = cap
        w = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH))
        h = int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        if (cfg.width and w != cfg.width) or (cfg.height and h != cfg.height):
            self.close()
            raise CameraError(f"{self.description}: asked for {cfg.width}x{cfg.height}, the source gives {w}x{h}")
        fps = cap.get(cv2.CAP_PROP_FPS) or None
        return CameraInfo(
            model=f"opencv {cap.getBackendName()}",
            serial=str(cfg.source) if self._kind == "device" else "",
            width=w,
            height=h,
            pixel_format="BGR8",
            extra={"kind": self._kind, "fps": fps, "trigger": cfg.trigger},
        )

    def close(self) -> None:
        cap, self._cap = self._cap, None
        if cap is not None:
            cap.release()

    def check(self) -> None:
        if self._cap is None or not self._cap.isOpened():
            raise CameraError(f"{self.description}: closed")

    def flush(self) -> None:
        """Discard frames the driver had queued before the trigger (they return instantly)."""
        cap = self._cap
        if cap is None or self._kind == "file":
            return
        for _ in range(_MAX_FLUSH):
            t0 = time.monotonic()
            if not cap.grab():
                return
            if time.monotonic() - t0 > _QUEUED_S:
                # This one was captured after the flush began; it is the freshest and is dropped too,
                # so the frame returned for a trigger always starts after it.
                self.flushed += 1
                return
            self.flushed += 1

    def grab(self, timeout_s: float) -> Grab:
        cap = self._cap
        if cap is None:
            raise CameraError(f"{self.description} is not open")
        t0 = time.monotonic()
        ok, img = cap.read()
        arrived = time.monotonic()
        if not ok or img is None or img.size == 0:
            if self._kind == "file":
                raise FrameTimeout(f"{self.description}: end of file")
            raise FrameTimeout(f"{self.description}: no frame (read failed after {arrived - t0:.2f} s)")
        if img.dtype != np.uint8:
            img = cv2.convertScaleAbs(img, alpha=255.0 / float(np.iinfo(img.dtype).max))
        if img.ndim == 3 and img.shape[2] == 4:
            img = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
        fmt = "Mono8" if img.ndim == 2 else "BGR8"
        # VideoCapture returns a fresh array per read unless asked to reuse one: it is already owned.
        image = np.ascontiguousarray(img)
        return Grab(image, {"source": self.description, "timestamp": arrived, "pixel_format": fmt})


def create(cfg: OpenCVCamera) -> Camera:
    return OpenCVCameraSource(cfg)


def parse_spec(spec: str, rest: str) -> OpenCVCamera:
    """`opencv:0 | opencv:rtsp://host/stream | opencv:http://... | opencv:v4l2src ! ... ! appsink`."""
    import re

    from .spec import bad_spec, build_spec

    if not rest:
        raise bad_spec(spec, "opencv needs a device index, a URL or a GStreamer pipeline, e.g. opencv:0")
    source: int | str = int(rest) if rest.isdigit() else rest
    if isinstance(source, str) and re.match(r"^-\d+$", source):
        raise bad_spec(spec, f"device index {source} is negative")
    return build_spec(spec, OpenCVCamera, {"type": "opencv", "source": source})


CONFIG = OpenCVCamera
