"""Real camera peers for the capture tests: Aravis's fake GigE Vision camera on loopback.

The fake camera binds UDP 3956 on 127.0.0.1 (it cannot use another loopback address), so two test
runs on one machine would fight over it: a file lock serialises them. The camera process is started
per test and killed at its end; tests that simulate a cable pull kill and restart it themselves.
Nothing here calls Aravis discovery (it broadcasts); cameras are opened by address.
"""

from __future__ import annotations

import fcntl
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

FAKE_GV = "arv-fake-gv-camera-0.8"
ADDRESS = "127.0.0.1"
GVCP_PORT = 3956


def aravis_missing() -> str | None:
    if shutil.which(FAKE_GV) is None:
        return f"{FAKE_GV} not installed (Debian aravis-tools, listed in packaging/apt-test.txt)"
    try:
        from inspector.capture.aravis import load_aravis

        load_aravis()
    except Exception as exc:  # CameraError with the install hint
        return str(exc)
    return None


def _udp_bound(port: int, address_hex: str = "0100007F") -> bool:
    want = f"{address_hex}:{port:04X}"
    try:
        lines = Path("/proc/net/udp").read_text().splitlines()[1:]
    except OSError:
        return False
    return any(line.split()[1] == want for line in lines)


class FakeGvCamera:
    """One `arv-fake-gv-camera-0.8 -i 127.0.0.1` process that a test can kill and start again."""

    address = ADDRESS

    def __init__(self, extra_args: tuple[str, ...] = ()):
        self.extra_args = extra_args
        self.proc: subprocess.Popen | None = None
        self.log = Path(tempfile.mkstemp(prefix="fake-gv-", suffix=".log")[1])

    def start(self, timeout: float = 10.0) -> None:
        assert self.proc is None or self.proc.poll() is not None, "fake camera already running"
        end = time.monotonic() + timeout
        while _udp_bound(GVCP_PORT):  # the previous process is still releasing the port
            if time.monotonic() > end:
                raise RuntimeError(f"UDP {ADDRESS}:{GVCP_PORT} stays busy; another fake camera is running")
            time.sleep(0.05)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                [FAKE_GV, "-i", ADDRESS, *self.extra_args], stdout=log, stderr=subprocess.STDOUT
            )
        while not _udp_bound(GVCP_PORT):
            if self.proc.poll() is not None:
                raise RuntimeError(f"{FAKE_GV} exited with {self.proc.returncode}: {self.log.read_text()[-500:]}")
            if time.monotonic() > end:
                self.kill()
                raise RuntimeError(f"{FAKE_GV} did not bind {ADDRESS}:{GVCP_PORT} within {timeout} s")
            time.sleep(0.02)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@pytest.fixture
def aravis_available():
    reason = aravis_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def gv_lock(aravis_available):
    path = Path(tempfile.gettempdir()) / "pcb-inspector-fake-gv.lock"
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)  # another test run holds the camera: wait for it
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


@pytest.fixture
def fake_gv(gv_lock):
    cam = FakeGvCamera()
    cam.start()
    try:
        yield cam
    finally:
        cam.kill()
        cam.log.unlink(missing_ok=True)


@pytest.fixture
def fake_gv_factory(gv_lock):
    """Start fake cameras with extra arguments (e.g. a packet-loss ratio); all are killed at the end."""
    made: list[FakeGvCamera] = []

    def make(*args: str) -> FakeGvCamera:
        cam = FakeGvCamera(tuple(args))
        made.append(cam)
        cam.start()
        return cam

    yield make
    for cam in made:
        cam.kill()
        cam.log.unlink(missing_ok=True)
