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

import re
from typing import Any

from pydantic import BaseModel, ValidationError

RATE = re.compile(r"^(\d+(?:\.\d+)?)\s*fps$", re.IGNORECASE)


def kinds() -> tuple[str, ...]:
    """Camera kinds that take a spec, in registry order."""
    from .registry import camera_backends

    return tuple(name for name, b in camera_backends().items() if b.parse_spec is not None)


def spec_help() -> str:
    """`--camera` help text: the kinds the registry knows, with examples."""
    return f"KIND:TARGET[@OPTION], KIND one of {', '.join(kinds())}; e.g. replay:DIR@10fps, aravis:127.0.0.1, opencv:0"


def bad_spec(spec: str, why: str) -> ValueError:
    return ValueError(f"--camera {spec!r}: {why}")


def build_spec(spec: str, model: type[BaseModel], data: dict[str, Any]) -> Any:
    """Validate `data` as `model`; a ValueError naming every bad key of the spec otherwise."""
    from ..config import validation_problems

    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise bad_spec(spec, "; ".join(validation_problems(exc))) from None


def split_suffix(rest: str) -> tuple[str, str | None]:
    """`path@10fps` -> ('path', '10fps'); an '@' inside a URL's user-info is left alone."""
    if "@" not in rest:
        return rest, None
    head, _, tail = rest.rpartition("@")
    if "/" in tail or not tail:
        return rest, None
    return head, tail


def parse_camera_spec(spec: str) -> Any:
    """Parse `KIND:TARGET[@OPTION]` into a validated camera model; ValueError names what is wrong.

    The kinds and their forms are the camera modules' own `parse_spec` (inspector/capture/registry.py).
    """
    from .registry import camera_backends

    if not isinstance(spec, str) or not spec.strip():
        raise ValueError("--camera: empty camera spec; expected KIND:TARGET, e.g. replay:boards/ or aravis:10.0.0.5")
    spec = spec.strip()
    kind, sep, rest = spec.partition(":")
    known = kinds()
    if not sep:
        raise bad_spec(spec, f"missing KIND: prefix; expected one of {', '.join(k + ':' for k in known)}")
    backend = camera_backends().get(kind.lower())
    if backend is None or backend.parse_spec is None:
        raise bad_spec(spec, f"unknown camera kind {kind.lower()!r}; expected one of {', '.join(known)}")
    return backend.parse_spec(spec, rest)
