"""User management (admins only) and the first-start dialog that creates the first admin.

Why the first admin is created interactively: a station must never ship with a default password;
the person commissioning it chooses the admin's secret on the first start. (Demo mode alone creates
documented demo users, in its throwaway database.)
"""

from __future__ import annotations

from PySide6.QtCore import QEvent, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from . import theme
from .auth import Permission, PermissionDenied, Role, Session
from .labels import role_label
from .records import RecordError, Records
from .worker import DbWorker, shared_worker


class FirstAdminDialog(QDialog):
    def __init__(self, records: Records, parent=None):
        super().__init__(parent)
        self.records = records
        self.setWindowTitle(self.tr("First start: create the administrator"))
        self.name = QLineEdit("admin", self)
        self.secret = QLineEdit(self)
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.again = QLineEdit(self)
        self.again.setEchoMode(QLineEdit.EchoMode.Password)
        self.message = QLabel(self)
        self.message.setStyleSheet(f"color: {theme.REJECT}; font-weight: bold;")
        ok = QPushButton(self.tr("Create administrator"), self)
        ok.setObjectName("start")
        ok.clicked.connect(self.create)
        lay = QVBoxLayout(self)
        lay.addWidget(QLabel(self.tr("No user exists yet. Choose the administrator's name and secret."), self))
        lay.addWidget(self.name)
        lay.addWidget(QLabel(self.tr("PIN or password (at least 4 characters)"), self))
        lay.addWidget(self.secret)
        lay.addWidget(QLabel(self.tr("Repeat"), self))
        lay.addWidget(self.again)
        lay.addWidget(self.message)
        lay.addWidget(ok)

    def create(self) -> bool:
        if self.secret.text() != self.again.text():
            self.message.setText(self.tr("The two entries differ"))
            return False
        try:
            self.records.create_user(self.name.text().strip(), "admin", self.secret.text(), by="first-start")
        except RecordError as exc:
            self.message.setText(str(exc))
            return False
        self.accept()
        return True


class UsersScreen(QWidget):
    changed = Signal(bool)
    """An admin change finished: True when stored, False when refused (the message line says why)."""

    def __init__(self, records: Records, session: Session, parent=None, worker: DbWorker | None = None):
        super().__init__(parent)
        self.records = records
        self.worker = worker or shared_worker()
        self.pending = 0
        """Changes handed to the worker and not yet stored."""
        self.session = session
        self.list = QListWidget(self)
        self.name = QLineEdit(self)
        self.role = QComboBox(self)
        for r in Role:  # the screen's word for the role; its id (stored, audited) as the item's data
            self.role.addItem(role_label(r.value), r.value)
        self.secret = QLineEdit(self)
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.add_button = QPushButton(self)
        self.add_button.setObjectName("start")
        self.add_button.clicked.connect(self.add_user)
        self.role_button = QPushButton(self)
        self.role_button.clicked.connect(self.change_role)
        self.disable_button = QPushButton(self)
        self.disable_button.clicked.connect(self.toggle_active)
        self.message = QLabel(self)
        self.message.setWordWrap(True)
        self.message.setStyleSheet(f"color: {theme.WARN}; font-weight: bold;")
        form = QVBoxLayout()
        self.name_label, self.role_label, self.secret_label = QLabel(self), QLabel(self), QLabel(self)
        for label, w in ((self.name_label, self.name), (self.role_label, self.role), (self.secret_label, self.secret)):
            form.addWidget(label)
            form.addWidget(w)
        form.addWidget(self.add_button)
        form.addWidget(self.role_button)
        form.addWidget(self.disable_button)
        form.addWidget(self.message)
        form.addStretch(1)
        root = QHBoxLayout(self)
        root.setContentsMargins(12, 8, 12, 10)
        root.addWidget(self.list, 3)
        root.addLayout(form, 2)
        self.users = []
        self.retranslate()

    def enter(self) -> None:
        self.refresh()

    def refresh(self) -> None:
        """Re-read the user list on the database worker."""
        self.worker.submit(self.records.users, self._show_users, self._failed, key=("users", id(self)), owner=self)

    def _show_users(self, users) -> None:
        self.users = users
        self.list.clear()
        for u in self.users:
            state = "" if u.active else " · " + self.tr("disabled")
            last = f" · {u.last_login.astimezone():%Y-%m-%d %H:%M}" if u.last_login else ""
            self.list.addItem(f"{u.username}  ({role_label(u.role)}){state}{last}")

    def _admin(self) -> str | None:
        try:
            return self.session.require(Permission.MANAGE_USERS).name
        except PermissionDenied as exc:
            self.message.setText(str(exc))
            return None

    def _run(self, change, done_text: str, then=None) -> None:
        """Store `change` on the worker (a new user's scrypt hash alone takes ~50 ms), then re-read the list.

        The buttons stay disabled until it is stored, so a second tap cannot race the first.
        """
        records = self.records
        self.pending += 1
        self._enable(False)

        def job():
            change()
            return records.users()

        self.worker.submit(job, lambda users: self._stored(users, done_text, then), self._failed, owner=self)

    def _stored(self, users, done_text: str, then=None) -> None:
        self.pending -= 1
        self._enable(True)
        self._show_users(users)
        self.message.setText(done_text)
        self.changed.emit(True)
        if then is not None:
            then()

    def _failed(self, exc: Exception) -> None:
        if self.pending:
            self.pending -= 1
            self._enable(True)
        self.message.setText(str(exc))
        self.changed.emit(False)

    def _enable(self, on: bool) -> None:
        for b in (self.add_button, self.role_button, self.disable_button):
            b.setEnabled(on)

    def add_user(self) -> bool:
        """True when the new user was handed to the worker; `changed` reports the outcome."""
        who = self._admin()
        if who is None:
            return False
        name, role, secret = self.name.text().strip(), self.role.currentData(), self.secret.text()
        self.secret.clear()
        self._run(
            lambda: self.records.create_user(name, role, secret, by=who),
            self.tr("User %1 created").replace("%1", name),
        )
        return True

    def _selected(self):
        i = self.list.currentRow()
        return self.users[i] if 0 <= i < len(self.users) else None

    def change_role(self) -> bool:
        who, u = self._admin(), self._selected()
        if not (who and u):
            return False
        role = self.role.currentData()
        # One's own role changed: the session's rights were read at login, so it ends here and the next login
        # carries the new role (an admin who made themselves operator kept managing users until logging out).
        then = (lambda: self.session.logout("role_changed")) if u.username == who else None
        self._run(
            lambda: self.records.set_role(u.username, role, by=who),
            self.tr("%1 is now %2").replace("%1", u.username).replace("%2", role_label(role)),
            then=then,
        )
        return True

    def toggle_active(self) -> bool:
        who, u = self._admin(), self._selected()
        if not (who and u):
            return False
        if u.username == who:
            self.message.setText(self.tr("You cannot disable yourself"))
            return False
        done = self.tr("%1 enabled") if not u.active else self.tr("%1 disabled")
        self._run(lambda: self.records.set_active(u.username, not u.active, by=who), done.replace("%1", u.username))
        return True

    def retranslate(self) -> None:
        for i in range(self.role.count()):
            self.role.setItemText(i, role_label(self.role.itemData(i)))
        if self.users:
            self._show_users(self.users)
        self.name_label.setText(self.tr("User name"))
        self.role_label.setText(self.tr("Role"))
        self.secret_label.setText(self.tr("PIN or password"))
        self.add_button.setText(self.tr("Add user"))
        self.role_button.setText(self.tr("Set role of selected"))
        self.disable_button.setText(self.tr("Disable / enable selected"))

    def changeEvent(self, e) -> None:  # noqa: N802
        if e.type() == QEvent.Type.LanguageChange:
            self.retranslate()
        super().changeEvent(e)
