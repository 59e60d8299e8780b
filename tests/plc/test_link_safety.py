"""The PLC link under integration mistakes: a second master, a wrong unit id, a silent PLC, function
codes outside the map, and the demo's simulator beside a real server. Real peers only: pymodbus'
client, pyModbusTCP, umodbus and raw sockets against the station's server on 127.0.0.1."""

from __future__ import annotations

import argparse
import logging
import math
import shutil
import socket
import struct
import subprocess
import time

import pytest
from plc_testkit import raw_request, wait_for
from pymodbus.client import ModbusTcpClient
from pyModbusTCP.client import ModbusClient
from umodbus.client import tcp as utcp
from umodbus.exceptions import GatewayTargetDeviceFailedToRespondError

from inspector.commands.common import add_station_args, station_config
from inspector.config import load_config
from inspector.health import ERROR_CODES, Health
from plc import registers as R
from plc.station import PlcLink


def _pymodbus_client(port: int, source: str | None = None) -> ModbusTcpClient:
    """`source`: the local address to connect from (127.0.0.2 is another host on the loopback net)."""
    c = ModbusTcpClient("127.0.0.1", port=port, timeout=2, retries=0, source_address=(source, 0) if source else None)
    assert c.connect(), f"cannot connect to 127.0.0.1:{port}"
    return c


# ---------------------------------------------------------------------------------- one master at a time
def test_second_master_is_refused_and_raises_its_own_alarm(station, plc_factory, caplog):
    caplog.set_level(logging.INFO)
    a = plc_factory(station.port)  # master A: heartbeat every 0.2 s on one pyModbusTCP connection
    a.set_bits(R.TRIGGER_ENABLE)
    a.wait_bits(on=R.READY, off=R.ERROR)
    a.write_part(1111, "FROM-A")
    b = _pymodbus_client(station.port, "127.0.0.2")  # B: another host (a second PLC, an HMI writing)
    try:
        for i in range(50):
            rsp = b.write_registers(R.PART_SEQ, R.encode_u32(2222) + R.encode_ascii(f"B-{i}", 4), device_id=1)
            assert rsp.isError() and rsp.exception_code == 6, f"write {i} of the second master: {rsp}"
        rsp = b.write_register(R.CONTROL, R.TRIGGER_ENABLE | R.TRIGGER, device_id=1)
        assert rsp.isError() and rsp.exception_code == 6
        # B may still read (an HMI watching the status block is not a master)
        st = b.read_holding_registers(R.STATUS_BASE, count=R.STATUS_SIZE, device_id=1)
        assert not st.isError()
        # A's values stand; the station stops the line with its own code and names both peers
        ctrl = b.read_holding_registers(R.CONTROL_BASE, count=8, device_id=1).registers
        assert R.decode_u32(ctrl[2:4]) == 1111 and R.decode_ascii(ctrl[4:8]) == "FROM-A"
        s = a.wait_bits(on=R.ERROR, off=R.READY, timeout=5)
        assert a.reg(s, R.ERROR_CODE) == ERROR_CODES["plc_master"] == 51
        reason = station.health.get("plc").reason
        b_peer = f"127.0.0.2:{b.socket.getsockname()[1]}"
        assert reason.startswith("second PLC master") and b_peer in reason, reason
        assert station.link.server.master_conflicts == 51
        assert station.link.hs.counters.second_master_writes == 51
        assert station.sink.results == []  # B's TRIGGER started nothing
    finally:
        b.close()
    refused = [r for r in caplog.records if r.name == "plc.modbus.server" and "second PLC master" in r.getMessage()]
    assert len(refused) == 1, [r.getMessage() for r in refused]  # 51 refused writes, one log line
    # B gone: the alarm ends heartbeat_timeout_s (2 s) after its last write; CLEAR_ERROR then works
    assert wait_for(lambda: station.health.get("plc").ok, 10), station.health.get("plc")
    a.set_bits(R.CLEAR_ERROR)
    a.wait_bits(off=R.ERROR)
    a.clear_bits(R.CLEAR_ERROR)
    r = a.board(3333, "FROM-A-2")
    assert r["echo"] == 3333 and station.sink.by_part()[3333].board_serial == "FROM-A-2"


def test_master_that_disconnected_is_replaced_without_an_alarm(station, plc_factory):
    """A PLC restarting (new connection after the old one closed) is the same line, not a second master."""
    a = plc_factory(station.port)
    a.set_bits(R.TRIGGER_ENABLE)
    a.wait_bits(on=R.READY)
    assert station.link.server.master is not None
    a.close()
    assert wait_for(lambda: station.link.server.master is None, 5)
    b = plc_factory(station.port)  # a fresh connection takes over
    b.set_bits(R.TRIGGER_ENABLE)
    r = b.board(4444, "AFTER-RESTART")
    assert r["echo"] == 4444 and not r["status"][0] & R.ERROR
    assert station.link.server.master_conflicts == 0


def test_master_reconnecting_from_its_host_takes_over_once_and_ping_pong_is_refused(station, caplog):
    """A PLC whose old connection still looks open (cable pulled, no FIN) reconnects: its new connection
    takes over and the old one is closed. Two programs on one host taking turns are two masters."""
    caplog.set_level(logging.INFO)
    hb = 0

    def beat(c: ModbusTcpClient):
        nonlocal hb
        hb ^= R.PLC_HEARTBEAT
        return c.write_register(R.CONTROL, R.TRIGGER_ENABLE | hb, device_id=1)

    old = _pymodbus_client(station.port)
    new = _pymodbus_client(station.port)
    third = _pymodbus_client(station.port)
    try:
        assert not beat(old).isError()
        old_peer = f"127.0.0.1:{old.socket.getsockname()[1]}"
        assert station.link.server.master == old_peer
        rsp = beat(new)  # the reconnect, while `old` is still open and active
        assert not rsp.isError(), rsp
        new_peer = f"127.0.0.1:{new.socket.getsockname()[1]}"
        assert station.link.server.master == new_peer
        assert wait_for(
            lambda: old_peer not in [c.peer for c in station.link.server._server.active_connections.values()]
        )
        assert any("the old connection" in r.getMessage() and old_peer in r.getMessage() for r in caplog.records)
        time.sleep(0.3)
        assert station.health.get("plc").ok and station.link.server.master_conflicts == 0
        # another new connection from the same host right after: two programs taking turns
        rsp = beat(third)
        assert rsp.isError() and rsp.exception_code == 6
        assert station.link.server.master == new_peer
        assert wait_for(lambda: "second PLC master" in station.health.get("plc").reason, 5)
        assert "second new connection from that host" in station.health.get("plc").reason
    finally:
        for c in (old, new, third):
            c.close()


# ---------------------------------------------------------------------------------- wrong unit id
def test_wrong_unit_id_gets_0b_and_one_log_line_per_unit(station, caplog):
    caplog.set_level(logging.DEBUG)
    c = ModbusClient(host="127.0.0.1", port=station.port, unit_id=7, timeout=2, auto_open=True)
    try:
        for _ in range(200):
            assert c.read_holding_registers(R.STATUS_BASE, 1) is None
            assert c.last_except == 0x0B, c.last_except_as_full_txt
        assert c.write_single_register(R.CONTROL, R.TRIGGER) is False and c.last_except == 0x0B
        c.unit_id = 1  # the right id on the same connection is served
        assert c.read_holding_registers(R.MAP_VERSION_REG, 1) == [R.MAP_VERSION]
    finally:
        c.close()
    with socket.create_connection(("127.0.0.1", station.port), timeout=2) as sock:
        for _ in range(20):
            with pytest.raises(GatewayTargetDeviceFailedToRespondError):
                utcp.send_message(utcp.read_holding_registers(9, R.STATUS_BASE, 1), sock)
    lines = [r.getMessage() for r in caplog.records if "unit id" in r.getMessage()]
    assert len([m for m in lines if "unit id 7," in m]) == 1, lines
    assert len([m for m in lines if "unit id 9," in m]) == 1, lines
    assert all("serves unit id 1 (plc.device_id)" in m for m in lines), lines
    assert not [r for r in caplog.records if r.exc_info or "KeyError" in r.getMessage()]
    assert station.link.server.wrong_unit == 221
    assert station.link.hs.ctrl[0] == 0  # the wrong-unit write did not reach the control block


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="mbpoll not installed (packaging/apt-test.txt)")
def test_mbpoll_with_a_wrong_unit_id_is_told_the_target_failed(station, caplog):
    caplog.set_level(logging.WARNING)
    for _ in range(3):
        out = subprocess.run(
            ["mbpoll", "-m", "tcp", "-p", str(station.port), "-a", "7", "-t", "4", "-1", "-r", "101", "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=20,
        )
        assert out.returncode != 0 and "Target device failed to respond" in out.stdout + out.stderr, out.stdout
    assert len([r for r in caplog.records if "addressed unit id 7," in r.getMessage()]) == 1


def test_wrong_unit_id_log_is_rate_limited_not_silenced(station, caplog):
    caplog.set_level(logging.WARNING)
    station.link.server.log_interval_s = 0.3  # read at each request; 10 s in service
    c = ModbusClient(host="127.0.0.1", port=station.port, unit_id=5, timeout=2, auto_open=True)
    t0 = time.monotonic()
    n = 0
    try:
        while time.monotonic() - t0 < 1.0:
            assert c.read_holding_registers(R.STATUS_BASE, 1) is None and c.last_except == 0x0B
            n += 1
    finally:
        c.close()
    elapsed = time.monotonic() - t0
    lines = [r.getMessage() for r in caplog.records if "unit id 5," in r.getMessage()]
    assert 2 <= len(lines) <= math.ceil(elapsed / 0.3) + 1, (n, elapsed, lines)
    assert "more such requests since the last report" in lines[1]


# ---------------------------------------------------------------------------------- heartbeat loss
def test_heartbeat_loss_logs_once_and_once_when_restored(station_factory, plc_factory, caplog):
    caplog.set_level(logging.INFO)
    st = station_factory(heartbeat_timeout_s=0.3)
    plc = plc_factory(st.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    plc.wait_bits(on=R.READY)
    caplog.clear()
    plc.stop_heartbeat()
    plc.wait_bits(on=R.ERROR, off=R.READY, timeout=5)
    time.sleep(2.0)  # about 200 link ticks with the heartbeat lost
    assert "heartbeat lost" in st.health.get("plc").reason
    plc.start_heartbeat()
    assert wait_for(lambda: st.health.get("plc").ok, 5)
    msgs = [r.getMessage() for r in caplog.records]
    lost = [m for m in msgs if "heartbeat lost" in m]
    restored = [m for m in msgs if m.startswith("plc OK")]
    assert len(lost) == 1 and len(restored) == 1, msgs
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) <= 2, msgs


# ---------------------------------------------------------------------------------- function codes
FOREIGN_FUNCTIONS = {
    7: b"\x07",  # read exception status
    8: struct.pack(">BHH", 8, 0, 0x1234),  # diagnostics, return query data
    11: b"\x0b",  # get comm event counter
    12: b"\x0c",  # get comm event log
    17: b"\x11",  # report server id
    20: bytes([20, 7, 6, 0, 4, 0, 1, 0, 2]),  # read file record (pymodbus served a dummy record)
    21: bytes([21, 9, 6, 0, 1, 0, 0, 0, 1, 0, 0]),  # write file record
    22: struct.pack(">BHHH", 22, 0, 0xFFFF, 0x0002),  # mask write register (refused before, by the hook)
    24: struct.pack(">BH", 24, 0),  # read FIFO queue
    43: bytes([43, 14, 1, 0]),  # read device identification
}


@pytest.mark.parametrize("fc", sorted(FOREIGN_FUNCTIONS))
def test_function_codes_outside_the_map_get_illegal_function(station, fc):
    with socket.create_connection(("127.0.0.1", station.port), timeout=2) as sock:
        tid, rsp = raw_request(sock, 40 + fc, 1, FOREIGN_FUNCTIONS[fc])
        assert tid == 40 + fc and rsp == bytes([fc | 0x80, 1]), f"FC {fc}: got {rsp.hex()}"
        tid, rsp = raw_request(sock, 99, 1, struct.pack(">BHH", 3, R.MAP_VERSION_REG, 1))
        assert rsp == bytes([3, 2, 0, R.MAP_VERSION])  # still serving on the same connection
    assert station.link.hs.ctrl[0] == 0


def test_pymodbus_client_gets_exception_01_for_each_foreign_function(station):
    c = _pymodbus_client(station.port)
    try:
        calls = {
            7: lambda: c.read_exception_status(device_id=1),
            8: lambda: c.diag_query_data(0x1234, device_id=1),
            11: lambda: c.diag_get_comm_event_counter(device_id=1),
            17: lambda: c.report_device_id(device_id=1),
            24: lambda: c.read_fifo_queue(address=0, device_id=1),
        }
        for fc, call in calls.items():
            rsp = call()
            assert rsp.isError() and rsp.exception_code == 1 and rsp.function_code == fc | 0x80, f"FC {fc}: {rsp}"
        rsp = c.read_holding_registers(R.MAP_VERSION_REG, count=1, device_id=1)
        assert rsp.registers == [R.MAP_VERSION]
    finally:
        c.close()


def test_documented_function_codes_are_the_served_ones():
    from pymodbus.pdu import DecodePDU

    assert R.SERVED_FUNCTIONS == {3, 6, 16, 23}
    assert R.SERVED_FUNCTIONS <= set(DecodePDU.pdu_table)


# ---------------------------------------------------------------------------------- the demo's simulator
def _args(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    add_station_args(p)
    return p.parse_args(list(argv))


def test_plc_server_spec_turns_the_simulator_off_and_sim_asks_for_it():
    assert station_config(_args()).plc.simulator  # the demo (no config file): simulator on
    cfg = station_config(_args("--plc", "server:127.0.0.1:1502"))
    assert cfg.plc.mode == "server" and not cfg.plc.simulator
    cfg = station_config(_args("--plc", "server:127.0.0.1:1502+sim"))
    assert cfg.plc.mode == "server" and cfg.plc.simulator and cfg.plc.port == 1502
    from inspector.cli import CommandError

    for bad in ("server:127.0.0.1:1502+simulator", "client:10.0.0.5:502+sim"):
        with pytest.raises(CommandError, match=r"\+sim"):
            station_config(_args("--plc", bad))


def test_config_file_runs_the_simulator_only_when_it_says_so(tmp_path):
    f = tmp_path / "s.toml"
    f.write_text('[plc]\nmode = "server"\nhost = "127.0.0.1"\n')
    assert not load_config(f).plc.simulator
    f.write_text('[detector]\nengine = "classical"\n')
    assert not load_config(f).plc.simulator
    f.write_text("[plc]\nsimulator = true\n")
    assert load_config(f).plc.simulator


class _NoPipeline:
    """The link never triggers here (no PLC writes), so no pipeline call is made."""

    def trigger(self, req):  # pragma: no cover - would mean a PLC wrote TRIGGER
        raise AssertionError(f"unexpected trigger {req}")


@pytest.mark.parametrize("spec", ["server:127.0.0.1:{port}", "server:127.0.0.1:{port}+sim"])
def test_simulator_runs_only_when_asked_and_the_log_says_so(spec, caplog):
    caplog.set_level(logging.INFO)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = station_config(_args("--plc", spec.format(port=port)))
    health = Health()
    link = PlcLink(cfg.plc, _NoPipeline(), health, startup_grace_s=60.0)
    link.start()
    try:
        time.sleep(0.5)
        if cfg.plc.simulator:
            assert link.simulator is not None
            assert wait_for(lambda: link.server is not None and link.server.master is not None, 5)
            assert any("simulator RUNNING" in r.getMessage() for r in caplog.records)
        else:
            assert link.simulator is None
            assert link.server.connections == 0 and link.server.master is None
            assert any("simulator off: waiting for a PLC on 127.0.0.1" in r.getMessage() for r in caplog.records)
            assert not any("simulator RUNNING" in r.getMessage() for r in caplog.records)
    finally:
        link.stop()


# ---------------------------------------------------------------------------------- client mode refusals
def test_client_mode_refused_write_is_logged_once_not_every_poll(station_factory, caplog):
    """The PLC (pyModbusTCP's server) holds only 150 registers: each status write at 200 is refused (02)."""
    from pyModbusTCP.server import DataBank, ModbusServer

    caplog.set_level(logging.WARNING)
    plc = ModbusServer("127.0.0.1", 0, no_block=True, data_bank=DataBank(h_regs_size=150))
    plc.start()
    try:
        port = plc._service.server_address[1]
        st = station_factory(mode="client", port=port, control_base=0, status_base=200, poll_ms=5)
        assert wait_for(lambda: st.link.client is not None and st.link.client.transactions > 50, 10)
        time.sleep(1.0)  # about 200 polls, each with a refused status write
        refused = [r.getMessage() for r in caplog.records if "refused write" in r.getMessage()]
        assert st.link.client.transactions > 100
        assert len(refused) == 1, refused
        assert f"refused write {R.STATUS_SIZE} registers at 200" in refused[0]
        assert "logged at most every 10 s" in refused[0]
    finally:
        plc.stop()
