"""Plant database sync: push the station's records (SQLite) to the plant PostgreSQL, incrementally.

Why the station's SQLite is the queue: the line must keep inspecting when the plant network is
down, and the records are already durable there. This worker only reads the local database (the
storage writer thread stays its only writer) and pushes what is new when the plant answers.

Guarantees, and how:
- idempotent: inspections are inserted with `ON CONFLICT (uid) DO NOTHING`; an inspection and its
  defects go in one plant transaction, so an inspection that already exists already has its
  defects. Reviews are matched on (inspection, defect, verdict, reviewer, time) before insert.
- resumable: high-water marks (last local inspection id and review id pushed) are kept in a small
  state file beside the database, written atomically *after* the plant committed. A crash between
  the two re-pushes one batch, which the upserts absorb.
- the state file is also how retention knows sync is in use: the worker writes it (marks 0) when it
  is constructed, before it ever connects, so a station whose plant refuses the login or cannot be
  reached since install keeps every record instead of treating "no file" as "no sync".
- audit trail: hash-chained, signed audit events are pushed too (matched on station and `seq`), with
  the plant's chain head moved to the last event pushed. The plant then holds a copy the station
  cannot rewrite, and can check it with `pcb-inspector audit verify --db PLANT --key STATION.pub`.
- never deletes: nothing is removed locally; `synced_marks()` tells retention how far the plant
  has confirmed inspections and reviews, so it can refuse to delete unsynced rows, and the unsynced
  reviews of synced ones.
- queues while down: a failed batch is rolled back, the connection pool dropped, and the batch
  retried with capped backoff; nothing advances until the plant commits.

Local ids are not plant ids: recipes map by (name, version), model versions by model_id,
inspections by uid, defects by (inspection, idx), stations by id.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import and_, func, select, update
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from .redact import safe_url
from .storage.db import create_db_engine, current_revision, head_revision, sqlite_path, upgrade
from .storage.models import AuditEvent, AuditHead, Defect, Inspection, ModelVersion, Recipe, Review, Station

log = logging.getLogger(__name__)

T_ST, T_RC, T_MV = Station.__table__, Recipe.__table__, ModelVersion.__table__
T_IN, T_DF, T_RV = Inspection.__table__, Defect.__table__, Review.__table__
T_AU, T_AH = AuditEvent.__table__, AuditHead.__table__


class SyncError(Exception):
    """Sync cannot run as configured (bad URL, no state path); network trouble is retried, not raised."""


def _insert(conn: Connection, table):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise SyncError(f"plant database dialect {conn.dialect.name!r} is not supported (postgresql or sqlite)")
    return insert(table)


def default_state_path(local_url: str) -> Path:
    path = sqlite_path(local_url)
    if path is None:
        raise SyncError(f"local database {safe_url(local_url)} is not a SQLite file: give state_path")
    return path.with_name(path.name + ".plant-sync.json")


@dataclass(frozen=True, slots=True)
class SyncedMarks:
    """How far the plant has confirmed this station's records: the highest local ids it committed."""

    inspections: int = 0
    reviews: int = 0


def synced_marks(local_url: str, state_path: Path | None = None) -> SyncedMarks:
    """The plant's confirmed marks from the state file (0 when never synced); for retention."""
    state = _SyncState.load(state_path or default_state_path(local_url))
    return SyncedMarks(state.inspections, state.reviews)


def synced_through(local_url: str, state_path: Path | None = None) -> int:
    """Highest local inspection id the plant has confirmed (0 when never synced)."""
    return synced_marks(local_url, state_path).inspections


@dataclass
class _SyncState:
    path: Path
    plant: str = ""
    inspections: int = 0
    reviews: int = 0
    audit: int = 0

    @classmethod
    def load(cls, path: Path) -> _SyncState:
        try:
            d = json.loads(Path(path).read_text())
            return cls(
                Path(path),
                d.get("plant", ""),
                int(d.get("inspections", 0)),
                int(d.get("reviews", 0)),
                int(d.get("audit", 0)),
            )
        except FileNotFoundError:
            return cls(Path(path))
        except (OSError, ValueError) as exc:
            # A damaged state file only costs a re-push (idempotent), never a loss.
            log.warning("sync state %s unreadable (%s): starting from the beginning", path, exc)
            return cls(Path(path))

    def save(self) -> None:
        tmp = self.path.with_name(self.path.name + ".tmp")
        data = {
            "plant": self.plant,
            "inspections": self.inspections,
            "reviews": self.reviews,
            "audit": self.audit,
            "saved": time.time(),
        }
        with open(tmp, "w") as f:
            json.dump(data, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)


@dataclass
class SyncReport:
    inspections: int = 0
    defects: int = 0
    reviews: int = 0
    audit_events: int = 0
    batches: int = 0
    errors: list[str] = field(default_factory=list)


class PlantSync:
    """Pushes new inspections, defects and reviews to the plant; one thread, one plant connection."""

    name = "plant-sync"

    def __init__(
        self,
        local_url: str,
        plant_url: str,
        *,
        batch: int = 200,
        interval_s: float = 5.0,
        state_path: Path | None = None,
        migrate_plant: bool = True,
        connect_timeout_s: int = 5,
        backoff_max_s: float = 60.0,
    ):
        self.local_url = local_url
        self.plant_url = plant_url
        self.batch = batch
        self.interval_s = interval_s
        self.backoff_max_s = backoff_max_s
        self.migrate_plant = migrate_plant
        self.connect_timeout_s = connect_timeout_s
        self.state = _SyncState.load(state_path or default_state_path(local_url))
        if self.state.plant and self.state.plant != safe_url(plant_url):
            log.warning(
                "plant database changed (%s -> %s): pushing everything again", self.state.plant, safe_url(plant_url)
            )
            self.state = _SyncState(self.state.path)
        self.state.plant = safe_url(plant_url)
        self._local: Engine = create_db_engine(local_url)  # makes the database's folder if need be
        # Claim the state file before the plant is ever reached: retention reads "no state file" as
        # "sync not in use" and would otherwise delete records of a station whose plant login is
        # wrong or whose plant is unreachable since install. The marks (0 when new) only ever move
        # after a plant commit, so this promises nothing the plant has not confirmed.
        try:
            self.state.save()
        except OSError as exc:
            self._local.dispose()
            raise SyncError(f"cannot write the sync state file {self.state.path}: {exc}") from None
        self._plant: Engine | None = None
        self._plant_checked = False
        self.link_up = False
        self.last_error: str | None = None
        self.last_success: float | None = None
        self.started = time.monotonic()
        self.pushed = SyncReport()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ engines
    def _plant_engine(self) -> Engine:
        if self._plant is None:
            u = make_url(self.plant_url)
            if u.get_backend_name() == "postgresql":
                from sqlalchemy import create_engine

                if u.drivername == "postgresql":
                    u = u.set(drivername="postgresql+psycopg")
                # Keepalives and tcp_user_timeout: a cut cable (no RST) fails a query in ~15 s, not hours.
                self._plant = create_engine(
                    u,
                    pool_pre_ping=True,
                    pool_size=1,
                    max_overflow=0,
                    connect_args={
                        "connect_timeout": self.connect_timeout_s,
                        "keepalives": 1,
                        "keepalives_idle": 5,
                        "keepalives_interval": 2,
                        "keepalives_count": 3,
                        "tcp_user_timeout": 15000,
                        "application_name": "pcb-inspector-sync",
                    },
                )
            else:
                self._plant = create_db_engine(self.plant_url)
        if not self._plant_checked:
            rev, head = current_revision(self._plant), head_revision()
            if rev != head:
                if not self.migrate_plant:
                    raise SyncError(f"plant database schema is {rev}, this station writes {head}; migrate it first")
                log.warning("plant database schema %s -> %s", rev, head)
                upgrade(self._plant)
            self._plant_checked = True
        return self._plant

    def _drop_plant(self) -> None:
        if self._plant is not None:
            self._plant.dispose()
            self._plant = None

    # ------------------------------------------------------------------ pending
    def pending(self) -> dict[str, int]:
        with self._local.connect() as c:
            ins = c.execute(select(func.count()).select_from(T_IN).where(T_IN.c.id > self.state.inspections)).scalar()
            rev = c.execute(select(func.count()).select_from(T_RV).where(T_RV.c.id > self.state.reviews)).scalar()
        return {"inspections": int(ins or 0), "reviews": int(rev or 0)}

    def metrics(self) -> dict[str, float]:
        out = {
            "pcb_sync_link_up": 1.0 if self.link_up else 0.0,
            "pcb_sync_pushed_inspections_count": float(self.pushed.inspections),
            "pcb_sync_pushed_reviews_count": float(self.pushed.reviews),
        }
        try:
            p = self.pending()
            out["pcb_sync_pending_inspections"] = float(p["inspections"])
            out["pcb_sync_pending_reviews"] = float(p["reviews"])
        except SQLAlchemyError:
            pass
        # Age since the last success, or since start when there was none: a sync that never got through
        # must age like one that stopped getting through, or PlantSyncBacklog could never fire for it.
        out["pcb_sync_last_success_age_seconds"] = time.monotonic() - (self.last_success or self.started)
        out["pcb_sync_succeeded_since_start"] = 0.0 if self.last_success is None else 1.0
        return out

    # ------------------------------------------------------------------ one pass
    def run_once(self) -> SyncReport:
        """Push until nothing is pending; raises the database error of the first failed batch."""
        report = SyncReport()
        self._check_local_reset()
        moved_any = False
        while True:
            # "moved" = rows the marks advanced over (already-present rows included); the report counts inserts.
            moved_i, n_ins, n_def = self._push_inspections()
            moved_r, n_rev = self._push_reviews()
            moved_a, n_aud = self._push_audit()
            report.inspections += n_ins
            report.defects += n_def
            report.reviews += n_rev
            report.audit_events += n_aud
            if moved_i or moved_r or moved_a:
                report.batches += 1
                moved_any = True
            if not (moved_i or moved_r or moved_a) or self._stop.is_set():
                break
        if not moved_any:
            # Nothing to push: still touch the plant, so pcb_sync_link_up tells the truth while idle.
            with self._plant_engine().connect() as pc:
                pc.execute(select(1))
        self.link_up = True
        self.last_success = time.monotonic()
        self.last_error = None
        self.pushed.inspections += report.inspections
        self.pushed.defects += report.defects
        self.pushed.reviews += report.reviews
        return report

    def _check_local_reset(self) -> None:
        # SQLite reuses ids if every row was deleted: a mark above the local maximum would skip new rows.
        with self._local.connect() as c:
            top_i = c.execute(select(func.max(T_IN.c.id))).scalar() or 0
            top_r = c.execute(select(func.max(T_RV.c.id))).scalar() or 0
            top_a = c.execute(select(func.max(T_AU.c.id))).scalar() or 0
        if top_i < self.state.inspections or top_r < self.state.reviews or top_a < self.state.audit:
            log.warning("local ids went back (database replaced or emptied): pushing from the beginning")
            self.state.inspections = self.state.reviews = self.state.audit = 0
            self.state.save()

    def _push_inspections(self) -> tuple[int, int, int]:
        with self._local.connect() as lc:
            rows = [
                dict(r._mapping)
                for r in lc.execute(
                    select(T_IN).where(T_IN.c.id > self.state.inspections).order_by(T_IN.c.id).limit(self.batch)
                )
            ]
            if not rows:
                return 0, 0, 0
            ids = [r["id"] for r in rows]
            defects = [
                dict(r._mapping)
                for r in lc.execute(select(T_DF).where(T_DF.c.inspection_id.in_(ids)).order_by(T_DF.c.id))
            ]
            stations = [
                dict(r._mapping) for r in lc.execute(select(T_ST).where(T_ST.c.id.in_({r["station_id"] for r in rows})))
            ]
            rc_ids = {r["recipe_id"] for r in rows if r["recipe_id"] is not None}
            recipes = (
                [dict(r._mapping) for r in lc.execute(select(T_RC).where(T_RC.c.id.in_(rc_ids)))] if rc_ids else []
            )
            mv_ids = {r["model_version_id"] for r in rows if r["model_version_id"] is not None}
            models = [dict(r._mapping) for r in lc.execute(select(T_MV).where(T_MV.c.id.in_(mv_ids)))] if mv_ids else []

        with self._plant_engine().begin() as pc:
            known_st = {s["id"] for s in stations}
            for sid in {r["station_id"] for r in rows} - known_st:
                stations.append({"id": sid, "name": "", "line": ""})  # FK target even if the local row is gone
            if stations:
                pc.execute(_insert(pc, T_ST).values(stations).on_conflict_do_nothing(index_elements=["id"]))
            rc_map: dict[int, int] = {}
            for r in recipes:
                vals = {k: v for k, v in r.items() if k != "id"}
                pc.execute(_insert(pc, T_RC).values(vals).on_conflict_do_nothing(index_elements=["name", "version"]))
                rc_map[r["id"]] = pc.execute(
                    select(T_RC.c.id).where(and_(T_RC.c.name == r["name"], T_RC.c.version == r["version"]))
                ).scalar_one()
            mv_map: dict[int, int] = {}
            for m in models:
                vals = {k: v for k, v in m.items() if k != "id"}
                pc.execute(_insert(pc, T_MV).values(vals).on_conflict_do_nothing(index_elements=["model_id"]))
                mv_map[m["id"]] = pc.execute(select(T_MV.c.id).where(T_MV.c.model_id == m["model_id"])).scalar_one()
            values = []
            for r in rows:
                v = {k: val for k, val in r.items() if k != "id"}
                v["recipe_id"] = rc_map.get(r["recipe_id"]) if r["recipe_id"] is not None else None
                v["model_version_id"] = mv_map.get(r["model_version_id"]) if r["model_version_id"] is not None else None
                values.append(v)
            inserted = {
                row.uid: row.id
                for row in pc.execute(
                    _insert(pc, T_IN)
                    .values(values)
                    .on_conflict_do_nothing(index_elements=["uid"])
                    .returning(T_IN.c.id, T_IN.c.uid)
                )
            }
            local_to_plant = {r["id"]: inserted[r["uid"]] for r in rows if r["uid"] in inserted}
            new_defects = [
                {**{k: val for k, val in d.items() if k not in ("id", "inspection_id")}, "inspection_id": pid}
                for d in defects
                if (pid := local_to_plant.get(d["inspection_id"])) is not None
            ]
            if new_defects:
                pc.execute(T_DF.insert(), new_defects)
        # The plant has committed: only now may the mark move (and retention delete up to it).
        self.state.inspections = ids[-1]
        self.state.save()
        return len(rows), len(inserted), len(new_defects)

    def _push_reviews(self) -> tuple[int, int]:
        with self._local.connect() as lc:
            rows = [
                dict(r._mapping)
                for r in lc.execute(
                    select(T_RV, T_IN.c.uid.label("_uid"), T_DF.c.idx.label("_idx"))
                    .join(T_IN, T_IN.c.id == T_RV.c.inspection_id)
                    .outerjoin(T_DF, T_DF.c.id == T_RV.c.defect_id)
                    .where(T_RV.c.id > self.state.reviews)
                    .order_by(T_RV.c.id)
                    .limit(self.batch)
                )
            ]
        # Reviews of inspections not pushed yet wait for them (keeps the mark a clean prefix).
        ready = []
        for r in rows:
            if r["inspection_id"] > self.state.inspections:
                break
            ready.append(r)
        if not ready:
            return 0, 0
        added = 0
        with self._plant_engine().begin() as pc:
            reviewed: set[int] = set()
            for r in ready:
                pid = pc.execute(select(T_IN.c.id).where(T_IN.c.uid == r["_uid"])).scalar_one()
                pdef = None
                if r["defect_id"] is not None:
                    pdef = pc.execute(
                        select(T_DF.c.id).where(and_(T_DF.c.inspection_id == pid, T_DF.c.idx == r["_idx"]))
                    ).scalar_one_or_none()
                same = pc.execute(
                    select(T_RV.c.id).where(
                        and_(
                            T_RV.c.inspection_id == pid,
                            T_RV.c.defect_id.is_(None) if pdef is None else T_RV.c.defect_id == pdef,
                            T_RV.c.verdict == r["verdict"],
                            T_RV.c.reviewer == r["reviewer"],
                            T_RV.c.reviewed_at == r["reviewed_at"],
                        )
                    )
                ).first()
                if same is None:
                    vals = {k: v for k, v in r.items() if k not in ("id", "_uid", "_idx")}
                    vals.update(inspection_id=pid, defect_id=pdef)
                    pc.execute(T_RV.insert().values(vals))
                    added += 1
                reviewed.add(pid)
            pc.execute(update(T_IN).where(T_IN.c.id.in_(reviewed)).values(reviewed=True))
        self.state.reviews = ready[-1]["id"]
        self.state.save()
        return len(ready), added

    def _push_audit(self) -> tuple[int, int]:
        """Chained audit events in local id order; the plant's head follows the last one pushed."""
        with self._local.connect() as lc:
            rows = [
                dict(r._mapping)
                for r in lc.execute(
                    select(T_AU)
                    .where(T_AU.c.id > self.state.audit, T_AU.c.seq.is_not(None))
                    .order_by(T_AU.c.id)
                    .limit(self.batch)
                )
            ]
        if not rows:
            return 0, 0
        heads: dict[str, dict] = {}
        for r in rows:
            h = heads.get(r["station_id"])
            if h is None or r["seq"] > h["seq"]:
                heads[r["station_id"]] = {"station_id": r["station_id"], "seq": r["seq"], "hash": r["hash"]}
        with self._plant_engine().begin() as pc:
            values = [{k: v for k, v in r.items() if k != "id"} for r in rows]
            added = pc.execute(
                _insert(pc, T_AU)
                .values(values)
                .on_conflict_do_nothing(index_elements=["station_id", "seq"])
                .returning(T_AU.c.id)
            ).all()
            for h in heads.values():
                stmt = _insert(pc, T_AH).values(h)
                pc.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["station_id"],
                        set_={"seq": stmt.excluded.seq, "hash": stmt.excluded.hash},
                        where=T_AH.c.seq < stmt.excluded.seq,
                    )
                )
        self.state.audit = rows[-1]["id"]
        self.state.save()
        return len(rows), len(added)

    # ------------------------------------------------------------------ worker
    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="plant-sync", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout)
        self._drop_plant()
        self._local.dispose()

    def wake(self) -> None:
        """Push now instead of at the next interval (e.g. after a burst of boards)."""
        self._wake.set()

    def _loop(self) -> None:
        delay = self.interval_s
        while not self._stop.is_set():
            try:
                report = self.run_once()
                if report.inspections or report.reviews:
                    log.info(
                        "plant sync: %d inspections, %d defects, %d reviews",
                        report.inspections,
                        report.defects,
                        report.reviews,
                    )
                delay = self.interval_s
            except (DBAPIError, SQLAlchemyError, OSError) as exc:
                self.link_up = False
                self.last_error = str(exc).splitlines()[0][:300]
                log.warning("plant sync failed, will retry in %.0f s: %s", delay, self.last_error)
                self._drop_plant()
                self._plant_checked = False
                delay = min(max(delay, 0.5) * 2, self.backoff_max_s)
            except Exception as exc:  # a bug must not kill the worker silently
                self.link_up = False
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.exception("plant sync crashed; retrying")
                self._drop_plant()
                delay = min(max(delay, 0.5) * 2, self.backoff_max_s)
            self._wake.wait(delay)
            self._wake.clear()
