"""The station's data path: capture thread -> latest-frame handoff -> inference thread -> sinks.

Ownership (one thread per resource):
- the capture thread owns the camera: it opens, grabs, triggers, reconnects
  (`inspector.capture.supervisor.CameraSupervisor`);
- the inference thread owns the detector (the LiteRT interpreter is not thread-safe);
- sinks own their resources (the database writer thread, the PLC link thread, the UI thread).
  `submit` on a sink must return at once: nothing downstream may block inference.

Results leave by one route (`_publish`): the triggering caller's ticket is completed, then every
sink gets the result in the order added; `on_result` functions are sinks whose failures are only
logged.

Fail-safe: a trigger whose frame never arrives, a frame the detector cannot process, or a model
that is not loaded each yields a REJECT result with a reason, published like any other result.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from .board_serial import SerialStep
from .capture.base import Camera
from .capture.supervisor import CameraSupervisor, CaptureCounters
from .decision import RecipeRules, to_gray8
from .detect.base import Detector, DetectorInfo, ModelError
from .detect.prepare import ImageDomainError
from .domain import Frame, InspectionResult, TriggerRequest
from .health import Health
from .inspection import Registrar, inspect_board, map_boxes
from .latest import Latest
from .registration import UNREGISTERED, BoardRegistrar
from .repeat_watch import RepeatedDefectWatch

log = logging.getLogger(__name__)


@dataclass
class _Listener:
    """A plain function in the fan-out (`Pipeline.on_result`)."""

    fn: Callable[[InspectionResult], None]

    @property
    def name(self) -> str:
        return getattr(self.fn, "__qualname__", repr(self.fn))

    def submit(self, result: InspectionResult) -> None:
        self.fn(result)


class ResultSink(Protocol):
    name: str

    def submit(self, result: InspectionResult) -> None:
        """Take the result and return at once (queue it); never block the inference thread."""


class LatestFrameSlot(Latest[Frame]):
    """Capture -> inference handoff: in free-run the newest frame wins and the replaced one is counted
    (`inspector.latest.Latest`, the handoff the UI bridge and the calibration feed use too).

    Triggered frames go to a bounded FIFO instead, because every triggered board must get a result.
    """

    def __init__(self, triggered_capacity: int = 8):
        super().__init__()
        self._triggered: deque[Frame] = deque()
        self._capacity = triggered_capacity

    def put(self, frame: Frame) -> Frame | None:
        """Offer a frame; returns a triggered frame that could not be queued (caller rejects it)."""
        if frame.trigger_id is None:
            super().put(frame)
            return None
        with self._cond:
            if len(self._triggered) >= self._capacity:
                return frame
            self._triggered.append(frame)
            self._cond.notify_all()
            return None

    def _ready(self) -> bool:
        return bool(self._triggered) or super()._ready()

    def take(self, timeout: float = 0.0) -> Frame | None:
        with self._cond:  # a re-entrant lock: the free-run take below runs under it too
            if timeout > 0:
                self._cond.wait_for(lambda: self._closed or self._ready(), timeout)
            if self._triggered:
                self.delivered += 1
                return self._triggered.popleft()
            return super().take()

    def clear(self) -> int:
        with self._cond:
            n = len(self._triggered)
            self._triggered.clear()
            return n + super().clear()

    def __len__(self) -> int:
        with self._cond:
            return len(self._triggered) + super().__len__()


@dataclass(slots=True)
class TriggerTicket:
    """Handed back to whoever triggered (the PLC link): follows one board through the pipeline."""

    trigger_id: int
    request: TriggerRequest
    issued_at: float = field(default_factory=time.monotonic)
    captured: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    acq_id: int | None = None
    result: InspectionResult | None = None


class Pipeline:
    """Runs one camera and one detector under a recipe, and fans results out to sinks."""

    def __init__(
        self,
        camera: Camera,
        detector: Detector,
        rules: RecipeRules,
        health: Health | None = None,
        sinks: list[ResultSink] | None = None,
        *,
        triggered: bool = False,
        frame_timeout_s: float = 2.0,
        stall_timeouts: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        registrar: Registrar | None = None,
        keep_images: bool = True,
        repeat: RepeatedDefectWatch | None = None,
    ):
        self._detector = detector
        self._next_detector: Detector | None = None
        self.rules = rules
        self._next_rules: RecipeRules | None = None
        self.health = health or Health()
        self.sinks: list[ResultSink] = list(sinks or [])
        self.triggered = triggered
        # Registration is on whenever a reference is used: a board is never judged against a reference
        # that does not lie over it. One registrar per pipeline (it keeps the last pose).
        self.registrar: Registrar = registrar if registrar is not None else BoardRegistrar()
        self.keep_images = keep_images
        # The same defect at the same place on board after board is the station's or the line's fault (dust on the
        # lens, a process fault upstream): None never watches for it.
        self.repeat = repeat

        self.slot = LatestFrameSlot()
        self._stop = threading.Event()
        # The capture thread's side (camera, reconnects, triggers waiting for a frame) is the supervisor's.
        self.supervisor = CameraSupervisor(
            camera,
            self.health,
            self.slot,
            stop=self._stop,
            fail_ticket=self._fail_ticket,
            triggered=triggered,
            frame_timeout_s=frame_timeout_s,
            stall_timeouts=stall_timeouts,
            backoff_initial_s=backoff_initial_s,
            backoff_max_s=backoff_max_s,
        )
        self.counters: CaptureCounters = self.supervisor.counters
        self.results_published = 0
        self.detector_info: DetectorInfo | None = None
        self._trigger_seq = 0
        self._tickets: dict[int, TriggerTicket] = {}
        self._tickets_lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._swap_lock = threading.Lock()
        self._board_faults: dict[str, int] = {}
        self._serial = SerialStep()

    # ------------------------------------------------------------------ control
    def add_sink(self, sink: ResultSink) -> None:
        self.sinks.append(sink)

    def start(self) -> None:
        if self._threads:
            raise RuntimeError("pipeline already started")
        self._stop.clear()
        self.health.fail("camera", "starting")
        self.health.fail("model", "loading")
        if self.repeat is not None:  # watched from the first board: its alarm is a fault, not a part coming up
            self.health.ok("repeat", f"{self.repeat.boards} boards in a row")
        self._threads = [
            threading.Thread(target=self._inference_loop, name="inference", daemon=True),
            threading.Thread(target=self.supervisor.run, name="capture", daemon=True),
        ]
        for t in self._threads:
            t.start()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop both threads; the board being inferred is finished and published first."""
        self._stop.set()
        with self.slot._cond:
            self.slot._cond.notify_all()
        deadline = time.monotonic() + timeout
        for t in self._threads:
            t.join(max(0.1, deadline - time.monotonic()))
            if t.is_alive():
                log.error("thread %s did not stop within %.1f s", t.name, timeout)
        alive = [t.name for t in self._threads if t.is_alive()]
        self._threads = []
        # Triggered boards still waiting get a REJECT so the PLC is never left without an answer.
        with self._tickets_lock:
            pending = list(self._tickets.values())
            self._tickets.clear()
        for ticket in pending:
            self._publish(
                InspectionResult.failed("station stopped", trigger=ticket.request, recipe=self.rules.name), ticket
            )
        if alive:
            raise RuntimeError(f"threads still running after stop: {alive}")

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def trigger(self, request: TriggerRequest | None = None) -> TriggerTicket:
        """Ask for one board (PLC TRIGGER); the ticket reports capture and result.

        If the trigger cannot even be queued, the ticket is completed at once with a REJECT.
        """
        request = request or TriggerRequest()
        with self._tickets_lock:
            self._trigger_seq += 1
            ticket = TriggerTicket(self._trigger_seq, request)
            self._tickets[ticket.trigger_id] = ticket
        try:
            self.supervisor.triggers.put_nowait(ticket)
        except queue.Full:
            self.counters.missed_triggers += 1
            self._fail_ticket(ticket, "trigger queue full")
        return ticket

    def set_recipe(self, rules: RecipeRules) -> None:
        """Switch the recipe between two boards (never in the middle of one)."""
        with self._swap_lock:
            self._next_rules = rules

    @property
    def current_rules(self) -> RecipeRules:
        """The recipe the next board is judged by: one switched to but not yet applied counts.

        What the station runs is asked here, not remembered elsewhere, so the PLC and the UI, which both
        switch recipes, cannot come to believe different ones."""
        with self._swap_lock:
            return self._next_rules or self.rules

    def swap_detector(self, detector: Detector) -> None:
        """Use an already loaded and warmed-up detector from the next board on."""
        with self._swap_lock:
            self._next_detector = detector

    def on_result(self, fn: Callable[[InspectionResult], None]) -> None:
        """Add a plain function as a sink (UI views, tests): called in the inference thread, must not
        block; unlike a station sink, its failure is logged and is not a station fault."""
        self.sinks.append(_Listener(fn))

    @property
    def camera(self) -> Camera:
        """The camera the supervisor owns (read-only from other threads)."""
        return self.supervisor.camera

    def stall_timeout_s(self) -> float:
        return self.supervisor.stall_timeout_s()

    # ------------------------------------------------------------------ inference
    def _load_detector(self, detector: Detector) -> DetectorInfo | None:
        try:
            info = detector.load()
            detector.warm_up()
            self.health.ok("model", info.backend, warning=info.warning)
            return info
        except ModelError as exc:
            self.health.fail("model", str(exc))
        except Exception as exc:
            log.exception("model load crashed")
            self.health.fail("model", f"{type(exc).__name__}: {exc}")
        return None

    def _inference_loop(self) -> None:
        self.detector_info = self._load_detector(self._detector)
        while not self._stop.is_set():
            frame = self.slot.take(timeout=0.1)
            if frame is None:
                continue
            with self._swap_lock:
                if self._next_detector is not None:
                    old, self._detector = self._detector, self._next_detector
                    self._next_detector = None
                    self.detector_info = self._detector.info
                    self.health.ok("model", self.detector_info.backend, warning=self.detector_info.warning)
                    try:
                        old.close()
                    except Exception:
                        log.exception("closing the old detector failed")
                if self._next_rules is not None:
                    self.rules, self._next_rules = self._next_rules, None
                    if self.repeat is not None:  # another product: its defects are not the last one's
                        self.repeat.reset()
            result = self._inspect(frame)
            ticket = None
            if frame.trigger_id is not None:
                with self._tickets_lock:
                    ticket = self._tickets.get(frame.trigger_id)
            self._publish(result, ticket)
        self._serial.close()
        # Frames left in the slot at stop: triggered ones still need their REJECT (done in stop()).

    def _inspect(self, frame: Frame) -> InspectionResult:
        t0 = time.monotonic()
        ticket_req = TriggerRequest()
        if frame.trigger_id is not None:
            with self._tickets_lock:
                t = self._tickets.get(frame.trigger_id)
            if t is not None:
                ticket_req = t.request
        rules = self.rules
        info = self.detector_info
        common = dict(frame_id=frame.id, recipe=rules.name, trigger=ticket_req, captured_at=frame.timestamp)
        if info is None:
            return InspectionResult.failed("model not loaded", model_id="", **common)
        timings: dict[str, float] = {"queue": (t0 - frame.timestamp) * 1000}
        try:
            image = to_gray8(frame.image, f"frame {frame.id}", getattr(info, "colour", "red"))
            reference = frame.meta.get("reference")
            reader = self._serial.reader(rules.recipe.code)
            board = inspect_board(
                image,
                reference,
                rules,
                self._detector,
                self.registrar,
                code_reader=reader,
                plc_serial=ticket_req.serial,
            )
        except ImageDomainError as exc:
            # The image, not the station: an over-exposed capture, a frame type the model cannot take. A REJECT
            # with the reason on every such board, and after a few in a row the operator sees it as a fault.
            log.warning("frame %d not inspected: %s", frame.id, exc)
            self._board_fault("image", str(exc))
            failed = InspectionResult.failed(f"image not inspectable: {exc}", model_id=info.model_id, **common)
            failed.frame_meta = {k: v for k, v in frame.meta.items() if k != "reference"}  # which board it was
            return failed
        except Exception as exc:
            log.exception("inspection of frame %d failed", frame.id)
            self._board_fault("pipeline", f"inspection failed: {exc}")
            failed = InspectionResult.failed(f"inspection failed: {exc}", model_id=info.model_id, **common)
            failed.frame_meta = {k: v for k, v in frame.meta.items() if k != "reference"}
            return failed
        timings.update(board.timings_ms)
        if not board.inspected:
            why = board.reason or "not inspected"
            if why.startswith(UNREGISTERED):
                log.warning("frame %d: %s", frame.id, why)
                self._board_fault("registration", why)
            failed = InspectionResult.failed(why, model_id=info.model_id, timings_ms=timings, **common)
            failed.frame_meta = {k: v for k, v in frame.meta.items() if k != "reference"}  # which board it was
            return failed
        if board.registration is not None:
            self._board_ok("registration", f"quality {board.registration.quality:.2f}")
        # Triggered boards only: free-running, the camera shows a board that stands still frame after frame.
        if self.repeat is not None and frame.trigger_id is not None:
            in_board = None
            if board.board_to_frame is not None and board.detections:
                to_board = np.linalg.inv(board.board_to_frame)
                in_board = [(d.box, d.label) for d in map_boxes(board.detections, to_board)]
            repeated = self.repeat.observe(((d.box, d.label) for d in board.detections), in_board)
            if repeated is not None:
                log.warning("frame %d: %s", frame.id, repeated.reason)
                self._board_faults["repeat"] = repeated.boards  # CLEAR (clear_faults) takes it back
                self.health.fail("repeat", repeated.reason)
        self._board_ok("pipeline")
        if "image" in self._board_faults:
            self._board_ok("image")
        timings["inspect"] = (time.monotonic() - t0) * 1000
        timings["total"] = (time.monotonic() - frame.timestamp) * 1000
        serial = board.serial
        reference = board.reference
        return InspectionResult(
            frame_id=frame.id,
            recipe=rules.name,
            severity=rules.severity,
            verdict=board.verdict,
            detections=board.detections,
            timings_ms=timings,
            model_id=info.model_id,
            board_serial=serial.serial if serial else ticket_req.serial,
            part_seq=ticket_req.part_seq,
            reason=board.reason,
            captured_at=frame.timestamp,
            image=frame.image if self.keep_images else None,
            reference=reference if self.keep_images and isinstance(reference, np.ndarray) else None,
            frame_meta={k: v for k, v in frame.meta.items() if k != "reference"},
        )

    # ------------------------------------------------------------------ board-level faults
    #: Consecutive failed boards (same cause) before the station drops READY. One board that cannot
    #: be registered or inspected is a REJECT with its reason, not a station fault; three in a row
    #: are systematic (fixture moved, wrong product, broken model) and stop the line until cleared.
    BOARD_FAULT_LIMIT = 3

    def _board_fault(self, component: str, reason: str) -> None:
        n = self._board_faults.get(component, 0) + 1
        self._board_faults[component] = n
        if n >= self.BOARD_FAULT_LIMIT:
            self.health.fail(component, f"{n} boards in a row: {reason}")

    def _board_ok(self, component: str, detail: str = "") -> None:
        self._board_faults[component] = 0
        h = self.health.get(component)
        if h is None or not h.ok or (detail and h.detail != detail):
            self.health.ok(component, detail)

    def clear_faults(self) -> None:
        """Operator or PLC CLEAR_ERROR: forget board-level faults so the next board is tried again."""
        if self.repeat is not None:
            self.repeat.reset()
        for component in list(self._board_faults):
            self._board_faults[component] = 0
            h = self.health.get(component)
            if h is not None and not h.ok:
                self.health.ok(component, "cleared")

    # ------------------------------------------------------------------ results
    def _fail_ticket(self, ticket: TriggerTicket, reason: str) -> None:
        result = InspectionResult.failed(
            reason,
            trigger=ticket.request,
            recipe=self.rules.name,
            model_id=self.detector_info.model_id if self.detector_info else "",
        )
        self._publish(result, ticket)

    def _publish(self, result: InspectionResult, ticket: TriggerTicket | None) -> None:
        """The one way a result leaves: the trigger's ticket (if any) is completed with it first, then
        it fans out to every sink in the order added (records, calibration, PLC link, metrics, UI)."""
        if ticket is not None:
            with self._tickets_lock:
                self._tickets.pop(ticket.trigger_id, None)
            if ticket.done.is_set():
                return
            if not result.board_serial:  # a serial read from the board's code is kept
                result.board_serial = ticket.request.serial
            result.part_seq = ticket.request.part_seq
            ticket.result = result
            ticket.done.set()
        self.results_published += 1
        for sink in list(self.sinks):
            try:
                sink.submit(result)
            except Exception as exc:
                if isinstance(sink, _Listener):
                    log.exception("result listener %s failed", sink.name)
                else:  # a failing station sink (records, PLC, metrics) is a station fault, not a lost board
                    log.exception("sink %s failed", getattr(sink, "name", sink))
                    self.health.fail(getattr(sink, "name", "sink"), f"submit failed: {exc}")
