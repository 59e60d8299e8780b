"""Any vendor's GenTL producer (.cti) through harvesters.

Why it exists next to Aravis: some cameras (CoaXPress, Camera Link frame grabbers, vendor USB stacks)
are only reachable through their vendor's GenTL producer. harvesters loads the producer and gives a
GenICam node map; this backend sets the same things the Aravis one does and hands on owned frames.

Notes on behaviour that matters at the line:
- Device enumeration is the producer's business. For GigE cameras a vendor producer may broadcast
  discovery when it enumerates; prefer the aravis backend (opened by address) for GigE.
- harvesters discards incomplete buffers itself; this backend counts them through its
  INCOMPLETE_BUFFER event and reports each one as IncompleteFrame, so the supervisor sees them.
- Pixels are copied out (and converted) before the buffer is queued back to the producer.
- Software trigger needs the camera's TriggerSoftware node; a camera without one is refused rather
  than silently emulated, because a free-running frame is not a frame taken for this board.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field

from ..config_base import Section, TriggerMode
from .base import Camera, CameraError, CameraInfo, FrameTimeout, Grab, IncompleteFrame
from .convert import PixelFormatError, format_name, to_inspection_image

log = logging.getLogger(__name__)

#: try_fetch slice: how often the incomplete-buffer count and the deadline are looked at.
_SLICE_S = 0.05


class GenicamCamera(Section):
    type: Literal["genicam"] = Field("genicam", description="Any GenTL producer (.cti) through harvesters.")
    cti: Path = Field(..., description="Path to the vendor's GenTL producer (.cti file).")
    serial: str | None = Field(None, description="Serial number of the camera to open; None = the first one.")
    pixel_format: str = Field("Mono8", description="GenICam PixelFormat to set.")
    exposure_us: float | None = Field(None, ge=1, description="ExposureTime in microseconds; None = leave as is.")
    gain_db: float | None = Field(None, ge=0, description="Gain in dB; None = leave as is.")
    fps: float | None = Field(None, gt=0, description="AcquisitionFrameRate; None = leave as is.")
    trigger: TriggerMode = Field("free_run", description="free_run, software or line.")
    trigger_line: str = Field("Line0", description="Hardware trigger input (TriggerSource) when trigger = 'line'.")
    buffers: int = Field(8, ge=2, le=64, description="Buffers announced to the GenTL producer.")
    timeout_s: float = Field(2.0, gt=0, le=60, description="Frame timeout before the watchdog counts a stall.")

    def input_problems(self) -> list[str]:
        if not Path(self.cti).is_file():
            return [f"camera.cti: GenTL producer {self.cti} does not exist"]
        return []


def _load_harvesters() -> Any:
    try:
        from harvesters import core
    except ImportError as exc:
        raise CameraError(f"harvesters is not installed ({exc}); `pip install 'pcb-inspector[genicam]'`") from None
    return core


class GenicamCameraSource(Camera):
    def __init__(self, cfg: GenicamCamera):
        self.cfg = cfg
        self.triggered = cfg.trigger != "free_run"
        self.fired_by_wire = cfg.trigger == "line"
        self._h: Any = None
        self._ia: Any = None
        self._incomplete = 0
        self._reported_incomplete = 0
        self._last_frame_id: int | None = None
        self.flushed = 0

    @property
    def description(self) -> str:
        return f"genicam:{self.cfg.cti}" + (f"@{self.cfg.serial}" if self.cfg.serial else "")

    @property
    def nominal_fps(self) -> float | None:
        return None if self.triggered else self.cfg.fps

    # ------------------------------------------------------------------ open / close
    def open(self) -> CameraInfo:
        self.close()
        core = _load_harvesters()
        cti = self.cfg.cti
        if not cti.is_file():
            raise CameraError(f"GenTL producer {cti} does not exist")
        h = core.Harvester()
        try:
            h.add_file(str(cti), check_existence=True, check_validity=True)
            h.update()
        except Exception as exc:
            h.reset()
            raise CameraError(f"GenTL producer {cti} cannot be loaded: {exc}") from None
        devices = list(h.device_info_list)
        if not devices:
            h.reset()
            raise CameraError(f"GenTL producer {cti} reports no camera")
        serials = [str(d.serial_number) for d in devices]
        try:
            if self.cfg.serial is not None:
                if self.cfg.serial not in serials:
                    raise CameraError(
                        f"no camera with serial {self.cfg.serial!r} on {cti} (found {', '.join(serials)})"
                    )
                ia = h.create({"serial_number": self.cfg.serial})
            else:
                ia = h.create(0)
        except CameraError:
            h.reset()
            raise
        except Exception as exc:
            h.reset()
            raise CameraError(f"camera on {cti} cannot be opened: {exc}") from None
        self._h, self._ia = h, ia
        try:
            info = self._configure(devices[serials.index(self.cfg.serial) if self.cfg.serial else 0])
            ia.num_buffers = self.cfg.buffers
            this = self

            class _Incomplete(core.Callback):
                def emit(self, context=None) -> None:
                    this._incomplete += 1

            ia.add_callback(core.ImageAcquirer.Events.INCOMPLETE_BUFFER, _Incomplete())
            ia.start()
        except CameraError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise CameraError(f"camera on {cti}: {exc}") from None
        self._last_frame_id = None
        return info

    def _node(self, name: str) -> Any | None:
        nm = self._ia.remote_device.node_map
        return getattr(nm, name) if nm.has_node(name) else None

    def _set(self, name: str, value: Any, required: bool = True) -> None:
        node = self._node(name)
        if node is None:
            if required:
                raise CameraError(f"camera on {self.cfg.cti} has no {name} node (needed for camera.{name})")
            return
        try:
            node.value = value
        except Exception as exc:
            raise CameraError(f"camera on {self.cfg.cti}: cannot set {name} = {value!r}: {exc}") from None

    def _configure(self, dev_info: Any) -> CameraInfo:
        cfg = self.cfg
        try:
            format_name(cfg.pixel_format)
        except PixelFormatError as exc:
            raise CameraError(f"camera.pixel_format: {exc}") from None
        fmt_node = self._node("PixelFormat")
        if fmt_node is None:
            raise CameraError(f"camera on {cfg.cti} has no PixelFormat node")
        offered = list(getattr(fmt_node, "symbolics", []) or [])
        if offered and cfg.pixel_format not in offered:
            raise CameraError(f"camera pixel format {cfg.pixel_format} not offered (camera has {', '.join(offered)})")
        self._set("PixelFormat", cfg.pixel_format)
        if cfg.exposure_us is not None:
            self._set("ExposureTime", float(cfg.exposure_us))
        if cfg.gain_db is not None:
            self._set("Gain", float(cfg.gain_db))
        if cfg.fps is not None:
            if self._node("AcquisitionFrameRateEnable") is not None:
                self._set("AcquisitionFrameRateEnable", True)
            self._set("AcquisitionFrameRate", float(cfg.fps))
        if cfg.trigger == "free_run":
            if self._node("TriggerMode") is not None:
                self._select_frame_start()
                self._set("TriggerMode", "Off")
        else:
            if self._node("TriggerMode") is None:
                raise CameraError(f"camera on {cfg.cti} has no TriggerMode node; camera.trigger must be free_run")
            self._select_frame_start()
            self._set("TriggerSource", "Software" if cfg.trigger == "software" else cfg.trigger_line)
            self._set("TriggerMode", "On")
            if cfg.trigger == "software" and self._node("TriggerSoftware") is None:
                raise CameraError(f"camera on {cfg.cti} has no TriggerSoftware node")
        width = int(self._node("Width").value) if self._node("Width") is not None else 0
        height = int(self._node("Height").value) if self._node("Height") is not None else 0
        return CameraInfo(
            model=f"{getattr(dev_info, 'vendor', '')} {getattr(dev_info, 'model', '')}".strip(),
            serial=str(getattr(dev_info, "serial_number", "")),
            width=width,
            height=height,
            pixel_format=str(fmt_node.value),
            extra={"trigger": cfg.trigger, "producer": str(cfg.cti)},
        )

    def _select_frame_start(self) -> None:
        sel = self._node("TriggerSelector")
        if sel is not None and "FrameStart" in (getattr(sel, "symbolics", []) or []):
            sel.value = "FrameStart"

    def close(self) -> None:
        ia, h = self._ia, self._h
        self._ia = self._h = None
        if ia is not None:
            try:
                ia.stop()
            except Exception as exc:
                log.debug("genicam stop: %s", exc)
            try:
                ia.destroy()
            except Exception as exc:
                log.debug("genicam destroy: %s", exc)
        if h is not None:
            try:
                h.reset()
            except Exception as exc:
                log.debug("genicam reset: %s", exc)

    # ------------------------------------------------------------------ acquisition
    def check(self) -> None:
        if self._ia is None:
            raise CameraError(f"{self.description} is not open")
        try:
            node = self._node("Width")
            if node is not None:
                _ = node.value
        except Exception as exc:
            raise CameraError(f"{self.description}: does not answer: {exc}") from None

    def trigger(self) -> None:
        if self.cfg.trigger != "software" or self._ia is None:
            return
        try:
            self._node("TriggerSoftware").execute()
        except Exception as exc:
            raise CameraError(f"{self.description}: software trigger failed: {exc}") from None

    def flush(self) -> None:
        ia = self._ia
        if ia is None:
            return
        while (buf := ia.try_fetch(timeout=0.001)) is not None:
            self.flushed += 1
            buf.queue()

    def grab(self, timeout_s: float) -> Grab:
        ia = self._ia
        if ia is None:
            raise CameraError(f"{self.description} is not open")
        deadline = time.monotonic() + timeout_s
        while True:
            if self._incomplete > self._reported_incomplete:
                self._reported_incomplete += 1
                raise IncompleteFrame(f"{self.description}: incomplete buffer discarded by the producer")
            left = deadline - time.monotonic()
            if left <= 0:
                raise FrameTimeout(f"{self.description}: no frame within {timeout_s:.2f} s")
            try:
                buf = ia.try_fetch(timeout=min(_SLICE_S, left))
            except Exception as exc:
                raise CameraError(f"{self.description}: fetch failed: {exc}") from None
            if buf is not None:
                break
        try:
            arrived = time.monotonic()
            component = buf.payload.components[0]
            width, height = int(component.width), int(component.height)
            fmt = str(component.data_format)
            raw = np.array(component.data, copy=True)  # out of the producer's buffer before it is queued
            try:
                frame_id = int(buf.frame_id)
            except Exception:
                frame_id = -1
        except Exception as exc:
            raise IncompleteFrame(f"{self.description}: unreadable buffer: {exc}") from None
        finally:
            buf.queue()
        try:
            image = to_inspection_image(raw, width, height, fmt)
        except PixelFormatError as exc:
            raise IncompleteFrame(f"{self.description}: {exc}") from None
        gap = 0
        if frame_id >= 0 and self._last_frame_id is not None and frame_id > self._last_frame_id:
            gap = frame_id - self._last_frame_id - 1
        self._last_frame_id = frame_id if frame_id >= 0 else self._last_frame_id
        return Grab(
            image,
            {
                "source": self.description,
                "timestamp": arrived,
                "pixel_format": fmt,
                "device_frame_id": frame_id,
                "dropped_before": gap,
            },
        )


def create(cfg: GenicamCamera) -> Camera:
    return GenicamCameraSource(cfg)


def parse_spec(spec: str, rest: str) -> GenicamCamera:
    """`genicam:/opt/vendor/producer.cti | genicam:/path/x.cti@SERIAL`."""
    from .spec import bad_spec, build_spec

    path, serial = rest, None
    if "@" in rest:
        path, _, serial = rest.rpartition("@")
    if not path:
        raise bad_spec(spec, "genicam needs the GenTL producer, e.g. genicam:/opt/vendor/lib/producer.cti")
    if not path.lower().endswith(".cti"):
        raise bad_spec(spec, f"{path!r} is not a GenTL producer (.cti file)")
    data: dict = {"type": "genicam", "cti": Path(path)}
    if serial:
        data["serial"] = serial
    return build_spec(spec, GenicamCamera, data)


CONFIG = GenicamCamera
