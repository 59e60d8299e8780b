"""The camera supervisor: the capture thread's owner of the camera.

Why its own module: opening with backoff, triggering, grabbing, telling a stall from a slow board,
reconnecting and discarding stale frames is a state machine of its own; the pipeline only hands it a
handoff slot, a trigger queue and a way to answer a trigger that got no frame (a REJECT).
Everything here runs in the capture thread, except `stall_timeout_s` and reading `counters`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..domain import Frame
from ..health import Health
from .base import Camera, CameraError, FrameTimeout, IncompleteFrame

log = logging.getLogger(__name__)


@dataclass(slots=True)
class CaptureCounters:
    """What the camera supervisor reports; the UI and the metrics endpoint read these (never write).

    Counts are monotonic for the life of the pipeline; `fps`, `latency_ms` and `state` are current values.
    """

    frames: int = 0
    """Frames handed on to inspection."""
    dropped: int = 0
    """dropped_handoff + dropped_driver."""
    dropped_handoff: int = 0
    """Free-run frames replaced in the handoff slot before inference took them."""
    dropped_driver: int = 0
    """Frames the camera numbered but the host never received (gaps in the device frame id)."""
    incomplete: int = 0
    """Buffers with missing packets or a bad payload: counted, never inspected."""
    timeouts: int = 0
    """Grabs that got no frame within the stall timeout."""
    reconnects: int = 0
    """Times the supervisor closed and re-initialised the camera."""
    missed_triggers: int = 0
    stale: int = 0
    """Frames discarded because they were captured before a reconnect or before their trigger."""
    fps: float = 0.0
    """Delivered frame rate over the last 30 frames; 0 while stalled."""
    latency_ms: float = 0.0
    """Capture (driver arrival) to handoff of the last frame."""
    stall_timeout_s: float = 0.0
    """The watchdog timeout in use (derived from the frame rate or the trigger)."""
    state: str = "starting"
    """starting | streaming | stalled | reconnecting | stopped."""
    last_error: str = ""

    def as_dict(self) -> dict[str, float | int | str]:
        return {name: getattr(self, name) for name in self.__slots__}


#: Free-run stall timeout = STALL_PERIODS frame periods, at least MIN_STALL_S, at most the configured timeout.
STALL_PERIODS = 4.0
MIN_STALL_S = 0.25
#: `trigger = "line"`: how long before the PLC's TRIGGER write the wire's frame may have arrived and still be this
#: board's. A PLC pulses the wire and writes the register within a few scan cycles (tens of ms); a frame older than
#: this came from a spurious pulse, or from a board the PLC never announced, and is discarded as stale.
WIRE_FRAME_WINDOW_S = 0.5

#: The camera lamp's reason between opening a free-running camera and its first good frame: start-up, not a fault
#: (a camera that sends nothing goes on to "stalled ...").
WAITING_FOR_FIRST_FRAME = "opened, waiting for the first frame"

#: In triggered mode, how often an idle camera is asked whether it is still there.
IDLE_CHECK_S = 2.0


class CameraSupervisor:
    """Owns one camera in the capture thread: frames into `slot`, health component `camera`, `counters`.

    `fail_ticket(ticket, reason)` answers a trigger that got no frame; it must not block.
    """

    def __init__(
        self,
        camera: Camera,
        health: Health,
        slot: Any,
        *,
        stop: threading.Event,
        fail_ticket: Callable[[Any, str], None],
        triggered: bool = False,
        frame_timeout_s: float = 2.0,
        stall_timeouts: int = 3,
        backoff_initial_s: float = 0.5,
        backoff_max_s: float = 10.0,
        trigger_queue: int = 16,
    ):
        self.camera = camera
        self.health = health
        self.slot = slot
        self.triggered = triggered
        self.frame_timeout_s = frame_timeout_s
        self.stall_timeouts = stall_timeouts
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.counters = CaptureCounters()
        self.triggers: queue.Queue[Any] = queue.Queue(maxsize=trigger_queue)
        """Trigger tickets waiting for the capture thread (bounded: a full queue is a missed trigger)."""
        self._stop = stop
        self._fail_ticket = fail_ticket
        self._acq_id = 0
        self._fps_window: deque[float] = deque(maxlen=30)

    def stall_timeout_s(self) -> float:
        """How long a grab may wait before the watchdog counts a stall.

        Free-run: a few frame periods of the camera's nominal rate (a 10 fps camera that has sent
        nothing for 0.4 s has stalled; waiting the configured 2 s would hold the line for nothing),
        never more than the configured frame timeout. Triggered: the clock starts at the trigger and
        the configured timeout is the budget for exposure plus transfer.
        """
        fps = self.camera.nominal_fps
        if self.triggered or not fps:
            return self.frame_timeout_s
        return min(self.frame_timeout_s, max(MIN_STALL_S, STALL_PERIODS / fps))

    def _wait_backoff(self, delay: float, reason: str) -> None:
        """Sleep before the next open attempt, answering (REJECT) every trigger that arrives meanwhile."""
        end = time.monotonic() + delay
        while not self._stop.is_set():
            self.fail_pending_triggers(f"camera not available: {reason}")
            left = end - time.monotonic()
            if left <= 0:
                return
            self._stop.wait(min(0.05, left))

    def _open_camera(self) -> bool:
        """Open the camera, retrying with capped exponential backoff until it opens or the pipeline stops.

        The backoff carries over between reconnects and resets only after a good frame, so a camera
        that opens and then fails at once is not hammered at the initial rate.
        """
        delay = getattr(self, "_backoff_s", None) or self.backoff_initial_s
        attempt = 0
        while not self._stop.is_set():
            attempt += 1
            opened_at = time.monotonic()
            try:
                info = self.camera.open()
            except Exception as exc:  # CameraError, or a driver bug that must not kill the capture thread
                if not isinstance(exc, CameraError):
                    log.exception("camera open crashed")
                    exc = f"{type(exc).__name__}: {exc}"
                reason = f"cannot open (attempt {attempt}, retry in {delay:.1f} s): {exc}"
                self.counters.last_error = str(exc)
                self.health.fail("camera", reason)
                self._wait_backoff(delay, str(exc))
                delay = min(delay * 2, self.backoff_max_s)
                self._backoff_s = delay
                continue
            # Nothing captured before this moment may be inspected as a board of this session.
            self._not_before = opened_at
            self.counters.stall_timeout_s = self.stall_timeout_s()
            self._camera_detail = f"{info.width}x{info.height} {info.pixel_format}"
            if self.triggered:
                # Frames come only on triggers, and the PLC triggers only a READY station.
                self.counters.state = "streaming"
                self.health.ok("camera", self._camera_detail)
            else:
                # A camera that opens but sends only broken frames must not flap READY: free-run
                # turns READY with the first good frame.
                self.counters.state = "starting"
                self.health.fail("camera", WAITING_FOR_FIRST_FRAME, self._camera_detail)
            return True
        return False

    def _declare_stall(self, failures: int, exc: Exception) -> None:
        self.counters.fps = 0.0
        self._fps_window.clear()
        self.counters.state = "stalled"
        self.counters.last_error = str(exc)
        what = f"({failures}/{self.stall_timeouts}): {exc}"
        if self.triggered:
            # Frames only come on triggers and a PLC only triggers a READY station: NOT READY here
            # would never clear. The missed board is already REJECTed; READY drops when the
            # supervisor re-initialises (after `stall_timeouts` misses in a row).
            self.health.ok("camera", f"missed trigger {what}")
        else:
            self.health.fail("camera", f"stalled {what}")

    def run(self) -> None:
        """The capture thread: until `stop` is set."""
        failures = 0
        self._backoff_s = self.backoff_initial_s
        self._not_before = 0.0
        last_alive = time.monotonic()
        try:
            if not self._open_camera():
                return
            while not self._stop.is_set():
                ticket: Any = None
                if self.triggered:
                    try:
                        ticket = self.triggers.get(timeout=0.05)
                    except queue.Empty:
                        # Idle between boards: make sure the camera is still there, so the PLC sees
                        # NOT READY before it sends the next board, not after.
                        if time.monotonic() - last_alive > IDLE_CHECK_S:
                            last_alive = time.monotonic()
                            lost = None
                            try:
                                self.camera.check()
                            except CameraError as exc:
                                lost = f"idle check failed: {exc}"
                            if lost:
                                self._reconnect(lost)
                        continue
                    fired_at = time.monotonic()
                    by_wire = self.camera.fired_by_wire
                    lost = None
                    try:
                        if not by_wire:  # the frames queued so far were taken before this trigger
                            self.camera.flush()
                        fired_at = time.monotonic()
                        self.camera.trigger()
                    except CameraError as exc:
                        lost = str(exc)
                    except Exception as exc:  # noqa: BLE001 - a driver's own exception (GenTL) is a lost camera too
                        # Outside this guard it ended the capture thread: no reconnect, no later board answered.
                        log.warning("camera flush/trigger raised %s: %s", type(exc).__name__, exc)
                        lost = f"{type(exc).__name__}: {exc}"
                    if lost:
                        self.counters.missed_triggers += 1
                        self._fail_ticket(ticket, f"camera error: {lost}")
                        self._reconnect(lost)
                        failures = 0
                        continue
                    not_before = max(self._not_before, fired_at - 0.001)
                    if by_wire:
                        # The wire's frame and the PLC's TRIGGER write are not ordered: the frame may already
                        # be here. Take one that arrived since shortly before the ticket; older ones are a
                        # spurious pulse or a board the PLC never announced (stale).
                        not_before = max(self._not_before, ticket.issued_at - WIRE_FRAME_WINDOW_S)
                    skip = 0
                    if not self.camera.triggered:
                        not_before, skip = self._after_frame_in_flight(not_before)
                else:
                    not_before, skip = self._not_before, 0
                timeout = self.stall_timeout_s()
                deadline = time.monotonic() + timeout
                # Reconnects happen after the except blocks: a live exception's traceback can hold
                # driver objects (and so the device's control channel) that must be released first.
                lost = None
                try:
                    while True:
                        try:
                            grab = self.camera.grab(max(0.001, deadline - time.monotonic()))
                        except IncompleteFrame:
                            # A free-running camera serving a trigger: the broken frame was in flight
                            # at the flush, i.e. started before the trigger. A camera fired by wire is not
                            # flushed: the broken frame may be an earlier pulse's. Count it, wait for the next.
                            waits = ticket is not None and (not self.camera.triggered or self.camera.fired_by_wire)
                            if not waits or time.monotonic() >= deadline:
                                raise
                            self.counters.incomplete += 1
                            continue
                        ts = float(grab.meta.get("timestamp", time.monotonic()))
                        if ts >= not_before and skip <= 0:
                            break
                        skip -= 1
                        # Captured before the reconnect (or before this trigger): never a new board.
                        self.counters.stale += 1
                        if time.monotonic() >= deadline:
                            raise FrameTimeout(f"only stale frames within {timeout:.2f} s")
                except (FrameTimeout, IncompleteFrame) as exc:
                    if isinstance(exc, IncompleteFrame):
                        self.counters.incomplete += 1
                    else:
                        self.counters.timeouts += 1
                    failures += 1
                    if ticket is not None:
                        self.counters.missed_triggers += 1
                        self._fail_ticket(ticket, f"no frame: {exc}")
                    if isinstance(exc, FrameTimeout) or failures > 1:
                        self._declare_stall(failures, exc)
                    if failures >= self.stall_timeouts:
                        lost = f"{failures} consecutive failures: {exc}"
                    else:
                        continue
                except CameraError as exc:
                    if ticket is not None:
                        self.counters.missed_triggers += 1
                        self._fail_ticket(ticket, f"camera error: {exc}")
                    lost = str(exc)
                except Exception as exc:  # noqa: BLE001 - a driver's own exception: the board is a REJECT, reconnect
                    log.warning("camera grab raised %s: %s", type(exc).__name__, exc)
                    if ticket is not None:
                        self.counters.missed_triggers += 1
                        self._fail_ticket(ticket, f"camera error: {type(exc).__name__}: {exc}")
                    lost = f"{type(exc).__name__}: {exc}"
                if lost is not None:
                    self._reconnect(lost)
                    failures = 0
                    continue
                failures = 0
                self._backoff_s = self.backoff_initial_s
                now = time.monotonic()
                last_alive = now
                self._fps_window.append(now)
                if len(self._fps_window) > 1:
                    span = self._fps_window[-1] - self._fps_window[0]
                    self.counters.fps = (len(self._fps_window) - 1) / span if span > 0 else 0.0
                self._acq_id += 1
                self.counters.frames += 1
                meta = dict(grab.meta)
                gap = int(meta.pop("dropped_before", 0) or 0)
                if self.triggered and not self.camera.triggered:
                    gap = 0  # a free-running camera serving triggers skips frames between boards by design
                meta["camera_session"] = self.counters.reconnects
                frame = Frame(
                    id=self._acq_id,
                    timestamp=float(meta.pop("timestamp", now)),
                    image=grab.image,
                    meta=meta,
                    trigger_id=ticket.trigger_id if ticket else None,
                )
                if ticket is not None:
                    ticket.acq_id = frame.id
                    ticket.captured.set()
                detail = getattr(self, "_camera_detail", None)
                if (h := self.health.get("camera")) is None or not h.ok or (detail and h.detail != detail):
                    self.health.ok("camera", detail)
                self.counters.state = "streaming"
                overflow = self.slot.put(frame)
                self.counters.latency_ms = (time.monotonic() - frame.timestamp) * 1000
                self.counters.dropped_driver += gap
                self.counters.dropped_handoff = self.slot.dropped
                self.counters.dropped = self.counters.dropped_handoff + self.counters.dropped_driver
                if overflow is not None and ticket is not None:
                    self._fail_ticket(ticket, "inference backlog full")
        except Exception as exc:
            log.exception("capture thread crashed")
            self.health.fail("camera", f"capture thread crashed: {exc}")
        finally:
            self.counters.state = "stopped"
            self.counters.fps = 0.0
            try:
                self.camera.close()
            except Exception:
                log.exception("camera close failed")

    def _after_frame_in_flight(self, not_before: float) -> tuple[float, int]:
        """A free-running camera serving a trigger: when its answer may arrive, and how many frames to pass over.

        Frame timestamps are arrival times (the driver's last packet), and the frame in transfer at the trigger
        arrives after it although the camera exposed it before (measured with the fake GigE camera's capture
        clock, 2048 px frames at 10 fps: 5 of 30 boards answered by a frame taken 8-29 ms before the trigger;
        on a line, a board still moving into place, or the previous one). So the answer is a frame that arrives
        at least one frame interval after the trigger: exposed after it whenever exposure, readout and transfer
        take less than a frame interval. Without a known frame rate, the first complete frame is passed over
        instead. A camera whose frames take longer than an interval to arrive should be triggered
        (`trigger = "software"` or `"line"`): then it exposes only on the trigger.
        """
        fps = self.camera.nominal_fps
        if fps and fps > 0:
            return max(not_before, time.monotonic() + 1.0 / fps), 0
        return not_before, 1

    def _reconnect(self, reason: str) -> None:
        self.health.fail("camera", f"lost: {reason}; reconnecting")
        self.counters.state = "reconnecting"
        self.counters.last_error = reason
        self.counters.fps = 0.0
        self._fps_window.clear()
        self.counters.reconnects += 1
        try:
            self.camera.close()
        except Exception:
            log.exception("camera close failed during reconnect")
        # Frames from before the loss must never be inspected as new boards.
        self.counters.stale += self.slot.clear()
        self.fail_pending_triggers(f"camera lost: {reason}")
        self._open_camera()

    def fail_pending_triggers(self, reason: str) -> None:
        while True:
            try:
                ticket = self.triggers.get_nowait()
            except queue.Empty:
                return
            self.counters.missed_triggers += 1
            self._fail_ticket(ticket, reason)
