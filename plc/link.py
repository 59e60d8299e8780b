"""The PLC link as a station part, over any protocol: tickets, durable gating, recipe commands, health.

Why one owning thread: the transport (Modbus server or client, OPC UA server, ...) and the handshake
state are touched by that thread only, inside its asyncio loop. The pipeline reaches it through
`submit(result)` (a wake-up, never a block), the UI through `set_engineer_editing`, and recipe
commands run on a short-lived worker thread whose answer comes back through a queue. TRIGGER calls
`pipeline.trigger(...)`; the returned ticket's `captured` and `done` events drive TRIGGER_ACK and
the result signals.

Why results wait for the recorder: the PLC acts on RESULTS_VALID (the board leaves the line), so a
result it saw must survive a crash of this process. With a recorder attached, a finished board is
held (BUSY stays 1) until the recorder's durable listener reports its uid committed or fsynced into
the spool; the listener runs in the writer thread and only hands the uid to this thread through a
queue. If that does not happen within plc.result_timeout_s of the trigger, the board is published
as a REJECT with ERROR latched (code 30, database), never as a PASS.

Nothing here knows a protocol: the transport (transport.py) carries the control block in and the
status block out, and the handshake (handshake.py) decides on them.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from inspector.domain import InspectionResult, TriggerRequest
from inspector.health import Health
from inspector.plc_settings import PlcLinkSettings
from inspector.station import StationError

from . import registers as R
from .errors import ERROR_CODES
from .handshake import Handshake, PlcResult, RunCommand, StartTrigger
from .transport import Transport

log = logging.getLogger(__name__)

RecipeCallback = Callable[[int], bool]
_DB_ERROR = ERROR_CODES["database"]


@dataclass(slots=True)
class _Pending:
    token: int
    ticket: object
    part_seq: int
    captured_sent: bool = False
    held: PlcResult | None = None
    """The verdict, inspected but not yet durable (only with a recorder)."""
    uid: str | None = None
    durable: bool = False


class PlcLink:
    """The link to the line PLC over one transport, and a result sink named 'plc'."""

    name = "plc"

    def __init__(
        self,
        plc: PlcLinkSettings,
        pipeline,
        health: Health,
        *,
        recipe_id: int = 0,
        on_recipe: RecipeCallback | None = None,
        startup_grace_s: float = 30.0,
        tick_s: float = 0.01,
        port: int | None = None,
        recorder=None,
        transport: Transport | None = None,
    ):
        """`port` overrides plc.port; 0 binds an ephemeral port (tests, benchmark), read back from `.port`.

        `recorder` (inspector.storage.writer.Recorder or anything with add_durable_listener/is_durable):
        publish each result only once its record is durable. None publishes at once (no storage).
        `transport`: the protocol endpoint; None builds the one `plc` (its protocol's settings) names.
        """
        if plc.mode == "off":
            raise ValueError("plc.mode is 'off': there is no PLC link to attach")
        if transport is None:
            create = getattr(plc, "create_transport", None)
            if create is None:
                raise ValueError(f"plc.protocol {plc.protocol!r} has no transport to build")
            transport = create(plc.port if port is None else port)
        self.transport = transport
        self.cfg = plc
        self.pipeline = pipeline
        self.health = health
        self.on_recipe = on_recipe
        self.tick_s = tick_s
        self.hs = Handshake(
            time.monotonic(),
            queue_depth=plc.queue_depth,
            trigger_hold_timeout_s=plc.trigger_hold_timeout_s,
            heartbeat_timeout_s=plc.heartbeat_timeout_s,
            result_timeout_s=plc.result_timeout_s,
            startup_grace_s=startup_grace_s,
            recipe_id=recipe_id,
        )
        self._pending: _Pending | None = None
        self._cmd_results: queue.Queue[tuple[int, bool]] = queue.Queue(maxsize=16)
        self._editing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._async_wake: asyncio.Event | None = None
        self._thread_wake = threading.Event()
        self._alarm: str | None = "starting"
        self.port = plc.port if port is None else port
        self.status: list[int] = [0] * R.STATUS_SIZE
        self.control: list[int] = [0] * R.CONTROL_SIZE
        self.results_seen = 0
        self.simulator = None
        self.recorder = recorder
        self.durable_timeouts = 0
        """Boards published as REJECT + ERROR because their record was not durable in time."""
        self._awaited: set[str] = set()
        self._awaited_lock = threading.Lock()
        self._durable_q: queue.Queue[str] = queue.Queue(maxsize=64)
        self._listening = False

    # ------------------------------------------------------------------ public, any thread
    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("PLC link already started")
        self.health.fail("plc", "starting")
        if self.recorder is None:
            log.warning(
                "PLC link without a recorder: RESULTS_VALID is set as soon as a board is inspected, "
                "NOT gated on a durable record (storage not installed or not attached)"
            )
        else:
            if not self._listening:
                self.recorder.add_durable_listener(self._on_durable)
                self._listening = True
            log.info(
                "PLC link: RESULTS_VALID only once the record is durable; not durable within %.1f s -> REJECT + ERROR",
                self.cfg.result_timeout_s,
            )
        self._thread = threading.Thread(target=self._run, name="plc-link", daemon=True)
        self._thread.start()
        # An OPC UA server builds its standard address space first (seconds on a loaded machine).
        if not self._started.wait(60.0):
            self._stop.set()
            self._wake()
            raise StationError(f"PLC link ({self.transport.describe()}) did not start within 60 s")
        if self._start_error is not None:
            self._thread.join(2.0)
            self._thread = None
            # A StationError is one line at the command line (a busy port ended in a 30-line traceback, every restart).
            raise StationError(f"PLC link ({self.transport.describe()}) did not start: {self._start_error}") from None
        self.simulator = self.transport.start_demo_master()

    def stop(self, timeout: float = 5.0) -> None:
        if self.simulator is not None:
            self.simulator.stop()
            self.simulator = None
        self._stop.set()
        self._wake()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise RuntimeError("PLC link thread did not stop")
            self._thread = None

    def submit(self, result: InspectionResult) -> None:
        """Sink interface: the ticket carries the result; this only wakes the link thread."""
        self.results_seen += 1
        self._wake()

    def _on_durable(self, uid: str, where: str) -> None:
        """Recorder listener (writer thread): hand the uid of a board we are holding to the link thread."""
        with self._awaited_lock:
            if uid not in self._awaited:
                return  # not ours, or already given up on (timed out)
            self._awaited.discard(uid)
        try:
            self._durable_q.put_nowait(uid)
        except queue.Full:  # cannot happen (one board in flight); the result timeout would REJECT it
            log.error("durable notice for %s dropped: link queue full", uid)
        self._wake()

    def set_engineer_editing(self, editing: bool) -> None:
        """The UI's recipe editor is open: READY drops and ENGINEER_EDITING shows it to the PLC."""
        self._editing = bool(editing)
        self._wake()

    @property
    def alarm(self) -> str | None:
        return self._alarm

    def status_bits(self) -> list[str]:
        return R.bits_named(self.status[0], R.STATUS_BITS)

    # ------------------------------------------------------------------ owner thread: shared step
    def _wake(self) -> None:
        self._thread_wake.set()
        loop, ev = self._loop, self._async_wake
        if loop is not None and ev is not None:
            try:
                loop.call_soon_threadsafe(ev.set)
            except RuntimeError:  # loop already closed at shutdown
                pass

    def _health_inputs(self) -> tuple[bool, int]:
        states = [s for n, s in self.health.snapshot().items() if n != "plc"]
        for s in states:
            if not s.ok:
                return False, ERROR_CODES.get(s.name, 99)
        return bool(states), 0

    def _step(
        self, control_images: list[list[int]], link_up: bool, second_master: list[str] | None = None
    ) -> list[int]:
        hs = self.hs
        now = time.monotonic()
        hs.set_engineer_editing(self._editing)
        for text in second_master or ():
            hs.second_master(text, now)
        for image in control_images:
            if image[0] & R.CLEAR_ERROR and not self.control[0] & R.CLEAR_ERROR:
                # CLEAR_ERROR also forgets board-level faults (e.g. 3 unregistrable boards in a row), so
                # READY can return and the next board is tried; station faults (camera, model) stay.
                clear = getattr(self.pipeline, "clear_faults", None)
                if clear is not None:
                    clear()
                hs.health_ok = self._health_inputs()[0]
            self.control = image
            for action in hs.control(image, now):
                self._do(action)
        p = self._pending
        while True:
            try:
                uid = self._durable_q.get_nowait()
            except queue.Empty:
                break
            if p is not None and p.uid == uid:
                p.durable = True
        if p is not None:
            ticket = p.ticket
            if not p.captured_sent and ticket.captured.is_set():
                p.captured_sent = True
                hs.captured(p.token, ticket.acq_id or 0, now)
            if p.held is None and ticket.done.is_set():
                res = ticket.result
                plc = (
                    PlcResult.from_inspection(res, p.part_seq)
                    if res is not None
                    else PlcResult.reject("no result", p.part_seq)
                )
                if res is not None and res.reason:
                    log.info("board part_seq=%d: REJECT (%s)", p.part_seq, res.reason)
                if self.recorder is None or res is None:
                    hs.result(p.token, plc, now)
                    self._pending = None
                else:
                    self._hold_until_durable(p, plc, res.uid)
            if self._pending is p and p.held is not None:
                self._publish_when_durable(p, now)
            elif self._pending is p and p.held is None and (hs.flight is None or hs.flight.token != p.token):
                self._pending = None  # timed out in the handshake; a late result is ignored
        while True:
            try:
                recipe_id, ok = self._cmd_results.get_nowait()
            except queue.Empty:
                break
            hs.command_finished(recipe_id, ok, now)
        ok, code = self._health_inputs()
        for action in hs.tick(now, health_ok=ok, error_code=code, link_up=link_up):
            self._do(action)
        alarm = hs.plc_alarm
        if alarm != self._alarm:
            self._alarm = alarm
            if alarm is None:
                self.health.ok("plc", self.transport.describe())
            else:
                self.health.fail("plc", alarm)
        self.status = hs.status_block()
        return self.status

    def _hold_until_durable(self, p: _Pending, plc: PlcResult, uid: str) -> None:
        p.held, p.uid = plc, uid
        with self._awaited_lock:
            self._awaited.add(uid)
        # The writer may have confirmed it before we registered interest (the listener then ignored it).
        if self.recorder.is_durable(uid):
            with self._awaited_lock:
                self._awaited.discard(uid)
            p.durable = True

    def _publish_when_durable(self, p: _Pending, now: float) -> None:
        hs = self.hs
        f = hs.flight
        if f is None or f.token != p.token:  # cannot happen: the deadline below comes first
            self._forget(p)
            return
        if p.durable:
            hs.result(p.token, p.held, now)
            self._pending = None
            return
        if now - f.started >= self.cfg.result_timeout_s:
            # Checked before hs.tick's own result timeout, so this board gets the database fault.
            self.durable_timeouts += 1
            why = f"record not durable within {self.cfg.result_timeout_s:.1f} s"
            log.error(
                "board part_seq=%d uid=%s: %s -> published to the PLC as REJECT with ERROR %d (RESULTS_VALID set); "
                "its record is still held by the recorder, in memory only, and is lost if the station dies before "
                "the database or the spool can take it",
                p.part_seq,
                p.uid,
                why,
                _DB_ERROR,
            )
            hs.latch_error(_DB_ERROR)
            hs.result(p.token, p.held.as_reject(why), now)
            self._forget(p)

    def _forget(self, p: _Pending) -> None:
        with self._awaited_lock:
            self._awaited.discard(p.uid or "")
        self._pending = None

    def _do(self, action: StartTrigger | RunCommand) -> None:
        if isinstance(action, StartTrigger):
            req = TriggerRequest(part_seq=action.part_seq, serial=action.serial or None)
            ticket = self.pipeline.trigger(req)
            self._pending = _Pending(action.token, ticket, action.part_seq)
        elif isinstance(action, RunCommand):
            threading.Thread(target=self._run_command, args=(action.recipe_id,), name="plc-recipe", daemon=True).start()

    def _run_command(self, recipe_id: int) -> None:
        ok = False
        before = self.hs.recipe_id  # the recipe the PLC sees as current (CURRENT_RECIPE)
        if self.on_recipe is None:
            log.warning("recipe %d requested by the PLC, but no recipe switcher is attached", recipe_id)
        else:
            try:
                ok = bool(self.on_recipe(recipe_id))
            except Exception:
                log.exception("switching to recipe %d failed", recipe_id)
        (log.info if ok else log.warning)("PLC recipe command %d: %s", recipe_id, "done" if ok else "FAILED")
        audit = getattr(self.recorder, "audit", None)
        if audit is not None:  # queued to the recorder's writer thread: never waits on the database
            audit(
                "plc",
                "recipe.switch" if ok else "recipe.switch_refused",
                f"recipe id {recipe_id}",
                {"recipe_id": before},
                {"recipe_id": recipe_id, "ok": ok},
                source="plc",
            )
        self._cmd_results.put((recipe_id, ok))
        self._wake()

    def _poll_interval(self) -> float:
        p = self._pending
        # While a capture is awaited, look at the ticket every millisecond (TRIGGER_ACK latency).
        return 0.001 if p is not None and not p.captured_sent else self.tick_s

    # ------------------------------------------------------------------ owner thread: the loop
    @property
    def server(self):
        """The Modbus register server of a Modbus server transport (tests, diagnostics), else None."""
        return getattr(self.transport, "server", None)

    @property
    def client(self):
        """The Modbus client of a Modbus client transport (tests, diagnostics), else None."""
        return getattr(self.transport, "client", None)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to start(), or logged if it happens later
            if not self._started.is_set():
                self._start_error = exc
                self._started.set()
            else:
                log.exception("PLC link loop crashed (%s)", self.transport.describe())
                self.health.fail("plc", f"PLC link crashed: {exc}")
        finally:
            self._loop = None
            loop.close()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._async_wake = asyncio.Event()
        transport = self.transport
        opened = False
        try:
            await transport.open(self._wake)
            opened = True
            self.port = transport.port
            await transport.publish(self._step([], True))
            self._started.set()
            while not self._stop.is_set():
                try:
                    await asyncio.wait_for(self._async_wake.wait(), transport.wait_s(self._poll_interval()))
                except TimeoutError:
                    pass
                self._async_wake.clear()
                self._thread_wake.clear()
                inbound = await transport.receive()
                await transport.publish(self._step(inbound.control, inbound.link_up, inbound.conflicts))
        finally:
            if opened or not self._started.is_set():
                await transport.close()
