"""The recorder: the one thread that owns the records database, and the result sink in front of it.

Flow: the inference thread calls `submit(result)`, which only queues (bounded) and returns. The
writer thread takes batches off the queue, writes the image files (a small encoder pool, since
OpenCV releases the GIL), inserts the rows in one transaction, commits, and only then calls the
*durable* listeners. The PLC link publishes a verdict only after that call (`wait_durable` /
`add_durable_listener`): this is what "acknowledged" means here.

  acknowledged = `submit` returned AND the writer confirmed the result durable, that is committed
  to the database (WAL, synchronous FULL by default) or fsynced into the spool.

When the database cannot take a batch (down, locked past the busy timeout, disk full, corrupt) the
batch goes to the spool, the station goes NOT READY with the reason, and the spool is replayed into
the database as soon as a commit works again. If the queue is full, `submit` spills the result
straight into the spool from the caller's thread (rare, and the station is already NOT READY). If
even the spool cannot be written, the result is never acknowledged (the PLC's result timeout then
rejects the board), it is counted in `unrecorded`, and the reason is logged and shown: never silent.
"""

from __future__ import annotations

import hashlib
import logging
import math
import queue
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import insert, select
from sqlalchemy.exc import SQLAlchemyError

from ..domain import Detection, InspectionResult, Verdict
from ..health import Health
from .archive import Archive, ArchivedFiles, ArchiveError, describe_os_error
from .db import Database, StorageError, ensure_station, open_database
from .models import Defect, Inspection, ModelVersion, Recipe
from .signed import sign_record
from .spool import Spool

log = logging.getLogger(__name__)

DurableListener = Callable[[str, str], None]
"""fn(uid, where) with where = 'database' or 'spool'; called in the writer (or submitting) thread."""


@dataclass
class RecorderSettings:
    database_url: str
    station_id: str = "station-1"
    station_name: str = ""
    station_line: str = ""
    archive_dir: Path = Path("data/archive")
    archive: str = "all"
    archive_pass_every: int = 0
    spool_dir: Path = Path("data/spool")
    spool_reserve_mb: float = 2.0
    queue_size: int = 1000
    batch_max: int = 256
    sqlite_synchronous: str = "FULL"
    fsync_images: bool = False
    retention_days: float | None = 30.0
    min_free_mb: int = 500
    retention_min_days: float = 7.0
    disk_check_s: float = 5.0
    retention_interval_s: float = 60.0
    retention_batch: int = 500
    encoder_threads: int = 2
    busy_timeout_ms: int = 5000
    recipes: list[dict[str, Any]] | None = None
    station_key: Path | None = None
    """Signing key file (created on first start); None: `station.key` beside the SQLite file / spool folder."""
    config: dict[str, Any] | None = None
    """The effective configuration (secrets hidden), audited at start when it changed since the last start."""

    def key_path(self) -> Path:
        from ..station_key import default_path

        return Path(self.station_key) if self.station_key else default_path(self.database_url, self.spool_dir)

    @classmethod
    def from_config(cls, cfg: Any) -> RecorderSettings:
        st = cfg.storage
        return cls(
            database_url=st.database_url,
            station_id=cfg.station.id,
            station_name=cfg.station.name,
            station_line=cfg.station.line,
            archive_dir=Path(st.archive_dir),
            archive=st.archive,
            archive_pass_every=st.archive_pass_every,
            spool_dir=Path(st.spool_dir),
            spool_reserve_mb=st.spool_reserve_mb,
            queue_size=st.queue_size,
            batch_max=st.batch_max,
            sqlite_synchronous=st.sqlite_synchronous,
            fsync_images=st.fsync_images,
            retention_days=st.retention_days,
            min_free_mb=st.min_free_mb,
            retention_min_days=st.retention_min_days,
            retention_interval_s=st.retention_interval_s,
            retention_batch=st.retention_batch,
            recipes=[r.model_dump(mode="json") for r in cfg.recipes],
            station_key=st.station_key_path(),
            config=_redacted_config(cfg),
        )


@dataclass(slots=True)
class RecorderStats:
    submitted: int = 0
    written: int = 0
    spooled: int = 0
    replayed: int = 0
    unrecorded: int = 0
    """Results that could be kept neither in the database nor in the spool (never acknowledged)."""
    archive_errors: int = 0
    batches: int = 0
    commit_ms_last: float = 0.0
    retention_deleted: int = 0


def _json_safe(v: Any, depth: int = 0) -> Any:
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v if math.isfinite(v) else None
    if isinstance(v, np.generic):
        return _json_safe(v.item(), depth)
    if depth < 4 and isinstance(v, dict):
        return {str(k): _json_safe(x, depth + 1) for k, x in v.items() if not isinstance(x, np.ndarray)}
    if depth < 4 and isinstance(v, list | tuple):
        return [_json_safe(x, depth + 1) for x in v]
    return str(v)


def result_record(r: InspectionResult, station_id: str, files: ArchivedFiles | None = None) -> dict[str, Any]:
    """The result as one JSON-able record: what goes into the spool and then into the rows."""
    files = files or ArchivedFiles()
    crops = files.crops or [None] * len(r.detections)
    ts = r.timestamp if r.timestamp.tzinfo else r.timestamp.replace(tzinfo=UTC)
    return {
        "uid": r.uid,
        "created_at": ts.astimezone(UTC).isoformat(),
        "station_id": station_id,
        "recipe": r.recipe or "",
        "model_id": r.model_id or "",
        "board_serial": r.board_serial,
        "part_seq": r.part_seq,
        "frame_id": int(r.frame_id),
        "verdict": r.verdict.value if isinstance(r.verdict, Verdict) else str(r.verdict),
        "reason": r.reason,
        "cycle_ms": float(r.cycle_ms),
        "timings_ms": _json_safe(dict(r.timings_ms)),
        "frame_meta": _json_safe(dict(r.frame_meta)),
        "defects": [
            {"box": [float(v) for v in d.box], "class_id": int(d.class_id), "score": float(d.score), "crop": c}
            for d, c in zip(r.detections, crops)
        ],
        "image_path": files.image,
        "thumb_path": files.thumb,
        "reference_path": files.reference,
        "archive_error": files.error,
    }


class Recorder:
    """Result sink named "database". Start it, `submit` results, stop it (which drains the queue)."""

    name = "database"

    def __init__(self, settings: RecorderSettings, health: Health | None = None):
        self.settings = settings
        self.health = health or Health()
        self.stats = RecorderStats()
        self.database: Database | None = None
        """The open database (shared engine; open your own sessions from it), once the writer opened it."""
        self.archive = Archive(settings.archive_dir, fsync=settings.fsync_images)
        self.spool = Spool(settings.spool_dir, reserve_bytes=int(settings.spool_reserve_mb * 2**20))
        self._queue: queue.Queue[InspectionResult] = queue.Queue(maxsize=settings.queue_size)
        self._held: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._pending: dict[str, threading.Event] = {}
        self._acked: OrderedDict[str, str] = OrderedDict()
        # Durable uids are remembered only for callers that ask after the fact (`wait_durable`,
        # `is_durable`: the PLC link asks about the board it just got). Such a caller asks about a
        # result it submitted itself; before it asks, at most every result in flight with it (a full
        # queue and the batch being written) can have turned durable, so the window covers that. A
        # larger one only holds ~190 bytes per board for nothing (20,000 boards: 3.8 MB of memory that
        # grows for hours after the start and reads as a leak in a soak).
        self._acked_keep = settings.queue_size + settings.batch_max
        self._listeners: list[DurableListener] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._pool: ThreadPoolExecutor | None = None
        self._recipe_ids: dict[str, int] = {}
        self._model_ids: dict[str, int] = {}
        self._ids_refreshed = 0.0
        self._pass_count = 0
        self._db_error: str | None = None
        self._next_retention = 0.0
        self._next_disk_check = 0.0
        self._next_db_try = 0.0
        self._detail_at = 0.0  # when the database lamp's detail line was last refreshed
        self.retention: Any = None
        from ..station_key import load_or_create

        self.key = load_or_create(settings.key_path())
        """The station key: signs every record (before it is stored or spooled) and every audit event."""
        self._audit_q: queue.Queue[dict[str, Any]] = queue.Queue(maxsize=1000)
        self._audit_held: list[dict[str, Any]] = []
        self.audit_dropped = 0
        self._started_audited = False

    # ------------------------------------------------------------------ public API
    def start(self, wait_s: float = 10.0) -> None:
        """Start the writer thread; it opens (and upgrades) the database and replays the spool first.

        Waits up to `wait_s` for that start-up so that, when it returns, every result acknowledged before
        the last crash is in the database (unless the database is down: then NOT READY says so).
        """
        if self._thread is not None:
            raise RuntimeError("recorder already started")
        self.health.fail("database", "starting")
        self._stop.clear()
        self._pool = ThreadPoolExecutor(max(1, self.settings.encoder_threads), thread_name_prefix="archive")
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._thread.start()
        self._ready.wait(wait_s)

    def stop(self, timeout: float = 30.0) -> None:
        """Write everything queued (to the database, else the spool), then close."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("db-writer did not finish within %.0f s; %d results still queued", timeout, self.backlog)
            self._thread = None
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self.database is not None:
            self._write_audit()
            if self._started_audited:
                self._audit_now(
                    "station",
                    "station.stop",
                    self.settings.station_id,
                    None,
                    {"written": self.stats.written, "spooled": self.stats.spooled, "unrecorded": self.stats.unrecorded},
                    "station",
                )
            self.database.close()
            self.database = None

    close = stop

    def submit(self, result: InspectionResult) -> None:
        """Queue a result and return at once; never blocks on the database or the disk (except the
        rare spill when the queue is full, which writes one spool file)."""
        with self._lock:
            self.stats.submitted += 1
            self._pending[result.uid] = threading.Event()
        try:
            self._queue.put_nowait(result)
        except queue.Full:
            self._spill(result)
            return
        n = self._queue.qsize()
        if n > 0.8 * self.settings.queue_size:
            self.health.fail("database", f"writer behind: {n} of {self.settings.queue_size} results queued")

    def audit(
        self, who: str, action: str, target: str = "", before: Any = None, after: Any = None, *, source: str = ""
    ) -> None:
        """Queue an audit event for the writer thread (the database's owner); never blocks the caller.

        For threads that must not wait on the database (the PLC link's recipe switch). A full queue
        drops the event with an error in the log and counts it in `audit_dropped`.
        """
        ev = {
            "who": who,
            "action": action,
            "target": target,
            "before": before,
            "after": after,
            "source": source,
            "at": datetime.now(UTC),
        }
        try:
            self._audit_q.put_nowait(ev)
        except queue.Full:
            self.audit_dropped += 1
            log.error("audit queue full: %s by %s not recorded (%d dropped)", action, who, self.audit_dropped)

    def add_durable_listener(self, fn: DurableListener) -> None:
        """fn(uid, where) is called once each result is durable; it must not block (it runs in the writer)."""
        self._listeners.append(fn)

    def wait_durable(self, uid: str, timeout: float | None = None) -> bool:
        """True once the result `uid` is durable (database or spool); False on timeout, if never submitted,
        or if it turned durable more than `queue_size + batch_max` results ago (no longer remembered)."""
        with self._lock:
            if uid in self._acked:
                return True
            ev = self._pending.get(uid)
        if ev is None:
            return False
        return ev.wait(timeout)

    def is_durable(self, uid: str) -> bool:
        """Whether `uid` is durable; like `wait_durable`, only the last `queue_size + batch_max` are remembered."""
        with self._lock:
            return uid in self._acked

    @property
    def backlog(self) -> int:
        return self._queue.qsize() + len(self._held)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything submitted so far is durable (tests, shutdown, benchmarks)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if not self._pending:
                    return True
            time.sleep(0.005)
        return False

    # ------------------------------------------------------------------ durability bookkeeping
    def _mark_durable(self, uids: list[str], where: str) -> None:
        with self._lock:
            for uid in uids:
                ev = self._pending.pop(uid, None)
                self._acked[uid] = where
                if ev is not None:
                    ev.set()
            while len(self._acked) > self._acked_keep:
                self._acked.popitem(last=False)
        for fn in self._listeners:
            for uid in uids:
                try:
                    fn(uid, where)
                except Exception:
                    log.exception("durable listener failed")

    def _mark_unrecorded(self, uids: list[str], why: str) -> None:
        with self._lock:
            for uid in uids:
                self._pending.pop(uid, None)
            self.stats.unrecorded += len(uids)
            total = self.stats.unrecorded
        log.error(
            "%d result(s) NOT recorded (%s); their verdicts never reached the PLC (a board it waited for past "
            "plc.result_timeout_s was published as REJECT with ERROR 30); total %d",
            len(uids),
            why,
            total,
        )
        self.health.fail("database", f"{total} results could not be recorded: {why}")

    def _spill(self, result: InspectionResult) -> None:
        rec = result_record(result, self.settings.station_id)
        sign_record(rec, self.key)
        images = {}
        if result.image is not None and self.settings.archive != "none":
            images["image"] = result.image
            if result.reference is not None:
                images["reference"] = result.reference
        try:
            self.spool.write([rec], images)
        except OSError as exc:
            self._mark_unrecorded([result.uid], f"queue full and spool unwritable: {describe_os_error(exc)}")
            return
        with self._lock:
            self.stats.spooled += 1
        self.health.fail("database", f"writer queue full ({self.settings.queue_size}): results spilled to the spool")
        self._mark_durable([result.uid], "spool")

    # ------------------------------------------------------------------ writer thread
    def _run(self) -> None:
        try:
            self._open()
            self._replay_spool()
        finally:
            self._ready.set()
        while True:
            stopping = self._stop.is_set()
            batch = self._take_batch(0.0 if stopping else 0.05)
            if self._held and time.monotonic() >= self._next_db_try:
                self._retry_held()
            if not self._audit_q.empty() or self._audit_held:
                self._write_audit()
            if batch:
                self._write_batch(batch)
            elif stopping and not self._held:
                break
            elif stopping:
                self._retry_held(final=True)
                break
            if not batch and self.spool.batches() and time.monotonic() >= self._next_db_try:
                self._replay_spool()
            if not stopping:
                self._disk_tick()
                self._retention_tick()
                if not batch:
                    self._refresh_detail()
        if self.database is not None:
            self._replay_spool()

    def _open(self) -> bool:
        if self.database is not None:
            return True
        s = self.settings
        try:
            self.spool.clean_tmp()
            self.spool.ensure_reserve()
            self.database = open_database(
                s.database_url,
                station_id=s.station_id,
                synchronous=s.sqlite_synchronous,
                busy_timeout_ms=s.busy_timeout_ms,
                station_key=self.key,
            )
            self.database.audit_source = "station"
            ensure_station(self.database, s.station_name, s.station_line)
            if not self._started_audited:
                self._audit_start()
            if s.recipes:
                from .recipes import register_recipe

                for r in s.recipes:
                    register_recipe(self.database, r)
            from .retention import RetentionPolicy

            self.retention = RetentionPolicy(
                self.database,
                s.archive_dir,
                max_age_days=s.retention_days,
                min_free_mb=s.min_free_mb,
                min_age_days=s.retention_min_days,
                batch=s.retention_batch,
                archive=self.archive,
                sync_state=_sync_state_path(s.database_url),
            )
        except (StorageError, SQLAlchemyError, OSError) as exc:
            # Half-open is worse than closed: with the database kept, `_open` would never run again, so the
            # station row, the recipes or the retention policy that failed here (a lock held for a second
            # by a hand-run `db retention`) would stay missing until a restart. Close it; the next try
            # opens everything again.
            self._close_database()
            self._db_failed(f"cannot open: {exc}")
            return False
        self._db_ok()
        return True

    def _close_database(self) -> None:
        db, self.database, self.retention = self.database, None, None
        if db is not None:
            try:
                db.close()
            except Exception as exc:  # noqa: BLE001 - a broken connection pool must not stop the retry
                log.warning("closing the database after a failed open: %s", exc)

    def _db_ok(self) -> None:
        """The database takes writes again: forget the error and turn the lamp green.

        One place for both, because they drifted apart: the error was cleared only by a fresh batch while the
        lamp was red, so a station whose spool was replayed (lamp red, READY down, so no fresh batch ever
        came) stayed NOT READY, and one whose database came up after start ran without retention."""
        self._db_error = None
        self.health.ok("database", self._detail())

    def _detail(self) -> str:
        db = self.database
        kind = db.dialect if db else "?"
        return f"{kind}, {self.stats.written} written, backlog {self.backlog}, spool {len(self.spool)}"

    def _db_failed(self, reason: str) -> None:
        self._db_error = reason
        self._next_db_try = time.monotonic() + 1.0
        self.health.fail("database", reason)

    def _take_batch(self, wait: float) -> list[InspectionResult]:
        if len(self._held) >= self.settings.queue_size:
            time.sleep(0.05)  # nothing more fits in memory; let `submit` spill or count
            return []
        batch: list[InspectionResult] = []
        try:
            batch.append(self._queue.get(timeout=wait) if wait > 0 else self._queue.get_nowait())
        except queue.Empty:
            return batch
        while len(batch) < self.settings.batch_max:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _full_image_wanted(self, r: InspectionResult) -> bool:
        mode = self.settings.archive
        if mode == "all":
            return True
        if mode == "none":
            return False
        if r.verdict is not Verdict.PASS:
            return True
        n = self.settings.archive_pass_every
        if n <= 0:
            return False
        self._pass_count += 1
        return self._pass_count % n == 0

    def _archive_one(self, r: InspectionResult, full: bool) -> ArchivedFiles:
        return self.archive.write(r.uid, _utc(r.timestamp), r.image, r.reference, r.detections, full=full)

    def _archive(self, batch: list[InspectionResult]) -> list[ArchivedFiles]:
        if self.settings.archive == "none":
            return [ArchivedFiles() for _ in batch]
        wants = [self._full_image_wanted(r) for r in batch]
        assert self._pool is not None
        futures = [self._pool.submit(self._archive_one, r, w) for r, w in zip(batch, wants)]
        out: list[ArchivedFiles] = []
        disk_error = None
        for f in futures:
            try:
                out.append(f.result())
            except ArchiveError as exc:
                out.append(exc.files)
                disk_error = exc.files.error
            except Exception as exc:  # an image that cannot be encoded must not cost the record
                log.exception("archiving failed")
                out.append(ArchivedFiles(error=f"{type(exc).__name__}: {exc}"))
        if disk_error:
            self.stats.archive_errors += sum(1 for f in out if f.error)
            self.health.fail("disk", f"archive write failed: {disk_error}")
        elif self.settings.archive != "none" and any(r.image is not None for r in batch):
            h = self.health.get("disk")
            if h is not None and not h.ok and h.reason.startswith("archive write failed"):
                self.health.ok("disk")
        return out

    def _write_batch(self, batch: list[InspectionResult]) -> None:
        files = self._archive(batch)
        records = [result_record(r, self.settings.station_id, f) for r, f in zip(batch, files)]
        for rec in records:
            sign_record(rec, self.key)
        if self.database is None and not self._open():
            self._to_spool(records)
            return
        self._commit_or_spool(records)

    def _commit_or_spool(self, records: list[dict[str, Any]]) -> bool:
        try:
            t0 = time.perf_counter()
            self._insert(records)
            self.stats.commit_ms_last = (time.perf_counter() - t0) * 1000
        except (SQLAlchemyError, OSError) as exc:
            self._db_failed(f"write failed: {_short(exc)}")
            self._to_spool(records)
            return False
        self.stats.written += len(records)
        self.stats.batches += 1
        self._mark_durable([r["uid"] for r in records], "database")
        h = self.health.get("database")
        if h is None or not h.ok:
            if self.backlog <= 0.8 * self.settings.queue_size:
                self._db_ok()
        else:
            self._refresh_detail()
        return True

    def _refresh_detail(self) -> None:
        """Keep the healthy lamp's "N written, backlog, spool" current, at most once a second.

        It read "0 written" for the first 50 batches; refreshing on every commit would wake every
        health listener (the UI) per board for nothing a person can read. Called after commits and
        when idle, so the last count shows too.
        """
        now = time.monotonic()
        if now - self._detail_at < 1.0:
            return
        h = self.health.get("database")
        if h is not None and h.ok:
            self._detail_at = now
            self.health.ok("database", self._detail())

    def _to_spool(self, records: list[dict[str, Any]]) -> None:
        try:
            self.spool.write(records)
        except OSError as exc:
            # Neither the database nor the spool (nor its reserve) takes them: keep them in memory and
            # retry. Not durable, so the PLC link does not publish their verdicts; a board it waits for
            # past plc.result_timeout_s it publishes as REJECT + ERROR 30, and that record then exists in
            # memory only (lost if the process dies before the disk has room: docs/storage.md).
            self._held.extend(records)
            self.health.fail(
                "database",
                f"{self._db_error or 'database unavailable'}; spool unwritable: {describe_os_error(exc)}; "
                f"{len(self._held)} results held in memory only, not durable",
            )
            self._next_db_try = time.monotonic() + 1.0
            return
        self.stats.spooled += len(records)
        self._mark_durable([r["uid"] for r in records], "spool")

    def _retry_held(self, final: bool = False) -> None:
        held, self._held = self._held, []
        if self.database is None and not self._open():
            self._to_spool(held)
        else:
            self._commit_or_spool(held)
        if final and self._held:
            self._mark_unrecorded([r["uid"] for r in self._held], "stopped while database and spool were unavailable")
            self._held = []

    def _replay_spool(self) -> None:
        """Move spooled batches into the database, oldest first; stops at the first failure."""
        if self.database is None and not self._open():
            return
        for path in self.spool.batches():
            try:
                records = self.spool.read(path)
            except (OSError, ValueError) as exc:
                dest = self.spool.quarantine(path)
                log.error("unreadable spool file moved to %s: %s", dest, exc)
                self.health.fail("database", f"unreadable spool file kept in {dest}")
                continue
            for rec in records:
                if rec.get("pending_image") or rec.get("pending_reference"):
                    self._archive_spooled(rec)
            try:
                self._insert(records)
            except (SQLAlchemyError, OSError) as exc:
                self._db_failed(f"spool replay failed: {_short(exc)}")
                return
            self.spool.remove(path, records)
            self.stats.replayed += len(records)
            log.info("replayed %d spooled results from %s", len(records), path.name)
        # Every spooled batch is in the database (a failure returned above): it takes writes again.
        self.spool.ensure_reserve()  # emptied, or never made because the disk was full at start
        if not self._held and self.backlog <= 0.8 * self.settings.queue_size:
            self._db_ok()

    def _archive_spooled(self, rec: dict[str, Any]) -> None:
        image = self.spool.load_array(rec["pending_image"]) if rec.get("pending_image") else None
        ref = self.spool.load_array(rec["pending_reference"]) if rec.get("pending_reference") else None
        dets = [Detection(tuple(d["box"]), d["class_id"], d["score"]) for d in rec["defects"]]
        full = self.settings.archive == "all" or rec["verdict"] != "PASS"
        try:
            files = self.archive.write(
                rec["uid"], datetime.fromisoformat(rec["created_at"]), image, ref, dets, full=full
            )
        except ArchiveError as exc:
            files = exc.files
            self.health.fail("disk", f"archive write failed: {files.error}")
        rec.update(
            image_path=files.image, thumb_path=files.thumb, reference_path=files.reference, archive_error=files.error
        )
        for d, c in zip(rec["defects"], files.crops or []):
            d["crop"] = c

    # ------------------------------------------------------------------ rows
    def _ids(self, session, records: list[dict[str, Any]]) -> None:
        now = time.monotonic()
        if now - self._ids_refreshed > 10.0:
            self._recipe_ids.clear()
            self._model_ids.clear()
            self._ids_refreshed = now
        for name in {r["recipe"] for r in records} - self._recipe_ids.keys():
            rid = session.scalar(select(Recipe.id).where(Recipe.name == name).order_by(Recipe.version.desc()).limit(1))
            if rid is None:
                rid = session.scalar(
                    insert(Recipe)
                    .values(name=name, version=1, product=name, thresholds={}, settings={}, created_by="recorder")
                    .returning(Recipe.id)
                )
            self._recipe_ids[name] = rid
        for mid in {r["model_id"] for r in records} - self._model_ids.keys():
            vid = session.scalar(select(ModelVersion.id).where(ModelVersion.model_id == mid))
            if vid is None:
                name, _, version = mid.partition("@")
                vid = session.scalar(
                    insert(ModelVersion)
                    .values(model_id=mid, name=name, version=version, metrics={})
                    .returning(ModelVersion.id)
                )
            self._model_ids[mid] = vid

    def _insert(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        assert self.database is not None
        try:
            self._insert_rows(records)
        except BaseException:
            # Ids looked up or inserted in a transaction that did not commit may not exist (a rolled-back
            # model version, a database restarted under it): every batch would fail on them for the cache's
            # lifetime, and on SQLite a reused id could name another recipe. Look them up again.
            self._recipe_ids.clear()
            self._model_ids.clear()
            raise

    def _insert_rows(self, records: list[dict[str, Any]]) -> None:
        assert self.database is not None
        with self.database.session() as s, s.begin():
            uids = [r["uid"] for r in records]
            existing = set(s.scalars(select(Inspection.uid).where(Inspection.uid.in_(uids))))
            fresh = [r for r in records if r["uid"] not in existing]
            if not fresh:
                return
            self._ids(s, fresh)
            rows = [
                {
                    "uid": r["uid"],
                    "created_at": datetime.fromisoformat(r["created_at"]),
                    "station_id": r["station_id"],
                    "recipe_id": self._recipe_ids.get(r["recipe"]),
                    "recipe_name": r["recipe"],
                    "model_version_id": self._model_ids.get(r["model_id"]),
                    "model_id": r["model_id"],
                    "board_serial": r["board_serial"],
                    "part_seq": r["part_seq"],
                    "frame_id": r["frame_id"],
                    "verdict": r["verdict"],
                    "reason": r["reason"],
                    "defect_count": len(r["defects"]),
                    "cycle_ms": r["cycle_ms"],
                    "timings_ms": r["timings_ms"],
                    "frame_meta": r["frame_meta"],
                    "image_path": r["image_path"],
                    "thumb_path": r["thumb_path"],
                    "reference_path": r["reference_path"],
                    "archive_error": r["archive_error"],
                    "reviewed": False,
                    "sig_key_id": r.get("sig_key_id"),
                    "signature": r.get("signature"),
                }
                for r in fresh
            ]
            ids = dict(s.execute(insert(Inspection).returning(Inspection.uid, Inspection.id), rows).tuples().all())
            defects = [
                {
                    "inspection_id": ids[r["uid"]],
                    "idx": k,
                    "class_id": d["class_id"],
                    "score": d["score"],
                    "x1": d["box"][0],
                    "y1": d["box"][1],
                    "x2": d["box"][2],
                    "y2": d["box"][3],
                    "crop_path": d.get("crop"),
                }
                for r in fresh
                for k, d in enumerate(r["defects"])
            ]
            if defects:
                s.execute(insert(Defect), defects)

    # ------------------------------------------------------------------ audit
    def _audit_now(self, who: str, action: str, target: str, before: Any, after: Any, source: str) -> bool:
        from .audit import append

        assert self.database is not None
        try:
            append(self.database, who, action, target, before, after, source=source)
        except (SQLAlchemyError, OSError) as exc:
            log.error("audit event %s not written: %s", action, _short(exc))
            return False
        return True

    def _audit_start(self) -> None:
        """station.start with the configuration's hash; config.change when it differs from the last start."""
        from sqlalchemy import desc

        from .audit import canonical
        from .models import AuditEvent

        assert self.database is not None
        s = self.settings
        cfg = s.config or {}
        digest = hashlib.sha256(canonical(cfg)).hexdigest() if cfg else ""
        try:
            with self.database.session() as sess:
                last = sess.scalar(
                    select(AuditEvent)
                    .where(AuditEvent.station_id == s.station_id, AuditEvent.action == "station.start")
                    .order_by(desc(AuditEvent.id))
                    .limit(1)
                )
                prev = dict(last.after or {}) if last is not None and isinstance(last.after, dict) else None
        except SQLAlchemyError as exc:
            log.error("cannot read the last station.start event: %s", _short(exc))
            prev = None
        ok = self._audit_now(
            "station", "station.start", s.station_id, None, {"config_sha256": digest, "config": cfg}, "station"
        )
        if prev is not None and digest and prev.get("config_sha256") != digest:
            before, after = _config_diff(prev.get("config") or {}, cfg)
            self._audit_now(
                "station",
                "config.change",
                s.station_id,
                {"config_sha256": prev.get("config_sha256"), **before},
                {"config_sha256": digest, **after},
                "station",
            )
        self._started_audited = ok

    def _write_audit(self) -> None:
        from .audit import append

        while True:
            try:
                self._audit_held.append(self._audit_q.get_nowait())
            except queue.Empty:
                break
        if not self._audit_held or (self.database is None and not self._open()):
            return
        while self._audit_held:
            ev = self._audit_held[0]
            try:
                append(
                    self.database,
                    ev["who"],
                    ev["action"],
                    ev["target"],
                    ev["before"],
                    ev["after"],
                    source=ev["source"],
                    at=ev["at"],
                )
            except (SQLAlchemyError, OSError) as exc:
                log.error("audit event %s not written yet (kept, retried): %s", ev["action"], _short(exc))
                del self._audit_held[: max(0, len(self._audit_held) - 1000)]
                return
            self._audit_held.pop(0)

    # ------------------------------------------------------------------ free space and retention
    def _disk_tick(self) -> None:
        """Probe free space every `disk_check_s`: below `min_free_mb` the station goes NOT READY at once.

        Why here and not only in the retention pass: that runs once a `retention_interval_s`, and a
        disk filled by something else must stop the line before the records and the spool have no
        room left. Low disk also brings the next retention pass forward.
        """
        floor = self.settings.min_free_mb
        now = time.monotonic()
        if floor <= 0 or now < self._next_disk_check:
            return
        self._next_disk_check = now + self.settings.disk_check_s
        from . import retention

        try:
            free = retention.free_mb(self.settings.archive_dir)
        except OSError as exc:
            self.health.fail("disk", f"cannot read free space of {self.settings.archive_dir}: {describe_os_error(exc)}")
            return
        self._disk_state(free)
        if free < floor:
            self._next_retention = min(self._next_retention, now)

    def _disk_state(self, free: float, message: str = "") -> None:
        floor = self.settings.min_free_mb
        h = self.health.get("disk")
        if floor > 0 and free < floor:
            if h is not None and not h.ok and not message and (" MB floor" in h.reason or "write failed" in h.reason):
                return  # already stopped for it: keep the more specific reason, and the log quiet
            reason = message or f"{free:.0f} MB free < {floor} MB floor (storage.min_free_mb): line stopped"
            self.health.fail("disk", reason, f"{free:.0f} MB free")
        elif h is None or not h.ok and not h.reason.startswith("archive write failed"):
            self.health.ok("disk", f"{free / 1024:.1f} GB free")

    def _retention_tick(self) -> None:
        if self.retention is None or self.database is None or self._db_error:
            return
        now = time.monotonic()
        if now < self._next_retention:
            return
        try:
            report = self.retention.run_batch()
        except (SQLAlchemyError, OSError) as exc:
            log.error("retention pass failed: %s", exc)
            self._next_retention = now + self.settings.retention_interval_s
            return
        self.stats.retention_deleted += report.deleted
        if report.deleted or report.stripped or report.files_deleted:
            self._audit_now("station", "retention.run", "records", None, _retention_summary(report), "station")
        if report.free_mb is not None:
            freed = report.deleted or report.stripped
            self._disk_state(report.free_mb, "" if freed or not report.low_disk else report.message)
        # More to delete: come back after the next batch of results instead of waiting the full interval.
        # Below the floor, come back as soon as the last batch freed something (the next probe decides).
        again = report.more or (report.low_disk and (report.deleted or report.stripped))
        wait = self.settings.retention_interval_s
        if report.low_disk:
            wait = min(wait, self.settings.disk_check_s)
        self._next_retention = now + (0.0 if again else wait)


def _retention_summary(report: Any) -> dict[str, Any]:
    return {
        "deleted": report.deleted,
        "files_deleted": report.files_deleted,
        "stripped": report.stripped,
        "low_disk": report.low_disk,
        "free_mb": None if report.free_mb is None else round(report.free_mb, 1),
    }


def _redacted_config(cfg: Any) -> dict[str, Any]:
    """The effective configuration as JSON, without a password: the database's, a camera stream's, any URL's (the
    audit trail is signed and synced to the plant; a password in it cannot be taken out afterwards)."""
    from ..redact import redact

    return redact(cfg.model_dump(mode="json"))


def _config_diff(old: dict[str, Any], new: dict[str, Any], prefix: str = "") -> tuple[dict, dict]:
    """Only the keys that differ, flattened (`storage.retention_days`), as (before, after)."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        name = f"{prefix}{k}"
        if isinstance(a, dict) and isinstance(b, dict):
            x, y = _config_diff(a, b, name + ".")
            before.update(x)
            after.update(y)
        else:
            before[name], after[name] = a, b
    return before, after


def _utc(ts: datetime) -> datetime:
    return ts.astimezone(UTC) if ts.tzinfo else ts.replace(tzinfo=UTC)


def _short(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip().splitlines()[0]
    return f"{type(orig or exc).__name__}: {text}"[:300]


def open_recorder(cfg: Any, health: Health | None = None) -> Recorder:
    """The station's recorder from its configuration (not started: `Station.start` starts it)."""
    return Recorder(RecorderSettings.from_config(cfg), health)


def _sync_state_path(url: str) -> Path | None:
    """Where `pcb-inspector sync` keeps its high-water marks for this database (SQLite only)."""
    from .db import sqlite_path

    path = sqlite_path(url)
    return None if path is None else path.with_name(path.name + ".plant-sync.json")
