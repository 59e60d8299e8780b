"""End to end, headless: replay camera over synthetic boards -> pipeline -> LiteRT detector ->
decision, every verdict checked against the boards' ground truth (truth.json).

Runs on the shipped model (models/pcb-defect-det.tflite) when it is there, otherwise on the
fixture model trained on synthetic boards by scripts/make_fixture_models.py.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import numpy as np

from inspector.capture.replay import ReplayCameraSource
from inspector.config import DEFAULT_MODEL, DetectorSection, Recipe, ReplayCamera
from inspector.decision import RecipeRules
from inspector.detect.factory import create_detector
from inspector.detect.tiling import box_iou
from inspector.domain import TriggerRequest, Verdict
from inspector.health import Health
from inspector.pipeline import Pipeline
from inspector.synth import write_boards

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "models" / "synth-det-320.tflite"
MODEL = DEFAULT_MODEL if DEFAULT_MODEL.is_file() else FIXTURE


class Sink:
    name = "test"

    def __init__(self):
        self.results = []
        self.lock = threading.Lock()

    def submit(self, r):
        with self.lock:
            self.results.append(r)


def test_every_verdict_matches_ground_truth(tmp_path):
    boards = write_boards(tmp_path / "boards", 16, seed=29)
    truth = json.loads((boards / "truth.json").read_text())
    assert any(truth.values()) and not all(truth.values())  # both kinds of board are in the set
    detector = create_detector(DetectorSection(model=MODEL, delegate="cpu", threads=2))
    cam = ReplayCameraSource(ReplayCamera(path=boards, fps=None, loop=False, trigger="software"))
    sink, health = Sink(), Health()
    p = Pipeline(cam, detector, RecipeRules(Recipe()), health, [sink], triggered=True)
    p.start()
    names = sorted(truth)
    tickets = []
    try:
        for i, name in enumerate(names):
            tickets.append(p.trigger(TriggerRequest(part_seq=i, serial=name)))
            assert tickets[-1].done.wait(30), f"no result for {name}"
    finally:
        p.stop()
    assert health.get("model").ok and len(sink.results) == len(names)
    wrong = []
    for ticket, name in zip(tickets, names, strict=True):
        r = ticket.result
        assert r.reason is None and r.frame_meta["name"] == name and r.model_id == detector.info.model_id
        expected = Verdict.REJECT if truth[name] else Verdict.PASS
        if r.verdict is not expected:
            wrong.append(
                f"{name}: {r.verdict} but truth has {len(truth[name])} defects; got {[d.to_json() for d in r.detections]}"
            )
            continue
        if truth[name]:  # a REJECT must be for the right place, not a lucky false call
            t = np.array([d[:4] for d in truth[name]], np.float32)
            iou = box_iou(t, np.array([d.box for d in r.detections], np.float32))
            assert (iou.max(axis=1) >= 0.3).any(), f"{name}: rejected, but no detection overlaps a true defect"
    assert not wrong, "\n".join(wrong)
