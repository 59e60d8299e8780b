"""A line PLC in software: drives the station's handshake and flags every protocol violation.

Why it exists: a PLC integrator needs to see the station behave before wiring a real PLC, the
demo needs a line, and the tests and the benchmark need a PLC that checks every rule of docs/plc.md
board after board. It is deliberately strict: anything a real PLC program would trip over (PASS
without RESULTS_VALID, a wrong PART_SEQ_ECHO, an INSP_ID gap, a missing TRIGGER_ACK, the station
heartbeat stopping for 3 periods) is recorded as a violation, and `pcb-inspector plc-sim` exits
non-zero if there was one.

Why the rules live here and not in a protocol: the PLC program is the same whether the station is
reached over Modbus registers or OPC UA variables, as the station's handshake is. It works on the
control and status register images of plc/registers.py; a protocol subclass (plc/modbus/simulator.py,
plc/opcua/simulator.py) only moves those images: `_open`, `_close`, `_send` and `_fetch_status`.
"""

from __future__ import annotations

import logging
import statistics
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from . import registers as R

log = logging.getLogger(__name__)

STATION_HEARTBEAT_PERIOD_S = 1.0
MISSED_HEARTBEATS_DOWN = 3
RECENT_BOARDS = 1000
#: Boards whose latency and timing the statistics keep (the newest): a demo left running for days must
#: not grow, and a bench or a bring-up run is far shorter than this.
TIMED_BOARDS = 20_000
#: Violation texts kept (the newest); `violation_count` counts them all.
KEPT_VIOLATIONS = 1000
"""Acknowledged boards kept in SimStats.recent (the built-in simulator runs as long as the station)."""


class StationDown(Exception):
    pass


class LinkLost(Exception):
    """A request did not reach the station or got no answer (connection, timeout): reconnect."""


class Refused(Exception):
    """The station answered and refused the request (Modbus exception, OPC UA bad status)."""


@dataclass(frozen=True, slots=True)
class BoardSeen:
    """One board whose result the simulator read and acknowledged."""

    part_seq: int
    insp_id: int
    passed: bool
    result_code: int


@dataclass
class SimStats:
    boards: int = 0
    passed: int = 0
    rejected: int = 0
    missed: int = 0
    acknowledged: int = 0
    """Results read with RESULTS_VALID and acknowledged (RESULTS_VALID fell after RESULTS_ACK)."""
    latencies_ms: deque[float] = field(default_factory=lambda: deque(maxlen=TIMED_BOARDS))
    """Trigger -> RESULTS_VALID of the newest TIMED_BOARDS boards, in ms."""
    violations: deque[str] = field(default_factory=lambda: deque(maxlen=KEPT_VIOLATIONS))
    """The newest KEPT_VIOLATIONS violation texts."""
    violation_count: int = 0
    station_down: bool = False
    error_resets: int = 0
    """CLEAR_ERROR pulses sent because the station latched ERROR (the simulated operator's resets)."""
    per_board: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=TIMED_BOARDS))
    """(part_seq, trigger sent, RESULTS_VALID seen) in time.monotonic() seconds, newest TIMED_BOARDS."""
    recent: deque[BoardSeen] = field(default_factory=lambda: deque(maxlen=RECENT_BOARDS))
    """The last acknowledged boards, oldest first."""

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))]

    def summary(self) -> str:
        lat = (
            f"trigger->RESULTS_VALID p50 {self.percentile(50):.2f} ms, p99 {self.percentile(99):.2f} ms, "
            f"mean {statistics.fmean(self.latencies_ms):.2f} ms"
            if self.latencies_ms
            else "no latency measured"
        )
        return (
            f"boards {self.boards}: PASS {self.passed}, REJECT {self.rejected}, missed {self.missed}; {lat}; "
            f"violations {self.violation_count}{'; STATION DOWN' if self.station_down else ''}"
        )


class SimulatedLinePlc(ABC):
    """The PLC program of docs/plc.md on register images; a subclass carries them over its protocol."""

    def __init__(
        self,
        *,
        rate: float = 2.0,
        boards: int = 0,
        poll_s: float = 0.001,
        ack_timeout_s: float = 2.0,
        result_timeout_s: float = 10.0,
        ready_timeout_s: float = 30.0,
        first_part_seq: int = 1,
        serial_prefix: str = "SIM",
        stop_on_violation: bool = False,
        on_board: Callable[[int, dict], None] | None = None,
    ):
        self.rate = rate
        self.boards = boards
        self.poll_s = poll_s
        self.ack_timeout_s = ack_timeout_s
        self.result_timeout_s = result_timeout_s
        self.ready_timeout_s = ready_timeout_s
        self.part_seq = first_part_seq
        self.serial_prefix = serial_prefix
        self.stop_on_violation = stop_on_violation
        self.on_board = on_board
        self.stats = SimStats()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._control = R.TRIGGER_ENABLE
        self._hb_next = 0.0
        self._station_hb: int | None = None
        self._station_hb_at = 0.0
        self._last_insp: int | None = None
        self._overrun_seen = 0

    # ------------------------------------------------------------------ the protocol's part
    @abstractmethod
    def describe(self) -> str:
        """Where the station is, for messages ('127.0.0.1:1502', 'opc.tcp://...')."""

    @abstractmethod
    def _open(self) -> None:
        """Connect to the station; raise LinkLost (or Refused) saying why not."""

    @abstractmethod
    def _close(self) -> None:
        """Drop the connection; never raises."""

    @abstractmethod
    def _send(self, address: int, values: list[int]) -> None:
        """Write control-block registers from `address` as one PLC write; LinkLost or Refused."""

    @abstractmethod
    def _fetch_status(self) -> list[int]:
        """The whole status block (R.STATUS_SIZE registers) as one read; LinkLost or Refused."""

    # ------------------------------------------------------------------ running
    def start_thread(self) -> None:
        self._thread = threading.Thread(target=self.run, name="plc-sim", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def run(self) -> SimStats:
        try:
            try:
                self._open()
            except (LinkLost, Refused) as exc:
                self._violation(f"cannot connect to the station at {self.describe()}: {exc}")
                return self.stats
            self._write_control()
            period = 1.0 / self.rate if self.rate > 0 else 0.0
            next_board = time.monotonic()
            while not self._stop.is_set() and (self.boards <= 0 or self.stats.boards < self.boards):
                wait = next_board - time.monotonic()
                if wait > 0 and self._idle(wait):
                    break
                next_board = max(next_board + period, time.monotonic())
                self._board()
                if self.stop_on_violation and self.stats.violations:
                    break
        except StationDown:
            pass
        finally:
            # Leave the station with TRIGGER_ENABLE off, as a PLC does at line stop.
            try:
                self._control = 0
                self._send(R.CONTROL, [self._control])
            except Exception:
                pass
            self._close()
        return self.stats

    # ------------------------------------------------------------------ one board
    def _board(self) -> None:
        deadline = time.monotonic() + self.ready_timeout_s
        while True:
            st = self._wait(lambda s: s[0] & (R.READY | R.ERROR), max(0.0, deadline - time.monotonic()), "READY")
            if st is None:
                return
            if st[0] & R.READY:
                break
            # ERROR latched: a line PLC raises the alarm and the operator presses reset once the cause
            # is fixed. The simulator plays that operator: one CLEAR_ERROR a second, each one counted.
            code = st[R.ERROR_CODE - R.STATUS_BASE]
            self.stats.error_resets += 1
            log.warning("station ERROR (code %d): simulated operator reset (CLEAR_ERROR)", code)
            self._pulse(R.CLEAR_ERROR)
            if self._idle(1.0):
                return
        if st[0] & R.ERROR:
            self._violation("READY = 1 while ERROR = 1")
        acq_before = st[R.ACQ_ID - R.STATUS_BASE]
        seq = self.part_seq
        self.part_seq = (self.part_seq + 1) & 0xFFFF_FFFF
        serial = f"{self.serial_prefix}{seq:08d}"
        self._control |= R.TRIGGER
        self._control &= ~R.RESULTS_ACK
        block = [0] * R.CONTROL_SIZE
        self._heartbeat_bit()
        block[0] = self._control
        block[R.PART_SEQ : R.PART_SEQ + 2] = R.encode_u32(seq)
        block[R.SERIAL : R.SERIAL + R.SERIAL_REGS] = R.encode_ascii(serial, R.SERIAL_REGS)
        t0 = time.monotonic()
        self._write(R.CONTROL_BASE, block)
        st = self._wait(lambda s: s[0] & (R.TRIGGER_ACK | R.MISSED_TRIGGER | R.RESULTS_VALID), self.ack_timeout_s, None)
        if st is None and self._stop.is_set():
            return  # line stop with a board in flight: neither a result nor a fault of the station
        if st is None or (st[0] & R.MISSED_TRIGGER and not st[0] & R.TRIGGER_ACK):
            # No acknowledge: this board has no result and is rejected by the PLC program.
            self.stats.boards += 1
            self.stats.missed += 1
            self.stats.rejected += 1
            if st is None:
                self._violation(f"part {seq}: no TRIGGER_ACK within {self.ack_timeout_s} s")
            self._control &= ~R.TRIGGER
            self._pulse(R.CLEAR_ERROR)
            return
        if st[0] & R.TRIGGER_ACK:
            if st[0] & R.READY:
                self._violation(f"part {seq}: READY = 1 together with TRIGGER_ACK")
            acq = st[R.ACQ_ID - R.STATUS_BASE]
            if acq != (acq_before + 1) & 0xFFFF and acq != acq_before:
                self._violation(f"part {seq}: ACQ_ID went {acq_before} -> {acq}, expected +1")
        self._control &= ~R.TRIGGER
        self._write_control()
        valid_at: list[float] = []
        st = self._wait(lambda s: s[0] & R.RESULTS_VALID, self.result_timeout_s, "RESULTS_VALID", valid_at)
        if st is None and self._stop.is_set():
            return
        self.stats.boards += 1
        if st is None:
            self.stats.rejected += 1
            return
        t1 = valid_at[0]
        self.stats.latencies_ms.append((t1 - t0) * 1000)
        self.stats.per_board.append((seq, t0, t1))
        seen = self._check_result(seq, st, acq_before)
        self._control |= R.RESULTS_ACK
        self._write_control()
        if self._wait(
            lambda s: not s[0] & R.RESULTS_VALID, self.ack_timeout_s, "RESULTS_VALID cleared after RESULTS_ACK"
        ):
            self.stats.acknowledged += 1
            self.stats.recent.append(seen)
        self._control &= ~R.RESULTS_ACK
        self._write_control()

    def _check_result(self, seq: int, st: list[int], acq_before: int) -> BoardSeen:
        word = st[0]
        passed, rejected = bool(word & R.PASS), bool(word & R.REJECT)
        code = st[R.RESULT_CODE - R.STATUS_BASE]
        echo = R.decode_u32(st[R.PART_SEQ_ECHO - R.STATUS_BASE : R.PART_SEQ_ECHO - R.STATUS_BASE + 2])
        insp = st[R.INSP_ID - R.STATUS_BASE]
        if passed == rejected:
            self._violation(f"part {seq}: PASS = {passed:d} and REJECT = {rejected:d} with RESULTS_VALID")
        if echo != seq:
            self._violation(f"part {seq}: PART_SEQ_ECHO is {echo}")
        overruns = st[R.OVERRUN_COUNT - R.STATUS_BASE]
        if self._last_insp is not None and insp != (self._last_insp + 1) & 0xFFFF and overruns == self._overrun_seen:
            self._violation(f"part {seq}: INSP_ID went {self._last_insp} -> {insp}, expected +1")
        self._overrun_seen = overruns
        self._last_insp = insp
        if passed and code != 0 or rejected and code == 0:
            self._violation(f"part {seq}: RESULT_CODE {code} with {'PASS' if passed else 'REJECT'}")
        if passed:
            self.stats.passed += 1
        else:
            self.stats.rejected += 1
        if self.on_board is not None:
            self.on_board(seq, {"passed": passed, "result_code": code, "insp_id": insp, "status": list(st)})
        return BoardSeen(seq, insp, passed, code)

    # ------------------------------------------------------------------ control and status
    def _heartbeat_bit(self) -> None:
        """Toggle PLC_HEARTBEAT in the control word when its half period (0.5 s) is up."""
        now = time.monotonic()
        if now >= self._hb_next:
            self._hb_next = now + 0.5
            self._control ^= R.PLC_HEARTBEAT

    def _write_control(self) -> None:
        self._heartbeat_bit()
        self._write(R.CONTROL, [self._control])

    def _pulse(self, bit: int) -> None:
        self._control |= bit
        self._write_control()
        self._control &= ~bit
        self._write_control()

    def _write(self, address: int, values: list[int]) -> None:
        try:
            self._send(address, values)
        except LinkLost as exc:
            self._link_error(f"write at {address}: {exc}")
        except Refused as exc:
            self._violation(f"station refused a write of {len(values)} registers at {address}: {exc}")

    def _read_status(self) -> list[int] | None:
        try:
            st = self._fetch_status()
        except LinkLost as exc:
            self._link_error(f"read status: {exc}")
            return None
        except Refused as exc:
            self._violation(f"station refused the status read: {exc}")
            return None
        now = time.monotonic()
        hb = st[0] & R.STATION_HEARTBEAT
        if self._station_hb is None or hb != self._station_hb:
            self._station_hb, self._station_hb_at = hb, now
        elif now - self._station_hb_at > MISSED_HEARTBEATS_DOWN * STATION_HEARTBEAT_PERIOD_S:
            self._station_down(f"no STATION_HEARTBEAT toggle for {now - self._station_hb_at:.1f} s")
        if st[0] & R.PASS and not st[0] & R.RESULTS_VALID:
            self._violation("PASS = 1 while RESULTS_VALID = 0")
        if st[0] & R.READY and st[0] & R.BUSY:
            self._violation("READY = 1 while BUSY = 1")
        return st

    def _link_error(self, what: str) -> None:
        now = time.monotonic()
        if self._station_hb_at and now - self._station_hb_at > MISSED_HEARTBEATS_DOWN * STATION_HEARTBEAT_PERIOD_S:
            self._station_down(f"link lost: {what}")
        self._close()
        self._stop.wait(0.05)
        try:
            self._open()
        except (LinkLost, Refused) as exc:
            log.debug("reconnect to %s failed: %s", self.describe(), exc)

    def _station_down(self, why: str) -> None:
        self.stats.station_down = True
        self._violation(f"station down: {why}")
        log.error("station down: %s", why)
        raise StationDown(why)

    def _wait(self, cond, timeout: float, what: str | None, when: list[float] | None = None) -> list[int] | None:
        end = time.monotonic() + timeout
        while not self._stop.is_set():
            st = self._read_status()
            if st is not None and cond(st):
                if when is not None:
                    when.append(time.monotonic())
                return st
            if time.monotonic() > end:
                if what is not None:
                    self._violation(f"timed out after {timeout} s waiting for {what}")
                return None
            if self._hb_due():
                self._write_control()
            if self.poll_s:
                time.sleep(self.poll_s)
        return None

    def _hb_due(self) -> bool:
        return time.monotonic() >= self._hb_next

    def _idle(self, seconds: float) -> bool:
        """Keep the heartbeat going and watch the station while waiting; True if stopped."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self._stop.is_set():
                return True
            self._read_status()
            if self._hb_due():
                self._write_control()
            self._stop.wait(min(0.05, max(0.0, end - time.monotonic())))
        return self._stop.is_set()

    def _violation(self, text: str) -> None:
        self.stats.violations.append(text)
        self.stats.violation_count += 1
        log.error("protocol violation: %s", text)
