"""History filters, reviews, roles and the recipe editor against a real SQLite records database."""

from __future__ import annotations

import csv

import pytest

from inspector.config import Recipe, StationConfig
from inspector.health import Health
from ui.auth import Permission, PermissionDenied, Role, Session

from .conftest import save_shot


def _session(records) -> Session:
    return Session(records.authenticate, 300, audit=records.audit)


def _loaded(qtbot, scr) -> None:
    """History pages arrive from the database worker; wait for the one just asked for."""
    qtbot.waitUntil(lambda: not scr.loading, timeout=10000)


def test_history_filters_return_the_right_rows(qtbot, ui_app, filled_records, tmp_path):
    from ui.history_screen import HistoryScreen

    records, results = filled_records
    scr = HistoryScreen(records, lambda: ["demo", "board-b"])
    qtbot.addWidget(scr)
    scr.resize(1280, 740)
    scr.period.setCurrentIndex(scr.period.findData("all"))
    scr.enter()
    _loaded(qtbot, scr)
    assert scr.total == 30 and len(scr.rows) == 30
    assert [r.board_serial for r in scr.rows] == [r.board_serial for r in reversed(results)]  # newest first
    save_shot(scr, "history_1280x800")

    scr.verdict.setCurrentIndex(scr.verdict.findData("REJECT"))
    scr.refresh()
    _loaded(qtbot, scr)
    assert {r.board_serial for r in scr.rows} == {r.board_serial for r in results if not r.passed}

    scr.defect_class.setCurrentIndex(scr.defect_class.findData("short"))
    scr.refresh()
    _loaded(qtbot, scr)
    want = {r.board_serial for r in results if any(d.class_id == 2 for d in r.detections)}
    assert want and {r.board_serial for r in scr.rows} == want

    scr.defect_class.setCurrentIndex(0)
    scr.verdict.setCurrentIndex(0)
    scr.recipe.setCurrentIndex(scr.recipe.findData("board-b"))
    scr.serial.setText("SN001*")
    scr.refresh()
    _loaded(qtbot, scr)
    want = {r.board_serial for r in results if r.recipe == "board-b" and r.board_serial.startswith("SN001")}
    assert {r.board_serial for r in scr.rows} == want

    # Unreviewed only: a reviewed board disappears from the list.
    scr.serial.setText("")
    scr.recipe.setCurrentIndex(0)
    scr.unreviewed.setChecked(True)
    scr.refresh()
    _loaded(qtbot, scr)
    first = scr.rows[0]
    for d in records.detail(first.id).defects:  # every detection judged: then the board is reviewed
        records.review_defect(d.id, "confirmed", "eng")
    scr.refresh()
    _loaded(qtbot, scr)
    assert first.id not in {r.id for r in scr.rows} and scr.total == 29

    # Keyset paging: pages do not overlap and cover everything.
    import ui.history_screen as hs

    old = hs.PAGE_SIZE
    hs.PAGE_SIZE = 7
    try:
        scr.unreviewed.setChecked(False)
        scr.refresh()
        _loaded(qtbot, scr)
        seen = [r.id for r in scr.rows]
        while scr.older.isEnabled():
            scr.older_page()
            _loaded(qtbot, scr)
            seen += [r.id for r in scr.rows]
        assert len(seen) == len(set(seen)) == 30
        scr.newer_page()
        _loaded(qtbot, scr)
        assert scr.page_index == 3
    finally:
        hs.PAGE_SIZE = old

    # CSV export writes every row of the filter, not only the page shown.
    scr.verdict.setCurrentIndex(scr.verdict.findData("PASS"))
    with qtbot.waitSignal(scr.exported, timeout=20000) as done:
        scr.start_export(tmp_path / "pass.csv")  # on the worker: the button waits for the file
        assert not scr.export_button.isEnabled()
    n = done.args[0]
    rows = list(csv.DictReader(open(tmp_path / "pass.csv", encoding="utf-8-sig")))  # with Excel's BOM
    assert n == len(rows) == sum(r.passed for r in results)
    assert {r["verdict"] for r in rows} == {"PASS"}
    assert scr.export_button.isEnabled() and str(n) in scr.status.text()
    # A folder that does not exist: the error is shown, the button comes back, nothing is half-written.
    with qtbot.waitSignal(scr.exported, timeout=20000) as failed:
        scr.start_export(tmp_path / "no-such-dir" / "x.csv")
    assert failed.args == [-1] and "failed" in scr.status.text() and scr.export_button.isEnabled()


def test_history_pages_walk_the_filter_shown_and_a_choice_applies_at_once(qtbot, ui_app, filled_records, monkeypatch):
    import ui.history_screen as hs

    records, results = filled_records
    monkeypatch.setattr(hs, "PAGE_SIZE", 7)
    scr = hs.HistoryScreen(records, lambda: ["demo", "board-b"])
    qtbot.addWidget(scr)
    scr.period.setCurrentIndex(scr.period.findData("all"))
    scr.enter()
    _loaded(qtbot, scr)
    newest_first = [r.board_serial for r in reversed(results)]
    assert [r.board_serial for r in scr.rows] == newest_first[:7] and scr.total == 30

    # A serial typed but not searched: Older shows the next page of what is listed, under the same count.
    scr.serial.setText("SN0001")
    scr.older_page()
    _loaded(qtbot, scr)
    assert [r.board_serial for r in scr.rows] == newest_first[7:14] and scr.total == 30
    scr.newer_page()
    _loaded(qtbot, scr)
    assert [r.board_serial for r in scr.rows] == newest_first[:7]

    # Choosing a verdict (the user's pick, as the list delivers it) searches at once, with the typed serial.
    scr.serial.setText("")
    i = scr.verdict.findData("REJECT")
    scr.verdict.setCurrentIndex(i)
    scr.verdict.activated.emit(i)
    _loaded(qtbot, scr)
    rejects = [s for s, r in zip(newest_first, reversed(results)) if not r.passed]
    assert [r.board_serial for r in scr.rows] == rejects[:7] and scr.total == len(rejects)
    scr.unreviewed.click()
    _loaded(qtbot, scr)
    assert scr.applied.reviewed is False


def test_history_and_review_show_the_plants_time_not_the_computers(qtbot, ui_app, records_cfg):
    """The plant is in Berlin, the PC on UTC: History listed a board of shift B (from 14:00 Berlin) at 13:00, and the
    charts counted it in another shift than the list showed."""
    from datetime import UTC, datetime

    from ui.history_screen import HistoryScreen
    from ui.records import Records
    from ui.review_screen import ReviewScreen

    from .conftest import board_results, record_boards

    records_cfg.storage.timezone = "Europe/Berlin"
    board = board_results(1)[0]
    board.timestamp = datetime(2026, 12, 6, 13, 0, 0, tzinfo=UTC)  # 14:00 in Berlin (CET, UTC+1)
    record_boards(records_cfg, [board])
    records = Records.open(records_cfg)
    try:
        scr = HistoryScreen(records, lambda: ["demo"])
        qtbot.addWidget(scr)
        scr.period.setCurrentIndex(scr.period.findData("all"))
        scr.enter()
        _loaded(qtbot, scr)
        assert scr.table.item(0, 0).text() == "2026-12-06 14:00:00"
        review = ReviewScreen(records, _session(records))
        qtbot.addWidget(review)
        with qtbot.waitSignal(review.loaded, timeout=10000):
            review.load(scr.rows[0].id)
        assert review.info.text().startswith("2026-12-06 14:00:00")
    finally:
        records.close()


def test_review_is_stored(qtbot, ui_app, filled_records):
    from ui.review_screen import ReviewScreen

    records, results = filled_records
    session = _session(records)
    scr = ReviewScreen(records, session)
    qtbot.addWidget(scr)
    scr.resize(1280, 740)
    scr.show()
    reject = records.history(records_filter(verdict="REJECT"), limit=1).rows[0]
    # The board and its image are read on the worker; the screen says so until they arrive.
    with qtbot.waitSignal(scr.loaded, timeout=10000) as opened:
        scr.load(reject.id)
        assert scr.loading == reject.id and scr.message.text() == "Loading…"
    assert opened.args == [True] and scr.loading is None
    assert scr.canvas.image is not None and len(scr.rows) == reject.defect_count == 1
    # A board that does not exist says so by number.
    with qtbot.waitSignal(scr.loaded, timeout=10000) as missing:
        scr.load(10**9)
    assert missing.args == [False] and str(10**9) in scr.message.text()
    assert scr.detail.row.id == reject.id  # the board on screen stays
    scr.message.setText("")

    # Not logged in: nothing is stored.
    assert not scr.review_defect(0, "false_call")
    assert records.detail(reject.id).defects[0].review is None

    session.login("op", "1111")
    # "Board OK" with a detection unjudged is refused on the screen, in words, and nothing is stored.
    assert not scr.mark_board_reviewed()
    assert scr.message.text().startswith("Judge every detection first") and not records.detail(reject.id).row.reviewed
    qtbot.mouseClick(scr.rows[0].false_call, __import__("PySide6.QtCore").QtCore.Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: scr.stored == 1 and not scr.writing, timeout=10000)  # stored on the worker
    d = records.detail(reject.id)
    assert d.defects[0].review == "false_call" and d.defects[0].reviewer == "op" and d.row.reviewed
    assert scr.rows[0].false_call.isChecked()

    # A missed defect drawn as a box is stored with its class.
    scr.missed_class.setCurrentIndex(scr.missed_class.findData(4))  # spur
    assert scr.add_missed((100.0, 120.0, 140.0, 150.0))
    qtbot.waitUntil(lambda: scr.stored == 2 and not scr.writing, timeout=10000)
    d = records.detail(reject.id)
    assert [(m.class_name, m.box, m.reviewer) for m in d.missed] == [("spur", (100.0, 120.0, 140.0, 150.0), "op")]
    save_shot(scr, "review_1280x800")
    # Reviews carry audit events; the rate the charts show follows.
    assert any(e.action == "review" and e.who == "op" for e in records.audit_events())
    stats = records.review_stats()
    assert stats.false_calls == 1 and stats.missed == 1


def records_filter(**kw):
    from ui.records import HistoryFilter

    return HistoryFilter(**kw)


def test_roles_forbid_what_they_should(qtbot, ui_app, filled_records, live_pipeline):
    from ui.app import MainWindow
    from ui.bridge import UiBridge
    from ui.controller import StationController
    from ui.session_setup import add_engineering_screens, add_quality_screens

    records, _ = filled_records
    cfg = StationConfig()
    controller = StationController(cfg, live_pipeline, live_pipeline.health)
    session = _session(records)
    bridge = UiBridge()
    win = MainWindow(controller, bridge, session, records=records, audit=records.audit, user_names=records.user_names)
    add_quality_screens(win, records, cfg, controller, session)
    add_engineering_screens(win, records, controller, session)  # all nine tabs, as the station's header has them
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()

    # The permission table itself.
    assert Role.OPERATOR.value == "operator"
    session.login("op", "1111")
    assert session.can(Permission.RUN) and session.can(Permission.ACK_ALARM) and session.can(Permission.REVIEW)
    assert not session.can(Permission.EDIT_RECIPE) and not session.can(Permission.MANAGE_USERS)
    with pytest.raises(PermissionDenied):
        session.require(Permission.SWAP_MODEL)
    # The engineers' tabs are drawn dimmed for an operator (a tap still says why), the operator's own are not.
    locked = {k for k, b in win.nav.items() if b.property("locked")}
    assert {"recipe", "users"} <= locked and not locked & {"operator", "history", "review", "charts"}, locked
    # An operator cannot open the recipe editor or the users screen; the refusal is audited.
    assert not win.show_screen("recipe") and win.current_screen() == "operator"
    assert win.toast.text() == "operator may not open Recipe"
    # The refusal in the screen's language: the role and the screen as the screen names them.
    from ui import i18n

    i18n.set_language("zh_CN")
    try:
        # The refusal on show is said again in the new language (not left in the one it was said in).
        qtbot.waitUntil(lambda: win.toast.text() == f"操作员 无权打开“{win.nav['recipe'].text()}”", timeout=2000)
        assert win.nav["recipe"].text() != "Recipe"
        # An action refused on a zh_CN screen: worded in Chinese, audited in the one language the audit is kept in.
        assert win.permit(Permission.EDIT_RECIPE, "change the recipe") is None
        assert win.toast.text() == "操作员 无权切换配方", win.toast.text()
        save_shot(win, "operator_refused_zh_CN_1280x800")
        qtbot.waitUntil(
            lambda: any(e.action == "denied" and e.target == "change the recipe" for e in records.audit_events()),
            timeout=10000,
        )
    finally:
        i18n.set_language("en")
    qtbot.waitUntil(lambda: win.toast.text() == "operator may not change the recipe", timeout=2000)
    # The refusal reads on a row of its own under the header (in the header it shared the width nine tabs left and
    # came out one word a line, cut); the row goes when the message does.
    assert win.toast.isVisible() and win.toast.width() >= 1200 and win.toast.y() >= win.nav["operator"].height()
    assert not win.show_screen("users")
    assert win.permit(Permission.EDIT_RECIPE, "edit thresholds") is None
    assert any(e.action == "denied" and e.who == "op" for e in records.audit_events())
    # ...nor save a recipe or add a user even if the screen were reached.
    assert not win.screens["recipe"].save()
    assert not win.screens["users"].add_user()
    save_shot(win, "operator_logged_in_1280x800")
    # A refusal in the header wraps instead of pushing it wider than the screen: no tab or button is cut to fewer
    # letters than its label (it squeezed "History" to "listor" and "op · Log out" to "· Log o" at 1280 px).
    qtbot.waitUntil(lambda: all(b.width() >= b.sizeHint().width() for b in win.nav.values()), timeout=2000)
    assert win.user_button.width() >= win.user_button.sizeHint().width()

    session.logout()
    assert win.permit(Permission.RUN, "start") is None  # nobody: a login is offered
    assert win.login_dialog is not None and win.login_dialog.isVisible()
    win.login_dialog.user.setCurrentText("eng")
    win.login_dialog.secret.setText("0000")
    win.login_dialog.try_login()
    qtbot.waitUntil(lambda: not win.login_dialog.checking, timeout=10000)  # scrypt runs on the worker
    assert session.user is None and "wrong" in win.login_dialog.message.text()
    win.login_dialog.secret.setText("2222")
    win.login_dialog.try_login()
    qtbot.waitUntil(lambda: not win.login_dialog.checking, timeout=10000)
    assert session.user.name == "eng"
    assert not win.nav["recipe"].property("locked") and win.nav["users"].property("locked")
    assert win.show_screen("recipe") and not win.show_screen("users")
    # While the engineer is on the recipe screen, the station is NOT READY (ENGINEER_EDITING).
    assert not live_pipeline.health.get("recipe").ok
    assert live_pipeline.health.get("recipe").reason.startswith("ENGINEER_EDITING")
    win.show_screen("operator")
    assert live_pipeline.health.get("recipe").ok

    session.logout()
    session.login("adm", "9999")
    assert not any(b.property("locked") for b in win.nav.values())
    assert win.show_screen("users")
    users = win.screens["users"]
    users.name.setText("op2")
    users.secret.setText("4321")
    with qtbot.waitSignal(users.changed, timeout=10000) as stored:
        assert users.add_user()  # the scrypt hash and the write run on the worker
        assert not users.add_button.isEnabled()
    assert stored.args == [True] and "op2" in records.user_names()
    assert users.add_button.isEnabled() and any(u.username == "op2" for u in users.users)
    # A second op2 is refused with the reason on screen.
    users.name.setText("op2")
    users.secret.setText("5555")
    with qtbot.waitSignal(users.changed, timeout=10000) as refused:
        assert users.add_user()
    assert refused.args == [False] and "op2" in users.message.text()
    users.message.setText("")
    save_shot(win, "users_1280x800")
    # Roles in the screen's language (the ids stay English: stored, audited, in the combo's data).
    i18n.set_language("zh_CN")
    try:
        qtbot.waitUntil(
            lambda: [users.role.itemText(i) for i in range(3)] == ["操作员", "工程师", "管理员"], timeout=2000
        )
        assert [users.role.itemData(i) for i in range(users.role.count())] == ["operator", "engineer", "admin"]
        assert any("op2  (操作员)" in users.list.item(i).text() for i in range(users.list.count()))
        save_shot(win, "users_zh_CN_1280x800")
    finally:
        i18n.set_language("en")
    qtbot.waitUntil(lambda: users.role.itemText(0) == "operator", timeout=2000)
    # A long user name with every tab shown: the header still fits at 1280 px, no tab or button cut; the name is
    # elided on the button and whole in its tooltip (on one line, "engineer · Log out" was cut to "ngineer · Log ou").
    records.create_user("wang.xiaoming.quality", "admin", "8888", by="test")
    assert win.show_screen("users") and win.permit(Permission.RUN, "start") and not win.toast.isVisible()
    session.logout()
    session.login("eng", "2222")
    assert not win.show_screen("users") and win.toast.text() == "engineer may not open Users"
    session.logout()  # the next user does not inherit the refusal said to this one
    assert not win.toast.isVisible() and win.toast.text() == ""
    session.login("wang.xiaoming.quality", "8888")
    buttons = [*win.nav.values(), win.user_button]
    qtbot.waitUntil(lambda: all(b.width() >= b.sizeHint().width() for b in buttons), timeout=2000)
    assert win.width() == 1280 and win.user_button.toolTip() == "wang.xiaoming.quality (admin)"
    assert win.user_button.text().endswith("\nLog out") and "…" in win.user_button.text()
    save_shot(win, "admin_long_name_1280x800")
    # Inactivity logs out (timer shortened for the test) and leaves the admin screen.
    session._timer.setInterval(50)
    session.activity()
    qtbot.waitUntil(lambda: session.user is None, timeout=3000)
    assert win.current_screen() == "operator"
    assert any(e.action == "auto_logout" for e in records.audit_events())
    # Secrets are stored only as scrypt hashes.
    from sqlalchemy import text

    with records.db.engine.connect() as c:
        hashes = [h for (h,) in c.execute(text("select password_hash from users"))]
    assert all(h.startswith("scrypt$") and "9999" not in h for h in hashes)
    bridge.stop()


def test_recipe_editor_round_trips(qtbot, ui_app, filled_records, live_pipeline, demo_boards):
    from ui.controller import StationController
    from ui.recipe_editor import RecipeEditor

    records, _ = filled_records
    cfg = StationConfig(recipes=[Recipe(name="demo", id=1), Recipe(name="board-b", id=2)])
    health = Health()
    controller = StationController(cfg, live_pipeline, health)
    session = _session(records)
    session.login("eng", "2222")
    ed = RecipeEditor(controller, session, records.audit, records=records)
    qtbot.addWidget(ed)
    ed.resize(1280, 740)
    ed.show()
    ed.enter()
    assert not health.get("recipe").ok  # ENGINEER_EDITING while open
    # At the touchscreen's size every button shows its whole label and each size label stands apart from the box
    # before it ("0 px允许缺陷数" ran together in zh_CN; spaced too wide, the panel cut the ROI buttons instead).
    from ui import i18n

    for language in ("en", "zh_CN"):
        i18n.set_language(language)
        try:
            qtbot.wait(20)
            buttons = (ed.roi_button, ed.clear_roi, ed.load_reference, ed.save_button, ed.revert_button)
            # whole label and at least 8 px of the button's face on each side of it
            fits = [b.width() >= b.fontMetrics().horizontalAdvance(b.text()) + 16 for b in buttons]
            assert all(fits), [(b.text(), b.width()) for b in buttons]
            assert ed.max_pass_label.geometry().left() - ed.min_px.geometry().right() >= 6
            assert ed.min_px.geometry().left() - ed.min_px_label.geometry().right() >= 6
            assert ed.minimumSizeHint().height() <= 740
            save_shot(ed, f"recipe_editor_{language}_1280x740")
        finally:
            i18n.set_language("en")
    ref = next(demo_boards.glob("*_temp.png"))
    ed.set_reference(ref)
    assert ed.canvas.image is not None
    ed.sliders["short"].setValue(72)
    ed.sliders["open"].setValue(35)
    ed.min_px.setValue(6)
    ed.max_pass.setValue(1)
    ed.roi_button.setChecked(True)
    for x, y in ((10, 10), (600, 12), (610, 620), (12, 600)):
        ed._canvas_tapped(float(x), float(y))
    save_shot(ed, "recipe_1280x800")
    assert ed.save()
    qtbot.waitUntil(lambda: not ed.storing, timeout=10000)  # the version is written on the DB worker
    ed.leave()
    assert health.get("recipe").ok

    # Stored: the newest recipe version in the database reads back as the same recipe...
    stored = records.latest_recipe("demo")
    assert stored.thresholds["short"] == 0.72 and stored.thresholds["open"] == 0.35
    assert stored.min_defect_px == 6 and stored.max_defects_pass == 1
    assert stored.roi == [(10.0, 10.0), (600.0, 12.0), (610.0, 620.0), (12.0, 600.0)]
    assert stored.reference == ref
    # ...the configuration and the pipeline use it...
    assert controller.recipe("demo") == stored
    # ...and a fresh editor shows exactly those values (round trip).
    ed2 = RecipeEditor(controller, session, records.audit, records=records)
    qtbot.addWidget(ed2)
    ed2.enter()
    assert ed2.form_recipe() == stored
    ed2.leave()
    assert any(e.action == "recipe_save" and e.who == "eng" for e in records.audit_events())
    # A recipe that cannot be applied (missing reference file) is refused with the reason, nothing stored.
    from pathlib import Path

    n_versions = len(records.recipe_versions("demo"))
    ed2.enter()
    ed2.reference = Path("/nonexistent/ref.png")
    assert not ed2.save()
    assert "does not exist" in ed2.state.text()
    assert len(records.recipe_versions("demo")) == n_versions and controller.recipe("demo") == stored
    ed2.leave()


def test_false_calls_fall_on_the_plants_day_not_the_utc_day(qtbot, ui_app, records_cfg):
    """A false call at 00:30 in Shanghai is on that local day (16:30 UTC the day before)."""
    from datetime import UTC, datetime, time, timedelta
    from zoneinfo import ZoneInfo

    from PySide6.QtCore import Qt

    from ui.charts import ChartsScreen
    from ui.records import Records

    from .conftest import board_results, record_boards

    zone = ZoneInfo("Asia/Shanghai")
    records_cfg.storage.timezone = "Asia/Shanghai"
    now = datetime.now(UTC)
    day = now.astimezone(zone).date()
    when = datetime.combine(day, time(0, 30), tzinfo=zone)
    if when > now - timedelta(minutes=1):
        day -= timedelta(days=1)
        when = datetime.combine(day, time(0, 30), tzinfo=zone)
    board = [r for r in board_results(3) if r.detections][0]
    board.timestamp = when.astimezone(UTC)
    record_boards(records_cfg, [board])
    records = Records.open(records_cfg)
    try:
        (row,) = records.history(None).rows
        records.review_defect(records.detail(row.id).defects[0].id, "false_call", "eng")
        scr = ChartsScreen(records)
        qtbot.addWidget(scr)
        scr.resize(1280, 740)
        with qtbot.waitSignal(scr.drawn, timeout=20000):
            scr.refresh()
        chart = scr.views["false_calls"].chart()
        bars = chart.series()[0].barSets()[0]
        (axis,) = chart.axes(Qt.Orientation.Horizontal)
        rate = dict(zip(axis.categories(), (bars.at(i) for i in range(bars.count()))))
        assert rate[f"{day:%d.%m}"] == 100.0
        assert rate.get(f"{day - timedelta(days=1):%d.%m}", 0.0) == 0.0
    finally:
        records.close()


def test_charts_draw_from_the_worker_one_chart_per_turn(qtbot, ui_app, filled_records):
    from ui.charts import ChartsScreen

    records, results = filled_records
    scr = ChartsScreen(records)
    qtbot.addWidget(scr)
    scr.resize(1280, 740)
    scr.show()
    with qtbot.waitSignal(scr.drawn, timeout=20000):
        scr.refresh()
    pareto = scr.views["pareto"].chart()
    bars = pareto.series()[0].barSets()[0]
    # The Pareto bars are the defect counts per class, largest first, as stored.
    counts = [int(bars.at(i)) for i in range(bars.count())]
    assert sum(counts) == sum(len(r.detections) for r in results) and counts == sorted(counts, reverse=True)
    assert all(scr.views[k].chart().series() for k in ("hour", "shift", "false_calls"))
    # The count axis is ticked at whole counts from 0 (five even ticks over 0..1.1 x the top labelled 1.375 as "1" and
    # 3.75 as "4", so bars stood under the wrong numbers); it ends at the first tick at or above the largest bar.
    from PySide6.QtCharts import QValueAxis

    (ay,) = [a for a in pareto.series()[0].attachedAxes() if isinstance(a, QValueAxis)]
    step = ay.tickInterval()
    assert ay.tickType() == QValueAxis.TickType.TicksDynamic and ay.tickAnchor() == 0 and step == int(step) >= 1
    assert ay.min() == 0 and ay.max() % step == 0 and ay.max() - step < max(counts) <= ay.max()
    (pct,) = [a for a in pareto.series()[1].attachedAxes() if isinstance(a, QValueAxis) and a.isVisible()]
    assert pct.labelFormat() == "%d%%" and not pct.isGridLineVisible()  # one grid, the counts'
    save_shot(scr, "charts_1280x800")
    # A refresh replaces the charts and deletes the old ones (QChartView.setChart does not).
    import shiboken6
    from PySide6.QtCore import QCoreApplication, QEvent

    old = [scr.views[k].chart() for k in scr.views]
    with qtbot.waitSignal(scr.drawn, timeout=20000):
        scr.refresh()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    assert not any(shiboken6.isValid(c) for c in old)


@pytest.mark.parametrize("top", [1, 2, 3, 5, 6, 9, 10, 13, 24, 99, 100, 123, 999, 1000, 4321])
def test_a_count_axis_has_whole_ticks_and_ends_at_the_first_one_above_the_top(top):
    from ui.charts import count_axis

    step, end = count_axis(top)
    mantissa = step // 10 ** (len(str(step)) - 1)
    assert mantissa in (1, 2, 5) and step == mantissa * 10 ** (len(str(step)) - 1)  # 1, 2, 5, 10, 20, 50 ...
    assert end % step == 0 and end - step < top <= end and end // step <= 5
