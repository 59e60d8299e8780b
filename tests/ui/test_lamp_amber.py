"""A component that runs, but not as configured (the model on the CPU though an accelerator was
configured), shows an amber lamp: not green, and not red (the station stays READY)."""

from __future__ import annotations

from inspector.health import Health
from ui import theme
from ui.operator_screen import Lamp


def test_cpu_fallback_is_amber_ok_is_green_failure_is_red(qtbot):
    health = Health()
    lamp = Lamp("model")
    qtbot.addWidget(lamp)
    health.ok("model", "CPU XNNPACK x2 (fallback: libvx_delegate.so not found)", warning="CPU fallback: x")
    lamp.set_state(health.get("model"))
    assert theme.WARN in lamp.dot.styleSheet() and health.ready
    assert "CPU XNNPACK x2" in lamp.reason.text()
    health.ok("model", "NPU (vx)")
    lamp.set_state(health.get("model"))
    assert theme.PASS in lamp.dot.styleSheet()
    health.fail("model", "detector.require_accelerator is set but no accelerator runs the model")
    lamp.set_state(health.get("model"))
    assert theme.REJECT in lamp.dot.styleSheet() and not health.ready
