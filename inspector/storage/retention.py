"""Retention (maximum age + free-disk floor) and the archive/database consistency check.

Retention deletes the oldest inspections in batches: rows first (one transaction), then their files.
That order means a crash in between leaves only unreferenced files, which `check_archive` finds and
removes; a row never points at a deleted file. The recorder runs `run_batch` in its own writer
thread, between result batches, so deletion never races the inserts and never stalls inference.

Below the free-disk floor, retention frees space without giving up records the plant may still
need: a disk filled by something else must not erase the boards the PLC acknowledged seconds ago.
So it only touches inspections older than `min_age_days` (and, with plant sync, confirmed by the
plant, reviews included: age retention obeys the same), and it takes their images (full image, thumbnail, crops, an unused reference) first, keeping
the rows; image-less rows go only when no eligible inspection has a file left. If that does not
free enough, the station stays NOT READY (the writer reports the disk) until someone makes room.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import delete, func, or_, select, text, update

from .archive import Archive, file_of
from .db import Database
from .models import Defect, Inspection, Review

if TYPE_CHECKING:
    from ..sync import SyncedMarks

log = logging.getLogger(__name__)

PATH_COLUMNS = ("image_path", "thumb_path", "reference_path")


@dataclass(slots=True)
class RetentionReport:
    deleted: int = 0
    files_deleted: int = 0
    stripped: int = 0
    """Inspections whose files were deleted (rows kept) to get above the disk floor."""
    more: bool = False
    low_disk: bool = False
    free_mb: float | None = None
    message: str = ""


def free_mb(folder: Path) -> float:
    """Free space (MiB) of the filesystem holding `folder` (or its nearest existing parent)."""
    probe = Path(folder)
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free / 2**20


def _unlink(root: Path, rel: str | None) -> bool:
    if not rel:
        return False
    try:
        (root / rel).unlink()
        return True
    except FileNotFoundError:
        return False


def _holds_newest_id() -> tuple:
    """Conditions that keep the rows holding the newest inspection id and the newest review id.

    Why, with plant sync: the sync pushes by id high-water marks, and SQLite (tables without AUTOINCREMENT)
    gives a new row the largest id in the table plus one. Deleting the row with the largest id (a line idle
    past `retention_days`, or a recent review of an old board) would hand its id, at or below the plant's
    mark, to the next inspection or review, and the sync would take it as pushed and never send it. A kept
    row costs nothing on a running line: its newest inspection is never old enough to go anyway."""
    newest_inspection = select(func.max(Inspection.id)).scalar_subquery()
    newest_review = select(func.max(Review.id)).scalar_subquery()
    reviewed_last = select(Review.inspection_id).where(Review.id == newest_review).scalar_subquery()
    return (Inspection.id != newest_inspection, Inspection.id != func.coalesce(reviewed_last, -1))


class RetentionPolicy:
    def __init__(
        self,
        db: Database,
        archive_dir: Path,
        *,
        max_age_days: float | None,
        min_free_mb: int = 0,
        min_age_days: float = 7.0,
        batch: int = 500,
        archive: Archive | None = None,
        sync_state: Path | None = None,
    ):
        """`min_age_days`: below the disk floor, nothing younger than this is touched (images or rows).
        `sync_state`: the plant-sync state file of this database (inspector.sync). When it exists,
        sync is in use (the sync worker writes it as soon as it is set up, before it first reaches
        the plant) and only inspections the plant has confirmed, with every review of theirs, may be
        deleted, even below the disk floor: a station that cannot reach the plant fills its disk and
        goes NOT READY rather than lose records or reviews the plant never received. Without the
        file (sync never configured) the plant is not consulted."""
        self.sync_state = sync_state
        self.db = db
        self.root = Path(archive_dir)
        self.max_age_days = max_age_days
        self.min_free_mb = min_free_mb
        self.min_age_days = min_age_days
        self.batch = batch
        self.archive = archive

    def plant_confirmed(self) -> SyncedMarks | None:
        """Highest inspection and review ids the plant has confirmed, or None when plant sync is not in use."""
        if self.sync_state is None or not self.sync_state.exists():
            return None
        from ..sync import synced_marks

        return synced_marks(self.db.url, self.sync_state)

    def run_batch(self, now: datetime | None = None) -> RetentionReport:
        """One batch: expired inspections first; below the disk floor then the files of old ones, then old rows."""
        now = now or datetime.now(UTC)
        rep = RetentionReport()
        rep.free_mb = free_mb(self.root)
        rep.low_disk = self.min_free_mb > 0 and rep.free_mb < self.min_free_mb
        confirmed = self.plant_confirmed()
        base = select(Inspection.id, Inspection.image_path, Inspection.thumb_path, Inspection.reference_path)
        if confirmed is not None:
            base = base.where(Inspection.id <= confirmed.inspections)
        base = base.order_by(Inspection.created_at, Inspection.id).limit(self.batch)
        # Rows also carry their reviews: a review written after its inspection was pushed (the quality
        # engineer's false call or missed defect, while the plant link is down) keeps the row until the
        # sync has pushed it. Images are not pushed, so below the floor they may still go.
        rows = base
        if confirmed is not None:
            unsent_review = (
                select(Review.id).where(Review.inspection_id == Inspection.id, Review.id > confirmed.reviews).exists()
            )
            rows = base.where(~unsent_review, *_holds_newest_id())
        if self.max_age_days is not None:
            expired = rows.where(Inspection.created_at < now - timedelta(days=self.max_age_days))
            if self._delete_rows(expired, rep):
                return rep
        if not rep.low_disk:
            return rep
        old_enough = Inspection.created_at < now - timedelta(days=self.min_age_days)
        if self._strip_files(base.where(old_enough), rep) or self._delete_rows(rows.where(old_enough), rep):
            return rep
        rep.message = (
            f"{rep.free_mb:.0f} MB free < {self.min_free_mb} MB floor and nothing left that retention may delete: "
            f"records younger than {self.min_age_days:g} days are kept"
            + (", and so are those not yet confirmed by the plant database" if confirmed is not None else "")
            + "; free space on the data volume"
        )
        return rep

    def _delete_rows(self, q, rep: RetentionReport) -> bool:
        """Delete the inspections `q` selects (rows, then their files); False when it selects none."""
        with self.db.session() as s, s.begin():
            if self.db.dialect == "sqlite":
                # pysqlite begins the transaction only at the first DELETE: a review the UI commits
                # between our SELECT and it would go with its inspection unseen by `q`'s review check.
                # Holding the write lock from before the SELECT closes that gap.
                s.execute(text("BEGIN IMMEDIATE"))
            rows = s.execute(q).all()
            if not rows:
                return False
            ids = [r.id for r in rows]
            crops = list(s.scalars(select(Defect.crop_path).where(Defect.inspection_id.in_(ids))))
            s.execute(delete(Review).where(Review.inspection_id.in_(ids)))
            s.execute(delete(Defect).where(Defect.inspection_id.in_(ids)))
            s.execute(delete(Inspection).where(Inspection.id.in_(ids)))
        # Committed: now the files. A crash here leaves orphans for `check_archive`, never dangling rows.
        n = self._unlink_files(rows, crops)
        rep.deleted, rep.files_deleted = len(rows), n
        rep.more = len(rows) == self.batch
        rep.message = f"deleted {len(rows)} inspections and {n} files" + (
            " (below the disk floor)" if rep.low_disk else ""
        )
        log.info("retention: %s", rep.message)
        return True

    def _strip_files(self, q, rep: RetentionReport) -> bool:
        """Delete the files of the oldest inspections `q` selects that still have any, keeping their rows.

        Paths are cleared (and `archive_error` says why) in one transaction before the files go, so a
        crash in between leaves orphans for `check_archive`, never a row naming a missing file.
        """
        has_crop = select(Defect.id).where(Defect.inspection_id == Inspection.id, Defect.crop_path.isnot(None)).exists()
        q = q.where(
            or_(
                Inspection.image_path.isnot(None),
                Inspection.thumb_path.isnot(None),
                Inspection.reference_path.isnot(None),
                has_crop,
            )
        )
        note = f"images deleted by retention: disk below the {self.min_free_mb} MB floor"
        with self.db.session() as s, s.begin():
            rows = s.execute(q).all()
            if not rows:
                return False
            ids = [r.id for r in rows]
            crops = list(
                s.scalars(select(Defect.crop_path).where(Defect.inspection_id.in_(ids), Defect.crop_path.isnot(None)))
            )
            s.execute(update(Defect).where(Defect.inspection_id.in_(ids)).values(crop_path=None))
            s.execute(
                update(Inspection)
                .where(Inspection.id.in_(ids))
                .values(image_path=None, thumb_path=None, reference_path=None, archive_error=note)
            )
        n = self._unlink_files(rows, crops)
        rep.stripped, rep.files_deleted = len(rows), n
        rep.more = len(rows) == self.batch
        rep.message = f"deleted the files of {len(rows)} inspections ({n} files), rows kept (below the disk floor)"
        log.warning("retention: %s", rep.message)
        return True

    def _unlink_files(self, rows, crops: list[str | None]) -> int:
        n = 0
        for r in rows:
            n += _unlink(self.root, r.image_path) + _unlink(self.root, r.thumb_path)
        for c in {file_of(c) for c in crops if c}:
            n += _unlink(self.root, c)
        refs = {r.reference_path for r in rows if r.reference_path}
        if refs:
            with self.db.session() as s:
                still = set(s.scalars(select(Inspection.reference_path).where(Inspection.reference_path.in_(refs))))
            for ref in refs - still:
                if self.archive is not None:
                    self.archive.forget_ref(ref)
                n += _unlink(self.root, ref)
        self._prune_dirs(
            {Path(p).parent for r in rows for p in (r.image_path, r.thumb_path) if p}
            | {Path(c).parent for c in crops if c}
        )
        return n

    def run(self, now: datetime | None = None, max_batches: int = 1_000_000) -> RetentionReport:
        total = RetentionReport()
        for _ in range(max_batches):
            rep = self.run_batch(now)
            total.deleted += rep.deleted
            total.files_deleted += rep.files_deleted
            total.stripped += rep.stripped
            total.low_disk, total.free_mb, total.message = rep.low_disk, rep.free_mb, rep.message
            # Below the floor a short batch of images is followed by old rows, if space is still short.
            if not (rep.more or (rep.low_disk and (rep.deleted or rep.stripped))):
                break
        return total

    def _prune_dirs(self, rels: set[Path]) -> None:
        for rel in sorted(rels, key=lambda p: -len(p.parts)):
            d = self.root / rel
            while d != self.root and d.is_relative_to(self.root):
                try:
                    d.rmdir()  # only if empty
                except OSError:
                    break
                if self.archive is not None:
                    self.archive._made_dirs.discard(d)
                d = d.parent


# ---------------------------------------------------------------- consistency check
@dataclass
class CheckReport:
    integrity: str = "n/a"
    files: int = 0
    referenced: int = 0
    orphans: list[str] = field(default_factory=list)
    """Files in the archive that no row names."""
    missing: list[str] = field(default_factory=list)
    """Paths a row names that are not on disk."""
    temp_files: list[str] = field(default_factory=list)
    recent_skipped: int = 0
    repaired: bool = False

    @property
    def ok(self) -> bool:
        return self.integrity in ("ok", "n/a") and not self.orphans and not self.missing and not self.temp_files

    def lines(self) -> list[str]:
        out = [
            f"database integrity: {self.integrity}",
            f"archive files: {self.files}, referenced by rows: {self.referenced}",
            f"orphan files (no row): {len(self.orphans)}" + (" - removed" if self.repaired and self.orphans else ""),
            f"missing files (row without file): {len(self.missing)}"
            + (" - paths cleared" if self.repaired and self.missing else ""),
            f"leftover temporary files: {len(self.temp_files)}"
            + (" - removed" if self.repaired and self.temp_files else ""),
        ]
        if self.recent_skipped:
            out.append(f"files younger than the grace period, not judged: {self.recent_skipped}")
        for p in self.orphans[:10]:
            out.append(f"  orphan: {p}")
        for p in self.missing[:10]:
            out.append(f"  missing: {p}")
        return out


def integrity_check(db: Database) -> str:
    if db.dialect != "sqlite":
        return "n/a"
    with db.engine.connect() as c:
        rows = [r[0] for r in c.execute(text("PRAGMA integrity_check"))]
    return "ok" if rows == ["ok"] else "; ".join(rows[:5])


def check_archive(db: Database, archive_dir: Path, *, repair: bool = False, grace_s: float = 300.0) -> CheckReport:
    """Compare the archive folder with the rows; with `repair`, delete orphan files and clear dangling paths.

    Files younger than `grace_s` are left alone: the writer writes files just before committing their row.
    """
    root = Path(archive_dir)
    rep = CheckReport(integrity=integrity_check(db))
    with db.session() as s:
        referenced: set[str] = set()
        for col in PATH_COLUMNS:
            referenced.update(
                p for p in s.scalars(select(getattr(Inspection, col)).where(getattr(Inspection, col).isnot(None)))
            )
        referenced.update(file_of(p) for p in s.scalars(select(Defect.crop_path).where(Defect.crop_path.isnot(None))))
    rep.referenced = len(referenced)
    on_disk: set[str] = set()
    cutoff = time.time() - grace_s
    if root.is_dir():
        for dirpath, _dirs, names in os.walk(root):
            for name in names:
                full = Path(dirpath) / name
                rel = str(full.relative_to(root))
                try:
                    young = full.stat().st_mtime > cutoff
                except FileNotFoundError:
                    continue
                if name.endswith(".tmp"):
                    if young:
                        rep.recent_skipped += 1
                    else:
                        rep.temp_files.append(rel)
                    continue
                on_disk.add(rel)
                if rel not in referenced and young:
                    rep.recent_skipped += 1
                    continue
                if rel not in referenced:
                    rep.orphans.append(rel)
    rep.files = len(on_disk)
    rep.missing = sorted(referenced - on_disk)
    rep.orphans.sort()
    if repair:
        for rel in rep.orphans + rep.temp_files:
            _unlink(root, rel)
        if rep.missing:
            missing = rep.missing
            with db.session() as s, s.begin():
                for i in range(0, len(missing), 500):
                    chunk = missing[i : i + 500]
                    for col in PATH_COLUMNS:
                        c = getattr(Inspection, col)
                        s.execute(
                            update(Inspection)
                            .where(c.in_(chunk))
                            .values({col: None, "archive_error": "file missing; path cleared by db check"})
                        )
                    s.execute(update(Defect).where(Defect.crop_path.in_(chunk)).values(crop_path=None))
                for path in missing:
                    s.execute(
                        update(Defect)
                        .where(Defect.crop_path.startswith(path + "#", autoescape=True))
                        .values(crop_path=None)
                    )
        rep.repaired = True
    return rep
