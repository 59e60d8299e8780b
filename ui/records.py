"""The UI's door to the records database: users, audit, history, reviews and statistics.

Why an adapter and not storage calls spread over the screens: every screen needs the same open
`Database`, the same archive folder to resolve image paths, and the same audit call; and the
screens are tested against this one object backed by a real SQLite file. The schema and the
queries are `inspector.storage`'s; nothing here writes SQL.
"""

from __future__ import annotations

import logging
import os
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from inspector.config import StationConfig
from inspector.storage import audit
from inspector.storage import queries as q
from inspector.storage import recipes as rec
from inspector.storage import records as r
from inspector.storage.db import Database, ensure_station, open_database

from .auth import Role, User

log = logging.getLogger(__name__)

HistoryFilter = q.HistoryFilter
AuditFilter = audit.AuditFilter
RecordError = r.RecordError
QueryError = q.QueryError


class Records:
    def __init__(self, db: Database, archive_dir: Path):
        self.db = db
        self.archive_dir = Path(archive_dir)
        self.shift_starts: list[str] = ["06:00", "14:00", "22:00"]
        """The plant's shift plan (`storage.shift_starts`, local to `timezone`)."""
        self.timezone: str | None = None
        """`storage.timezone`; None: the system's zone."""

    @classmethod
    def open(cls, cfg: StationConfig) -> Records:
        from inspector.station_key import load_or_create

        key = load_or_create(cfg.storage.station_key_path())  # signs the audit events made here
        db = open_database(cfg.storage.database_url, station_id=cfg.station.id, station_key=key)
        db.audit_source = "ui"
        ensure_station(db, cfg.station.name, cfg.station.line)
        records = cls(db, cfg.storage.archive_dir)
        records.shift_starts = list(cfg.storage.shift_starts)
        records.timezone = cfg.storage.timezone
        return records

    def close(self) -> None:
        self.db.close()

    def shift_tally(self, shift_started: datetime) -> q.Tally:
        """This station's boards recorded since `shift_started` (naive: local time)."""
        since = shift_started if shift_started.tzinfo else shift_started.astimezone()
        return q.tally_since(self.db, since, station_id=self.db.station_id)

    # ------------------------------------------------------------ users
    def count_users(self) -> int:
        return len(r.list_users(self.db))

    def has_admin(self) -> bool:
        return r.has_admin(self.db)

    def create_user(self, name: str, role: str, secret: str, *, by: str) -> None:
        r.create_user(self.db, name, role, secret, by=by)

    def authenticate(self, name: str, secret: str) -> User | None:
        info = r.authenticate(self.db, name, secret)
        return User(info.username, Role(info.role)) if info else None

    def user_names(self) -> list[str]:
        return [u.username for u in r.list_users(self.db) if u.active]

    def users(self) -> list[r.UserInfo]:
        return r.list_users(self.db)

    def set_role(self, name: str, role: str, *, by: str) -> None:
        r.set_role(self.db, name, role, by=by)

    def set_secret(self, name: str, secret: str, *, by: str) -> None:
        r.set_secret(self.db, name, secret, by=by)

    def set_active(self, name: str, active: bool, *, by: str) -> None:
        r.set_active(self.db, name, active, by=by)

    # ------------------------------------------------------------ audit
    def audit(
        self, action: str, *, user: str, target: str = "", before: Any = None, after: Any = None, detail: Any = None
    ) -> None:
        """Every change a person makes (and every refusal) as an AuditEvent; never raises into the GUI."""
        try:
            r.record_audit(
                self.db, user, action, target, before, after if detail is None else (after or detail), source="ui"
            )
        except Exception:
            log.exception("audit event %s by %s could not be stored", action, user)

    def audit_events(self, limit: int = 200, f: AuditFilter | None = None):
        """Newest first, filtered (user, action family, time)."""
        return audit.list_events(self.db, f, limit=limit)

    def audit_choices(self) -> tuple[list[str], list[str]]:
        """(users, actions) present in the trail."""
        return audit.distinct_values(self.db)

    def export_audit_csv(self, f: AuditFilter | None, path: Path) -> int:
        path = Path(path)
        part = path.with_name(path.name + ".part")
        try:
            with open(part, "w", newline="", encoding="utf-8") as out:
                n = audit.write_csv(audit.iter_events(self.db, f), out)
            os.replace(part, path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return n

    def verify_audit(self) -> audit.AuditReport:
        """The chain and signatures, checked with this station's key (and its retired ones)."""
        key = self.db.station_key
        if key is None:
            raise RecordError("no station key: the audit trail cannot be verified here")
        return audit.verify(self.db, key.verifier())

    def lockout_store(self) -> _LockoutStore:
        return _LockoutStore(self.db)

    # ------------------------------------------------------------ history
    def history(self, f: q.HistoryFilter | None, *, limit: int = 50, cursor: q.Cursor | None = None) -> q.Page:
        return q.history(self.db, f, limit=limit, cursor=cursor)

    def count(self, f: q.HistoryFilter | None) -> int:
        return q.count(self.db, f)

    def detail(self, key: int | str) -> q.InspectionDetail | None:
        return q.inspection_detail(self.db, key)

    def export_csv(self, f: q.HistoryFilter | None, path: Path) -> int:
        """Write to a `.part` file and rename it when complete: a full disk never leaves a CSV that
        looks finished but lacks rows."""
        path = Path(path)
        part = path.with_name(path.name + ".part")
        try:
            with open(part, "w", newline="", encoding=q.CSV_FILE_ENCODING) as out:
                n = q.write_csv(q.iter_history(self.db, f), out)
            os.replace(part, path)
        except BaseException:
            part.unlink(missing_ok=True)
            raise
        return n

    def image(self, rel: str | None) -> np.ndarray | None:
        """An archived image (relative path) as read from disk; None if it is not there."""
        if not rel:
            return None
        from inspector.image_file import ImageFileError, read_image_file

        path = self.archive_dir / rel
        try:
            return read_image_file(path)
        except ImageFileError as exc:
            # Strictly: a truncated archive file read leniently shows a half-gray board, and the quality engineer
            # would judge defects (or their absence) on pixels nobody captured.
            log.warning("archived image %s: %s", path, exc)
            return None

    # ------------------------------------------------------------ reviews
    def review_defect(self, defect_id: int, verdict: str, reviewer: str, comment: str = "") -> int:
        return r.review_defect(self.db, defect_id, verdict, reviewer, comment)

    def add_missed(self, inspection_id: int, box, class_id: int, reviewer: str, comment: str = "") -> int:
        return r.add_missed_defect(self.db, inspection_id, box, class_id, reviewer, comment)

    def mark_reviewed(self, inspection_id: int, reviewer: str, comment: str = "") -> None:
        r.mark_reviewed(self.db, inspection_id, reviewer, comment)

    # ------------------------------------------------------------ statistics
    def yield_per_hour(self, f: q.HistoryFilter | None = None):
        return q.yield_per_hour(self.db, f)

    def yield_per_shift(self, f: q.HistoryFilter | None = None, tz: str | None = None):
        """Per shift of the plant's plan, in `tz` (default: the configured zone, else the system's)."""
        return q.yield_per_shift(self.db, f, shift_starts=self.shift_starts, tz=tz or self.timezone or _system_tz())

    def zone(self) -> ZoneInfo:
        """The plant's zone (`storage.timezone`, else the system's): the days and hours the charts label, and the times
        History, Review and Audit show (the PC's zone put a board of shift B at 13:00 in a Berlin plant's list)."""
        return ZoneInfo(self.timezone or _system_tz())

    def pareto(self, f: q.HistoryFilter | None = None):
        return q.defect_pareto(self.db, f, reviewed_truth=True)

    def review_stats(self, f: q.HistoryFilter | None = None):
        return q.review_stats(self.db, f)

    # ------------------------------------------------------------ recipes
    def register_recipe(self, recipe: dict[str, Any], *, by: str):
        return rec.register_recipe(self.db, recipe, by=by)

    def recipe_versions(self, name: str):
        return rec.recipe_versions(self.db, name)

    def latest_recipe(self, name: str):
        """The newest stored version of a recipe as a config `Recipe`, or None if never stored."""
        from inspector.config import Recipe

        versions = self.recipe_versions(name)
        if not versions:
            return None
        return Recipe.model_validate({"name": name, **versions[-1].settings})


class _LockoutStore:
    """ui.auth.LockoutStore on the records database (one lock-out per station's login screen)."""

    def __init__(self, db: Database):
        self.db = db

    def load(self):
        try:
            return audit.load_lockout(self.db, f"login:{self.db.station_id}")
        except Exception:
            log.exception("login lock-out state could not be read")
            return 0, None

    def save(self, failures: int, locked_until) -> None:
        audit.save_lockout(self.db, f"login:{self.db.station_id}", failures, locked_until)


def _system_tz() -> str:
    """IANA name of the system's zone (UTC when the system does not say)."""
    try:
        link = Path("/etc/localtime").resolve()
        if "zoneinfo" in link.parts:
            return "/".join(link.parts[link.parts.index("zoneinfo") + 1 :])
    except OSError:
        pass
    return "UTC"
