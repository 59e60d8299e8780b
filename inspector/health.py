"""Station state: READY / NOT READY with the reasons.

Why a single object: the PLC's READY bit, the UI's status lamps and the /health endpoint must agree.
Every component reports into it (camera, model, database, disk, plc, recipe); the station is READY
only when all of them are healthy. Thread-safe; listeners are called outside the lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

#: Fault code of each core component: what `Health.error_code()` reports and the PLC's ERROR_CODE
#: register shows (docs/plc.md lists them). Parts outside the core add theirs with
#: `register_error_codes` (the PLC link's own codes live in plc/errors.py).
ERROR_CODES: dict[str, int] = {
    "camera": 10,
    "model": 20,
    "database": 30,
    "disk": 40,
    "recipe": 60,
    "registration": 70,
    "calibration": 75,
    "pipeline": 80,
    "repeat": 85,
}


def register_error_codes(codes: dict[str, int]) -> None:
    """Add the fault codes of a part the core does not know (the PLC link); a code may mean one thing only."""
    for name, code in codes.items():
        owner = next((n for n, c in ERROR_CODES.items() if c == code and n != name), None)
        if owner is not None:
            raise ValueError(f"error code {code} for {name!r} is already used by {owner!r}")
        ERROR_CODES[name] = code


@dataclass(frozen=True, slots=True)
class ComponentState:
    name: str
    ok: bool
    reason: str
    detail: str = ""
    """Extra line for the UI lamp (fps, backend, ...), shown also when ok."""
    since: float = 0.0
    warning: str = ""
    """Healthy but not as configured (e.g. the model runs on the CPU though an accelerator was
    configured): the lamp is amber and READY is unaffected."""


Listener = Callable[[ComponentState], None]


class Health:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, ComponentState] = {}
        self._listeners: list[Listener] = []

    def subscribe(self, fn: Listener) -> None:
        with self._lock:
            self._listeners.append(fn)

    def set(self, name: str, ok: bool, reason: str = "", detail: str | None = None, warning: str = "") -> None:
        with self._lock:
            old = self._states.get(name)
            if detail is None:
                detail = old.detail if old else ""
            if old and old.ok == ok and old.reason == reason and old.detail == detail and old.warning == warning:
                return
            state = ComponentState(name, ok, reason, detail, time.monotonic(), warning)
            self._states[name] = state
            listeners = list(self._listeners)
        if not old or old.ok != ok or old.reason != reason:
            quiet = ok or reason in {"starting", "loading"}  # start-up states are expected, not alarms
            (log.info if quiet else log.warning)(
                "%s %s%s", name, "OK" if ok else "NOT OK", f": {reason}" if reason else ""
            )
        for fn in listeners:
            try:
                fn(state)
            except Exception:  # a broken listener must not stop state changes reaching the others
                log.exception("health listener failed")

    def ok(self, name: str, detail: str | None = None, warning: str = "") -> None:
        """Healthy; with `warning`, healthy but degraded (amber lamp, logged once)."""
        if warning:
            old = self.get(name)
            if old is None or old.warning != warning:
                log.warning("%s degraded: %s", name, warning)
        self.set(name, True, "", detail, warning)

    def fail(self, name: str, reason: str, detail: str | None = None) -> None:
        self.set(name, False, reason, detail)

    def get(self, name: str) -> ComponentState | None:
        with self._lock:
            return self._states.get(name)

    def snapshot(self) -> dict[str, ComponentState]:
        with self._lock:
            return dict(self._states)

    @property
    def ready(self) -> bool:
        with self._lock:
            return bool(self._states) and all(s.ok for s in self._states.values())

    def reasons(self) -> list[str]:
        with self._lock:
            return [f"{s.name}: {s.reason}" for s in self._states.values() if not s.ok]

    def error_code(self) -> int:
        """First failing component's code for the PLC (0 when all are healthy)."""
        with self._lock:
            for s in self._states.values():
                if not s.ok:
                    return ERROR_CODES.get(s.name, 99)
        return 0

    def summary(self) -> str:
        r = self.reasons()
        return "READY" if self.ready else "NOT READY (" + "; ".join(r or ["starting"]) + ")"
