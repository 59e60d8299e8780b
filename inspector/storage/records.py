"""Reviews, users, audit events and calibrations: the small writes the UI and calibration make.

These are rare, short transactions on their own sessions (SQLite's busy timeout queues them behind
the recorder's batch commit; WAL lets them run beside its reads). The high-rate inspection rows
stay with the one writer thread.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from ..domain import CLASS_NAMES
from .db import Database
from .models import ROLES, AuditEvent, Calibration, Defect, Inspection, Review, User, utcnow


class RecordError(ValueError):
    """A review, user or calibration that cannot be stored; the message names the field."""


class LastAdminError(RecordError):
    """A change that would leave no active admin: nobody could then manage users, not even to undo it."""

    def __init__(self, username: str):
        super().__init__(
            f"user {username!r} is the last active admin: make another user an admin first, "
            "or nobody can manage users any more"
        )
        self.username = username


# ------------------------------------------------------------------ audit
def record_audit(
    db: Database,
    who: str,
    action: str,
    target: str = "",
    before: Any = None,
    after: Any = None,
    *,
    session=None,
    source: str = "",
) -> int:
    """Store who changed what (before -> after, any JSON values) at the end of the signed audit chain
    (inspector.storage.audit). Returns the event id.

    Pass `session` to make the event part of the caller's transaction (so the change and its audit
    record commit together).
    """
    from .audit import append

    return append(db, who, action, target, before, after, source=source, session=session)


def audit_events(
    db: Database, *, since: datetime | None = None, who: str | None = None, limit: int = 200
) -> list[AuditEvent]:
    q = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc()).limit(limit)
    if since is not None:
        q = q.where(AuditEvent.at >= since)
    if who is not None:
        q = q.where(AuditEvent.who == who)
    with db.session() as s:
        return list(s.scalars(q))


# ------------------------------------------------------------------ reviews
def _unjudged(s, inspection_id: int) -> int:
    """Detections of the board that no review has judged (confirmed or false call) yet."""
    judged = select(Review.defect_id).where(Review.inspection_id == inspection_id, Review.defect_id.isnot(None))
    return int(
        s.scalar(select(func.count(Defect.id)).where(Defect.inspection_id == inspection_id, Defect.id.not_in(judged)))
        or 0
    )


def _settle_reviewed(s, inspection_id: int) -> None:
    """A board is reviewed once every detection on it is judged. Set by any one review, a board with one of two
    detections judged left the unreviewed list, and the retraining export taught the other as background."""
    s.execute(
        update(Inspection).where(Inspection.id == inspection_id).values(reviewed=_unjudged(s, inspection_id) == 0)
    )


def review_defect(db: Database, defect_id: int, verdict: str, reviewer: str, comment: str = "") -> int:
    """Mark a detected defect `confirmed` or `false_call`; a later review of the same defect supersedes it."""
    if verdict not in ("confirmed", "false_call"):
        raise RecordError(f"verdict {verdict!r} for a detected defect: expected 'confirmed' or 'false_call'")
    if not reviewer:
        raise RecordError("reviewer is empty")
    with db.session() as s, s.begin():
        d = s.get(Defect, defect_id)
        if d is None:
            raise RecordError(f"no defect with id {defect_id}")
        # The write first: it takes the database's write lock (SQLite) or the board's row lock (PostgreSQL), so a
        # second reviewer of this defect waits here and then reads this review. Read first, two reviewers at once
        # (desk and line UI) each deleted the older review and added theirs: 5 of 5 defects kept two rows for good,
        # and the false-call rate counted 129 judgements of 5 defects.
        s.execute(update(Inspection).where(Inspection.id == d.inspection_id).values(reviewed=True))
        olds = list(s.scalars(select(Review).where(Review.defect_id == defect_id).order_by(Review.id.desc())))
        before = {"verdict": olds[0].verdict, "reviewer": olds[0].reviewer} if olds else None
        for old in olds:  # every earlier row: duplicates an earlier race left are healed by the next review
            s.delete(old)
        r = Review(
            inspection_id=d.inspection_id, defect_id=defect_id, verdict=verdict, reviewer=reviewer, comment=comment
        )
        s.add(r)
        s.flush()
        _settle_reviewed(s, d.inspection_id)
        record_audit(db, reviewer, "review", f"defect {defect_id}", before, {"verdict": verdict}, session=s)
        return r.id


def add_missed_defect(
    db: Database,
    inspection_id: int,
    box: tuple[float, float, float, float],
    class_id: int,
    reviewer: str,
    comment: str = "",
) -> int:
    """A defect the detector missed, drawn by the reviewer (box in frame pixels x1, y1, x2, y2)."""
    if not 1 <= class_id <= len(CLASS_NAMES):
        raise RecordError(f"class id {class_id} is not one of 1..{len(CLASS_NAMES)}")
    x1, y1, x2, y2 = (float(v) for v in box)
    if x2 <= x1 or y2 <= y1:
        raise RecordError(f"box {box} is empty: need x1 < x2 and y1 < y2")
    if not reviewer:
        raise RecordError("reviewer is empty")
    with db.session() as s, s.begin():
        if s.get(Inspection, inspection_id) is None:
            raise RecordError(f"no inspection with id {inspection_id}")
        r = Review(
            inspection_id=inspection_id,
            verdict="missed",
            class_id=class_id,
            x1=x1,
            y1=y1,
            x2=x2,
            y2=y2,
            reviewer=reviewer,
            comment=comment,
        )
        s.add(r)
        s.flush()
        _settle_reviewed(s, inspection_id)
        record_audit(
            db, reviewer, "review", f"inspection {inspection_id}", None,
            {"verdict": "missed", "class_id": class_id, "box": [x1, y1, x2, y2]}, session=s,
        )  # fmt: skip
        return r.id


def mark_reviewed(db: Database, inspection_id: int, reviewer: str, comment: str = "") -> None:
    """A board reviewed as a whole with nothing to add (e.g. a PASS checked and found clean).

    Refused while a detection on it is unjudged: "Board OK" on a REJECT said nothing about its detections, which then
    counted as neither confirmed nor false calls and went into the retraining set as background."""
    with db.session() as s, s.begin():
        if s.get(Inspection, inspection_id) is None:
            raise RecordError(f"no inspection with id {inspection_id}")
        left = _unjudged(s, inspection_id)
        if left:
            raise RecordError(
                f"board {inspection_id} has {left} detection(s) nobody judged: mark each confirmed or false call first"
            )
        s.execute(update(Inspection).where(Inspection.id == inspection_id).values(reviewed=True))
        record_audit(
            db,
            reviewer,
            "review",
            f"inspection {inspection_id}",
            None,
            {"reviewed": True, "comment": comment},
            session=s,
        )


def delete_review(db: Database, review_id: int, by: str) -> None:
    with db.session() as s, s.begin():
        r = s.get(Review, review_id)
        if r is None:
            raise RecordError(f"no review with id {review_id}")
        before = {"verdict": r.verdict, "defect_id": r.defect_id, "reviewer": r.reviewer}
        iid = r.inspection_id
        s.delete(r)
        s.flush()
        left = s.scalar(select(func.count()).select_from(Review).where(Review.inspection_id == iid))
        if not left:
            s.execute(update(Inspection).where(Inspection.id == iid).values(reviewed=False))
        else:
            _settle_reviewed(s, iid)
        record_audit(db, by, "review.delete", f"review {review_id}", before, None, session=s)


# ------------------------------------------------------------------ users
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,100}$")


def hash_secret(secret: str) -> str:
    """scrypt (N=2^14, r=8, p=1, 16-byte salt): `scrypt$N$r$p$salt$hash`, base64."""
    salt = os.urandom(16)
    h = hashlib.scrypt(secret.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b(salt).decode()}${b(h).decode()}"


def verify_secret(secret: str, stored: str) -> bool:
    try:
        kind, n, r, p, salt, h = stored.split("$")
        if kind != "scrypt":
            return False
        got = hashlib.scrypt(
            secret.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=len(base64.b64decode(h))
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(h))


@dataclass(frozen=True, slots=True)
class UserInfo:
    id: int
    username: str
    role: str
    active: bool
    last_login: datetime | None


def _info(u: User) -> UserInfo:
    return UserInfo(u.id, u.username, u.role, u.active, u.last_login)


def _check_user(username: str, role: str | None, secret: str | None) -> None:
    if not _USERNAME.match(username or ""):
        raise RecordError(f"username {username!r}: 1-100 letters, digits or _.@-")
    if role is not None and role not in ROLES:
        raise RecordError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if secret is not None and len(secret) < 4:
        raise RecordError("secret too short: at least 4 characters (a PIN of 4+ digits or a password)")


def create_user(db: Database, username: str, role: str, secret: str, *, by: str = "system") -> UserInfo:
    _check_user(username, role, secret)
    with db.session() as s, s.begin():
        if s.scalar(select(User.id).where(User.username == username)) is not None:
            raise RecordError(f"user {username!r} already exists")
        u = User(username=username, role=role, password_hash=hash_secret(secret), active=True)
        s.add(u)
        s.flush()
        record_audit(db, by, "user.create", f"user {username}", None, {"role": role}, session=s)
        return _info(u)


def authenticate(db: Database, username: str, secret: str) -> UserInfo | None:
    """The user if the secret matches an active account (last_login updated), else None."""
    with db.session() as s, s.begin():
        u = s.scalar(select(User).where(User.username == username))
        if u is None or not u.active or not verify_secret(secret, u.password_hash):
            return None
        u.last_login = utcnow()
        return _info(u)


def set_secret(db: Database, username: str, secret: str, *, by: str) -> None:
    _check_user(username, None, secret)
    with db.session() as s, s.begin():
        u = s.scalar(select(User).where(User.username == username))
        if u is None:
            raise RecordError(f"no user {username!r}")
        u.password_hash = hash_secret(secret)
        record_audit(db, by, "user.secret", f"user {username}", None, None, session=s)


def _keep_an_admin(s: Session, u: User, role: str, active: bool) -> None:
    """Refuse to make `u` (about to get `role`, `active`) stop being the last active admin.

    The active admins' rows are locked (PostgreSQL), so two admins stepping down at once cannot
    both pass: the second sees the first's change once it is committed.
    """
    if role == "admin" and active:
        return
    admins = s.scalars(select(User.id).where(User.role == "admin", User.active.is_(True)).with_for_update()).all()
    if list(admins) == [u.id]:
        raise LastAdminError(u.username)


def set_role(db: Database, username: str, role: str, *, by: str) -> None:
    """Change a user's role; refused (`LastAdminError`) when it would leave no active admin."""
    _check_user(username, role, None)
    with db.session() as s, s.begin():
        u = s.scalar(select(User).where(User.username == username))
        if u is None:
            raise RecordError(f"no user {username!r}")
        _keep_an_admin(s, u, role, u.active)
        before, u.role = u.role, role
        record_audit(db, by, "user.role", f"user {username}", {"role": before}, {"role": role}, session=s)


def set_active(db: Database, username: str, active: bool, *, by: str) -> None:
    """Enable or disable a user; refused (`LastAdminError`) when it would leave no active admin."""
    with db.session() as s, s.begin():
        u = s.scalar(select(User).where(User.username == username))
        if u is None:
            raise RecordError(f"no user {username!r}")
        _keep_an_admin(s, u, u.role, active)
        before, u.active = u.active, active
        record_audit(db, by, "user.active", f"user {username}", {"active": before}, {"active": active}, session=s)


def list_users(db: Database) -> list[UserInfo]:
    with db.session() as s:
        return [_info(u) for u in s.scalars(select(User).order_by(User.username))]


def has_admin(db: Database) -> bool:
    """False on a fresh station: the UI then asks for the first admin's secret."""
    with db.session() as s:
        return s.scalar(select(User.id).where(User.role == "admin", User.active.is_(True)).limit(1)) is not None


# ------------------------------------------------------------------ calibrations
@dataclass(frozen=True, slots=True)
class CalibrationInfo:
    id: int
    station_id: str
    kind: str
    created_at: datetime
    created_by: str
    results: dict[str, Any]
    active: bool


def _cal(c: Calibration) -> CalibrationInfo:
    return CalibrationInfo(c.id, c.station_id, c.kind, c.created_at, c.created_by, dict(c.results), c.active)


def save_calibration(
    db: Database,
    kind: str,
    results: dict[str, Any],
    created_by: str,
    *,
    activate: bool = True,
    station_id: str | None = None,
) -> CalibrationInfo:
    """Store a calibration (`kind`: intrinsics, scale, reference, baseline...) for this station.

    With `activate`, it becomes the active one of its kind and the previous one stays as history.
    """
    if not kind:
        raise RecordError("calibration kind is empty")
    station = station_id or db.station_id
    with db.session() as s, s.begin():
        prev = None
        if activate:
            prev = s.scalar(
                select(Calibration).where(
                    Calibration.station_id == station, Calibration.kind == kind, Calibration.active.is_(True)
                )
            )
            s.execute(
                update(Calibration)
                .where(Calibration.station_id == station, Calibration.kind == kind)
                .values(active=False)
            )
        c = Calibration(station_id=station, kind=kind, results=results, created_by=created_by, active=activate)
        s.add(c)
        s.flush()
        record_audit(
            db, created_by, "calibration.save", f"{station}/{kind}",
            {"id": prev.id} if prev else None, {"id": c.id, "active": activate}, session=s,
        )  # fmt: skip
        return _cal(c)


def activate_calibration(db: Database, calibration_id: int, *, by: str) -> CalibrationInfo:
    with db.session() as s, s.begin():
        c = s.get(Calibration, calibration_id)
        if c is None:
            raise RecordError(f"no calibration with id {calibration_id}")
        s.execute(
            update(Calibration)
            .where(Calibration.station_id == c.station_id, Calibration.kind == c.kind)
            .values(active=False)
        )
        c.active = True
        record_audit(db, by, "calibration.activate", f"{c.station_id}/{c.kind}", None, {"id": c.id}, session=s)
        return _cal(c)


def active_calibration(db: Database, kind: str, *, station_id: str | None = None) -> CalibrationInfo | None:
    with db.session() as s:
        c = s.scalar(
            select(Calibration)
            .where(
                Calibration.station_id == (station_id or db.station_id),
                Calibration.kind == kind,
                Calibration.active.is_(True),
            )
            .order_by(Calibration.id.desc())
            .limit(1)
        )
        return _cal(c) if c else None


def calibration_history(
    db: Database, kind: str | None = None, *, station_id: str | None = None
) -> list[CalibrationInfo]:
    q = select(Calibration).where(Calibration.station_id == (station_id or db.station_id))
    if kind:
        q = q.where(Calibration.kind == kind)
    with db.session() as s:
        return [_cal(c) for c in s.scalars(q.order_by(Calibration.created_at.desc(), Calibration.id.desc()))]
