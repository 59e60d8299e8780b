"""What a PLC sees when the station's OPC UA server refuses a write, and when the PLC reconnects.

A real station (`pcb-inspector run --plc opcua:127.0.0.1:PORT` builds it, classical detector) and real
asyncua clients on 127.0.0.1: a value the station cannot take (a SerialIn too long or not ASCII, an
array where the node holds a scalar) must come back to the client as a Bad status with nothing stored,
never Good while the station quietly keeps the old value; and a PLC whose connection dropped without
CloseSession (cable pulled, power blip) must get its master role back when it reconnects from the same
host, while another host (or another application on the same host) is still refused as a second master.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable
from typing import Any

import pytest
from asyncua import ua
from opcua_plc import OpcUaPlc
from plc_testkit import ListSink, wait_for
from test_opcua import NAMESPACE, free_port, write_station_file

from inspector.commands.common import station_config
from inspector.station import build_station

#: Appended after the [plc] keys of test_opcua's station file: the classical detector (no model to load).
CLASSICAL = '\n[detector]\ntype = "classical"\n'


@pytest.fixture
def opcua_line(tmp_path, demo_boards) -> Any:
    """make() -> (station, sink, endpoint URL): a station with security None, stopped when the test ends."""
    made = []

    def make() -> tuple[Any, ListSink, str]:
        port = free_port()
        f = write_station_file(tmp_path, demo_boards, "None", CLASSICAL)
        args = argparse.Namespace(config=str(f), plc=f"opcua:127.0.0.1:{port}", camera=None, model=None, db=None)
        sink = ListSink()
        station = build_station(station_config(args), sinks=[sink])
        made.append(station)
        station.start()
        return station, sink, f"opc.tcp://127.0.0.1:{port}/pcb-inspector/"

    yield make
    for st in made:
        st.stop()


async def ready(plc: OpcUaPlc) -> None:
    await plc.write("TriggerEnable", True)
    await plc.wait("Ready", True, timeout=60)


async def write_variant(plc: OpcUaPlc, name: str, variant: ua.Variant) -> None:
    await plc.nodes[name].write_value(ua.DataValue(variant))


def status(station) -> dict[str, Any]:
    t = station.plc.transport
    return {
        "refused": t.refused,
        "master_conflicts": t.master_conflicts,
        "violations": station.plc.hs.counters.violations,
    }


def test_a_serial_in_that_does_not_fit_is_refused_to_the_plc_and_nothing_is_stored(opcua_line):
    """SERIAL holds 40 ASCII characters: a longer or non-ASCII SerialIn is BadOutOfRange, the node keeps the
    last serial taken, and a Write request holding one such value is refused as a whole (its PartSeq too)."""
    station, sink, url = opcua_line()

    async def main():
        async with OpcUaPlc(url, NAMESPACE) as plc:
            await ready(plc)
            first = await plc.board(1, "SN-0001")
            kept = []
            for serial in ("SN-" + "9" * 38, "SN-Müller-3"):
                with pytest.raises(ua.uaerrors.BadOutOfRange):
                    await plc.write("SerialIn", serial)
                kept.append(await plc.read("SerialIn"))
            with pytest.raises(ua.uaerrors.BadOutOfRange):  # one request: a good PartSeq, a bad SerialIn
                await plc.client.uaclient.write_attributes(
                    [plc.nodes["PartSeq"].nodeid, plc.nodes["SerialIn"].nodeid],
                    [
                        ua.DataValue(ua.Variant(99, ua.VariantType.UInt32)),
                        ua.DataValue(ua.Variant("X" * 41, ua.VariantType.String)),
                    ],
                    ua.AttributeIds.Value,
                )
            part_seq = await plc.read("PartSeq")
            second = await plc.board(2, "SN-0002")  # the PLC, told, writes a serial that fits
            return first, kept, part_seq, second

    first, kept, part_seq, second = asyncio.run(main())
    assert kept == ["SN-0001", "SN-0001"] and part_seq == 1
    assert (first.serial, second.serial, second.part_seq_echo) == ("SN-0001", "SN-0002", 2)
    by_part = wait_for(lambda: len(sink.by_part()) >= 2 and sink.by_part(), 10)
    assert [by_part[p].board_serial for p in (1, 2)] == ["SN-0001", "SN-0002"]  # each board its own serial
    assert 99 not in by_part
    assert status(station) == {"refused": 3, "master_conflicts": 0, "violations": 0}


def test_a_value_of_the_wrong_shape_or_type_is_refused_and_starts_nothing(opcua_line):
    """Every PLC-writable variable is a scalar: an array of the right VariantType is BadTypeMismatch
    (Trigger := [False] must not start a board), as is a scalar of another type."""
    station, sink, url = opcua_line()
    wrong = [
        ("Trigger", ua.Variant([False], ua.VariantType.Boolean)),
        ("Trigger", ua.Variant([True], ua.VariantType.Boolean)),
        ("PartSeq", ua.Variant([5, 6], ua.VariantType.UInt32)),
        ("PartSeq", ua.Variant(5, ua.VariantType.Int32)),
        ("SerialIn", ua.Variant(["SN-1"], ua.VariantType.String)),
        ("CommandRecipe", ua.Variant([1], ua.VariantType.UInt16)),
        ("Trigger", ua.Variant(1, ua.VariantType.UInt16)),
    ]

    async def main():
        async with OpcUaPlc(url, NAMESPACE) as plc:
            await ready(plc)
            await plc.write("PartSeq", 77)
            await plc.write("SerialIn", "SN-77")
            for name, variant in wrong:
                with pytest.raises(ua.uaerrors.BadTypeMismatch):
                    await write_variant(plc, name, variant)
            await asyncio.sleep(1.0)  # time for a board to start, were one started
            after = {n: await plc.read(n) for n in ("Trigger", "PartSeq", "SerialIn", "CommandRecipe")}
            after |= {n: await plc.read(n) for n in ("TriggerAck", "ResultsValid", "AcqId", "InspId", "Ready")}
            board = await plc.board(78, "SN-78")
            return after, board

    after, board = asyncio.run(main())
    assert after == {
        "Trigger": False,
        "PartSeq": 77,
        "SerialIn": "SN-77",
        "CommandRecipe": 0,
        "TriggerAck": False,
        "ResultsValid": False,
        "AcqId": 0,
        "InspId": 0,
        "Ready": True,
    }
    assert (board.insp_id, board.part_seq_echo, board.serial) == (1, 78, "SN-78")
    assert [r.part_seq for r in wait_for(lambda: sink.results, 10)] == [78]  # the only board inspected
    assert status(station) == {"refused": len(wrong), "master_conflicts": 0, "violations": 0}


async def drop(plc: OpcUaPlc, how: str) -> None:
    """End `plc`'s session the way a PLC loses it: 'abort' (TCP reset, no CloseSession: power blip),
    'silent' (the connection stays open here and nothing more comes: cable pulled), 'close' (CloseSession)."""
    if plc._hb_task is not None:
        plc._hb_task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await plc._hb_task
        plc._hb_task = None
    if how == "abort":
        plc.client.uaclient.protocol.transport.abort()
    elif how == "close":
        await plc.client.disconnect()


async def discard(plc: OpcUaPlc) -> None:
    """Free a dropped client's tasks and socket without waiting on a server that may have closed it."""
    with contextlib.suppress(Exception):
        await asyncio.wait_for(plc.client.disconnect(), 3)
    with contextlib.suppress(Exception):
        plc.client.disconnect_socket()


@contextlib.contextmanager
def from_address(host: str) -> Any:
    """New connections of this loop leave from `host` (127.0.0.2: another machine, as the server sees it)."""
    loop = asyncio.get_running_loop()
    original: Callable = loop.create_connection
    loop.create_connection = functools.partial(original, local_addr=(host, 0))  # type: ignore[method-assign]
    try:
        yield
    finally:
        loop.create_connection = original  # type: ignore[method-assign]


@pytest.mark.parametrize("how", ["abort", "silent", "close"])
def test_the_plc_reconnecting_from_its_host_takes_over_without_the_second_master_alarm(opcua_line, caplog, how):
    """The master's connection drops and the same PLC (host, ApplicationUri) reconnects with a new session
    within heartbeat_timeout_s (2 s): its writes are taken at once, no ERROR 51, READY stays, boards run.
    'silent' waits 1.2 s (more than half the heartbeat timeout with nothing written), the station closes
    the old connection."""
    station, sink, url = opcua_line()
    caplog.set_level(logging.INFO, logger="plc.opcua.server")

    async def main():
        old = OpcUaPlc(url, NAMESPACE)
        await old.__aenter__()
        await ready(old)
        first = await old.board(1, "SN-1")
        await drop(old, how)
        await asyncio.sleep(1.2 if how == "silent" else 0.3)
        async with OpcUaPlc(url, NAMESPACE) as plc:
            await plc.write("TriggerEnable", True)  # Good: no BadUserAccessDenied
            await asyncio.sleep(1.0)  # heartbeats go on; an alarm would latch now
            seen = {n: await plc.read(n) for n in ("Error", "ErrorCode", "Ready")}
            second = await plc.board(2, "SN-2")
            refused_beats = plc.refused_beats
            if how == "silent":  # the old connection was closed: nothing more of it is taken
                with pytest.raises(Exception):  # noqa: B017 (a closed connection, reported in several ways)
                    await asyncio.wait_for(old.write("Trigger", True), 5)
        await discard(old)
        return first, seen, second, refused_beats

    first, seen, second, refused_beats = asyncio.run(main())
    assert seen == {"Error": False, "ErrorCode": 0, "Ready": True} and refused_beats == 0
    assert (first.insp_id, second.insp_id, second.part_seq_echo, second.serial) == (1, 2, 2, "SN-2")
    assert [r.part_seq for r in wait_for(lambda: len(sink.results) >= 2 and sink.results, 10)] == [1, 2]
    assert status(station) == {"refused": 0, "master_conflicts": 0, "violations": 0}
    assert station.plc.hs.counters.second_master_writes == 0
    assert station.plc.transport.takeovers == 1
    assert any("reconnected" in r.getMessage() for r in caplog.records), caplog.text


@pytest.mark.parametrize("how", ["abort", "silent"])
@pytest.mark.parametrize("who", ["another host", "another application"])
def test_a_different_client_is_still_refused_after_the_master_dropped(opcua_line, how, who):
    """Only the master's own host and ApplicationUri take over: a client from 127.0.0.2, or one on the
    same host naming another ApplicationUri, is refused (BadUserAccessDenied, ERROR 51) while the
    dropped master's heartbeat_timeout_s runs, as any second master."""
    station, _sink, url = opcua_line()

    async def main():
        old = OpcUaPlc(url, NAMESPACE)
        await old.__aenter__()
        await ready(old)
        await drop(old, how)
        await asyncio.sleep(1.2 if how == "silent" else 0.3)
        other = OpcUaPlc(url, NAMESPACE)
        if who == "another host":
            with from_address("127.0.0.2"):
                await other.__aenter__()
        else:
            other.client.application_uri = "urn:pcb-inspector:test-scada"
            await other.__aenter__()
        try:
            with pytest.raises(ua.uaerrors.BadUserAccessDenied):
                await other.write("Trigger", True)
            await other.wait("ErrorCode", 51, timeout=5)
            return await other.read("Ready"), await other.read("AcqId")
        finally:
            await other.__aexit__(None, None, None)
            await discard(old)

    ready_after, acq = asyncio.run(main())
    assert ready_after is False and acq == 0  # the refused trigger started nothing
    assert station.plc.transport.master_conflicts >= 1 and station.plc.hs.counters.second_master_writes >= 1
