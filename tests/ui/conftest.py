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


@pytest.fixture
def records_cfg(tmp_path):
    """A station config whose records live in a fresh SQLite file and archive under tmp_path."""
    from inspector.config import StationConfig

    cfg = StationConfig()
    cfg.storage.database_url = f"sqlite:///{tmp_path / 'inspections.db'}"
    cfg.storage.archive_dir = tmp_path / "archive"
    cfg.storage.spool_dir = tmp_path / "spool"
    cfg.storage.min_free_mb = 0
    return cfg


@pytest.fixture
def ui_station_cfg(records_cfg, demo_boards):
    """A station `UiRuntime.create` starts as in the plant (no demo): replay camera, classical detector, no PLC,
    records in tmp_path and one user (no first-admin dialog)."""
    from inspector.config import ReplayCamera
    from ui.records import Records

    cfg = records_cfg
    cfg.camera = ReplayCamera(path=demo_boards, fps=4.0, loop=True)
    cfg.detector = {"type": "classical"}
    cfg.plc.mode = "off"
    records = Records.open(cfg)
    records.create_user("op", "operator", "1111", by="test")
    records.close()
    return cfg


def record_boards(cfg, results) -> None:
    """Write `results` into `cfg`'s records with the station's real recorder (flushed, stopped)."""
    from inspector.health import Health
    from inspector.storage.writer import open_recorder

    rec = open_recorder(cfg, Health())
    rec.start()
    for r in results:
        rec.submit(r)
    assert rec.flush(30), "recorder did not flush"
    rec.stop()


def board_results(n: int = 30):
    """Known results: every 3rd board passes; serials SN0000..; recipes alternate; classes cycle."""
    from datetime import UTC, datetime, timedelta

    from inspector.domain import Detection, InspectionResult, Verdict
    from inspector.synth import make_board

    now = datetime.now(UTC)
    out = []
    for i in range(n):
        b = make_board(500 + i)
        passed = i % 3 == 0
        cls = 1 + i % 6
        dets = [] if passed else [Detection((40.0 + i, 50.0, 90.0 + i, 95.0), cls, 0.9)]
        out.append(
            InspectionResult(
                frame_id=i,
                recipe="demo" if i % 2 == 0 else "board-b",
                verdict=Verdict.PASS if passed else Verdict.REJECT,
                detections=dets,
                timings_ms={"total": 20.0 + i},
                model_id="test-model@1",
                board_serial=f"SN{i:04d}",
                timestamp=now - timedelta(minutes=2 * (n - i)),
                image=b.image,
            )
        )
    return out


@pytest.fixture
def filled_records(records_cfg):
    """A records database written by storage's real recorder, then opened through ui.records."""
    from inspector.config import Recipe
    from ui.records import Records

    records_cfg.recipes = [Recipe(name="demo", id=1), Recipe(name="board-b", id=2)]
    results = board_results(30)
    record_boards(records_cfg, results)
    records = Records.open(records_cfg)
    for name, role, secret in (("op", "operator", "1111"), ("eng", "engineer", "2222"), ("adm", "admin", "9999")):
        records.create_user(name, role, secret, by="test")
    yield records, results
    records.close()
