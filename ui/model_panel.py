"""Model panel (engineer, admin): verify, warm up and hot-swap a detector package on the running line.

Why through `inspector.detect.factory.hot_swap` and a worker thread: loading and warming up a
.tflite takes a second or more, and the line keeps inspecting with the old model meanwhile; the
pipeline switches between two boards, only to a detector that loaded, passed its sidecar and
(when the plant configured `detector.trusted_keys`) its signature check (`guard_detector`). A package
that fails any of these leaves the running model untouched, and the panel says why.

The swap is for the running station only: the next start loads `detector.model` again. A permanent
change goes through `pcb-inspector model install` (model store, `active` link), which the running
station also picks up.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QEvent, QTimer, Signal
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from inspector.detect.base import DetectorInfo, ModelError
from inspector.detect.factory import create_detector, hot_swap
from inspector.detect.registry import settings_for_model
from inspector.host_cpu import host_cpu
from inspector.signing import VerifiedDetector, guard_detector

from . import theme
from .auth import Permission, Session
from .labels import lamp_label

log = logging.getLogger(__name__)


class ModelPanel(QWidget):
    """Screen `model`: the running detector and a package to swap in."""

    finished = Signal(object)
    """(DetectorInfo, signature note) or an Exception; emitted from the swap thread (queued to the GUI)."""

    def __init__(self, controller, session: Session, audit: Callable[..., None], parent: QWidget | None = None):
        super().__init__(parent)
        self._message: tuple[Callable[[], str], bool | None] | None = None
        self.controller = controller
        self.session = session
        self._audit = audit
        self.busy = False
        self.last_info: DetectorInfo | None = None
        self.last_error = ""
        self._thread: threading.Thread | None = None
        self.finished.connect(self._on_finished)

        self.section = QLabel(self)
        self.section.setObjectName("section")
        self.running = QLabel(self)
        self.running.setObjectName("modelRunning")
        self.running.setWordWrap(True)
        # The CPU the station runs on, read once: a model run on it is several times slower without INT8 dot-product
        # instructions (docs/performance.md, *Which CPU*), which is the first thing to know about a slow station.
        self.cpu = host_cpu()
        self.processor = QLabel(self)
        self.processor.setObjectName("dim")
        self.processor.setWordWrap(True)
        self.running_panel = QFrame(self)
        self.running_panel.setObjectName("panel")
        rp = QVBoxLayout(self.running_panel)
        rp.addWidget(self.section)
        rp.addWidget(self.running)
        rp.addWidget(self.processor)

        self.path_label = QLabel(self)
        self.path = QLineEdit(self)
        self.path.setPlaceholderText("/path/to/model.tflite")
        self.choose = QPushButton(self)
        self.choose.clicked.connect(self.choose_package)
        row = QHBoxLayout()
        row.setSpacing(10)
        row.addWidget(self.path_label)
        row.addWidget(self.path, 1)
        row.addWidget(self.choose)

        self.swap_button = QPushButton(self)
        self.swap_button.setObjectName("start")
        self.swap_button.clicked.connect(lambda: self.swap())
        self.state = QLabel(self)
        self.state.setWordWrap(True)
        self.state.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.note = QLabel(self)
        self.note.setObjectName("dim")
        self.note.setWordWrap(True)
        self.log_label = QLabel(self)
        self.log_label.setObjectName("section")
        self.log = QListWidget(self)

        root = QVBoxLayout(self)
        root.setContentsMargins(16, 10, 16, 12)
        root.setSpacing(12)
        root.addWidget(self.running_panel)
        root.addLayout(row)
        actions = QHBoxLayout()
        actions.addWidget(self.swap_button)
        actions.addWidget(self.state, 1)
        root.addLayout(actions)
        root.addWidget(self.note)
        root.addWidget(self.log_label)
        root.addWidget(self.log, 1)

        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.refresh)
        self.scale = 1.0
        self.set_scale(1.0)
        self.retranslate()
        self.on_user(session.user)

    # ------------------------------------------------------------ screen life
    def enter(self) -> None:
        self.refresh()
        self._timer.start()

    def leave(self) -> None:
        self._timer.stop()

    def on_user(self, user) -> None:
        allowed = self.session.can(Permission.SWAP_MODEL)
        self.swap_button.setEnabled(allowed and not self.busy)
        self.choose.setEnabled(allowed and not self.busy)

    def refresh(self) -> None:
        cpu = self.cpu
        self.processor.setText(
            self.tr("Processor: %1 · %2 cores · INT8 dot product: %3")
            .replace("%1", cpu.model)
            .replace("%2", str(cpu.cores))
            .replace(
                "%3",
                ", ".join(cpu.int8_dot)
                if cpu.int8_dot
                else self.tr("none (an INT8 model on it runs several times slower)"),
            )
        )
        info = getattr(self.controller.pipeline, "detector_info", None)
        if info is None:
            self.running.setText(self.tr("Running model: none loaded"))
        else:
            text = (
                self.tr("Running model: %1 · backend %2")
                .replace("%1", info.model_id)
                .replace("%2", lamp_label(info.backend))  # "fallback: none of ... found" as the lamp says it
            )
            # Fewer passes than the package declares (`[detector] passes`): its card's figures do not apply as they are.
            passes = getattr(self.controller.cfg.detector, "passes", "package")
            if passes != "package":
                words = {"mirror": self.tr("the board and its mirror image only"), "single": self.tr("one pass")}
                text += " · " + words.get(passes, passes)
            self.running.setText(text)

    # ------------------------------------------------------------ actions
    def choose_package(self) -> None:
        if not self._allowed():
            return
        start = str(Path(self.path.text()).parent) if self.path.text() else str(Path.cwd() / "models")
        name, _ = QFileDialog.getOpenFileName(
            self,
            self.tr("Model package"),
            start,
            self.tr("Model (*.tflite)"),
            options=QFileDialog.Option.DontUseNativeDialog,
        )
        if name:
            self.path.setText(name)

    def _allowed(self) -> bool:
        if self.session.allowed(Permission.SWAP_MODEL, "swap models", self._audit) is not None:
            return True
        who = self.session.denied_to()
        self._say(
            lambda: (
                self.tr("Only an engineer or admin may %1; %2")
                .replace("%1", self.tr("swap models"))
                .replace("%2", who or self.tr("nobody is logged in"))
            ),
            False,
        )
        return False

    def swap(self, path: Path | str | None = None) -> bool:
        """Verify, load, warm up and hot-swap the package at `path` (default: the path field) in a worker."""
        if not self._allowed():
            return False
        if self.busy:
            return False
        if path is not None:
            self.path.setText(str(path))
        text = self.path.text().strip()
        if not text:
            self._say(lambda: self.tr("Choose a model package (.tflite) first"), False)
            return False
        model = Path(text)
        if model.suffix != ".tflite" or not model.is_file():
            self._say(lambda: self.tr("%1: not a .tflite file").replace("%1", str(model)), False)
            return False
        user = self.session.user
        assert user is not None
        before = getattr(self.controller.pipeline, "detector_info", None)
        self.busy = True
        self.last_info = None
        self.last_error = ""
        self.on_user(user)
        self._say(lambda: self.tr("Verifying and warming up %1…").replace("%1", model.name), None)
        self._thread = threading.Thread(
            target=self._swap, args=(model, user.name, before), name="ui-model-swap", daemon=True
        )
        self._thread.start()
        return True

    def _swap(self, model: Path, who: str, before: DetectorInfo | None) -> None:
        target = str(model)
        old = {"model_id": before.model_id, "backend": before.backend} if before else None
        try:
            cfg = settings_for_model(self.controller.cfg.detector, model)  # the runtime its sidecar names
            detector = guard_detector(cfg, create_detector(cfg))
            info = hot_swap(self.controller.pipeline, detector)
            # What runs is now these settings: screens that read the model's sidecar through the station's
            # settings (the recipe editor's default thresholds, the threshold calibration's input domain) follow.
            self.controller.cfg.detector = cfg
            if isinstance(detector, VerifiedDetector) and detector.signature is not None:
                note = f"signature verified (key {detector.signature.key_id})"
            else:
                note = "UNSIGNED: no detector.trusted_keys configured"
            self._audit(
                "model_swap",
                user=who,
                target=target,
                before=old,
                after={"model_id": info.model_id, "backend": info.backend, "signature": note},
            )
            self.finished.emit((info, note))
        except Exception as exc:  # ModelError, SignatureError, a crash in the runtime: the old model stays
            if not isinstance(exc, ModelError):
                log.exception("model swap failed")
            self._audit("model_swap_failed", user=who, target=target, before=old, after={"error": str(exc)})
            self.finished.emit(exc)

    def _on_finished(self, outcome) -> None:
        self.busy = False
        self.on_user(self.session.user)
        if isinstance(outcome, Exception):
            self.last_error = str(outcome)
            self._say(lambda: self.tr("Not swapped, the running model stays: %1").replace("%1", str(outcome)), False)
            self.log.insertItem(0, f"✖ {outcome}")
            return
        info, note = outcome
        self.last_info = info
        self._say(
            lambda: (
                self.tr("Swapped to %1 on %2 (from the next board)")
                .replace("%1", info.model_id)
                .replace("%2", lamp_label(info.backend))
            ),
            True,
        )
        self.log.insertItem(0, f"✔ {info.model_id} · {info.backend} · {note}")
        self.refresh()

    def wait(self, timeout: float = 60.0) -> None:
        """Tests and shutdown: wait for a running swap thread."""
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------ look
    def _say(self, words: Callable[[], str], ok: bool | None) -> None:
        """Show a message, kept as how to word it, so a language change says it again in the new language."""
        self._message = (words, ok)
        self._show_message()

    def _show_message(self) -> None:
        if self._message is None:
            return
        words, ok = self._message
        text = words()
        colour = theme.TEXT if ok is None else theme.PASS if ok else theme.REJECT
        self.state.setText(text)
        self.state.setToolTip(text)
        self.state.setStyleSheet(f"color: {colour}; font-weight: bold; font-size: {theme.px(20, self.scale)}px;")

    def set_scale(self, scale: float) -> None:
        self.scale = scale
        self.running.setStyleSheet(f"font-size: {theme.px(28, scale)}px; font-weight: bold;")
        self.swap_button.setMinimumHeight(max(theme.MIN_TOUCH_PX, theme.px(72, scale)))
        self.swap_button.setMinimumWidth(theme.px(300, scale))
        self.swap_button.setStyleSheet(
            f"QPushButton#start:disabled {{ background: {theme.PANEL_2}; border-color: {theme.PANEL_2}; }}"
        )

    def retranslate(self) -> None:
        self.section.setText(self.tr("DETECTOR ON THE LINE"))
        self.path_label.setText(self.tr("Package"))
        self.choose.setText(self.tr("Choose…"))
        self.swap_button.setText(self.tr("VERIFY AND SWAP"))
        self.note.setText(
            self.tr(
                "The line keeps inspecting with the running model while the new one is verified and warmed up; "
                "it switches between two boards. A failed package leaves the running model in place. The swap "
                "lasts until the station restarts: install with 'pcb-inspector model install' to keep it."
            )
        )
        self.log_label.setText(self.tr("SWAPS IN THIS SESSION"))
        self.refresh()
        self._show_message()

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)


__all__ = ["ModelPanel"]
