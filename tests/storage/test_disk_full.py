"""Disk full: a real 3 MB tmpfs (mounted as root), or, where mount is not allowed, ENOSPC injected at
the file and database layer. The station must say why it is NOT READY, acknowledge nothing it could
not make durable, and lose nothing it acknowledged; once space is back, everything held is written.
"""

from __future__ import annotations

import errno
import os
import subprocess

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from inspector.health import Health
from inspector.storage import archive as archive_mod
from inspector.storage import integrity_check, open_database
from inspector.storage.models import Inspection
from inspector.storage.spool import Spool
from inspector.storage.writer import Recorder

from .conftest import make_result, wait_for


@pytest.fixture
def small_disk(tmp_path, monkeypatch):
    """(folder, free_space) where free_space() gives the disk room again."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    try:
        if os.environ.get("PCB_TEST_NO_MOUNT"):
            raise OSError("mount disabled by PCB_TEST_NO_MOUNT")
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError):
        full = {"on": False}
        real_write, real_spool, real_insert = archive_mod.atomic_write, Spool.write, Recorder._insert

        def write(path, data, **kw):
            if full["on"]:
                raise OSError(errno.ENOSPC, "No space left on device", str(path))
            return real_write(path, data, **kw)

        def spool(self, records, images=None):
            if full["on"]:
                raise OSError(errno.ENOSPC, "No space left on device", str(self.folder))
            return real_spool(self, records, images)

        def insert(self, records):
            if full["on"]:
                raise OperationalError("INSERT", {}, Exception("database or disk is full"))
            return real_insert(self, records)

        monkeypatch.setattr(archive_mod, "atomic_write", write)
        monkeypatch.setattr(Spool, "write", spool)
        monkeypatch.setattr(Recorder, "_insert", insert)
        state = {"n": 0}

        def fill_hook():  # the "disk" fills after 15 results
            state["n"] += 1
            if state["n"] == 15:
                full["on"] = True

        yield mnt, lambda: full.update(on=False), fill_hook
        return
    try:
        yield (
            mnt,
            lambda: subprocess.run(["mount", "-o", "remount,size=64m", str(mnt)], check=True, capture_output=True),
            lambda: None,
        )
    finally:
        subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def test_disk_full_is_not_ready_and_loses_nothing_acknowledged(small_disk, make_recorder):
    """Without the spool's reserve: results wait in memory, unacknowledged, until there is room."""
    mnt, free_space, tick = small_disk
    health = Health()
    rec = make_recorder(
        f"sqlite:///{mnt / 'records.db'}",
        archive_dir=mnt / "archive",
        spool_dir=mnt / "spool",
        health=health,
        spool_reserve_mb=0,
    )
    acked: set[str] = set()
    rec.add_durable_listener(lambda uid, where: acked.add(uid))
    rec.start()
    assert health.get("database").ok, health.summary()
    rng = np.random.default_rng(1)
    submitted = []
    for i in range(400):
        noise = rng.integers(0, 255, (256, 256), np.uint8)  # incompressible: ~65 kB per PNG
        r = make_result(i, classes=(1, 2), image=noise, reference=None)
        tick()
        rec.submit(r)
        submitted.append(r)
        rec.wait_durable(r.uid, 2.0)
        db_state = health.get("database")
        disk_state = health.get("disk")
        # Which fills first (an image or the database's WAL) depends on a few kB: go on until both have.
        if not db_state.ok and "held in memory" in db_state.reason and disk_state is not None and not disk_state.ok:
            break
    else:
        pytest.fail(f"the disk never filled: {health.summary()}")
    disk = health.get("disk")
    assert not disk.ok and "ENOSPC" in disk.reason, disk
    db_state = health.get("database")
    assert "full" in db_state.reason.lower() or "ENOSPC" in db_state.reason, db_state
    assert not health.ready and health.error_code() in (30, 40)
    held = [r.uid for r in submitted if r.uid not in acked]
    assert held, "some results must be waiting, unacknowledged, for space"
    assert not any(rec.wait_durable(u, 0) for u in held)

    free_space()
    assert wait_for(lambda: len(acked) == len(submitted), 20), f"{len(submitted) - len(acked)} still held"
    assert wait_for(lambda: health.get("database").ok, 10), health.summary()
    rec.stop()
    assert rec.stats.unrecorded == 0
    db = open_database(f"sqlite:///{mnt / 'records.db'}")
    assert integrity_check(db) == "ok"
    with db.session() as s:
        rows = dict(s.execute(select(Inspection.uid, Inspection.archive_error)).tuples().all())
    assert set(rows) == {r.uid for r in submitted}, "every result reached the database once space was back"
    assert any(e and "ENOSPC" in e for e in rows.values()), "boards whose images did not fit say so"
    db.close()


def test_disk_full_records_stay_durable_in_the_spool_reserve(small_disk, make_recorder):
    """With the reserve (the default), a full disk does not stop results from becoming durable: the
    spool writes them into its preallocated journal; they are acknowledged, and replayed once there is room."""
    mnt, free_space, tick = small_disk
    if not os.path.ismount(mnt):
        pytest.skip("needs the real tmpfs (root): the injected ENOSPC replaces Spool.write itself")
    health = Health()
    url = f"sqlite:///{mnt / 'records.db'}"
    rec = make_recorder(url, archive_dir=mnt / "archive", spool_dir=mnt / "spool", health=health, spool_reserve_mb=0.5)
    acked: dict[str, str] = {}
    rec.add_durable_listener(lambda uid, where: acked.__setitem__(uid, where))
    rec.start()
    assert (mnt / "spool" / "reserve.journal").stat().st_size == 512 * 1024
    rng = np.random.default_rng(2)
    submitted = []
    for i in range(400):
        r = make_result(i, classes=(1, 2), image=rng.integers(0, 255, (256, 256), np.uint8), reference=None)
        rec.submit(r)
        submitted.append(r)
        assert rec.wait_durable(r.uid, 5.0), f"result {i} not durable: {health.summary()}"
        if rec.spool.batches() and rec.spool.batches()[-1].name == "reserve.journal":
            break
    else:
        pytest.fail(f"the disk never filled: {health.summary()}")
    for i in range(400, 420):  # the disk stays full: still durable, in the reserve
        r = make_result(i, classes=(1,), image=rng.integers(0, 255, (256, 256), np.uint8), reference=None)
        rec.submit(r)
        submitted.append(r)
        assert rec.wait_durable(r.uid, 5.0), f"result {i} not durable: {health.summary()}"
    assert not health.ready and rec.stats.unrecorded == 0 and not rec._held
    assert acked[submitted[-1].uid] == "spool"

    free_space()
    assert wait_for(lambda: not rec.spool.batches(), 20), "the reserve is replayed once there is room"
    rec.stop()
    db = open_database(url)
    with db.session() as s:
        rows = dict(s.execute(select(Inspection.uid, Inspection.archive_error)).tuples().all())
    assert set(rows) == {r.uid for r in submitted}
    assert integrity_check(db) == "ok"
    db.close()
    journal = (mnt / "spool" / "reserve.journal").read_bytes()
    assert len(journal) == 512 * 1024 and not journal.strip(b"\0"), "zeroed in place, still reserved"
