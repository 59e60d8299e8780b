"""GigE Vision / USB3 Vision cameras through Aravis 0.8 (PyGObject, `gi.repository.Aravis`).

Why these choices:
- The camera is opened by address (GigE) or device id, never by discovery: `update_device_list`
  broadcasts on every interface of a plant network. A GigE camera is reached with a direct
  `ArvGvDevice(interface address, camera address)`; the local interface address comes from the
  routing table (a connected UDP socket, which sends nothing). `Fake_<serial>` opens Aravis's
  in-process fake camera; other ids go to USB3 Vision with the GigE interface switched off.
- Every feature is set explicitly at open: cameras (and Aravis's fake one) keep settings between
  clients, so whatever the last tool left behind must not decide the pixel format or trigger mode.
- The packet socket is off by default (no frames arrive over loopback with it) and the stream
  socket buffer is sized automatically (a fixed small one loses frames at full rate).
- Buffers come from a fixed pool; each popped buffer's status is checked (incomplete frames are
  counted and never inspected), the image is copied out, and the buffer goes straight back.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import socket
import threading
import time
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from ..config_base import Section, TriggerMode
from .base import Camera, CameraError, CameraInfo, FrameTimeout, Grab, IncompleteFrame
from .convert import PixelFormatError, format_name, to_inspection_image

log = logging.getLogger(__name__)

GVCP_PORT = 3956
#: How long open() waits for the previous session's release (a live camera answers in milliseconds).
RELEASE_WAIT_S = 1.0


class Roi(Section):
    x: int = Field(0, ge=0, description="Left edge of the sensor region, px.")
    y: int = Field(0, ge=0, description="Top edge of the sensor region, px.")
    width: int | None = Field(None, ge=1, description="Region width, px; None = full sensor.")
    height: int | None = Field(None, ge=1, description="Region height, px; None = full sensor.")


class AravisCamera(Section):
    type: Literal["aravis"] = Field("aravis", description="GigE Vision / USB3 Vision camera through Aravis 0.8.")
    address: str | None = Field(None, description="Camera IP address (GigE), opened directly without discovery.")
    device_id: str | None = Field(
        None, description="Aravis device id (USB3 Vision or 'Fake_1' for the in-process fake)."
    )
    pixel_format: Literal["Mono8", "Mono16", "RGB8", "BayerRG8", "BayerGR8", "BayerBG8", "BayerGB8"] = Field(
        "Mono8", description="Pixel format set on the camera; converted to Mono8/BGR8 for inspection."
    )
    exposure_us: float = Field(5000.0, ge=1, le=10_000_000, description="Exposure time in microseconds.")
    gain_db: float = Field(0.0, ge=0, le=48, description="Analog gain in dB.")
    fps: float = Field(10.0, gt=0, le=1000, description="Acquisition frame rate in free-run.")
    roi: Roi = Field(default_factory=Roi, description="Sensor region of interest.")
    trigger: TriggerMode = Field("free_run", description="free_run, software (PLC trigger) or line (hardware input).")
    trigger_line: str = Field("Line0", description="Hardware trigger input used when trigger = 'line'.")
    buffers: int = Field(8, ge=2, le=64, description="Stream buffer pool size.")
    timeout_s: float = Field(2.0, gt=0, le=60, description="Frame timeout before the watchdog counts a stall.")
    packet_size: int | None = Field(None, ge=576, le=9000, description="GigE packet size; None = negotiate.")
    packet_socket: bool = Field(
        False,
        description="Use Aravis's raw packet socket for GigE streams (less CPU on a real NIC, needs CAP_NET_RAW); "
        "off by default because no frames arrive through it over loopback.",
    )
    socket_buffer_bytes: int | None = Field(
        None,
        ge=65536,
        le=1 << 30,
        description="GigE stream socket receive buffer in bytes; None = the buffer pool (buffers x payload) capped at "
        "net.core.rmem_max, or Aravis's automatic sizing when that cap holds fewer than two frames.",
    )

    @field_validator("address")
    @classmethod
    def _ip_address(cls, v: str | None) -> str | None:
        if v is None:
            return v
        try:
            return str(ipaddress.IPv4Address(v.strip()))
        except ValueError:
            raise ValueError("not an IPv4 address (GigE Vision cameras are opened by IPv4 address)") from None

    def frame_size(self) -> tuple[int, int] | None:
        return (self.roi.width, self.roi.height) if self.roi.width and self.roi.height else None

    @model_validator(mode="after")
    def _address_or_id(self) -> AravisCamera:
        if not self.address and not self.device_id:
            raise ValueError("give camera.address (GigE IP) or camera.device_id; discovery is never broadcast")
        return self


def load_aravis() -> Any:
    """The Aravis 0.8 GI module, or CameraError saying what to install."""
    try:
        import gi

        gi.require_version("Aravis", "0.8")
        from gi.repository import Aravis
    except (ImportError, ValueError) as exc:
        raise CameraError(
            "Aravis 0.8 is not available to this Python "
            f"({exc}); install the Debian package gir1.2-aravis-0.8 and `pip install 'pcb-inspector[aravis]'`"
        ) from None
    return Aravis


def local_address_for(address: str) -> str:
    """The local interface address the kernel would use to reach `address` (no packet is sent)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect((address, GVCP_PORT))
        except OSError as exc:
            raise CameraError(f"camera {address}: no route from this host ({exc.strerror})") from None
        return s.getsockname()[0]


def socket_buffer_for(payload: int, buffers: int, rmem_max_path: str = "/proc/sys/net/core/rmem_max") -> int | None:
    """Stream socket buffer for `buffers` frames of `payload` bytes, within the kernel's cap.

    None when the cap (net.core.rmem_max) holds fewer than two frames: then Aravis's AUTO sizing
    is the better choice, and the camera docs say how to raise the cap.
    """
    try:
        with open(rmem_max_path) as fh:
            cap = int(fh.read().strip())
    except (OSError, ValueError):
        return None
    want = payload * buffers
    if cap < 2 * payload:
        log.warning(
            "net.core.rmem_max = %d holds fewer than two %d-byte frames; frames may be lost "
            "(sysctl -w net.core.rmem_max=%d)",
            cap,
            payload,
            want,
        )
        return None
    return min(want, cap)


def _release(objects: list, target: str) -> None:
    """Stop acquisition, give up the control channel, drop the last references (in that order)."""
    stream, cam, device = objects
    try:
        if cam is not None:
            cam.stop_acquisition()
            if cam.is_gv_device():
                device.leave_control()  # the next session (or another tool) may take it at once
    except Exception as exc:
        log.debug("aravis %s: release: %s", target, _gerror(exc))
    del stream, cam, device
    objects.clear()


def _gerror(exc: Exception) -> str:
    return getattr(exc, "message", None) or str(exc)


class AravisCameraSource(Camera):
    def __init__(self, cfg: AravisCamera):
        self.cfg = cfg
        self.triggered = cfg.trigger != "free_run"
        self.fired_by_wire = cfg.trigger == "line"
        self._ar: Any = None
        self._device: Any = None
        self._camera: Any = None
        self._stream: Any = None
        self._info: CameraInfo | None = None
        self._last_frame_id: int | None = None
        self._healthy = False
        self._releaser: threading.Thread | None = None
        self.flushed = 0

    # ------------------------------------------------------------------ description
    @property
    def target(self) -> str:
        return self.cfg.address or self.cfg.device_id or "?"

    @property
    def description(self) -> str:
        return f"aravis:{self.target}"

    @property
    def nominal_fps(self) -> float | None:
        return None if self.triggered else self.cfg.fps

    # ------------------------------------------------------------------ open / close
    def _open_device(self, ar: Any) -> Any:
        cfg = self.cfg
        if cfg.address:
            from gi.repository import Gio

            local = local_address_for(cfg.address)
            device = ar.GvDevice.new(
                Gio.InetAddress.new_from_string(local), Gio.InetAddress.new_from_string(cfg.address)
            )
            if not device.is_controller():
                # Another application holds the control channel (or our previous session, until its
                # heartbeat expires): settings could not be written, so this is not an open camera.
                raise CameraError(
                    f"aravis camera {cfg.address}: another application controls it (GigE Vision control "
                    "channel taken); close that application or wait for its heartbeat to expire"
                )
            if not cfg.packet_socket:
                device.set_stream_options(ar.GvStreamOption.PACKET_SOCKET_DISABLED)
            return device
        device_id = cfg.device_id or ""
        if device_id.startswith("Fake_"):
            # The in-process fake camera; constructed directly so no interface lookup runs at all.
            return ar.FakeDevice.new(device_id.removeprefix("Fake_") or "1")
        # USB3 Vision (or another non-GigE interface): the GigE interface must not be asked,
        # because looking an id up there means a discovery broadcast.
        ar.disable_interface("GigEVision")
        return ar.open_device(device_id)

    def open(self) -> CameraInfo:
        self.close()
        releaser = self._releaser
        if releaser is not None:
            # A camera that is alive gives up its control channel within milliseconds; a dead one
            # is not waited for (its replacement will not know the old session).
            releaser.join(RELEASE_WAIT_S)
            self._releaser = None
        ar = self._ar = load_aravis()
        try:
            self._device = self._open_device(ar)
            self._camera = ar.Camera.new_with_device(self._device)
        except CameraError:
            self.close()
            raise
        except Exception as exc:  # GLib.GError
            self.close()
            raise CameraError(f"aravis camera {self.target}: cannot open: {_gerror(exc)}") from None
        try:
            info = self._configure()
            self._start()
        except CameraError:
            self.close()
            raise
        except Exception as exc:
            self.close()
            raise CameraError(f"aravis camera {self.target}: {_gerror(exc)}") from None
        self._healthy = True
        self._last_frame_id = None
        self._info = info
        return info

    def _set(self, what: str, fn, *args) -> None:
        try:
            fn(*args)
        except Exception as exc:
            raise CameraError(f"aravis camera {self.target}: cannot set {what} to {args}: {_gerror(exc)}") from None

    def _configure(self) -> CameraInfo:
        cfg, cam, ar = self.cfg, self._camera, self._ar
        try:  # a camera left streaming by the previous client refuses most settings
            cam.stop_acquisition()
        except Exception:
            pass
        formats = list(cam.dup_available_pixel_formats_as_strings() or [])
        if cfg.pixel_format not in formats:
            raise CameraError(
                f"aravis camera {self.target}: pixel format {cfg.pixel_format} not offered (camera has {', '.join(formats)})"
            )
        format_name(cfg.pixel_format)  # the station must be able to convert it
        self._set("PixelFormat", cam.set_pixel_format_from_string, cfg.pixel_format)
        sensor = cam.get_sensor_size()
        sw, sh = (
            int(sensor.width if hasattr(sensor, "width") else sensor[0]),
            int(sensor.height if hasattr(sensor, "height") else sensor[1]),
        )
        roi = cfg.roi
        width = roi.width or (sw - roi.x)
        height = roi.height or (sh - roi.y)
        if roi.x + width > sw or roi.y + height > sh or width <= 0 or height <= 0:
            raise CameraError(
                f"aravis camera {self.target}: camera.roi x={roi.x} y={roi.y} {width}x{height} "
                f"does not fit the {sw}x{sh} sensor"
            )
        self._set("region", cam.set_region, roi.x, roi.y, width, height)
        x, y, w, h = (int(v) for v in cam.get_region())
        if (w, h) != (width, height):
            raise CameraError(
                f"aravis camera {self.target}: asked for a {width}x{height} region, camera set {w}x{h} "
                "(check the width/height increments)"
            )
        if cam.is_exposure_time_available():
            lo, hi = cam.get_exposure_time_bounds()
            if not lo <= cfg.exposure_us <= hi:
                raise CameraError(
                    f"aravis camera {self.target}: camera.exposure_us {cfg.exposure_us} outside {lo:g}..{hi:g}"
                )
            self._set("ExposureTime", cam.set_exposure_time, cfg.exposure_us)
        if cam.is_gain_available():
            lo, hi = cam.get_gain_bounds()
            if not lo <= cfg.gain_db <= hi:
                raise CameraError(f"aravis camera {self.target}: camera.gain_db {cfg.gain_db} outside {lo:g}..{hi:g}")
            self._set("Gain", cam.set_gain, cfg.gain_db)
        self._set("AcquisitionMode", cam.set_acquisition_mode, ar.AcquisitionMode.CONTINUOUS)
        if cfg.trigger == "free_run":
            self._set("trigger (off)", cam.clear_triggers)
            if cam.is_frame_rate_available():
                self._set("AcquisitionFrameRate", cam.set_frame_rate, cfg.fps)
        else:
            source = "Software" if cfg.trigger == "software" else cfg.trigger_line
            sources = list(cam.dup_available_trigger_sources() or [])
            if source not in sources:
                raise CameraError(
                    f"aravis camera {self.target}: trigger source {source} not offered (camera has {', '.join(sources)})"
                )
            if cfg.trigger == "software" and not cam.is_software_trigger_supported():
                raise CameraError(f"aravis camera {self.target}: no software trigger (TriggerSoftware)")
            # FrameStart, rising edge, from `source`; Aravis switches the other trigger selectors off.
            self._set("TriggerSource", cam.set_trigger, source)
        if cam.is_gv_device() and cfg.packet_size:
            self._set("GevSCPSPacketSize", cam.gv_set_packet_size, cfg.packet_size)
        fmt = cam.get_pixel_format_as_string()
        try:
            model = f"{cam.get_vendor_name()} {cam.get_model_name()}".strip()
            serial = cam.get_device_serial_number() or ""
        except Exception:
            model, serial = "aravis", ""
        extra = {
            "exposure_us": cam.get_exposure_time() if cam.is_exposure_time_available() else None,
            "gain_db": cam.get_gain() if cam.is_gain_available() else None,
            "fps": cam.get_frame_rate() if cam.is_frame_rate_available() else None,
            "trigger": cfg.trigger,
            "offset": (x, y),
        }
        return CameraInfo(model=model, serial=serial, width=w, height=h, pixel_format=fmt, extra=extra)

    def _start(self) -> None:
        cam, ar = self._camera, self._ar
        stream = cam.create_stream(None, None)
        if stream is None:
            raise CameraError(f"aravis camera {self.target}: cannot create a stream")
        payload = int(cam.get_payload())
        if cam.is_gv_device():
            size = self.cfg.socket_buffer_bytes or socket_buffer_for(payload, self.cfg.buffers)
            if size:
                # Measured with the fake camera: AUTO loses the first frame of every session (it sizes
                # the buffer only once a frame has arrived); a buffer sized up front loses none.
                stream.set_property("socket-buffer", ar.GvStreamSocketBuffer.FIXED)
                stream.set_property("socket-buffer-size", size)
            else:
                stream.set_property("socket-buffer", ar.GvStreamSocketBuffer.AUTO)
        for _ in range(self.cfg.buffers):
            stream.push_buffer(ar.Buffer.new_allocate(payload))
        self._stream = stream
        cam.start_acquisition()

    def close(self) -> None:
        objects = [self._stream, self._camera, self._device]
        self._stream = self._camera = self._device = None
        healthy, self._healthy = self._healthy, False
        if all(o is None for o in objects):
            return
        if healthy:
            _release(objects, self.target)
            return
        # A camera that stopped sending may be dead: stopping it and finalising the device then
        # costs several control-channel timeouts (about 7 s measured with the fake camera). That
        # work goes to a short-lived thread so the capture thread can reopen (and answer triggers)
        # at once. It is the last user of these objects; the capture thread has let go of them.
        self._releaser = threading.Thread(
            target=_release, args=(objects, self.target), name="aravis-release", daemon=True
        )
        self._releaser.start()

    # ------------------------------------------------------------------ acquisition
    def trigger(self) -> None:
        if self.cfg.trigger != "software" or self._camera is None:
            return
        try:
            self._camera.software_trigger()
        except Exception as exc:
            self._healthy = False
            raise CameraError(f"aravis camera {self.target}: software trigger failed: {_gerror(exc)}") from None

    def check(self) -> None:
        cam = self._camera
        if cam is None:
            raise CameraError(f"aravis camera {self.target} is not open")
        try:
            cam.get_integer("Width")  # one control-channel round trip
        except Exception as exc:
            self._healthy = False
            raise CameraError(f"aravis camera {self.target}: does not answer: {_gerror(exc)}") from None

    def flush(self) -> None:
        stream = self._stream
        if stream is None:
            return
        while (buf := stream.try_pop_buffer()) is not None:
            self.flushed += 1
            self._note_frame_id(buf)
            stream.push_buffer(buf)

    def _note_frame_id(self, buf: Any) -> int:
        """Frames the camera numbered but the host never received (GigE ids wrap at 65535, skip 0)."""
        fid = int(buf.get_frame_id())
        last, self._last_frame_id = self._last_frame_id, fid
        if last is None or fid == 0:
            return 0
        if fid > last:
            return fid - last - 1
        if last > 0xF000 and fid < 0x1000 and last <= 0xFFFF:
            return (0xFFFF - last) + (fid - 1)
        return 0  # the camera restarted its numbering

    def grab(self, timeout_s: float) -> Grab:
        if self._stream is None:
            raise CameraError(f"aravis camera {self.target} is not open")
        # _pop returns its error instead of raising it: a raised exception's traceback would hold
        # the frame that held the stream and buffer, and a stream kept alive in a reference cycle is
        # finalised later by the garbage collector, in whatever thread, for seconds if the camera is
        # dead (measured: 5-12 s stalls).
        result = self._pop(timeout_s)
        if isinstance(result, CameraError):
            raise result
        data, width, height, pfnc, frame_id, device_ts, system_ts, gap = result
        try:
            image = to_inspection_image(data, width, height, pfnc)
            fmt = format_name(pfnc)
        except PixelFormatError as exc:
            raise IncompleteFrame(f"aravis camera {self.target}: {exc}") from None
        # system timestamp = host wall clock when the last packet arrived; expressed on the
        # monotonic clock the station uses, so cycle times include the driver-to-handoff wait.
        now_mono, now_wall = time.monotonic(), time.time_ns()
        arrived = now_mono - max(0, now_wall - system_ts) / 1e9 if system_ts else now_mono
        return Grab(
            image,
            {
                "source": self.description,
                "timestamp": arrived,
                "pixel_format": fmt,
                "device_frame_id": frame_id,
                "device_timestamp_ns": device_ts,
                "dropped_before": gap,
            },
        )

    def _pop(self, timeout_s: float) -> tuple | CameraError:
        ar = self._ar
        buf = self._stream.timeout_pop_buffer(max(1, int(timeout_s * 1_000_000)))
        if buf is None:
            self._healthy = False
            return FrameTimeout(f"aravis camera {self.target}: no frame within {timeout_s:.2f} s")
        self._healthy = True
        try:
            status = buf.get_status()
            gap = self._note_frame_id(buf)
            if status != ar.BufferStatus.SUCCESS:
                name = getattr(status, "value_nick", str(status))
                return IncompleteFrame(f"aravis camera {self.target}: buffer {buf.get_frame_id()} status {name}")
            if buf.get_payload_type() not in (ar.BufferPayloadType.IMAGE, ar.BufferPayloadType.EXTENDED_CHUNK_DATA):
                return IncompleteFrame(
                    f"aravis camera {self.target}: buffer payload {buf.get_payload_type()} is no image"
                )
            # get_image_data copies the pixels into a Python bytes object: after this line the
            # driver buffer may be refilled without touching what the station inspects.
            return (
                buf.get_image_data(),
                int(buf.get_image_width()),
                int(buf.get_image_height()),
                int(buf.get_image_pixel_format()),
                int(buf.get_frame_id()),
                int(buf.get_timestamp()),
                int(buf.get_system_timestamp()),
                gap,
            )
        finally:
            self._stream.push_buffer(buf)

    def stream_statistics(self) -> dict[str, int]:
        """Aravis's stream counters (completed, failures, underruns, missing packets...)."""
        stream = self._stream
        if stream is None:
            return {}
        out = {}
        for i in range(stream.get_n_infos()):
            try:
                out[stream.get_info_name(i)] = int(stream.get_info_uint64(i))
            except Exception:
                continue
        return out


def create(cfg: AravisCamera) -> Camera:
    return AravisCameraSource(cfg)


_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")


def parse_spec(spec: str, rest: str) -> AravisCamera:
    """`aravis:192.168.10.20 | aravis:Fake_1 (device id) | aravis:...@Mono16`."""
    from .spec import bad_spec, build_spec, split_suffix

    target, opt = split_suffix(rest)
    if not target:
        raise bad_spec(
            spec, "aravis needs a camera IP address or a device id, e.g. aravis:192.168.10.20 or aravis:Fake_1"
        )
    data: dict = {"type": "aravis"}
    try:
        ip = ipaddress.ip_address(target)
    except ValueError:
        if target.replace(".", "").isdigit():
            raise bad_spec(spec, f"{target!r} is not a valid IPv4 address") from None
        if not _DEVICE_ID.match(target):
            raise bad_spec(spec, f"{target!r} is neither an IP address nor an Aravis device id") from None
        data["device_id"] = target
    else:
        if ip.version != 4:
            raise bad_spec(spec, "GigE Vision cameras have IPv4 addresses")
        data["address"] = str(ip)
    if opt is not None:
        data["pixel_format"] = opt
    return build_spec(spec, AravisCamera, data)


CONFIG = AravisCamera
