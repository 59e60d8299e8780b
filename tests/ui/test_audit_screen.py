"""The Audit screen (engineers and admins) and the login lock-out that survives a restart.

Real parts: the records database is a real SQLite file with the real signed audit chain; the
screen is rendered offscreen in English and Simplified Chinese and saved for a person to look at.
"""

from __future__ import annotations

import sqlite3

import pytest

from ui import i18n
from ui.auth import LoginFailed, Permission, Role, Session, User
from ui.records import Records

from .conftest import save_shot, wait_until


@pytest.fixture
def records(records_cfg):
    r = Records.open(records_cfg)
    r.create_user("ada", "admin", "9999", by="first-start")
    r.create_user("eve", "engineer", "2222", by="ada")
    r.create_user("olu", "operator", "1111", by="ada")
    r.set_role("olu", "engineer", by="ada")
    yield r
    r.close()


def test_lockout_survives_a_restart(records, records_cfg):
    s1 = Session(records.authenticate, 300, audit=records.audit, lockout=records.lockout_store())
    for _ in range(Session.MAX_FAILURES - 1):
        with pytest.raises(LoginFailed, match="wrong PIN"):
            s1.login("olu", "0000")
    # Restart: a new process opens the same database; one more guess locks the screen.
    records.close()
    again = Records.open(records_cfg)
    try:
        s2 = Session(again.authenticate, 300, audit=again.audit, lockout=again.lockout_store())
        with pytest.raises(LoginFailed, match="wrong PIN"):
            s2.login("olu", "0000")
        with pytest.raises(LoginFailed, match="too many failed attempts"):
            s2.login("olu", "1111")  # even the right PIN waits
        # Restart again while locked: still locked.
        s3 = Session(again.authenticate, 300, audit=again.audit, lockout=again.lockout_store())
        with pytest.raises(LoginFailed, match="too many failed attempts"):
            s3.login("olu", "1111")
        actions = [e.action for e in again.audit_events(50)]
        assert actions.count("login_failed") == Session.MAX_FAILURES and "login_lockout" in actions
        sources = {e.source for e in again.audit_events(50) if e.action.startswith("login")}
        assert sources == {"ui"}
        # The lock-out row is in the database, not in process memory.
        path = records_cfg.storage.database_url.removeprefix("sqlite:///")
        row = sqlite3.connect(path).execute("SELECT failures, locked_until FROM login_lockouts").fetchone()
        assert row[0] == 0 and row[1] is not None
        assert again.verify_audit().ok
    finally:
        again.close()


def test_audit_screen_filters_verifies_and_translates(qtbot, ui_app, records, tmp_path):
    from ui.audit_screen import AuditScreen

    session = Session(records.authenticate, 300, audit=records.audit)
    scr = AuditScreen(records, session)
    qtbot.addWidget(scr)
    scr.resize(1280, 720)
    scr.show()
    assert not session.can(Permission.VIEW_AUDIT)
    assert User("x", Role.OPERATOR).can(Permission.VIEW_AUDIT) is False
    session.login("eve", "2222")
    with qtbot.waitSignal(scr.loaded, timeout=10000):
        scr.enter()
    wait_until(qtbot, lambda: scr.user.count() > 1)
    shown = {(scr.table.item(i, 1).text(), scr.table.item(i, 3).text()) for i in range(scr.table.rowCount())}
    assert {("ada", "user.create"), ("ada", "user.role"), ("eve", "login")} <= shown
    # Filter: user ada, action family "user".
    scr.user.setCurrentIndex(scr.user.findData("ada"))
    scr.action.setCurrentIndex(scr.action.findData("user"))
    assert scr.action.currentText() == "user.*"
    with qtbot.waitSignal(scr.loaded, timeout=10000) as blocker:
        scr.refresh()
    assert blocker.args == [3]
    rows = [[scr.table.item(i, c).text() for c in range(7)] for i in range(scr.table.rowCount())]
    assert [r[3] for r in rows] == ["user.role", "user.create", "user.create"]
    assert rows[0][5] == '{"role": "operator"}' and rows[0][6] == '{"role": "engineer"}'
    with qtbot.waitSignal(scr.verified, timeout=10000) as v:
        scr.verify()
    assert v.args == [True] and "intact" in scr.chain.text()
    out = tmp_path / "audit.csv"
    with qtbot.waitSignal(scr.exported, timeout=10000) as ex:
        scr.export_to_background(out)
    assert ex.args == [3] and out.read_text(encoding="utf-8").count("user.") == 3
    save_shot(scr, "audit_en_1280x720")
    i18n.set_language("zh_CN")
    wait_until(qtbot, lambda: scr.verify_button.text() == "校验审计链")
    assert scr.table.horizontalHeaderItem(1).text() == "用户"
    assert scr.user.itemText(0) == "所有用户" and scr.action.currentText() == "user.*"
    save_shot(scr, "audit_zh_CN_1280x720")
    # Tampering is visible on the screen too.
    path = records.db.url.removeprefix("sqlite:///")
    con = sqlite3.connect(path)
    con.execute("UPDATE audit_events SET who = 'mallory' WHERE action = 'user.role'")
    con.commit()
    con.close()
    with qtbot.waitSignal(scr.verified, timeout=10000) as v:
        scr.verify()
    assert v.args == [False] and "user.role by mallory" in scr.chain.text()


def test_a_wrong_pin_is_stored_on_the_database_worker_not_the_gui_thread(ui_app, ui_station_cfg, monkeypatch):
    """The station's login screen (built by the real UI start-up) writes the failure count off the GUI thread, in
    order: after five wrong PINs the database holds the lock-out, and a restart is still locked."""
    import threading

    from ui import records as records_module
    from ui.session_setup import UiRuntime
    from ui.worker import shared_worker

    writers: list[threading.Thread] = []
    real_save = records_module._LockoutStore.save

    def save(self, failures, locked_until):
        writers.append(threading.current_thread())
        real_save(self, failures, locked_until)

    monkeypatch.setattr(records_module._LockoutStore, "save", save)
    rt = UiRuntime.create(ui_station_cfg)
    try:
        for _ in range(Session.MAX_FAILURES):
            with pytest.raises(LoginFailed, match="wrong PIN"):
                rt.session.login("op", "0000")
        assert shared_worker().wait_idle()
        assert len(writers) == Session.MAX_FAILURES
        assert threading.main_thread() not in writers
    finally:
        rt.close()
    path = ui_station_cfg.storage.database_url.removeprefix("sqlite:///")
    row = sqlite3.connect(path).execute("SELECT failures, locked_until FROM login_lockouts").fetchone()
    assert row[0] == 0 and row[1] is not None, row
    again = Records.open(ui_station_cfg)
    try:
        with pytest.raises(LoginFailed, match="too many failed attempts"):
            Session(again.authenticate, 300, lockout=again.lockout_store()).login("op", "1111")
    finally:
        again.close()
