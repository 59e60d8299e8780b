"""Login with a gloved finger: a user list of big buttons and a numeric keypad for the PIN.

Why a keypad and not only a text field: the line panel has no keyboard and the on-screen keyboard
of the OS is too small for gloves. A password (letters) can still be typed on a desk keyboard.
"""

from __future__ import annotations

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QVBoxLayout,
)

from . import theme
from .auth import Session
from .worker import shared_worker


class Keypad(QGridLayout):
    pressed = None

    def __init__(self, target: QLineEdit, scale: float = 1.0):
        super().__init__()
        self.target = target
        size = max(theme.MIN_TOUCH_PX, theme.px(72, scale))
        keys = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "⌫", "0", "C"]
        self.buttons: dict[str, QPushButton] = {}
        for i, k in enumerate(keys):
            b = QPushButton(k)
            b.setMinimumSize(size, size)
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            b.clicked.connect(lambda _=False, k=k: self._key(k))
            self.addWidget(b, i // 3, i % 3)
            self.buttons[k] = b

    def _key(self, k: str) -> None:
        if k == "⌫":
            self.target.backspace()
        elif k == "C":
            self.target.clear()
        else:
            self.target.insert(k)


class LoginDialog(QDialog):
    logged_in = Signal(object)

    def __init__(self, session: Session, users: list[str], scale: float = 1.0, parent=None, worker=None):
        super().__init__(parent)
        self.session = session
        self.worker = worker or shared_worker()
        self.checking = False
        self.setWindowTitle(self.tr("Log in"))
        self.setModal(True)
        title = QLabel(self.tr("Log in"), self)
        title.setObjectName("title")
        self.user = QComboBox(self)
        self.user.setEditable(True)
        self.user.addItems(users)
        self.secret = QLineEdit(self)
        self.secret.setEchoMode(QLineEdit.EchoMode.Password)
        self.secret.setPlaceholderText(self.tr("PIN or password"))
        self.secret.returnPressed.connect(self.try_login)
        self.message = QLabel("", self)
        self.message.setStyleSheet(f"color: {theme.REJECT}; font-weight: bold;")
        self.keypad = Keypad(self.secret, scale)
        ok = QPushButton(self.tr("Log in"), self)
        ok.setObjectName("start")
        ok.clicked.connect(self.try_login)
        cancel = QPushButton(self.tr("Cancel"), self)
        cancel.clicked.connect(self.reject)
        buttons = QHBoxLayout()
        buttons.addWidget(cancel)
        buttons.addWidget(ok)
        lay = QVBoxLayout(self)
        lay.addWidget(title)
        lay.addWidget(QLabel(self.tr("User"), self))
        lay.addWidget(self.user)
        lay.addWidget(QLabel(self.tr("PIN or password"), self))
        lay.addWidget(self.secret)
        lay.addLayout(self.keypad)
        lay.addWidget(self.message)
        lay.addLayout(buttons)
        self.ok_button = ok

    def try_login(self) -> None:
        """The scrypt check (~50 ms) runs on the database worker; the dialog shows "Checking…"."""
        if self.checking:
            return
        self.checking = True
        self.ok_button.setEnabled(False)
        self.message.setText(self.tr("Checking…"))
        secret = self.secret.text()
        self.secret.clear()
        self.session.login_in_background(self.user.currentText(), secret, self.worker, self._done)

    def _done(self, user, reason: str | None) -> None:
        self.checking = False
        self.ok_button.setEnabled(True)
        if user is None:
            self.message.setText(reason or "")
            return
        self.message.setText("")
        self.logged_in.emit(user)
        self.accept()
