"""UI test fixtures: a real pipeline (replay camera over synthetic boards, classical detector)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

pytest.importorskip("PySide6")

from inspector.capture.replay import ReplayCameraSource  # noqa: E402
from inspector.config import Recipe, ReplayCamera  # noqa: E402
from inspector.decision import RecipeRules  # noqa: E402
from inspector.detect.classical import DifferenceDetector  # noqa: E402
from inspector.health import Health  # noqa: E402
from inspector.pipeline import Pipeline  # noqa: E402

REPO = Path(__file__).resolve().parents[2]
SHOTS = Path(os.environ.get("UI_SCREENSHOT_DIR", REPO / "build" / "ui-screenshots"))


def save_shot(widget, name: str) -> Path:
    """Every screen test leaves a PNG (build/ui-screenshots/ by default) for a person to look at."""
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    assert widget.grab().save(str(path)), f"cannot write {path}"
    return path


def wait_until(qtbot, cond, timeout_ms=20000):
    qtbot.waitUntil(cond, timeout=timeout_ms)


@pytest.fixture
def live_pipeline(demo_boards):
    """A running free-run pipeline at 20 boards/s; stopped at teardown."""
    health = Health()
    cam = ReplayCameraSource(ReplayCamera(path=demo_boards, fps=20.0, loop=True))
    p = Pipeline(cam, DifferenceDetector(), RecipeRules(Recipe()), health, frame_timeout_s=1.0)
    yield p
    if p.running:
        p.stop()


@pytest.fixture
def ui_app(qapp):
    from ui import theme

    qapp.setFont(theme.app_font())
    qapp.setStyleSheet(theme.stylesheet())
    yield qapp
    from ui import i18n

    if i18n.current_language() != "en":
        i18n.set_language("en")


def pump(qapp, seconds: float) -> None:
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        qapp.processEvents()
        time.sleep(0.005)
