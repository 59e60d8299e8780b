"""Recipe editor: per-class thresholds, minimum defect size, the ROI drawn on the reference image.

Why the station drops READY while the editor is open: a board inspected against half-edited
thresholds would be judged by a recipe nobody approved, so the PLC sees ENGINEER_EDITING (health
component `recipe` failing) from `enter` until `leave`. A saved recipe is validated by the config
model first, then applied between two boards, stored as a new recipe version and audited.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydantic import ValidationError
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QFrame,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSlider,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from inspector.config import MAX_DEFECTS_PASS, Recipe, validation_problems
from inspector.decision import RecipeError, read_image_gray
from inspector.domain import CLASS_NAMES
from inspector.roi import check_roi

from . import theme
from .auth import Permission, PermissionDenied, Session
from .bridge import to_owned_qimage
from .image_view import ImageCanvas
from .labels import class_label
from .worker import shared_worker


class RecipeEditor(QWidget):
    saved = Signal(object)

    def __init__(self, controller, session: Session, audit, parent=None, records=None, live_image=None):
        super().__init__(parent)
        self._live_image = live_image or (lambda: (None, 1.0))
        self.controller = controller
        self.session = session
        self._audit = audit
        self.records = records
        self.worker = shared_worker()
        self.storing = 0
        """Saved recipe versions handed to the database worker and not yet stored."""
        self.editing = False
        self._editor = "-"
        """Who began the edit now open (audited when it ends, whoever is logged in by then)."""
        self.original: Recipe | None = None
        self._loaded: dict[str, int] = {}  # slider positions as loaded: only the ones moved are written
        self.reference: Path | None = None
        self.scale = 1.0

        self.canvas = ImageCanvas(self)
        self.canvas.tapped.connect(self._canvas_tapped)
        self.roi_button = QPushButton(self)
        self.roi_button.setCheckable(True)
        self.clear_roi = QPushButton(self)
        self.clear_roi.clicked.connect(self._clear_roi)
        self.load_reference = QPushButton(self)
        self.load_reference.clicked.connect(self._choose_reference)
        img_tools = QHBoxLayout()
        img_tools.addWidget(self.roi_button)
        img_tools.addWidget(self.clear_roi)
        img_tools.addWidget(self.load_reference)
        self.roi_warning = QLabel(self)
        """Says so when the ROI leaves most of the board uninspected, or cannot be used at all."""
        self.roi_warning.setObjectName("roiWarning")
        self.roi_warning.setWordWrap(True)
        self.roi_warning.setStyleSheet(f"color: {theme.WARN}; font-weight: bold;")
        self.roi_warning.hide()
        self._board: tuple[int, int] | None = None
        self._mask: np.ndarray | None = None
        left = QVBoxLayout()
        left.addWidget(self.canvas, 1)
        left.addWidget(self.roi_warning)
        left.addLayout(img_tools)

        self.recipe = QComboBox(self)
        self.recipe.activated.connect(lambda _i: self.load(self.recipe.currentText()))
        panel = QFrame(self)
        panel.setObjectName("panel")
        grid = QGridLayout(panel)
        self.threshold_title = QLabel(panel)
        self.threshold_title.setObjectName("section")
        grid.addWidget(self.threshold_title, 0, 0, 1, 3)
        self.sliders: dict[str, QSlider] = {}
        self.class_labels: dict[str, QLabel] = {}
        self.values: dict[str, QLabel] = {}
        for i, name in enumerate(CLASS_NAMES, 1):
            label = QLabel(class_label(name), panel)
            self.class_labels[name] = label
            label.setStyleSheet(f"color: {theme.CLASS_COLOURS[i]}; font-weight: bold;")
            slider = QSlider(Qt.Orientation.Horizontal, panel)
            slider.setRange(1, 100)
            value = QLabel(panel)
            value.setMinimumWidth(60)
            slider.valueChanged.connect(lambda v, lab=value: lab.setText(f"{v / 100:.2f}"))
            grid.addWidget(label, i, 0)
            grid.addWidget(slider, i, 1)
            grid.addWidget(value, i, 2)
            self.sliders[name] = slider
            self.values[name] = value
        self.min_px_label = QLabel(panel)
        self.min_px = QSpinBox(panel)
        self.min_px.setRange(0, 500)
        self.min_px.setSuffix(" px")
        self.max_pass_label = QLabel(panel)
        self.max_pass = QSpinBox(panel)
        self.max_pass.setRange(0, MAX_DEFECTS_PASS)  # more would pass every board of one tile: refused
        self.scale = 1.0
        self._fit_spin_boxes()
        n = len(CLASS_NAMES) + 1
        sizes = QHBoxLayout()
        # A label apart from the box before it: with the grid's 2 px they ran together ("0 px允许缺陷数" in zh_CN). Not
        # more: this row sets the panel's width, and a wider panel cut the ROI buttons beside it at 1280 px; nor a
        # row each: the screen then needed more than 800 px of height.
        sizes.setSpacing(6)
        sizes.addWidget(self.min_px_label)
        sizes.addWidget(self.min_px, 1)
        sizes.addWidget(self.max_pass_label)
        sizes.addWidget(self.max_pass, 1)
        grid.addLayout(sizes, n, 0, 1, 3)
        grid.setColumnStretch(1, 1)
        grid.setVerticalSpacing(2)

        self.state = QLabel(self)
        self.state.setWordWrap(True)
        self.state.setStyleSheet(f"color: {theme.WARN}; font-weight: bold;")
        # Two lines kept free: the wrapped "ENGINEER EDITING ... NOT READY" line was squeezed to one and cut off.
        self.state.setMinimumHeight(2 * self.state.fontMetrics().lineSpacing() + 8)
        self.save_button = QPushButton(self)
        self.save_button.setObjectName("start")
        self.save_button.clicked.connect(self.save)
        self.revert_button = QPushButton(self)
        self.revert_button.clicked.connect(lambda: self.load(self.recipe.currentText()))
        buttons = QHBoxLayout()
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)

        right = QVBoxLayout()
        right.addWidget(self.recipe)
        right.addWidget(panel)
        right.addStretch(1)
        right.addWidget(self.state)
        right.addLayout(buttons)

        root = QHBoxLayout(self)
        root.setContentsMargins(12, 8, 12, 10)
        root.setSpacing(12)
        root.addLayout(left, 3)
        root.addLayout(right, 2)
        self.retranslate()

    # ------------------------------------------------------------ editing state
    def enter(self) -> None:
        try:
            user = self.session.require(Permission.EDIT_RECIPE)
        except PermissionDenied:
            self.setEnabled(False)
            return
        self.setEnabled(True)
        names = self.controller.recipe_names()
        self.recipe.clear()
        self.recipe.addItems(names)
        self.recipe.setCurrentText(self.controller.active_recipe)
        self.load(self.controller.active_recipe)
        self.editing = True
        # Whoever began the edit ends it: on logout (or auto-logout) the session is empty before leave() runs.
        self._editor = user.name
        self.controller.begin_editing(user.name, self.controller.active_recipe)
        self._audit("recipe_edit_begin", user=user.name, target=self.controller.active_recipe)
        self.retranslate()

    def leave(self) -> None:
        if self.editing:
            self.editing = False
            self.controller.end_editing()
            self._audit("recipe_edit_end", user=self._editor, target=self.recipe.currentText())
            self.retranslate()

    def on_user(self, user) -> None:
        if user is None or not user.can(Permission.EDIT_RECIPE):
            self.leave()
            self.setEnabled(False)

    # ------------------------------------------------------------ form <-> recipe
    def _model_thresholds(self) -> dict[str, float]:
        """The model's own thresholds by class name (what a class the recipe leaves unset is judged at): the running
        model's, else its package's sidecar; empty when neither is known."""
        info = getattr(self.controller.pipeline, "detector_info", None)
        if info is not None and getattr(info, "default_thresholds", None):
            return {CLASS_NAMES[c - 1]: t for c, t in info.default_thresholds.items() if 0 < c <= len(CLASS_NAMES)}
        model = getattr(self.controller.cfg.detector, "model", None)
        if model is None:
            return {}
        from inspector.detect.base import ModelError
        from inspector.detect.package import read_meta

        try:
            return dict(read_meta(model).thresholds)
        except ModelError:
            return {}

    def load(self, name: str) -> None:
        r = self.controller.recipe(name)
        self.original = r
        self.recipe.setCurrentText(name)
        # A class the recipe leaves unset follows the model: its slider shows the model's threshold, and it is only
        # written into the recipe when moved (saving the ROI must not pin, or change, every class's threshold).
        model = self._model_thresholds()
        for cname, slider in self.sliders.items():
            slider.setValue(round(r.thresholds.get(cname, model.get(cname, 0.5)) * 100))
            self.values[cname].setText(f"{slider.value() / 100:.2f}")
        self._loaded = {cname: slider.value() for cname, slider in self.sliders.items()}
        self.min_px.setValue(round(r.min_defect_px))
        self.max_pass.setValue(r.max_defects_pass)
        self.canvas.polygon = [tuple(p) for p in (r.roi or [])]
        self._mask = None
        if r.roi_mask is not None:
            try:
                self._mask = read_image_gray(r.roi_mask, "ROI mask")
            except RecipeError as exc:
                self.state.setText(str(exc))
        self.set_reference(r.reference)

    def set_reference(self, path: Path | None) -> None:
        self.reference = Path(path) if path else None
        img = None
        if self.reference is not None:
            try:
                img = read_image_gray(self.reference, "reference image")
            except RecipeError as exc:
                self.state.setText(str(exc))
        if img is None:
            img = self._live_frame()
        if img is not None:
            q, s = to_owned_qimage(img, 2400)
            self.canvas.set_image(q, s)
            self._board = (img.shape[1], img.shape[0])
        else:
            # No golden image at all (boards carry their own): draw the ROI on the last live board.
            q, s = self._live_image()
            self.canvas.set_image(q, s)
            self._board = (round(q.width() / s), round(q.height() / s)) if q is not None and not q.isNull() else None
        self.canvas.update()
        self._update_roi_warning()

    def _update_roi_warning(self) -> None:
        """The recipe screen says what `config show` says: an ROI that ignores most of the board."""
        polygon = self.canvas.polygon if len(self.canvas.polygon) >= 3 else None
        text = ""
        if polygon is not None or self._mask is not None:
            base = self.original or self.controller.recipe()
            rep = check_roi(
                polygon,
                self._mask,
                self._board,
                scale_mask=base.roi_mask_scale,
                min_fraction=base.min_roi_fraction,
            )
            if rep.problems:
                text = self.tr("ROI not usable: %1").replace("%1", "; ".join(rep.messages()))
            elif rep.excludes_most:
                text = self.tr(
                    "This recipe inspects only %1% of the board: defects outside the ROI are ignored (PASS)."
                ).replace("%1", f"{rep.coverage * 100:.0f}")
        self.roi_warning.setText(text)
        self.roi_warning.setVisible(bool(text))

    def _live_frame(self) -> np.ndarray | None:
        """Without a reference file, the ROI is drawn on the recipe's in-memory reference, if any."""
        rules = getattr(self.controller.pipeline, "rules", None)
        ref = getattr(rules, "reference", None)
        return ref if isinstance(ref, np.ndarray) else None

    def form_recipe(self) -> Recipe:
        base = self.original or self.controller.recipe()
        data = base.model_dump()
        moved = {n: round(s.value() / 100, 2) for n, s in self.sliders.items() if s.value() != self._loaded.get(n)}
        data["thresholds"] = {**base.thresholds, **moved}
        data["min_defect_px"] = float(self.min_px.value())
        data["max_defects_pass"] = int(self.max_pass.value())
        data["roi"] = (
            [(round(x, 1), round(y, 1)) for x, y in self.canvas.polygon] if len(self.canvas.polygon) >= 3 else None
        )
        data["reference"] = self.reference
        return Recipe.model_validate(data)

    # ------------------------------------------------------------ actions
    def save(self) -> bool:
        try:
            user = self.session.require(Permission.EDIT_RECIPE)
        except PermissionDenied as exc:
            self.state.setText(str(exc))
            return False
        try:
            recipe = self.form_recipe()
            self.controller.apply_recipe(recipe)
        except ValidationError as exc:  # the field and the reason, not pydantic's report
            self.state.setText(self.tr("Not saved: %1").replace("%1", "; ".join(validation_problems(exc))))
            return False
        except (ValueError, RecipeError) as exc:
            self.state.setText(self.tr("Not saved: %1").replace("%1", str(exc)))
            return False
        before = self.original.model_dump(mode="json") if self.original else None
        after = recipe.model_dump(mode="json")
        self._audit("recipe_save", user=user.name, target=recipe.name, before=before, after=after)
        self.original = recipe
        if self.controller.active_recipe == recipe.name:
            self.state.setText(self.tr("Saved: recipe %1 is used from the next board").replace("%1", recipe.name))
        else:  # the PLC switched the line to another recipe meanwhile: that one keeps running
            self.state.setText(
                self.tr("Saved: recipe %1, used when the line switches to it (%2 is running)")
                .replace("%1", recipe.name)
                .replace("%2", self.controller.active_recipe)
            )
        if self.records is not None:
            # The new version is stored on the database worker; the line already uses it.
            records, who = self.records, user.name
            self.storing += 1
            self.worker.submit(
                lambda: records.register_recipe(after, by=who),
                lambda _r: self._stored(),
                lambda exc: self._store_failed(recipe.name, exc),
                owner=self,
            )
        self.saved.emit(recipe)
        return True

    def _stored(self) -> None:
        self.storing -= 1

    def _store_failed(self, name: str, exc: Exception) -> None:
        """The line runs the new recipe, but it is not in the database: say so, loudly."""
        self.storing -= 1
        self.state.setText(
            self.tr("Recipe %1 is applied but NOT stored (%2): it is lost at the next start; save again")
            .replace("%1", name)
            .replace("%2", str(exc))
        )

    def _canvas_tapped(self, x: float, y: float) -> None:
        if self.roi_button.isChecked():
            self.canvas.polygon = [*self.canvas.polygon, (x, y)]
            self.canvas.update()
            self._update_roi_warning()

    def _clear_roi(self) -> None:
        self.canvas.polygon = []
        self.canvas.update()
        self._update_roi_warning()

    def _choose_reference(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, self.tr("Reference image"), "", "Images (*.png *.jpg *.bmp *.tif)")
        if path:
            self.set_reference(Path(path))

    # ------------------------------------------------------------ look
    def set_scale(self, scale: float) -> None:
        self.scale = scale
        self._fit_spin_boxes()

    def _fit_spin_boxes(self) -> None:
        """Each box as wide as its largest value plus its 56 px arrows, no wider: with glove-sized arrows the boxes'
        own minimum widened this panel until the ROI buttons beside it were cut at 1280 px."""
        for box in (self.min_px, self.max_pass):
            box.ensurePolished()
            text = f"{box.prefix()}{box.maximum()}{box.suffix()}"
            touch = max(theme.MIN_TOUCH_PX, theme.px(56, self.scale))
            box.setMinimumWidth(box.fontMetrics().horizontalAdvance(text) + touch + theme.px(28, self.scale))

    def retranslate(self) -> None:
        self.roi_button.setText(self.tr("✎ Draw ROI (tap corners)"))
        self.clear_roi.setText(self.tr("Clear ROI"))
        self.load_reference.setText(self.tr("Reference image…"))
        self.threshold_title.setText(self.tr("SCORE THRESHOLD PER CLASS"))
        for name, label in self.class_labels.items():
            label.setText(class_label(name))
        self.min_px_label.setText(self.tr("Min. size"))
        self.max_pass_label.setText(self.tr("Defects allowed"))
        self.save_button.setText(self.tr("Save and apply"))
        self.revert_button.setText(self.tr("Revert"))
        self.canvas.placeholder = self.tr("No reference image: choose one")
        self._update_roi_warning()
        if self.editing:
            self.state.setText(self.tr("ENGINEER EDITING: the station is NOT READY until you leave this screen"))
        elif not self.state.text().startswith(self.tr("Saved")):
            self.state.setText("")

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)
