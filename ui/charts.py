"""Quality charts (QtCharts): yield per hour and per shift, defect Pareto, false-call rate.

Why these four: yield trends show when a process drifts; the Pareto says which defect to attack
first; the false-call rate says whether the operators can still trust a REJECT (a rising rate is
the first sign a model or a threshold needs attention). The numbers are storage's queries.
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

import shiboken6
from PySide6.QtCharts import (
    QBarCategoryAxis,
    QBarSeries,
    QBarSet,
    QChart,
    QChartView,
    QLineSeries,
    QValueAxis,
)
from PySide6.QtCore import QEvent, QMargins, Qt, QTimer, Signal
from PySide6.QtGui import QColor, QFont, QPainter, QPen
from PySide6.QtWidgets import QComboBox, QGridLayout, QHBoxLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from . import theme
from .labels import class_label
from .records import HistoryFilter, Records
from .worker import DbWorker, shared_worker


def _chart(title: str, scale: float) -> QChart:
    c = QChart()
    c.setTheme(QChart.ChartTheme.ChartThemeDark)
    c.setBackgroundBrush(QColor(theme.PANEL))
    c.setTitle(title)
    f = QFont()
    f.setFamilies(theme.FONT_FAMILIES)
    f.setPixelSize(theme.px(20, scale))
    f.setBold(True)
    c.setTitleFont(f)
    c.legend().setVisible(False)
    c.setMargins(QMargins(4, 4, 4, 4))
    return c


def _axis_font(scale: float) -> QFont:
    f = QFont()
    f.setFamilies(theme.FONT_FAMILIES)
    f.setPixelSize(theme.px(14, scale))
    return f


def count_axis(top: int, ticks: int = 5) -> tuple[int, int]:
    """(step, end) of a count axis that shows `top`: a whole step of 1, 2 or 5 times a power of ten giving at most
    `ticks` intervals, and the first multiple of it at or above `top` (bar labels sit inside their bars' ends)."""
    top = max(int(top), 1)
    step = 1
    while True:
        for m in (1, 2, 5):
            if -(-top // (m * step)) <= ticks:
                return m * step, m * step * -(-top // (m * step))
        step *= 10


class ChartsScreen(QWidget):
    drawn = Signal()
    """All four charts show the newest statistics."""

    def __init__(self, records: Records, parent=None, worker: DbWorker | None = None):
        super().__init__(parent)
        self.records = records
        self.worker = worker or shared_worker()
        self.loading = False
        self._generation = 0
        self.scale = 1.0
        self.views = {k: QChartView(self) for k in ("hour", "shift", "pareto", "false_calls")}
        for v in self.views.values():
            v.setRenderHint(QPainter.RenderHint.Antialiasing)
        self.period = QComboBox(self)
        self.period.activated.connect(lambda _i: self.refresh())
        self.refresh_button = QPushButton(self)
        self.refresh_button.clicked.connect(self.refresh)
        self.summary = QLabel(self)
        self.summary.setObjectName("title")
        top = QHBoxLayout()
        top.addWidget(self.summary, 1)
        top.addWidget(self.period)
        top.addWidget(self.refresh_button)
        grid = QGridLayout()
        grid.setSpacing(10)
        grid.addWidget(self.views["hour"], 0, 0)
        grid.addWidget(self.views["shift"], 0, 1)
        grid.addWidget(self.views["pareto"], 1, 0)
        grid.addWidget(self.views["false_calls"], 1, 1)
        root = QVBoxLayout(self)
        root.setContentsMargins(12, 8, 12, 10)
        root.addLayout(top)
        root.addLayout(grid, 1)
        self.data: dict = {}
        self.retranslate()

    def enter(self) -> None:
        self.refresh()

    def set_scale(self, scale: float) -> None:
        self.scale = scale

    def _days(self) -> int:
        return int(self.period.currentData() or 7)

    def refresh(self) -> None:
        """The statistics are queried on the worker; the charts are drawn when they arrive."""
        days = self._days()
        records = self.records
        self.loading = True
        self.summary.setText(self.tr("Loading…"))
        self.worker.submit(
            lambda: _query(records, days), self._loaded, self._failed, key=(id(self), "charts"), owner=self
        )

    def _loaded(self, data: dict) -> None:
        self.loading = False
        self.data = data
        self._draw()

    def _draw(self) -> None:
        """Build the four charts one per event-loop turn.

        Building a chart (series, axes, `setChart`) takes ~5 ms alone but 20 ms or more while the
        line inspects at full rate; four in one slot blocked the touchscreen for 40 ms and more
        (scripts/bench_ui.py). One at a time, the loop keeps ticking between them.
        """
        if not self.data:
            return
        self._generation += 1
        gen = self._generation
        parts = [self._draw_hour, self._draw_shift, self._draw_pareto, self._draw_false_calls]

        def step(i: int) -> None:
            if gen != self._generation or not shiboken6.isValid(self):
                return  # newer data arrived (or the screen went away): that drawing wins
            parts[i](self.data, self.scale)
            if i + 1 < len(parts):
                QTimer.singleShot(0, lambda: step(i + 1))
            else:
                self.drawn.emit()

        step(0)

    def _failed(self, exc: Exception) -> None:
        self.loading = False
        self.summary.setText(str(exc))

    def _show_chart(self, key: str, chart: QChart) -> None:
        """Put `chart` in its view and delete the one it replaces.

        `QChartView.setChart` releases the old chart without deleting it ("users need to make sure the
        previous chart is deleted"); PySide had already handed it to C++, so every refresh leaked
        four charts (RSS grew ~15 KB per inspected board in scripts/bench_ui.py).
        """
        view = self.views[key]
        old = view.chart()
        view.setChart(chart)
        if old is not None and old is not chart:
            old.deleteLater()

    def _draw_hour(self, d: dict, s: float) -> None:
        c = _chart(self.tr("Yield per hour (last 24 h)"), s)
        bars = QBarSet(self.tr("yield %"))
        bars.setColor(QColor(theme.PASS))
        cats = []
        for b in d["hours"]:
            bars.append(round(b.yield_pct, 1))
            local = b.start.astimezone(d["zone"])
            cats.append(f"{local:%H}" if local.minute == 0 else f"{local:%H:%M}")  # UTC hours in a +5:30 zone
        self._bars(c, [bars], cats, 0, 100)
        self._show_chart("hour", c)

    def _draw_shift(self, d: dict, s: float) -> None:
        c = _chart(self.tr("Yield per shift"), s)
        bars = QBarSet(self.tr("yield %"))
        bars.setColor(QColor(theme.INFO))
        cats = []
        for y in d["shifts"][-12:]:
            bars.append(round(y.yield_pct, 1))
            cats.append(f"{y.day:%d.%m} {y.shift}")
        self._bars(c, [bars], cats, 0, 100)
        self._show_chart("shift", c)

    def _draw_pareto(self, d: dict, s: float) -> None:
        c = _chart(self.tr("Defects by class (Pareto)"), s)
        bars = QBarSet(self.tr("defects"))
        bars.setColor(QColor(theme.WARN))
        cats = [class_label(p.class_name) for p in d["pareto"]]
        for p in d["pareto"]:
            bars.append(p.count)
        step, hi = count_axis(max([p.count for p in d["pareto"]] or [1]))
        self._bars(c, [bars], cats, 0, hi, step)
        cum = QLineSeries()
        cum.setPen(QPen(QColor(theme.TEXT), 3))
        for i, p in enumerate(d["pareto"]):
            cum.append(i, p.cumulative_pct)
        c.addSeries(cum)
        pct = QValueAxis()
        pct.setRange(0, 100)
        pct.setLabelFormat("%d%%")
        pct.setGridLineVisible(False)  # the grid is the counts'; a second one at other heights read as more ticks
        pct.setLabelsFont(_axis_font(s))
        c.addAxis(pct, Qt.AlignmentFlag.AlignRight)
        cum.attachAxis(pct)
        line_x = QValueAxis()
        line_x.setRange(-0.5, max(0, len(cats) - 1) + 0.5)
        line_x.setVisible(False)
        c.addAxis(line_x, Qt.AlignmentFlag.AlignBottom)
        cum.attachAxis(line_x)
        self._show_chart("pareto", c)

    def _draw_false_calls(self, d: dict, s: float) -> None:
        c = _chart(self.tr("False-call rate per day (reviewed defects)"), s)
        bars = QBarSet(self.tr("false calls %"))
        bars.setColor(QColor(theme.FALSE_CALL_COLOUR))
        cats = []
        for day, st in d["false_calls"]:
            bars.append(round(100 * st.false_call_rate, 1))
            cats.append(f"{day:%d.%m}")
        self._bars(c, [bars], cats, 0, 100)
        self._show_chart("false_calls", c)
        t = d["total"]
        self.summary.setText(
            self.tr("Reviewed: %1 boards · false calls %2 % · missed %3 · escapes %4")
            .replace("%1", str(t.boards_reviewed))
            .replace("%2", f"{100 * t.false_call_rate:.1f}")
            .replace("%3", str(t.missed))
            .replace("%4", str(t.escapes))
        )

    def _bars(self, c: QChart, sets: list[QBarSet], cats: list[str], lo: float, hi: float, step: int = 0):
        """Bars over categories; the value axis from `lo` to `hi`, ticked every `step` from 0 when given (counts)."""
        series = QBarSeries()
        for b in sets:
            series.append(b)
        series.setLabelsVisible(len(cats) <= 12)
        series.setLabelsPosition(QBarSeries.LabelsPosition.LabelsInsideEnd)
        c.addSeries(series)
        ax = QBarCategoryAxis()
        ax.append(cats or ["—"])
        ax.setLabelsFont(_axis_font(self.scale))
        c.addAxis(ax, Qt.AlignmentFlag.AlignBottom)
        series.attachAxis(ax)
        ay = QValueAxis()
        ay.setRange(lo, max(hi, lo + 1))
        ay.setLabelFormat("%d")
        if step:
            # Ticks at whole counts: five even ticks over 0..5.5 fell at 1.375, 2.75, ... and "%d" labelled them
            # 1, 2, 4, so a bar of 3 stood under the "2" and one of 5 under the top "5".
            ay.setTickType(QValueAxis.TickType.TicksDynamic)
            ay.setTickAnchor(0)
            ay.setTickInterval(step)
        ay.setLabelsFont(_axis_font(self.scale))
        c.addAxis(ay, Qt.AlignmentFlag.AlignLeft)
        series.attachAxis(ay)
        return ax, ay

    def retranslate(self) -> None:
        i = max(0, self.period.currentIndex())
        self.period.clear()
        self.period.addItem(self.tr("Last 7 days"), 7)
        self.period.addItem(self.tr("Last 30 days"), 30)
        self.period.setCurrentIndex(i)
        self.refresh_button.setText(self.tr("Refresh"))
        self._draw()

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)


def _query(records: Records, days: int) -> dict:
    """Everything the four charts show (runs on the database worker thread)."""
    now = datetime.now(UTC)
    f = HistoryFilter(start=now - timedelta(days=days))
    hours = records.yield_per_hour(HistoryFilter(start=now - timedelta(hours=24)))
    shifts = records.yield_per_shift(f)  # the plant's shift plan and zone (storage.*)
    pareto = records.pareto(f)
    # Days are the plant's (midnight to midnight in `storage.timezone`, 23 or 25 h at a clock change): UTC days
    # labelled in local dates put a Shanghai morning's false calls on the day before.
    zone = records.zone()
    today = now.astimezone(zone).date()
    fc = []
    for d in range(days - 1, -1, -1):
        day = today - timedelta(days=d)
        start = datetime.combine(day, time(0), tzinfo=zone)
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone)
        fc.append((day, records.review_stats(HistoryFilter(start=start, end=end))))
    total = records.review_stats(f)
    return {"hours": hours, "shifts": shifts, "pareto": pareto, "false_calls": fc, "total": total, "zone": zone}
