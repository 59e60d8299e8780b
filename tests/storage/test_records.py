"""Users (scrypt), audit events, calibrations, reviews and the DeepPCB export."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select

from inspector.datasets.deeppcb import load_list
from inspector.storage import (
    ExportError,
    RecordError,
    activate_calibration,
    active_calibration,
    add_missed_defect,
    audit_events,
    authenticate,
    calibration_history,
    create_user,
    delete_review,
    export_dataset,
    has_admin,
    inspection_detail,
    list_users,
    open_database,
    record_audit,
    review_defect,
    save_calibration,
    set_active,
    set_role,
    set_secret,
)
from inspector.storage.models import User

from .conftest import make_result


def test_users_and_roles(db_url):
    db = open_database(db_url)
    assert not has_admin(db)
    create_user(db, "ada", "admin", "4711", by="setup")
    create_user(db, "op1", "operator", "1234", by="ada")
    assert has_admin(db)
    with db.session() as s:
        stored = s.scalar(select(User.password_hash).where(User.username == "op1"))
    assert stored.startswith("scrypt$") and "1234" not in stored
    assert authenticate(db, "op1", "1234").role == "operator"
    assert authenticate(db, "op1", "9999") is None
    assert authenticate(db, "nobody", "1234") is None
    set_role(db, "op1", "engineer", by="ada")
    set_secret(db, "op1", "new-secret", by="ada")
    assert authenticate(db, "op1", "1234") is None
    assert authenticate(db, "op1", "new-secret").role == "engineer"
    set_active(db, "op1", False, by="ada")
    assert authenticate(db, "op1", "new-secret") is None
    assert [u.username for u in list_users(db)] == ["ada", "op1"]
    with pytest.raises(RecordError, match="already exists"):
        create_user(db, "ada", "admin", "abcd")
    with pytest.raises(RecordError, match="role 'boss'"):
        create_user(db, "x", "boss", "abcd")
    with pytest.raises(RecordError, match="too short"):
        create_user(db, "y", "operator", "1")
    acts = [(e.who, e.action) for e in audit_events(db)]
    assert ("ada", "user.role") in acts and ("setup", "user.create") in acts
    role = next(e for e in audit_events(db) if e.action == "user.role")
    assert (role.before, role.after) == ({"role": "operator"}, {"role": "engineer"})
    db.close()


def test_audit_api(db_url):
    db = open_database(db_url, station_id="aoi-3")
    eid = record_audit(db, "eng", "recipe.thresholds", "recipe demo", {"short": 0.5}, {"short": 0.4})
    ev = audit_events(db, who="eng")[0]
    assert ev.id == eid and ev.station_id == "aoi-3" and ev.after == {"short": 0.4} and ev.at.tzinfo is not None
    db.close()


def test_calibrations(db_url):
    db = open_database(db_url, station_id="aoi-3")
    assert active_calibration(db, "scale") is None
    a = save_calibration(db, "scale", {"mm_per_px": 0.05}, "eng")
    b = save_calibration(db, "scale", {"mm_per_px": 0.049}, "eng")
    save_calibration(db, "intrinsics", {"rms_px": 0.3, "camera_matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}, "eng")
    save_calibration(db, "scale", {"mm_per_px": 1.0}, "eng", station_id="other")
    cur = active_calibration(db, "scale")
    assert cur.id == b.id and cur.results == {"mm_per_px": 0.049} and cur.created_by == "eng"
    assert [c.id for c in calibration_history(db, "scale")] == [b.id, a.id]
    activate_calibration(db, a.id, by="lead")
    assert active_calibration(db, "scale").id == a.id
    assert active_calibration(db, "intrinsics").results["rms_px"] == 0.3
    assert active_calibration(db, "scale", station_id="other").results == {"mm_per_px": 1.0}
    db.close()


def test_reviews_validate_and_undo(sqlite_url, make_recorder):
    rec = make_recorder(sqlite_url, archive="none")
    rec.start()
    r = make_result(1, classes=(1,))
    rec.submit(r)
    assert rec.flush(10)
    db = open_database(sqlite_url)
    d = inspection_detail(db, r.uid)
    with pytest.raises(RecordError, match="confirmed"):
        review_defect(db, d.defects[0].id, "missed", "qa")
    with pytest.raises(RecordError, match="no defect"):
        review_defect(db, 999, "confirmed", "qa")
    with pytest.raises(RecordError, match="empty"):
        add_missed_defect(db, d.row.id, (5, 5, 5, 9), 1, "qa")
    with pytest.raises(RecordError, match="class id 9"):
        add_missed_defect(db, d.row.id, (5, 5, 8, 9), 9, "qa")
    rid = review_defect(db, d.defects[0].id, "false_call", "qa")
    assert inspection_detail(db, r.uid).row.reviewed
    delete_review(db, rid, by="lead")
    assert not inspection_detail(db, r.uid).row.reviewed
    db.close()


def test_export_reviewed_history_as_deeppcb(db_url, make_recorder, tmp_path):
    rng = np.random.default_rng(0)
    ref = (rng.random((120, 160)) * 255).astype(np.uint8)
    rec = make_recorder(db_url)
    rec.start()
    rs = [make_result(i, classes=(2, 4), image=ref.copy(), reference=ref) for i in range(3)]
    rs.append(make_result(9, classes=(), image=ref.copy(), reference=ref))
    for r in rs:
        rec.submit(r)
    assert rec.flush(10)
    db = open_database(db_url)
    d0 = inspection_detail(db, rs[0].uid)
    review_defect(db, d0.defects[0].id, "confirmed", "qa")
    review_defect(db, d0.defects[1].id, "false_call", "qa")
    d1 = inspection_detail(db, rs[1].uid)
    review_defect(db, d1.defects[0].id, "confirmed", "qa")
    review_defect(db, d1.defects[1].id, "false_call", "qa")  # every detection judged: else the board is not exported
    add_missed_defect(db, d1.row.id, (50.4, 60.2, 70.6, 80.9), 6, "qa")
    add_missed_defect(db, inspection_detail(db, rs[3].uid).row.id, (1, 2, 20, 30), 1, "qa")  # an escape on a PASS
    out = tmp_path / "export"
    rep = export_dataset(db, tmp_path / "archive", out)
    assert (rep.boards, rep.annotations, rep.false_calls_dropped) == (3, 4, 2), rep
    pairs = {p.id: p for p in load_list(out)}  # the training loader reads it as DeepPCB
    assert len(pairs) == 3
    by_boxes = sorted((len(p.boxes), sorted(p.classes.tolist())) for p in pairs.values())
    assert by_boxes == [(1, [0]), (1, [1]), (2, [1, 5])]  # 0-based class indices
    p1 = next(p for p in pairs.values() if len(p.boxes) == 2)
    assert [50, 60, 71, 81] in p1.boxes.astype(int).tolist()
    assert len({p.group for p in pairs.values()}) == 1  # one recipe, one group (its number from the recipe name)
    with pytest.raises(ExportError, match="already holds"):
        export_dataset(db, tmp_path / "archive", out)
    db.close()


def test_damaged_archive_files_are_never_shown_or_exported_half_gray(sqlite_url, make_recorder, tmp_path):
    """A truncated archived image (a disk that filled or a card pulled mid-write) read leniently comes back with
    its missing part gray: the quality engineer would judge pixels nobody captured, and an export for retraining
    would label them. The review shows no image and the export skips the board, both saying why."""
    from inspector.storage.archive import read_crop
    from ui.records import Records

    rng = np.random.default_rng(1)
    ref = (rng.random((120, 160)) * 255).astype(np.uint8)
    rec = make_recorder(sqlite_url)
    rec.start()
    rs = [make_result(i, classes=(2,), image=ref.copy(), reference=ref) for i in range(2)]
    for r in rs:
        rec.submit(r)
    assert rec.flush(10)
    db = open_database(sqlite_url)
    for r in rs:
        review_defect(db, inspection_detail(db, r.uid).defects[0].id, "confirmed", "qa")
    damaged = inspection_detail(db, rs[0].uid)
    archive = tmp_path / "archive"
    thumb = archive / damaged.row.thumb_path  # a JPEG: OpenCV fills a truncated one with gray and says nothing
    thumb.write_bytes(thumb.read_bytes()[: thumb.stat().st_size * 2 // 3])
    image = archive / damaged.row.image_path  # a PNG whose header was hit: OpenCV raises on it
    raw = bytearray(image.read_bytes())
    raw[16:24] = (100000).to_bytes(4, "big") * 2
    image.write_bytes(bytes(raw))
    crop_file = archive / damaged.defects[0].crop_path.partition("#")[0]
    crop_file.write_bytes(bytes(raw))

    assert Records(db, archive).image(damaged.row.thumb_path) is None
    assert Records(db, archive).image(damaged.row.image_path) is None
    assert Records(db, archive).image(inspection_detail(db, rs[1].uid).row.thumb_path) is not None
    assert read_crop(archive, damaged.defects[0].crop_path) is None
    rep = export_dataset(db, archive, tmp_path / "export")
    assert (rep.boards, rep.skipped_no_image) == (1, 1), rep
    db.close()


def _review_worker(url: str, defect_ids: list[int], verdict: str, who: str, barrier) -> None:
    from inspector.storage import open_database, review_defect

    db = open_database(url, migrate=False)
    try:
        for did in defect_ids:
            barrier.wait(30)
            review_defect(db, did, verdict, who)
    finally:
        db.close()


def test_two_reviewers_at_once_leave_one_review_per_defect(db_url, make_recorder):
    """The desk UI and the line UI judge the same defect at the same moment (two processes, released together 15
    times per defect). Reading before writing, both deleted the older review and added theirs: every defect kept two
    rows for good and the false-call rate counted each twice. The later review must supersede the earlier."""
    import multiprocessing as mp

    from sqlalchemy import func

    from inspector.storage.models import Review

    rec = make_recorder(db_url, archive="none")
    rec.start()
    for i in range(3):
        rec.submit(make_result(i, classes=(1, 2)))
    assert rec.flush(30)
    rec.stop()
    from inspector.storage import history, review_stats

    db = open_database(db_url)
    ids = [d.id for r in history(db).rows for d in inspection_detail(db, r.id).defects]
    db.close()
    assert len(ids) == 6
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(2)
    workers = [
        ctx.Process(target=_review_worker, args=(db_url, ids * 15, verdict, who, barrier))
        for verdict, who in (("confirmed", "alice"), ("false_call", "bob"))
    ]
    for w in workers:
        w.start()
    for w in workers:
        w.join(240)
    assert [w.exitcode for w in workers] == [0, 0]
    db = open_database(db_url)
    try:
        with db.session() as s:
            per_defect = dict(
                s.execute(
                    select(Review.defect_id, func.count(Review.id))
                    .where(Review.defect_id.isnot(None))
                    .group_by(Review.defect_id)
                ).all()
            )
        assert per_defect == {i: 1 for i in ids}, per_defect
        stats = review_stats(db)
        assert stats.defects_reviewed == 6 and stats.confirmed + stats.false_calls == 6
    finally:
        db.close()


def test_a_reexport_keeps_every_held_out_board_held_out(sqlite_url, make_recorder, tmp_path):
    """Groups were numbered by the order recipes came up, and the held-out boards were the first n by hash rank:
    re-exporting one recipe (or after retention removed another's boards) renumbered its boards and moved 4 of 4 of
    its validation boards into training. A board's side must not depend on what else is exported."""
    from inspector.datasets.deeppcb import HELD_OUT_LIST, load_list
    from inspector.storage import HistoryFilter

    rng = np.random.default_rng(1)
    ref = (rng.random((96, 128)) * 255).astype(np.uint8)
    rec = make_recorder(sqlite_url)
    rec.start()
    results = [
        make_result(i, classes=(2,), image=ref.copy(), reference=ref, recipe="beta" if i % 2 else "alpha")
        for i in range(40)
    ]
    for r in results:
        rec.submit(r)
    assert rec.flush(30)
    rec.stop()
    db = open_database(sqlite_url)
    try:
        for r in results:
            review_defect(db, inspection_detail(db, r.uid).defects[0].id, "confirmed", "qa")
        export_dataset(db, tmp_path / "archive", tmp_path / "all")
        export_dataset(db, tmp_path / "archive", tmp_path / "beta", HistoryFilter(recipe="beta"))
    finally:
        db.close()

    def sides(folder):
        held = {p.id for p in load_list(folder, folder / HELD_OUT_LIST)}
        return {p.id: p.id in held for p in load_list(folder)}

    everything, beta = sides(tmp_path / "all"), sides(tmp_path / "beta")
    assert len(beta) == 20 and set(beta) <= set(everything)  # the same names for the same boards
    assert {b: everything[b] for b in beta} == beta
    assert 0 < sum(beta.values()) < 20 and 0 < sum(everything.values()) < 40


def test_a_boards_held_out_side_does_not_depend_on_the_other_boards():
    from inspector.datasets.deeppcb import BoardPair, split_by_board

    def pairs(group, n):
        return [
            BoardPair(f"{group}{i:08d}", group, Path("a"), Path("b"), None, np.zeros((0, 4)), np.zeros(0))
            for i in range(n)
        ]

    small = pairs("93412", 30)
    _, held_small = split_by_board(small)
    _, held_big = split_by_board(small + pairs("95555", 70))
    assert {p.id for p in held_small} == {p.id for p in held_big if p.group == "93412"}
    assert 0 < len(held_small) < 30


def test_a_board_with_a_detection_nobody_judged_is_not_exported_as_background(sqlite_url, make_recorder, tmp_path):
    """One of two detections confirmed, the reviewer called away: the board was 'reviewed' and exported with the other
    detection as background. Now it stays unreviewed; and a board an older version flagged reviewed that way is left
    out of the export and counted, never written with a label file that omits a real detection."""
    from sqlalchemy import update

    from inspector.storage.models import Inspection

    rng = np.random.default_rng(2)
    ref = (rng.random((96, 128)) * 255).astype(np.uint8)
    rec = make_recorder(sqlite_url)
    rec.start()
    rs = [make_result(i, classes=(2, 4), image=ref.copy(), reference=ref) for i in range(2)]
    for r in rs:
        rec.submit(r)
    assert rec.flush(30)
    rec.stop()
    db = open_database(sqlite_url)
    try:
        d0, d1 = (inspection_detail(db, r.uid) for r in rs)
        review_defect(db, d0.defects[0].id, "confirmed", "qa")
        assert not inspection_detail(db, rs[0].uid).row.reviewed
        review_defect(db, d1.defects[0].id, "confirmed", "qa")
        review_defect(db, d1.defects[1].id, "false_call", "qa")
        assert inspection_detail(db, rs[1].uid).row.reviewed
        with db.session() as s, s.begin():  # what an older version stored for the partly judged board
            s.execute(update(Inspection).where(Inspection.id == d0.row.id).values(reviewed=True))
        rep = export_dataset(db, tmp_path / "archive", tmp_path / "out")
    finally:
        db.close()
    assert (rep.boards, rep.skipped_unjudged, rep.annotations) == (1, 1, 1), rep
    assert not list((tmp_path / "out").rglob(f"*{d0.row.id:08d}.txt"))
