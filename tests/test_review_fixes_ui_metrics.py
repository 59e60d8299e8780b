"""Alarms that stay acknowledged, the last active admin, and serial rejects in the metrics.

Real `Health`, real Qt models and widgets, a real records database (SQLite, and PostgreSQL where the
server binaries are installed), the real metrics registry.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from storage.conftest import db_url, pg_cluster  # noqa: F401  (fixtures: SQLite and PostgreSQL)

from inspector.domain import Detection, InspectionResult, Verdict
from inspector.health import Health
from inspector.storage import (
    RecordError,
    audit_events,
    create_user,
    has_admin,
    list_users,
    open_database,
    set_active,
    set_role,
)

pytest.importorskip("PySide6")


# ------------------------------------------------------------------ alarms
def _alarms():
    from ui.alarms import AlarmModel

    health, alarms = Health(), AlarmModel()
    health.subscribe(alarms.on_health)
    return health, alarms


def test_acknowledged_alarm_stays_acknowledged_while_its_fault_lasts(qapp):
    """Another lamp's OK (the database after every write) must not bring back an acknowledged fault."""
    h, alarms = _alarms()
    h.ok("registration", "quality 0.93")
    h.ok("database", "sqlite, 10 written")
    h.fail("registration", "3 boards in a row: board not registered to the reference")
    assert [a.component for a in alarms.unacknowledged] == ["registration"]
    assert len(alarms.acknowledge_all("op")) == 1

    for n in range(4, 8):  # the fault goes on, its wording changes, the database lamp reports each write
        h.ok("database", f"sqlite, {n + 7} written")
        h.fail("registration", f"{n} boards in a row: board not registered to the reference")
        assert alarms.unacknowledged == [], n
    (still,) = alarms.alarms  # kept (its lamp stays red), acknowledged, with the latest wording
    assert still.active and still.acknowledged_by == "op" and still.reason.startswith("7 boards")

    h.ok("registration", "quality 0.95")  # its own component recovers: the acknowledged alarm goes
    assert alarms.alarms == []
    h.fail("registration", "3 boards in a row: board not registered to the reference")  # a new fault
    assert [a.component for a in alarms.unacknowledged] == ["registration"]


def test_ok_report_keeps_other_components_alarms(qapp):
    """An unacknowledged alarm that cleared stays until seen; another component's OK changes nothing."""
    h, alarms = _alarms()
    for name in ("camera", "plc", "database"):
        h.ok(name, "fine")
    h.fail("camera", "lost")
    h.fail("plc", "down")
    alarms.acknowledge_all("op")
    h.ok("camera", "back")  # camera cleared: its acknowledged alarm goes, the PLC's stays
    assert [(a.component, a.active) for a in alarms.alarms] == [("plc", True)]
    h.fail("database", "disk full")
    h.ok("database", "fine")  # cleared before anybody saw it: stays, unacknowledged, not active
    assert [(a.component, a.active) for a in alarms.unacknowledged] == [("database", False)]
    h.fail("plc", "down: reconnect 2")
    assert [a.component for a in alarms.unacknowledged] == ["database"]


# ------------------------------------------------------------------ the last admin
def test_records_refuse_to_leave_no_active_admin(db_url):  # noqa: F811
    db = open_database(db_url)
    create_user(db, "ada", "admin", "4711", by="setup")
    create_user(db, "op1", "operator", "1234", by="ada")
    create_user(db, "old", "admin", "4711", by="ada")
    set_active(db, "old", False, by="ada")  # a disabled admin does not count

    with pytest.raises(RecordError, match="last active admin"):
        set_role(db, "ada", "operator", by="ada")
    with pytest.raises(RecordError, match="last active admin"):
        set_active(db, "ada", False, by="ada")
    assert has_admin(db)
    assert {u.username: (u.role, u.active) for u in list_users(db)}["ada"] == ("admin", True)
    assert not any(e.action in ("user.role", "user.active") and e.target == "user ada" for e in audit_events(db))

    set_role(db, "op1", "admin", by="ada")  # a second active admin: now either may step down
    set_role(db, "ada", "engineer", by="op1")
    with pytest.raises(RecordError, match="last active admin"):
        set_active(db, "op1", False, by="op1")
    set_active(db, "old", True, by="op1")  # re-enabling is always allowed
    set_active(db, "op1", False, by="old")
    set_role(db, "ada", "engineer", by="old")  # no change of an admin's count: allowed
    assert [u.username for u in list_users(db) if u.role == "admin" and u.active] == ["old"]
    db.close()


def _users_screen(qapp, tmp_path, second: tuple[str, str, str]):
    """A real records database with admin 'boss' (PIN 9999) and `second` (name, role, PIN), boss logged in, and
    the users screen showing them."""
    from inspector.config import StationConfig
    from ui.auth import Session
    from ui.records import Records
    from ui.users_screen import UsersScreen

    cfg = StationConfig()
    cfg.storage.database_url = f"sqlite:///{tmp_path / 'inspections.db'}"
    cfg.storage.archive_dir = tmp_path / "archive"
    cfg.storage.spool_dir = tmp_path / "spool"
    rec = Records.open(cfg)
    rec.create_user("boss", "admin", "9999", by="first-start")
    rec.create_user(*second, by="boss")
    session = Session(rec.authenticate)
    session.login("boss", "9999")
    scr = UsersScreen(rec, session)
    scr.refresh()
    scr.worker.wait_idle()
    qapp.processEvents()
    return rec, session, scr


def test_users_screen_shows_the_refusal(qapp, tmp_path):
    rec, _session, scr = _users_screen(qapp, tmp_path, ("op", "operator", "1111"))
    outcomes: list[bool] = []
    scr.changed.connect(outcomes.append)

    scr.list.setCurrentRow([u.username for u in scr.users].index("boss"))
    scr.role.setCurrentIndex(scr.role.findData("operator"))
    assert scr.change_role()
    scr.worker.wait_idle()
    qapp.processEvents()
    assert outcomes == [False]
    assert "last active admin" in scr.message.text() and "boss" in scr.message.text()
    assert scr.role_button.isEnabled() and scr.add_button.isEnabled()
    assert rec.has_admin() and {u.username: u.role for u in rec.users()}["boss"] == "admin"
    rec.close()


def test_an_admin_changing_their_own_role_is_logged_out(qapp, tmp_path):
    """The session's rights were read at login: an admin who made themselves engineer kept managing users until
    they logged out. The session ends with the change; the next login has the new role."""
    from ui.auth import Permission

    rec, session, scr = _users_screen(qapp, tmp_path, ("ada", "admin", "4711"))
    scr.list.setCurrentRow([u.username for u in scr.users].index("boss"))
    scr.role.setCurrentIndex(scr.role.findData("engineer"))
    assert scr.change_role()
    scr.worker.wait_idle()
    qapp.processEvents()
    assert session.user is None, "the session with the old rights ended"
    again = session.login("boss", "9999")
    assert again.role.value == "engineer" and not session.can(Permission.MANAGE_USERS)
    rec.close()


# ------------------------------------------------------------------ serial rejects in the metrics
def _samples(m) -> dict[str, dict[str, float]]:
    from prometheus_client import generate_latest

    out: dict[str, dict[str, float]] = {}
    for line in generate_latest(m.registry).decode().splitlines():
        hit = re.match(r"^(\w+)(\{.*\})?\s+(\S+)$", line)
        if hit and not line.startswith("#"):
            out.setdefault(hit.group(1), {})[hit.group(2) or ""] = float(hit.group(3))
    return out


def test_serial_rejects_are_not_fail_safe():
    """A board rejected for its code was inspected: not a camera or model fault, so not fail-safe."""
    from inspector.board_serial import CODE_UNREADABLE, SERIAL_MISMATCH
    from inspector.metrics import SERIAL_REJECT_CAUSES, StationMetrics

    m = StationMetrics("st", Health(), thermal_root=Path("/nonexistent"))
    start = _samples(m)
    for cause in SERIAL_REJECT_CAUSES:  # exported from the start: rate() needs the zero
        assert start["pcb_serial_rejects_total"][f'{{cause="{cause}",station="st"}}'] == 0.0
    for i in range(3):
        m.submit(
            InspectionResult(
                i, "demo", Verdict.REJECT, [], {"total": 30.0, "inspect": 25.0}, "m@1",
                reason=f"{SERIAL_MISMATCH}: code 'SN0002', PLC 'SN0001'", board_serial="SN0002",
            )
        )  # fmt: skip
    m.submit(InspectionResult(9, "demo", Verdict.REJECT, [], {"total": 30.0}, "m@1", reason=f"{CODE_UNREADABLE}: no"))
    defect = [Detection((0, 0, 5, 5), 2, 0.9)]  # a defect and a wrong code: counted under the defect's class
    m.submit(InspectionResult(10, "demo", Verdict.REJECT, defect, {}, "m@1", reason=f"{SERIAL_MISMATCH}: x"))
    m.submit(InspectionResult.failed("no frame: timeout after 2.0 s"))

    s = _samples(m)
    assert sum(s["pcb_fail_safe_rejects_total"].values()) == 1
    assert s["pcb_fail_safe_rejects_total"]['{cause="camera",station="st"}'] == 1
    rejects = s["pcb_rejects_total"]
    assert rejects['{class="serial",station="st"}'] == 4
    assert rejects['{class="fail_safe",station="st"}'] == 1
    assert sum(rejects.values()) == s["pcb_boards_total"]['{station="st",verdict="REJECT"}'] == 6
    serial = s["pcb_serial_rejects_total"]
    assert serial['{cause="mismatch",station="st"}'] == 4 and serial['{cause="unreadable",station="st"}'] == 1
