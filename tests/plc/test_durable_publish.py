"""RESULTS_VALID means the record is durable: the PLC link waits for the recorder before publishing.

- In process: a station with a real recorder on SQLite; at the moment the PLC (pyModbusTCP) reads
  RESULTS_VALID = 1, the board's row is already in the database (read over a separate connection).
- A writer that never confirms: the board that would PASS reaches the PLC as REJECT with ERROR and
  ERROR_CODE 30 (database) after plc.result_timeout_s; CLEAR_ERROR works once the writer is back.
- Crash: a real station (build_station) in a subprocess, driven by the PLC from this process, is
  SIGKILLed at random moments; after each kill every result the PLC read with RESULTS_VALID = 1
  (matched on PART_SEQ_ECHO and serial) is in the database, and PRAGMA integrity_check is ok.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from plc_testkit import ListSink, Plc, wait_for
from sqlalchemy import select

from inspector.config import DetectorSection, Recipe, ReplayCamera, StationConfig, StationSection, StorageSection
from inspector.domain import Verdict
from inspector.health import ERROR_CODES, Health
from inspector.station import build_station
from inspector.storage import integrity_check, open_database
from inspector.storage.models import Inspection
from inspector.storage.writer import Recorder, RecorderSettings
from plc import registers as R
from plc.modbus import ModbusSettings

WORKER = Path(__file__).with_name("durable_station_worker.py")
ROOT = Path(__file__).resolve().parents[2]


def _config(boards: Path, *, result_timeout_s: float = 5.0, **sections) -> StationConfig:
    return StationConfig(
        # No calibration plug-in: it would read calibrations from the working directory's database.
        station=StationSection(plugins={"plc": "station"}),
        camera=ReplayCamera(path=boards, trigger="software", fps=None, loop=True),
        detector=DetectorSection(type="classical"),
        plc=ModbusSettings(mode="server", simulator=False, heartbeat_timeout_s=2.0, result_timeout_s=result_timeout_s),
        recipes=[Recipe()],
        **sections,
    )


class DurableRig:
    """A station from build_station: recorder on SQLite, list sink and PLC link on an ephemeral port."""

    def __init__(self, boards: Path, tmp: Path, *, start_recorder: bool = True, result_timeout_s: float = 5.0):
        cfg = _config(
            boards,
            result_timeout_s=result_timeout_s,
            storage=StorageSection(
                database_url=f"sqlite:///{tmp / 'records.db'}",
                archive_dir=tmp / "archive",
                spool_dir=tmp / "spool",
                min_free_mb=0,
            ),
        )
        self.health = Health()
        self.health.ok("disk", "test: not used")
        self.sink = ListSink()
        station = build_station(
            cfg, sinks=[self.sink], health=self.health, plc_options={"port": 0, "startup_grace_s": 60.0}
        )
        self.recorder, self.pipeline, self.link = station.recorder, station.pipeline, station.plc
        if start_recorder:
            self.recorder.start()
        else:
            self.health.ok("database", "test: writer stalled on purpose")
        self.link.start()
        self.pipeline.start()

    def stop(self) -> None:
        try:
            self.pipeline.stop()
            self.link.stop()
        finally:
            self.recorder.stop()


@pytest.fixture
def rigs():
    made: list[DurableRig] = []
    yield made
    for r in made:
        r.stop()


@pytest.fixture
def plcs():
    made: list[Plc] = []
    yield made
    for p in made:
        p.close()


def _good_board_dir(demo_boards: Path, dest: Path) -> Path:
    """A replay folder with one defect-free board (the classical detector passes it)."""
    truth = json.loads((demo_boards / "truth.json").read_text())
    name = next(n for n, defects in sorted(truth.items()) if not defects)
    dest.mkdir()
    for suffix in ("_test.png", "_temp.png"):
        shutil.copy(demo_boards / f"{name}{suffix}", dest / f"{name}{suffix}")
    (dest / "truth.json").write_text(json.dumps({name: []}))
    return dest


def _trigger_and_wait_valid(plc: Plc, part_seq: int, serial: str, timeout: float = 10.0) -> list[int]:
    plc.write_part(part_seq, serial)
    plc.set_bits(R.TRIGGER_ENABLE | R.TRIGGER)
    plc.wait_bits(on=R.TRIGGER_ACK, timeout=timeout)
    plc.clear_bits(R.TRIGGER)
    return plc.wait_bits(on=R.RESULTS_VALID, off=R.BUSY, timeout=timeout)


def _echo(st: list[int]) -> int:
    i = R.PART_SEQ_ECHO - R.STATUS_BASE
    return R.decode_u32(st[i : i + 2])


def test_results_valid_only_once_the_record_is_in_the_database(demo_boards, tmp_path, rigs, plcs):
    rig = DurableRig(demo_boards, tmp_path)
    rigs.append(rig)
    plc = Plc(rig.link.port)
    plcs.append(plc)
    plc.set_bits(R.TRIGGER_ENABLE)
    plc.wait_bits(on=R.READY)
    db = open_database(f"sqlite:///{tmp_path / 'records.db'}")  # the PLC's view: another connection
    try:
        for seq in range(1, 7):
            st = _trigger_and_wait_valid(plc, seq, f"SN-{seq:04d}")
            assert _echo(st) == seq
            with db.session() as s:
                row = s.execute(
                    select(Inspection.verdict, Inspection.board_serial).where(Inspection.part_seq == seq)
                ).one_or_none()
            assert row is not None, f"PLC saw RESULTS_VALID for part {seq} before its record was committed"
            assert row.board_serial == f"SN-{seq:04d}"
            plc_pass = bool(st[0] & R.PASS)
            assert plc_pass == (row.verdict == "PASS"), (st[0], row.verdict)
            plc.ack()
    finally:
        db.close()
    assert rig.link.durable_timeouts == 0
    assert not st[0] & R.ERROR


def test_not_durable_in_time_is_reject_with_database_error_never_pass(demo_boards, tmp_path, rigs, plcs):
    boards = _good_board_dir(demo_boards, tmp_path / "good")
    rig = DurableRig(boards, tmp_path, start_recorder=False, result_timeout_s=1.0)  # writer stalled
    rigs.append(rig)
    plc = Plc(rig.link.port)
    plcs.append(plc)
    plc.set_bits(R.TRIGGER_ENABLE)
    plc.wait_bits(on=R.READY)

    t0 = time.monotonic()
    plc.write_part(1, "SN-STALLED")
    plc.set_bits(R.TRIGGER)
    plc.wait_bits(on=R.TRIGGER_ACK)
    plc.clear_bits(R.TRIGGER)
    # The board is inspected (PASS) but cannot be confirmed durable: BUSY, no RESULTS_VALID meanwhile.
    assert wait_for(lambda: 1 in rig.sink.by_part(), 5)
    assert rig.sink.by_part()[1].verdict is Verdict.PASS
    st = plc.status()
    assert st[0] & R.BUSY and not st[0] & R.RESULTS_VALID
    st = plc.wait_bits(on=R.RESULTS_VALID, off=R.BUSY, timeout=5)
    assert time.monotonic() - t0 >= 0.9
    assert st[0] & R.REJECT and not st[0] & R.PASS
    assert st[0] & R.ERROR and not st[0] & R.READY
    assert plc.reg(st, R.ERROR_CODE) == ERROR_CODES["database"]
    assert _echo(st) == 1
    assert rig.link.durable_timeouts == 1
    plc.ack()

    # The writer comes back: the late record is written, CLEAR_ERROR restores READY, boards PASS again.
    rig.recorder.start()
    assert rig.recorder.flush(10)
    plc.set_bits(R.CLEAR_ERROR)
    plc.wait_bits(on=R.READY, off=R.ERROR)
    plc.clear_bits(R.CLEAR_ERROR)
    st = _trigger_and_wait_valid(plc, 2, "SN-BACK")
    assert st[0] & R.PASS and not st[0] & R.ERROR and _echo(st) == 2
    assert rig.link.durable_timeouts == 1


def test_link_without_recorder_publishes_at_once_and_says_so(demo_boards, caplog, plcs):
    health = Health()
    health.ok("database", "test: not used")
    health.ok("disk", "test: not used")
    station = build_station(
        _config(demo_boards),
        with_storage=False,
        health=health,
        plc_options={"port": 0, "startup_grace_s": 60.0},
    )
    pipeline, link = station.pipeline, station.plc
    with caplog.at_level("WARNING", logger="plc.station"):
        link.start()
    pipeline.start()
    try:
        assert any("NOT gated on a durable record" in r.getMessage() for r in caplog.records)
        plc = Plc(link.port)
        plcs.append(plc)
        plc.set_bits(R.TRIGGER_ENABLE)
        plc.wait_bits(on=R.READY)
        st = _trigger_and_wait_valid(plc, 7, "SN-NOREC")
        assert _echo(st) == 7 and not st[0] & R.ERROR
    finally:
        pipeline.stop()
        link.stop()


# ---------------------------------------------------------------------------------------------- crash


class PlcDriver(threading.Thread):
    """The line PLC: board after board, remembering every result it read with RESULTS_VALID = 1."""

    def __init__(self, port: int, first_seq: int):
        super().__init__(name="test-line-plc", daemon=True)
        self.plc = Plc(port, timeout=1.0)
        self.seq = first_seq
        self.seen: list[tuple[int, str, int]] = []  # (part_seq echo, serial, status word)
        self.stop_flag = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.plc.set_bits(R.TRIGGER_ENABLE)
            self.plc.wait_bits(on=R.READY, timeout=20)
            while not self.stop_flag.is_set():
                seq, serial = self.seq, f"SN-{self.seq:06d}"
                st = _trigger_and_wait_valid(self.plc, seq, serial, timeout=5)
                self.seen.append((_echo(st), serial, st[0]))  # the PLC has now seen this result
                self.seq += 1
                self.plc.ack()
        except BaseException as exc:  # the station was killed under us: expected
            self.error = exc
        finally:
            self.plc.close()


def _start_worker(boards: Path, data: Path) -> tuple[subprocess.Popen, int]:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    p = subprocess.Popen(
        [sys.executable, str(WORKER), str(boards), str(data)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
        cwd=ROOT,
    )
    line = p.stdout.readline()
    if not line.startswith("READY "):
        p.kill()
        p.wait(10)
        raise AssertionError(f"station worker did not start (rc {p.returncode}, first line {line!r})")
    return p, int(line.split()[1])


def _crash_loop(boards: Path, data: Path, kills: int, seed: int) -> None:
    rng = random.Random(seed)
    url = f"sqlite:///{data / 'records.db'}"
    seen: list[tuple[int, str, int]] = []
    next_seq = 1
    for k in range(kills):
        p, port = _start_worker(boards, data)
        driver = PlcDriver(port, next_seq)
        try:
            driver.start()
            assert wait_for(lambda d=driver: len(d.seen) >= 1, 30), f"kill {k}: no result reached the PLC"
            time.sleep(rng.uniform(0.0, 0.8))
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait(10)
            driver.stop_flag.set()
            driver.join(10)
        assert p.returncode == -signal.SIGKILL
        seen += driver.seen
        next_seq = driver.seq + 1  # the board in flight at the kill is not re-used
        # The next start: the recorder replays whatever the spool holds; then look, as a quality engineer would.
        rec = Recorder(RecorderSettings(url, archive_dir=data / "archive", spool_dir=data / "spool", min_free_mb=0))
        rec.start()
        rec.stop()
        db = open_database(url)
        try:
            assert integrity_check(db) == "ok"
            with db.session() as s:
                stored = set(s.execute(select(Inspection.part_seq, Inspection.board_serial)).tuples())
        finally:
            db.close()
        missing = [(seq, serial) for seq, serial, _ in seen if (seq, serial) not in stored]
        assert not missing, f"kill {k}: the PLC saw {len(missing)} results that are not in the database: {missing[:5]}"
    assert all(not word & R.ERROR for _, _, word in seen), "no database fault expected in this test"
    assert len(seen) >= kills
    print(f"{kills} SIGKILLs, the PLC saw {len(seen)} results, all in the database ({len(stored)} rows)")


def test_sigkill_every_result_the_plc_saw_is_in_the_database(demo_boards, tmp_path):
    _crash_loop(demo_boards, tmp_path, kills=4, seed=11)


@pytest.mark.slow
def test_sigkill_many_times_every_result_the_plc_saw_is_in_the_database(demo_boards, tmp_path):
    _crash_loop(demo_boards, tmp_path, kills=int(os.environ.get("PCB_CRASH_KILLS", "20")), seed=12)
