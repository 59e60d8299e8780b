"""The audit trail and the signed records, as an auditor would try to break them.

- One real headless run (`pcb-inspector run --headless` in a subprocess, temp SQLite): `audit verify`
  and `db verify` pass; then a row deleted or edited with the plain sqlite3 module makes them exit 1
  naming the event / inspection.
- The chain on SQLite and PostgreSQL: two "processes" (two Database objects) appending in turn chain
  onto each other; an edit, a deletion in the middle or at the end, and a row inserted outside the
  chain are each reported; legacy (pre-chain) events are sealed and accepted only before signing.
- The station key: created 0600, a readable-by-others or garbage key is a clear error naming the file.
- `audit export --csv` writes the filtered events with their chain fields; rotation keeps old events valid.
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from inspector import station_key
from inspector.cli import main
from inspector.storage import audit
from inspector.storage.db import open_database
from inspector.storage.records import create_user, set_role

from .conftest import make_result, wait_for


def cli_subprocess(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    """The console script as a user runs it (a fresh process)."""
    code = "import sys; from inspector.cli import main; sys.exit(main())"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=timeout)


def cli(*args: str) -> subprocess.CompletedProcess:
    """The same entry point in this process (the read-only commands; saves an interpreter start each)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(list(args))
    return subprocess.CompletedProcess(list(args), rc, out.getvalue(), err.getvalue())


@pytest.fixture(scope="module")
def headless_run(tmp_path_factory, demo_boards) -> Path:
    """A station that ran 4 boards through the real CLI; returns its folder (config, db, key)."""
    d = tmp_path_factory.mktemp("station")
    cfg = d / "station.toml"
    cfg.write_text(
        '[detector]\nengine = "classical"\n[plc]\nmode = "off"\n[storage]\n'
        f'database_url = "sqlite:///{d}/records.db"\narchive_dir = "{d}/archive"\nspool_dir = "{d}/spool"\n'
    )
    r = cli_subprocess(
        "run", "--headless", "--config", str(cfg), "--camera", f"replay:{demo_boards}@50fps", "--boards", "4"
    )
    assert r.returncode == 0, r.stderr
    return d


def _copy(src: Path, tmp: Path) -> tuple[Path, Path]:
    """A copy of the run's station (database + key + config) to tamper with."""
    dst = tmp / "copy"
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("archive"))
    cfg = dst / "station.toml"
    cfg.write_text(cfg.read_text().replace(str(src), str(dst)))
    return dst, cfg


def test_headless_run_verifies_then_tampering_is_named(headless_run, tmp_path):
    d, cfg = _copy(headless_run, tmp_path)
    key = d / "station.key"
    assert key.stat().st_mode & 0o777 == 0o600
    r = cli("audit", "verify", "--config", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "chain intact" in r.stdout and "2 signatures valid" in r.stdout  # station.start, station.stop
    r = cli("db", "verify", "--config", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "4 signatures valid" in r.stdout or "signatures valid" in r.stdout
    con = sqlite3.connect(d / "records.db")
    n_rows = con.execute("SELECT count(*) FROM inspections WHERE signature IS NOT NULL").fetchone()[0]
    assert n_rows >= 4
    assert f"{n_rows} signatures valid" in r.stdout
    # Edit one inspection's verdict (and another's defect score) with plain sqlite3.
    iid, uid, verdict = con.execute("SELECT id, uid, verdict FROM inspections ORDER BY id LIMIT 1").fetchone()
    con.execute("UPDATE inspections SET verdict = ? WHERE id = ?", ("PASS" if verdict == "REJECT" else "REJECT", iid))
    did, diid = con.execute("SELECT id, inspection_id FROM defects ORDER BY id LIMIT 1").fetchone()
    con.execute("UPDATE defects SET score = 0.01 WHERE id = ?", (did,))
    # Edit the first audit event's user, and delete nothing yet.
    con.execute("UPDATE audit_events SET who = 'mallory' WHERE seq = 1")
    con.commit()
    r = cli("db", "verify", "--config", str(cfg))
    assert r.returncode == 1, r.stdout
    assert f"inspection id {iid} (uid {uid}" in r.stdout and "changed after it was recorded" in r.stdout
    assert f"inspection id {diid} " in r.stdout
    assert "2 FAILED" in r.stdout or diid == iid
    r = cli("audit", "verify", "--config", str(cfg))
    assert r.returncode == 1
    assert "event seq 1 (id 1, station.start by mallory" in r.stdout and "was edited" in r.stdout
    # Put the user back, delete the last event (station.stop): missing from the end.
    con.execute("UPDATE audit_events SET who = 'station' WHERE seq = 1")
    con.execute("DELETE FROM audit_events WHERE seq = 2")
    con.commit()
    r = cli("audit", "verify", "--config", str(cfg))
    assert r.returncode == 1
    assert "audit events seq 2..2 missing (deleted from the end" in r.stdout, r.stdout
    con.close()


def test_deleting_an_audit_row_in_the_middle_is_named(headless_run, tmp_path):
    d, cfg = _copy(headless_run, tmp_path)
    # A second start adds station.start/stop after the first two: 4 events, then the 2nd is deleted.
    db = open_database(f"sqlite:///{d / 'records.db'}", station_key=station_key.load(d / "station.key"))
    audit.append(db, "qe1", "recipe.edit", "demo", {"min_score": 0.5}, {"min_score": 0.6}, source="ui")
    audit.append(db, "qe1", "recipe.edit", "demo", {"min_score": 0.6}, {"min_score": 0.7}, source="ui")
    db.close()
    assert cli("audit", "verify", "--config", str(cfg)).returncode == 0
    con = sqlite3.connect(d / "records.db")
    con.execute("DELETE FROM audit_events WHERE seq = 2")
    con.commit()
    con.close()
    r = cli("audit", "verify", "--config", str(cfg))
    assert r.returncode == 1
    first = r.stdout.splitlines()[1]
    assert "audit event seq 2 missing (deleted) before event seq 3" in first, r.stdout


def test_audit_list_and_export_csv(headless_run, tmp_path):
    d, cfg = _copy(headless_run, tmp_path)
    db = open_database(f"sqlite:///{d / 'records.db'}", station_key=station_key.load(d / "station.key"))
    db.audit_source = "ui"
    create_user(db, "ann", "engineer", "1234", by="admin")
    set_role(db, "ann", "admin", by="boss")
    audit.append(db, "plc", "recipe.switch", "recipe id 2", {"recipe": "demo"}, {"recipe_id": 2}, source="plc")
    db.close()
    out = tmp_path / "audit.csv"
    r = cli("audit", "export", "--config", str(cfg), "--csv", str(out), "--action", "user")
    assert r.returncode == 0, r.stderr
    assert "2 event(s) written" in r.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [(x["who"], x["action"], x["target"], x["source"]) for x in rows] == [
        ("admin", "user.create", "user ann", "ui"),
        ("boss", "user.role", "user ann", "ui"),
    ]
    assert json.loads(rows[1]["before"]) == {"role": "engineer"} and json.loads(rows[1]["after"]) == {"role": "admin"}
    assert rows[1]["prev_hash"] == rows[0]["hash"] and len(rows[1]["signature"]) == 88
    # Each exported row's hash can be recomputed from the exported fields (checkable away from the station).
    for x in rows:
        content = audit.event_content(
            station_id=x["station_id"],
            seq=int(x["seq"]),
            at=__import__("datetime").datetime.fromisoformat(x["at"]),
            who=x["who"],
            source=x["source"],
            action=x["action"],
            target=x["target"],
            before=json.loads(x["before"]) if x["before"] else None,
            after=json.loads(x["after"]) if x["after"] else None,
            prev_hash=x["prev_hash"],
        )
        assert audit.event_hash(content) == x["hash"]
    r = cli("audit", "list", "--config", str(cfg), "--user", "plc", "--json")
    assert r.returncode == 0, r.stderr
    listed = [json.loads(line) for line in r.stdout.splitlines()]
    assert [(e["action"], e["source"], e["after"]) for e in listed] == [("recipe.switch", "plc", {"recipe_id": 2})]
    r = cli("audit", "list", "--config", str(cfg), "--since", "2d", "--until", "2000-01-01")
    assert r.returncode == 0 and r.stdout == ""


def test_chain_two_writers_and_tampering_on_both_backends(db_url, tmp_path):
    key = station_key.load_or_create(tmp_path / "keys" / "station.key")
    a = open_database(db_url, station_id="st-9", station_key=key)
    b = open_database(db_url, station_id="st-9", station_key=key, migrate=False)
    try:
        ids = []
        for i in range(6):
            ids.append(audit.append(a if i % 2 else b, f"u{i}", "recipe.edit", "demo", {"v": i}, {"v": i + 1}))
        rep = audit.verify(a, key.verifier())
        assert rep.ok and rep.checked == 6 and rep.signed == 6, rep.problems
        with a.engine.begin() as c:
            c.execute(text("UPDATE audit_events SET after = :v WHERE id = :id"), {"v": '{"v": 99}', "id": ids[2]})
        rep = audit.verify(a, key.verifier())
        assert rep.problems == [
            f"event seq 3 (id {ids[2]}, recipe.edit by u2 at {_at(a, ids[2])}) was edited: "
            "its content does not match its hash"
        ]
        with a.engine.begin() as c:
            c.execute(text("DELETE FROM audit_events WHERE id = :id"), {"id": ids[2]})
            c.execute(
                text(
                    "INSERT INTO audit_events (at, station_id, who, action, target, source) "
                    "VALUES (:at, 'st-9', 'mallory', 'user.create', 'x', '')"
                ),
                {"at": "2026-01-01 00:00:00"},
            )
        rep = audit.verify(a, key.verifier())
        assert rep.problems[0].startswith("audit event seq 3 missing (deleted) before event seq 4")
        assert any("is outside the chain (added to the table directly)" in p for p in rep.problems)
        # A key that is not the station's: every signature is foreign.
        other = station_key.create(tmp_path / "other.key")
        rep = audit.verify(a, other.verifier())
        assert any("signed by unknown key" in p for p in rep.problems)
    finally:
        a.close()
        b.close()


def _at(db, event_id: int) -> str:
    from inspector.storage.models import AuditEvent

    with db.session() as s:
        return f"{s.get(AuditEvent, event_id).at:%Y-%m-%d %H:%M:%S}"


def test_legacy_events_are_sealed_and_unsigned_ones_after_signing_are_not(sqlite_url, tmp_path):
    from inspector.storage.db import create_db_engine, upgrade

    eng = create_db_engine(sqlite_url)
    upgrade(eng, "0002")
    with eng.begin() as c:
        for who in ("old1", "old2"):
            c.execute(
                text(
                    "INSERT INTO audit_events (at, station_id, who, action, target) VALUES "
                    "('2025-01-01 00:00:00', 'station-1', :w, 'user.create', 'x')"
                ),
                {"w": who},
            )
    eng.dispose()
    key = station_key.load_or_create(tmp_path / "station.key")
    db = open_database(sqlite_url, station_key=key)
    try:
        audit.append(db, "admin", "user.create", "user z", None, {"role": "operator"})
        rep = audit.verify(db, key.verifier())
        assert rep.ok and rep.legacy_unsigned == 2 and rep.signed == 1, rep.problems
        db.station_key = None  # a writer without the key: chained, but not signed
        audit.append(db, "ghost", "user.create", "user y", None, {"role": "admin"})
        rep = audit.verify(db, key.verifier())
        assert len(rep.problems) == 1 and "event seq 4" in rep.problems[0] and "not signed" in rep.problems[0]
    finally:
        db.close()


def test_station_key_errors_name_the_file(tmp_path, demo_boards):
    k = station_key.load_or_create(tmp_path / "station.key")
    assert (tmp_path / "station.key").stat().st_mode & 0o777 == 0o600
    assert station_key.load_or_create(tmp_path / "station.key").key_id == k.key_id  # reused, never replaced
    (tmp_path / "station.key").chmod(0o644)
    with pytest.raises(station_key.StationKeyError, match=r"station\.key is readable by other users"):
        station_key.load(tmp_path / "station.key")
    bad = tmp_path / "bad" / "station.key"
    bad.parent.mkdir()
    bad.write_text("not a key")
    bad.chmod(0o600)
    cfg = tmp_path / "st.toml"
    cfg.write_text(
        '[detector]\nengine = "classical"\n[plc]\nmode = "off"\n[storage]\n'
        f'database_url = "sqlite:///{tmp_path}/r.db"\nstation_key = "{bad}"\n'
    )
    r = cli_subprocess(
        "run", "--headless", "--config", str(cfg), "--camera", f"replay:{demo_boards}@50fps", "--boards", "1"
    )
    assert r.returncode == 2
    assert f"error: station key {bad}: not a PEM private key" in r.stderr and "Traceback" not in r.stderr


def test_rotation_keeps_old_events_and_records_valid(make_recorder, tmp_path):
    rec = make_recorder(f"sqlite:///{tmp_path / 'r.db'}")
    rec.start()
    rec.submit(make_result(1, classes=(2,)))
    assert rec.flush()
    rec.stop()
    path = rec.settings.key_path()
    old, new = station_key.rotate(path)
    assert old.key_id != new.key_id and (path.parent / "station-keys" / f"{old.key_id}.pub").exists()
    rec2 = make_recorder(f"sqlite:///{tmp_path / 'r.db'}")
    assert rec2.key.key_id == new.key_id
    rec2.start()
    rec2.submit(make_result(2))
    assert rec2.flush()
    assert wait_for(lambda: rec2.stats.written == 1, 5)
    rec2.stop()
    from inspector.storage.signed import verify_records

    db = open_database(f"sqlite:///{tmp_path / 'r.db'}")
    verifier = station_key.load(path).verifier()
    try:
        rep = audit.verify(db, verifier)
        assert rep.ok and rep.signed == 4, rep.problems  # start/stop under each key
        with db.engine.connect() as c:
            rrep = verify_records(c, verifier)
        assert rrep.ok and rrep.signed_ok == 2, rrep.problems
        # Without the retired key, the old key's events and record are reported.
        only_new = station_key.Verifier()
        only_new.add(new.public)
        assert not audit.verify(db, only_new).ok
    finally:
        db.close()


def test_config_change_seen_at_start_is_audited(make_recorder, tmp_path):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    first = {"station": {"id": "station-1"}, "storage": {"retention_days": 30.0, "archive": "all"}}
    rec = make_recorder(url, config=first)
    rec.start()
    rec.stop()
    rec = make_recorder(url, config=first)  # same configuration: no change event
    rec.start()
    rec.stop()
    second = {"station": {"id": "station-1"}, "storage": {"retention_days": 7.0, "archive": "all"}}
    rec = make_recorder(url, config=second)
    rec.start()
    rec.stop()
    db = open_database(url)
    try:
        events = list(reversed(audit.list_events(db, limit=None)))
        assert [e.action for e in events] == ["station.start", "station.stop"] * 2 + [
            "station.start",
            "config.change",
            "station.stop",
        ]
        change = events[5]
        assert change.source == "station"
        assert change.before["storage.retention_days"] == 30.0 and change.after["storage.retention_days"] == 7.0
        assert set(change.after) == {"config_sha256", "storage.retention_days"}
        assert change.after["config_sha256"] == events[4].after["config_sha256"] != events[0].after["config_sha256"]
        assert audit.verify(db, rec.key.verifier()).ok
    finally:
        db.close()


def test_retention_run_from_the_cli_is_audited(headless_run, tmp_path):
    d, cfg = _copy(headless_run, tmp_path)
    cfg.write_text(cfg.read_text() + "retention_days = 0.000001\nmin_free_mb = 0\nretention_min_days = 0\n")
    r = cli("db", "retention", "--config", str(cfg))
    assert r.returncode == 0, r.stdout + r.stderr
    r = cli("audit", "list", "--config", str(cfg), "--action", "retention", "--json")
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert len(events) == 1 and events[0]["source"] == "cli" and events[0]["after"]["deleted"] >= 4
    assert cli("audit", "verify", "--config", str(cfg)).returncode == 0


def test_station_retention_pass_is_audited(make_recorder, tmp_path):
    from .conftest import hours_ago

    url = f"sqlite:///{tmp_path / 'r.db'}"
    rec = make_recorder(url, retention_days=1.0, retention_min_days=0.0, retention_interval_s=0.1)
    rec.start()
    for i in range(5):
        rec.submit(make_result(i, when=hours_ago(48 + i)))  # two days old: past retention_days
    rec.submit(make_result(9))
    assert rec.flush()
    assert wait_for(lambda: rec.stats.retention_deleted == 5, 10)
    rec.stop()
    db = open_database(url)
    try:
        events = audit.list_events(db, audit.AuditFilter(action="retention"), limit=None)
        assert sum(e.after["deleted"] for e in events) == 5
        assert {(e.who, e.source, e.target) for e in events} == {("station", "station", "records")}
        assert audit.verify(db, rec.key.verifier()).ok
    finally:
        db.close()


def test_spooled_records_keep_their_signature_through_the_replay(make_recorder, tmp_path):
    from inspector.storage.signed import sign_record, verify_records
    from inspector.storage.spool import Spool
    from inspector.storage.writer import result_record

    url = f"sqlite:///{tmp_path / 'r.db'}"
    key = station_key.load_or_create(tmp_path / "station.key")  # the default path beside r.db
    records = [result_record(make_result(i, classes=(1, 3)), "station-1") for i in range(3)]
    for r in records:
        sign_record(r, key)
    Spool(tmp_path / "spool").write(records)  # as when the database was down
    rec = make_recorder(url)
    rec.start()
    assert wait_for(lambda: rec.stats.replayed == 3, 10)
    rec.stop()
    db = open_database(url)
    try:
        with db.engine.connect() as c:
            rep = verify_records(c, key.verifier())
        assert rep.ok and rep.signed_ok == 3, rep.problems
    finally:
        db.close()


def test_audit_export_writes_into_stdout_a_pipe_or_a_link_and_never_replaces_them(headless_run, tmp_path):
    """`--csv -`, a FIFO and a link to one are written into. The export renamed its `.part` file over whatever path it
    was given: over `/dev/stdout` it replaced the link (as root, a device node), and a pipe got nothing."""
    import os
    import stat
    import threading

    d, cfg = _copy(headless_run, tmp_path)
    r = cli_subprocess("audit", "export", "--config", str(cfg), "--csv", "-")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert rows and {x["action"] for x in rows} >= {"station.start"} and "written to stdout" in r.stderr

    fifo = tmp_path / "audit.fifo"
    os.mkfifo(fifo)
    link = tmp_path / "audit-link.csv"
    link.symlink_to(fifo)
    for target in (fifo, link):
        got: list[str] = []
        reader = threading.Thread(target=lambda got=got: got.append(fifo.read_text(encoding="utf-8")))
        reader.start()
        r = cli("audit", "export", "--config", str(cfg), "--csv", str(target))
        reader.join(30)
        assert r.returncode == 0, r.stderr
        assert list(csv.DictReader(io.StringIO(got[0]))) == rows
        assert stat.S_ISFIFO(fifo.stat().st_mode) and link.is_symlink()
    assert not list(tmp_path.glob("*.part"))
