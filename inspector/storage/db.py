"""Opening the records database: engine settings, schema upgrade at start, backup before a migration.

SQLite settings and why:
- WAL: readers (the UI, `history`) never block the writer and the writer never blocks them.
- synchronous=FULL by default (configurable, `storage.sqlite_synchronous`): in WAL mode NORMAL already
  survives a *process* crash (SIGKILL), but a commit can be lost on power loss or a kernel crash because
  the WAL is not fsynced per commit. A verdict the PLC saw must survive a power cut too, and the writer
  commits in batches, so FULL costs one fsync per batch (about 0.3 ms here; scripts/bench_storage.py
  prints both). NORMAL is kept as an option for slow flash.
- foreign_keys=ON (SQLite defaults it off), busy_timeout so short writes from the UI wait rather than fail.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from sqlalchemy.orm import Session, sessionmaker

from ..redact import safe_url

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class StorageError(Exception):
    """The database cannot be opened, upgraded or written; the message says which and why."""


@dataclass
class Database:
    """An open records database: the engine, a session factory and the station this process is."""

    url: str
    engine: Engine
    station_id: str = "station-1"
    backup_path: Path | None = None
    """Backup made before the last migration at open, if any."""
    station_key: Any = None
    """inspector.station_key.StationKey that signs audit events (None: events are chained but unsigned,
    which `audit verify` reports)."""
    audit_source: str = ""
    """Source written on audit events that do not name one: ui, cli, station (who opened this database)."""
    _sessions: sessionmaker[Session] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def session(self) -> Session:
        return self._sessions()

    def close(self) -> None:
        self.engine.dispose()


def sqlite_path(url: str) -> Path | None:
    u = make_url(url)
    if u.get_backend_name() != "sqlite" or not u.database or u.database == ":memory:":
        return None
    return Path(u.database)


def create_db_engine(url: str, *, synchronous: str = "FULL", busy_timeout_ms: int = 5000) -> Engine:
    try:
        u = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"database_url {safe_url(url)!r} is not a SQLAlchemy URL (sqlite:///path or postgresql+psycopg://...)"
        ) from None
    if u.get_backend_name() == "sqlite":
        path = sqlite_path(url)
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StorageError(f"cannot create the database folder {path.parent}: {exc.strerror}") from None
        engine = create_engine(url, connect_args={"timeout": busy_timeout_ms / 1000})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
            cur.close()

        return engine
    if u.drivername in ("postgres", "postgresql"):  # `postgres://` is how psql, Heroku and most plant notes spell it
        u = u.set(drivername="postgresql+psycopg")
    if u.get_backend_name() == "postgresql":
        try:
            return create_engine(u, pool_pre_ping=True, connect_args={"connect_timeout": 5})
        except (NoSuchModuleError, ModuleNotFoundError) as exc:
            raise StorageError(f"PostgreSQL needs psycopg: pip install 'pcb-inspector[postgres]' ({exc})") from None
    raise StorageError(f"database_url {safe_url(url)!r}: only sqlite and postgresql are supported")


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revision() -> str:
    return ScriptDirectory.from_config(alembic_config()).get_current_head() or ""


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run the migrations up to `revision` in one transaction.

    On SQLite, foreign keys are switched off for the duration: a migration that rebuilds a table
    (Alembic's batch mode drops the old copy) would otherwise cascade-delete every defect and review
    of the rebuilt inspections. The keys are checked afterwards and the upgrade fails if any dangle.
    """
    cfg = alembic_config()
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        if sqlite:
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
                if sqlite:
                    bad = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if bad:
                        raise StorageError(f"migration left {len(bad)} rows with dangling foreign keys, e.g. {bad[0]}")
        finally:
            if sqlite:
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def backup_sqlite(path: Path, label: str) -> Path:
    """Consistent copy through SQLite's online backup API (a plain file copy could tear the WAL)."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    dest = path.with_name(f"{path.name}.bak-{label}-{stamp}")
    src = sqlite3.connect(str(path))
    try:
        dst = sqlite3.connect(str(dest))
        try:
            src.backup(dst)
        finally:
            dst.close()
    finally:
        src.close()
    return dest


def open_database(
    url: str,
    *,
    station_id: str = "station-1",
    migrate: bool = True,
    synchronous: str = "FULL",
    busy_timeout_ms: int = 5000,
    station_key: Any = None,
) -> Database:
    """Open (and by default upgrade) the records database.

    A pending migration on a database that already holds data backs it up first (SQLite: a file beside
    it; PostgreSQL: the plant DBA's backups, logged as a warning). A database from a *newer* version is
    refused rather than written by old code.
    """
    try:
        path = sqlite_path(url)
    except ArgumentError:
        path = None  # not a URL at all: create_db_engine says so, naming it
    if not migrate and path is not None and not path.is_file():
        # A reader (history, audit, dataset, db check) given a mistyped path would otherwise create an
        # empty database there, and its folder, and then fail on a missing table.
        raise StorageError(
            f"no database at {path}: nothing has been recorded there (check --db / storage.database_url)"
        )
    engine = create_db_engine(url, synchronous=synchronous, busy_timeout_ms=busy_timeout_ms)
    db = Database(url, engine, station_id, station_key=station_key)
    try:
        current = current_revision(engine)
    except Exception as exc:
        engine.dispose()
        raise StorageError(f"cannot open database {safe_url(url)}: {exc}") from None
    head = head_revision()
    script = ScriptDirectory.from_config(alembic_config())
    if current is not None and current != head:
        known = {r.revision for r in script.walk_revisions()}
        if current not in known:
            engine.dispose()
            raise StorageError(
                f"database {safe_url(url)} is at schema {current!r}, unknown to this version (newest known: {head}); "
                "it was written by a newer pcb-inspector"
            )
    if migrate and current != head:
        if current is not None:
            path = sqlite_path(url)
            if path is not None and path.exists():
                t0 = time.monotonic()
                db.backup_path = backup_sqlite(path, current)
                log.warning(
                    "schema %s -> %s: backed up %s to %s in %.1f s",
                    current,
                    head,
                    path,
                    db.backup_path,
                    time.monotonic() - t0,
                )
            elif path is None:
                log.warning(
                    "schema %s -> %s on %s: no automatic backup, rely on the plant's", current, head, safe_url(url)
                )
        try:
            upgrade(engine)
        except Exception as exc:
            engine.dispose()
            raise StorageError(f"schema upgrade of {safe_url(url)} from {current} to {head} failed: {exc}") from exc
    return db


def ensure_station(db: Database, name: str = "", line: str = "") -> None:
    from .models import Station

    with db.session() as s, s.begin():
        st = s.get(Station, db.station_id)
        if st is None:
            s.add(Station(id=db.station_id, name=name, line=line))
        elif (name and st.name != name) or (line and st.line != line):
            st.name, st.line = name or st.name, line or st.line
