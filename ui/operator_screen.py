"""The line screen: live image with defects, PASS/REJECT, shift counters, status lamps, alarms.

Why this layout: the verdict and the alarm are what an operator looks for from two metres, so they
are the largest and most saturated things on screen; the live image is next (a tap on a defect
zooms it); counters, lamps and the last-20 strip are read up close. Every widget is fed from
`LiveUpdate` / `ComponentState` signals: this module never touches the pipeline's threads.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication, QEvent, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QFont, QFontMetrics, QPainter, QTextLayout
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from inspector.domain import CLASS_NAMES
from inspector.health import ComponentState

from . import theme
from .alarms import OPERATOR_REASONS, STARTUP_REASONS, AlarmModel, alarm_title
from .bridge import LiveUpdate, ResultSummary
from .image_view import ImageCanvas, Overlay
from .labels import class_label, lamp_label, reason_label

LAMPS = ("camera", "model", "plc", "database", "disk", "inspection")
"""The last is no component: it sums up every part without a lamp of its own (`SummaryLamp`)."""


def lamp_title(name: str) -> str:
    from PySide6.QtCore import QCoreApplication

    return {
        "camera": QCoreApplication.translate("Lamps", "Camera"),
        "model": QCoreApplication.translate("Lamps", "Detector"),
        "plc": QCoreApplication.translate("Lamps", "PLC"),
        "database": QCoreApplication.translate("Lamps", "Database"),
        "disk": QCoreApplication.translate("Lamps", "Disk"),
        "inspection": QCoreApplication.translate("Lamps", "Inspection"),
    }.get(name, name)


def overlays_for(detections, scale_label: bool = True) -> list[Overlay]:
    return [
        Overlay(d.box, theme.CLASS_COLOURS.get(d.class_id, "#ffffff"), f"{class_label(d.label)} {d.score:.2f}")
        for d in detections
    ]


class LiveView(ImageCanvas):
    defect_tapped = Signal(int)
    size_changed = Signal(int, int)
    """The view's new size: the bridge pre-scales live pictures to it (`UiBridge.set_display_size`)."""

    def __init__(self, parent=None):
        super().__init__(parent)
        self.tapped.connect(self._on_tap)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        self.size_changed.emit(self.width(), self.height())

    def _on_tap(self, x: float, y: float) -> None:
        i = self.overlay_at(x, y)
        if i is not None:
            self.defect_tapped.emit(i)


class ZoomDialog(QDialog):
    """A tapped defect, enlarged, with a big close button (no hover, no small X)."""

    def __init__(self, image, scale: float, overlay: Overlay, parent=None):
        super().__init__(parent)
        self.setWindowTitle(self.tr("Defect"))
        self.setModal(True)
        x1, y1, x2, y2 = overlay.box
        side = max(x2 - x1, y2 - y1) * 3 + 40
        cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
        fx, fy = max(0.0, cx - side / 2), max(0.0, cy - side / 2)
        crop_rect = QRectF(fx * scale, fy * scale, side * scale, side * scale).toAlignedRect()
        crop = image.copy(crop_rect)
        canvas = ImageCanvas(self)
        canvas.set_image(crop, scale)
        canvas.set_overlays([Overlay((x1 - fx, y1 - fy, x2 - fx, y2 - fy), overlay.colour, overlay.label, True)])
        canvas.setMinimumSize(520, 520)
        close = QPushButton(self.tr("Close"), self)
        close.clicked.connect(self.accept)
        lay = QVBoxLayout(self)
        title = QLabel(overlay.label, self)
        title.setObjectName("title")
        lay.addWidget(title)
        lay.addWidget(canvas, 1)
        lay.addWidget(close)
        self.canvas = canvas


class VerdictBanner(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("panel")
        self.word = QLabel(self)
        self.word.setObjectName("verdictWord")
        self.word.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.word.setMinimumHeight(40)
        self.word.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Ignored)
        self.line1 = QLabel(self)
        self.line1.setAlignment(Qt.AlignmentFlag.AlignCenter)
        # Wraps: unwrapped, a long board serial or a three-digit cycle time widened the whole screen past the
        # touchscreen (1280 px: the demo's review screenshot came out 1286 px wide on a busy machine).
        self.line1.setWordWrap(True)
        self.line2 = QLabel(self)
        self.line2.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.line2.setWordWrap(True)
        lay = QVBoxLayout(self)
        lay.setSpacing(2)
        lay.addWidget(self.word, 1)
        lay.addWidget(self.line1)
        lay.addWidget(self.line2)
        self.result: ResultSummary | None = None
        self.scale = 1.0
        self._line1_parts: tuple[str, ...] = ()
        self._word_px = 0
        self.word.installEventFilter(self)  # its room changes with the lines under it, not only with the banner
        self.show_result(None)

    def set_scale(self, scale: float) -> None:
        self.scale = scale
        self.show_result(self.result)

    def show_result(self, r: ResultSummary | None) -> None:
        self.result = r
        s = self.scale
        if r is None:
            bg, word = theme.PANEL_2, self.tr("WAITING")
            self._line1_parts = (self.tr("No board inspected yet"),)
            self.line2.setText("")
        else:
            bg = theme.PASS if r.passed else theme.REJECT
            word = self.tr("PASS") if r.passed else self.tr("REJECT")
            serial = r.serial or self.tr("frame %1").replace("%1", str(r.frame_id))
            self._line1_parts = (
                self.tr("Serial %1").replace("%1", serial),
                self.tr("cycle %1 ms").replace("%1", f"{r.cycle_ms:.0f}"),
            )
            if r.reason:
                self.line2.setText(reason_label(r.reason))
            elif r.detections:
                # Most severe class first (the recipe's order, as the PLC's RESULT_CODE), each once.
                rank = {c: i for i, c in enumerate(r.severity)}
                classes = sorted({d.class_id for d in r.detections}, key=lambda c: rank.get(c, len(rank)))
                names = [class_label(CLASS_NAMES[c - 1]) for c in classes]
                self.line2.setText(self.tr("%n defect(s): ", "", len(r.detections)) + ", ".join(names))
            else:
                self.line2.setText(self.tr("No defects"))
        self.word.setText(word)
        self.setStyleSheet(
            f"QFrame#panel {{ background: {bg}; border: 0; border-radius: {theme.px(10, s)}px; }}"
            f"QLabel {{ color: #ffffff; background: transparent; font-size: {theme.px(24, s)}px; font-weight: bold; }}"
        )
        self._set_line1()
        self._word_px = 0
        self._fit_word()

    def _fit_word(self) -> None:
        """PASS/REJECT as large as its room allows (92 px at 1280x800), never clipped.

        Why: the word gets what the serial, cycle and defect lines leave; with an alarm banner above and four defect
        classes it had 40 px for 107 px glyphs, and the operator saw a strip through the middle of REJECT.
        """
        full = theme.px(92, self.scale)
        font = QFont(self.word.font())
        font.setPixelSize(full)
        font.setWeight(QFont.Weight.Black)
        fm = QFontMetrics(font)
        room = self.word.contentsRect()
        need_w = fm.horizontalAdvance(self.word.text()) + 8
        k = min(1.0, room.height() / max(1, fm.height()), room.width() / max(1, need_w))
        px = max(12, int(full * k)) if room.height() > 0 and room.width() > 0 else full
        if px != self._word_px:
            self._word_px = px
            self.word.setStyleSheet(f"font-size: {px}px; font-weight: 900;")

    def _set_line1(self) -> None:
        """Serial and cycle on one line where they fit, else one under the other, each whole.

        Why not plain word wrap: on a slower CPU "cycle 219 ms" broke before "ms" and left the unit alone on a line.
        """
        parts = self._line1_parts
        if len(parts) < 2:  # a sentence ("No board inspected yet"): wraps where it must
            self.line1.setText("".join(parts))
            self._keep_lines_whole()
            return
        parts = tuple(p.replace(" ", "\u00a0") for p in parts)
        one = "   ·   ".join(parts)
        self.line1.ensurePolished()  # the style sheet's font, not the default one
        fits = self.line1.fontMetrics().horizontalAdvance(one) <= self.line1.contentsRect().width()
        self.line1.setText(one if fits else "\n".join(parts))
        self._keep_lines_whole()

    def _keep_lines_whole(self) -> None:
        """Ask the screen for the height the serial, cycle and defect lines need at this width, plus a readable word.

        Why: the wrapped lines' height never reached the screen's layout, which squeezed the panel under an alarm
        banner until "cycle 576 ms" lay under the defect line.
        """
        width = self.contentsRect().width()
        if width <= 0:
            return
        m = self.layout().contentsMargins()
        inner = max(1, width - m.left() - m.right())
        lines = sum(lab.heightForWidth(inner) if lab.text() else 0 for lab in (self.line1, self.line2))
        need = m.top() + m.bottom() + lines + theme.px(48, self.scale) + 2 * self.layout().spacing()
        if need != self.minimumHeight():
            self.setMinimumHeight(need)

    def resizeEvent(self, e) -> None:  # noqa: N802
        super().resizeEvent(e)
        self._set_line1()

    def eventFilter(self, obj, e) -> bool:  # noqa: N802
        if obj is self.word and e.type() == QEvent.Type.Resize:
            self._fit_word()
        return False

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.show_result(self.result)
        super().changeEvent(e)


class CounterTile(QFrame):
    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("panel")
        self.name = QLabel(self)
        self.name.setObjectName("counterName")
        self.value = QLabel("—", self)
        self.value.setObjectName("counterValue")
        self.colour = ""
        lay = QVBoxLayout(self)
        lay.setContentsMargins(12, 6, 12, 6)
        lay.setSpacing(0)
        lay.addWidget(self.name)
        lay.addWidget(self.value)


class Lamp(QWidget):
    def __init__(self, component: str, parent=None):
        super().__init__(parent)
        self.component = component
        self._look: tuple = ()
        self.state: ComponentState | None = None
        self.extra = ""
        self.dot = QLabel(self)
        self.name = QLabel(self)
        self.name.setObjectName("lampName")
        self.reason = QLabel(self)
        self.reason.setObjectName("lampReason")
        self.reason.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        lay = QHBoxLayout(self)
        lay.setContentsMargins(4, 0, 4, 0)
        lay.addWidget(self.dot)
        lay.addWidget(self.name)
        lay.addWidget(self.reason, 1)
        self.scale = 1.0
        self.refresh()

    def set_state(self, state: ComponentState) -> None:
        self.state = state
        self.refresh()

    def _look_of(self, s: ComponentState | None) -> tuple[str, str]:
        """Colour and text for a state (translated in the "Lamp" context: `self.tr` of a subclass looks in its own)."""
        ok = QCoreApplication.translate("Lamp", "OK")
        if s is None:
            return theme.OFF, QCoreApplication.translate("Lamp", "no report")
        if s.ok and s.warning:  # runs, but not as configured (e.g. CPU fallback): amber, not green
            return theme.WARN, lamp_label(s.detail) or ok
        if s.ok:
            return theme.PASS, lamp_label(s.detail) or ok
        return theme.REJECT, lamp_label(s.reason)

    def refresh(self) -> None:
        s = self.state
        d = theme.px(30, self.scale)
        colour, text = self._look_of(s)
        if self.extra and s is not None and s.ok:
            text = f"{self.extra} · {text}"
        look = (colour, d, lamp_title(self.component))
        if look != self._look:  # restyling is slow: only when the colour, size or language changes
            self._look = look
            self.dot.setFixedSize(d, d)
            self.dot.setStyleSheet(f"background: {colour}; border-radius: {d // 2}px; border: 2px solid #000;")
            self.name.setText(look[2])
            self.name.setMinimumWidth(theme.px(118, self.scale))
        if text != self.reason.text():
            self.reason.setText(text)
            self.reason.setToolTip(text)


class SummaryLamp(Lamp):
    """One lamp for the parts without their own (recipe, pipeline, registration, calibration, image, repeat).

    Why: their faults showed only as an alarm. Once it was acknowledged (or, at start, never delivered), the Line
    screen looked healthy while the station was NOT READY: a recipe refused at start left five green lamps and a
    line that never moved. Red with the first fault's name and reason; gray while the operator has stopped the line.
    """

    def __init__(self, parent=None):
        self.parts: dict[str, ComponentState] = {}
        super().__init__("inspection", parent)

    def set_state(self, state: ComponentState) -> None:
        self.parts[state.name] = state
        failing = [p for p in self.parts.values() if not p.ok]
        degraded = [p for p in self.parts.values() if p.ok and p.warning]
        self.state = (failing or degraded or list(self.parts.values()))[0]
        self.refresh()

    def _look_of(self, s: ComponentState | None) -> tuple[str, str]:
        colour, text = super()._look_of(s)
        if s is None or s.ok:
            return colour, text if s is None or s.warning else QCoreApplication.translate("Lamp", "OK")
        if s.reason in OPERATOR_REASONS | STARTUP_REASONS:  # no fault: no fault's title ("Inspection failed")
            return theme.OFF, text
        return colour, f"{alarm_title(s.name)}: {text}"


class ResultStrip(QWidget):
    """The last 20 boards, oldest left; red or green blocks readable at a glance."""

    def __init__(self, n: int = 20, parent=None):
        super().__init__(parent)
        self.n = n
        self.results: tuple[ResultSummary, ...] = ()
        self.setMinimumHeight(48)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)

    def set_results(self, results: tuple[ResultSummary, ...]) -> None:
        self.results = results[-self.n :]
        self.update()

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        gap = 6
        w = (self.width() - gap * (self.n - 1)) / self.n
        h = self.height()
        f = QFont(self.font())
        f.setPixelSize(max(12, int(min(w, h) * 0.42)))
        f.setBold(True)
        p.setFont(f)
        for i in range(self.n):
            r = QRectF(i * (w + gap), 0, w, h)
            k = i - (self.n - len(self.results))
            if k < 0:
                p.setPen(Qt.PenStyle.NoPen)
                p.setBrush(QColor(theme.PANEL_2))
                p.drawRoundedRect(r, 6, 6)
                continue
            res = self.results[k]
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QColor(theme.PASS if res.passed else theme.REJECT))
            p.drawRoundedRect(r, 6, 6)
            p.setPen(QColor("#ffffff"))
            p.drawText(r, Qt.AlignmentFlag.AlignCenter, "✓" if res.passed else str(len(res.detections) or "!"))
        p.end()


class TwoLineLabel(QLabel):
    """A label of exactly two lines: the text wrapped at word boundaries, the second line ending in "…" when the rest
    does not fit.

    Why: an alarm's remedy follows its title and context ("Camera image unusable: 3 boards in a row: reference
    image: low contrast: camera gamma to 1, ..."); on one line it was cut mid-word before the remedy, and a
    tooltip is no help to a gloved finger. A fixed two-line height keeps the screen from jumping between alarms.
    """

    def sizeHint(self) -> QSize:  # noqa: N802
        return QSize(super().sizeHint().width(), 2 * self.fontMetrics().lineSpacing() + 4)

    def minimumSizeHint(self) -> QSize:  # noqa: N802
        return QSize(0, self.sizeHint().height())

    def paintEvent(self, event) -> None:  # noqa: N802
        r = self.contentsRect()
        fm = self.fontMetrics()
        layout = QTextLayout(self.text(), self.font())
        layout.beginLayout()
        lines = []
        while len(lines) < 2:
            line = layout.createLine()
            if not line.isValid():
                break
            line.setLineWidth(r.width())
            lines.append(line)
        layout.endLayout()
        texts = [self.text()[ln.textStart() : ln.textStart() + ln.textLength()] for ln in lines]
        if len(lines) == 2:  # the rest of the text on the last line, elided
            texts[1] = fm.elidedText(self.text()[lines[1].textStart() :], Qt.TextElideMode.ElideRight, r.width())
        p = QPainter(self)
        p.setPen(self.palette().color(self.foregroundRole()))
        p.setFont(self.font())
        top = r.top() + (r.height() - len(texts) * fm.lineSpacing()) // 2
        for i, t in enumerate(texts):
            p.drawText(r.left(), top + i * fm.lineSpacing() + fm.ascent(), t.rstrip())
        p.end()


class AlarmBanner(QFrame):
    acknowledge = Signal()

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setObjectName("alarm")
        self.text = TwoLineLabel(self)
        self.text.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self.ack = QPushButton(self)
        self.ack.setObjectName("ack")
        self.ack.clicked.connect(self.acknowledge)
        lay = QHBoxLayout(self)
        lay.addWidget(self.text, 1)
        lay.addWidget(self.ack)
        self.model: AlarmModel | None = None
        self.scale = 1.0
        self.hide()

    def bind(self, model: AlarmModel) -> None:
        self.model = model
        model.changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        s = self.scale
        self.setStyleSheet(
            f"QFrame#alarm {{ background: {theme.REJECT}; border-radius: {theme.px(8, s)}px; }}"
            f"QLabel {{ color: #ffffff; font-size: {theme.px(24, s)}px; font-weight: bold; }}"
        )
        self.text.updateGeometry()
        self.ack.setText(self.tr("ACKNOWLEDGE"))
        pending = self.model.unacknowledged if self.model else []
        if not pending:
            self.hide()
            return
        first = pending[-1]
        more = len(pending) - 1
        text = f"⚠  {first.title}: {lamp_label(first.reason)}   ({first.raised_at:%H:%M:%S})"
        if more:
            text += "   " + self.tr("+%1 more").replace("%1", str(more))
        self.text.setText(text)
        self.text.setToolTip(text)
        self.show()

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.refresh()
        super().changeEvent(e)


class OperatorScreen(QWidget):
    start_requested = Signal()
    stop_requested = Signal()
    recipe_requested = Signal(str)
    acknowledge_requested = Signal()

    def __init__(self, alarms: AlarmModel, parent=None):
        super().__init__(parent)
        self.alarms = alarms
        self.update_count = 0
        self.last_update: LiveUpdate | None = None
        self.camera_fps = 0.0
        self.running = False
        self.zoom: ZoomDialog | None = None

        self.alarm_banner = AlarmBanner(self)
        self.alarm_banner.bind(alarms)
        self.alarm_banner.acknowledge.connect(self.acknowledge_requested)

        self.live = LiveView(self)
        self.live.defect_tapped.connect(self.open_zoom)
        self.live_caption = QLabel(self)
        self.live_caption.setObjectName("dim")
        # Cut at the screen's edge rather than widen the live column: a long model id narrowed the verdict column until
        # serial and cycle wrapped onto two lines each.
        self.live_caption.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

        self.verdict = VerdictBanner(self)
        self.tiles = {
            k: CounterTile(self)
            for k in ("inspected", "passed", "rejected", "yield", "rate", "serial_mismatch", "code_unreadable")
        }
        counters = QGridLayout()
        counters.setSpacing(8)
        for i, k in enumerate(("inspected", "passed", "rejected")):
            counters.addWidget(self.tiles[k], 0, i)
        counters.addWidget(self.tiles["yield"], 1, 0, 1, 2)
        counters.addWidget(self.tiles["rate"], 1, 2)
        # Boards rejected for their serial (code read on the board vs the PLC's, or no code read): shown
        # from the first such board of the shift on, so a line without board codes keeps its layout.
        counters.addWidget(self.tiles["serial_mismatch"], 2, 0, 1, 2)
        counters.addWidget(self.tiles["code_unreadable"], 2, 2)
        for k in ("serial_mismatch", "code_unreadable"):
            self.tiles[k].setVisible(False)

        self.lamp_panel = QFrame(self)
        self.lamp_panel.setObjectName("panel")
        lamp_lay = QVBoxLayout(self.lamp_panel)
        lamp_lay.setSpacing(0)
        # Six lamps and an alarm banner must fit 800 px with the verdict whole: lamps sit edge to edge.
        lamp_lay.setContentsMargins(9, 4, 9, 4)
        self.lamps = {name: Lamp(name, self.lamp_panel) for name in LAMPS if name != "inspection"}
        self.lamps["inspection"] = SummaryLamp(self.lamp_panel)
        for lamp in self.lamps.values():
            lamp_lay.addWidget(lamp)

        right = QVBoxLayout()
        right.setSpacing(10)
        right.addWidget(self.verdict, 5)
        right.addLayout(counters, 3)
        right.addWidget(self.lamp_panel, 4)

        left = QVBoxLayout()
        left.addWidget(self.live, 1)
        left.addWidget(self.live_caption)

        middle = QHBoxLayout()
        middle.setSpacing(12)
        middle.addLayout(left, 11)
        middle.addLayout(right, 9)

        self.strip_label = QLabel(self)
        self.strip_label.setObjectName("section")
        self.strip = ResultStrip(20, self)
        self.recipe = QComboBox(self)
        self.recipe.setMinimumWidth(220)
        # Sized for about 18 characters, not for the longest name: a plant's recipe names (product, revision, side)
        # squeezed the 20-board strip to slivers. The open list shows every name whole.
        self.recipe.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.recipe.setMinimumContentsLength(18)
        self.recipe.activated.connect(lambda _i: self.recipe_requested.emit(self.recipe.currentText()))
        self.start_stop = QPushButton(self)
        self.start_stop.setMinimumWidth(200)
        self.start_stop.clicked.connect(self._start_stop_clicked)
        self.recipe_label = QLabel(self)
        self.recipe_label.setObjectName("dim")

        strip_box = QVBoxLayout()
        strip_box.setSpacing(2)
        strip_box.addWidget(self.strip_label)
        strip_box.addWidget(self.strip, 1)
        bottom = QHBoxLayout()
        bottom.setSpacing(12)
        bottom.addLayout(strip_box, 1)
        bottom.addWidget(self.recipe_label)
        bottom.addWidget(self.recipe)
        bottom.addWidget(self.start_stop)

        root = QVBoxLayout(self)
        root.setContentsMargins(12, 8, 12, 10)
        root.setSpacing(10)
        root.addWidget(self.alarm_banner)
        root.addLayout(middle, 1)
        root.addLayout(bottom)
        self.set_scale(1.0)
        self.set_running(False)
        self.retranslate()

    # ------------------------------------------------------------ inputs
    def set_recipes(self, names: list[str], active: str) -> None:
        self.recipe.blockSignals(True)
        self.recipe.clear()
        self.recipe.addItems(names)
        self.recipe.setCurrentText(active)
        self.recipe.blockSignals(False)

    def set_running(self, running: bool) -> None:
        self.running = running
        self.start_stop.setObjectName("stop" if running else "start")
        self.start_stop.setText(self.tr("■  STOP") if running else self.tr("▶  START"))
        self.start_stop.style().unpolish(self.start_stop)
        self.start_stop.style().polish(self.start_stop)

    def _start_stop_clicked(self) -> None:
        (self.stop_requested if self.running else self.start_requested).emit()

    def on_health(self, state: ComponentState) -> None:
        self.lamps.get(state.name, self.lamps["inspection"]).set_state(state)

    def on_update(self, u: LiveUpdate) -> None:
        """Slot for `UiBridge.updated`: draws, then the caller acks the bridge."""
        self.update_count += 1
        prev = self.last_update
        self.last_update = u
        if u.image is not None:
            self.live.set_image(u.image, u.image_scale, u.display)
        elif u.latest is not None and (prev is None or prev.latest is None or prev.latest.uid != u.latest.uid):
            self.live.set_image(None)
        if u.latest is not None:
            self.live.set_overlays(overlays_for(u.latest.detections))
            self.live.placeholder = reason_label(u.latest.reason)
            stamp = f"{u.latest.timestamp.astimezone():%H:%M:%S}"
            self.live_caption.setText(
                self.tr("Board %1 · %2 · recipe %3 · model %4")
                .replace("%1", str(u.latest.frame_id))
                .replace("%2", stamp)
                .replace("%3", u.latest.recipe)
                .replace("%4", u.latest.model_id or "—")
            )
        if prev is None or prev.latest is None or u.latest is None or prev.latest.uid != u.latest.uid:
            self.verdict.show_result(u.latest)
        self._show_counts(u)
        self.strip.set_results(u.recent)
        self.camera_fps = u.camera_fps
        cam = self.lamps["camera"]
        cam.extra = f"{u.camera_fps:.1f} fps" if u.camera_fps else ""
        cam.refresh()

    def _show_counts(self, u: LiveUpdate) -> None:
        c = u.counts
        y = c.yield_pct
        values = {
            "inspected": f"{c.inspected:,}",
            "passed": f"{c.passed:,}",
            "rejected": f"{c.rejected:,}",
            "yield": "—" if y is None else f"{y:.1f} %",
            "rate": f"{c.boards_per_min:.1f}",
            "serial_mismatch": f"{c.serial_mismatch:,}",
            "code_unreadable": f"{c.code_unreadable:,}",
        }
        colours = {
            "passed": theme.PASS,
            "rejected": theme.REJECT if c.rejected else theme.TEXT,
            "yield": theme.TEXT if y is None else theme.PASS if y >= 95 else theme.WARN if y >= 85 else theme.REJECT,
            "serial_mismatch": theme.REJECT if c.serial_mismatch else theme.TEXT,
            "code_unreadable": theme.REJECT if c.code_unreadable else theme.TEXT,
        }
        for k, text in values.items():
            tile = self.tiles[k]
            if tile.value.text() != text:
                tile.value.setText(text)
            colour = colours.get(k, theme.TEXT)
            if tile.colour != colour:  # restyle only on change: a stylesheet change re-polishes the widget
                tile.colour = colour
                tile.value.setStyleSheet(f"color: {colour};")
        serial_rejects = bool(c.serial_mismatch or c.code_unreadable)
        for k in ("serial_mismatch", "code_unreadable"):
            if self.tiles[k].isVisibleTo(self) != serial_rejects:
                self.tiles[k].setVisible(serial_rejects)

    def open_zoom(self, index: int) -> None:
        if self.live.image is None or index >= len(self.live.overlays):
            return
        self.zoom = ZoomDialog(self.live.image, self.live.image_scale, self.live.overlays[index], self)
        self.zoom.resize(int(self.width() * 0.55), int(self.height() * 0.8))
        self.zoom.open()

    # ------------------------------------------------------------ look
    def set_scale(self, scale: float) -> None:
        self.verdict.set_scale(scale)
        self.alarm_banner.scale = scale
        self.alarm_banner.refresh()
        for lamp in self.lamps.values():
            lamp.scale = scale
            lamp.refresh()
        self.strip.setFixedHeight(theme.px(56, scale))

    def retranslate(self) -> None:
        names = {
            "inspected": self.tr("INSPECTED"),
            "passed": self.tr("PASSED"),
            "rejected": self.tr("REJECTED"),
            "yield": self.tr("YIELD"),
            "rate": self.tr("BOARDS/MIN"),
            "serial_mismatch": self.tr("SERIAL MISMATCH"),
            "code_unreadable": self.tr("NO CODE READ"),
        }
        for k, t in names.items():
            self.tiles[k].name.setText(t)
        self.strip_label.setText(self.tr("LAST 20 BOARDS (newest right)"))
        self.recipe_label.setText(self.tr("Recipe"))
        # No board shown yet (an update with counts only, e.g. the shift's recorded counts at start, shows none).
        no_board = self.last_update is None or self.last_update.latest is None
        if no_board:
            self.live.placeholder = self.tr("Waiting for the first board…")
        self.set_running(self.running)
        for lamp in self.lamps.values():
            lamp.refresh()
        if no_board:
            self.live_caption.setText(self.tr("Live image · tap a defect to zoom"))

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)
