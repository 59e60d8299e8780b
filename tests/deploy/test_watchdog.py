"""sd_notify over a real AF_UNIX datagram socket, as systemd listens for it."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from inspector.config import StationConfig
from inspector.station import build_station
from inspector.watchdog import SystemdWatchdog, notify, watchdog_interval_s

from .conftest import wait_for


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.1)
    got: list[str] = []
    stop = threading.Event()

    def recv():
        while not stop.is_set():
            try:
                got.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    t = threading.Thread(target=recv, daemon=True)
    t.start()
    yield path, got
    stop.set()
    t.join(1)
    sock.close()


def test_notify_writes_one_datagram(notify_socket):
    path, got = notify_socket
    assert notify("READY=1", path)
    assert wait_for(lambda: got == ["READY=1"], 2)
    assert notify("READY=1", "") is False  # not under systemd: a no-op


def test_watchdog_interval_from_systemd_env():
    import os

    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval_s({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": str(os.getpid() + 1)}) is None
    assert watchdog_interval_s({}) is None


def test_watchdog_fed_while_pipeline_alive_and_withheld_when_a_thread_dies(notify_socket, tmp_path):
    path, got = notify_socket
    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "fps": 20.0, "demo_boards": 4},
            "detector": {"type": "classical"},
            "plc": {"mode": "off"},
            "storage": {"archive_dir": str(tmp_path / "a")},
        }
    )
    station = build_station(cfg, with_storage=False)
    wd = SystemdWatchdog(station.pipeline, station.health, interval_s=0.05, socket_path=path)
    station.parts.append(wd)
    station.start()
    try:
        assert wait_for(lambda: station.pipeline.results_published >= 3, 30)
        assert wait_for(lambda: sum(m.startswith("WATCHDOG=1") for m in got) >= 3, 10)
        assert got[0] == "READY=1"
        assert any("STATUS=READY" in m for m in got)
        # Kill the inference thread the way a crash would leave it: the thread ends, the process lives.
        inference = next(t for t in station.pipeline._threads if t.name == "inference")
        station.pipeline._stop.set()
        inference.join(5)
        # A feed decided just before the thread ended may still be on its way to the socket: three intervals.
        time.sleep(0.15)
        fed = sum(m.startswith("WATCHDOG=1") for m in got)
        time.sleep(0.4)
        assert sum(m.startswith("WATCHDOG=1") for m in got) == fed, "watchdog still fed with a dead pipeline"
        assert wd.withheld > 0
        assert any("watchdog withheld: pipeline thread(s) died" in m for m in got)
    finally:
        station.stop()


def test_stopped_on_purpose_pipeline_keeps_the_watchdog_fed(notify_socket, tmp_path):
    path, got = notify_socket
    cfg = StationConfig.model_validate(
        {"detector": {"type": "classical"}, "plc": {"mode": "off"}, "storage": {"archive_dir": str(tmp_path)}}
    )
    station = build_station(cfg, with_storage=False)  # never started: the operator has not pressed Start
    wd = SystemdWatchdog(station.pipeline, station.health, interval_s=0.05, socket_path=path)
    wd.start()
    try:
        assert wait_for(lambda: sum(m.startswith("WATCHDOG=1") for m in got) >= 2, 5)
    finally:
        wd.stop()
    assert wait_for(lambda: got[-1] == "STOPPING=1", 2)
