"""The camera interface every backend implements.

Why this shape: the capture thread is the only caller (it owns the device). `grab` blocks for at
most `timeout_s` and returns an owned image, so the thread can run a watchdog between calls; a
backend never spawns its own threads that touch the device.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class CameraError(Exception):
    """The camera cannot be opened or has failed; the message says which camera and why."""


class FrameTimeout(CameraError):
    """No frame within the timeout (a stall, or a trigger that produced nothing)."""


class IncompleteFrame(CameraError):
    """The driver delivered a buffer with missing packets; it is counted, never inspected."""


@dataclass(slots=True)
class CameraInfo:
    model: str = ""
    serial: str = ""
    width: int = 0
    height: int = 0
    pixel_format: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Grab:
    """What a backend returns: an owned image plus the driver's metadata."""

    image: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


class Camera(ABC):
    #: True when frames come only after `trigger()` (software trigger / one frame per trigger).
    triggered: bool = False
    #: True when the PLC fires the camera by wire (`trigger = "line"`): its frame may arrive before the PLC's
    #: TRIGGER write reaches the station, so the supervisor keeps a recent frame instead of flushing it.
    fired_by_wire: bool = False

    @abstractmethod
    def open(self) -> CameraInfo:
        """Open and configure the device; raises CameraError naming the device and the reason."""

    @abstractmethod
    def close(self) -> None:
        """Release the device; safe to call twice and after a failure."""

    @abstractmethod
    def grab(self, timeout_s: float) -> Grab:
        """Next frame; raises FrameTimeout, IncompleteFrame or CameraError."""

    def trigger(self) -> None:
        """Fire a software trigger (triggered cameras); free-running cameras ignore it."""

    def flush(self) -> None:
        """Drop frames already buffered, so a frame from before a trigger is never taken for it."""

    def check(self) -> None:
        """Raise CameraError if the device no longer answers; called by the supervisor while idle
        (triggered mode), so a camera lost between boards shows NOT READY before the next trigger."""

    @property
    def nominal_fps(self) -> float | None:
        return None

    @property
    def description(self) -> str:
        return type(self).__name__
