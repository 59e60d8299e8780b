"""Hot swap under load: boards keep coming while a new model is loaded, verified and warmed up
beside the old one; the switch happens between two boards, no board is lost, and every result
names the model that judged it."""

from __future__ import annotations

import threading
import time

import pytest

from inspector.capture.replay import ReplayCameraSource
from inspector.config import Recipe, ReplayCamera
from inspector.decision import RecipeRules
from inspector.detect.base import ModelError
from inspector.detect.factory import hot_swap
from inspector.detect.litert import LiteRTDetector
from inspector.domain import TriggerRequest
from inspector.health import Health
from inspector.pipeline import Pipeline

from .conftest import M320, M640


class Sink:
    name = "test"

    def __init__(self):
        self.results = []
        self.lock = threading.Lock()

    def submit(self, r):
        with self.lock:
            self.results.append(r)


def test_hot_swap_under_load_loses_no_board(demo_boards, tmp_path):
    cam = ReplayCameraSource(ReplayCamera(path=demo_boards, fps=None, loop=True, trigger="software"))
    sink = Sink()
    health = Health()
    old = LiteRTDetector(M320, delegate="cpu", threads=1)
    p = Pipeline(cam, old, RecipeRules(Recipe()), health, [sink], triggered=True, keep_images=False)
    p.start()
    n = 36
    tickets = []
    stop_feeding = threading.Event()

    def feed():
        # the PLC side: a steady stream of boards, several in flight at once
        for i in range(n):
            while sum(not t.done.is_set() for t in tickets) >= 3:
                time.sleep(0.002)
            tickets.append(p.trigger(TriggerRequest(part_seq=i, serial=f"b{i}")))
        stop_feeding.set()

    feeder = threading.Thread(target=feed)
    try:
        feeder.start()
        while len(sink.results) < 8:
            time.sleep(0.01)
        # a broken model offered mid-run is refused in the caller; the line keeps the old model
        broken = tmp_path / "synth-det-640.tflite"
        broken.write_bytes(M640.read_bytes()[:5000])
        broken.with_suffix(".json").write_text(M640.with_suffix(".json").read_text())
        with pytest.raises(ModelError, match="sha256"):
            hot_swap(p, LiteRTDetector(broken, delegate="cpu", threads=1))
        new = LiteRTDetector(M640, delegate="cpu", threads=1)
        info = hot_swap(p, new)
        swapped_after = len(sink.results)
        feeder.join(60)
        assert stop_feeding.is_set()
        assert all(t.done.wait(30) for t in tickets), "a triggered board never got its result"
    finally:
        p.stop()
    old_id, new_id = old.info.model_id, info.model_id
    assert old_id != new_id
    assert len(tickets) == n and len(sink.results) == n
    results = sorted(sink.results, key=lambda r: r.part_seq)
    assert [r.part_seq for r in results] == list(range(n))  # no board lost, none answered twice
    assert all(r.reason is None for r in results), [r.reason for r in results if r.reason]
    ids = [r.model_id for r in results]
    assert set(ids) == {old_id, new_id}
    first_new = ids.index(new_id)
    assert first_new >= 8 and all(i == old_id for i in ids[:first_new]) and all(i == new_id for i in ids[first_new:])
    assert first_new <= swapped_after + 3  # switched within the boards already in flight
    assert p.detector_info.model_id == new_id and health.get("model").ok
    assert old._it is None  # the old interpreter was released after the switch
