"""Who is at the station, what they may do, and when they are logged out.

Why roles are checked here and again where the action happens: the UI hides and disables what a
role may not use (a glove should not hit a button that then refuses), but each action also calls
`Session.require`, so a path that forgot to disable a button still cannot act.
Secrets are only ever stored as `hashlib.scrypt` hashes with a per-user random salt; hashing and
the user table belong to `inspector.storage.records` (`create_user`, `authenticate`), used through
`ui.records.Records`.
"""

from __future__ import annotations

import enum
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from PySide6.QtCore import QEvent, QObject, QTimer, Signal

log = logging.getLogger(__name__)


class Role(enum.StrEnum):
    OPERATOR = "operator"
    ENGINEER = "engineer"
    ADMIN = "admin"


class Permission(enum.StrEnum):
    RUN = "run"  # start/stop, select recipe
    ACK_ALARM = "ack_alarm"
    REVIEW = "review"
    EDIT_RECIPE = "edit_recipe"  # thresholds, ROI, reference
    SWAP_MODEL = "swap_model"
    CALIBRATE = "calibrate"  # camera calibration wizard
    MANAGE_USERS = "manage_users"
    VIEW_AUDIT = "view_audit"  # the audit trail (who did what)


ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.OPERATOR: frozenset({Permission.RUN, Permission.ACK_ALARM, Permission.REVIEW}),
    Role.ENGINEER: frozenset(
        {
            Permission.RUN,
            Permission.ACK_ALARM,
            Permission.REVIEW,
            Permission.EDIT_RECIPE,
            Permission.SWAP_MODEL,
            Permission.CALIBRATE,
            Permission.VIEW_AUDIT,
        }
    ),
    Role.ADMIN: frozenset(Permission),
}


@dataclass(frozen=True, slots=True)
class User:
    name: str
    role: Role

    def can(self, permission: Permission) -> bool:
        return permission in ROLE_PERMISSIONS[self.role]


class PermissionDenied(Exception):
    def __init__(self, user: User | None, permission: Permission):
        self.user = user
        self.permission = permission
        who = f"{user.name} ({user.role})" if user else "nobody is logged in"
        super().__init__(f"{permission.value} is not allowed: {who}")


class LoginFailed(Exception):
    pass


class LockoutStore(Protocol):
    """Where failed logins and the lock-out are kept, so a restart does not clear them (the records DB)."""

    def load(self) -> tuple[int, datetime | None]: ...

    def save(self, failures: int, locked_until: datetime | None) -> None: ...


class Session(QObject):
    """The logged-in user, the inactivity timer and the lock-out after failed logins.

    With a `lockout` store the failure count and the lock-out end (wall-clock UTC) are read at start
    and written on every change: pulling the plug does not buy another five guesses.
    """

    changed = Signal(object)
    """User or None."""

    MAX_FAILURES = 5
    LOCKOUT_S = 30.0

    def __init__(
        self,
        authenticate: Callable[[str, str], User | None],
        auto_logout_s: float = 300.0,
        audit: Callable[..., None] | None = None,
        lockout: LockoutStore | None = None,
    ):
        super().__init__()
        self._authenticate = authenticate
        self._audit = audit or (lambda *a, **k: None)
        self.user: User | None = None
        self._failures = 0
        self._locked_until = 0.0
        self._lockout = lockout
        if lockout is not None:
            failures, until = lockout.load()
            self._failures = failures
            if until is not None:
                left = (until - datetime.now(UTC)).total_seconds()
                if left > 0:
                    self._locked_until = time.monotonic() + min(left, self.LOCKOUT_S)
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(int(auto_logout_s * 1000))
        self._timer.timeout.connect(self._timed_out)

    def login(self, name: str, secret: str) -> User:
        self._check_lockout()
        return self._finish_login(name, self._authenticate(name.strip(), secret))

    def login_in_background(
        self, name: str, secret: str, worker, on_done: Callable[[User | None, str | None], None]
    ) -> None:
        """The same login with the scrypt check on `worker` (ui.worker.DbWorker), off the GUI thread.

        `on_done(user, None)` or `on_done(None, reason)` runs on the GUI thread; the failure count,
        lock-out, audit and `changed` signal are handled there exactly as in `login`.
        """
        try:
            self._check_lockout()
        except LoginFailed as exc:
            on_done(None, str(exc))
            return
        authenticate = self._authenticate
        stripped = name.strip()

        def finished(user: User | None) -> None:
            try:
                on_done(self._finish_login(name, user), None)
            except LoginFailed as exc:
                on_done(None, str(exc))

        worker.submit(lambda: authenticate(stripped, secret), finished, lambda exc: on_done(None, str(exc)), owner=self)

    def _check_lockout(self) -> None:
        now = time.monotonic()
        if now < self._locked_until:
            raise LoginFailed(f"too many failed attempts; wait {self._locked_until - now:.0f} s")

    def _finish_login(self, name: str, user: User | None) -> User:
        if user is None:
            self._failures += 1
            self._audit("login_failed", user=name.strip() or "?", detail={"failures": self._failures})
            locked_until = None
            if self._failures >= self.MAX_FAILURES:
                self._locked_until = time.monotonic() + self.LOCKOUT_S
                locked_until = datetime.now(UTC) + timedelta(seconds=self.LOCKOUT_S)
                self._audit("login_lockout", user=name.strip() or "?", detail={"seconds": self.LOCKOUT_S})
                self._failures = 0
            self._persist(locked_until)
            raise LoginFailed("unknown user or wrong PIN/password")
        if self._failures:
            self._failures = 0
            self._persist(None)
        self.user = user
        self._audit("login", user=user.name, detail={"role": user.role.value})
        self._timer.start()
        self.changed.emit(user)
        return user

    def _persist(self, locked_until: datetime | None) -> None:
        if self._lockout is None:
            return
        try:
            self._lockout.save(self._failures, locked_until)
        except Exception:
            log.exception("login lock-out state could not be stored")

    def logout(self, reason: str = "logout") -> None:
        if self.user is None:
            return
        self._audit(reason, user=self.user.name, detail={})
        self.user = None
        self._timer.stop()
        self.changed.emit(None)

    def _timed_out(self) -> None:
        self.logout("auto_logout")

    def activity(self) -> None:
        if self.user is not None:
            self._timer.start()

    def can(self, permission: Permission) -> bool:
        return self.user is not None and self.user.can(permission)

    def require(self, permission: Permission) -> User:
        if not self.can(permission):
            raise PermissionDenied(self.user, permission)
        assert self.user is not None
        return self.user

    def allowed(self, permission: Permission, target: str, audit: Callable[..., None]) -> User | None:
        """The logged-in user when they hold `permission`; else None, and a logged-in user's attempt is audited
        ("denied": who tried what, and what it needs). The screen says why in its own words (`denied_to`)."""
        if self.can(permission):
            return self.user
        if self.user is not None:
            audit("denied", user=self.user.name, target=target, detail={"needs": permission.value})
        return None

    def denied_to(self) -> str:
        """Who a refusal is for, as the refusal names them: "name (role)", or "" when nobody is logged in."""
        return f"{self.user.name} ({self.user.role.value})" if self.user is not None else ""

    @property
    def auto_logout_ms(self) -> int:
        return self._timer.interval()


class ActivityFilter(QObject):
    """Application-wide event filter: any touch, click or key restarts the inactivity timer."""

    KINDS = {
        QEvent.Type.MouseButtonPress,
        QEvent.Type.KeyPress,
        QEvent.Type.TouchBegin,
        QEvent.Type.Wheel,
    }

    def __init__(self, session: Session):
        super().__init__()
        self.session = session

    def eventFilter(self, obj, event) -> bool:  # noqa: N802 (Qt name)
        if event.type() in self.KINDS:
            self.session.activity()
        return False
