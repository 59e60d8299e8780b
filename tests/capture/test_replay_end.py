"""`camera.loop = false`: the end of the replay folder is the end, also across the supervisor's reopen.

A quality engineer re-runs a folder of archived boards through a new recipe; every board must be judged (and
recorded) once. The supervisor reopens a camera that stops sending (the end of the folder looks like a stall):
the reopen must not start the folder again.

Real files, the real `ReplayCameraSource` and the real `Pipeline` (its detector finds nothing: these tests are
about which frames reach inspection, not about defects).
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pytest
from capture_helpers import HealthLog, NoDefectDetector, TimedSink, wait_for

from inspector.capture.base import FrameTimeout
from inspector.capture.replay import ReplayCamera, ReplayCameraSource
from inspector.config import Recipe
from inspector.decision import RecipeRules
from inspector.health import Health
from inspector.pipeline import Pipeline


def _folder(tmp_path: Path, n: int = 2) -> Path:
    rng = np.random.default_rng(1)
    for i in range(n):
        cv2.imwrite(str(tmp_path / f"b{i}_test.png"), rng.integers(0, 255, (64, 64), np.uint8))
    return tmp_path


def test_end_of_folder_stays_the_end_after_a_reopen(tmp_path):
    cam = ReplayCameraSource(ReplayCamera(path=_folder(tmp_path), fps=None, loop=False))
    cam.open()
    assert [cam.grab(1.0).meta["name"] for _ in range(2)] == ["b0", "b1"]
    t0 = time.monotonic()
    with pytest.raises(FrameTimeout, match="end of replay folder"):
        cam.grab(0.3)
    assert time.monotonic() - t0 >= 0.25  # no frames: it waits like a camera that sends nothing, it does not spin
    cam.close()
    cam.open()  # the supervisor's reconnect
    with pytest.raises(FrameTimeout, match="end of replay folder"):
        cam.grab(0.1)
    cam.close()


def test_loop_still_starts_again(tmp_path):
    cam = ReplayCameraSource(ReplayCamera(path=_folder(tmp_path), fps=None, loop=True))
    cam.open()
    assert [cam.grab(1.0).meta["name"] for _ in range(3)] == ["b0", "b1", "b0"]
    cam.close()


def test_the_station_judges_each_board_of_the_folder_once(tmp_path):
    cam = ReplayCameraSource(ReplayCamera(path=_folder(tmp_path), fps=20.0, loop=False))
    health = Health()
    health.ok("plc", "test")
    log = HealthLog(health)
    sink = TimedSink()
    p = Pipeline(
        cam,
        NoDefectDetector(),
        RecipeRules(Recipe()),
        health,
        [sink],
        triggered=False,
        frame_timeout_s=0.3,
        stall_timeouts=2,
        backoff_initial_s=0.05,
        backoff_max_s=0.1,
    )
    p.start()
    try:
        # The end of the folder is a stall; after `stall_timeouts` of them the supervisor reopens the camera.
        assert wait_for(lambda: p.counters.reconnects >= 2, 15), p.counters
        time.sleep(0.5)
    finally:
        p.stop()
    names = Counter(r.frame_meta["name"] for r in sink.results())
    assert names == {"b0": 1, "b1": 1}, names
    # The station says why no boards come (NOT READY naming the end of the folder), not a bare stall.
    assert any(not ok and "end of replay folder" in reason for _, ok, reason, _, _ in log.events), log.events
