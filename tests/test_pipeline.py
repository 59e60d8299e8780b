"""The pipeline with real parts: replay camera over synthetic boards, the classical detector."""

from __future__ import annotations

import threading
import time

import numpy as np

from inspector.capture.base import Camera, CameraInfo, FrameTimeout
from inspector.capture.replay import ReplayCameraSource
from inspector.config import Recipe, ReplayCamera
from inspector.decision import RecipeRules
from inspector.detect.classical import DifferenceDetector
from inspector.domain import Frame, TriggerRequest, Verdict
from inspector.health import Health
from inspector.pipeline import LatestFrameSlot, Pipeline


class ListSink:
    name = "test"

    def __init__(self):
        self.results = []
        self.lock = threading.Lock()

    def submit(self, r):
        with self.lock:
            self.results.append(r)


def wait_for(cond, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.02)
    return False


def test_slot_keeps_latest_and_counts_drops():
    slot = LatestFrameSlot(triggered_capacity=2)
    img = np.zeros((4, 4), np.uint8)
    for i in range(5):
        slot.put(Frame(i, 0.0, img))
    assert slot.dropped == 4 and slot.take(0.01).id == 4 and slot.take(0.01) is None
    assert slot.put(Frame(10, 0.0, img, trigger_id=1)) is None
    assert slot.put(Frame(11, 0.0, img, trigger_id=2)) is None
    overflow = slot.put(Frame(12, 0.0, img, trigger_id=3))
    assert overflow is not None and overflow.id == 12  # triggered frames are never dropped silently
    assert [slot.take(0.01).id, slot.take(0.01).id] == [10, 11]


def test_free_run_verdicts_match_truth_and_stop_is_clean(demo_boards, demo_truth):
    cam = ReplayCameraSource(ReplayCamera(path=demo_boards, fps=None, loop=False, trigger="software"))
    sink = ListSink()
    health = Health()
    p = Pipeline(cam, DifferenceDetector(), RecipeRules(Recipe()), health, [sink], triggered=True, frame_timeout_s=1.0)
    p.start()
    names = sorted(demo_truth)
    tickets = []
    for i, name in enumerate(names):
        tickets.append(p.trigger(TriggerRequest(part_seq=i, serial=name)))
        assert tickets[-1].done.wait(10), f"no result for {name}"
    p.stop()
    assert not p.running and not any(t.name in {"capture", "inference"} for t in threading.enumerate())
    assert len(sink.results) == len(names)
    for ticket, name in zip(tickets, names, strict=True):
        r = ticket.result
        assert r.board_serial == name and r.part_seq == ticket.request.part_seq
        assert r.frame_meta["name"] == name, "result matched to the wrong board"
        expected = Verdict.REJECT if demo_truth[name] else Verdict.PASS
        assert r.verdict is expected, f"{name}: {r.verdict} but truth has {len(demo_truth[name])} defects"
        assert r.model_id.startswith("classical-diff") and r.timings_ms["total"] > 0
    assert health.ready is False or health.get("camera").ok  # camera closed at stop


class DeadCamera(Camera):
    """A camera that opens but never delivers a frame (cable pulled after open)."""

    def open(self):
        return CameraInfo(width=64, height=64, pixel_format="Mono8")

    def close(self):
        pass

    def grab(self, timeout_s):
        time.sleep(timeout_s)
        raise FrameTimeout("no frame")


def test_trigger_without_frame_rejects_with_reason():
    sink = ListSink()
    health = Health()
    p = Pipeline(
        DeadCamera(),
        DifferenceDetector(),
        RecipeRules(Recipe()),
        health,
        [sink],
        triggered=True,
        frame_timeout_s=0.2,
        stall_timeouts=100,
    )
    p.start()
    t = p.trigger(TriggerRequest(part_seq=7, serial="SN7"))
    assert t.done.wait(5)
    p.stop()
    assert t.result.verdict is Verdict.REJECT and "no frame" in t.result.reason
    assert t.result.part_seq == 7 and p.counters.missed_triggers == 1
    assert sink.results == [t.result]


def test_free_run_drops_are_counted_and_model_failure_rejects(demo_boards):
    cam = ReplayCameraSource(ReplayCamera(path=demo_boards, fps=None, loop=True))
    sink = ListSink()
    health = Health()

    class SlowDetector(DifferenceDetector):
        def detect(self, image, reference=None, thresholds=None):
            time.sleep(0.05)
            return super().detect(image, reference, thresholds)

    p = Pipeline(cam, SlowDetector(), RecipeRules(Recipe()), health, [sink])
    p.start()
    assert wait_for(lambda: len(sink.results) >= 5)
    p.stop()
    assert p.counters.dropped > 0 and p.counters.frames > len(sink.results)

    class BrokenModel(DifferenceDetector):
        def load(self):
            from inspector.detect.base import ModelError

            raise ModelError("model.tflite: sha256 mismatch")

    sink2 = ListSink()
    h2 = Health()
    p2 = Pipeline(
        ReplayCameraSource(ReplayCamera(path=demo_boards, fps=20)), BrokenModel(), RecipeRules(Recipe()), h2, [sink2]
    )
    p2.start()
    assert wait_for(lambda: len(sink2.results) >= 2)
    p2.stop()
    assert all(r.verdict is Verdict.REJECT and r.reason == "model not loaded" for r in sink2.results)
    assert not h2.ready and "sha256 mismatch" in h2.get("model").reason


def test_three_failed_boards_in_a_row_drop_ready_until_cleared(demo_boards, tmp_path):
    import shutil

    from inspector.health import ERROR_CODES

    # Good boards with their references, registered, but a detector that fails on every board
    # (ValueError): a systematic fault, not a bad board.
    boards = tmp_path / "boards"
    boards.mkdir()
    for f in sorted(demo_boards.glob("*.png"))[:12]:
        shutil.copy(f, boards / f.name)

    class Broken(DifferenceDetector):
        def warm_up(self, runs: int = 1) -> None:
            return 0.0  # loads fine; fails on the boards

        def detect(self, image, reference=None, thresholds=None):
            raise ValueError(f"cannot process a {image.shape} board")

    cam = ReplayCameraSource(ReplayCamera(path=boards, fps=None, trigger="software"))
    health = Health()
    p = Pipeline(cam, Broken(), RecipeRules(Recipe()), health, [ListSink()], triggered=True)
    p.start()
    try:
        results = []
        for i in range(3):
            t = p.trigger(TriggerRequest(part_seq=i))
            assert t.done.wait(10)
            results.append(t.result)
            if i < 2:
                state = health.get("pipeline")
                assert state is None or state.ok, "one or two failed boards must not stop the line"
        assert all(r.verdict is Verdict.REJECT and r.reason.startswith("inspection failed") for r in results)
        state = health.get("pipeline")
        assert not state.ok and "3 boards in a row" in state.reason
        assert health.error_code() == ERROR_CODES["pipeline"]
        p.clear_faults()  # what the PLC's CLEAR_ERROR or the operator's acknowledge does
        assert health.get("pipeline").ok
    finally:
        p.stop()


def test_one_route_out_ticket_first_then_sinks_and_listeners_in_order(demo_boards):
    """Every result leaves through one fan-out: the ticket is complete before any sink sees the result;
    sinks and on_result functions get it in the order added; a failing station sink is a station
    fault (named), a failing listener is only logged."""
    order: list[str] = []
    tickets = []

    class Probe:
        def __init__(self, name, fail=False):
            self.name, self.fail = name, fail

        def submit(self, r):
            assert tickets and tickets[0].done.is_set(), "sink saw the result before the ticket was completed"
            order.append(self.name)
            if self.fail:
                raise RuntimeError("disk gone")

    def listener(r):
        order.append("listener")
        raise ValueError("view closed")

    cam = ReplayCameraSource(ReplayCamera(path=demo_boards, fps=None, loop=True, trigger="software"))
    health = Health()
    p = Pipeline(cam, DifferenceDetector(), RecipeRules(Recipe()), health, [Probe("records")], triggered=True)
    p.on_result(listener)
    p.add_sink(Probe("plc-link", fail=True))
    p.start()
    try:
        tickets.append(p.trigger(TriggerRequest(part_seq=1, serial="x")))
        assert tickets[0].done.wait(20) and wait_for(lambda: len(order) == 3)
    finally:
        p.stop()
    assert order == ["records", "listener", "plc-link"]
    assert health.get("plc-link") is not None and not health.get("plc-link").ok
    assert "disk gone" in health.get("plc-link").reason
    assert all("listener" not in name for name in health.snapshot())
