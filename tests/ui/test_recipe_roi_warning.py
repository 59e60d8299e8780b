"""The recipe screen says when the ROI leaves most of the board uninspected (as `config show` does),
in English and Chinese; an ROI that cannot be used at all is named there too."""

from __future__ import annotations

import cv2
import numpy as np

from inspector.config import Recipe, StationConfig
from inspector.health import Health

from .conftest import save_shot


def _editor(qtbot, live_pipeline, cfg):
    from ui.auth import Role, Session, User
    from ui.controller import StationController
    from ui.recipe_editor import RecipeEditor

    session = Session(lambda n, p: User(n, Role.ENGINEER) if (n, p) == ("eng", "2222") else None, 300)
    session.login("eng", "2222")
    controller = StationController(cfg, live_pipeline, Health())
    ed = RecipeEditor(controller, session, lambda *a, **k: None)
    qtbot.addWidget(ed)
    ed.resize(1280, 740)
    ed.show()
    return ed


def test_recipe_screen_warns_about_a_small_roi(qtbot, ui_app, live_pipeline, demo_boards, tmp_path):
    from ui import i18n

    ref = demo_boards / "board0000_temp.png"
    half = [(0.0, 0.0), (300.0, 0.0), (300.0, 640.0), (0.0, 640.0)]
    cfg = StationConfig(recipes=[Recipe(name="demo", id=1, reference=ref, roi=half)])
    ed = _editor(qtbot, live_pipeline, cfg)
    ed.enter()
    assert ed.roi_warning.isVisible()
    assert ed.roi_warning.text() == (
        "This recipe inspects only 47% of the board: defects outside the ROI are ignored (PASS)."
    )
    save_shot(ed, "recipe_roi_warning_en_1280x800")
    i18n.set_language("zh_CN")
    zh = "此配方只检测电路板的 47%：ROI 以外的缺陷被忽略（判为合格）。"
    qtbot.waitUntil(lambda: ed.roi_warning.text() == zh, timeout=3000)  # LanguageChange is an event
    save_shot(ed, "recipe_roi_warning_zh_CN_1280x800")
    i18n.set_language("en")
    qtbot.waitUntil(lambda: ed.roi_warning.text().startswith("This recipe"), timeout=3000)

    # Drawing a larger ROI clears the warning; a 2-point start of a polygon says nothing yet.
    ed._clear_roi()
    assert not ed.roi_warning.isVisible()
    ed.roi_button.setChecked(True)
    for x, y in ((5, 5), (630, 5)):
        ed._canvas_tapped(float(x), float(y))
    assert not ed.roi_warning.isVisible()
    ed._canvas_tapped(630.0, 630.0)  # a triangle over 48 % of the board: most of it excluded
    assert ed.roi_warning.text().startswith("This recipe inspects only 48% of the board")
    ed._canvas_tapped(5.0, 630.0)  # nearly the whole board
    assert not ed.roi_warning.isVisible()
    ed._canvas_tapped(900.0, 630.0)  # a corner off the board
    assert ed.roi_warning.isVisible() and ed.roi_warning.text().startswith("ROI not usable: roi: corner (900, 630)")
    ed.leave()


def test_recipe_screen_names_an_all_black_mask(qtbot, ui_app, live_pipeline, demo_boards, tmp_path):
    ref = demo_boards / "board0000_temp.png"
    mask = tmp_path / "black.png"
    cv2.imwrite(str(mask), np.zeros((640, 640), np.uint8))
    cfg = StationConfig(recipes=[Recipe(name="demo", id=1, reference=ref)])
    # The file was loaded before the mask went black (a bad file on disk, not a bad entry).
    cfg.recipes[0].roi_mask = mask
    ed = _editor(qtbot, live_pipeline, cfg)
    ed.enter()
    assert ed.roi_warning.isVisible()
    assert "roi_mask: all black" in ed.roi_warning.text()
    ed.leave()


def test_recipe_screen_does_not_save_a_recipe_that_passes_every_board(qtbot, ui_app, live_pipeline, demo_boards):
    """Every class slid to 1.00 turns every class off: the save is refused with the reason, the line keeps the
    recipe it had, and the defect allowance cannot be set past what can still reject a board."""
    from inspector.config import MAX_DEFECTS_PASS

    ref = demo_boards / "board0000_temp.png"
    cfg = StationConfig(recipes=[Recipe(name="demo", id=1, reference=ref)])
    ed = _editor(qtbot, live_pipeline, cfg)
    ed.enter()
    for slider in ed.sliders.values():
        slider.setValue(100)
    assert ed.save() is False
    assert ed.state.text().startswith("Not saved: thresholds: every class's threshold is 1.0")
    assert "every board would PASS" in ed.state.text() and "validation error" not in ed.state.text()
    assert cfg.recipes[0].thresholds == {}  # the stored recipe (the line's) is untouched
    ed.max_pass.setValue(100_000)
    assert ed.max_pass.value() == MAX_DEFECTS_PASS
    qtbot.wait(100)  # the layout settles on the event loop, as on the line
    save_shot(ed, "recipe_all_classes_off_en_1280x800")
    ed.leave()


def test_saving_a_recipe_keeps_the_classes_it_left_to_the_model(qtbot, ui_app, live_pipeline, demo_boards):
    """A recipe that leaves its thresholds to the model shows the model's thresholds (the shipped sidecar's), and
    saving it writes only the class that was moved: drawing an ROI must not pin every class at some other value
    (the editor used to show and write 0.5 for each, twice the shipped threshold)."""
    from inspector.detect.package import read_meta

    shipped = read_meta(StationConfig().detector.model).thresholds
    cfg = StationConfig(recipes=[Recipe(name="demo", id=1, reference=demo_boards / "board0000_temp.png")])
    ed = _editor(qtbot, live_pipeline, cfg)
    ed.enter()
    assert {n: s.value() / 100 for n, s in ed.sliders.items()} == shipped
    assert ed.form_recipe().thresholds == {}
    ed.sliders["pin-hole"].setValue(15)
    assert ed.form_recipe().thresholds == {"pin-hole": 0.15}
    # A class the recipe sets stays as set, moved or not.
    cfg.recipes = [Recipe(name="demo", id=1, reference=demo_boards / "board0000_temp.png", thresholds={"spur": 0.4})]
    ed.load("demo")
    assert ed.sliders["spur"].value() == 40 and ed.form_recipe().thresholds == {"spur": 0.4}
    save_shot(ed, "recipe_thresholds_follow_the_model_en_1280x800")
