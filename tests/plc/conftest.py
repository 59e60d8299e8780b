"""PLC test fixtures: a real station on an ephemeral 127.0.0.1 port and PLCs from another Modbus stack
(see plc_testkit.py for what they are made of). Servers and clients are stopped when each test ends."""

from __future__ import annotations

import pytest
from plc_testkit import Plc, TestStation, start_station


@pytest.fixture
def station_factory(demo_boards):
    made: list[TestStation] = []

    def make(**kw) -> TestStation:
        st = start_station(demo_boards, **kw)
        made.append(st)
        return st

    yield make
    for st in made:
        st.stop()


@pytest.fixture
def station(station_factory) -> TestStation:
    return station_factory()


@pytest.fixture
def plc_factory():
    made: list[Plc] = []

    def make(port: int, **kw) -> Plc:
        p = Plc(port, **kw)
        made.append(p)
        return p

    yield make
    for p in made:
        p.close()
