"""Engineer's calibration wizard: live pattern feedback, captured views, and the intrinsics fit.

Why a feed thread of its own: finding a checkerboard (`view_feedback`) takes 50-100 ms on a VGA
frame and seconds on a 5 MP one, far too long for the GUI thread. `CalibrationFeed` is a pipeline
result listener like `UiBridge`: `submit` only swaps the newest frame into a one-slot holder (O(1),
drop and count), its thread measures the newest frame and emits an owned QImage with the result,
and the next one is sent only after the GUI has drawn the previous one (`ack`). The fit runs in a
worker thread too; the GUI thread only draws and keeps the list of captured views.

What the wizard shows as green is exactly what `calibrate_intrinsics` accepts: both use
`calibration.pattern.view_feedback` with the same limits.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from PySide6.QtCore import QEvent, QObject, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import (
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from calibration.errors import CalibrationError
from calibration.intrinsics import IntrinsicsResult, RejectedView, calibrate_intrinsics
from calibration.pattern import CoverageMap, Pattern, ViewFeedback, view_feedback
from calibration.store import INTRINSICS, SCALE, THRESHOLD, CalibrationStore
from inspector.latest import Latest

from . import theme
from .auth import Permission, Session
from .bridge import to_owned_qimage
from .image_view import ImageCanvas
from .threshold_panel import ThresholdPanel, ThresholdSource

log = logging.getLogger(__name__)

DEFAULT_PATTERN = "checkerboard:9x6:5mm"
MIN_VIEWS = 8
"""Fewest usable views the fit takes (`calibrate_intrinsics` default)."""


@dataclass(frozen=True, slots=True)
class FrameFeedback:
    """One measured live frame, as the GUI receives it."""

    seq: int
    frame_id: int
    image: Any
    """Owned QImage, shrunk for display."""
    image_scale: float
    feedback: ViewFeedback
    frame: np.ndarray
    """The full-resolution frame (owned copy), kept if the engineer captures it."""
    pattern: str


class CalibrationFeed(QObject):
    """Newest camera frame -> `view_feedback` in its own thread -> `analysed` signal (one in flight)."""

    analysed = Signal(object)
    """FrameFeedback, emitted from the feed thread (queued to the GUI)."""

    def __init__(self, pattern: Pattern, max_side: int = 1280):
        super().__init__()
        self.pattern = pattern
        self.max_side = max_side
        self._cond = threading.Condition()
        """Guards the pattern and the active flag; the newest frame waits in `_slot`."""
        self._slot: Latest[tuple[int, np.ndarray]] = Latest(gated=True)
        """The newest frame to measure; the GUI acks each feedback (one in flight)."""
        self._active = False
        self._stop = False
        self._thread: threading.Thread | None = None
        self._seq = 0
        self.submitted = 0
        self.analysed_count = 0

    # ------------------------------------------------------------ producer side (any thread)
    def submit(self, result: Any) -> None:
        """Pipeline result listener: O(1), never blocks inference; ignored while the wizard is closed."""
        image = getattr(result, "image", None)
        if image is None or not self._active:
            return
        self.submit_frame(image, int(getattr(result, "frame_id", 0)))

    def submit_frame(self, image: np.ndarray, frame_id: int = 0) -> None:
        if not self._active:
            return
        self.submitted += 1
        self._slot.put((frame_id, image))

    @property
    def dropped(self) -> int:
        """Frames replaced by a newer one before they were measured (expected: the camera is faster)."""
        return self._slot.dropped

    # ------------------------------------------------------------ control (GUI thread)
    def set_pattern(self, pattern: Pattern) -> None:
        with self._cond:
            self.pattern = pattern

    def activate(self) -> None:
        with self._cond:
            self._active = True
            self._stop = False
        self._slot.clear()  # a frame that slipped in while closed is stale
        self._slot.open()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="ui-calibration-feed", daemon=True)
            self._thread.start()

    def deactivate(self) -> None:
        with self._cond:
            self._active = False
            self._stop = True
        self._slot.close()  # wakes the feed thread
        self._slot.clear()
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None

    @property
    def active(self) -> bool:
        return self._active

    def ack(self) -> None:
        self._slot.ack()

    # ------------------------------------------------------------ feed thread
    def _run(self) -> None:
        while True:
            item = self._slot.take(0.5)
            if self._stop:
                return
            if item is None:
                continue
            frame_id, image = item
            with self._cond:
                pattern = self.pattern
                self._seq += 1
                seq = self._seq
            try:
                frame = np.array(image, copy=True)
                fb = view_feedback(frame, pattern)
                qimage, scale = to_owned_qimage(frame, self.max_side)
            except Exception as exc:  # an unreadable frame must not kill the feed
                log.exception("calibration feed: frame %s not measured", frame_id)
                fb = ViewFeedback(False, reasons=[f"frame not measured: {exc}"], error=str(exc))
                qimage, scale = None, 1.0
                frame = np.zeros((1, 1), np.uint8)
            self.analysed_count += 1
            self.analysed.emit(FrameFeedback(seq, frame_id, qimage, scale, fb, frame, pattern.spec))


class CornerView(ImageCanvas):
    """The live frame with the detected corners and the pattern's outline drawn over it."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.corners: np.ndarray | None = None
        self.usable = False
        self.row_length = 0
        """Corners per pattern row (checkerboard): rows are joined by a line; 0 for ChArUco (partial views)."""

    def set_corners(self, corners: np.ndarray | None, usable: bool, row_length: int = 0) -> None:
        self.corners = None if corners is None else corners.reshape(-1, 2)
        self.usable = usable
        self.row_length = row_length
        self.update()

    def paint_extra(self, p: QPainter) -> None:
        if self.corners is None or len(self.corners) == 0:
            return
        colour = QColor(theme.PASS if self.usable else theme.REJECT)
        pts = [self.to_widget(float(x), float(y)) for x, y in self.corners]
        p.setPen(QPen(colour, 3))
        n = self.row_length
        if n and len(pts) % n == 0:
            for start in range(0, len(pts), n):
                row = pts[start : start + n]
                for a, b in zip(row, row[1:]):
                    p.drawLine(a, b)
        p.setPen(QPen(QColor("#000000"), 1))
        p.setBrush(colour)
        r = max(4.0, min(8.0, self.width() / 160))
        for q in pts:
            p.drawEllipse(q, r, r)
        # The first corner marks the pattern's origin (helps the engineer see a flipped detection).
        p.setBrush(QColor(theme.WARN))
        p.drawEllipse(pts[0], r * 1.6, r * 1.6)


class CoverageView(QWidget):
    """The frame divided into the fit's 8 x 6 cells; cells the accepted views reached are green."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.map: CoverageMap | None = None
        self.live: np.ndarray | None = None
        self.setMinimumSize(160, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)

    def set_map(self, cmap: CoverageMap | None) -> None:
        self.map = cmap
        self.update()

    def set_live(self, corners: np.ndarray | None) -> None:
        self.live = corners
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.fillRect(self.rect(), QColor(theme.PANEL))
        cmap = self.map
        cols, rows = cmap.cells if cmap else (8, 6)
        iw, ih = cmap.image_size if cmap else (4, 3)
        s = min(self.width() / iw, self.height() / ih)
        w, h = iw * s, ih * s
        x0, y0 = (self.width() - w) / 2, (self.height() - h) / 2
        cw, ch = w / cols, h / rows
        f = QFont(self.font())
        f.setPixelSize(max(12, int(ch * 0.4)))
        f.setBold(True)
        p.setFont(f)
        for r in range(rows):
            for c in range(cols):
                hits = int(cmap.hits[r, c]) if cmap else 0
                rect = QRectF(x0 + c * cw + 2, y0 + r * ch + 2, cw - 4, ch - 4)
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(theme.PASS if hits else theme.PANEL_2))
                p.drawRoundedRect(rect, 4, 4)
        if self.live is not None and cmap is not None:
            p.setPen(QPen(QColor(theme.INFO), 3))
            p.setBrush(Qt.BrushStyle.NoBrush)
            pts = self.live.reshape(-1, 2)
            xs, ys = pts[:, 0] * s + x0, pts[:, 1] * s + y0
            p.drawRect(QRectF(QPointF(xs.min(), ys.min()), QPointF(xs.max(), ys.max())))
        p.end()


class Indicator(QFrame):
    """A large green / red / grey tile: a name and one big value, readable from two metres."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("indicator")
        self.name = QLabel(self)
        self.name.setObjectName("indicatorName")
        self.name.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.value = QLabel("—", self)
        self.value.setObjectName("indicatorValue")
        self.value.setAlignment(Qt.AlignmentFlag.AlignCenter)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(6, 6, 6, 6)
        lay.setSpacing(0)
        lay.addWidget(self.name)
        lay.addWidget(self.value, 1)
        self.ok: bool | None = None
        self.scale = 1.0
        self._look: tuple = ()
        self.set_state(None, "—")

    def set_state(self, ok: bool | None, value: str) -> None:
        self.ok = ok
        if self.value.text() != value:
            self.value.setText(value)
        bg = theme.OFF if ok is None else theme.PASS if ok else theme.REJECT
        look = (bg, self.scale)
        if look != self._look:  # restyle only on change
            self._look = look
            s = self.scale
            self.setStyleSheet(
                f"QFrame#indicator {{ background: {bg}; border-radius: {theme.px(10, s)}px; }}"
                f"QLabel {{ color: #ffffff; background: transparent; }}"
                f"QLabel#indicatorName {{ font-size: {theme.px(18, s)}px; font-weight: bold; }}"
                f"QLabel#indicatorValue {{ font-size: {theme.px(34, s)}px; font-weight: 900; }}"
            )

    def set_scale(self, scale: float) -> None:
        self.scale = scale
        self.setMinimumHeight(theme.px(104, scale))
        self.set_state(self.ok, self.value.text())


class CalibrationWizard(QWidget):
    """Screen `calibration` (engineer, admin): capture views with live feedback, fit and store intrinsics."""

    computed = Signal(object)
    """IntrinsicsResult or an Exception; emitted from the fit thread (queued to the GUI)."""

    def __init__(
        self,
        session: Session,
        audit: Callable[..., None],
        store: CalibrationStore | None,
        *,
        recipes: Callable[[], list[str]] | None = None,
        threshold_source: Callable[[], ThresholdSource] | None = None,
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.session = session
        self._audit = audit
        self.store = store
        self._recipes = recipes or (lambda: [])
        self.pattern = Pattern.parse(DEFAULT_PATTERN)
        self.feed = CalibrationFeed(self.pattern)
        self.feed.analysed.connect(self.on_feedback)
        self.computed.connect(self._on_computed)
        self.current: FrameFeedback | None = None
        self.views: list[tuple[str, np.ndarray]] = []
        self.coverage: CoverageMap | None = None
        self.rejected_captures = 0
        self.computing = False
        self.last_result: IntrinsicsResult | None = None
        self.last_error: str = ""
        self.saved_id: int | None = None
        self.frames_shown = 0
        self.scale = 1.0
        self._fit_thread: threading.Thread | None = None

        # ---------------------------------------------------------------- header: active calibrations
        self.active_label = QLabel(self)
        self.active_label.setObjectName("dim")
        self.active_label.setWordWrap(True)
        self.pattern_label = QLabel(self)
        self.pattern_edit = QLineEdit(DEFAULT_PATTERN, self)
        self.pattern_edit.setMinimumWidth(300)
        self.pattern_edit.editingFinished.connect(lambda: self.set_pattern(self.pattern_edit.text()))
        self.pattern_state = QLabel(self)
        self.pattern_state.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        top = QHBoxLayout()
        top.setSpacing(10)
        top.addWidget(self.pattern_label)
        top.addWidget(self.pattern_edit)
        top.addWidget(self.pattern_state, 1)

        # ---------------------------------------------------------------- live view
        self.live = CornerView(self)
        self.live_caption = QLabel(self)
        self.live_caption.setObjectName("dim")
        self.live_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        left = QVBoxLayout()
        left.setSpacing(4)
        left.addWidget(self.live, 1)
        left.addWidget(self.live_caption)
        # Under the live view (which gives up the height): the one calibration here that needs no pattern.
        self.threshold = ThresholdPanel(session, audit, store, threshold_source, self)
        self.threshold.shown.connect(self.refresh_active)
        left.addWidget(self.threshold)

        # ---------------------------------------------------------------- feedback column
        self.ind_found = Indicator(self)
        self.ind_coverage = Indicator(self)
        self.ind_sharp = Indicator(self)
        tiles = QGridLayout()
        tiles.setSpacing(8)
        tiles.addWidget(self.ind_found, 0, 0)
        tiles.addWidget(self.ind_coverage, 0, 1)
        tiles.addWidget(self.ind_sharp, 0, 2)
        self.reason = QLabel(self)
        self.reason.setWordWrap(True)
        self.reason.setObjectName("reason")
        self.map_label = QLabel(self)
        self.map_label.setObjectName("section")
        self.map_view = CoverageView(self)
        self.results = QListWidget(self)
        self.results.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        # Qt's default minimum (about 190 px) set the whole window's: with a two-line reason in Chinese the window
        # came out 801 px tall on the 800 px panel. Two rows are the least it shows; it scrolls.
        self.results.setMinimumHeight(theme.MIN_TOUCH_PX * 2)
        self.result_label = QLabel(self)
        self.result_label.setWordWrap(True)
        self.result_label.setObjectName("resultLine")

        right = QVBoxLayout()
        right.setSpacing(8)
        right.addLayout(tiles)
        right.addWidget(self.reason)
        right.addWidget(self.map_label)
        right.addWidget(self.map_view, 2)
        right.addWidget(self.result_label)
        right.addWidget(self.results, 2)

        middle = QHBoxLayout()
        middle.setSpacing(12)
        middle.addLayout(left, 11)
        middle.addLayout(right, 9)

        # ---------------------------------------------------------------- actions
        self.capture_button = QPushButton(self)
        self.capture_button.setObjectName("start")
        self.capture_button.clicked.connect(self.capture)
        self.clear_button = QPushButton(self)
        self.clear_button.clicked.connect(self.clear_views)
        self.compute_button = QPushButton(self)
        self.compute_button.setObjectName("compute")
        self.compute_button.clicked.connect(self.compute)
        self.count_label = QLabel(self)
        self.count_label.setObjectName("countLine")
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        bottom = QHBoxLayout()
        bottom.setSpacing(12)
        bottom.addWidget(self.capture_button)
        bottom.addWidget(self.count_label)
        bottom.addWidget(self.message, 1)
        bottom.addWidget(self.clear_button)
        bottom.addWidget(self.compute_button)

        root = QVBoxLayout(self)
        root.setContentsMargins(12, 6, 12, 10)
        root.setSpacing(8)
        root.addWidget(self.active_label)
        root.addLayout(top)
        root.addLayout(middle, 1)
        root.addLayout(bottom)

        self.set_scale(1.0)
        self.retranslate()
        self._show_feedback(None)
        self._refresh_counts()
        self.on_user(session.user)

    # ------------------------------------------------------------ screen life
    def enter(self) -> None:
        self.refresh_active()
        self.threshold.refresh()
        self.feed.activate()

    def leave(self) -> None:
        self.feed.deactivate()

    def on_user(self, user) -> None:
        allowed = self.session.can(Permission.CALIBRATE)
        for b in (self.capture_button, self.clear_button):
            b.setEnabled(allowed)
        self.compute_button.setEnabled(allowed and not self.computing and len(self.views) >= MIN_VIEWS)
        self.threshold.on_user(user)

    def _require(self, action: str):
        user = self.session.allowed(Permission.CALIBRATE, action, self._audit)
        if user is None:
            who = self.session.denied_to() or self.tr("nobody is logged in")
            self._say(self.tr("Only an engineer or admin may %1; %2").replace("%1", action).replace("%2", who), False)
        return user

    # ------------------------------------------------------------ pattern
    def set_pattern(self, spec: str) -> bool:
        try:
            pattern = Pattern.parse(spec)
        except CalibrationError as exc:
            self.pattern_state.setText(str(exc))
            self.pattern_state.setStyleSheet(f"color: {theme.REJECT}; font-weight: bold;")
            return False
        self.pattern_state.setText(
            self.tr("%1 corners, board %2 x %3 mm")
            .replace("%1", str(pattern.corner_count))
            .replace("%2", f"{pattern.board_size_mm()[0]:g}")
            .replace("%3", f"{pattern.board_size_mm()[1]:g}")
        )
        self.pattern_state.setStyleSheet(f"color: {theme.TEXT_DIM};")
        if pattern != self.pattern:
            self.pattern = pattern
            self.pattern_edit.setText(pattern.spec)
            self.feed.set_pattern(pattern)
            if self.views:
                self.clear_views()
                self._say(self.tr("Pattern changed: captured views cleared"), None)
        return True

    # ------------------------------------------------------------ live feedback (GUI thread)
    def on_feedback(self, ff: FrameFeedback) -> None:
        try:
            self.frames_shown += 1
            self.current = ff
            if ff.image is not None:
                self.live.set_image(ff.image, ff.image_scale)
            fb = ff.feedback
            corners = fb.detection.image_points if fb.detection is not None else None
            full_rows = self.pattern.kind == "checkerboard" and fb.corners == self.pattern.corner_count
            self.live.set_corners(corners, fb.usable, self.pattern.cols if full_rows else 0)
            self.map_view.set_live(corners)
            self._show_feedback(fb)
            w, h = fb.image_size
            self.live_caption.setText(
                self.tr("Frame %1 · %2 x %3 px · %4 corners")
                .replace("%1", str(ff.frame_id))
                .replace("%2", str(w))
                .replace("%3", str(h))
                .replace("%4", str(fb.corners))
            )
        finally:
            self.feed.ack()

    def _show_feedback(self, fb: ViewFeedback | None) -> None:
        if fb is None:
            self.ind_found.set_state(None, "—")
            self.ind_coverage.set_state(None, "—")
            self.ind_sharp.set_state(None, "—")
            self.reason.setText(self.tr("Waiting for a camera frame…"))
            self._reason_colour(theme.TEXT_DIM)
            return
        self.ind_found.set_state(fb.found, self.tr("FOUND") if fb.found else self.tr("NONE"))
        if fb.found:
            self.ind_coverage.set_state(not fb.too_small, f"{fb.coverage:.0%}")
            blur = f"{fb.blur_px:.1f} px" if np.isfinite(fb.blur_px) else "—"
            self.ind_sharp.set_state(not fb.blurred, blur)
        else:
            self.ind_coverage.set_state(None, "—")
            self.ind_sharp.set_state(None, "—")
        if fb.usable:
            self.reason.setText(self.tr("✔  Good view: tap CAPTURE VIEW"))
            self._reason_colour(theme.PASS)
        else:
            self.reason.setText("✖  " + "; ".join(self._reasons(fb)))
            self._reason_colour(theme.REJECT)

    def _reasons(self, fb: ViewFeedback) -> list[str]:
        """Why a view is not usable, in the screen's language, from what was measured (the core's `reasons` are
        English, for logs and the command line)."""
        if fb.error:
            return [self.tr("frame not measured: %1").replace("%1", fb.error)]
        if not fb.found:
            return [self.tr("pattern not found")]
        out = []
        if fb.too_small:
            out.append(
                self.tr("covers %1 of the frame (< %2): move the target closer")
                .replace("%1", f"{fb.coverage:.1%}")
                .replace("%2", f"{fb.min_coverage:.0%}")
            )
        if fb.blurred:
            out.append(
                self.tr("blurred: edges %1 px wide (> %2 px)")
                .replace("%1", f"{fb.blur_px:.1f}")
                .replace("%2", f"{fb.max_blur_px:g}")
            )
        return out

    def _rejected_reason(self, rej: RejectedView) -> str:
        """Why the fit left a view out, in the screen's language (the stored record keeps the English)."""
        if rej.error_px is not None and rej.limit_px is not None:
            return (
                self.tr("reprojection error %1 px (> %2 px)")
                .replace("%1", f"{rej.error_px:.2f}")
                .replace("%2", f"{rej.limit_px:.2f}")
            )
        if rej.feedback is not None:
            return "; ".join(self._reasons(rej.feedback))
        return rej.reason

    # ------------------------------------------------------------ views
    def capture(self) -> bool:
        """Keep the current frame as a calibration view if the fit would accept it."""
        if self._require(self.tr("calibrate the camera")) is None:
            return False
        ff = self.current
        if ff is None:
            self._say(self.tr("No camera frame yet"), False)
            return False
        fb = ff.feedback
        if not fb.usable:
            self.rejected_captures += 1
            self._say(self.tr("View not kept: %1").replace("%1", "; ".join(self._reasons(fb))), False)
            return False
        if ff.pattern != self.pattern.spec:
            self._say(self.tr("View not kept: measured with another pattern; wait for the next frame"), False)
            return False
        if self.views and self.views[0][1].shape[:2] != ff.frame.shape[:2]:
            h0, w0 = self.views[0][1].shape[:2]
            h, w = ff.frame.shape[:2]
            self._say(
                self.tr("View not kept: %1 px differs from the captured views' %2 px")
                .replace("%1", f"{w}x{h}")
                .replace("%2", f"{w0}x{h0}"),
                False,
            )
            return False
        if self.coverage is None:
            self.coverage = CoverageMap(fb.image_size)
        name = f"view{len(self.views) + 1:02d}"
        self.views.append((name, ff.frame))
        self.coverage.add(fb.detection.image_points)
        self.map_view.set_map(self.coverage)
        self.current = None  # the same frame is not kept twice
        self._say(
            self.tr("%1 kept (coverage %2, edges %3 px)")
            .replace("%1", name)
            .replace("%2", f"{fb.coverage:.0%}")
            .replace("%3", f"{fb.blur_px:.1f}"),
            True,
        )
        self._refresh_counts()
        return True

    def clear_views(self) -> None:
        self.views = []
        self.coverage = None
        self.map_view.set_map(None)
        self._refresh_counts()

    def _refresh_counts(self) -> None:
        frac = self.coverage.fraction if self.coverage else 0.0
        self.count_label.setText(
            self.tr("Views %1 / %2 · frame cells reached %3")
            .replace("%1", str(len(self.views)))
            .replace("%2", str(MIN_VIEWS))
            .replace("%3", f"{frac:.0%}")
        )
        self.on_user(self.session.user)

    # ------------------------------------------------------------ fit (worker thread)
    def compute(self) -> bool:
        """Fit the intrinsics to the captured views in a worker thread, then store and audit them."""
        user = self._require(self.tr("calibrate the camera"))
        if user is None or self.computing:
            return False
        if len(self.views) < MIN_VIEWS:
            self._say(
                self.tr("Capture at least %1 views first (%2 so far)")
                .replace("%1", str(MIN_VIEWS))
                .replace("%2", str(len(self.views))),
                False,
            )
            return False
        self.computing = True
        self.last_result = None
        self.last_error = ""
        self.saved_id = None
        self.on_user(user)
        self._say(self.tr("Computing the intrinsics from %1 views…").replace("%1", str(len(self.views))), None)
        views, pattern = list(self.views), self.pattern
        self._fit_thread = threading.Thread(
            target=self._fit, args=(views, pattern, user.name), name="ui-calibration-fit", daemon=True
        )
        self._fit_thread.start()
        return True

    def _fit(self, views, pattern: Pattern, who: str) -> None:
        try:
            result = calibrate_intrinsics(views, pattern, min_views=MIN_VIEWS)
            if self.store is not None:
                info = self.store.save(INTRINSICS, result.to_json(), operator=who)
                self.saved_id = info.id
            self._audit(
                "calibration_intrinsics",
                user=who,
                target=INTRINSICS,
                after={
                    "calibration_id": self.saved_id,
                    "rms_px": round(result.rms_px, 4),
                    "views_used": result.views_used,
                    "pattern": pattern.spec,
                    "image_size": list(result.image_size),
                },
            )
            self.computed.emit(result)
        except Exception as exc:  # CalibrationError, a database error: shown, never raised into Qt
            if not isinstance(exc, CalibrationError):
                log.exception("intrinsics fit or save failed")
            self.computed.emit(exc)

    def _on_computed(self, outcome) -> None:
        self.computing = False
        self.on_user(self.session.user)
        self.results.clear()
        if isinstance(outcome, Exception):
            self.last_error = str(outcome)
            self.result_label.setText(self.tr("Fit failed"))
            self.result_label.setStyleSheet(f"color: {theme.REJECT}; font-weight: bold;")
            self._say(str(outcome).splitlines()[0], False)
            for line in str(outcome).splitlines()[1:]:
                self.results.addItem(line.strip())
            return
        r: IntrinsicsResult = outcome
        self.last_result = r
        k = r.camera_matrix
        good = r.rms_px < 0.5
        self.result_label.setText(
            self.tr("RMS %1 px · fx %2 fy %3 · cx %4 cy %5 · %6 views")
            .replace("%1", f"{r.rms_px:.3f}")
            .replace("%2", f"{k[0, 0]:.1f}")
            .replace("%3", f"{k[1, 1]:.1f}")
            .replace("%4", f"{k[0, 2]:.1f}")
            .replace("%5", f"{k[1, 2]:.1f}")
            .replace("%6", str(r.views_used))
        )
        self.result_label.setStyleSheet(f"color: {theme.PASS if good else theme.WARN}; font-weight: bold;")
        # The views to retake first: the list shows three rows before it scrolls.
        for rej in r.rejected:
            self.results.addItem(
                self.tr("%1: rejected, %2").replace("%1", rej.name).replace("%2", self._rejected_reason(rej))
            )
        for name, err in sorted(r.per_view_error_px.items()):
            self.results.addItem(f"{name}: {err:.3f} px")
        if self.saved_id is not None:
            self._say(
                self.tr("Stored as calibration %1 (active from the next station start)").replace(
                    "%1", str(self.saved_id)
                ),
                True,
            )
        else:
            self._say(self.tr("Computed; not stored (no records database)"), None)
        self.refresh_active()

    def wait_fit(self, timeout: float = 30.0) -> None:
        """Tests and shutdown: wait for a running fit thread (its result still arrives as a signal)."""
        if self._fit_thread is not None:
            self._fit_thread.join(timeout)
        self.threshold.wait(timeout)

    # ------------------------------------------------------------ active calibrations
    def refresh_active(self) -> None:
        """The station's active intrinsics, scale and references, with who and when (engineer's header)."""
        if self.store is None:
            self.active_label.setText(self.tr("Active calibrations: no records database"))
            return
        try:
            infos = [c for c in self.store.history() if c.active]
        except Exception as exc:
            self.active_label.setText(self.tr("Active calibrations: cannot read (%1)").replace("%1", str(exc)))
            return
        by_kind = {c.kind: c for c in infos}
        parts = []
        for kind in (INTRINSICS, SCALE):
            parts.append(self._describe(kind, by_kind.pop(kind, None)))
        for kind in sorted(by_kind):
            parts.append(self._describe(kind, by_kind[kind]))
        if not any(k.startswith("reference:") for k in by_kind):
            parts.append(self.tr("reference: none"))
        self.active_label.setText(self.tr("Active calibrations: ") + "   ·   ".join(parts))

    def _kind_name(self, kind: str) -> str:
        """A calibration kind as the engineer reads it (the store's keys are English identifiers)."""
        if kind.startswith("reference:"):
            return self.tr("reference %1").replace("%1", kind.split(":", 1)[1])
        names = {INTRINSICS: self.tr("intrinsics"), SCALE: self.tr("scale"), THRESHOLD: self.tr("threshold")}
        return names.get(kind, kind)

    def _describe(self, kind: str, info) -> str:
        if info is None:
            return self.tr("%1: none").replace("%1", self._kind_name(kind))
        extra = ""
        if kind == INTRINSICS and "rms_px" in info.results:
            extra = f", RMS {float(info.results['rms_px']):.2f} px"
        elif kind == SCALE and "mm_per_px" in info.results:
            extra = f", {float(info.results['mm_per_px']):.4f} mm/px"
        elif kind == THRESHOLD and "threshold_position" in info.results:
            extra = f", {float(info.results['threshold_position']):.2f}"
        when = info.created_at.astimezone() if info.created_at.tzinfo else info.created_at
        return (
            self.tr("%1 #%2 by %3 at %4")
            .replace("%1", self._kind_name(kind))
            .replace("%2", str(info.id))
            .replace("%3", info.created_by)
            .replace("%4", f"{when:%Y-%m-%d %H:%M}")
            + extra
        )

    # ------------------------------------------------------------ look
    def _say(self, text: str, ok: bool | None) -> None:
        colour = theme.TEXT if ok is None else theme.PASS if ok else theme.REJECT
        self.message.setText(text)
        self.message.setToolTip(text)
        self.message.setStyleSheet(f"color: {colour}; font-weight: bold;")

    def set_scale(self, scale: float) -> None:
        self.scale = scale
        self.threshold.set_scale(scale)
        for ind in (self.ind_found, self.ind_coverage, self.ind_sharp):
            ind.set_scale(scale)
        big = max(theme.MIN_TOUCH_PX, theme.px(72, scale))
        for b in (self.capture_button, self.compute_button, self.clear_button):
            b.setMinimumHeight(big)
        self.capture_button.setMinimumWidth(theme.px(260, scale))
        self.compute_button.setMinimumWidth(theme.px(200, scale))
        self.compute_button.setStyleSheet(
            f"QPushButton#compute {{ background: {theme.INFO}; border-color: {theme.INFO}; "
            f"font-size: {theme.px(22, scale)}px; }}"
            f"QPushButton#compute:disabled {{ background: {theme.PANEL_2}; border-color: {theme.PANEL_2}; }}"
        )
        self.capture_button.setStyleSheet(
            f"QPushButton#start {{ font-size: {theme.px(24, scale)}px; }}"
            f"QPushButton#start:disabled {{ background: {theme.PANEL_2}; border-color: {theme.PANEL_2}; }}"
        )
        self.reason.setMinimumHeight(theme.px(56, scale))
        self._reason_look = ""
        self._reason_colour(getattr(self, "_reason_fg", theme.TEXT_DIM))

    def _reason_colour(self, colour: str) -> None:
        self._reason_fg = colour
        look = f"color: {colour}; font-weight: bold; font-size: {theme.px(22, self.scale)}px;"
        if look != getattr(self, "_reason_look", ""):  # restyle only on change
            self._reason_look = look
            self.reason.setStyleSheet(look)

    def retranslate(self) -> None:
        self.pattern_label.setText(self.tr("Pattern"))
        self.ind_found.name.setText(self.tr("PATTERN"))
        self.ind_coverage.name.setText(self.tr("COVERAGE"))
        self.ind_sharp.name.setText(self.tr("SHARPNESS"))
        self.map_label.setText(self.tr("FRAME COVERAGE OF CAPTURED VIEWS"))
        self.capture_button.setText(self.tr("CAPTURE VIEW"))
        self.clear_button.setText(self.tr("Clear views"))
        self.compute_button.setText(self.tr("COMPUTE"))
        self.live.placeholder = self.tr("Waiting for a camera frame…")
        # The reason line in the new language now, not at the next frame (the camera may be stopped).
        self._show_feedback(self.current.feedback if self.current is not None else None)
        if self.last_result is None and not self.last_error:
            self.result_label.setText(self.tr("Per-view reprojection errors appear here after COMPUTE"))
        self.set_pattern(self.pattern_edit.text())
        self._refresh_counts()
        self.refresh_active()

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)
