"""Operator screen counters for boards rejected for their serial, fed by a real triggered pipeline
reading real DataMatrix codes (zxing-cpp) on synthetic boards; English and Simplified Chinese."""

from __future__ import annotations

import json

import cv2

from inspector.board_serial import paste_code
from inspector.capture.replay import ReplayCameraSource
from inspector.config import BoardCode, Recipe, ReplayCamera
from inspector.decision import RecipeRules
from inspector.detect.classical import DifferenceDetector
from inspector.domain import TriggerRequest
from inspector.health import Health
from inspector.pipeline import Pipeline
from ui import i18n
from ui.alarms import AlarmModel
from ui.bridge import UiBridge
from ui.operator_screen import OperatorScreen

from .conftest import save_shot


def test_serial_reject_counters_and_reason_in_both_languages(qtbot, ui_app, tmp_path, demo_boards, demo_truth):
    clean = [n for n in sorted(demo_truth) if not demo_truth[n]][:3]
    for name, serial in zip(clean, ["SN-1", "SN-2", None], strict=True):  # replayed in this order
        img = cv2.imread(str(demo_boards / f"{name}_test.png"), cv2.IMREAD_GRAYSCALE)
        if serial:
            img, _ = paste_code(img, serial, (560, 8))
        cv2.imwrite(str(tmp_path / f"{name}_test.png"), img)
        (tmp_path / f"{name}_temp.png").write_bytes((demo_boards / f"{name}_temp.png").read_bytes())
    (tmp_path / "truth.json").write_text(json.dumps({n: [] for n in clean}))
    recipe = Recipe(code=BoardCode(region=(560, 8, 48, 48), require_code=True))
    cam = ReplayCameraSource(ReplayCamera(path=tmp_path, fps=None, loop=True, trigger="software"))
    pipe = Pipeline(cam, DifferenceDetector(), RecipeRules(recipe), Health(), triggered=True)

    bridge = UiBridge(display_fps=30)
    scr = OperatorScreen(AlarmModel())
    qtbot.addWidget(scr)
    scr.resize(1280, 800)
    scr.show()
    assert not scr.tiles["serial_mismatch"].isVisible()  # a line without serial rejects keeps its layout
    bridge.updated.connect(scr.on_update)
    bridge.updated.connect(lambda _u: bridge.ack())
    bridge.attach(pipe)
    bridge.start()
    pipe.start()
    try:
        results = []
        for serial in ("SN-1", "SN-9", "PLC-3"):  # agrees; differs from the code; board without a code
            ticket = pipe.trigger(TriggerRequest(part_seq=len(results) + 1, serial=serial))
            assert ticket.done.wait(30)
            results.append(ticket.result)
        qtbot.waitUntil(lambda: scr.last_update is not None and scr.last_update.counts.inspected == 3, timeout=10000)
    finally:
        pipe.stop()
        bridge.stop()
    assert [r.verdict.value for r in results] == ["PASS", "REJECT", "REJECT"]
    c = scr.last_update.counts
    assert (c.rejected, c.serial_mismatch, c.code_unreadable) == (2, 1, 1)
    assert scr.tiles["serial_mismatch"].value.text() == "1" and scr.tiles["code_unreadable"].value.text() == "1"
    assert scr.tiles["serial_mismatch"].name.text() == "SERIAL MISMATCH" and scr.tiles["serial_mismatch"].isVisible()
    assert scr.verdict.line2.text().startswith("board code unreadable")
    assert "PLC-3" in scr.verdict.line1.text()
    save_shot(scr, "operator_serial_counters_en")
    i18n.set_language("zh_CN")
    qtbot.waitUntil(lambda: scr.tiles["serial_mismatch"].name.text() == "序列号不符", timeout=5000)
    assert scr.tiles["code_unreadable"].name.text() == "未读到条码"
    assert scr.verdict.line2.text().startswith("无法读取板上条码")
    save_shot(scr, "operator_serial_counters_zh_CN")
