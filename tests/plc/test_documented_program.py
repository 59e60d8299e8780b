"""The example PLC program of docs/plc.md, transcribed step for step into a scan loop over pyModbusTCP (an
independent Modbus stack), against a real station whose detector stalls past the program's StepTimer once.

Why: the program is what integrators copy. Its first version took an earlier board's result, still queued after
a timeout and CLEAR_ERROR, as a reason to reject the current board and move on; from then on every board read
the board before it (one result behind, for good). The station is right to keep results until RESULTS_ACK; the
program has to tell them apart by PART_SEQ_ECHO and INSP_ID.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from plc_testkit import GatedDetector, start_station
from pyModbusTCP.client import ModbusClient

from plc import registers as R

DOC = Path(__file__).resolve().parents[2] / "docs" / "plc.md"
STEP_TIMER_S = 1.0  # the program's T#5S, scaled; the station's result_timeout_s a little longer, as on a line


def _bit(word: int, n: int) -> bool:
    return bool(word >> n & 1)


def _run_documented_program(port: int, detector: GatedDetector, boards: int) -> list[tuple[int, str]]:
    """The program's CASE, one scan per poll; board 1's inspection hangs until the operator's CLEAR_ERROR.

    Returns (PartSeq, verdict) as the PLC decided each board."""
    c = ModbusClient(host="127.0.0.1", port=port, unit_id=1, auto_open=True, timeout=2)
    control = [0] * 24  # the CONTROL block, written whole each scan
    step, part_seq, last_insp = "IDLE", 0, -1
    hb_at, timer_since, fault_at = time.monotonic(), None, 0.0
    decided: list[tuple[int, str]] = []
    end = time.monotonic() + 60
    try:
        while time.monotonic() < end and len(decided) < boards:
            status = c.read_holding_registers(R.STATUS, 22)
            if status is None:
                continue
            now = time.monotonic()
            if now - hb_at >= 0.2:  # PLC heartbeat
                hb_at, control[0] = now, control[0] ^ 0x0040
            control[0] |= 0x0001  # TRIGGER_ENABLE
            timing = step in ("WAIT_ACK", "WAIT_RESULT", "SKIP_ACK_CLEAR")
            timer_since = (timer_since or now) if timing else None
            timer_q = timing and now - timer_since >= STEP_TIMER_S
            if step == "IDLE":
                if _bit(status[0], 0):  # READY
                    part_seq += 1
                    control[2], control[3] = part_seq >> 16, part_seq & 0xFFFF
                    control[0] |= 0x0002  # TRIGGER
                    step = "WAIT_ACK"
            elif step == "WAIT_ACK":
                if _bit(status[0], 1):  # TRIGGER_ACK
                    control[0] &= ~0x0002
                    step = "WAIT_RESULT"
                elif _bit(status[0], 11) or timer_q:
                    control[0] &= ~0x0002
                    decided.append((part_seq, "REJECT"))
                    step, fault_at = "FAULT", now
            elif step == "WAIT_RESULT":
                if _bit(status[0], 3):  # RESULTS_VALID
                    echo = status[9] << 16 | status[10]
                    if echo == part_seq and status[4] != last_insp:
                        passed = _bit(status[0], 4) and not _bit(status[0], 5)
                        decided.append((part_seq, "PASS" if passed else "REJECT"))
                        step = "WAIT_ACK_CLEAR"
                    else:
                        step = "SKIP_ACK_CLEAR"
                    last_insp = status[4]
                    control[0] |= 0x0004  # RESULTS_ACK
                elif timer_q or _bit(status[0], 6):  # ERROR
                    decided.append((part_seq, "REJECT"))
                    step, fault_at = "FAULT", now
            elif step == "SKIP_ACK_CLEAR":
                if not _bit(status[0], 3):
                    control[0] &= ~0x0004
                    step = "WAIT_RESULT"
                elif timer_q:
                    control[0] &= ~0x0004
                    decided.append((part_seq, "REJECT"))
                    step, fault_at = "FAULT", now
            elif step == "WAIT_ACK_CLEAR":
                if not _bit(status[0], 3):
                    control[0] &= ~0x0004
                    step = "IDLE"
            elif step == "FAULT" and now - fault_at > 0.5:  # the operator comes, pulses CLEAR_ERROR
                detector.gate.set()  # board 1's inspection finishes: its late result joins the queue
                c.write_multiple_registers(R.CONTROL, [control[0] | 0x0008, *control[1:]])
                time.sleep(0.05)
                step = "IDLE"
            c.write_multiple_registers(R.CONTROL, control)
            time.sleep(0.01)
    finally:
        c.close()
    return decided


def test_the_documented_program_is_transcribed_here():
    """The loop above follows the program in docs/plc.md: its steps and the skip of an earlier board's result."""
    text = DOC.read_text()
    block = re.search(r"```iecst\n(.*?)```", text, re.S).group(1)
    steps = re.search(r"TYPE E_Step : \((.*?)\)", block).group(1)
    assert [s.strip() for s in steps.split(",")] == [
        "IDLE",
        "WAIT_ACK",
        "WAIT_RESULT",
        "SKIP_ACK_CLEAR",
        "WAIT_ACK_CLEAR",
        "FAULT",
    ]
    assert "Step := SKIP_ACK_CLEAR;" in block and "(Step = SKIP_ACK_CLEAR), PT := T#5S" in block


def test_one_stalled_board_costs_one_board_not_every_later_one(demo_boards):
    detector = GatedDetector()
    st = start_station(demo_boards, detector=detector, result_timeout_s=STEP_TIMER_S + 0.5)
    try:
        detector.gate.clear()  # board 1 hangs past the program's StepTimer
        decided = _run_documented_program(st.port, detector, boards=7)
        truth = {seq: r.verdict.name for seq, r in st.sink.by_part().items()}
    finally:
        st.stop()
    assert [seq for seq, _ in decided] == list(range(1, 8))
    assert decided[0] == (1, "REJECT"), "the stalled board is rejected by the PLC's own timer"
    later = decided[1:]
    assert all(truth.get(seq) == verdict for seq, verdict in later), (later, truth)
    assert "PASS" in {v for _, v in later}, "good boards among them pass (a program one result behind rejected all)"
