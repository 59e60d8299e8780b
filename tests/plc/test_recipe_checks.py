"""A recipe the station cannot run is refused at a PLC recipe switch (CMD_FAILED) and at start (READY = 0,
ERROR_CODE 60); a good switch afterwards makes the station READY again.

The station is built as `pcb-inspector run` builds it (`inspector.station.build_station`), with the PLC
link in server mode on a free 127.0.0.1 port and a PLC played by pyModbusTCP. The boards come without a
golden reference beside them (as from a live camera); the classical detector needs one.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import pytest
from plc_testkit import wait_for

from inspector.config import DetectorSection, Recipe, ReplayCamera, StationConfig
from inspector.station import build_station
from plc import registers as R
from plc.modbus import ModbusSettings


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def bare_boards(tmp_path, demo_boards) -> Path:
    out = tmp_path / "bare"
    out.mkdir()
    for p in sorted(demo_boards.glob("*_test.png"))[:3]:
        shutil.copy(p, out / p.name.replace("_test", ""))
    return out


@pytest.fixture
def make_station(bare_boards, demo_boards):
    made = []

    def make(active: str):
        golden = demo_boards / "board0000_temp.png"
        cfg = StationConfig(
            camera=ReplayCamera(path=bare_boards, trigger="software", fps=None),
            detector=DetectorSection(engine="classical"),
            plc=ModbusSettings(mode="server", port=free_port(), simulator=False, heartbeat_timeout_s=2.0),
            recipes=[
                Recipe(id=1, name="golden", reference=golden),
                Recipe(id=2, name="bare"),
                Recipe(id=3, name="corner", reference=golden, roi=[(0, 0), (20, 0), (20, 20)]),
            ],
            active_recipe=active,
        )
        station = build_station(cfg, with_storage=False)
        made.append(station)
        station.start()
        return station

    yield make
    for st in made:
        st.stop()


def command(plc, recipe_id: int, expect: int) -> list[int]:
    with plc.lock:
        assert plc.c.write_single_register(R.COMMAND_RECIPE, recipe_id)
    plc.set_bits(R.EXECUTE_COMMAND)
    other = R.CMD_DONE if expect == R.CMD_FAILED else R.CMD_FAILED
    st = plc.wait_bits(on=expect, off=other)
    plc.clear_bits(R.EXECUTE_COMMAND)
    plc.wait_bits(off=R.CMD_DONE | R.CMD_FAILED)
    return st


def test_plc_switch_to_a_recipe_that_cannot_run_is_cmd_failed(make_station, plc_factory):
    station = make_station("golden")
    plc = plc_factory(station.cfg.plc.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    plc.wait_bits(on=R.READY, timeout=30)
    # Before: CMD_DONE, READY, then every board REJECT with RESULT_CODE 255 and ERROR_CODE 0.
    st = command(plc, 2, R.CMD_FAILED)
    assert plc.reg(st, R.CURRENT_RECIPE) == 1
    st = command(plc, 3, R.CMD_FAILED)  # an ROI that inspects 0.1 % of the board
    assert plc.reg(st, R.CURRENT_RECIPE) == 1
    plc.wait_bits(on=R.READY)
    assert station.pipeline.rules.name == "golden"


def test_station_started_on_a_recipe_without_reference_is_not_ready_until_a_good_switch(make_station, plc_factory):
    station = make_station("bare")
    plc = plc_factory(station.cfg.plc.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    st = plc.wait(lambda w, s: plc.reg(s, R.ERROR_CODE) == 60, timeout=30, what="ERROR_CODE 60")
    assert not st[0] & R.READY
    assert "recipes.bare.reference: not set" in station.health.get("recipe").reason
    st = command(plc, 1, R.CMD_DONE)
    assert plc.reg(st, R.CURRENT_RECIPE) == 1
    assert wait_for(lambda: station.health.get("recipe").ok, 10)
    plc.wait_bits(on=R.READY, timeout=30)
