"""Worker-side adapter from the pipeline to the GUI thread.

Why a thread of its own and one frame in flight:
- the inference thread must never wait for the GUI, so `submit` only updates counters and swaps
  the latest result into a one-slot holder (the older one is dropped and counted);
- the bridge thread converts that result into an *owned* `QImage` (`QImage(...).copy()`, made
  here, never a shallow QImage over a numpy buffer that the next frame may free), scaled down to
  what the screen can show, and emits it at most `display_fps` times per second;
- it emits the next update only after the GUI has drawn the previous one (`ack`), so a busy or
  stalled GUI never accumulates frames in Qt's event queue: memory stays flat however long it runs.
Counters and the last-20 strip are exact (every result counts), only pictures are dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np
from PySide6.QtCore import QObject, Signal
from PySide6.QtGui import QImage

from inspector.board_serial import CODE_UNREADABLE, SERIAL_MISMATCH
from inspector.domain import DEFAULT_SEVERITY, Detection, InspectionResult, Verdict
from inspector.health import ComponentState, Health
from inspector.latest import Latest
from inspector.shifts import DEFAULT_PLAN, ShiftPlan

log = logging.getLogger(__name__)

#: The plant's shift plan (`storage.shift_starts`, `storage.timezone`, set by `configure_shifts` at UI
#: start; parsed by inspector.shifts). Counters reset when a new shift starts.
_PLAN: ShiftPlan = DEFAULT_PLAN


def configure_shifts(starts: list[str], tz: str | None = None) -> None:
    """Use the plant's shift starts ("HH:MM", local to `tz`; None: the system's zone)."""
    global _PLAN
    _PLAN = ShiftPlan.parse(starts, tz)


def shift_start(now: datetime | None = None) -> datetime:
    """Start of the shift `now` belongs to; a shift that runs past midnight started the day before.

    Returned in the plant's zone when one is configured, else as naive local time like `now`.
    """
    return _PLAN.start_of(now)


@dataclass(frozen=True, slots=True)
class ResultSummary:
    """What the GUI shows of one board: no pixels, so keeping twenty of them costs nothing."""

    uid: str
    frame_id: int
    verdict: Verdict
    serial: str | None
    recipe: str
    cycle_ms: float
    detections: tuple[Detection, ...]
    reason: str | None
    timestamp: datetime
    model_id: str
    image_size: tuple[int, int] | None
    """(width, height) of the original frame, when there was one."""
    severity: tuple[int, ...] = DEFAULT_SEVERITY
    """Class ids, most severe first (the recipe's order): the headline names the most severe first."""

    @classmethod
    def of(cls, r: InspectionResult) -> ResultSummary:
        size = (int(r.image.shape[1]), int(r.image.shape[0])) if r.image is not None else None
        return cls(
            r.uid,
            r.frame_id,
            r.verdict,
            r.board_serial,
            r.recipe,
            r.cycle_ms,
            tuple(r.detections),
            r.reason,
            r.timestamp,
            r.model_id,
            size,
            tuple(r.severity),
        )

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS


@dataclass(frozen=True, slots=True)
class ShiftCounts:
    inspected: int = 0
    passed: int = 0
    rejected: int = 0
    boards_per_min: float = 0.0
    shift_started: datetime | None = None
    serial_mismatch: int = 0
    """Boards rejected because the code read on them differs from the PLC's serial."""
    code_unreadable: int = 0
    """Boards rejected because their recipe requires a board code and none could be read."""

    @property
    def yield_pct(self) -> float | None:
        return 100.0 * self.passed / self.inspected if self.inspected else None


@dataclass(frozen=True, slots=True)
class LiveUpdate:
    """One GUI refresh: the newest picture (owned QImage) and the exact counters."""

    seq: int
    image: QImage | None
    image_scale: float
    """Displayed image pixels per original frame pixel (boxes are in frame pixels)."""
    latest: ResultSummary | None
    counts: ShiftCounts
    recent: tuple[ResultSummary, ...]
    camera_fps: float
    frames_dropped: int
    """Results whose picture was never shown (throttling): expected, not an error."""
    display: QImage | None = None
    """`image` already scaled to the live view's size, in the screen's native 32-bit format (see
    `UiBridge.set_display_size`): the GUI thread blits it instead of scaling and converting."""


def to_owned_qimage(image: np.ndarray, max_side: int) -> tuple[QImage, float]:
    """Owned QImage of `image`, shrunk so its longer side is at most `max_side`; and the scale used."""
    h, w = image.shape[:2]
    scale = min(1.0, max_side / max(h, w))
    if scale < 1.0:
        image = cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    image = np.ascontiguousarray(image)
    if image.ndim == 2:
        fmt = QImage.Format.Format_Grayscale8
    elif image.shape[2] == 3:
        fmt = QImage.Format.Format_BGR888
    elif image.shape[2] == 4:
        fmt = QImage.Format.Format_ARGB32
    else:
        raise ValueError(f"cannot display an image of shape {image.shape}")
    return _owned(image, fmt), scale


def _owned(array: np.ndarray, fmt: QImage.Format) -> QImage:
    """A QImage that owns its pixels: the wrapper borrows `array`'s memory, copy() detaches it
    before `array` can be freed."""
    shallow = QImage(array.data, array.shape[1], array.shape[0], int(array.strides[0]), fmt)
    owned = shallow.copy()
    del shallow
    return owned


def to_display_qimage(image: np.ndarray, size: tuple[int, int]) -> QImage:
    """Owned RGB32 QImage of `image` fitted (aspect kept) into `size`: a painter draws it 1:1.

    Painting a Grayscale8 frame scaled with smooth transformation makes Qt convert and resample the
    whole image on the GUI thread at every paint (a median 4-5 ms and outliers of tens of ms on this
    2-core machine). Done here, the paint is a plain copy.
    """
    h, w = image.shape[:2]
    s = min(size[0] / w, size[1] / h)
    tw, th = max(1, round(w * s)), max(1, round(h * s))
    if image.dtype == np.uint16:
        image = (image >> 8).astype(np.uint8)
    interp = cv2.INTER_AREA if s < 1.0 else cv2.INTER_LINEAR
    small = cv2.resize(image, (tw, th), interpolation=interp) if (tw, th) != (w, h) else image
    if small.ndim == 2:
        bgra = cv2.cvtColor(small, cv2.COLOR_GRAY2BGRA)
    elif small.shape[2] == 3:
        bgra = cv2.cvtColor(small, cv2.COLOR_BGR2BGRA)
    elif small.shape[2] == 4:
        bgra = np.ascontiguousarray(small)
    else:
        raise ValueError(f"cannot display an image of shape {image.shape}")
    return _owned(bgra, QImage.Format.Format_RGB32)


class UiBridge(QObject):
    """Pipeline result listener (or sink) and Health listener that feeds the GUI through signals."""

    updated = Signal(object)
    """LiveUpdate, emitted from the bridge thread (queued to the GUI)."""
    health_changed = Signal(object)
    """ComponentState, emitted from whichever thread changed it (queued to the GUI)."""

    name = "ui"

    def __init__(self, display_fps: float = 15.0, max_side: int = 1600, recent: int = 20, clock=time.monotonic):
        super().__init__()
        self.period = 1.0 / display_fps
        self.max_side = max_side
        self._clock = clock
        self._cond = threading.Condition()
        """Guards the counters and the recent list; the newest result waits in `_slot`."""
        self._slot: Latest[InspectionResult | None] = Latest(gated=True)
        """The newest result for the picture (None: only the counters changed); the GUI acks each update."""
        self._stop = False
        self._recent: deque[ResultSummary] = deque(maxlen=recent)
        self._times: deque[float] = deque(maxlen=20000)
        self._inspected = self._passed = self._rejected = self._serial_mismatch = self._code_unreadable = 0
        self._shift = shift_start(datetime.now())
        self._seq = 0
        self._latest_summary: ResultSummary | None = None
        self.frames_dropped = 0
        self.emitted = 0
        self.submitted = 0
        self._fps_source = None
        self._thread: threading.Thread | None = None
        self._display_size: tuple[int, int] | None = None

    # -------------------------------------------------------------- wiring
    def attach(self, pipeline, health: Health | None = None) -> None:
        """Listen to a pipeline's results and (by default) its Health."""
        pipeline.on_result(self.submit)
        self._fps_source = pipeline.counters
        self.attach_health(health or pipeline.health)

    def attach_health(self, health: Health) -> None:
        health.subscribe(self.health_changed.emit)
        for state in health.snapshot().values():
            self.health_changed.emit(state)

    def set_display_size(self, width: int, height: int) -> None:
        """The live view's size in pixels (GUI thread, on resize): later updates carry a `display`
        image made for it. One tuple assignment, read whole by the bridge thread."""
        self._display_size = (int(width), int(height)) if width > 0 and height > 0 else None

    def start(self) -> None:
        if self._thread is None:
            self._stop = False
            self._slot.open()
            self._thread = threading.Thread(target=self._run, name="ui-bridge", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._slot.close()  # wakes the bridge thread
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    # -------------------------------------------------------------- worker side
    def submit(self, result: InspectionResult) -> None:
        """Called in the inference thread: O(1), never blocks on the GUI."""
        summary = ResultSummary.of(result)
        now = self._clock()
        with self._cond:
            self.submitted += 1
            self._roll_shift()
            self._inspected += 1
            if result.passed:
                self._passed += 1
            else:
                self._rejected += 1
                reason = result.reason or ""
                if reason.startswith(SERIAL_MISMATCH):
                    self._serial_mismatch += 1
                elif reason.startswith(CODE_UNREADABLE):
                    self._code_unreadable += 1
            self._times.append(now)
            self._recent.append(summary)
            self._latest_summary = summary
            replaced = self._slot.put(result)
            if replaced is not None and replaced.image is not None:
                self.frames_dropped += 1

    @property
    def shift(self) -> datetime:
        """Start of the shift the counters belong to."""
        with self._cond:
            return self._shift

    def seed_counts(
        self, shift: datetime, inspected: int, passed: int, serial_mismatch: int = 0, code_unreadable: int = 0
    ) -> bool:
        """Start the counters from the boards already recorded in `shift` (a UI restarted mid-shift). Refused,
        returning False, once a board has been counted or when the shift is no longer the running one: the
        recorded boards would then be counted twice, or for the wrong shift."""
        with self._cond:
            self._roll_shift()
            if self.submitted or shift != self._shift:
                return False
            self._inspected, self._passed = inspected, passed
            self._rejected = inspected - passed
            self._serial_mismatch, self._code_unreadable = serial_mismatch, code_unreadable
        self._slot.poke(None)
        return True

    def reset_counters(self) -> None:
        with self._cond:
            self._inspected = self._passed = self._rejected = self._serial_mismatch = self._code_unreadable = 0
            self._times.clear()
            self._shift = shift_start(datetime.now())
        self._slot.poke(None)  # send the reset counters, without dropping a picture that is waiting

    def _roll_shift(self) -> bool:
        start = shift_start(datetime.now())
        if start != self._shift:
            self._shift = start
            self._inspected = self._passed = self._rejected = self._serial_mismatch = self._code_unreadable = 0
            self._times.clear()
            return True
        return False

    def _idle_tick(self) -> None:
        """No result for half a second (bridge thread): the counts must still follow the clock. A shift that began
        on an idle line showed the last shift's counts until its first board, and boards/min stayed at the rate
        of the last minute the line ran."""
        now = self._clock()
        with self._cond:
            rolled = self._roll_shift()
            aged = bool(self._times) and now - self._times[0] > 60.0
        if rolled or aged:
            self._slot.poke(None)

    def _counts(self, now: float) -> ShiftCounts:
        while self._times and now - self._times[0] > 60.0:
            self._times.popleft()
        rate = 0.0
        if len(self._times) >= 2:
            span = max(now - self._times[0], 1e-3)
            rate = (len(self._times) - 1) / span * 60.0
        return ShiftCounts(
            self._inspected,
            self._passed,
            self._rejected,
            rate,
            self._shift,
            self._serial_mismatch,
            self._code_unreadable,
        )

    def ack(self) -> None:
        """GUI thread: the last update is drawn; the next one may be sent."""
        self._slot.ack()

    def _run(self) -> None:
        last = 0.0
        while True:
            if not self._slot.wait(0.5):
                if self._stop:
                    return
                self._idle_tick()
                continue
            wait = last + self.period - self._clock()
            if wait > 0:
                time.sleep(wait)  # throttle outside any lock: submit never waits for this
            if self._stop:
                return
            result = self._slot.take()  # the newest, also when one arrived during the throttle
            with self._cond:
                summary = self._latest_summary
                now = self._clock()
                counts = self._counts(now)
                recent = tuple(self._recent)
                self._seq += 1
                seq = self._seq
                dropped = self.frames_dropped
            image, scale, display = None, 1.0, None
            if result is not None and result.image is not None:
                try:
                    image, scale = to_owned_qimage(result.image, self.max_side)  # kept for the zoom
                    size = self._display_size
                    if size is not None:
                        display = to_display_qimage(result.image, size)
                except Exception:
                    log.exception("cannot convert frame %s for display", result.frame_id)
            del result
            fps = float(getattr(self._fps_source, "fps", 0.0) or 0.0)
            update = LiveUpdate(seq, image, scale, summary, counts, recent, fps, dropped, display)
            last = self._clock()
            self.emitted += 1
            self.updated.emit(update)


__all__ = [
    "ComponentState",
    "LiveUpdate",
    "ResultSummary",
    "ShiftCounts",
    "UiBridge",
    "to_display_qimage",
    "to_owned_qimage",
]
