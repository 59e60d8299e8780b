"""Model panel: a real .tflite package verified, warmed up and hot-swapped into a running pipeline."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from inspector.config import StationConfig
from inspector.signing import generate_keypair, sign_model
from ui.auth import Session

from .conftest import REPO, save_shot

FIXTURE = REPO / "tests" / "fixtures" / "models" / "synth-det-640.tflite"
SHIPPED = REPO / "models" / "pcb-defect-det.tflite"


@pytest.fixture
def panel_window(qtbot, ui_app, records_cfg, live_pipeline):
    from ui.app import MainWindow
    from ui.bridge import UiBridge
    from ui.controller import StationController
    from ui.model_panel import ModelPanel
    from ui.records import Records

    records = Records.open(records_cfg)
    for name, role, secret in (("op", "operator", "1111"), ("eng", "engineer", "2222")):
        records.create_user(name, role, secret, by="test")
    cfg = StationConfig()
    controller = StationController(cfg, live_pipeline, live_pipeline.health)
    session = Session(records.authenticate, 300, audit=records.audit)
    win = MainWindow(controller, UiBridge(), session, records=records, audit=records.audit, station_name="Line 1")
    panel = ModelPanel(controller, session, records.audit)
    win.add_screen("model", panel)
    qtbot.addWidget(win)
    win.resize(1280, 800)
    win.show()
    yield win, panel, records, session, cfg, live_pipeline
    panel.wait()
    records.close()


def _swap(qtbot, panel, path) -> None:
    assert panel.swap(path), panel.state.text()
    qtbot.waitUntil(lambda: not panel.busy, timeout=30000)


def test_engineer_swaps_models_on_a_running_pipeline(qtbot, panel_window, tmp_path):
    win, panel, records, session, cfg, pipeline = panel_window
    pipeline.start()
    qtbot.waitUntil(lambda: pipeline.detector_info is not None, timeout=15000)
    first = pipeline.detector_info.model_id

    # An operator can neither open the panel nor swap: a clear refusal, audited.
    session.login("op", "1111")
    assert not win.show_screen("model")
    assert not panel.swap(FIXTURE)
    assert "Only an engineer or admin may swap models" in panel.state.text() and "op (operator)" in panel.state.text()
    assert pipeline.detector_info.model_id == first
    assert any(e.action == "denied" and e.who == "op" for e in records.audit_events())
    session.logout()

    session.login("eng", "2222")
    assert win.show_screen("model")
    # The CPU the model runs on, and whether INT8 has its dot-product instructions there (a slow station's first
    # question), as the kernel reports it.
    from inspector.host_cpu import host_cpu

    cpu = host_cpu()
    assert f"Processor: {cpu.model} · {cpu.cores} cores · INT8 dot product: " in panel.processor.text()
    assert ("several times slower" in panel.processor.text()) == (not cpu.int8_dot)
    # A station set to fewer passes than the package declares says so beside the model (its card's figures are the
    # package's).
    assert "one pass" not in panel.running.text()
    cfg.detector.passes = "single"
    panel.refresh()
    assert panel.running.text().endswith(" · one pass")
    cfg.detector.passes = "package"
    panel.refresh()
    _swap(qtbot, panel, FIXTURE)
    new = panel.last_info
    assert new is not None, panel.last_error
    assert new.model_id != first and new.model_id in panel.state.text() and new.backend in panel.state.text()
    qtbot.waitUntil(lambda: pipeline.detector_info.model_id == new.model_id, timeout=15000)
    qtbot.waitUntil(lambda: new.model_id in panel.running.text(), timeout=3000)
    # The station's settings now name what runs: screens that read its sidecar (the threshold calibration's input
    # domain, the recipe editor's default thresholds) read this package's, not the one the station started with.
    assert Path(cfg.detector.model) == FIXTURE

    _swap(qtbot, panel, SHIPPED)
    shipped = panel.last_info
    assert shipped is not None and shipped.model_id != new.model_id, panel.last_error
    qtbot.waitUntil(lambda: pipeline.detector_info.model_id == shipped.model_id, timeout=15000)
    swaps = [e for e in records.audit_events() if e.action == "model_swap"]
    assert {e.who for e in swaps} == {"eng"} and len(swaps) == 2
    save_shot(win, "model_panel_1280x800")
    # No accelerator here: the backend line says the CPU fallback, in the screen's language as the lamp does.
    from ui import i18n

    assert "(fallback: none of" in shipped.backend
    i18n.set_language("zh_CN")
    qtbot.waitUntil(lambda: "回退" in panel.running.text(), timeout=5000)
    assert "fallback" not in panel.running.text() and shipped.model_id in panel.running.text()
    # The last swap's line too: said again in the new language, not left in the one it was said in.
    assert panel.state.text().startswith(f"已更换为 {shipped.model_id}") and "Swapped" not in panel.state.text()
    save_shot(win, "model_panel_zh_CN_1280x800")
    i18n.set_language("en")

    # A package without its sidecar is refused; the running model stays.
    broken = tmp_path / "broken" / "no-sidecar.tflite"
    broken.parent.mkdir()
    shutil.copy(FIXTURE, broken)
    _swap(qtbot, panel, broken)
    assert panel.last_info is None and "not swapped" in panel.state.text().lower()
    assert pipeline.detector_info.model_id == shipped.model_id
    assert any(e.action == "model_swap_failed" for e in records.audit_events())
    assert Path(cfg.detector.model) == SHIPPED  # a refused package changes nothing

    # With trusted keys configured, only signed packages pass; a signed one swaps and says so.
    keys = tmp_path / "keys"
    keys.mkdir()
    generate_keypair(keys / "release.pem", keys / "release.pub.pem")
    cfg.detector.trusted_keys = [keys / "release.pub.pem"]
    signed = tmp_path / "signed"
    signed.mkdir()
    for p in (FIXTURE, FIXTURE.with_suffix(".json")):
        shutil.copy(p, signed / p.name)
    _swap(qtbot, panel, signed / FIXTURE.name)
    assert panel.last_info is None and "not signed" in panel.last_error
    sign_model(signed / FIXTURE.name, keys / "release.pem")
    _swap(qtbot, panel, signed / FIXTURE.name)
    assert panel.last_info is not None, panel.last_error
    assert "signature verified" in panel.log.item(0).text()
    qtbot.waitUntil(lambda: pipeline.detector_info.model_id == panel.last_info.model_id, timeout=15000)
    pipeline.stop()
