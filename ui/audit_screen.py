"""The audit trail for engineers and admins: who did what, when, from where, before -> after.

Why a screen and not only `pcb-inspector audit list`: the quality engineer on the line answers "who
changed this recipe last night" at the station, without a terminal. Queries run on the database
worker (a long trail must not freeze the GUI); "Verify" walks the whole signed chain there too and
says which event is the first broken one.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .auth import Permission, Session
from .records import AuditFilter, Records
from .worker import DbWorker, shared_worker

log = logging.getLogger(__name__)

PERIODS = ("day", "week", "month", "all")
ROW_LIMIT = 500


def _brief(v: Any, n: int = 80) -> str:
    if v is None:
        return ""
    text = json.dumps(v, sort_keys=True, ensure_ascii=False, default=str)
    return text if len(text) <= n else text[: n - 1] + "…"


class AuditScreen(QWidget):
    loaded = Signal(int)
    """Rows shown after a query (tests and screenshots wait for it)."""
    verified = Signal(bool)
    exported = Signal(int)

    def __init__(self, records: Records, session: Session, parent=None, worker: DbWorker | None = None):
        super().__init__(parent)
        self.records = records
        self.session = session
        self.worker = worker or shared_worker()
        self.events: list[Any] = []
        self._users: list[tuple[str, str]] = []
        self._actions: list[tuple[str, str]] = []

        self.period = QComboBox(self)
        self.user = QComboBox(self)
        self.action = QComboBox(self)
        self.apply_button = QPushButton(self)
        self.apply_button.setObjectName("start")
        self.apply_button.clicked.connect(self.refresh)
        self.verify_button = QPushButton(self)
        self.verify_button.clicked.connect(self.verify)
        self.export_button = QPushButton(self)
        self.export_button.clicked.connect(self.export_clicked)
        filters = QHBoxLayout()
        filters.setSpacing(8)
        filters.addWidget(self.period)
        filters.addWidget(self.user, 1)
        filters.addWidget(self.action, 1)
        filters.addWidget(self.apply_button)

        self.table = QTableWidget(0, 7, self)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().setVisible(False)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(5, QHeaderView.ResizeMode.Stretch)
        head.setSectionResizeMode(6, QHeaderView.ResizeMode.Stretch)

        self.status = QLabel(self)
        self.status.setObjectName("dim")
        self.chain = QLabel(self)
        self.chain.setWordWrap(True)
        nav = QHBoxLayout()
        nav.addWidget(self.status, 1)
        nav.addWidget(self.verify_button)
        nav.addWidget(self.export_button)

        root = QVBoxLayout(self)
        root.setContentsMargins(12, 8, 12, 10)
        root.addLayout(filters)
        root.addWidget(self.table, 1)
        root.addWidget(self.chain)
        root.addLayout(nav)
        self.retranslate()

    # ------------------------------------------------------------ filter
    def current_filter(self) -> AuditFilter:
        now = datetime.now(UTC)
        since = {
            "day": now - timedelta(days=1),
            "week": now - timedelta(days=7),
            "month": now - timedelta(days=31),
        }.get(self.period.currentData())
        return AuditFilter(who=self.user.currentData(), action=self.action.currentData(), since=since)

    def enter(self) -> None:
        self.worker.submit(self.records.audit_choices, self._set_choices, self._failed, key=("audit-choices", id(self)))
        self.refresh()

    def _set_choices(self, choices: tuple[list[str], list[str]]) -> None:
        users, actions = choices
        families = sorted({a.split(".")[0] for a in actions if "." in a} - set(actions))
        self._users = [(u, u) for u in users]
        self._actions = [(f"{f}.*", f) for f in families] + [(a, a) for a in actions]
        self._fill_choices()

    def _fill_choices(self) -> None:
        for combo, everything, items in (
            (self.user, self.tr("All users"), self._users),
            (self.action, self.tr("All actions"), self._actions),
        ):
            keep = combo.currentData()
            combo.blockSignals(True)
            combo.clear()
            combo.addItem(everything, None)
            for text, data in items:
                combo.addItem(text, data)
            i = combo.findData(keep)
            combo.setCurrentIndex(max(0, i))
            combo.blockSignals(False)

    def refresh(self) -> None:
        if not self.session.can(Permission.VIEW_AUDIT):
            return
        f = self.current_filter()
        self.status.setText(self.tr("Loading…"))
        self.worker.submit(
            lambda: self.records.audit_events(ROW_LIMIT, f),
            self._show,
            self._failed,
            key=("audit", id(self)),
            owner=self,
        )

    def _show(self, events: list[Any]) -> None:
        self.events = events
        self._fill()
        shown = len(events)
        text = self.tr("%1 event(s)").replace("%1", str(shown))
        if shown >= ROW_LIMIT:
            text += " " + self.tr("(newest %1; narrow the filter or export)").replace("%1", str(ROW_LIMIT))
        self.status.setText(text)
        self.loaded.emit(shown)

    def _fill(self) -> None:
        self.table.setRowCount(len(self.events))
        zone = self.records.zone()
        for i, ev in enumerate(self.events):
            cells = (
                ev.at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S"),
                ev.who,
                ev.source or "",
                ev.action,
                ev.target,
                _brief(ev.before),
                _brief(ev.after),
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                if c >= 5 and text:
                    item.setToolTip(json.dumps(ev.before if c == 5 else ev.after, indent=1, ensure_ascii=False))
                self.table.setItem(i, c, item)

    def _failed(self, exc: Exception) -> None:
        log.error("audit screen query failed: %s", exc)
        self.status.setText(self.tr("Query failed: %1").replace("%1", str(exc)))

    # ------------------------------------------------------------ verify / export
    def verify(self) -> None:
        self.chain.setText(self.tr("Verifying the audit chain…"))
        self.worker.submit(
            self.records.verify_audit, self._verified, self._verify_failed, key=("audit-verify", id(self))
        )

    def _verified(self, rep: Any) -> None:
        if rep.ok:
            self.chain.setStyleSheet(f"color: {theme.PASS}; font-weight: bold;")
            self.chain.setText(
                self.tr("Audit chain intact: %1 events, %2 signatures valid")
                .replace("%1", str(rep.checked))
                .replace("%2", str(rep.signed))
            )
        else:
            self.chain.setStyleSheet(f"color: {theme.REJECT}; font-weight: bold;")
            self.chain.setText(
                self.tr("Audit chain BROKEN (%1 problems). First: %2")
                .replace("%1", str(len(rep.problems)))
                .replace("%2", rep.problems[0])
            )
        self.verified.emit(rep.ok)

    def _verify_failed(self, exc: Exception) -> None:
        self.chain.setStyleSheet(f"color: {theme.REJECT}; font-weight: bold;")
        self.chain.setText(self.tr("Verification failed: %1").replace("%1", str(exc)))
        self.verified.emit(False)

    def export_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export audit trail"), "audit.csv", "CSV (*.csv)")
        if path:
            self.export_to_background(Path(path))

    def export_to_background(self, path: Path) -> None:
        f = self.current_filter()

        def done(n: int) -> None:
            self.status.setText(self.tr("%1 event(s) written to %2").replace("%1", str(n)).replace("%2", str(path)))
            self.exported.emit(n)

        def failed(exc: Exception) -> None:
            self.status.setText(self.tr("Export failed: %1").replace("%1", str(exc)))
            self.exported.emit(-1)

        self.worker.submit(lambda: self.records.export_audit_csv(f, path), done, failed)

    # ------------------------------------------------------------ look
    def set_scale(self, scale: float) -> None:
        self.user.setMinimumWidth(theme.px(140, scale))
        self.action.setMinimumWidth(theme.px(160, scale))

    def retranslate(self) -> None:
        i = max(0, self.period.currentIndex())
        self.period.blockSignals(True)
        self.period.clear()
        for text, data in (
            (self.tr("Last 24 h"), "day"),
            (self.tr("Last 7 days"), "week"),
            (self.tr("Last 31 days"), "month"),
            (self.tr("All time"), "all"),
        ):
            self.period.addItem(text, data)
        self.period.setCurrentIndex(min(i, self.period.count() - 1))
        self.period.blockSignals(False)
        self._fill_choices()
        self.apply_button.setText(self.tr("Search"))
        self.verify_button.setText(self.tr("Verify chain"))
        self.export_button.setText(self.tr("Export CSV"))
        self.table.setHorizontalHeaderLabels(
            [
                self.tr("Time"),
                self.tr("User"),
                self.tr("Source"),
                self.tr("Action"),
                self.tr("Target"),
                self.tr("Before"),
                self.tr("After"),
            ]
        )

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)
