"""Fail-safe behaviour over the wire (server mode, pyModbusTCP as the PLC)."""

from __future__ import annotations

import time

from plc_testkit import GatedDetector, wait_for

from inspector.config import Recipe
from plc import registers as R


def test_trigger_held_too_long(station_factory, plc_factory):
    st = station_factory(trigger_hold_timeout_s=0.3)
    plc = plc_factory(st.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    plc.wait_bits(on=R.READY)
    plc.write_part(11, "HELD")
    plc.set_bits(R.TRIGGER)
    plc.wait_bits(on=R.TRIGGER_ACK)
    s = plc.wait_bits(on=R.TRIGGER_HELD | R.RESULTS_VALID, off=R.TRIGGER_ACK)  # proceeds without the PLC
    assert not s[0] & R.READY and R.decode_u32(s[9:11]) == 11
    plc.clear_bits(R.TRIGGER)
    plc.ack()
    plc.wait_bits(on=R.READY)
    plc.set_bits(R.CLEAR_ERROR)
    plc.wait_bits(off=R.TRIGGER_HELD)
    plc.clear_bits(R.CLEAR_ERROR)
    assert plc.board(12, "NEXT")["echo"] == 12


def test_results_ack_never_coming_queues_8_then_overrun(station, plc_factory):
    plc = plc_factory(station.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    for part in range(1, 11):
        plc.board(part, f"Q{part}", ack=False)
        plc.wait_bits(on=R.READY)
    s = plc.status()
    assert s[0] & R.RESULTS_OVERRUN and plc.reg(s, R.RESULT_QUEUE) == 8 and plc.reg(s, R.OVERRUN_COUNT) == 2
    got = []
    for _ in range(8):
        s = plc.wait_bits(on=R.RESULTS_VALID)
        got.append((plc.reg(s, R.INSP_ID), R.decode_u32(s[9:11])))
        plc.ack()
    assert got == [(i, i) for i in range(1, 9)]
    assert plc.reg(plc.status(), R.RESULT_QUEUE) == 0
    published = station.sink.by_part()
    assert set(published) >= set(range(1, 11))  # the station still published (and would record) all ten


def test_plc_heartbeat_lost_then_link_cut_and_restored(station_factory, plc_factory):
    st = station_factory(heartbeat_timeout_s=0.5)
    plc = plc_factory(st.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    plc.wait_bits(on=R.READY)
    plc.stop_heartbeat()
    s = plc.wait_bits(on=R.ERROR, off=R.READY, timeout=5)
    assert plc.reg(s, R.ERROR_CODE) == 50
    assert not st.health.get("plc").ok and "heartbeat lost" in st.health.get("plc").reason
    # cut the link: the PLC's connection goes away entirely, then a new one comes
    plc.close()
    assert wait_for(lambda: st.link.server.connections == 0, 5)
    plc2 = plc_factory(st.port)
    plc2.set_bits(R.TRIGGER_ENABLE)
    assert wait_for(lambda: st.health.get("plc").ok, 5)
    s = plc2.status()
    assert s[0] & R.ERROR and not s[0] & R.READY  # latched until the PLC clears it
    plc2.set_bits(R.CLEAR_ERROR)
    plc2.wait_bits(on=R.READY, off=R.ERROR)
    plc2.clear_bits(R.CLEAR_ERROR)
    assert plc2.board(99, "AFTER-CUT")["echo"] == 99


def test_station_fault_while_busy_rejects_the_board(station_factory, plc_factory, demo_truth):
    det = GatedDetector()
    st = station_factory(detector=det)
    plc = plc_factory(st.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    first_good = next(i for i, b in enumerate(st.boards) if not st.truth[b])
    for i in range(first_good):
        plc.board(i, st.boards[i])
    det.gate.clear()
    det.entered.clear()
    plc.write_part(500, st.boards[first_good])
    plc.set_bits(R.TRIGGER)
    plc.wait_bits(on=R.TRIGGER_ACK | R.BUSY)
    assert det.entered.wait(5)
    st.health.fail("camera", "test: cable pulled")
    s = plc.wait_bits(on=R.ERROR, off=R.READY)
    assert plc.reg(s, R.ERROR_CODE) == 10
    det.gate.set()
    plc.clear_bits(R.TRIGGER)
    s = plc.wait_bits(on=R.RESULTS_VALID | R.REJECT, off=R.BUSY)
    assert not s[0] & R.PASS and plc.reg(s, R.RESULT_CODE) == 255 and R.decode_u32(s[9:11]) == 500
    assert st.sink.by_part()[500].passed, "the pipeline passed this board; the fault forced the REJECT"
    plc.ack()
    plc.set_bits(R.CLEAR_ERROR)  # cause still present: stays latched
    time.sleep(0.1)
    assert plc.status()[0] & R.ERROR
    plc.clear_bits(R.CLEAR_ERROR)
    st.health.ok("camera")
    plc.set_bits(R.CLEAR_ERROR)
    plc.wait_bits(on=R.READY, off=R.ERROR)


def test_trigger_while_not_ready_sets_missed_trigger(station, plc_factory):
    plc = plc_factory(station.port)
    plc.wait_bits(off=R.READY)  # TRIGGER_ENABLE not set
    plc.write_part(1, "MISSED")
    plc.set_bits(R.TRIGGER)
    s = plc.wait_bits(on=R.MISSED_TRIGGER)
    assert not s[0] & (R.TRIGGER_ACK | R.BUSY | R.PASS) and plc.reg(s, R.MISSED_TRIGGER_COUNT) == 1
    time.sleep(0.2)
    assert not plc.status()[0] & R.RESULTS_VALID and 1 not in station.sink.by_part()


def test_recipe_switch_via_execute_command(station_factory, plc_factory):
    st = station_factory(recipes=[Recipe(id=1, name="demo"), Recipe(id=2, name="strict", min_defect_px=1.0)])
    plc = plc_factory(st.port)
    plc.set_bits(R.TRIGGER_ENABLE)
    assert plc.board(1, "A")["status"][R.CURRENT_RECIPE - 100] == 1
    with plc.lock:
        plc.c.write_single_register(R.COMMAND_RECIPE, 2)
    plc.set_bits(R.EXECUTE_COMMAND)
    s = plc.wait_bits(on=R.CMD_DONE, off=R.CMD_FAILED)
    assert plc.reg(s, R.CURRENT_RECIPE) == 2
    plc.clear_bits(R.EXECUTE_COMMAND)
    plc.wait_bits(off=R.CMD_DONE)
    plc.board(2, "B")
    assert st.sink.by_part()[1].recipe == "demo" and st.sink.by_part()[2].recipe == "strict"
    with plc.lock:
        plc.c.write_single_register(R.COMMAND_RECIPE, 9)
    plc.set_bits(R.EXECUTE_COMMAND)
    s = plc.wait_bits(on=R.CMD_FAILED, off=R.CMD_DONE)
    assert plc.reg(s, R.CURRENT_RECIPE) == 2
    plc.clear_bits(R.EXECUTE_COMMAND)
    plc.wait_bits(on=R.READY)
