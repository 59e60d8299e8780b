"""History browser for the quality engineer: filters, keyset paging, CSV export, open a board.

Why keyset paging (storage's `history(cursor=)`): a page deep in 100k inspections costs the same
as the first one, so "Older" stays instant; the screen keeps the cursors it has walked so "Newer"
goes back without a query that counts rows.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path

from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from inspector.domain import CLASS_NAMES

from . import theme
from .bridge import shift_start
from .labels import class_label, reason_label
from .records import HistoryFilter, QueryError, Records
from .worker import DbWorker, shared_worker

log = logging.getLogger(__name__)

PAGE_SIZE = 50
PERIODS = ("shift", "hour", "day", "week", "all")


class HistoryScreen(QWidget):
    open_inspection = Signal(int)
    exported = Signal(int)
    """A CSV export finished: rows written, or -1 when it failed (the status line says why)."""

    def __init__(self, records: Records, recipe_names, parent=None, worker: DbWorker | None = None):
        super().__init__(parent)
        self.records = records
        self.worker = worker or shared_worker()
        self.loading = False
        self._recipe_names = recipe_names
        self.cursors: list = [None]  # cursor of each page walked (page 0 starts at None)
        self.applied: HistoryFilter | None = None
        """The filter of the pages shown (set by Search): Older/Newer walk it, whatever was typed since."""
        self.page = None
        self.rows = []
        self.total = 0
        self.page_index = 0

        self.period = QComboBox(self)
        self.verdict = QComboBox(self)
        self.defect_class = QComboBox(self)
        self.serial = QLineEdit(self)
        self.recipe = QComboBox(self)
        self.unreviewed = QCheckBox(self)
        self.apply_button = QPushButton(self)
        self.apply_button.setObjectName("start")
        self.apply_button.clicked.connect(self.refresh)
        self.serial.returnPressed.connect(self.refresh)
        self.export_button = QPushButton(self)
        self.export_button.clicked.connect(self.export_clicked)
        # A choice in a list or the check box applies at once (one tap less with gloves); typed serials on Enter or
        # Search. `activated`/`clicked` come from the user only, not from `enter` refilling the recipe list.
        for combo in (self.period, self.verdict, self.defect_class, self.recipe):
            combo.activated.connect(lambda _i: self.refresh())
        self.unreviewed.clicked.connect(lambda _c: self.refresh())

        filters = QHBoxLayout()
        filters.setSpacing(8)
        for w in (self.period, self.verdict, self.defect_class, self.recipe):
            filters.addWidget(w)
        filters.addWidget(self.serial, 1)
        filters.addWidget(self.unreviewed)
        filters.addWidget(self.apply_button)

        self.table = QTableWidget(0, 8, self)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
        self.table.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        self.table.cellDoubleClicked.connect(lambda row, _c: self._open_row(row))
        self.table.itemSelectionChanged.connect(self._selection_changed)

        self.newer = QPushButton(self)
        self.newer.clicked.connect(self.newer_page)
        self.older = QPushButton(self)
        self.older.clicked.connect(self.older_page)
        self.open_button = QPushButton(self)
        self.open_button.setObjectName("start")
        self.open_button.clicked.connect(lambda: self._open_row(self.table.currentRow()))
        self.status = QLabel(self)
        self.status.setObjectName("dim")
        nav = QHBoxLayout()
        nav.addWidget(self.newer)
        nav.addWidget(self.older)
        nav.addWidget(self.status, 1)
        nav.addWidget(self.export_button)
        nav.addWidget(self.open_button)

        root = QVBoxLayout(self)
        root.setContentsMargins(12, 8, 12, 10)
        root.addLayout(filters)
        root.addWidget(self.table, 1)
        root.addLayout(nav)
        self.scale = 1.0
        self.retranslate()
        self._selection_changed()

    # ------------------------------------------------------------ filter
    def current_filter(self) -> HistoryFilter:
        now = datetime.now(UTC)
        period = self.period.currentData()
        start = {
            "hour": now - timedelta(hours=1),
            "day": now - timedelta(days=1),
            "week": now - timedelta(days=7),
            "shift": shift_start(datetime.now()).astimezone(UTC),
        }.get(period)
        verdict = self.verdict.currentData()
        cls = self.defect_class.currentData()
        recipe = self.recipe.currentData()
        serial = self.serial.text().strip() or None
        return HistoryFilter(
            start=start,
            verdict=verdict,
            defect_class=cls,
            serial=serial,
            recipe=recipe,
            reviewed=False if self.unreviewed.isChecked() else None,
        )

    def enter(self) -> None:
        names = self._recipe_names()
        current = self.recipe.currentData()
        self.recipe.blockSignals(True)
        self.recipe.clear()
        self.recipe.addItem(self.tr("All recipes"), None)
        for n in names:
            self.recipe.addItem(n, n)
        if current in names:
            self.recipe.setCurrentIndex(names.index(current) + 1)
        self.recipe.blockSignals(False)
        self.refresh()

    def refresh(self) -> None:
        self.applied = self.current_filter()
        self.cursors = [None]
        self._load(0)

    def _load(self, index: int) -> None:
        """Page `index` (and the count, for page 0) is queried on the worker; a newer request wins.

        Pages walk the applied filter: Older after a serial typed without Search used the typed serial with the
        previous filter's cursor, and showed rows of neither under the old count."""
        f = self.applied if self.applied is not None else self.current_filter()
        cursor = self.cursors[index]
        records = self.records

        def query():
            page = records.history(f, limit=PAGE_SIZE, cursor=cursor)
            return page, (records.count(f) if index == 0 else None)

        self.loading = True
        self.status.setText(self.tr("Loading…"))
        self.newer.setEnabled(False)
        self.older.setEnabled(False)
        self.worker.submit(
            query,
            lambda res: self._loaded(index, *res),
            self._failed,
            key=(id(self), "page"),
            owner=self,
        )

    def _loaded(self, index: int, page, total: int | None) -> None:
        self.loading = False
        self.page = page
        if total is not None:
            self.total = total
        self.page_index = index
        self.rows = page.rows
        del self.cursors[index + 1 :]
        self.cursors.append(page.next_cursor)
        self._fill()

    def _failed(self, exc: Exception) -> None:
        self.loading = False
        self.status.setText(str(exc))
        self.newer.setEnabled(self.page_index > 0 and self.page is not None)
        self.older.setEnabled(self.page is not None and self.page.next_cursor is not None)
        if not isinstance(exc, QueryError):
            log.error("history query failed: %s", exc, exc_info=exc)

    def older_page(self) -> None:
        if not self.loading and self.page is not None and self.page.next_cursor is not None:
            self._load(self.page_index + 1)

    def newer_page(self) -> None:
        if not self.loading and getattr(self, "page_index", 0) > 0:
            self._load(self.page_index - 1)

    def _fill(self) -> None:
        t = self.table
        t.setRowCount(len(self.rows))
        zone = self.records.zone()  # the plant's, as the charts count shifts (not the PC's)
        for i, r in enumerate(self.rows):
            local = r.created_at.astimezone(zone)
            cells = [
                f"{local:%Y-%m-%d %H:%M:%S}",
                r.board_serial or "—",
                self.tr("PASS") if r.verdict == "PASS" else self.tr("REJECT"),
                str(r.defect_count),
                ", ".join(class_label(c) for c in r.classes) or reason_label(r.reason),
                r.recipe,
                f"{r.cycle_ms:.0f}",
                "✓" if r.reviewed else "",
            ]
            for j, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if j == 2:
                    item.setForeground(QColor(theme.PASS if r.verdict == "PASS" else theme.REJECT))
                    f = item.font()
                    f.setBold(True)
                    item.setFont(f)
                if j in (3, 6, 7):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignCenter)
                t.setItem(i, j, item)
            t.setRowHeight(i, max(theme.MIN_TOUCH_PX, theme.px(50, self.scale)))
        first = self.page_index * PAGE_SIZE + 1 if self.rows else 0
        last = self.page_index * PAGE_SIZE + len(self.rows)
        self.status.setText(
            self.tr("%1–%2 of %3 matching")
            .replace("%1", str(first))
            .replace("%2", str(last))
            .replace("%3", str(self.total))
        )
        self.newer.setEnabled(self.page_index > 0)
        self.older.setEnabled(self.page.next_cursor is not None)
        self._selection_changed()

    def _selection_changed(self) -> None:
        self.open_button.setEnabled(0 <= self.table.currentRow() < len(self.rows))

    def _open_row(self, row: int) -> None:
        if 0 <= row < len(self.rows):
            self.open_inspection.emit(self.rows[row].id)

    def open_first(self, prefer_reject: bool = True) -> None:
        """Open the newest board (a reject with defects if there is one): screenshots, kiosk demos.

        The lookup runs on the database worker like every other query of this screen.
        """
        records = self.records

        def newest() -> int | None:
            f = HistoryFilter(verdict="REJECT") if prefer_reject else None
            page = records.history(f, limit=20)
            rows = [r for r in page.rows if r.defect_count] or page.rows or records.history(None, limit=1).rows
            return rows[0].id if rows else None

        self.worker.submit(
            newest, lambda iid: iid is not None and self.open_inspection.emit(iid), self._failed, owner=self
        )

    # ------------------------------------------------------------ export
    def export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export CSV"), "inspections.csv", "CSV (*.csv)")
        if path:
            self.start_export(Path(path))

    def start_export(self, path: Path) -> None:
        """Write the filtered view to `path` on the database worker; `exported` reports the row count.

        Every page of a filter over 100k inspections can take seconds to read and write; the screen
        keeps drawing, and the button stays disabled until the file is complete (one export at a time).
        """
        f, records = self.current_filter(), self.records
        self.export_button.setEnabled(False)
        self.status.setText(self.tr("Exporting to %1…").replace("%1", str(path)))
        self.worker.submit(
            lambda: records.export_csv(f, path),
            lambda n: self._exported(path, n),
            lambda exc: self._export_failed(path, exc),
            owner=self,
        )

    def _exported(self, path: Path, n: int) -> None:
        self.export_button.setEnabled(True)
        self.status.setText(self.tr("%1 rows written to %2").replace("%1", str(n)).replace("%2", str(path)))
        self.exported.emit(n)

    def _export_failed(self, path: Path, exc: Exception) -> None:
        self.export_button.setEnabled(True)
        self.status.setText(self.tr("Export to %1 failed: %2").replace("%1", str(path)).replace("%2", str(exc)))
        self.exported.emit(-1)

    def export_to(self, path: Path) -> int:
        """All rows of the current filter (every page, not only the one shown), on the calling thread."""
        return self.records.export_csv(self.current_filter(), path)

    # ------------------------------------------------------------ look
    def set_scale(self, scale: float) -> None:
        self.scale = scale
        self.serial.setMinimumWidth(theme.px(160, scale))

    def retranslate(self) -> None:
        def refill(combo: QComboBox, items: list[tuple[str, object]]) -> None:
            i = max(0, combo.currentIndex())
            combo.blockSignals(True)
            combo.clear()
            for text, data in items:
                combo.addItem(text, data)
            combo.setCurrentIndex(min(i, combo.count() - 1))
            combo.blockSignals(False)

        refill(
            self.period,
            [
                (self.tr("This shift"), "shift"),
                (self.tr("Last hour"), "hour"),
                (self.tr("Last 24 h"), "day"),
                (self.tr("Last 7 days"), "week"),
                (self.tr("All time"), "all"),
            ],
        )
        refill(
            self.verdict, [(self.tr("All verdicts"), None), (self.tr("PASS"), "PASS"), (self.tr("REJECT"), "REJECT")]
        )
        refill(self.defect_class, [(self.tr("All classes"), None)] + [(class_label(n), n) for n in CLASS_NAMES])
        if self.recipe.count() == 0:
            self.recipe.addItem(self.tr("All recipes"), None)
        else:
            self.recipe.setItemText(0, self.tr("All recipes"))
        self.serial.setPlaceholderText(self.tr("Serial (ABC* = prefix)"))
        self.unreviewed.setText(self.tr("Unreviewed only"))
        self.apply_button.setText(self.tr("Search"))
        self.export_button.setText(self.tr("Export CSV"))
        self.newer.setText(self.tr("◀ Newer"))
        self.older.setText(self.tr("Older ▶"))
        self.open_button.setText(self.tr("Open / review"))
        self.table.setHorizontalHeaderLabels(
            [
                self.tr("Time"),
                self.tr("Serial"),
                self.tr("Verdict"),
                self.tr("Defects"),
                self.tr("Classes"),
                self.tr("Recipe"),
                self.tr("Cycle ms"),
                self.tr("Reviewed"),
            ]
        )
        if self.rows:
            self._fill()

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)
