"""The calibration wizard's threshold row: the recipe's golden reference measured against the board's design.

Why on the touchscreen and not only `pcb-inspector calibrate threshold`: the engineer who sets up a camera is
at the station, with the golden board's reference already captured for the recipe; what is missing is the
design (the copper layer rasterised at the camera's pixels), which they choose from a file. The measurement
(`calibration.threshold`, the command line's too) takes about 1.5 s and runs in a worker thread.

The station runs the position set in station.toml (`[detector] threshold_position`), not the record: the row
shows both, so a calibration that is stored but not yet set up, or a station set up by hand, is visible.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import QFileDialog, QFrame, QHBoxLayout, QLabel, QPushButton, QVBoxLayout

from calibration.errors import CalibrationError
from calibration.store import THRESHOLD, CalibrationStore
from calibration.threshold import calibrate_threshold, station_line, threshold_record
from inspector.decision import RecipeError, read_image
from inspector.detect.package import InputDomain

from . import theme
from .auth import Permission, Session

log = logging.getLogger(__name__)

SAME_POSITION = 0.01
"""Positions closer than this are the same setting (the printed line has two decimals)."""


@dataclass(frozen=True, slots=True)
class ThresholdSource:
    """What the station runs: the active recipe, its golden reference file and the model's input domain."""

    recipe: str
    reference: Path | None
    spec: InputDomain | None
    """The station's input domain (package + station camera settings), None for a model without a preparation."""


class ThresholdPanel(QFrame):
    """One row: the position the station runs, the button that calibrates it, and the outcome."""

    finished = Signal(object)
    """(ThresholdFit, calibration id or None, the position the station ran when measured) or an Exception; emitted
    from the worker (queued to the GUI)."""
    shown = Signal()
    """The outcome is on the screen (and any record stored): the owner refreshes what it shows of the records. Its
    own signal, not a second slot on `finished`: that one could run before or after the panel's."""

    def __init__(
        self,
        session: Session,
        audit: Callable[..., None],
        store: CalibrationStore | None,
        source: Callable[[], ThresholdSource] | None,
        parent=None,
    ):
        super().__init__(parent)
        self.setObjectName("thresholdPanel")
        self.session = session
        self._audit = audit
        self.store = store
        self._source = source
        self.busy = False
        self.last_fit = None
        self.last_error = ""
        self.saved_id: int | None = None
        self._thread: threading.Thread | None = None
        self._state: tuple = ("hint",)
        """What the outcome line says, kept as data so that a language change redraws it."""
        self.finished.connect(self._on_finished)

        self.title = QLabel(self)
        self.title.setObjectName("section")
        self.running = QLabel(self)
        self.running.setWordWrap(True)
        self.button = QPushButton(self)
        self.button.setObjectName("thresholdButton")
        self.button.clicked.connect(self.choose_design)
        self.outcome = QLabel(self)
        self.outcome.setWordWrap(True)
        row = QHBoxLayout()
        row.setSpacing(10)
        row.addWidget(self.running, 1)
        row.addWidget(self.button)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 10, 0, 0)
        lay.setSpacing(4)
        lay.addWidget(self.title)
        lay.addLayout(row)
        lay.addWidget(self.outcome)
        self.set_scale(1.0)
        self.retranslate()

    # ------------------------------------------------------------ state
    def _current(self) -> ThresholdSource | None:
        return self._source() if self._source is not None else None

    def refresh(self) -> None:
        """The position the station runs now (station.toml over the package's midpoint)."""
        try:
            src = self._current()
        except Exception as exc:  # an unreadable sidecar: say so, the row stays usable for the next try
            self.running.setText(self.tr("Station runs: cannot read the model (%1)").replace("%1", str(exc)))
            return
        if src is None:
            self.running.setText(self.tr("Station runs: no station configuration"))
        elif src.spec is None:
            self.running.setText(self.tr("Station runs: a model without a threshold (frames as they are)"))
        else:
            self.running.setText(
                self.tr("Station runs %1 · recipe %2")
                .replace("%1", f"{src.spec.threshold_position:.2f}")
                .replace("%2", src.recipe)
            )
        self.on_user()

    def on_user(self, user=None) -> None:
        self.button.setEnabled(self._source is not None and not self.busy and self.session.can(Permission.CALIBRATE))

    # ------------------------------------------------------------ actions
    def choose_design(self) -> None:
        if not self._allowed():
            return
        name, _ = QFileDialog.getOpenFileName(
            self,
            self.tr("Design of the golden board (copper layer at the camera's pixels)"),
            str(Path.cwd()),
            self.tr("Images (*.png *.bmp *.tif *.tiff *.jpg)"),
            options=QFileDialog.Option.DontUseNativeDialog,
        )
        if name:
            self.calibrate(Path(name))

    def calibrate(self, design: Path) -> bool:
        """Measure the active recipe's golden reference against `design` in a worker, then store and audit it."""
        user = self._allowed()
        if user is None or self.busy:
            return False
        try:
            src = self._current()
        except Exception as exc:
            return self._refuse(str(exc))
        if src is None:
            return self._refuse(self.tr("no station configuration"))
        if src.reference is None:
            return self._refuse(
                self.tr("recipe %1 has no golden reference: capture one first (calibrate reference)").replace(
                    "%1", src.recipe
                )
            )
        self.busy = True
        self.last_fit, self.last_error, self.saved_id = None, "", None
        self.on_user()
        self._set(("measuring", design.name))
        self._thread = threading.Thread(
            target=self._measure, args=(src, design, user.name), name="ui-threshold-fit", daemon=True
        )
        self._thread.start()
        return True

    def wait(self, timeout: float = 30.0) -> None:
        """Tests and shutdown: wait for a running measurement (its outcome still arrives as a signal)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def _measure(self, src: ThresholdSource, design_path: Path, who: str) -> None:
        try:
            golden = read_image(src.reference, f"recipe {src.recipe}'s golden reference")
            design = read_image(design_path, "design")
            name = f"{src.reference.name} (design {design_path.name})"
            fit = calibrate_threshold([(golden, design)], src.spec, [name])
            saved = None
            if self.store is not None:
                record = threshold_record(fit, [str(src.reference)], [str(design_path)]) | {"recipe": src.recipe}
                saved = self.store.save(THRESHOLD, record, operator=who).id
            self._audit(
                "calibration_threshold",
                user=who,
                target=THRESHOLD,
                after={"calibration_id": saved, "recipe": src.recipe, "design": str(design_path)} | fit.to_json(),
            )
            self.finished.emit((fit, saved, src.spec.threshold_position))
        except Exception as exc:  # CalibrationError, RecipeError, a database error: shown, never raised into Qt
            if not isinstance(exc, CalibrationError | RecipeError):
                log.exception("threshold calibration failed")
            self.finished.emit(exc)

    def _on_finished(self, outcome) -> None:
        self.busy = False
        self.on_user()
        if isinstance(outcome, Exception):
            self.last_error = str(outcome)
            self._set(("refused", self.last_error))
            self.shown.emit()
            return
        fit, saved, running = outcome
        self.last_fit, self.saved_id = fit, saved
        self._set(("measured", fit, saved, running))
        self.shown.emit()

    def _set(self, state: tuple) -> None:
        self._state = state
        self._render()

    def _render(self) -> None:
        kind, *data = self._state
        if kind == "hint":
            self._show(
                self.tr("The golden reference against its design: where copper and laminate split"), None, hint=True
            )
        elif kind == "measuring":
            self._show(self.tr("Measuring the golden reference against %1…").replace("%1", data[0]), None)
        elif kind == "refused":
            # The reason's first line on the screen (what is wrong, what to do); the details behind it in the tooltip.
            first, *details = data[0].splitlines() or [""]
            self._show(self.tr("Not calibrated: %1").replace("%1", first), False, details="\n".join(details))
        elif kind == "denied":
            self._show(
                self.tr("Only an engineer or admin may %1; %2")
                .replace("%1", self.tr("calibrate the threshold"))
                .replace("%2", data[0] or self.tr("nobody is logged in")),
                False,
            )
        else:
            fit, saved, running = data
            text = (
                self.tr("Measured %1 (edges %2 px %3 at 0.50)")
                .replace("%1", f"{fit.position:.2f}")
                .replace("%2", f"{abs(fit.offset_at_midpoint_px):.2f}")
                .replace("%3", self.tr("inward") if fit.offset_at_midpoint_px < 0 else self.tr("outward"))
            )
            if saved is not None:
                text += self.tr(", stored as calibration %1").replace("%1", str(saved))
            if abs(fit.position - running) < SAME_POSITION:
                self._show(text + self.tr(". The station already runs it."), True)
            else:
                self._show(
                    text
                    + self.tr(".\nTo use it: %1 in station.toml, then restart the station.").replace(
                        "%1", station_line(fit.position)
                    ),
                    None,
                )

    # ------------------------------------------------------------ helpers
    def _allowed(self):
        user = self.session.allowed(Permission.CALIBRATE, "threshold", self._audit)
        if user is None:
            self._set(("denied", self.session.denied_to()))
        return user

    def _refuse(self, why: str) -> bool:
        self.last_error = why
        self._set(("refused", why))
        return False

    def _show(self, text: str, ok: bool | None, hint: bool = False, details: str = "") -> None:
        colour = theme.TEXT_DIM if hint else theme.TEXT if ok is None else theme.PASS if ok else theme.REJECT
        self.outcome.setText(text)
        self.outcome.setToolTip(f"{text}\n{details}" if details else text)
        self.outcome.setStyleSheet(f"color: {colour};" if hint else f"color: {colour}; font-weight: bold;")

    def set_scale(self, scale: float) -> None:
        self.button.setMinimumHeight(max(theme.MIN_TOUCH_PX, theme.px(64, scale)))
        self.button.setMinimumWidth(theme.px(240, scale))
        # Room for the longest outcome (the measured value, the record and the station.toml line) in three lines:
        # the wizard's other panes shrink instead of this text being clipped.
        self.outcome.setMinimumHeight(3 * self.outcome.fontMetrics().lineSpacing() + 4)

    def retranslate(self) -> None:
        self.title.setText(self.tr("THRESHOLD POSITION"))
        self.button.setText(self.tr("FROM DESIGN…"))
        self._render()
        self.refresh()

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)
