"""Line control from the touchscreen against what the station really does: the recipe the PLC switched
to, STOP then START, and the recipe editor's editing session (re-tapped tab, logout)."""

from __future__ import annotations

import threading

from inspector.capture.replay import ReplayCameraSource
from inspector.config import ReplayCamera, StationConfig
from inspector.decision import RecipeRules
from inspector.detect.classical import DifferenceDetector
from inspector.health import Health
from inspector.pipeline import Pipeline


def _pipeline(boards, cfg: StationConfig, health: Health, **kw) -> Pipeline:
    cam = ReplayCameraSource(ReplayCamera(path=boards, trigger="software", loop=True))
    return Pipeline(cam, DifferenceDetector(), RecipeRules(cfg.recipe()), health, triggered=True, **kw)


def _window(qtbot, cfg: StationConfig, pipeline: Pipeline, health: Health, audit=None, auto_logout_s: float = 300):
    from ui.app import MainWindow
    from ui.auth import Role, Session, User
    from ui.bridge import UiBridge
    from ui.controller import StationController
    from ui.recipe_editor import RecipeEditor

    audit = audit or (lambda *a, **k: None)
    users = {"op": User("op", Role.OPERATOR), "eng": User("eng", Role.ENGINEER)}
    session = Session(lambda n, p: users.get(n) if p == "2222" else None, auto_logout_s, audit=audit)
    controller = StationController(cfg, pipeline, health)
    win = MainWindow(controller, UiBridge(), session, audit=audit)
    qtbot.addWidget(win)
    editor = RecipeEditor(controller, session, audit)
    win.add_screen("recipe", editor)
    return win, controller, session, editor


def _running(p: Pipeline) -> str:
    return p.current_rules.name


def test_the_ui_follows_a_recipe_switch_made_by_the_plc(qtbot, ui_app, demo_boards):
    from plc.station import default_recipe_switcher

    cfg = StationConfig.model_validate(
        {"recipes": [{"name": "prodA", "id": 1}, {"name": "prodB", "id": 2}], "active_recipe": "prodA"}
    )
    health = Health()
    p = _pipeline(demo_boards, cfg, health)
    win, ctl, session, editor = _window(qtbot, cfg, p, health)
    shown: list[str] = []
    ctl.recipe_changed.connect(shown.append)

    # The PLC's recipe command runs on its own thread (plc-recipe), as in the station.
    switch = default_recipe_switcher(cfg, p, rules_for=RecipeRules, health=health)
    results: list[bool] = []
    t = threading.Thread(target=lambda: results.append(switch(2)), name="plc-recipe")
    t.start()
    t.join(10)
    assert results == [True] and _running(p) == "prodB"
    assert ctl.active_recipe == "prodB"
    qtbot.waitUntil(lambda: win.operator.recipe.currentText() == "prodB", timeout=3000)
    assert shown and shown[-1] == "prodB"

    # An engineer saving a change to a recipe that is not running stores it; the line keeps the PLC's.
    session.login("eng", "2222")
    assert win.show_screen("recipe") and editor.recipe.currentText() == "prodB"
    tweaked = cfg.recipe("prodA").model_copy(update={"max_defects_pass": 1})
    ctl.apply_recipe(tweaked)
    assert _running(p) == "prodB" and cfg.recipe("prodA").max_defects_pass == 1
    win.show_screen("operator")
    session.logout()

    # The operator asking for prodA back switches the line to it.
    session.login("op", "2222")
    win.select_recipe("prodA")
    assert _running(p) == "prodA" and ctl.active_recipe == "prodA"
    assert win.operator.recipe.currentText() == "prodA"


def test_start_after_an_operator_stop_makes_the_station_ready_again(qtbot, ui_app, demo_boards):
    from ui.controller import StationController

    cfg = StationConfig()
    health = Health()
    p = _pipeline(demo_boards, cfg, health, frame_timeout_s=1.0)
    ctl = StationController(cfg, p, health)
    try:
        ctl.start(wait=True)
        qtbot.waitUntil(lambda: health.ready, timeout=15000)
        ctl.stop(wait=True)
        assert not health.ready and not health.get("pipeline").ok
        ctl.start(wait=True)  # no board is triggered: the PLC waits for READY first
        qtbot.waitUntil(lambda: health.ready, timeout=15000)
        assert health.get("pipeline").ok
    finally:
        ctl.stop(wait=True)


def _engineer_at_the_window(qtbot, demo_boards):
    """The station window with an engineer logged in; audit events collected as (action, user)."""
    events: list[tuple] = []
    cfg = StationConfig()
    health = Health()
    p = _pipeline(demo_boards, cfg, health)
    win, _ctl, session, editor = _window(
        qtbot, cfg, p, health, audit=lambda action, **k: events.append((action, k.get("user")))
    )
    session.login("eng", "2222")
    return events, health, win, session, editor


def test_tapping_the_shown_recipe_tab_again_keeps_the_edits(qtbot, ui_app, demo_boards):
    events, health, win, session, editor = _engineer_at_the_window(qtbot, demo_boards)
    win.nav["recipe"].click()
    assert win.current_screen() == "recipe"
    editor.max_pass.setValue(2)
    editor.sliders["open"].setValue(80)
    win.nav["recipe"].click()  # a gloved double tap
    assert win.current_screen() == "recipe" and win.nav["recipe"].isChecked()
    assert editor.max_pass.value() == 2 and editor.sliders["open"].value() == 80
    assert [e for e in events if e[0] == "recipe_edit_begin"] == [("recipe_edit_begin", "eng")]


def test_logout_ends_the_edit_in_the_engineers_name(qtbot, ui_app, demo_boards):
    events, health, win, session, editor = _engineer_at_the_window(qtbot, demo_boards)
    assert win.show_screen("recipe") and not health.get("recipe").ok
    session.logout()
    assert win.current_screen() == "operator" and health.get("recipe").ok
    assert [e for e in events if e[0] == "recipe_edit_end"] == [("recipe_edit_end", "eng")]
