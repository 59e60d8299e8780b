"""The main window: a header with navigation, login and language, and one screen at a time.

Why the window owns no station logic: it wires signals (bridge -> screens, screens -> controller)
and checks permissions; the station runs in its own threads whether or not a window is open.
Every action a person takes goes through `MainWindow.permit`, which both checks the role and
writes the audit record, so the check and the record cannot drift apart.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from PySide6.QtCore import QT_TRANSLATE_NOOP, QEvent, Qt, QTimer
from PySide6.QtGui import QPainter
from PySide6.QtWidgets import (
    QApplication,
    QButtonGroup,
    QHBoxLayout,
    QLabel,
    QMainWindow,
    QPushButton,
    QSizePolicy,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from . import i18n, theme
from .alarms import AlarmModel
from .auth import ActivityFilter, Permission, Session, User
from .bridge import UiBridge
from .controller import StationController
from .labels import role_label
from .login import LoginDialog
from .operator_screen import OperatorScreen

log = logging.getLogger(__name__)

SCREENS = ("operator", "history", "review", "charts", "recipe", "calibration", "model", "users", "audit")

SCREEN_PERMISSIONS: dict[str, Permission] = {
    "recipe": Permission.EDIT_RECIPE,
    "calibration": Permission.CALIBRATE,
    "model": Permission.SWAP_MODEL,
    "users": Permission.MANAGE_USERS,
    "audit": Permission.VIEW_AUDIT,
}
"""Screens a role must be allowed to open; they are left when their user logs out."""


def _not_audited(*_args, **_kwargs) -> None:
    """Opening a screen one may not open is refused without an audit row (a tap on a tab is not an attempt)."""


class ElidedLabel(QLabel):
    """A one-line label that ends in "…" when it does not fit, instead of being cut mid-letter.

    The station name shares the header with the navigation at 1280 px; a clipped "PCB AOI c" reads
    as a glitch, "PCB AOI…" as a long name.
    """

    def paintEvent(self, event) -> None:  # noqa: N802
        p = QPainter(self)
        p.setPen(self.palette().color(self.foregroundRole()))
        p.setFont(self.font())
        r = self.contentsRect()
        text = self.fontMetrics().elidedText(self.text(), Qt.TextElideMode.ElideRight, r.width())
        p.drawText(r, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), text)
        p.end()


class MainWindow(QMainWindow):
    def __init__(
        self,
        controller: StationController,
        bridge: UiBridge,
        session: Session,
        *,
        records: Any = None,
        audit: Callable[..., None] | None = None,
        user_names: Callable[[], list[str]] | None = None,
        station_name: str = "",
    ):
        super().__init__()
        self._toast_words: Callable[[], str] | None = None
        """How the header message shown now is worded (None: none, or an error's own text)."""
        self.controller = controller
        self.bridge = bridge
        self.session = session
        self.records = records
        self._audit = audit or (lambda *a, **k: None)
        self._user_names = user_names or (lambda: [])
        self.station_name = station_name
        self.scale = 1.0
        self.alarms = AlarmModel()
        self.denied: list[tuple[str, Permission]] = []

        # ---------------------------------------------------------------- header
        self.title = ElidedLabel(station_name, self)
        self.title.setToolTip(station_name)
        self.title.setObjectName("title")
        self.title.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.title.setMinimumWidth(96)
        self.nav_group = QButtonGroup(self)
        self.nav_group.setExclusive(True)
        self.nav: dict[str, QPushButton] = {}
        self.clock = QLabel(self)
        self.clock.setObjectName("dim")
        self.toast = QLabel("", self)
        self.toast.setStyleSheet(
            f"color: {theme.WARN}; font-weight: bold; background: {theme.PANEL}; border-left: 6px solid {theme.WARN};"
            " padding: 6px 12px;"
        )
        # A row of its own under the header, shown only while it has something to say: in the header it shared the
        # width left by nine tabs and came out one word a line ("engine / may / not / open / Users"), cut; before
        # that, unwrapped, it squeezed every tab and the log-out button into clipped letters at 1280 px.
        self.toast.setWordWrap(True)
        self.toast.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        self.toast.hide()
        self.lang_button = QPushButton(self)
        self.lang_button.clicked.connect(self.toggle_language)
        self.user_button = QPushButton(self)
        self.user_button.clicked.connect(self.user_clicked)
        header = QHBoxLayout()
        header.setContentsMargins(12, 6, 12, 0)
        header.setSpacing(6)
        header.addWidget(self.title, 1)
        self.nav_box = QHBoxLayout()
        self.nav_box.setSpacing(2)
        header.addLayout(self.nav_box)
        header.addStretch(3)
        header.addWidget(self.clock)
        header.addWidget(self.lang_button)
        header.addWidget(self.user_button)

        # ---------------------------------------------------------------- screens
        self.stack = QStackedWidget(self)
        self.screens: dict[str, QWidget] = {}
        self.operator = OperatorScreen(self.alarms, self)
        self._undrawn: tuple | None = None
        """(newest update with a picture, newest update) that came while another screen was shown."""
        self.add_screen("operator", self.operator)
        self.operator.set_recipes(controller.recipe_names(), controller.active_recipe)
        self.operator.start_requested.connect(self.start_station)
        self.operator.stop_requested.connect(self.stop_station)
        self.operator.recipe_requested.connect(self.select_recipe)
        self.operator.acknowledge_requested.connect(self.acknowledge_alarms)
        self.alarms.acknowledged.connect(self._audit_ack)
        controller.running_changed.connect(self.operator.set_running)
        controller.recipe_changed.connect(self._recipe_changed)
        controller.error.connect(lambda msg: self.show_toast(lambda: self.tr("Station error: %1").replace("%1", msg)))

        bridge.updated.connect(self._on_update)
        self.operator.live.size_changed.connect(bridge.set_display_size)
        bridge.health_changed.connect(self.operator.on_health)
        bridge.health_changed.connect(self.alarms.on_health)

        central = QWidget(self)
        root = QVBoxLayout(central)
        root.setContentsMargins(0, 0, 0, 0)
        root.setSpacing(0)
        root.addLayout(header)
        root.addSpacing(4)
        root.addWidget(self.toast)
        root.addWidget(self.stack, 1)
        self.setCentralWidget(central)

        session.changed.connect(self._session_changed)
        self._toast_timer = QTimer(self)
        self._toast_timer.setSingleShot(True)
        self._toast_timer.timeout.connect(self._clear_toast)
        self._clock_timer = QTimer(self)
        self._clock_timer.timeout.connect(self._tick)
        self._clock_timer.start(1000)
        self._tick()
        self.login_dialog: LoginDialog | None = None
        self.retranslate()
        self.show_screen("operator")

    # ---------------------------------------------------------------- screens
    def add_screen(self, name: str, widget: QWidget) -> None:
        self.screens[name] = widget
        self.stack.addWidget(widget)
        b = QPushButton(self)
        b.setObjectName("nav")
        b.setCheckable(True)
        b.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)
        b.clicked.connect(lambda _=False, n=name: self.show_screen(n))
        self.nav_group.addButton(b)
        self.nav[name] = b
        self.nav_box.addWidget(b)
        if hasattr(widget, "set_scale"):
            widget.set_scale(self.scale)
        self.retranslate()

    def show_screen(self, name: str) -> bool:
        needs = SCREEN_PERMISSIONS.get(name)
        if needs is not None and not self.permit(
            needs,
            f"open {name}",
            audit=False,
            say=lambda: self.tr("open %1").replace("%1", self.nav[name].text() if name in self.nav else name),
        ):
            self.nav[self.current_screen()].setChecked(True)
            return False
        widget = self.screens[name]
        if widget is self.stack.currentWidget():
            # Tapping the tab of the screen shown (a gloved double tap) is no new visit: entering again reloaded
            # the recipe editor's form over unsaved edits and audited a second edit begin.
            self.nav[name].setChecked(True)
            return True
        leaving = self.screens.get(self.current_screen())
        if leaving is not None and leaving is not widget and hasattr(leaving, "leave"):
            leaving.leave()
        self.stack.setCurrentWidget(widget)
        self.nav[name].setChecked(True)
        if widget is self.operator:
            self._draw_undrawn()
        if hasattr(widget, "enter"):
            widget.enter()
        return True

    def current_screen(self) -> str:
        w = self.stack.currentWidget()
        for k, v in self.screens.items():
            if v is w:
                return k
        return "operator"

    # ---------------------------------------------------------------- permissions
    def permit(
        self, permission: Permission, action: str, *, audit: bool = True, say: Callable[[], str] | None = None
    ) -> User | None:
        """The user allowed to do `action`, or None (a login is offered, or a refusal shown).

        `action` is the English source text (marked for lupdate where it is written): the audit and `denied` keep it
        as it is, whatever the screen's language; the refusal words it with `say`, by default its translation, at
        the moment it is shown and again if the language changes while it is shown."""
        if user := self.session.allowed(permission, action, self._audit if audit else _not_audited):
            return user
        self.denied.append((action, permission))
        words = say or (lambda: self.tr(action))
        who = self.session.user
        if who is None:
            self.show_toast(lambda: self.tr("Log in to %1").replace("%1", words()))
            self.open_login()
        else:
            self.show_toast(
                lambda: self.tr("%1 may not %2").replace("%1", role_label(who.role.value)).replace("%2", words())
            )
        return None

    def open_login(self) -> None:
        if self.login_dialog is not None and self.login_dialog.isVisible():
            return
        self.login_dialog = LoginDialog(self.session, self._user_names(), self.scale, self)
        self.login_dialog.open()

    def user_clicked(self) -> None:
        if self.session.user is None:
            self.open_login()
        else:
            self.session.logout()

    def _session_changed(self, user: User | None) -> None:
        # A passing message belongs to the user it was said to: "engineer may not open Users" stayed on screen for the
        # admin who logged in next, and "Log in to ..." once someone had.
        self._clear_toast()
        self.retranslate()
        if user is None:
            # Screens that need a role are left when their user goes (logout or inactivity).
            if self.current_screen() in SCREEN_PERMISSIONS:
                self.show_screen("operator")
        for w in self.screens.values():
            if hasattr(w, "on_user"):
                w.on_user(user)

    # ---------------------------------------------------------------- actions
    def start_station(self) -> None:
        if user := self.permit(Permission.RUN, QT_TRANSLATE_NOOP("MainWindow", "start the station")):
            self._audit("station_start", user=user.name, target=self.controller.active_recipe)
            self.controller.start()

    def stop_station(self) -> None:
        if user := self.permit(Permission.RUN, QT_TRANSLATE_NOOP("MainWindow", "stop the station")):
            self._audit("station_stop", user=user.name, target=self.controller.active_recipe)
            self.controller.stop()

    def select_recipe(self, name: str) -> None:
        before = self.controller.active_recipe
        if name == before:
            return
        user = self.permit(Permission.RUN, QT_TRANSLATE_NOOP("MainWindow", "change the recipe"))
        if user is None:
            self.operator.set_recipes(self.controller.recipe_names(), before)
            return
        try:
            self.controller.select_recipe(name)
        except Exception as exc:
            self.show_toast(str(exc))
            self.operator.set_recipes(self.controller.recipe_names(), before)
            return
        self._audit("recipe_select", user=user.name, target=name, before={"recipe": before}, after={"recipe": name})

    def _recipe_changed(self, _name: str) -> None:
        """The Line screen shows the recipe running, whoever switched it (the operator, the PLC, a saved edit)."""
        self.operator.set_recipes(self.controller.recipe_names(), self.controller.active_recipe)

    def acknowledge_alarms(self) -> None:
        if user := self.permit(Permission.ACK_ALARM, QT_TRANSLATE_NOOP("MainWindow", "acknowledge alarms")):
            self.alarms.acknowledge_all(user.name)

    def _audit_ack(self, alarms: list, user: str) -> None:
        for a in alarms:
            self._audit(
                "alarm_ack",
                user=user,
                target=a.component,
                detail={"reason": a.reason, "raised_at": a.raised_at.isoformat()},
            )

    # ---------------------------------------------------------------- live
    def _on_update(self, update) -> None:
        try:
            if self.current_screen() == "operator" or update.seq % 10 == 0:
                self._undrawn = None
                self.operator.on_update(update)
            else:
                # Drawn when the Line screen is shown again (`_draw_undrawn`): the newest picture, then the newest
                # counts. The operator coming back must see the last board and the shift's counts, not the ones
                # of the last board drawn before they left.
                picture = update if update.image is not None else (self._undrawn or (None, None))[0]
                self._undrawn = (picture, update)
        finally:
            self.bridge.ack()

    def _draw_undrawn(self) -> None:
        undrawn, self._undrawn = getattr(self, "_undrawn", None), None
        if undrawn is None:
            return
        picture, newest = undrawn
        if picture is not None and picture is not newest:
            self.operator.on_update(picture)
        self.operator.on_update(newest)

    # ---------------------------------------------------------------- look
    def show_toast(self, text: str | Callable[[], str], ms: int = 6000) -> None:
        """A passing message in its row under the header. Given as how to word it (a callable), it is said again in the new
        language if the language changes while it is shown; a plain string (an error's own text) stays as it is."""
        self._toast_words = text if callable(text) else None
        self.toast.setText(text() if callable(text) else text)
        self.toast.show()
        self._toast_timer.start(ms)

    def _clear_toast(self) -> None:
        self._toast_words = None
        self.toast.setText("")
        self.toast.hide()

    def _tick(self) -> None:
        self.clock.setText(f"{datetime.now():%H:%M}")

    def toggle_language(self) -> None:
        lang = "zh_CN" if i18n.current_language() == "en" else "en"
        self.set_language(lang)

    def set_language(self, lang: str) -> None:
        i18n.set_language(lang)
        who = self.session.user.name if self.session.user else "-"
        self._audit("language", user=who, target=lang)

    def resizeEvent(self, event) -> None:  # noqa: N802
        super().resizeEvent(event)
        scale = theme.scale_for(self.width(), self.height())
        if abs(scale - self.scale) > 0.02:
            self.apply_scale(scale)

    def apply_scale(self, scale: float) -> None:
        self.scale = scale
        app = QApplication.instance()
        if app is not None:
            app.setStyleSheet(theme.stylesheet(scale))
            app.setFont(theme.app_font(scale))
        for w in self.screens.values():
            if hasattr(w, "set_scale"):
                w.set_scale(scale)
        self.retranslate()  # the user's name is elided to the button's font, which the scale just changed

    def retranslate(self) -> None:
        names = {
            "operator": self.tr("Line"),
            "history": self.tr("History"),
            "review": self.tr("Review"),
            "charts": self.tr("Charts"),
            "recipe": self.tr("Recipe"),
            "calibration": self.tr("Calibrate"),
            "model": self.tr("Model"),
            "users": self.tr("Users"),
            "audit": self.tr("Audit"),
        }
        for k, b in self.nav.items():
            b.setText(names.get(k, k))
            # A screen the logged-in role (or nobody logged in) may not open is drawn dimmed: an operator sees at a
            # glance which tabs are the engineers', and a tap still explains why and how (log in as one).
            needs = SCREEN_PERMISSIONS.get(k)
            locked = needs is not None and not self.session.can(needs)
            if b.property("locked") != locked:
                b.setProperty("locked", locked)
                b.style().unpolish(b)
                b.style().polish(b)
        self.lang_button.setText("中文" if i18n.current_language() == "en" else "EN")
        u = self.session.user
        if u is None:
            self.user_button.setText(self.tr("Log in"))
        else:
            # Two lines, the name elided: on one line ("engineer · Log out") the button was the widest thing in a
            # header that every tab shares, and at 1280 px with all nine tabs shown it was cut to "ngineer · Log ou".
            self.user_button.ensurePolished()  # the style sheet's font
            fm = self.user_button.fontMetrics()
            room = 1.5 * fm.horizontalAdvance(self.tr("Log out"))  # the header's spare width at 1280 px, nine tabs
            name = fm.elidedText(u.name, Qt.TextElideMode.ElideRight, int(room))
            self.user_button.setText(f"{name}\n{self.tr('Log out')}")
        self.user_button.setToolTip("" if u is None else f"{u.name} ({role_label(u.role.value)})")
        if words := self._toast_words:
            self.toast.setText(words())

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)

    def closeEvent(self, event) -> None:  # noqa: N802
        self.bridge.stop()
        self.controller.shutdown()
        super().closeEvent(event)


def install_activity_filter(app: QApplication, session: Session) -> ActivityFilter:
    f = ActivityFilter(session)
    app.installEventFilter(f)
    return f


def setup_application(argv: list[str] | None = None) -> QApplication:
    app = QApplication.instance() or QApplication(argv or ["pcb-inspector"])
    app.setApplicationName("PCB Inspector")
    app.setFont(theme.app_font())
    app.setStyleSheet(theme.stylesheet())
    app.setAttribute(Qt.ApplicationAttribute.AA_SynthesizeMouseForUnhandledTouchEvents, True)
    return app
