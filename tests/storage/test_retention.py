"""Retention (age, free-disk floor) deletes rows and files together; `db check` finds and repairs orphans."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta

from inspector.cli import main
from inspector.health import Health
from inspector.storage import RetentionPolicy, check_archive, count, history, inspection_detail, open_database

from .conftest import make_result


def _archived(url, make_recorder, results, **kw):
    rec = make_recorder(url, **kw)
    rec.start()
    for r in results:
        rec.submit(r)
    assert rec.flush(30)
    rec.stop()
    return open_database(url)


def _files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_age_retention_deletes_rows_and_files(db_url, make_recorder, tmp_path):
    now = datetime.now(UTC)
    old = [make_result(i, classes=(1, 2), when=now - timedelta(days=40, minutes=i)) for i in range(7)]
    new = [make_result(100 + i, classes=(3,), when=now - timedelta(days=1, minutes=i)) for i in range(5)]
    db = _archived(db_url, make_recorder, old + new)
    root = tmp_path / "archive"
    assert len(_files(root)) == 7 * 3 + 5 * 3 + 1  # image, thumb, crop sheet per board + one shared reference
    pol = RetentionPolicy(db, root, max_age_days=30, batch=3)
    first = pol.run_batch()
    assert first.deleted == 3 and first.more
    rep = pol.run()
    assert rep.deleted == 4
    assert {r.uid for r in history(db, limit=100).rows} == {r.uid for r in new}
    assert len(_files(root)) == 5 * 3 + 1, "the reference is kept while boards still use it"
    chk = check_archive(db, root, grace_s=0)
    assert chk.ok, chk.lines()
    assert not (root / old[0].timestamp.strftime("%Y-%m-%d")).exists(), "empty date folders are removed"
    db.close()


def test_disk_floor_with_no_age_floor_takes_images_then_rows_oldest_first(sqlite_url, make_recorder, tmp_path):
    """With `min_age_days=0` every record may go below the floor, but images before rows, oldest first.

    The defaults (never records younger than 7 days, never unsynced ones) are tested in test_disk_floor.py.
    """
    now = datetime.now(UTC)
    rs = [make_result(i, when=now - timedelta(hours=10 - i)) for i in range(10)]
    db = _archived(sqlite_url, make_recorder, rs)
    pol = RetentionPolicy(db, tmp_path / "archive", max_age_days=365, min_free_mb=10**9, min_age_days=0, batch=4)
    rep = pol.run_batch()
    assert rep.low_disk and rep.stripped == 4 and rep.deleted == 0
    assert count(db) == 10
    assert [inspection_detail(db, r.uid).row.image_path is None for r in rs] == [True] * 4 + [False] * 6
    rep = pol.run()
    assert count(db) == 0
    rep = pol.run_batch()
    assert rep.low_disk and "nothing left that retention may delete" in rep.message
    db.close()


def test_check_reports_and_repairs(sqlite_url, make_recorder, tmp_path, capsys):
    rs = [make_result(i, classes=(1,)) for i in range(4)]
    db = _archived(sqlite_url, make_recorder, rs)
    root = tmp_path / "archive"
    d = inspection_detail(db, rs[0].uid)
    (root / d.row.image_path).unlink()  # row without file
    orphan = root / "2020-01-01" / "00" / "lost.png"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"x")  # file without row
    tmp = root / "2020-01-01" / "00" / "half.png.tmp"
    tmp.write_bytes(b"x")
    old = time.time() - 3600
    for p in (orphan, tmp):
        os.utime(p, (old, old))
    rep = check_archive(db, root)
    assert rep.integrity == "ok"
    assert rep.orphans == ["2020-01-01/00/lost.png"] and rep.missing == [d.row.image_path]
    assert rep.temp_files == ["2020-01-01/00/half.png.tmp"] and not rep.ok
    db.close()
    args = ["db", "check", "--db", sqlite_url, "--archive", str(root)]
    assert main(args) == 1
    assert "orphan files (no row): 1" in capsys.readouterr().out
    assert main([*args, "--repair"]) == 0
    assert main(args) == 0
    db = open_database(sqlite_url)
    d = inspection_detail(db, rs[0].uid)
    assert d.row.image_path is None and "missing" in d.archive_error
    assert not orphan.exists() and not tmp.exists()
    db.close()


def test_retention_under_load(sqlite_url, make_recorder, tmp_path):
    """The writer deletes expired boards in batches while new results keep arriving; nothing new is lost."""
    health = Health()
    rec = make_recorder(sqlite_url, health=health, retention_days=30, retention_interval_s=0.05, retention_batch=25)
    rec.start()
    now = datetime.now(UTC)
    old = [make_result(i, classes=(1,), when=now - timedelta(days=60, seconds=i)) for i in range(300)]
    for r in old:
        rec.submit(r)
    assert rec.flush(30)
    new: list = []

    def produce():
        for i in range(300):
            r = make_result(1000 + i, classes=(2, 3) if i % 2 else ())
            new.append(r)
            rec.submit(r)
            time.sleep(0.002)

    t = threading.Thread(target=produce)
    t.start()
    t.join()
    assert rec.flush(30)
    deadline = time.monotonic() + 20
    while rec.stats.retention_deleted < 300 and time.monotonic() < deadline:
        time.sleep(0.05)
    rec.stop()
    assert rec.stats.retention_deleted == 300
    assert all(rec.wait_durable(r.uid, 0) for r in new)
    db = open_database(sqlite_url)
    assert {r.uid for r in history(db, limit=1000).rows} == {r.uid for r in new}
    chk = check_archive(db, tmp_path / "archive", grace_s=0)
    assert chk.ok, chk.lines()
    db.close()


def test_retention_never_deletes_what_the_plant_has_not_confirmed(sqlite_url, make_recorder, tmp_path):
    import json

    from inspector.storage.writer import _sync_state_path

    now = datetime.now(UTC)
    rs = [make_result(i, when=now - timedelta(days=40, minutes=10 - i)) for i in range(10)]
    db = _archived(sqlite_url, make_recorder, rs)
    ids = sorted(r.id for r in history(db, limit=100).rows)
    state = _sync_state_path(sqlite_url)
    # The sync worker has confirmed the first 4 inspections only (its own state file format).
    state.write_text(json.dumps({"plant": "postgresql://plant", "inspections": ids[3], "reviews": 0}))
    pol = RetentionPolicy(db, tmp_path / "archive", max_age_days=30, min_free_mb=10**9, batch=100, sync_state=state)
    rep = pol.run()
    assert rep.deleted == 4, "only confirmed inspections may go, even below the disk floor"
    assert sorted(r.id for r in history(db, limit=100).rows) == ids[4:]
    rep = pol.run_batch()
    assert rep.low_disk and "not yet confirmed by the plant" in rep.message
    state.unlink()  # no sync in use: the usual rules apply again
    assert pol.run().deleted == 6
    db.close()


def test_retention_keeps_inspections_whose_reviews_the_plant_has_not_received(sqlite_url, make_recorder, tmp_path):
    """A board pushed to the plant, then reviewed while the plant link is down, keeps its row (and so its
    reviews) until the sync has pushed the reviews too; its images may still go below the disk floor."""
    from inspector.storage import add_missed_defect, review_defect, review_stats
    from inspector.storage.writer import _sync_state_path
    from inspector.sync import PlantSync

    now = datetime.now(UTC)
    rs = [make_result(i, classes=(2,), when=now - timedelta(days=40, minutes=10 - i)) for i in range(3)]
    today = make_result(9, classes=(2,), when=now)  # the line runs on: the newest ids are today's
    db = _archived(sqlite_url, make_recorder, [*rs, today])
    plant = f"sqlite:///{tmp_path / 'plant.db'}"
    sync = PlantSync(sqlite_url, plant)
    assert sync.run_once().inspections == 4  # the plant has every inspection, no reviews yet
    sync.stop()
    reviewed = inspection_detail(db, rs[1].uid)
    review_defect(db, reviewed.defects[0].id, "false_call", "qe-anna")
    add_missed_defect(db, reviewed.row.id, (1, 2, 30, 40), 3, "qe-anna")
    # The plant link is down now; the writer's retention passes run (and the disk is below the floor).
    state = _sync_state_path(sqlite_url)
    pol = RetentionPolicy(
        db, tmp_path / "archive", max_age_days=30, min_free_mb=10**9, min_age_days=0, batch=100, sync_state=state
    )
    rep = pol.run()
    assert rep.deleted == 2
    assert {r.uid for r in history(db, limit=100).rows} == {rs[1].uid, today.uid}, "the reviewed board stays"
    kept = inspection_detail(db, rs[1].uid)
    assert kept.row.image_path is None, "below the floor its images may go: the plant does not get them anyway"
    assert kept.defects[0].review == "false_call" and len(kept.missed) == 1
    # The link is back: the reviews reach the plant, and only then may retention delete the board.
    sync = PlantSync(sqlite_url, plant)
    assert sync.run_once().reviews == 2
    sync.stop()
    plant_db = open_database(plant, migrate=False)
    stats = review_stats(plant_db)
    assert (stats.false_calls, stats.missed) == (1, 1)
    plant_db.close()
    # The newest review is still this board's: its id stays taken until a later review (see the next test).
    review_defect(db, inspection_detail(db, today.uid).defects[0].id, "confirmed", "qe-anna")
    sync = PlantSync(sqlite_url, plant)
    assert sync.run_once().reviews == 1
    sync.stop()
    assert pol.run().deleted == 1
    assert [r.uid for r in history(db, limit=100).rows] == [today.uid]
    db.close()


def test_retention_leaves_the_newest_ids_taken_so_the_sync_sends_what_comes_next(sqlite_url, make_recorder, tmp_path):
    """SQLite gives a new row the largest id plus one: had retention deleted every record of a line idle past
    `retention_days`, the next board would get an id the plant's mark already covers, and the sync would never
    send it. The row with the newest id stays, so the next board's id is new."""
    from inspector.storage.writer import _sync_state_path
    from inspector.sync import PlantSync

    now = datetime.now(UTC)
    rs = [make_result(i, when=now - timedelta(days=40, minutes=10 - i)) for i in range(3)]
    db = _archived(sqlite_url, make_recorder, rs)
    plant = f"sqlite:///{tmp_path / 'plant.db'}"
    sync = PlantSync(sqlite_url, plant)
    assert sync.run_once().inspections == 3
    sync.stop()
    pol = RetentionPolicy(
        db,
        tmp_path / "archive",
        max_age_days=30,
        min_free_mb=0,
        min_age_days=0,
        batch=100,
        sync_state=_sync_state_path(sqlite_url),
    )
    assert pol.run().deleted == 2, "every expired record but the one holding the newest id"
    db.close()
    monday = make_result(50, when=now)
    _archived(sqlite_url, make_recorder, [monday]).close()
    sync = PlantSync(sqlite_url, plant)
    assert sync.run_once().inspections == 1, "the line's next board reaches the plant"
    sync.stop()
    plant_db = open_database(plant, migrate=False)
    assert monday.uid in {r.uid for r in history(plant_db, limit=100).rows}
    plant_db.close()
