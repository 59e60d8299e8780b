"""systemd readiness and watchdog (`sd_notify`) without libsystemd.

Why our own ten lines instead of a dependency: the protocol is one datagram per message to the
socket named in `$NOTIFY_SOCKET`, and the container image must not grow for it.

Why the watchdog is fed only while the pipeline is alive, not while the station is READY: a READY
drop because the PLC cable is out or the disk is low is not cured by restarting the process, and a
restart loop would hide the real reason from the operator. A dead or hung capture/inference thread
*is* cured by a restart, so that is what stops the feeding. `STATUS=` carries the READY/NOT READY
summary so `systemctl status` shows the reason either way.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Any

log = logging.getLogger(__name__)


def notify(message: str, socket_path: str | None = None) -> bool:
    """Send one sd_notify message; False when not under systemd (no `$NOTIFY_SOCKET`) or on error."""
    path = socket_path if socket_path is not None else os.environ.get("NOTIFY_SOCKET", "")
    if not path:
        return False
    if path.startswith("@"):  # abstract namespace socket
        path = "\0" + path[1:]
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(path)
            sock.sendall(message.encode())
        return True
    except OSError as exc:
        log.warning("sd_notify to %r failed: %s", path, exc)
        return False


def watchdog_interval_s(env: dict[str, str] | None = None) -> float | None:
    """Half the `WatchdogSec=` that systemd passed in `$WATCHDOG_USEC` (None when not set or not for us)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1e6 / 2


class SystemdWatchdog:
    """Sends READY=1 when started, then WATCHDOG=1 every half period while the pipeline is alive.

    "Alive": a started pipeline has both threads running and, in free-run with a working camera,
    boards keep coming out (a hung inference thread stops `results_published` for `stall_s`). A
    pipeline that was never started or was stopped on purpose counts as alive: no restart loop
    while an operator has the line stopped.
    """

    name = "watchdog"

    def __init__(
        self,
        pipeline: Any,
        health: Any,
        *,
        interval_s: float | None = None,
        stall_s: float = 30.0,
        socket_path: str | None = None,
    ):
        self.pipeline = pipeline
        self.health = health
        self.interval_s = interval_s if interval_s is not None else (watchdog_interval_s() or 5.0)
        self.stall_s = stall_s
        self.socket_path = socket_path
        self.ready_sent = False
        self.beats = 0
        self.withheld = 0
        self._last_count = -1
        self._last_progress = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="sd-watchdog", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(2.0)
        notify("STOPPING=1", self.socket_path)

    def alive(self) -> tuple[bool, str]:
        """Whether a restart would *not* help; with the reason when it would."""
        p = self.pipeline
        threads = getattr(p, "_threads", [])
        if not threads:
            # Not started yet, or stopped on purpose (operator pressed Stop): the process is fine.
            return True, ""
        dead = [t.name for t in threads if not t.is_alive()]
        if dead:
            return False, f"pipeline thread(s) died: {', '.join(dead)}"
        cam = self.health.get("camera")
        now = time.monotonic()
        if p.results_published != self._last_count:
            self._last_count = p.results_published
            self._last_progress = now
        elif not p.triggered and cam is not None and cam.ok and now - self._last_progress > self.stall_s:
            return False, f"no result for {now - self._last_progress:.0f} s in free-run with the camera up"
        return True, ""

    def _loop(self) -> None:
        while not self._stop.is_set():
            ok, why = self.alive()
            if not self.ready_sent:
                # READY=1 once the station is assembled and its parts started (systemd's start job ends).
                notify("READY=1", self.socket_path)
                self.ready_sent = True
            if ok:
                notify(f"WATCHDOG=1\nSTATUS={self.health.summary()}", self.socket_path)
                self.beats += 1
            else:
                self.withheld += 1
                log.error("systemd watchdog not fed: %s", why)
                notify(f"STATUS=watchdog withheld: {why}", self.socket_path)
            self._stop.wait(self.interval_s)


def attach_watchdog(station: Any) -> SystemdWatchdog | None:
    """Station hook: feed systemd's watchdog when started by systemd with `$NOTIFY_SOCKET`."""
    if not os.environ.get("NOTIFY_SOCKET"):
        return None
    wd = SystemdWatchdog(station.pipeline, station.health)
    station.add_part(wd)
    return wd
