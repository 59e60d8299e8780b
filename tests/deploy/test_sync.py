"""Plant sync against a real PostgreSQL, with the link cut and restored: nothing lost, nothing doubled."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, func, select, text

from inspector.storage.db import ensure_station, open_database
from inspector.storage.models import Defect, Inspection, ModelVersion, Recipe, Review
from inspector.sync import PlantSync, synced_through

from .conftest import wait_for

T0 = datetime(2025, 3, 1, 6, 0, tzinfo=UTC)


@pytest.fixture
def local_db(tmp_path):
    url = f"sqlite:///{tmp_path / 'station.db'}"
    db = open_database(url, station_id="station-7")
    ensure_station(db, "AOI 7", "line-2")
    with db.session() as s, s.begin():
        s.add(Recipe(name="demo", version=1, thresholds={"short": 0.4}))
        s.add(ModelVersion(model_id="pcb-defect-det@1.0.0+abc", name="pcb-defect-det", version="1.0.0"))
    yield db
    db.close()


def add_inspections(db, n: int, start: int) -> list[str]:
    """n inspections; every third is a REJECT with (i % 4) + 1 defects."""
    uids = []
    with db.session() as s, s.begin():
        rc = s.execute(select(Recipe.id)).scalar_one()
        mv = s.execute(select(ModelVersion.id)).scalar_one()
        for i in range(start, start + n):
            uid = uuid.uuid4().hex
            uids.append(uid)
            k = (i % 4) + 1 if i % 3 == 0 else 0
            s.add(
                Inspection(
                    uid=uid,
                    created_at=T0 + timedelta(seconds=i),
                    station_id="station-7",
                    recipe_id=rc,
                    recipe_name="demo",
                    model_version_id=mv,
                    model_id="pcb-defect-det@1.0.0+abc",
                    board_serial=f"SN{i:06d}",
                    part_seq=i,
                    frame_id=i,
                    verdict="REJECT" if k else "PASS",
                    defect_count=k,
                    cycle_ms=20.0 + i % 7,
                    timings_ms={"total": 20.0},
                    defects=[
                        Defect(idx=j, class_id=j + 1, score=0.9, x1=j, y1=j, x2=j + 10, y2=j + 10) for j in range(k)
                    ],
                )
            )
    return uids


def add_reviews(db, every: int = 5) -> int:
    with db.session() as s, s.begin():
        rows = s.execute(select(Defect.id, Defect.inspection_id).order_by(Defect.id)).all()
        n = 0
        for d_id, i_id in rows[::every]:
            s.add(
                Review(
                    inspection_id=i_id,
                    defect_id=d_id,
                    verdict="confirmed" if d_id % 2 else "false_call",
                    reviewer="qe1",
                    reviewed_at=T0 + timedelta(hours=1, seconds=d_id),
                )
            )
            n += 1
    return n


def plant_counts(url: str) -> dict[str, int]:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            out = {
                t: c.execute(text(f"SELECT count(*) FROM {t}")).scalar()
                for t in ("inspections", "defects", "reviews", "recipes", "model_versions", "stations")
            }
            out["dup_uids"] = c.execute(
                text("SELECT count(*) FROM (SELECT uid FROM inspections GROUP BY uid HAVING count(*) > 1) d")
            ).scalar()
            out["dup_defects"] = c.execute(
                text(
                    "SELECT count(*) FROM (SELECT inspection_id, idx FROM defects GROUP BY 1, 2 HAVING count(*) > 1) d"
                )
            ).scalar()
            out["defects_match_count"] = c.execute(
                text(
                    "SELECT count(*) FROM inspections i WHERE defect_count = "
                    "(SELECT count(*) FROM defects d WHERE d.inspection_id = i.id)"
                )
            ).scalar()
            out["reviewed"] = c.execute(text("SELECT count(*) FROM inspections WHERE reviewed")).scalar()
            return out
    finally:
        eng.dispose()


def local_counts(db) -> dict[str, int]:
    with db.session() as s:
        return {
            "inspections": s.scalar(select(func.count()).select_from(Inspection)),
            "defects": s.scalar(select(func.count()).select_from(Defect)),
            "reviews": s.scalar(select(func.count()).select_from(Review)),
            "reviewed_inspections": s.scalar(select(func.count(func.distinct(Review.inspection_id)))),
        }


def local_uids(db) -> set[str]:
    with db.session() as s:
        return set(s.scalars(select(Inspection.uid)))


def plant_uids(url: str) -> set[str]:
    eng = create_engine(url)
    try:
        with eng.connect() as c:
            return set(c.execute(text("SELECT uid FROM inspections")).scalars())
    finally:
        eng.dispose()


def test_sync_survives_link_loss_with_counts_reconciled(local_db, postgres_server, plant_db, tcp_link):
    host, port = postgres_server
    direct = f"postgresql+psycopg://postgres@{host}:{port}/{plant_db}"
    link = tcp_link((host, port))
    via_link = f"postgresql+psycopg://postgres@127.0.0.1:{link.port}/{plant_db}"

    add_inspections(local_db, 600, 0)
    worker = PlantSync(local_db.url, via_link, batch=25, interval_s=0.05, backoff_max_s=0.4, connect_timeout_s=2)
    worker.start()
    try:
        # Cut the link in the middle of the backlog, while batches are in flight.
        assert wait_for(lambda: worker.state.inspections >= 100, 60), worker.last_error
        link.cut()
        # The line keeps inspecting and reviewing while the plant is unreachable.
        add_inspections(local_db, 150, 600)
        n_reviews = add_reviews(local_db)
        assert wait_for(lambda: not worker.link_up and worker.last_error is not None, 20)
        frozen = plant_counts(direct)["inspections"]
        assert 100 <= frozen <= 600
        assert worker.pending()["inspections"] > 0
        # A second cut while it retries, then the link comes back for good.
        link.restore()
        assert wait_for(lambda: worker.state.inspections > frozen + 25, 30), worker.last_error
        link.cut()
        add_inspections(local_db, 50, 750)
        link.restore()
        # Caught up, and the worker has since reached the plant again (a failure right at the cut can
        # come after the last batch went through).
        assert wait_for(lambda: worker.pending() == {"inspections": 0, "reviews": 0} and worker.link_up, 90), (
            worker.last_error
        )
    finally:
        worker.stop()

    local, plant = local_counts(local_db), plant_counts(direct)
    assert local["inspections"] == 800 and local["reviews"] == n_reviews
    assert plant["inspections"] == local["inspections"]
    assert plant["defects"] == local["defects"]
    assert plant["reviews"] == local["reviews"]
    assert plant["dup_uids"] == 0 and plant["dup_defects"] == 0
    assert plant["defects_match_count"] == plant["inspections"]  # every inspection has all of its defects
    assert plant["reviewed"] == local["reviewed_inspections"]
    assert plant["recipes"] == 1 and plant["model_versions"] == 1 and plant["stations"] == 1
    assert plant_uids(direct) == local_uids(local_db)
    assert synced_through(local_db.url) == 800
    assert link.cuts == 2


def test_resync_from_scratch_is_idempotent(local_db, postgres_server, plant_db, tmp_path):
    host, port = postgres_server
    url = f"postgresql+psycopg://postgres@{host}:{port}/{plant_db}"
    add_inspections(local_db, 120, 0)
    add_reviews(local_db, every=3)
    first = PlantSync(local_db.url, url, batch=40).run_once()
    after_first = plant_counts(url)
    assert first.inspections == 120 and after_first["inspections"] == 120

    # Lose the high-water mark (state file deleted, or a crash after the plant committed): push all again.
    state = tmp_path / "station.db.plant-sync.json"
    assert state.exists()
    state.unlink()
    again = PlantSync(local_db.url, url, batch=40).run_once()
    assert again.inspections == 0 and again.defects == 0 and again.reviews == 0
    assert plant_counts(url) == after_first

    # New records after that go through exactly once.
    add_inspections(local_db, 10, 120)
    w3 = PlantSync(local_db.url, url, batch=40)
    third = w3.run_once()
    assert third.inspections == 10
    assert plant_counts(url)["inspections"] == 130
    assert plant_uids(url) == local_uids(local_db)


def test_unreachable_plant_keeps_everything_local(local_db, tmp_path):
    from sqlalchemy.exc import OperationalError

    from .conftest import free_port

    add_inspections(local_db, 5, 0)
    worker = PlantSync(local_db.url, f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/x", connect_timeout_s=1)
    with pytest.raises(OperationalError):
        worker.run_once()
    assert worker.pending() == {"inspections": 5, "reviews": 0}
    assert synced_through(local_db.url) == 0
    assert local_counts(local_db)["inspections"] == 5


@pytest.mark.parametrize("plant", ["login refused", "unreachable"])
def test_retention_keeps_every_record_while_sync_has_never_succeeded(
    local_db, postgres_server, plant_db, plant, tmp_path
):
    """A sync that has never reached the plant (a login the plant refuses, no route since install) still
    counts as sync in use: retention, by age and below the disk floor, deletes nothing the plant has not
    confirmed. The test cluster trusts every password, so an unknown role stands in for a wrong one."""
    import json

    from sqlalchemy.exc import OperationalError

    from inspector.storage import RetentionPolicy
    from inspector.storage.writer import _sync_state_path

    from .conftest import free_port

    host, port = postgres_server
    if plant == "login refused":
        url = f"postgresql+psycopg://no_such_station:secret@{host}:{port}/{plant_db}"
    else:
        url = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/{plant_db}"
    add_inspections(local_db, 20, 0)  # from March 2025: far older than any retention period
    state = _sync_state_path(local_db.url)
    worker = PlantSync(local_db.url, url, connect_timeout_s=1)
    try:
        with pytest.raises(OperationalError):
            worker.run_once()
    finally:
        worker.stop()
    assert synced_through(local_db.url) == 0
    pol = RetentionPolicy(
        local_db, tmp_path / "archive", max_age_days=30, min_free_mb=10**9, min_age_days=0, sync_state=state
    )
    rep = pol.run()
    assert rep.deleted == 0 and rep.low_disk and "not yet confirmed by the plant" in rep.message
    assert local_counts(local_db)["inspections"] == 20
    assert json.loads(state.read_text())["inspections"] == 0, "the state file says: sync in use, nothing confirmed"


def test_signed_records_reach_the_plant_and_verify_there_with_the_public_key(tmp_path, postgres_server, plant_db):
    """The station signs each record; the plant checks it with the station's public key file alone."""
    import subprocess
    import sys

    from inspector.domain import Detection, InspectionResult, Verdict
    from inspector.health import Health
    from inspector.storage.writer import Recorder, RecorderSettings

    url = f"sqlite:///{tmp_path / 'station.db'}"
    rec = Recorder(
        RecorderSettings(
            url,
            station_id="station-7",
            archive_dir=tmp_path / "archive",
            spool_dir=tmp_path / "spool",
            archive="none",
            min_free_mb=0,
            retention_days=None,
        ),
        Health(),
    )
    rec.start()
    for i in range(12):
        dets = [Detection((10.0 + i, 20.0, 40.5, 60.25), 1 + i % 6, 0.5 + i / 100)] if i % 3 else []
        rec.submit(
            InspectionResult(
                frame_id=i,
                recipe="demo",
                verdict=Verdict.REJECT if dets else Verdict.PASS,
                detections=dets,
                timings_ms={"total": 12.5},
                model_id="pcb-defect-det@1.6.0",
                board_serial=f"SN{i:04d}",
                part_seq=i,
            )
        )
    assert rec.flush()
    rec.stop()
    host, port = postgres_server
    plant = f"postgresql+psycopg://postgres@{host}:{port}/{plant_db}"
    pushed = PlantSync(url, plant).run_once()
    assert pushed.inspections == 12 and pushed.audit_events == 2  # station.start, station.stop
    pub = tmp_path / "station.key.pub"  # what the plant keeps; the private key stays on the station
    assert pub.exists()
    code = "import sys; from inspector.cli import main; sys.exit(main())"
    verify = [sys.executable, "-c", code, "db", "verify", "--db", plant, "--key", str(pub), "--station", "station-7"]
    r = subprocess.run(verify, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "12 inspection records: 12 signatures valid" in r.stdout
    eng = create_engine(plant)
    try:
        with eng.begin() as c:
            uid = c.execute(text("SELECT uid FROM inspections WHERE verdict = 'REJECT' ORDER BY id LIMIT 1")).scalar()
            c.execute(text("UPDATE inspections SET verdict = 'PASS' WHERE uid = :u"), {"u": uid})
    finally:
        eng.dispose()
    r = subprocess.run(verify, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1
    assert f"(uid {uid}," in r.stdout and "changed after it was recorded" in r.stdout
    # The audit chain travelled too: the plant verifies it, and sees an event deleted there.
    chain = [sys.executable, "-c", code, "audit", "verify", "--db", plant, "--key", str(pub), "--station", "station-7"]
    r = subprocess.run(chain, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0 and "2 events, chain intact, 2 signatures valid" in r.stdout, r.stdout + r.stderr
    assert PlantSync(url, plant).run_once().audit_events == 0  # idempotent
    eng = create_engine(plant)
    try:
        with eng.begin() as c:
            c.execute(text("DELETE FROM audit_events WHERE station_id = 'station-7' AND seq = 2"))
    finally:
        eng.dispose()
    r = subprocess.run(chain, capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 1 and "audit events seq 2..2 missing (deleted from the end" in r.stdout, r.stdout


def test_sync_before_the_station_ever_ran_creates_no_database(tmp_path):
    """The sync unit may start first: it created an empty inspections.db and failed on 'no such table' every 10 s."""
    import subprocess
    import sys

    db = tmp_path / "data" / "inspections.db"
    r = subprocess.run(
        [sys.executable, "-m", "inspector.cli", "sync", "--db", f"sqlite:///{db}", "--plant",
         "postgresql://u:pw@127.0.0.1:1/plant", "--once"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )  # fmt: skip
    assert r.returncode == 2 and f"no station database at {db} yet" in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not db.exists() and not db.parent.exists()
