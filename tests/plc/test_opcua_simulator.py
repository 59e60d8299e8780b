"""The built-in line PLC simulator over OPC UA: a station built as `pcb-inspector run --plc
opcua:127.0.0.1:PORT+sim` builds it (replay camera, the classical detector, SQLite records) runs boards
driven by the simulator, an asyncua client on its own connection, with security None and with
Basic256Sha256 behind a trust folder it was never copied into; and a plain `opcua:HOST:PORT` runs none.
"""

from __future__ import annotations

import argparse
import logging
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from plc_testkit import ListSink, wait_for
from sqlalchemy import select

from inspector.commands.common import station_config
from inspector.domain import Verdict
from inspector.health import Health
from inspector.station import build_station
from inspector.storage import open_database
from inspector.storage.models import Inspection
from plc.link import PlcLink
from plc.opcua.simulator import OpcUaLinePlcSimulator

NAMESPACE = "urn:pcb-inspector:sim-line"
BOARDS = 8


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def station_file(tmp: Path, boards: Path, security: str, extra: str = "") -> Path:
    f = tmp / "station.toml"
    f.write_text(
        f"""
[camera]
type = "replay"
path = "{boards}"
trigger = "software"

[detector]
type = "classical"

[storage]
database_url = "sqlite:///{tmp / "inspections.db"}"
archive_dir = "{tmp / "archive"}"
spool_dir = "{tmp / "spool"}"

[plc]
protocol = "opcua"
namespace = "{NAMESPACE}"
security = "{security}"
certificate = "{tmp / "pki" / "server-cert.der"}"
private_key = "{tmp / "pki" / "server-key.pem"}"
simulator_rate = 20.0
{extra}
"""
    )
    return f


@pytest.fixture
def sim_station(tmp_path, demo_boards):
    made = []

    def make(security: str, spec_suffix: str = "+sim", extra: str = ""):
        port = free_port()
        f = station_file(tmp_path, demo_boards, security, extra)
        args = argparse.Namespace(
            config=str(f), plc=f"opcua:127.0.0.1:{port}{spec_suffix}", camera=None, model=None, db=None
        )
        cfg = station_config(args)
        assert cfg.plc.protocol == "opcua" and cfg.plc.port == port and cfg.plc.simulator == (spec_suffix == "+sim")
        sink = ListSink()
        station = build_station(cfg, sinks=[sink])
        made.append(station)
        station.start()
        return station, sink

    yield make
    for st in made:
        st.stop()


def run_and_check(station, sink: ListSink, tmp_path: Path) -> OpcUaLinePlcSimulator:
    sim = station.plc.simulator
    assert isinstance(sim, OpcUaLinePlcSimulator)
    assert wait_for(lambda: sim.stats.acknowledged >= BOARDS or sim.stats.station_down, 90, 0.05)
    sim.stop()  # before the station stops its pipeline under a board in flight
    stats = sim.stats
    why = f"{stats.summary()}; operator resets {stats.error_resets}; {stats.violations}"
    assert not stats.violations and not stats.station_down and stats.error_resets == 0, why
    seen = list(stats.recent)
    assert len(seen) == stats.acknowledged >= BOARDS
    # One board after the other, one InspId each, no gap, from the first board on.
    assert [b.part_seq for b in seen] == list(range(1, len(seen) + 1))
    assert [b.insp_id for b in seen] == list(range(1, len(seen) + 1))
    assert stats.passed + stats.rejected == stats.boards and stats.missed == 0
    by_part = wait_for(lambda: len(sink.by_part()) >= len(seen) and sink.by_part(), 10)
    for b in seen:
        assert b.passed == (by_part[b.part_seq].verdict == Verdict.PASS)
        assert (b.result_code == 0) == b.passed
    assert {b.passed for b in seen} == {True, False}, "the demo boards hold good and defective ones"
    assert station.plc.hs.counters.violations == 0, list(station.plc.hs.counters.violation_log)
    assert station.plc.transport.master_conflicts == 0 and station.plc.transport.refused == 0
    station.stop()
    # What the PLC saw is what the records hold (each was durable before ResultsValid).
    db = open_database(f"sqlite:///{tmp_path / 'inspections.db'}")
    try:
        with db.session() as s:
            rows = {
                r.part_seq: r
                for r in s.execute(select(Inspection.part_seq, Inspection.verdict, Inspection.board_serial)).all()
            }
    finally:
        db.close()
    for b in seen:
        row = rows[b.part_seq]
        assert row.board_serial == f"SIM{b.part_seq:08d}"
        assert (row.verdict == "PASS") == b.passed, (b, row)
    return sim


def test_simulator_drives_the_station_over_opcua_without_security(sim_station, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    station, sink = sim_station("None")
    run_and_check(station, sink, tmp_path)
    assert any("simulator RUNNING" in r.getMessage() for r in caplog.records)


def test_simulator_gets_a_secure_channel_trusted_for_this_run_only(sim_station, tmp_path):
    """Basic256Sha256 with a trust folder: the simulator's certificate (made in memory) is trusted for the
    run without a file in the folder, and nothing is left behind that would trust it later."""
    trusted = tmp_path / "pki" / "trusted"
    station, sink = sim_station("Basic256Sha256", extra=f'trusted_clients = "{trusted}"')
    sim = run_and_check(station, sink, tmp_path)
    assert sim.security == "Basic256Sha256"
    assert list(trusted.iterdir()) == [] and not (tmp_path / "pki" / "rejected").exists()


def test_a_plain_opcua_address_runs_no_simulator_and_says_so(tmp_path, caplog):
    caplog.set_level(logging.INFO)
    port = free_port()
    cfg = station_config(
        argparse.Namespace(config=None, plc=f"opcua:127.0.0.1:{port}", camera=None, model=None, db=None)
    )
    cfg.plc.security = "None"
    link = PlcLink(cfg.plc, pipeline=None, health=Health(), startup_grace_s=60.0)
    link.start()
    try:
        assert link.simulator is None and link.transport.master is None
        assert any("simulator off: waiting for a PLC (OPC UA client)" in r.getMessage() for r in caplog.records)
        assert not any("simulator RUNNING" in r.getMessage() for r in caplog.records)
    finally:
        link.stop()


def test_plc_sim_command_brings_up_an_opcua_station_with_its_own_certificate(sim_station, tmp_path):
    """`pcb-inspector plc-sim --station opc.tcp://...` (a bring-up without a PLC): a certificate pair made on
    first use at --certificate/--private-key, refused by the station until moved into trusted_clients."""
    trusted = tmp_path / "pki" / "trusted"
    station, sink = sim_station("Basic256Sha256", spec_suffix="", extra=f'trusted_clients = "{trusted}"')
    url = f"opc.tcp://127.0.0.1:{station.plc.port}/pcb-inspector/"
    cert, key = tmp_path / "plc" / "sim-cert.der", tmp_path / "plc" / "sim-key.pem"
    argv = [sys.executable, "-m", "inspector.cli", "plc-sim", "--station", url, "--namespace", NAMESPACE]
    argv += ["--certificate", str(cert), "--private-key", str(key), "--rate", "20/s", "--boards", "5"]
    refused = subprocess.run([*argv, "--boards", "1"], capture_output=True, text=True, timeout=120)
    assert refused.returncode == 1 and "cannot connect to the station" in refused.stderr, refused.stderr
    assert cert.is_file() and key.stat().st_mode & 0o777 == 0o600
    (kept,) = (tmp_path / "pki" / "rejected").iterdir()
    assert kept.read_bytes() == cert.read_bytes()
    kept.rename(trusted / kept.name)  # the engineer checked it
    out = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "boards 5:" in out.stdout and "violations 0" in out.stdout
    parts = wait_for(lambda: len(sink.by_part()) >= 5 and sink.by_part(), 10)
    assert sorted(parts) == [1, 2, 3, 4, 5]
    assert [f"insp_id={i}" in out.stdout for i in range(1, 6)] == [True] * 5
