"""English and Simplified Chinese, switched at runtime; every UI string has a translation."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from inspector.domain import Detection
from ui import i18n
from ui.alarms import AlarmModel
from ui.operator_screen import OperatorScreen

from .conftest import REPO, save_shot

TS = REPO / "ui" / "i18n" / "pcb_inspector_zh_CN.ts"


def test_language_switches_at_runtime(qtbot, ui_app):
    from inspector.health import Health
    from ui.bridge import UiBridge

    scr = OperatorScreen(AlarmModel())
    qtbot.addWidget(scr)
    scr.resize(1280, 800)
    scr.show()
    bridge = UiBridge()
    bridge.health_changed.connect(scr.on_health)
    health = Health()
    bridge.attach_health(health)
    health.ok("camera", "640x640 Mono8")
    qtbot.wait(20)
    assert scr.tiles["inspected"].name.text() == "INSPECTED"
    i18n.set_language("zh_CN")
    qtbot.waitUntil(lambda: scr.tiles["inspected"].name.text() == "已检测", timeout=2000)
    assert scr.lamps["camera"].name.text() == "相机"
    assert scr.verdict.word.text() == "等待中"
    assert "启动" in scr.start_stop.text()
    # Defect classes are shown in the line's language (they stay English identifiers in the data).
    from ui.labels import class_label
    from ui.operator_screen import overlays_for

    assert [class_label(n) for n in ("open", "short", "pin-hole")] == ["开路", "短路", "针孔"]
    assert overlays_for([Detection((1.0, 2.0, 30.0, 40.0), 2, 0.91)])[0].label == "短路 0.91"
    # Reject reasons from the core: the operator's part translated, the engineer's detail kept.
    from ui.labels import reason_label

    assert (
        reason_label("board not registered to the reference: quality 0.12 < 0.50")
        == "板未能与参考图对位: quality 0.12 < 0.50"
    )
    assert reason_label("no frame: timeout after 500 ms") == "无图像: timeout after 500 ms"
    assert reason_label("board not fully in view: 30% of the inspected area").startswith("板未完全在视野内: 30%")
    assert reason_label("image not inspectable: board image: over-exposed").startswith("图像无法检测: board image")
    assert reason_label("something new") == "something new" and reason_label(None) == ""
    # Status-lamp lines: the core's own strings, the values (names, numbers, addresses) kept.
    from inspector.detect.delegates import DelegateAttempt, cpu_label, fallback_note
    from ui.labels import lamp_label

    backend = cpu_label(2) + fallback_note(
        [
            DelegateAttempt("libvx_delegate.so", False, "not found"),
            DelegateAttempt("libedgetpu.so.1", False, "not found"),
        ]
    )
    assert lamp_label(backend) == "CPU XNNPACK x2（回退：未找到 libvx_delegate.so, libedgetpu.so.1）"
    assert lamp_label("sqlite, 12 written, backlog 0, spool 3") == "sqlite，已写入 12，积压 0，缓存 3"
    assert lamp_label("12.5 GB free") == "剩余 12.5 GB" and lamp_label("server 127.0.0.1:502") == "服务器 127.0.0.1:502"
    assert lamp_label("3 boards in a row: no frame: timeout") == "连续 3 块板：无图像: timeout"
    assert lamp_label("lost: %1 gone; reconnecting") == "丢失：%1 gone；正在重连"  # a value is never re-substituted
    assert lamp_label("OSError: [Errno 5] I/O error") == "OSError: [Errno 5] I/O error" and lamp_label(None) == ""
    # The faults an operator must act on (camera reconnecting, PLC down, a refused recipe) were English in Chinese.
    cam = "cannot open (attempt 4, retry in 4.0 s): replay source /data/boards does not exist"
    assert lamp_label(cam) == "无法打开（第 4 次，4.0 秒后重试）：replay source /data/boards does not exist"
    assert lamp_label("PLC link down") == "PLC 连接断开"
    assert lamp_label("PLC heartbeat lost (no toggle within 3.0 s)") == "PLC 心跳丢失（3.0 秒内无翻转）"
    assert lamp_label("cannot run: recipes.demo.reference: missing") == "无法运行：recipes.demo.reference: missing"
    health.fail("recipe", "cannot run: recipes.demo.reference: missing")
    qtbot.waitUntil(lambda: scr.lamps["inspection"].name.text() == "检测", timeout=2000)
    assert scr.lamps["inspection"].reason.text() == "配方问题: 无法运行：recipes.demo.reference: missing"
    health.ok("recipe")
    health.ok("database", "sqlite, 7 written, backlog 0, spool 0")
    qtbot.waitUntil(lambda: scr.lamps["database"].reason.text() == "sqlite，已写入 7，积压 0，缓存 0", timeout=2000)
    save_shot(scr, "operator_zh_CN_1280x800")
    i18n.set_language("en")
    qtbot.waitUntil(lambda: scr.tiles["inspected"].name.text() == "INSPECTED", timeout=2000)
    assert scr.tiles["inspected"].name.text() == "INSPECTED" and scr.lamps["camera"].name.text() == "Camera"
    assert class_label("open") == "open"
    assert reason_label("model not loaded") == "model not loaded"
    with pytest.raises(ValueError, match="fr"):
        i18n.set_language("fr")


def test_every_source_string_is_translated(tmp_path):
    """lupdate over ui/*.py finds no string missing from the committed .ts, and none is unfinished."""
    lupdate = Path(sys.executable).with_name("pyside6-lupdate")
    if not lupdate.exists():
        lupdate = shutil.which("pyside6-lupdate")
    if not lupdate:
        pytest.skip("pyside6-lupdate not installed")
    fresh = tmp_path / "fresh.ts"
    shutil.copy(TS, fresh)
    sources = sorted(str(p) for p in (REPO / "ui").glob("*.py"))
    subprocess.run([str(lupdate), *sources, "-ts", str(fresh), "-no-obsolete"], check=True, capture_output=True)
    text = fresh.read_text(encoding="utf-8")
    unfinished = [
        re.search(r"<source>(.*?)</source>", m, re.S).group(1)
        for m in re.findall(r"<message>(.*?)</message>", text, re.S)
        if '<translation type="unfinished"' in m
    ]
    assert not unfinished, f"untranslated UI strings (update {TS.name} and run pyside6-lrelease): {unfinished}"
    assert i18n.qm_path("zh_CN").stat().st_mtime >= 0 and i18n.qm_path("zh_CN").stat().st_size > 1000
