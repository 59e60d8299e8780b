"""The station side of the PLC handshake as a pure state machine (no sockets, no threads, no clock).

Why pure: the handshake is where a line loses boards or passes bad ones, so every rule (fail-safe
REJECT, missed triggers, the result queue, heartbeats, error latching) is decided here and tested
with plain calls and a fake clock. The transports (plc/modbus, plc/opcua) only move register images
in and out; link.py turns the returned actions into pipeline calls.

Inputs: `control(regs, now)` for each new control-block image, `captured(...)`, `result(...)`,
`command_finished(...)`, `tick(now, ...)`. Output: `status_block()` (the status registers) and
the actions returned by `control`/`tick` (start a trigger, run a recipe command).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

from inspector.board_serial import CODE_UNREADABLE, SERIAL_MISMATCH

from . import registers as R
from .errors import ERROR_CODES


@dataclass(frozen=True, slots=True)
class PlcResult:
    """One board's result as the PLC sees it (the registers 104..117)."""

    passed: bool
    result_code: int
    defect_count: int
    max_score: int
    cycle_ms: int
    part_seq: int
    class_counts: tuple[int, ...] = (0,) * R.CLASS_COUNT_REGS
    reason: str | None = None
    insp_id: int = 0
    serial: str = ""
    """Board serial echoed in SERIAL_ECHO: the code read on the board, else the PLC's SERIAL."""

    @classmethod
    def reject(cls, reason: str, part_seq: int, cycle_ms: int = 0) -> PlcResult:
        return cls(False, R.RESULT_NO_CLASS, 0, 0, cycle_ms, part_seq, reason=reason)

    @classmethod
    def from_inspection(cls, result, part_seq: int) -> PlcResult:
        """From an inspector.domain.InspectionResult; REJECT unless its verdict is PASS."""
        passed = bool(result.passed)
        worst = result.worst
        if passed:
            code = 0
        else:
            code = worst.class_id if worst is not None else R.RESULT_NO_CLASS
            code = _SERIAL_CODES.get((result.reason or "").split(":")[0], code)
        counts = tuple(R.clamp_u16(c) for c in result.class_counts())
        return cls(
            passed=passed,
            result_code=code,
            defect_count=R.clamp_u16(len(result.detections)),
            max_score=R.clamp_u16(result.max_score * 1000),
            cycle_ms=R.clamp_u16(result.cycle_ms),
            part_seq=part_seq & 0xFFFF_FFFF,
            class_counts=counts,
            reason=result.reason,
            serial=_ascii_serial(result.board_serial),
        )

    def as_reject(self, reason: str) -> PlcResult:
        code = self.result_code if self.result_code not in (0,) else R.RESULT_NO_CLASS
        return PlcResult(
            False,
            code,
            self.defect_count,
            self.max_score,
            self.cycle_ms,
            self.part_seq,
            self.class_counts,
            reason,
            serial=self.serial,
        )


#: REJECT reasons of the board-serial check with their own RESULT_CODE (inspector/board_serial.py prefixes).
_SERIAL_CODES = {SERIAL_MISMATCH: R.RESULT_SERIAL_MISMATCH, CODE_UNREADABLE: R.RESULT_CODE_UNREADABLE}


def _ascii_serial(serial: str | None) -> str:
    """What fits SERIAL_ECHO: printable ASCII ('?' for anything else), cut to SERIAL_CHARS."""
    text = "".join(c if 32 <= ord(c) < 127 else "?" for c in (serial or ""))
    return text[: R.SERIAL_CHARS]


@dataclass(frozen=True, slots=True)
class StartTrigger:
    token: int
    part_seq: int
    serial: str


@dataclass(frozen=True, slots=True)
class RunCommand:
    recipe_id: int


@dataclass(slots=True)
class _Flight:
    token: int
    part_seq: int
    serial: str
    started: float
    captured: bool = False
    fault: str | None = None


@dataclass(slots=True)
class Counters:
    triggers: int = 0
    missed_triggers: int = 0
    results: int = 0
    overruns: int = 0
    trigger_held: int = 0
    result_timeouts: int = 0
    forced_rejects: int = 0
    violations: int = 0
    commands_ok: int = 0
    commands_failed: int = 0
    second_master_writes: int = 0
    violation_log: deque[str] = field(default_factory=lambda: deque(maxlen=32))


class Handshake:
    def __init__(
        self,
        now: float,
        *,
        queue_depth: int = 8,
        trigger_hold_timeout_s: float = 1.0,
        heartbeat_timeout_s: float = 3.0,
        result_timeout_s: float = 5.0,
        startup_grace_s: float = 30.0,
        recipe_id: int = 0,
    ):
        self.queue_depth = queue_depth
        self.trigger_hold_timeout_s = trigger_hold_timeout_s
        self.heartbeat_timeout_s = heartbeat_timeout_s
        self.result_timeout_s = result_timeout_s
        self.startup_grace_s = startup_grace_s
        self.started = now
        self._now = now
        self.counters = Counters()

        self.ctrl = [0] * R.CONTROL_SIZE
        self._token = 0
        self.flight: _Flight | None = None
        self.trigger_ack = False
        self._ack_at = 0.0
        self.trigger_must_fall = False
        self.queue: deque[PlcResult] = deque()
        self.presented = False
        self.ack_must_fall = False
        self.shown: PlcResult | None = None
        self.acq_id = 0
        self.insp_id = 0

        self.recipe_id = recipe_id
        self.cmd_running: int | None = None
        self.cmd_pending: int | None = None
        self.cmd_done = False
        self.cmd_failed = False

        self.health_ok = False
        self.health_code = 0
        self.link_up = True
        self.error_latched = False
        self.error_code_latched = 0
        self.ever_ready = False
        self.missed_flag = False
        self.overrun_flag = False
        self.held_flag = False
        self.editing = False

        self.hb_last: int | None = None
        self.hb_seen_at: float | None = None
        self.second_master_text: str | None = None
        self._second_master_until = 0.0
        self.station_hb = False
        self.hb_count = 0
        self._hb_next = now + 1.0

    # ------------------------------------------------------------------ derived state
    @property
    def plc_heartbeat_ok(self) -> bool:
        return self.hb_seen_at is not None and self._now - self.hb_seen_at <= self.heartbeat_timeout_s

    @property
    def plc_alarm(self) -> str | None:
        """Why the PLC side is not healthy (for Health 'plc' and the UI), or None."""
        # Constant texts while a state lasts (no elapsed time in them): the link logs and reports
        # the alarm when the text changes, so a lost heartbeat is one line, not ten a second.
        if self.second_master_active:
            return f"second PLC master: {self.second_master_text}"
        if not self.link_up:
            return "PLC link down"
        if self.hb_seen_at is None:
            return "waiting for the PLC heartbeat (CONTROL b6 toggling)"
        if not self.plc_heartbeat_ok:
            return f"PLC heartbeat lost (no toggle within {self.heartbeat_timeout_s:.1f} s)"
        return None

    @property
    def second_master_active(self) -> bool:
        """A second connection wrote the control block within the last heartbeat_timeout_s."""
        return self.second_master_text is not None and self._now < self._second_master_until

    @property
    def online(self) -> bool:
        return not self.ctrl[0] & R.SET_OFFLINE

    @property
    def busy(self) -> bool:
        return self.flight is not None

    @property
    def ready(self) -> bool:
        return (
            self.online
            and bool(self.ctrl[0] & R.TRIGGER_ENABLE)
            and not self.editing
            and self.health_ok
            and not self.error_latched
            and self.plc_alarm is None
            and self.flight is None
            and not self.trigger_must_fall
            and self.cmd_running is None
            and self.cmd_pending is None
        )

    # ------------------------------------------------------------------ inputs
    def control(self, regs: Sequence[int], now: float) -> list[StartTrigger | RunCommand]:
        """A new image of the control block (24 registers) written by or read from the PLC."""
        self._now = now
        if len(regs) != R.CONTROL_SIZE:
            raise ValueError(f"control block needs {R.CONTROL_SIZE} registers, got {len(regs)}")
        new = [int(r) & 0xFFFF for r in regs]
        old_word, word = self.ctrl[0], new[0]
        rose, fell = word & ~old_word, old_word & ~word
        # Decide READY with the control bits the PLC had *before* this write (TRIGGER_ENABLE set in the
        # same write as TRIGGER counts: PLCs commonly write the whole word at once).
        self.ctrl = new
        actions: list[StartTrigger | RunCommand] = []
        if (rose | fell) & R.PLC_HEARTBEAT or self.hb_last is None and word & R.PLC_HEARTBEAT:
            self.hb_seen_at = now
        self.hb_last = word & R.PLC_HEARTBEAT

        if fell & R.TRIGGER:
            self.trigger_ack = False
            self.trigger_must_fall = False
        elif self.trigger_ack and not word & R.TRIGGER:
            self.trigger_ack = False
        if rose & R.TRIGGER:
            if self.ready:
                actions.append(self._accept_trigger(now))
            else:
                self.missed_flag = True
                self.counters.missed_triggers += 1
                # READY comes back only after TRIGGER falls, as after an accepted one: a TRIGGER held from
                # before (a station restarted under it) is not a board the PLC may think is waiting.
                self.trigger_must_fall = True
                self._violation(f"TRIGGER while not READY ({self.not_ready_reason()})", count=False)

        if rose & R.RESULTS_ACK:
            if self.presented:
                self.queue.popleft()
                self.presented = False
                self.ack_must_fall = True
            else:
                self._violation("RESULTS_ACK set while RESULTS_VALID = 0")
        if fell & R.RESULTS_ACK:
            self.ack_must_fall = False
            self._present_next()

        if rose & R.CLEAR_ERROR:
            self._clear_error()

        if rose & R.EXECUTE_COMMAND:
            self.cmd_done = self.cmd_failed = False
            if self.cmd_running is not None:
                self._violation("EXECUTE_COMMAND while a command is running")
            elif self.flight is not None:
                self.cmd_pending = new[1]  # between boards: after this board's result
            else:
                self.cmd_running = new[1]
                actions.append(RunCommand(new[1]))
        if fell & R.EXECUTE_COMMAND and self.cmd_running is None:
            self.cmd_done = self.cmd_failed = False
        return actions

    def captured(self, token: int, acq_id: int, now: float) -> None:
        """The camera delivered the frame for this trigger: ACQ_ID then TRIGGER_ACK."""
        self._now = now
        f = self.flight
        if f is None or f.token != token or f.captured:
            return
        f.captured = True
        self.acq_id = acq_id & 0xFFFF
        self._set_ack(now)

    def result(self, token: int, result: PlcResult, now: float) -> bool:
        """The verdict for the board in flight; returns False for a stale token (already timed out)."""
        self._now = now
        f = self.flight
        if f is None or f.token != token:
            return False
        if not f.captured:
            # No image (camera down, queue full): acknowledge so the PLC's handshake moves on; ACQ_ID
            # does not change, and the result is a REJECT.
            self._set_ack(now)
        if f.fault is not None:
            if result.passed:
                self.counters.forced_rejects += 1
            result = result.as_reject(f"station fault during the board: {f.fault}")
        self._finish_flight(result)
        return True

    def command_finished(self, recipe_id: int, ok: bool, now: float) -> None:
        self._now = now
        if self.cmd_running != recipe_id:
            return
        self.cmd_running = None
        if ok:
            self.recipe_id = recipe_id
            self.counters.commands_ok += 1
        else:
            self.counters.commands_failed += 1
        self.cmd_done, self.cmd_failed = ok, not ok

    def set_engineer_editing(self, editing: bool) -> None:
        self.editing = bool(editing)

    def second_master(self, text: str, now: float) -> None:
        """Another connection wrote the control block while the master was active (its write was refused).

        ERROR latches at once with its own code (no start-up grace: it is never a start-up state), and
        the alarm lasts until heartbeat_timeout_s after the last such write.
        """
        self._now = now
        self.second_master_text = text
        self._second_master_until = now + self.heartbeat_timeout_s
        self.counters.second_master_writes += 1
        self._violation(f"second PLC master: {text}", count=False)
        self.latch_error(ERROR_CODES["plc_master"])

    def latch_error(self, code: int) -> None:
        """A fault seen outside the health inputs (a record not durable in time): ERROR until CLEAR_ERROR."""
        if not self.error_latched:
            self.error_latched = True
            self.error_code_latched = code or 99

    def tick(self, now: float, *, health_ok: bool, error_code: int, link_up: bool = True) -> list[RunCommand]:
        """Time-driven rules: heartbeats, timeouts, error latching. Call every few ms."""
        self._now = now
        self.link_up = link_up
        self.health_ok = health_ok
        self.health_code = error_code
        actions: list[RunCommand] = []
        if now >= self._hb_next:
            self.station_hb = not self.station_hb
            self.hb_count = (self.hb_count + 1) & 0xFFFF
            self._hb_next = max(self._hb_next + 1.0, now + 0.5)
        alarm = self.plc_alarm
        fault = not health_ok or alarm is not None
        if alarm is not None and self.second_master_active:
            error_code = ERROR_CODES["plc_master"]
            self.health_code = error_code
        elif not error_code and alarm is not None:
            error_code = ERROR_CODES["plc"]
            self.health_code = error_code
        if fault and (self.ever_ready or now - self.started > self.startup_grace_s) and not self.error_latched:
            self.error_latched = True
            self.error_code_latched = error_code or 99
        if self.flight is not None and (fault or self.error_latched) and self.flight.fault is None:
            self.flight.fault = f"error code {error_code or self.error_code_latched}"
        if self.ready:
            self.ever_ready = True
        if self.trigger_ack and self.ctrl[0] & R.TRIGGER and now - self._ack_at > self.trigger_hold_timeout_s:
            # The PLC did not clear TRIGGER: proceed (clear the ACK) and flag it.
            self.trigger_ack = False
            self.held_flag = True
            self.counters.trigger_held += 1
            self._violation(f"TRIGGER held {self.trigger_hold_timeout_s:.2f} s after TRIGGER_ACK", count=False)
        f = self.flight
        if f is not None and now - f.started > self.result_timeout_s:
            self.counters.result_timeouts += 1
            if not f.captured:
                self._set_ack(now)
            self._finish_flight(PlcResult.reject(f"no result within {self.result_timeout_s:.1f} s", f.part_seq))
        if self.cmd_pending is not None and self.flight is None and self.cmd_running is None:
            self.cmd_running, self.cmd_pending = self.cmd_pending, None
            actions.append(RunCommand(self.cmd_running))
        return actions

    # ------------------------------------------------------------------ output
    def status_word(self) -> int:
        w = 0
        if self.ready:
            w |= R.READY
        if self.trigger_ack:
            w |= R.TRIGGER_ACK
        if self.flight is not None:
            w |= R.BUSY
        if self.presented:
            w |= R.RESULTS_VALID
            w |= R.PASS if self.queue[0].passed else R.REJECT
        else:
            w |= R.REJECT  # fail-safe default: nothing valid reads as REJECT
        if self.error_latched:
            w |= R.ERROR
        if self.online:
            w |= R.ONLINE
        if self.station_hb:
            w |= R.STATION_HEARTBEAT
        if self.cmd_done:
            w |= R.CMD_DONE
        if self.cmd_failed:
            w |= R.CMD_FAILED
        if self.missed_flag:
            w |= R.MISSED_TRIGGER
        if self.overrun_flag:
            w |= R.RESULTS_OVERRUN
        if self.editing:
            w |= R.ENGINEER_EDITING
        if self.held_flag:
            w |= R.TRIGGER_HELD
        return w

    def error_code(self) -> int:
        if self.error_latched:
            return self.error_code_latched
        return self.health_code

    def status_block(self) -> list[int]:
        regs = [0] * R.STATUS_SIZE

        def put(addr: int, values: list[int]) -> None:
            i = addr - R.STATUS_BASE
            regs[i : i + len(values)] = values

        put(R.STATUS, [self.status_word()])
        put(R.CURRENT_RECIPE, [self.recipe_id & 0xFFFF])
        put(R.ERROR_CODE, [self.error_code() & 0xFFFF])
        put(R.ACQ_ID, [self.acq_id])
        s = self.shown
        if s is not None:
            put(R.INSP_ID, [s.insp_id])
            put(R.RESULT_CODE, [s.result_code, s.defect_count, s.max_score, s.cycle_ms])
            put(R.PART_SEQ_ECHO, R.encode_u32(s.part_seq))
            put(R.CLASS_COUNTS, list(s.class_counts))
            put(R.SERIAL_ECHO, R.encode_ascii(s.serial, R.SERIAL_REGS, "SERIAL_ECHO"))
        put(R.HEARTBEAT_COUNT, [self.hb_count])
        put(R.RESULT_QUEUE, [len(self.queue)])
        put(R.MISSED_TRIGGER_COUNT, [self.counters.missed_triggers & 0xFFFF])
        put(R.OVERRUN_COUNT, [self.counters.overruns & 0xFFFF])
        put(R.MAP_VERSION_REG, [R.MAP_VERSION])
        return regs

    def not_ready_reason(self) -> str:
        checks = [
            (self.online, "SET_OFFLINE"),
            (bool(self.ctrl[0] & R.TRIGGER_ENABLE), "TRIGGER_ENABLE = 0"),
            (not self.editing, "engineer editing"),
            (self.health_ok, f"station not healthy, code {self.health_code}"),
            (not self.error_latched, f"ERROR latched (code {self.error_code_latched}), needs CLEAR_ERROR"),
            (self.plc_alarm is None, self.plc_alarm or ""),
            (self.flight is None, "BUSY"),
            (not self.trigger_must_fall, "TRIGGER not yet cleared"),
            (self.cmd_running is None and self.cmd_pending is None, "command running"),
        ]
        return ", ".join(why for ok, why in checks if not ok) or "ready"

    # ------------------------------------------------------------------ internals
    def _accept_trigger(self, now: float) -> StartTrigger:
        self._token += 1
        part_seq = R.decode_u32(self.ctrl[R.PART_SEQ : R.PART_SEQ + 2])
        serial = R.decode_ascii(self.ctrl[R.SERIAL : R.SERIAL + R.SERIAL_REGS])
        self.flight = _Flight(self._token, part_seq, serial, now)
        self.trigger_must_fall = True
        self.counters.triggers += 1
        return StartTrigger(self._token, part_seq, serial)

    def _set_ack(self, now: float) -> None:
        # If the PLC already dropped TRIGGER, the ACK still shows until its next control write.
        self.trigger_ack = True
        self._ack_at = now

    def _finish_flight(self, result: PlcResult) -> None:
        flight, self.flight = self.flight, None
        self.insp_id = (self.insp_id + 1) & 0xFFFF
        self.counters.results += 1
        result = PlcResult(
            result.passed,
            result.result_code,
            result.defect_count,
            result.max_score,
            result.cycle_ms,
            result.part_seq,
            result.class_counts,
            result.reason,
            self.insp_id,
            result.serial or (_ascii_serial(flight.serial) if flight is not None else ""),
        )
        if len(self.queue) >= self.queue_depth:
            # Cognex-style: the new result is discarded and flagged; its INSP_ID is skipped, so the PLC
            # also sees the gap.
            self.overrun_flag = True
            self.counters.overruns += 1
            self._violation(f"result queue full ({self.queue_depth}): INSP_ID {self.insp_id} discarded", count=False)
            return
        self.queue.append(result)
        self._present_next()

    def _present_next(self) -> None:
        if self.presented or self.ack_must_fall or not self.queue:
            return
        self.presented = True
        self.shown = self.queue[0]

    def _clear_error(self) -> None:
        if self.health_ok and self.plc_alarm is None:
            self.error_latched = False
            self.error_code_latched = 0
        self.missed_flag = False
        self.overrun_flag = False
        self.held_flag = False

    def _violation(self, text: str, count: bool = True) -> None:
        if count:
            self.counters.violations += 1
        self.counters.violation_log.append(text)
