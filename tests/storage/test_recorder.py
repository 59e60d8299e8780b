"""The recorder: rows and files for every result, durable acknowledgement, spool when the DB fails."""

from __future__ import annotations

import os
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import cv2
import pytest
from sqlalchemy import func, select

from inspector.health import Health
from inspector.storage import history, inspection_detail, open_database, read_crop
from inspector.storage.models import Defect, Inspection, Station

from .conftest import BOARD, make_result, wait_for


def _count(url: str, model=Inspection) -> int:
    db = open_database(url)
    try:
        with db.session() as s:
            return s.scalar(select(func.count()).select_from(model))
    finally:
        db.close()


def test_every_result_becomes_rows_and_files(db_url, make_recorder, tmp_path):
    health = Health()
    rec = make_recorder(db_url, station_id="aoi-7", health=health)
    acked: list[tuple[str, str]] = []
    rec.add_durable_listener(lambda uid, where: acked.append((uid, where)))
    rec.start()
    assert health.get("database").ok, health.summary()
    results = [make_result(i, classes=(1, 2, 2) if i % 3 == 0 else ()) for i in range(30)]
    for r in results:
        rec.submit(r)
    assert rec.flush(20)
    assert {u for u, _ in acked} == {r.uid for r in results}
    assert {w for _, w in acked} == {"database"}
    assert all(rec.wait_durable(r.uid, 0) for r in results)
    assert not rec.wait_durable("0" * 32, 0), "an unknown uid is never reported durable"
    rec.stop()

    db = open_database(db_url)
    with db.session() as s:
        assert s.get(Station, "aoi-7") is not None
        assert s.scalar(select(func.count()).select_from(Inspection).where(Inspection.station_id == "aoi-7")) == 30
        assert s.scalar(select(func.count()).select_from(Defect)) == 10 * 3
    d = inspection_detail(db, results[3].uid)
    assert d.row.verdict == "REJECT" and d.row.board_serial == "SN000003" and d.row.part_seq == 3
    assert [x.class_name for x in d.defects] == ["open", "short", "short"]
    assert d.timings_ms["inference"] == 10.0 and d.frame_meta["exposure"] == 1.5
    root = tmp_path / "archive"
    full = cv2.imread(str(root / d.row.image_path), cv2.IMREAD_GRAYSCALE)
    assert (full == BOARD).all(), "the archived frame is lossless"
    crop = read_crop(root, d.defects[1].crop_path)
    x1, y1, x2, y2 = (int(v) for v in d.defects[1].box)
    assert crop.shape[0] > y2 - y1 and crop.shape[1] > x2 - x1, "crop = box + padding"
    assert (crop == BOARD[max(0, y1 - 16) : y2 + 16, max(0, x1 - 16) : x2 + 16]).all()
    assert (root / d.row.thumb_path).is_file() and (root / d.reference_path).is_file()
    assert d.row.image_path.startswith(results[3].timestamp.strftime("%Y-%m-%d/%H/"))
    db.close()


def test_durable_uids_are_remembered_for_a_bounded_window(sqlite_url, make_recorder):
    """A station runs for weeks: the uids it remembers for `wait_durable` stay bounded (a full queue and
    one batch), not one entry per board ever recorded."""
    rec = make_recorder(sqlite_url, queue_size=10, batch_max=4, archive="none")
    rec.start()
    results = [make_result(i) for i in range(40)]
    for r in results:
        rec.submit(r)
        assert rec.wait_durable(r.uid, 10), "a result is durable right after it is written"
    assert rec.flush(10)
    assert len(rec._acked) == 10 + 4
    assert all(rec.is_durable(r.uid) for r in results[-14:])
    assert not any(rec.is_durable(r.uid) for r in results[:-14]), "older uids are forgotten"
    rec.stop()


def test_archive_policy_rejects_with_pass_sample(sqlite_url, make_recorder, tmp_path):
    rec = make_recorder(sqlite_url, archive="rejects", archive_pass_every=4)
    rec.start()
    for i in range(16):
        rec.submit(make_result(i, classes=(3,) if i % 2 else ()))
    assert rec.flush(10)
    rec.stop()
    db = open_database(sqlite_url)
    rows = history(db, limit=100).rows
    rejects = [r for r in rows if r.verdict == "REJECT"]
    passes = [r for r in rows if r.verdict == "PASS"]
    assert all(r.image_path for r in rejects)
    assert sum(1 for r in passes if r.image_path) == 2, "1 in 4 of the 8 passes keeps its full image"
    assert all(inspection_detail(db, r.id).defects[0].crop_path for r in rejects), "crops are always kept"
    db.close()


def test_archive_none_keeps_records_only(sqlite_url, make_recorder, tmp_path):
    rec = make_recorder(sqlite_url, archive="none")
    rec.start()
    rec.submit(make_result(1, classes=(1,)))
    assert rec.flush(10)
    rec.stop()
    assert _count(sqlite_url) == 1
    assert not any((tmp_path / "archive").rglob("*.png"))


def test_database_down_spools_then_replays(make_recorder, tmp_path, db_url):
    """Results made while the database is unreachable are acknowledged from the spool and reach the DB later."""
    health = Health()
    down = "postgresql+psycopg://postgres@127.0.0.1:9/none"  # nothing listens on port 9
    rec = make_recorder(down, health=health)
    rec.start(wait_s=15)
    state = health.get("database")
    assert not state.ok and "cannot open" in state.reason
    results = [make_result(i, classes=(2,)) for i in range(12)]
    for r in results:
        rec.submit(r)
    assert rec.flush(20)
    assert all(rec.wait_durable(r.uid, 0) for r in results)
    assert rec.stats.spooled == 12 and len(rec.spool) >= 1
    assert not health.ready
    rec.stop()

    health2 = Health()
    rec2 = make_recorder(db_url, health=health2)
    rec2.start()
    assert health2.get("database").ok, health2.summary()
    assert rec2.stats.replayed == 12 and len(rec2.spool) == 0
    rec2.stop()
    db = open_database(db_url)
    got = {r.uid for r in history(db, limit=100).rows}
    assert got == {r.uid for r in results}
    d = inspection_detail(db, results[0].uid)
    assert d.row.image_path and (tmp_path / "archive" / d.row.image_path).is_file()
    db.close()


def test_locked_sqlite_goes_not_ready_and_recovers(sqlite_url, make_recorder):
    health = Health()
    rec = make_recorder(sqlite_url, health=health, busy_timeout_ms=100)
    rec.start()
    path = sqlite_url.removeprefix("sqlite:///")
    blocker = sqlite3.connect(path, timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        first = [make_result(i) for i in range(5)]
        for r in first:
            rec.submit(r)
        assert rec.flush(10)
        assert wait_for(lambda: not health.get("database").ok)
        assert "locked" in health.get("database").reason
        assert rec.stats.spooled == 5
    finally:
        blocker.rollback()
        blocker.close()
    later = [make_result(100 + i) for i in range(5)]
    for r in later:
        rec.submit(r)
    assert rec.flush(10)
    assert wait_for(lambda: health.get("database").ok and len(rec.spool) == 0, 10), health.summary()
    rec.stop()
    assert _count(sqlite_url) == 10


def test_queue_full_spills_to_spool(sqlite_url, make_recorder):
    """With the writer not running, a full queue spills to the spool (never dropped, still acknowledged)."""
    health = Health()
    rec = make_recorder(sqlite_url, health=health, queue_size=10)
    results = [make_result(i) for i in range(25)]
    for r in results:
        rec.submit(r)  # writer not started: the queue fills after 10
    assert rec.stats.spooled == 15
    assert all(rec.wait_durable(r.uid, 0) for r in results[10:])
    assert "queue full" in health.get("database").reason
    rec.start()
    assert rec.flush(10)
    rec.stop()
    assert _count(sqlite_url) == 25
    db = open_database(sqlite_url)
    d = inspection_detail(db, results[20].uid)
    assert d.row.image_path, "images of spilled results are archived on replay"
    db.close()


def test_replay_is_idempotent(sqlite_url, make_recorder, tmp_path):
    """A crash after the DB commit but before the spool file was removed must not duplicate rows."""
    from inspector.storage.spool import Spool
    from inspector.storage.writer import result_record

    r = make_result(1, classes=(1,))
    rec = make_recorder(sqlite_url)
    rec.start()
    rec.submit(r)
    assert rec.flush(10)
    rec.stop()
    Spool(tmp_path / "spool").write([result_record(r, "station-1")])
    rec2 = make_recorder(sqlite_url)
    rec2.start()
    rec2.stop()
    assert _count(sqlite_url) == 1 and _count(sqlite_url, Defect) == 1
    assert not list(Path(tmp_path / "spool").glob("*.jsonl"))


def test_database_lamp_counts_what_was_written(sqlite_url, make_recorder):
    """The lamp's detail said "0 written" for the first 50 batches; it must follow within about a second."""
    health = Health()
    rec = make_recorder(sqlite_url, health=health)
    rec.start()
    try:
        for i in range(5):
            rec.submit(make_result(i))
        assert rec.flush(20)
        assert wait_for(lambda: "5 written" in health.get("database").detail, 5), health.get("database")
        for i in range(5, 12):
            rec.submit(make_result(i))
        assert rec.flush(20)
        assert wait_for(lambda: "12 written" in health.get("database").detail, 5), health.get("database")
    finally:
        rec.stop()


def test_replayed_spool_alone_brings_the_station_back(sqlite_url, make_recorder):
    """After an outage the spool is replayed and the lamp turns green with no further board: while the lamp is
    red READY is down and the PLC sends none, so a lamp that waited for a fresh batch kept the line stopped."""
    health = Health()
    rec = make_recorder(sqlite_url, health=health, busy_timeout_ms=100)
    rec.start()
    blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        for i in range(5):
            rec.submit(make_result(i))
        assert rec.flush(10)
        assert wait_for(lambda: not health.get("database").ok and rec.stats.spooled == 5)
    finally:
        blocker.rollback()
        blocker.close()
    assert wait_for(lambda: len(rec.spool) == 0 and rec.stats.replayed == 5, 10), health.summary()
    assert wait_for(lambda: health.get("database").ok, 5), health.get("database")
    assert health.ready, health.summary()
    rec.stop()
    assert _count(sqlite_url) == 5


def _old_record(url: str, make_recorder, tmp_path) -> str:
    """A database holding one 40-day-old record of station-1 (yesterday's run); returns its uid."""
    old = make_result(0, when=datetime.now(UTC) - timedelta(days=40))
    first = make_recorder(url, spool_dir=tmp_path / "spool-first", recipes=[{"name": "demo", "thresholds": {}}])
    first.start()
    first.submit(old)
    assert first.flush(10)
    first.stop()
    return old.uid


def test_open_that_fails_half_way_is_tried_again_whole(sqlite_url, make_recorder, tmp_path):
    """The database opens but writing the station's rows fails for a moment (the file locked by a hand-run `db
    retention`, a recipe changed since the last start): the next try opens everything again, so records are
    written and retention runs, instead of a writer left without its retention policy until a restart."""
    old_uid = _old_record(sqlite_url, make_recorder, tmp_path)
    health = Health()
    rec = make_recorder(
        sqlite_url,
        health=health,
        busy_timeout_ms=100,
        retention_days=30,
        retention_interval_s=0.2,
        recipes=[{"name": "demo", "thresholds": {"open": 0.6}}],  # registering it writes: fails under the lock
    )
    blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), timeout=0.1)
    blocker.execute("BEGIN EXCLUSIVE")
    try:
        rec.start(wait_s=1)
        assert not health.get("database").ok, "the first open failed"
    finally:
        blocker.rollback()
        blocker.close()
    fresh = [make_result(100 + i) for i in range(5)]
    for r in fresh:
        rec.submit(r)
    assert rec.flush(10)
    assert wait_for(lambda: health.get("database").ok and len(rec.spool) == 0, 10), health.get("database")
    assert wait_for(lambda: rec.stats.retention_deleted == 1, 10), "retention runs once the database is open"
    rec.stop()
    db = open_database(sqlite_url)
    with db.session() as s:
        uids = set(s.scalars(select(Inspection.uid)))
    db.close()
    assert uids == {r.uid for r in fresh}, "the new records are in, the 40-day-old one went by retention"
    assert old_uid not in uids


def test_database_that_comes_up_after_the_station_gets_retention(pg_cluster, make_recorder, tmp_path):
    """PostgreSQL not there when the station starts (boot order, a database still to be created): once it is,
    the spool is replayed and retention runs; the first failure's reason no longer holds it off."""
    import psycopg

    name = f"late{os.getpid()}"
    admin = pg_cluster.replace("postgresql+psycopg", "postgresql") + "/postgres"
    url = f"{pg_cluster}/{name}"
    health = Health()
    rec = make_recorder(url, health=health, retention_days=30, retention_interval_s=0.2)
    try:
        rec.start(wait_s=2)
        assert not health.get("database").ok and "cannot open" in health.get("database").reason
        old = make_result(1, when=datetime.now(UTC) - timedelta(days=40))
        rec.submit(old)
        assert rec.flush(10) and rec.stats.spooled == 1
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"CREATE DATABASE {name}")
        assert wait_for(lambda: rec.stats.replayed == 1 and health.get("database").ok, 15), health.get("database")
        assert wait_for(lambda: rec.stats.retention_deleted == 1, 10), "the expired record is deleted by retention"
    finally:
        rec.stop()
        with psycopg.connect(admin, autocommit=True) as c:
            c.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_ids_of_a_rolled_back_batch_are_looked_up_again(db_url, make_recorder):
    """A batch that fails after its new model version row was inserted (the database restarted under it) is
    rolled back, row and all: the next batch of that model must make the row again, not point at one that
    does not exist (each batch failed for the id cache's lifetime, its records spooled, the lamp red)."""
    from sqlalchemy.exc import IntegrityError

    from inspector.storage.writer import result_record

    rec = make_recorder(db_url)
    assert rec._open()  # the writer thread is not started: this thread is the database's owner here
    first = make_result(1)
    first.model_id = "pcb-det@2.0.0"
    row = result_record(first, "station-1")
    with pytest.raises(IntegrityError):
        rec._insert([row, dict(row)])  # one uid twice: fails after the model version was inserted
    second = make_result(2)
    second.model_id = "pcb-det@2.0.0"
    rec._insert([result_record(second, "station-1")])
    d = inspection_detail(rec.database, second.uid)
    assert d is not None and d.row.model_id == "pcb-det@2.0.0"
