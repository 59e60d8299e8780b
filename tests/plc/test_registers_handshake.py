"""Register encodings (the worked example of docs/plc.md) and the pure handshake rules on a fake clock."""

from __future__ import annotations

import pytest

from plc import registers as R
from plc.handshake import Handshake, PlcResult, RunCommand, StartTrigger


def test_u32_big_endian_high_word_first_worked_example():
    assert R.encode_u32(305419896) == [0x1234, 0x5678]
    assert R.decode_u32([0x1234, 0x5678]) == 305419896
    assert R.encode_u32(70000) == [1, 4464]
    with pytest.raises(ValueError, match="does not fit 32 bits"):
        R.encode_u32(2**32)


def test_ascii_two_chars_per_register_first_in_high_byte_nul_padded():
    regs = R.encode_ascii("PCB-0042", 20)
    assert regs[:4] == [0x5043, 0x422D, 0x3030, 0x3432] and regs[4:] == [0] * 16
    assert R.decode_ascii(regs) == "PCB-0042"
    assert R.decode_ascii(R.encode_ascii("ABC", 2)) == "ABC"  # odd length: low byte of the last is NUL
    assert R.decode_ascii([0x41FF, 0x0100]) == "A??"  # non-printable bytes stay visible, never crash
    with pytest.raises(ValueError, match="do not fit 20 registers"):
        R.encode_ascii("x" * 41, 20)
    with pytest.raises(ValueError, match="not ASCII"):
        R.encode_ascii("板", 20)


def control(word=0, part=0, serial="", recipe=0):
    regs = [0] * R.CONTROL_SIZE
    regs[R.CONTROL] = word
    regs[R.COMMAND_RECIPE] = recipe
    regs[R.PART_SEQ : R.PART_SEQ + 2] = R.encode_u32(part)
    regs[R.SERIAL : R.SERIAL + R.SERIAL_REGS] = R.encode_ascii(serial, R.SERIAL_REGS)
    return regs


class Rig:
    """Drives a Handshake the way station.py does, with a clock the test moves."""

    def __init__(self, **kw):
        self.t = 0.0
        self.hs = Handshake(self.t, startup_grace_s=5.0, **kw)
        self.word = R.TRIGGER_ENABLE
        self.actions = []
        self.healthy = True
        self.code = 0
        self.beat()

    def tick(self, dt=0.0):
        self.t += dt
        self.actions += self.hs.tick(self.t, health_ok=self.healthy, error_code=self.code)

    def write(self, word=None, **kw):
        if word is not None:
            self.word = word
        acts = self.hs.control(control(self.word, **kw), self.t)
        self.actions += acts
        self.tick()
        return acts

    def beat(self):
        self.word ^= R.PLC_HEARTBEAT
        self.write()

    def bits(self):
        return self.hs.status_word()

    def trigger(self, part):
        acts = self.write(self.word | R.TRIGGER, part=part, serial=f"S{part}")
        return [a for a in acts if isinstance(a, StartTrigger)]

    def board(self, part, passed=True):
        (start,) = self.trigger(part)
        self.hs.captured(start.token, part, self.t)
        self.write(self.word & ~R.TRIGGER, part=part)
        code = 0 if passed else 2
        self.hs.result(start.token, PlcResult(passed, code, 0 if passed else 1, 900, 12, part), self.t)
        self.tick()
        return start


def test_full_handshake_sequence_and_fail_safe_defaults():
    rig = Rig()
    w = rig.bits()
    assert w & R.READY and w & R.REJECT and not w & (R.PASS | R.RESULTS_VALID)  # nothing valid reads REJECT
    (start,) = rig.trigger(7)
    assert (start.part_seq, start.serial) == (7, "S7")
    w = rig.bits()
    assert w & R.BUSY and not w & R.READY and not w & R.TRIGGER_ACK
    rig.hs.captured(start.token, 41, rig.t)
    w = rig.bits()
    assert w & R.TRIGGER_ACK and rig.hs.status_block()[R.ACQ_ID - 100] == 41
    rig.write(rig.word & ~R.TRIGGER, part=7)
    assert not rig.bits() & R.TRIGGER_ACK
    rig.hs.result(start.token, PlcResult(True, 0, 0, 0, 15, 7), rig.t)
    rig.tick()
    w, regs = rig.bits(), rig.hs.status_block()
    assert w & R.RESULTS_VALID and w & R.PASS and not w & (R.REJECT | R.BUSY) and w & R.READY
    assert regs[R.INSP_ID - 100] == 1 and R.decode_u32(regs[9:11]) == 7
    rig.write(rig.word | R.RESULTS_ACK)
    assert not rig.bits() & (R.RESULTS_VALID | R.PASS) and rig.bits() & R.REJECT
    rig.write(rig.word & ~R.RESULTS_ACK)


def test_trigger_while_not_ready_is_missed_never_a_pass():
    rig = Rig()
    rig.write(rig.word & ~R.TRIGGER_ENABLE)
    assert rig.trigger(1) == []
    w = rig.bits()
    assert w & R.MISSED_TRIGGER and not w & (R.PASS | R.TRIGGER_ACK | R.BUSY)
    assert rig.hs.counters.missed_triggers == 1
    rig.write((rig.word & ~R.TRIGGER) | R.TRIGGER_ENABLE | R.CLEAR_ERROR)
    assert not rig.bits() & R.MISSED_TRIGGER


def test_ready_waits_for_a_missed_trigger_to_fall():
    """A TRIGGER the station missed (it restarted under a PLC holding it) keeps READY down until it falls,
    as the READY rule says for every trigger: no READY beside a held TRIGGER."""
    rig = Rig()
    rig.write(rig.word & ~R.TRIGGER_ENABLE)
    assert rig.trigger(1) == []
    rig.write(rig.word | R.TRIGGER_ENABLE)  # everything healthy again, TRIGGER still held
    assert not rig.bits() & R.READY
    assert "TRIGGER not yet cleared" in rig.hs.not_ready_reason()
    rig.write(rig.word & ~R.TRIGGER)
    assert rig.bits() & R.READY
    assert rig.trigger(2), "the next rising edge is a board"


def test_results_queue_up_to_depth_then_overrun_and_insp_id_gap():
    rig = Rig(queue_depth=8)
    for part in range(1, 11):
        rig.board(part, passed=part % 2 == 0)
    regs = rig.hs.status_block()
    assert regs[R.RESULT_QUEUE - 100] == 8 and regs[R.OVERRUN_COUNT - 100] == 2
    assert rig.bits() & R.RESULTS_OVERRUN
    seen = []
    for _ in range(8):
        regs = rig.hs.status_block()
        assert regs[0] & R.RESULTS_VALID
        seen.append((regs[R.INSP_ID - 100], R.decode_u32(regs[9:11]), bool(regs[0] & R.PASS)))
        rig.write(rig.word | R.RESULTS_ACK)
        rig.write(rig.word & ~R.RESULTS_ACK)
    assert seen == [(i, i, i % 2 == 0) for i in range(1, 9)]
    assert not rig.bits() & R.RESULTS_VALID
    rig.board(11)
    assert rig.hs.status_block()[R.INSP_ID - 100] == 11  # 9 and 10 were discarded: the PLC sees the gap


def test_trigger_held_too_long_proceeds_and_flags():
    rig = Rig(trigger_hold_timeout_s=0.5)
    (start,) = rig.trigger(3)
    rig.hs.captured(start.token, 1, rig.t)
    rig.tick(0.6)
    w = rig.bits()
    assert not w & R.TRIGGER_ACK and w & R.TRIGGER_HELD
    rig.hs.result(start.token, PlcResult(True, 0, 0, 0, 5, 3), rig.t)
    rig.tick()
    assert rig.bits() & R.RESULTS_VALID and not rig.bits() & R.READY  # a new trigger needs a falling edge first
    rig.write(rig.word & ~R.TRIGGER)
    assert rig.bits() & R.READY


def test_heartbeat_lost_drops_ready_latches_error_until_clear():
    rig = Rig(heartbeat_timeout_s=1.0)
    assert rig.bits() & R.READY
    rig.tick(1.5)
    assert not rig.bits() & R.READY and rig.bits() & R.ERROR
    assert rig.hs.status_block()[R.ERROR_CODE - 100] == 50 and "heartbeat lost" in rig.hs.plc_alarm
    rig.beat()
    assert rig.bits() & R.ERROR and not rig.bits() & R.READY  # latched until CLEAR_ERROR
    rig.write(rig.word | R.CLEAR_ERROR)
    rig.write(rig.word & ~R.CLEAR_ERROR)
    assert rig.bits() & R.READY and not rig.bits() & R.ERROR


def test_fault_while_busy_forces_reject_and_result_timeout_rejects():
    rig = Rig(result_timeout_s=2.0)
    (start,) = rig.trigger(5)
    rig.hs.captured(start.token, 1, rig.t)
    rig.healthy, rig.code = False, 10
    rig.tick()
    assert rig.bits() & R.ERROR and rig.hs.status_block()[R.ERROR_CODE - 100] == 10
    rig.hs.result(start.token, PlcResult(True, 0, 0, 0, 5, 5), rig.t)
    rig.tick()
    w, regs = rig.bits(), rig.hs.status_block()
    assert w & R.RESULTS_VALID and w & R.REJECT and not w & R.PASS and regs[R.RESULT_CODE - 100] == 255
    rig.write(rig.word | R.CLEAR_ERROR)  # cause still there: stays latched
    assert rig.bits() & R.ERROR
    rig.healthy, rig.code = True, 0
    rig.write(rig.word & ~(R.CLEAR_ERROR | R.TRIGGER))
    rig.write(rig.word | R.CLEAR_ERROR | R.RESULTS_ACK)
    rig.write(rig.word & ~(R.CLEAR_ERROR | R.RESULTS_ACK))
    assert rig.bits() & R.READY
    (start,) = rig.trigger(6)
    rig.tick(2.5)  # the board never comes back
    w, regs = rig.bits(), rig.hs.status_block()
    assert w & R.RESULTS_VALID and w & R.REJECT and R.decode_u32(regs[9:11]) == 6 and not w & R.BUSY
    assert rig.hs.result(start.token, PlcResult(True, 0, 0, 0, 5, 6), rig.t) is False  # late: ignored


def test_recipe_command_waits_for_the_board_in_flight():
    rig = Rig(recipe_id=1)
    (start,) = rig.trigger(1)
    acts = rig.write(rig.word | R.EXECUTE_COMMAND, recipe=2)
    assert not [a for a in acts if isinstance(a, RunCommand)]
    rig.hs.captured(start.token, 1, rig.t)
    rig.hs.result(start.token, PlcResult(True, 0, 0, 0, 5, 1), rig.t)
    rig.actions.clear()
    rig.tick()
    assert rig.actions == [RunCommand(2)] and not rig.bits() & R.READY
    rig.hs.command_finished(2, True, rig.t)
    assert rig.bits() & R.CMD_DONE and rig.hs.status_block()[R.CURRENT_RECIPE - 100] == 2
    rig.write(rig.word & ~R.EXECUTE_COMMAND)
    assert not rig.bits() & R.CMD_DONE
    rig.write(rig.word | R.EXECUTE_COMMAND, recipe=9)
    rig.hs.command_finished(9, False, rig.t)
    assert rig.bits() & R.CMD_FAILED and rig.hs.status_block()[R.CURRENT_RECIPE - 100] == 2


def test_engineer_editing_and_offline_drop_ready():
    rig = Rig()
    rig.hs.set_engineer_editing(True)
    assert not rig.bits() & R.READY and rig.bits() & R.ENGINEER_EDITING
    rig.hs.set_engineer_editing(False)
    rig.write(rig.word | R.SET_OFFLINE)
    assert not rig.bits() & (R.READY | R.ONLINE)
