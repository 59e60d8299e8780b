"""Below the free-disk floor: the line stops, and retention frees space without losing young records.

A disk filled by something else used to make retention delete the oldest inspections regardless of
age until none were left (the records the PLC had acknowledged seconds earlier included). Now: the
station goes NOT READY (disk, ERROR_CODE 40) at once; retention only touches records older than
`retention_min_days` (and, with plant sync, confirmed by the plant); their images go before any row.

Everything is real (SQLite, archive files, the writer thread, retention) except the free-space
probe, which reads a virtual small volume: a fixed capacity minus the bytes really in the image
archive and in a "filler" file that plays the other program. So deleting an image really gives
space back. (The database is left out so that its WAL growing by a page does not move the figures.)
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from inspector.health import ERROR_CODES, Health
from inspector.storage import RetentionPolicy, check_archive, history, inspection_detail, open_database
from inspector.storage import retention as retention_mod

from .conftest import make_result, wait_for

MiB = 2**20


class SmallVolume:
    """Free space of a virtual volume of `capacity_mb` holding everything under `root`."""

    def __init__(self, root: Path, capacity_mb: float):
        self.root = root
        self.capacity = capacity_mb * MiB
        self.filler = root / "filler.bin"
        self.probes = 0

    def used(self) -> int:
        archive = sum(p.stat().st_size for p in (self.root / "archive").rglob("*") if p.is_file())
        return archive + (self.filler.stat().st_size if self.filler.exists() else 0)

    def free_mb(self, folder: Path) -> float:
        assert Path(folder).is_relative_to(self.root), folder
        self.probes += 1
        return (self.capacity - self.used()) / MiB

    def fill_to(self, free_mb: float) -> None:
        """Grow (or shrink) the filler until `free_mb` is left."""
        others = self.used() - (self.filler.stat().st_size if self.filler.exists() else 0)
        size = int(self.capacity - others - free_mb * MiB)
        assert size >= 0, "the volume is already fuller than asked"
        with open(self.filler, "wb") as f:
            f.truncate(size)  # apparent size is what the probe counts


@pytest.fixture
def volume(tmp_path, monkeypatch) -> SmallVolume:
    vol = SmallVolume(tmp_path, capacity_mb=64)
    monkeypatch.setattr(retention_mod, "free_mb", vol.free_mb)
    return vol


def _noise(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 255, (192, 256), np.uint8)  # ~50 kB PNG, incompressible


def _records(url, make_recorder, results, **kw):
    rec = make_recorder(url, **kw)
    rec.start()
    for r in results:
        rec.submit(r)
    assert rec.flush(30)
    rec.stop()
    return open_database(url)


def _files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_floor_takes_images_of_old_records_then_old_rows_never_young_ones(db_url, make_recorder, tmp_path, volume):
    now = datetime.now(UTC)
    old = [make_result(i, classes=(1, 2), when=now - timedelta(days=10, minutes=i)) for i in range(6)]
    young = [make_result(100 + i, classes=(3,), when=now - timedelta(minutes=i)) for i in range(4)]
    db = _records(db_url, make_recorder, old + young)
    root = tmp_path / "archive"
    young_files = {p for r in young for p in _files(root) if r.uid in p}
    assert len(young_files) == 4 * 3  # image, thumb, crop sheet each
    volume.fill_to(1.0)  # something else filled the disk: 1 MB free, floor 100 MB
    pol = RetentionPolicy(db, root, max_age_days=365, min_free_mb=100, min_age_days=7, batch=4)

    rep = pol.run_batch(now)
    assert rep.low_disk and rep.stripped == 4 and rep.deleted == 0, rep
    rows = {r.uid: r for r in history(db, limit=100).rows}
    assert set(rows) == {r.uid for r in old + young}, "no row goes while an old record still has images"
    oldest = sorted(old, key=lambda r: r.timestamp)
    for r in oldest[:4]:
        d = inspection_detail(db, r.uid)
        assert d.row.image_path is None and d.row.thumb_path is None and d.reference_path is None
        assert all(x.crop_path is None for x in d.defects)
        assert "disk below the 100 MB floor" in d.archive_error
    assert all(inspection_detail(db, r.uid).row.image_path for r in oldest[4:])
    assert check_archive(db, root, grace_s=0).ok, "no row names a deleted file"

    rep = pol.run(now)
    assert rep.low_disk and rep.deleted == 6, rep
    assert {r.uid for r in history(db, limit=100).rows} == {r.uid for r in young}
    assert young_files <= _files(root), "records younger than retention_min_days keep their images"
    assert all(inspection_detail(db, r.uid).row.image_path for r in young)
    assert "younger than 7 days are kept" in rep.message and "100 MB floor" in rep.message
    assert check_archive(db, root, grace_s=0).ok
    db.close()


def test_floor_stops_freeing_once_above_it(sqlite_url, make_recorder, tmp_path, volume):
    now = datetime.now(UTC)
    rs = [
        make_result(i, classes=(1,), when=now - timedelta(days=30, minutes=10 - i), image=_noise(i), reference=None)
        for i in range(10)
    ]
    db = _records(sqlite_url, make_recorder, rs)
    root = tmp_path / "archive"
    per_board = sum((root / p).stat().st_size for p in _files(root) if rs[0].uid in p)
    volume.fill_to(20 - 2.5 * per_board / MiB)  # floor 20 MB: about three boards' images short
    pol = RetentionPolicy(db, root, max_age_days=365, min_free_mb=20, min_age_days=7, batch=1)
    rep = pol.run(now)
    assert not pol.run_batch(now).low_disk
    assert rep.stripped == 3 and rep.deleted == 0, rep
    kept = [inspection_detail(db, r.uid) for r in rs]
    assert [d.row.image_path is None for d in kept] == [True] * 3 + [False] * 7, "the oldest go first"
    assert len(history(db, limit=100).rows) == 10, "every row is kept"
    db.close()


def test_floor_keeps_records_the_plant_has_not_confirmed(sqlite_url, make_recorder, tmp_path, volume):
    from inspector.storage.writer import _sync_state_path

    now = datetime.now(UTC)
    rs = [make_result(i, classes=(1,), when=now - timedelta(days=20, minutes=10 - i)) for i in range(8)]
    db = _records(sqlite_url, make_recorder, rs)
    ids = sorted(r.id for r in history(db, limit=100).rows)
    state = _sync_state_path(sqlite_url)
    state.write_text(json.dumps({"plant": "postgresql://plant", "inspections": ids[2], "reviews": 0}))
    volume.fill_to(1.0)
    pol = RetentionPolicy(db, tmp_path / "archive", max_age_days=365, min_free_mb=100, batch=100, sync_state=state)
    rep = pol.run(now)
    assert rep.stripped == 3 and rep.deleted == 3, rep
    left = sorted(r.id for r in history(db, limit=100).rows)
    assert left == ids[3:]
    assert all(inspection_detail(db, i).row.image_path for i in left), "unconfirmed records keep their images"
    assert "not yet confirmed by the plant" in rep.message
    db.close()


def test_low_disk_stops_the_line_and_keeps_acknowledged_records(sqlite_url, make_recorder, tmp_path, volume):
    """The reported case: the disk fills from elsewhere seconds after 18 acknowledged boards."""
    health = Health()
    rec = make_recorder(
        sqlite_url,
        health=health,
        min_free_mb=50,
        retention_days=30,
        retention_interval_s=0.05,
        disk_check_s=0.05,
    )
    acked: list[str] = []
    rec.add_durable_listener(lambda uid, where: acked.append(uid))
    rec.start()
    rs = [make_result(i, classes=(1,) if i % 3 == 0 else ()) for i in range(18)]
    for r in rs:
        rec.submit(r)
    assert rec.flush(30) and len(acked) == 18
    assert wait_for(lambda: health.get("disk") is not None and health.get("disk").ok, 5), health.summary()
    assert health.ready, health.summary()

    volume.fill_to(3.0)
    assert wait_for(lambda: not health.get("disk").ok, 5), health.summary()
    disk = health.get("disk")
    assert "50 MB floor" in disk.reason, disk
    assert not health.ready and health.error_code() == ERROR_CODES["disk"] == 40
    probes = volume.probes
    assert wait_for(lambda: volume.probes > probes + 5, 5), "retention keeps looking while the disk is low"
    rec.stop()

    db = open_database(sqlite_url)
    assert {r.uid for r in history(db, limit=100).rows} == set(acked), "no acknowledged record deleted"
    assert all(inspection_detail(db, u).row.image_path for u in acked), "nor their images"
    db.close()

    volume.fill_to(60.0)
    health2 = Health()
    rec2 = make_recorder(sqlite_url, health=health2, min_free_mb=50, disk_check_s=0.05)
    rec2.start()
    assert wait_for(lambda: health2.get("disk") is not None and health2.get("disk").ok, 5), health2.summary()
    rec2.stop()


def test_db_retention_command_says_when_the_volume_stays_below_the_floor(
    sqlite_url, make_recorder, tmp_path, volume, capsys
):
    from inspector.cli import main

    now = datetime.now(UTC)
    rs = [make_result(i, when=now - timedelta(days=20, minutes=i)) for i in range(3)]
    rs += [make_result(10 + i, when=now - timedelta(hours=i)) for i in range(3)]
    _records(sqlite_url, make_recorder, rs).close()
    conf = tmp_path / "station.toml"
    conf.write_text(
        f'[storage]\ndatabase_url = "{sqlite_url}"\narchive_dir = "{tmp_path / "archive"}"\n'
        f'spool_dir = "{tmp_path / "spool"}"\nmin_free_mb = 100\nretention_days = 365\n'
    )
    volume.fill_to(1.0)
    assert main(["db", "retention", "--config", str(conf)]) == 1
    out = capsys.readouterr()
    assert "deleted 3 inspections" in out.out and "still below the disk floor" in out.err
    assert "younger than 7 days are kept" in out.err
    db = open_database(sqlite_url)
    assert {r.uid for r in history(db, limit=100).rows} == {r.uid for r in rs[3:]}
    db.close()
