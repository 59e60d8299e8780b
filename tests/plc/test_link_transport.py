"""The PLC link knows no protocol: over the in-memory transport (no sockets) a real pipeline (replay
camera, the classical golden-board detector) goes through the same handshake, heartbeat, link-down and
second-master rules as over Modbus; [plc] settings are a union on `protocol` owned by the plug-ins.
"""

from __future__ import annotations

import threading

import pytest
from plc_testkit import ListSink, wait_for

from inspector.capture.replay import ReplayCameraSource
from inspector.config import ConfigError, Recipe, ReplayCamera, StationConfig, load_config, parse_config
from inspector.decision import RecipeRules
from inspector.detect.classical import DifferenceDetector
from inspector.health import ERROR_CODES, Health, register_error_codes
from inspector.pipeline import Pipeline
from inspector.plc_settings import parse_plc_spec, protocols
from plc import registers as R
from plc.errors import PLC_ERROR_CODES
from plc.link import PlcLink
from plc.modbus import ModbusSettings
from plc.opcua import OpcUaSettings
from plc.transport import MemoryTransport, Transport


class _Heartbeat:
    def __init__(self, plc: MemoryTransport):
        self.plc, self.stop = plc, threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop.wait(0.2):
            self.plc.set_bits(
                R.PLC_HEARTBEAT
            ) if not self.plc.control_word() & R.PLC_HEARTBEAT else self.plc.clear_bits(R.PLC_HEARTBEAT)


@pytest.fixture
def memory_link(demo_boards):
    made = []

    def make(**kw):
        cfg = StationConfig(
            camera=ReplayCamera(path=demo_boards, trigger="software", fps=None, loop=True), recipes=[Recipe()]
        )
        health = Health()
        health.ok("database", "test: not used")
        health.ok("disk", "test: not used")
        sink = ListSink()
        pipeline = Pipeline(
            ReplayCameraSource(cfg.camera),
            DifferenceDetector(),
            RecipeRules(cfg.recipe()),
            health,
            [sink],
            triggered=True,
        )
        plc = MemoryTransport()
        link = PlcLink(
            ModbusSettings(heartbeat_timeout_s=1.0, **kw), pipeline, health, transport=plc, startup_grace_s=60
        )
        pipeline.add_sink(link)
        hb = _Heartbeat(plc)
        made.append((pipeline, link, hb))
        link.start()
        pipeline.start()
        return plc, link, health, sink, hb

    yield make
    for pipeline, link, hb in made:
        hb.stop.set()
        pipeline.stop()
        link.stop()


def _has(mask: int):
    return lambda st: bool(st[0] & mask)


def test_full_handshake_over_the_memory_transport(memory_link, demo_truth):
    plc, link, health, sink, hb = memory_link()
    assert plc.opened and link.port == 0
    hb.thread.start()
    plc.set_bits(R.TRIGGER_ENABLE)
    assert plc.wait_status(_has(R.READY), 30) is not None
    boards = sorted(demo_truth)
    for i in range(4):
        plc.write_control(R.PART_SEQ, R.encode_u32(500 + i))
        plc.set_bits(R.TRIGGER)
        assert plc.wait_status(_has(R.TRIGGER_ACK), 10) is not None
        plc.clear_bits(R.TRIGGER)
        st = plc.wait_status(_has(R.RESULTS_VALID), 10)
        assert st is not None
        passed = bool(st[R.STATUS - R.STATUS_BASE] & R.PASS)
        assert passed != bool(st[0] & R.REJECT)
        assert passed == (not demo_truth[boards[i]]), f"{boards[i]}: verdict does not match the truth file"
        i_echo = R.PART_SEQ_ECHO - R.STATUS_BASE
        assert R.decode_u32(st[i_echo : i_echo + 2]) == 500 + i
        assert st[R.INSP_ID - R.STATUS_BASE] == i + 1
        plc.set_bits(R.RESULTS_ACK)
        assert plc.wait_status(lambda s: not s[0] & R.RESULTS_VALID, 10) is not None
        plc.clear_bits(R.RESULTS_ACK)
    assert [r.part_seq for r in sink.results] == [500, 501, 502, 503]
    assert link.hs.counters.violations == 0 and health.get("plc").ok and health.get("plc").detail == "memory"


def test_second_master_heartbeat_loss_and_link_down_reach_error_code(memory_link):
    plc, link, health, _sink, hb = memory_link()
    hb.thread.start()
    plc.set_bits(R.TRIGGER_ENABLE)
    assert plc.wait_status(_has(R.READY), 30) is not None

    plc.conflicts.append("127.0.0.2:5020 wrote the control block")  # what a transport refused
    plc.set_bits(R.TRIGGER_ENABLE)  # any write: a turn of the link
    st = plc.wait_status(lambda s: s[R.ERROR_CODE - R.STATUS_BASE] == PLC_ERROR_CODES["plc_master"], 5)
    assert st is not None and st[0] & R.ERROR and not st[0] & R.READY
    assert "second PLC master: 127.0.0.2:5020" in health.get("plc").reason
    assert wait_for(lambda: health.get("plc").ok, 5)  # the alarm ends heartbeat_timeout_s after the last write
    plc.set_bits(R.CLEAR_ERROR)
    assert plc.wait_status(_has(R.READY), 5) is not None
    plc.clear_bits(R.CLEAR_ERROR)

    hb.stop.set()  # the PLC program stops: no toggle within heartbeat_timeout_s
    st = plc.wait_status(lambda s: s[R.ERROR_CODE - R.STATUS_BASE] == PLC_ERROR_CODES["plc"], 5)
    assert st is not None and not st[0] & R.READY
    assert wait_for(lambda: not health.get("plc").ok and "heartbeat lost" in health.get("plc").reason, 5)
    assert health.error_code() == 50  # the link's own code, registered by plc.errors into the core's table

    plc.link_up = False
    plc.set_bits(R.PLC_HEARTBEAT)  # a turn of the link sees the transport down
    assert wait_for(lambda: health.get("plc").reason == "PLC link down", 5)


class _Unbindable(Transport):
    async def open(self, wake):
        raise OSError(98, "Address already in use")

    async def close(self):
        pass

    async def receive(self):
        raise AssertionError("never opened")

    async def publish(self, status):
        raise AssertionError("never opened")

    def describe(self) -> str:
        return "test transport on 127.0.0.1:1"


def test_a_transport_that_cannot_open_fails_start_naming_it():
    health = Health()
    link = PlcLink(ModbusSettings(), pipeline=None, health=health, transport=_Unbindable())
    from inspector.station import StationError

    with pytest.raises(StationError, match=r"PLC link \(test transport on 127.0.0.1:1\) did not start: .*in use"):
        link.start()
    assert not health.get("plc").ok


# ---------------------------------------------------------------- settings: a union on protocol
def test_plc_settings_are_owned_by_the_protocol_plugins(tmp_path):
    assert {"modbus": ModbusSettings, "opcua": OpcUaSettings}.items() <= protocols().items()
    assert isinstance(StationConfig().plc, ModbusSettings)  # the demo: Modbus server + simulator
    old = tmp_path / "old.toml"  # a station file from before `protocol` existed
    old.write_text('[plc]\nmode = "client"\nhost = "10.0.0.7"\nport = 502\ndevice_id = 3\n')
    cfg = load_config(old)
    assert isinstance(cfg.plc, ModbusSettings) and cfg.plc.protocol == "modbus" and cfg.plc.device_id == 3
    assert cfg.plc.simulator is False  # the file default of the Modbus plug-in
    new = tmp_path / "opcua.toml"
    new.write_text('[plc]\nprotocol = "opcua"\nport = 4841\nsecurity = "None"\n')
    cfg = load_config(new)
    assert isinstance(cfg.plc, OpcUaSettings) and cfg.plc.port == 4841 and cfg.plc.security == "None"
    assert OpcUaSettings().security == "Basic256Sha256"  # None only when the config says so


@pytest.mark.parametrize(
    "plc, message",
    [
        ({"protocol": "opcua", "device_id": 1}, "plc.device_id: unknown key"),
        ({"protocol": "profinet"}, "plc.protocol: 'profinet' is not one of"),
        ({"protocol": "opcua", "security": "Basic128Rsa15"}, "plc.security: 'Basic128Rsa15' is not one of"),
        ({"protocol": "opcua", "host": "300.1.2.3"}, "plc.host: the address is not a valid IP address"),
        ({"port": 70000}, "plc.port: 70000 is above 65535"),
    ],
)
def test_bad_plc_settings_name_the_key(plc, message):
    with pytest.raises(ConfigError) as err:
        parse_config({"plc": plc})
    assert message in str(err.value), str(err.value)


def test_plc_specs_are_parsed_by_their_protocol():
    assert parse_plc_spec("opcua:127.0.0.1:4840") == {
        "protocol": "opcua",
        "mode": "server",
        "host": "127.0.0.1",
        "port": 4840,
        "simulator": False,
    }
    assert parse_plc_spec("opcua:10.1.1.1")["port"] == 4840
    assert parse_plc_spec("opcua:127.0.0.1:4841+sim") == {
        "protocol": "opcua",
        "mode": "server",
        "host": "127.0.0.1",
        "port": 4841,
        "simulator": True,
    }
    assert parse_plc_spec("server:127.0.0.1:1502+sim")["simulator"] is True
    assert parse_plc_spec("modbus:client:10.0.0.7")["port"] == 502
    for bad, why in [
        ("opcua:", "expected opcua:HOST:PORT"),
        ("opcua:127.0.0.1:99999", "port '99999' is not a number"),
        ("opcua:127.0.0.1:4840+simulator", "unknown suffix"),
        ("s7:10.0.0.1", "unknown protocol 's7'"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_plc_spec(bad)


def test_plc_error_codes_live_in_plc_and_one_code_means_one_thing():
    assert ERROR_CODES["plc"] == 50 and ERROR_CODES["plc_master"] == 51
    with pytest.raises(ValueError, match="error code 10 for 'lamp' is already used by 'camera'"):
        register_error_codes({"lamp": 10})


@pytest.mark.parametrize("what", ["plc", "metrics"])
def test_a_busy_port_is_one_line_naming_it_at_the_command_line(what, tmp_path):
    """A second station or a demo left running holds the port: `run --headless` said so in a 30-line traceback (PLC)
    or as "Address already in use" naming neither port nor purpose (metrics), at every restart of the unit."""
    import socket
    import subprocess
    import sys

    with socket.create_server(("127.0.0.1", 0)) as held:
        port = held.getsockname()[1]
        args = (
            ["--plc", f"server:127.0.0.1:{port}"]
            if what == "plc"
            else ["--plc", "off", "--metrics", f"127.0.0.1:{port}"]
        )
        r = subprocess.run(
            [sys.executable, "-m", "inspector.cli", "run", "--headless", "--boards", "1", *args],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=tmp_path,
        )
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    (line,) = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert f"127.0.0.1:{port}" in line and "in use" in line, line
    assert ("PLC link" in line) if what == "plc" else ("metrics.listen" in line)
