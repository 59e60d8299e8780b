"""The Qt binding itself: Signal.emit must not leak or steal references.

PySide6 6.12.0 returns True from emit() without taking a reference; on Python 3.11 (where True is
not immortal) a station aborts with "bool_dealloc" after a few thousand frames. pyproject.toml
excludes that version; this test catches it if an environment installs it anyway.
"""

from __future__ import annotations

import sys

from PySide6.QtCore import QObject, Signal


class _Emitter(QObject):
    sig = Signal(object)


def test_signal_emit_keeps_refcounts(qapp):
    e = _Emitter()
    got = []
    e.sig.connect(got.append)
    before = sys.getrefcount(True), sys.getrefcount(None)
    for i in range(50):
        e.sig.emit(i)
    after = sys.getrefcount(True), sys.getrefcount(None)
    assert len(got) == 50
    assert after == before, (
        f"Signal.emit changed refcounts of (True, None) by {after[0] - before[0]}, {after[1] - before[1]}: "
        "this PySide6 build is broken (6.12.0 is known bad; install 6.11.x)"
    )
