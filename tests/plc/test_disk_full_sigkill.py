"""A full disk, then a SIGKILL: the record of the board the PLC saw must survive. And low disk
(below storage.min_free_mb) drops READY with ERROR_CODE 40 without deleting what the PLC saw.

A real station (build_station: replay camera, classical detector, recorder on SQLite, PLC link in
server mode) runs in a subprocess with its data on a real 16 MB tmpfs. The test fills that volume
(as another program would), the PLC triggers a board and reads its result (RESULTS_VALID = 1), the
station is SIGKILLed, space is freed, and the next start must find that board's record. The spool's
reserve journal is what makes the record durable on the full disk; without it the record was held
in memory only and lost, while the PLC had seen the board as REJECT. Needs root for the mount.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from plc_testkit import Plc
from sqlalchemy import select

from inspector.storage import integrity_check, open_database
from inspector.storage.models import Inspection
from inspector.storage.writer import Recorder, RecorderSettings
from plc import registers as R

WORKER = Path(__file__).with_name("durable_station_worker.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_volume(tmp_path, mount_tmpfs):
    return mount_tmpfs(tmp_path / "data", "16m")


def _fill(folder: Path) -> Path:
    """Write zeros until the volume is full, as a runaway log would."""
    filler = folder / "filler.bin"
    block = bytes(1 << 16)
    with open(filler, "wb", buffering=0) as f:
        try:
            while True:
                f.write(block)
        except OSError:
            pass
    return filler


def _echo(st: list[int]) -> int:
    i = R.PART_SEQ_ECHO - R.STATUS_BASE
    return R.decode_u32(st[i : i + 2])


def test_record_the_plc_saw_survives_sigkill_on_a_full_disk(demo_boards, small_volume):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(
        [sys.executable, str(WORKER), str(demo_boards), str(small_volume)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )
    plc = None
    seen: list[tuple[int, str, int]] = []
    try:
        line = p.stdout.readline()
        assert line.startswith("READY "), f"station did not start: {line!r}"
        plc = Plc(int(line.split()[1]), timeout=1.0)
        plc.set_bits(R.TRIGGER_ENABLE)
        plc.wait_bits(on=R.READY, timeout=20)
        for seq in (1, 2):
            b = plc.board(seq, f"SN-OK-{seq}")
            seen.append((b["echo"], f"SN-OK-{seq}", b["status"][0]))
        _fill(small_volume)
        # The station is still READY (nothing has failed yet); this board meets the full disk.
        b = plc.board(3, "SN-FULL", ack=False)
        seen.append((b["echo"], "SN-FULL", b["status"][0]))
        assert b["echo"] == 3
        # The station went NOT READY under this board (disk, database): fail safe, REJECT with ERROR.
        assert b["rejected"] and not b["passed"] and b["status"][0] & R.ERROR
        assert plc.reg(b["status"], R.ERROR_CODE) in (30, 40)
    finally:
        if plc is not None:
            plc.close()
        p.send_signal(signal.SIGKILL)
        _, err = p.communicate(timeout=10)
    assert p.returncode == -signal.SIGKILL
    assert "not acknowledged" not in err, "RESULTS_VALID was set: the log must not say otherwise"

    (small_volume / "filler.bin").unlink()
    url = f"sqlite:///{small_volume / 'records.db'}"
    rec = Recorder(
        RecorderSettings(url, archive_dir=small_volume / "archive", spool_dir=small_volume / "spool", min_free_mb=0)
    )
    rec.start()
    rec.stop()
    db = open_database(url)
    try:
        assert integrity_check(db) == "ok"
        with db.session() as s:
            stored = {
                (seq, serial): archive_error
                for seq, serial, archive_error in s.execute(
                    select(Inspection.part_seq, Inspection.board_serial, Inspection.archive_error)
                ).tuples()
            }
    finally:
        db.close()
    missing = [(seq, serial) for seq, serial, _ in seen if (seq, serial) not in stored]
    assert not missing, f"the PLC saw these boards, the database lost them: {missing}\nstation log:\n{err[-3000:]}"
    assert stored[(3, "SN-FULL")], "the board that met the full disk says why it has no images"


def test_without_room_even_in_the_reserve_the_log_says_what_the_plc_saw(demo_boards, small_volume, caplog):
    """No reserve (spool_reserve_mb = 0, or used up): the board reaches the PLC as REJECT + ERROR after
    plc.result_timeout_s, and the log says exactly that, and that its record is in memory only."""
    from plc_testkit import wait_for

    from inspector.config import StationConfig
    from inspector.station import build_station

    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "path": str(demo_boards), "trigger": "software", "fps": None, "loop": True},
            "detector": {"type": "classical"},
            "plc": {"mode": "server", "host": "127.0.0.1", "port": _free_port(), "simulator": False},
            "storage": {
                "database_url": f"sqlite:///{small_volume / 'records.db'}",
                "archive_dir": str(small_volume / "archive"),
                "spool_dir": str(small_volume / "spool"),
                "min_free_mb": 0,
                "spool_reserve_mb": 0,
            },
        }
    )
    cfg.plc.result_timeout_s = 1.0
    station = build_station(cfg)
    station.start()
    plc = Plc(station.plc.port, timeout=1.0)
    try:
        plc.set_bits(R.TRIGGER_ENABLE)
        plc.wait_bits(on=R.READY, timeout=20)
        plc.board(1, "SN-OK")
        _fill(small_volume)
        with caplog.at_level("WARNING"):
            b = plc.board(2, "SN-FULL", ack=False)
            assert b["rejected"] and not b["passed"] and b["status"][0] & R.ERROR
            assert wait_for(lambda: any("published to the PLC as REJECT" in r.getMessage() for r in caplog.records), 5)
    finally:
        plc.close()
        with caplog.at_level("WARNING"):
            station.stop()
    messages = [r.getMessage() for r in caplog.records]
    published = [m for m in messages if "published to the PLC as REJECT" in m]
    assert published and "part_seq=2" in published[0] and "in memory only" in published[0], published
    assert not any("not acknowledged" in m for m in messages), [m for m in messages if "acknowledged" in m]
    assert station.recorder.stats.unrecorded == 1
    assert any("NOT recorded" in m and "published as REJECT" in m for m in messages)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_low_disk_drops_ready_with_error_code_40_and_keeps_the_records(demo_boards, tmp_path, monkeypatch):
    """Below storage.min_free_mb the PLC sees READY = 0 and ERROR_CODE 40 within seconds, and every
    record it saw stays. Only the free-space probe is faked (a volume with 1 MB left); the station,
    its database, archive and retention are real."""
    from plc_testkit import wait_for

    from inspector.config import StationConfig
    from inspector.station import build_station
    from inspector.storage import count, open_database
    from inspector.storage import retention as retention_mod

    free = {"mb": 10_000.0}
    monkeypatch.setattr(retention_mod, "free_mb", lambda folder: free["mb"])
    cfg = StationConfig.model_validate(
        {
            "camera": {"type": "replay", "path": str(demo_boards), "trigger": "software", "fps": None, "loop": True},
            "detector": {"type": "classical"},
            "plc": {"mode": "server", "host": "127.0.0.1", "port": _free_port(), "simulator": False},
            "storage": {
                "database_url": f"sqlite:///{tmp_path / 'records.db'}",
                "archive_dir": str(tmp_path / "archive"),
                "spool_dir": str(tmp_path / "spool"),
                "min_free_mb": 500,
                "retention_interval_s": 0.2,
            },
        }
    )
    station = build_station(cfg)
    station.recorder.settings.disk_check_s = 0.1
    station.start()
    plc = Plc(station.plc.port, timeout=1.0)
    try:
        plc.set_bits(R.TRIGGER_ENABLE)
        plc.wait_bits(on=R.READY, timeout=20)
        for seq in range(1, 5):
            plc.board(seq, f"SN-{seq}")
        free["mb"] = 1.0  # something else filled the volume
        st = plc.wait_bits(off=R.READY, timeout=5)
        assert plc.reg(st, R.ERROR_CODE) == 40
        assert wait_for(lambda: station.health.get("disk").reason.startswith("1 MB free < 500 MB floor"), 5)
        time.sleep(1.0)  # several retention passes below the floor
        free["mb"] = 10_000.0
        assert wait_for(lambda: station.health.get("disk").ok, 5), station.health.summary()
        plc.set_bits(R.CLEAR_ERROR)  # the fault was latched: the PLC clears it, as after any station fault
        plc.wait_bits(on=R.READY, off=R.ERROR, timeout=5)
        plc.clear_bits(R.CLEAR_ERROR)
        assert plc.board(5, "SN-5")["echo"] == 5
    finally:
        plc.close()
        station.stop()
    db = open_database(f"sqlite:///{tmp_path / 'records.db'}")
    try:
        assert count(db) == 5, "retention deleted none of the records the PLC saw"
    finally:
        db.close()
