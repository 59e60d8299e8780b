"""The line PLC simulator: clean run against a real station, non-zero exit on violations / station down."""

from __future__ import annotations

import subprocess
import sys
import time

from pyModbusTCP.server import ModbusServer

from plc import registers as R
from plc.cli import parse_rate
from plc.modbus.simulator import LinePlcSimulator


def run_sim(port: int, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", "plc-sim", "--station", f"127.0.0.1:{port}", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_plc_sim_command_runs_clean_against_the_station(station):
    out = run_sim(station.port, "--rate", "20/s", "--boards", "8")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "boards 8:" in out.stdout and "violations 0" in out.stdout and "p99" in out.stdout
    assert len(station.sink.results) == 8


def test_simulator_counts_and_measures(station):
    sim = LinePlcSimulator("127.0.0.1", station.port, rate=50, boards=10, poll_s=0.001)
    stats = sim.run()
    assert not stats.violations and stats.boards == 10 and stats.passed + stats.rejected == 10
    assert len(stats.latencies_ms) == 10 and all(x > 0 for x in stats.latencies_ms)
    published = {r.part_seq: r.passed for r in station.sink.results}
    assert stats.passed == sum(published.values())


def test_station_down_after_three_missed_heartbeats_exits_non_zero():
    # A "station" whose registers never change: READY is set but STATION_HEARTBEAT never toggles.
    srv = ModbusServer("127.0.0.1", 0, no_block=True)
    srv.start()
    try:
        srv.data_bank.set_holding_registers(R.STATUS_BASE, [R.READY | R.ONLINE])
        port = srv._service.server_address[1]
        t0 = time.monotonic()
        out = run_sim(port, "--boards", "5", "--rate", "10/s")
        assert out.returncode == 1
        assert "station down" in out.stderr and time.monotonic() - t0 >= 3.0
    finally:
        srv.stop()


def test_protocol_violation_exits_non_zero():
    # This "station" acknowledges but then shows PASS without RESULTS_VALID: a violation.
    srv = ModbusServer("127.0.0.1", 0, no_block=True)
    srv.start()
    try:
        srv.data_bank.set_holding_registers(R.STATUS_BASE, [R.READY | R.ONLINE | R.PASS])
        out = run_sim(srv._service.server_address[1], "--boards", "1")
        assert out.returncode == 1 and "PASS = 1 while RESULTS_VALID = 0" in out.stderr
    finally:
        srv.stop()


def test_rate_parsing():
    assert parse_rate("2/s") == 2 and parse_rate("120/min") == 2 and parse_rate("0.5") == 0.5


def test_stopping_with_a_board_in_flight_is_no_violation():
    """Line stop while waiting for TRIGGER_ACK: the board is abandoned, not counted, not a station fault."""
    srv = ModbusServer("127.0.0.1", 0, no_block=True)  # READY, but it never acknowledges a trigger
    srv.start()
    try:
        srv.data_bank.set_holding_registers(R.STATUS_BASE, [R.READY | R.ONLINE])
        sim = LinePlcSimulator("127.0.0.1", srv._service.server_address[1], rate=10, boards=1, ack_timeout_s=5.0)
        sim.start_thread()
        time.sleep(0.5)  # the trigger is written and the simulator waits for TRIGGER_ACK
        assert srv.data_bank.get_holding_registers(R.CONTROL)[0] & R.TRIGGER
        sim.stop()
        assert not sim.stats.violations and sim.stats.boards == 0
    finally:
        srv.stop()


def test_statistics_stay_bounded_however_long_the_simulator_runs():
    """A demo left running for days keeps the newest timings and violation texts, and counts them all."""
    from plc.simulator import KEPT_VIOLATIONS, TIMED_BOARDS, SimStats

    stats = SimStats()
    for i in range(TIMED_BOARDS + 500):
        stats.latencies_ms.append(float(i))
        stats.per_board.append((i, 0.0, 1.0))
    for i in range(KEPT_VIOLATIONS + 7):
        stats.violations.append(f"v{i}")
        stats.violation_count += 1
    assert len(stats.latencies_ms) == len(stats.per_board) == TIMED_BOARDS
    assert stats.per_board[0][0] == 500 and stats.latencies_ms[-1] == TIMED_BOARDS + 499
    assert len(stats.violations) == KEPT_VIOLATIONS and stats.violations[-1] == f"v{KEPT_VIOLATIONS + 6}"
    assert f"violations {KEPT_VIOLATIONS + 7}" in stats.summary()
