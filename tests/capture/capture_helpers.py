"""Shared parts of the capture tests (a module, not a conftest, so test files can import it).

`NoDefectDetector` is a real Detector subclass that reports no defects, instantly: the capture tests
are about which frames reach inspection and when, not about finding defects.
"""

from __future__ import annotations

import threading
import time

from inspector.detect.base import Detector, DetectorInfo
from inspector.domain import CLASS_NAMES
from inspector.health import Health


class NoDefectDetector(Detector):
    """Finds nothing, instantly; counts the images it was given."""

    def __init__(self) -> None:
        self.last_timings = {}
        self.calls = 0
        self._info = DetectorInfo(
            model_id="test-no-defect@1",
            backend="python (test)",
            input_size=(0, 0),
            needs_reference=False,
            labels=CLASS_NAMES,
            default_thresholds={i + 1: 0.5 for i in range(len(CLASS_NAMES))},
        )

    def load(self) -> DetectorInfo:
        return self._info

    def warm_up(self, runs: int = 3) -> float:
        return 0.0

    def detect(self, image, reference=None, thresholds=None):
        self.calls += 1
        return []

    @property
    def info(self) -> DetectorInfo:
        return self._info


class TimedSink:
    """Records every result with the monotonic time it was published."""

    name = "test"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.items: list[tuple[float, object]] = []

    def submit(self, r) -> None:
        with self.lock:
            self.items.append((time.monotonic(), r))

    def results(self, after: float = 0.0):
        with self.lock:
            return [r for t, r in self.items if t >= after]


class HealthLog:
    def __init__(self, health: Health) -> None:
        self.lock = threading.Lock()
        self.events: list[tuple[float, bool, str, int, bool]] = []
        self.health = health
        health.subscribe(self)

    def __call__(self, state) -> None:
        if state.name == "camera":
            with self.lock:
                self.events.append(
                    (time.monotonic(), state.ok, state.reason, self.health.error_code(), self.health.ready)
                )


def wait_for(cond, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def camera_ok(health: Health) -> bool:
    s = health.get("camera")
    return s is not None and s.ok
