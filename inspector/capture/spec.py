"""`--camera SPEC` on the command line -> the camera config model the station file would hold.

Why a short form at all: at the line, an engineer swaps a camera or points the station at a folder of
archived boards from a terminal; typing `aravis:192.168.10.20` beats editing TOML. The result is the
same validated pydantic model, so a spec can never do what a config file could not.

    replay:DIR | replay:DIR@10fps | replay:FILE.mp4@max | replay:DIR@trigger | replay:demo
    aravis:192.168.10.20 | aravis:Fake_1 (device id) | aravis:...@Mono16
    opencv:0 | opencv:rtsp://host/stream | opencv:http://... | opencv:v4l2src ! ... ! appsink
    genicam:/opt/vendor/producer.cti | genicam:/path/x.cti@SERIAL
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

from pydantic import ValidationError

from ..config import AravisCamera, GenicamCamera, OpenCVCamera, ReplayCamera, validation_problems

CameraModel = ReplayCamera | AravisCamera | GenicamCamera | OpenCVCamera

KINDS = ("replay", "aravis", "opencv", "genicam")
_RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*fps$", re.IGNORECASE)
_DEVICE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:\-]*$")


def _bad(spec: str, why: str) -> ValueError:
    return ValueError(f"--camera {spec!r}: {why}")


def _build(spec: str, model: type[CameraModel], data: dict) -> CameraModel:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _bad(spec, "; ".join(validation_problems(exc))) from None


def _split_suffix(rest: str) -> tuple[str, str | None]:
    """`path@10fps` -> ('path', '10fps'); an '@' inside a URL's user-info is left alone."""
    if "@" not in rest:
        return rest, None
    head, _, tail = rest.rpartition("@")
    if "/" in tail or not tail:
        return rest, None
    return head, tail


def _replay(spec: str, rest: str) -> ReplayCamera:
    path, opt = _split_suffix(rest)
    data: dict = {"type": "replay"}
    if not path:
        raise _bad(spec, "replay needs a folder or video file, e.g. replay:boards/ or replay:demo")
    if path != "demo":
        data["path"] = Path(path)
    if opt is not None:
        low = opt.lower()
        if low == "trigger":
            data["trigger"] = "software"
        elif low in {"max", "fast"}:
            data["fps"] = None
        elif m := _RATE.match(opt):
            data["fps"] = float(m.group(1))
        else:
            raise _bad(spec, f"rate {opt!r} is not NUMBERfps, max or trigger (e.g. replay:DIR@10fps)")
    return _build(spec, ReplayCamera, data)


def _aravis(spec: str, rest: str) -> AravisCamera:
    target, opt = _split_suffix(rest)
    if not target:
        raise _bad(spec, "aravis needs a camera IP address or a device id, e.g. aravis:192.168.10.20 or aravis:Fake_1")
    data: dict = {"type": "aravis"}
    try:
        ip = ipaddress.ip_address(target)
    except ValueError:
        if target.replace(".", "").isdigit():
            raise _bad(spec, f"{target!r} is not a valid IPv4 address") from None
        if not _DEVICE_ID.match(target):
            raise _bad(spec, f"{target!r} is neither an IP address nor an Aravis device id") from None
        data["device_id"] = target
    else:
        if ip.version != 4:
            raise _bad(spec, "GigE Vision cameras have IPv4 addresses")
        data["address"] = str(ip)
    if opt is not None:
        data["pixel_format"] = opt
    return _build(spec, AravisCamera, data)


def _opencv(spec: str, rest: str) -> OpenCVCamera:
    if not rest:
        raise _bad(spec, "opencv needs a device index, a URL or a GStreamer pipeline, e.g. opencv:0")
    source: int | str = int(rest) if rest.isdigit() else rest
    if isinstance(source, str) and re.match(r"^-\d+$", source):
        raise _bad(spec, f"device index {source} is negative")
    return _build(spec, OpenCVCamera, {"type": "opencv", "source": source})


def _genicam(spec: str, rest: str) -> GenicamCamera:
    path, serial = rest, None
    if "@" in rest:
        path, _, serial = rest.rpartition("@")
    if not path:
        raise _bad(spec, "genicam needs the GenTL producer, e.g. genicam:/opt/vendor/lib/producer.cti")
    if not path.lower().endswith(".cti"):
        raise _bad(spec, f"{path!r} is not a GenTL producer (.cti file)")
    data: dict = {"type": "genicam", "cti": Path(path)}
    if serial:
        data["serial"] = serial
    return _build(spec, GenicamCamera, data)


def parse_camera_spec(spec: str) -> CameraModel:
    """Parse `KIND:TARGET[@OPTION]` into a validated camera model; ValueError names what is wrong."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("--camera: empty camera spec; expected KIND:TARGET, e.g. replay:boards/ or aravis:10.0.0.5")
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    if not sep:
        raise _bad(spec, f"missing KIND: prefix; expected one of {', '.join(k + ':' for k in KINDS)}")
    kind = kind.lower()
    if kind == "replay":
        return _replay(spec, rest)
    if kind == "aravis":
        return _aravis(spec, rest)
    if kind == "opencv":
        return _opencv(spec, rest)
    if kind == "genicam":
        return _genicam(spec, rest)
    raise _bad(spec, f"unknown camera kind {kind!r}; expected one of {', '.join(KINDS)}")
