"""Review of one archived board: confirm or reject each defect, draw the ones the model missed.

Why each tap is stored at once (storage's `review_defect` / `add_missed_defect`, each with its
audit event in the same transaction): a reviewer called away from the desk loses nothing, and the
retraining export reads exactly what is on screen.
"""

from __future__ import annotations

import logging

from PySide6.QtCore import QEvent, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QScrollArea,
    QVBoxLayout,
    QWidget,
)

from inspector.domain import CLASS_NAMES

from . import theme
from .auth import Permission, PermissionDenied, Session
from .bridge import to_owned_qimage
from .image_view import ImageCanvas, Overlay
from .labels import class_label, reason_label
from .records import RecordError, Records
from .worker import DbWorker, shared_worker

log = logging.getLogger(__name__)


class ReviewCanvas(ImageCanvas):
    """The archived board; in draw mode a press-drag-release adds a box (frame pixels)."""

    box_drawn = Signal(tuple)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.draw_mode = False
        self._start: QPointF | None = None
        self._end: QPointF | None = None

    def mousePressEvent(self, event) -> None:  # noqa: N802
        if self.draw_mode and self.image is not None:
            self._start = self._end = event.position()
            self.update()
            return
        super().mousePressEvent(event)

    def mouseMoveEvent(self, event) -> None:  # noqa: N802
        if self._start is not None:
            self._end = event.position()
            self.update()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if self._start is None:
            return
        a, b = self.to_frame(self._start), self.to_frame(event.position())
        self._start = self._end = None
        self.update()
        box = (min(a[0], b[0]), min(a[1], b[1]), max(a[0], b[0]), max(a[1], b[1]))
        if box[2] - box[0] >= 3 and box[3] - box[1] >= 3:
            self.box_drawn.emit(box)

    def paint_extra(self, p: QPainter) -> None:
        if self._start is not None and self._end is not None:
            p.setPen(QPen(QColor(theme.MISSED_COLOUR), 3, Qt.PenStyle.DashLine))
            p.drawRect(QRectF(self._start, self._end).normalized())


class DefectRow(QFrame):
    verdict_chosen = Signal(int, str)

    def __init__(self, index: int, parent=None):
        super().__init__(parent)
        self.setObjectName("panel")
        self.index = index
        self.label = QLabel(self)
        self.label.setWordWrap(True)
        self.confirm = QPushButton(self)
        self.confirm.setCheckable(True)
        self.false_call = QPushButton(self)
        self.false_call.setCheckable(True)
        self.confirm.clicked.connect(lambda: self.verdict_chosen.emit(self.index, "confirmed"))
        self.false_call.clicked.connect(lambda: self.verdict_chosen.emit(self.index, "false_call"))
        lay = QVBoxLayout(self)
        lay.addWidget(self.label)
        buttons = QHBoxLayout()
        buttons.addWidget(self.confirm)
        buttons.addWidget(self.false_call)
        lay.addLayout(buttons)

    def show_review(self, review: str | None) -> None:
        self.confirm.setChecked(review == "confirmed")
        self.false_call.setChecked(review == "false_call")


class ReviewScreen(QWidget):
    back = Signal()
    saved = Signal(int)
    loaded = Signal(bool)
    """A `load` finished: True with the board shown, False when it is missing or unreadable."""

    def __init__(self, records: Records, session: Session, parent=None, worker: DbWorker | None = None):
        super().__init__(parent)
        self.records = records
        self.worker = worker or shared_worker()
        self.writing = 0
        """Review writes submitted and not yet confirmed by the worker."""
        self.session = session
        self.detail = None
        self.loading: int | None = None
        """The inspection being read on the worker, if any."""
        self.rows: list[DefectRow] = []
        self.stored = 0

        self.canvas = ReviewCanvas(self)
        self.canvas.tapped.connect(self._tapped)
        self.canvas.box_drawn.connect(self.add_missed)
        self.title = QLabel(self)
        self.title.setObjectName("title")
        self.title.setWordWrap(True)
        self.info = QLabel(self)
        self.info.setObjectName("dim")
        self.info.setWordWrap(True)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {theme.WARN}; font-weight: bold;")
        self.list_box = QVBoxLayout()
        self.list_box.setSpacing(8)
        holder = QWidget(self)
        holder.setLayout(self.list_box)
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setWidget(holder)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        self.missed_class = QComboBox(self)
        for i, n in enumerate(CLASS_NAMES, 1):
            self.missed_class.addItem(class_label(n), i)
        self.draw_button = QPushButton(self)
        self.draw_button.setCheckable(True)
        self.draw_button.toggled.connect(self._draw_toggled)
        self.board_ok = QPushButton(self)
        self.board_ok.clicked.connect(self.mark_board_reviewed)
        self.back_button = QPushButton(self)
        self.back_button.clicked.connect(self.back)

        right = QVBoxLayout()
        right.addWidget(self.title)
        right.addWidget(self.info)
        right.addWidget(scroll, 1)
        missed = QHBoxLayout()
        missed.addWidget(self.draw_button, 1)
        missed.addWidget(self.missed_class)
        right.addLayout(missed)
        right.addWidget(self.message)
        bottom = QHBoxLayout()
        bottom.addWidget(self.back_button)
        bottom.addWidget(self.board_ok, 1)
        right.addLayout(bottom)

        root = QHBoxLayout(self)
        root.setContentsMargins(12, 8, 12, 10)
        root.setSpacing(12)
        root.addWidget(self.canvas, 3)
        root.addLayout(right, 2)
        self.retranslate()

    # ------------------------------------------------------------ data
    def load(self, inspection_id: int) -> None:
        """Open a board: its record and archived image are read and decoded on the database worker.

        A full-resolution archived PNG takes tens of milliseconds to read and decode, more on a busy
        disk; the GUI thread only receives an owned QImage and draws it. `loaded` says how it went.
        A newer `load` supersedes one still running, so a double tap shows the board tapped last.
        """
        self.loading = inspection_id
        self.draw_button.setChecked(False)
        self.message.setText(self.tr("Loading…"))
        records = self.records

        def job():
            detail = records.detail(inspection_id)
            if detail is None:
                return None, None, 1.0
            img = records.image(detail.row.image_path)
            if img is None:
                return detail, None, 1.0
            qimg, scale = to_owned_qimage(img, 2400)  # an owned copy, made here, off the GUI thread
            return detail, qimg, scale

        self.worker.submit(
            job,
            lambda res: self._loaded(inspection_id, *res),
            lambda exc: self._load_failed(inspection_id, exc),
            key=("review-load", id(self)),
            owner=self,
        )

    def _loaded(self, inspection_id: int, detail, qimg, scale: float) -> None:
        self.loading = None
        self.message.setText("")
        if detail is None:
            self.message.setText(self.tr("Inspection %1 not found").replace("%1", str(inspection_id)))
            self.loaded.emit(False)
            return
        self.detail = detail
        if qimg is not None:
            self.canvas.set_image(qimg, scale)
        else:
            self.canvas.set_image(None)
            self.canvas.placeholder = self.tr("No archived image (%1)").replace(
                "%1", detail.archive_error or self.tr("not archived")
            )
        self._rebuild_rows()
        self._show()
        self.loaded.emit(True)

    def _load_failed(self, inspection_id: int, exc: Exception) -> None:
        self.loading = None
        self.message.setText(
            self.tr("Inspection %1 could not be read: %2").replace("%1", str(inspection_id)).replace("%2", str(exc))
        )
        self.loaded.emit(False)

    def _rebuild_rows(self) -> None:
        for row in self.rows:
            row.setParent(None)
            row.deleteLater()
        self.rows = []
        while self.list_box.count():
            self.list_box.takeAt(0)
        for i, _ in enumerate(self.detail.defects):
            row = DefectRow(i, self)
            row.verdict_chosen.connect(self.review_defect)
            self.rows.append(row)
            self.list_box.addWidget(row)
        self.list_box.addStretch(1)
        self.retranslate_rows()

    def _show(self) -> None:
        d = self.detail
        r = d.row
        verdict = self.tr("PASS") if r.verdict == "PASS" else self.tr("REJECT")
        self.title.setText(f"{verdict} · {r.board_serial or ('#' + str(r.id))}")
        self.title.setStyleSheet(f"color: {theme.PASS if r.verdict == 'PASS' else theme.REJECT};")
        self.info.setText(
            f"{r.created_at.astimezone(self.records.zone()):%Y-%m-%d %H:%M:%S} · {r.recipe} · {r.model_id} · {r.cycle_ms:.0f} ms"
            + (f"\n{reason_label(r.reason)}" if r.reason else "")
        )
        overlays = []
        for i, dv in enumerate(d.defects):
            colour = {
                "false_call": theme.FALSE_CALL_COLOUR,
            }.get(dv.review or "", theme.CLASS_COLOURS.get(dv.class_id, "#ffffff"))
            tag = {"confirmed": " ✓", "false_call": " ✗"}.get(dv.review or "", "")
            overlays.append(Overlay(dv.box, colour, f"{i + 1}{tag}", dashed=dv.review == "false_call"))
            self.rows[i].show_review(dv.review)
        for m in d.missed:
            overlays.append(Overlay(m.box, theme.MISSED_COLOUR, f"+ {class_label(m.class_name)}", dashed=True))
        self.canvas.set_overlays(overlays)
        self.retranslate_rows()

    # ------------------------------------------------------------ actions
    def _reviewer(self) -> str | None:
        try:
            return self.session.require(Permission.REVIEW).name
        except PermissionDenied:
            self.message.setText(self.tr("Log in to review"))
            return None

    def review_defect(self, index: int, verdict: str) -> bool:
        """True when the review was handed to the worker (stored and re-read there, shown when back)."""
        who = self._reviewer()
        if who is None or self.detail is None:
            self._show() if self.detail else None
            return False
        dv = self.detail.defects[index]
        records = self.records
        self._write(lambda: records.review_defect(dv.id, verdict, who), count=True)
        return True

    def add_missed(self, box: tuple) -> bool:
        who = self._reviewer()
        if who is None or self.detail is None:
            return False
        records, iid, cls = self.records, self.detail.row.id, int(self.missed_class.currentData())
        self.draw_button.setChecked(False)
        self._write(lambda: records.add_missed(iid, box, cls, who), count=True)
        return True

    def mark_board_reviewed(self) -> bool:
        who = self._reviewer()
        if who is None or self.detail is None:
            return False
        if any(dv.review is None for dv in self.detail.defects):
            # The records refuse it too: "Board OK" would say nothing of these detections (docs/storage.md).
            self.message.setText(self.tr("Judge every detection first (confirmed or false call), then Board OK"))
            return False
        records, iid = self.records, self.detail.row.id
        self._write(lambda: records.mark_reviewed(iid, who), count=False)
        return True

    def _write(self, write, *, count: bool) -> None:
        """Store on the worker, then re-read the board there too; never superseded (no write is lost)."""
        records, iid = self.records, self.detail.row.id

        def job():
            write()
            return records.detail(iid)

        self.writing += 1
        self.message.setText(self.tr("Saving…"))
        self.worker.submit(job, lambda d: self._written(d, count), self._write_failed, owner=self)

    def _written(self, detail, count: bool) -> None:
        self.writing -= 1
        if self.writing == 0:
            self.message.setText("")
        if count:
            self.stored += 1
        self.saved.emit(1)
        # The board may have changed while the write ran: only redraw the one it belongs to.
        if detail is not None and self.detail is not None and detail.row.id == self.detail.row.id:
            self.detail = detail
            self._show()

    def _write_failed(self, exc: Exception) -> None:
        self.writing -= 1
        self.message.setText(str(exc))
        if not isinstance(exc, RecordError):
            log.error("review could not be stored: %s", exc, exc_info=exc)
        if self.detail is not None:
            self._show()

    def _draw_toggled(self, on: bool) -> None:
        self.canvas.draw_mode = on
        self.message.setText(self.tr("Drag a box around the missed defect") if on else "")

    def _tapped(self, x: float, y: float) -> None:
        i = self.canvas.overlay_at(x, y)
        if i is not None and i < len(self.rows):
            self.rows[i].confirm.setFocus()

    # ------------------------------------------------------------ look
    def retranslate_rows(self) -> None:
        if self.detail is None:
            return
        for row, dv in zip(self.rows, self.detail.defects):
            status = {
                "confirmed": self.tr("confirmed by %1"),
                "false_call": self.tr("false call (%1)"),
            }.get(dv.review or "", self.tr("not reviewed"))
            row.label.setText(
                f"<b>{row.index + 1}. {class_label(dv.class_name)}</b> · {dv.score:.2f} · "
                + status.replace("%1", dv.reviewer or "")
            )
            row.confirm.setText(self.tr("✓ Confirm"))
            row.false_call.setText(self.tr("✗ False call"))

    def retranslate(self) -> None:
        for i, n in enumerate(CLASS_NAMES):
            self.missed_class.setItemText(i, class_label(n))
        self.draw_button.setText(self.tr("+ Draw missed defect"))
        self.board_ok.setText(self.tr("Board OK, nothing to add"))
        self.back_button.setText(self.tr("◀ History"))
        if self.detail is None:
            self.title.setText(self.tr("No board selected"))
            self.info.setText(self.tr("Open a board from History."))
            self.canvas.placeholder = self.tr("Open a board from History.")
        else:
            self._show()

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)
