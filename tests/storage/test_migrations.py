"""Schema: the station upgrades at start from the first version, with data, on both backends."""

from __future__ import annotations

from datetime import datetime

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

from inspector.storage import db as dbmod
from inspector.storage import history, inspection_detail, open_database, queries
from inspector.storage.db import StorageError, create_db_engine, current_revision, head_revision, upgrade
from inspector.storage.models import Base


def test_head_matches_models(db_url):
    """The migrations produce exactly the schema the ORM models describe (no drift)."""
    db = open_database(db_url)
    assert current_revision(db.engine) == head_revision() == "0003"
    with db.engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c, opts={"compare_type": True}), Base.metadata)
    db.close()
    assert diff == []


V1_ROWS = [
    "INSERT INTO stations (id, name, line, created_at) VALUES ('st-9', 'old', 'l1', '2025-01-01 00:00:00')",
    "INSERT INTO recipes (id, name, version, product, thresholds, roi, settings, created_at, created_by) "
    "VALUES (1, 'demo', 1, 'demo', '{}', NULL, '{}', '2025-01-01 00:00:00', 'x')",
    "INSERT INTO inspections (id, uid, created_at, station_id, recipe_id, recipe_name, model_id, board_serial, "
    "part_seq, frame_id, verdict, reason, defect_count, cycle_ms, timings_ms, frame_meta, image_path) VALUES "
    "(1, 'aaaa', '2025-01-02 08:30:00', 'st-9', 1, 'demo', 'm@1', 'SN1', 1, 1, 'REJECT', NULL, 1, 20.0, '{}', '{}', "
    "'2025-01-02/08/aaaa.png'),"
    "(2, 'bbbb', '2025-01-02 09:30:00', 'st-9', 1, 'demo', 'm@1', 'SN2', 2, 2, 'PASS', NULL, 0, 21.0, '{}', '{}', NULL)",
    "INSERT INTO defects (id, inspection_id, idx, class_id, score, x1, y1, x2, y2, crop_path) "
    "VALUES (1, 1, 0, 2, 0.9, 1, 2, 30, 40, '2025-01-02/08/aaaa_d0.png')",
    "INSERT INTO reviews (id, inspection_id, defect_id, verdict, reviewer, reviewed_at, comment) "
    "VALUES (1, 1, 1, 'confirmed', 'qa', '2025-01-03 10:00:00', '')",
]


def test_upgrade_from_first_version_with_data(db_url, tmp_path):
    engine = create_db_engine(db_url)
    upgrade(engine, "0001")
    assert current_revision(engine) == "0001"
    with engine.begin() as c:
        for sql in V1_ROWS:
            c.execute(text(sql))
    engine.dispose()

    db = open_database(db_url, station_id="st-9")  # what the station does at start
    assert current_revision(db.engine) == head_revision()
    if db.dialect == "sqlite":
        assert db.backup_path is not None and db.backup_path.exists(), "a pending migration must back up first"
        assert "bak-0001" in db.backup_path.name
    rows = history(db).rows
    assert [r.uid for r in rows] == ["bbbb", "aaaa"]
    assert rows[0].created_at == datetime.fromisoformat("2025-01-02T09:30:00+00:00")
    # the new `reviewed` flag is backfilled from the version-1 reviews
    assert {r.uid: r.reviewed for r in rows} == {"aaaa": True, "bbbb": False}
    assert [r.uid for r in history(db, queries.HistoryFilter(reviewed=False)).rows] == ["bbbb"]
    d = inspection_detail(db, "aaaa")
    assert d is not None and d.defects[0].review == "confirmed" and d.defects[0].crop_path.endswith("_d0.png")
    db.close()


def test_newer_schema_is_refused(sqlite_url):
    db = open_database(sqlite_url)
    with db.engine.begin() as c:
        c.execute(text("UPDATE alembic_version SET version_num = '0999'"))
    db.close()
    with pytest.raises(StorageError, match="0999.*newer"):
        open_database(sqlite_url)


def test_no_backup_for_a_fresh_database(sqlite_url):
    db = open_database(sqlite_url)
    assert db.backup_path is None
    db.close()


def test_bad_urls_are_named():
    with pytest.raises(StorageError, match="not a SQLAlchemy URL"):
        open_database("no-such-scheme")
    with pytest.raises(StorageError, match="only sqlite and postgresql"):
        dbmod.create_db_engine("mysql://x@localhost/db")
