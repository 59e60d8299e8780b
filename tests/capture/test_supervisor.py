"""The station's camera supervisor with a real camera: Aravis's fake GigE camera over loopback.

The pipeline is the real `inspector.pipeline.Pipeline`. Its detector is `NoDefectDetector` below, a
real Detector subclass that reports no defects: these tests are about capture (recovery, staleness,
trigger matching, health), not about finding defects, so every inspected board simply PASSes and the
results are used only to see WHICH frames were inspected and WHEN.
"""

from __future__ import annotations

import time

import pytest
from capture_helpers import HealthLog, NoDefectDetector, TimedSink, camera_ok, wait_for

from inspector.capture.aravis import AravisCameraSource
from inspector.capture.supervisor import WIRE_FRAME_WINDOW_S
from inspector.config import AravisCamera, Recipe, Roi
from inspector.decision import RecipeRules
from inspector.domain import TriggerRequest, Verdict
from inspector.health import ERROR_CODES, Health
from inspector.pipeline import Pipeline


def make_pipeline(address: str, **cam_kw) -> tuple[Pipeline, TimedSink, Health, NoDefectDetector]:
    cfg = AravisCamera(address=address, roi=Roi(width=320, height=240), **cam_kw)
    health = Health()
    health.ok("plc", "test")  # everything else healthy: READY hangs on the camera alone
    sink = TimedSink()
    det = NoDefectDetector()
    p = Pipeline(
        AravisCameraSource(cfg),
        det,
        RecipeRules(Recipe()),
        health,
        [sink],
        triggered=cfg.trigger != "free_run",
        frame_timeout_s=cfg.timeout_s,
        stall_timeouts=3,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
    )
    return p, sink, health, det


def test_camera_killed_mid_stream_recovers_by_itself(fake_gv):
    p, sink, health, det = make_pipeline(fake_gv.address, fps=20)
    log = HealthLog(health)
    p.start()
    try:
        assert wait_for(lambda: len(sink.results()) >= 10, 20), "no frames before the cable pull"
        assert health.ready and p.counters.state == "streaming"
        assert p.counters.stall_timeout_s == pytest.approx(0.25)  # 4 periods at 20 fps, floor 0.25 s
        before = sink.results()
        last_id_before = max(r.frame_id for r in before)

        t_kill = time.monotonic()
        fake_gv.kill()  # cable pulled / camera rebooting
        assert wait_for(lambda: not camera_ok(health), 5), "the watchdog never noticed the stall"
        # During the gap the station is NOT READY and the PLC's ERROR_CODE names the camera.
        assert not health.ready and health.error_code() == ERROR_CODES["camera"]
        assert wait_for(lambda: p.counters.reconnects >= 1, 10), "no re-initialisation after N timeouts"
        assert p.counters.fps == 0.0 and p.counters.timeouts >= 3
        # Stay down until an open attempt has failed: the supervisor keeps retrying with backoff.
        assert wait_for(lambda: "cannot open" in (health.get("camera").reason or ""), 15), health.summary()
        assert not health.ready
        gap_results = len(sink.results(after=t_kill + 0.1))

        t_restart = time.monotonic()
        fake_gv.start()
        assert wait_for(lambda: camera_ok(health), 20), f"no recovery: {health.summary()}"
        t_ok = time.monotonic()
        assert wait_for(lambda: len(sink.results(after=t_ok)) >= 10, 20), "no frames after recovery"
    finally:
        p.stop()

    after = sink.results(after=t_ok)
    # Nothing captured before the loss is inspected after it; every board after recovery is new.
    assert all(r.captured_at > t_restart for r in after), "a frame from before the loss was inspected"
    assert all(r.frame_meta["camera_session"] >= 1 for r in after)
    assert min(r.frame_id for r in after) > last_id_before
    ids = [r.frame_id for r in sink.results()]
    assert ids == sorted(ids) and len(ids) == len(set(ids)), "a frame was inspected twice"
    assert gap_results <= 1, "boards were 'inspected' while the camera was gone"
    assert all(r.verdict is Verdict.PASS for r in sink.results())
    assert det.calls == len(sink.results())
    # The health log shows the whole story: OK, then NOT READY (camera) during the gap, then OK.
    gap = [e for e in log.events if t_kill <= e[0] <= t_ok]
    assert gap and all(not ok and code == ERROR_CODES["camera"] and not ready for _, ok, _, code, ready in gap[:-1])
    reasons = " | ".join(reason for _, ok, reason, _, _ in gap if not ok)
    assert "stalled" in reasons and "cannot open" in reasons, reasons
    assert p.counters.frames >= 20 and p.counters.incomplete >= 0


def test_triggered_station_matches_frames_to_triggers_and_rejects_during_loss(fake_gv):
    p, sink, health, det = make_pipeline(fake_gv.address, trigger="software", timeout_s=1.0)
    p.start()
    try:
        assert wait_for(lambda: camera_ok(health), 20)
        tickets = [p.trigger(TriggerRequest(part_seq=i, serial=f"SN{i}")) for i in range(1)]
        for i in range(1, 6):
            assert tickets[-1].done.wait(5)
            tickets.append(p.trigger(TriggerRequest(part_seq=i, serial=f"SN{i}")))
        assert tickets[-1].done.wait(5)
        passed = [t for t in tickets if t.result.verdict is Verdict.PASS]
        for t in tickets:
            r = t.result
            if r.verdict is Verdict.PASS:
                assert r.frame_id == t.acq_id and r.board_serial == t.request.serial
                assert r.captured_at >= t.issued_at, "a frame older than its trigger answered it"
            else:  # only an incomplete buffer (counted, never inspected) may cost a board on loopback
                assert "missing-packets" in r.reason, r.reason
        assert len(passed) >= 5
        device_ids = [t.result.frame_meta["device_frame_id"] for t in passed]
        assert device_ids == sorted(set(device_ids)), "one camera frame per trigger, in order"
        assert p.counters.frames == len(passed)
        assert p.counters.missed_triggers == p.counters.incomplete == len(tickets) - len(passed)

        fake_gv.kill()
        # Idle between boards, the supervisor notices the camera is gone (idle check) on its own.
        assert wait_for(lambda: not camera_ok(health), 10), "camera loss not noticed while idle"
        assert health.error_code() == ERROR_CODES["camera"]
        lost = p.trigger(TriggerRequest(part_seq=99, serial="SN99"))
        assert lost.done.wait(5), "a trigger during the loss was left without an answer"
        assert lost.result.verdict is Verdict.REJECT and lost.acq_id is None
        assert "camera" in lost.result.reason

        fake_gv.start()
        assert wait_for(lambda: camera_ok(health), 20), health.summary()
        for attempt in range(3):
            back = p.trigger(TriggerRequest(part_seq=100 + attempt, serial=f"SN{100 + attempt}"))
            assert back.done.wait(5), "no answer after recovery"
            if back.result.verdict is Verdict.PASS:
                break
            assert "missing-packets" in back.result.reason, back.result.reason
        assert back.result.verdict is Verdict.PASS
        assert back.result.frame_meta["camera_session"] >= 1 and back.result.captured_at > back.issued_at
    finally:
        p.stop()
    assert p.counters.missed_triggers >= 1 and p.counters.reconnects >= 1


def test_only_incomplete_buffers_means_not_ready_and_nothing_inspected(fake_gv_factory):
    lossy = fake_gv_factory("-r", "200")  # every frame loses packets
    p, sink, health, det = make_pipeline(lossy.address, fps=20)
    log = HealthLog(health)
    p.start()
    try:
        assert wait_for(lambda: p.counters.reconnects >= 2, 20), "incomplete frames never led to a re-init"
        assert not health.ready and health.error_code() == ERROR_CODES["camera"]
    finally:
        p.stop()
    # Opening worked every time, but without one complete frame the station never said READY.
    assert log.events and not any(ok or ready for _, ok, _, _, ready in log.events)
    assert p.counters.incomplete >= 3 and p.counters.frames == 0
    assert sink.results() == [] and det.calls == 0, "an incomplete buffer was inspected"
    assert any("missing-packets" in reason for _, ok, reason, _, _ in log.events if not ok)


def test_free_running_camera_serving_plc_triggers_uses_frames_taken_after_the_trigger(fake_gv):
    cfg = AravisCamera(address=fake_gv.address, roi=Roi(width=320, height=240), fps=20)
    health = Health()
    sink = TimedSink()
    p = Pipeline(AravisCameraSource(cfg), NoDefectDetector(), RecipeRules(Recipe()), health, [sink], triggered=True)
    p.start()
    try:
        assert wait_for(lambda: camera_ok(health), 20)
        tickets = []
        for i in range(4):
            time.sleep(0.6)  # the camera keeps streaming between boards; its pool fills up meanwhile
            t = p.trigger(TriggerRequest(part_seq=i))
            assert t.done.wait(5)
            tickets.append(t)
    finally:
        p.stop()
    for t in tickets:
        assert t.result.verdict is Verdict.PASS, t.result.reason
        assert t.result.captured_at >= t.issued_at - 0.001, "a frame buffered before the trigger answered it"
    # Frames skipped between boards are by design here, not drops.
    assert p.counters.dropped_driver == 0 and p.counters.frames == 4
    assert p.camera.flushed >= 4, "the frames buffered between boards were not flushed"


def test_a_frame_in_transfer_at_the_trigger_never_answers_it(fake_gv):
    """Large frames take a while to arrive: the one in transfer at the trigger arrives after it, though the camera
    took it before (a board still moving into place, or the one before). The fake camera stamps each frame with
    the host's wall clock when it makes it, so the capture time can be checked against the trigger's."""
    cfg = AravisCamera(address=fake_gv.address, fps=5, roi=Roi(width=2048, height=2048), socket_buffer_bytes=32 << 20)
    health = Health()
    p = Pipeline(
        AravisCameraSource(cfg), NoDefectDetector(), RecipeRules(Recipe()), health, [TimedSink()], triggered=True
    )
    p.start()
    leads = []
    try:
        assert wait_for(lambda: camera_ok(health), 20)
        for i in range(30):
            time.sleep(0.3 + (i % 7) * 0.029)  # triggers fall anywhere in the camera's 200 ms cycle
            fired_ns = time.time_ns()
            t = p.trigger(TriggerRequest(part_seq=i))
            assert t.done.wait(5)
            assert t.result.verdict is Verdict.PASS, t.result.reason
            leads.append((fired_ns - t.result.frame_meta["device_timestamp_ns"]) / 1e6)
    finally:
        p.stop()
    assert max(leads) <= 0, f"boards answered by frames taken before their trigger (ms before): {leads}"


def test_a_missed_trigger_rejects_that_board_but_keeps_the_station_ready(demo_boards):
    """In triggered mode NOT READY after one miss would never clear (the PLC only triggers a READY station)."""
    from inspector.capture.replay import ReplayCameraSource
    from inspector.config import ReplayCamera

    class LosesSecondTrigger(ReplayCameraSource):
        """The real replay camera, with the second trigger pulse lost on the way (a flaky trigger wire)."""

        pulses = 0

        def trigger(self):
            self.pulses += 1
            if self.pulses != 2:
                super().trigger()

    cam = LosesSecondTrigger(ReplayCamera(path=demo_boards, fps=None, trigger="software"))
    health = Health()
    sink = TimedSink()
    p = Pipeline(cam, NoDefectDetector(), RecipeRules(Recipe()), health, [sink], triggered=True, frame_timeout_s=0.3)
    p.start()
    try:
        assert wait_for(lambda: camera_ok(health), 10)
        verdicts = []
        for i in range(3):
            t = p.trigger(TriggerRequest(part_seq=i))
            assert t.done.wait(5)
            verdicts.append((t.result.verdict, t.result.reason))
            assert health.get("camera").ok, "one missed trigger must not drop READY"
            if i == 1:
                assert "missed trigger (1/3)" in health.get("camera").detail
    finally:
        p.stop()
    assert verdicts[0][0] is Verdict.PASS and verdicts[2][0] is Verdict.PASS
    assert verdicts[1][0] is Verdict.REJECT and "no frame" in verdicts[1][1]
    assert p.counters.missed_triggers == 1 and p.counters.reconnects == 0
    assert "missed trigger" not in health.get("camera").detail  # cleared by the next good frame


def test_a_camera_lost_between_boards_is_noticed_through_the_undistorting_wrapper(fake_gv):
    """With intrinsics and `undistort = true` the camera is wrapped; the supervisor's idle check must still reach
    the device, so the PLC sees NOT READY before it sends the next board, not after."""
    import numpy as np

    from calibration.undistort import Undistorter, UndistortingCamera

    cfg = AravisCamera(address=fake_gv.address, roi=Roi(width=320, height=240), trigger="software", timeout_s=1.0)
    k = np.array([[300.0, 0, 160], [0, 300.0, 120], [0, 0, 1]])
    cam = UndistortingCamera(AravisCameraSource(cfg), Undistorter(k, np.zeros(5), (320, 240)))
    health = Health()
    p = Pipeline(
        cam,
        NoDefectDetector(),
        RecipeRules(Recipe()),
        health,
        [TimedSink()],
        triggered=True,
        frame_timeout_s=1.0,
        backoff_initial_s=0.2,
        backoff_max_s=1.0,
    )
    p.start()
    try:
        assert wait_for(lambda: camera_ok(health), 20)
        t = p.trigger(TriggerRequest(part_seq=1))
        assert t.done.wait(5) and t.result.verdict is Verdict.PASS, t.result.reason
        fake_gv.kill()  # lost between boards
        assert wait_for(lambda: not camera_ok(health), 8), "the idle check did not reach the wrapped camera"
    finally:
        p.stop()


def test_a_driver_exception_at_the_trigger_is_a_lost_camera_not_a_dead_capture_thread(demo_boards):
    """GenTL (harvesters) raises its own exceptions when the device goes away, e.g. from the flush before a
    trigger. That ended the capture thread: no reconnect, and no later board answered (only the PLC's timeout).
    Now the board is a REJECT, the camera is re-opened and the next board is inspected."""
    from inspector.capture.replay import ReplayCameraSource
    from inspector.config import ReplayCamera

    class DeviceGoneOnce(ReplayCameraSource):
        """The real replay camera whose driver raises once at the flush before the second board."""

        flushes = 0

        def flush(self):
            self.flushes += 1
            if self.flushes == 2:
                raise RuntimeError("GenTL: GC_ERR_INVALID_HANDLE (device lost)")
            super().flush()

    cam = DeviceGoneOnce(ReplayCamera(path=demo_boards, fps=None, trigger="software"))
    health = Health()
    p = Pipeline(
        cam, NoDefectDetector(), RecipeRules(Recipe()), health, [TimedSink()], triggered=True, backoff_initial_s=0.1
    )
    p.start()
    try:
        assert wait_for(lambda: camera_ok(health), 10)
        results = []
        for i in range(3):
            t = p.trigger(TriggerRequest(part_seq=i))
            assert t.done.wait(10), f"board {i} never answered"
            results.append(t.result)
            if i == 1:
                assert wait_for(lambda: camera_ok(health), 10), health.get("camera")
    finally:
        p.stop()
    assert [r.verdict for r in results] == [Verdict.PASS, Verdict.REJECT, Verdict.PASS], [r.reason for r in results]
    assert "GC_ERR_INVALID_HANDLE" in results[1].reason and p.counters.reconnects == 1


def test_a_camera_fired_by_wire_keeps_its_frame_when_the_plc_write_comes_later(fake_gv):
    """trigger = "line": the PLC pulses the camera's input and writes TRIGGER; the two are not ordered. The frame
    that arrived before the ticket is this board's (it was thrown away at the flush, and the board REJECTed "no
    frame"); a frame from a pulse long before (a spurious one) is not. The fake camera has no input line: its
    software trigger, fired by the test, plays the wire, and the station fires nothing, as for a line camera."""

    class FiredByWire(AravisCameraSource):
        def trigger(self):  # the wire fires the camera, not the station
            return

    cam = FiredByWire(
        AravisCamera(
            address=fake_gv.address,
            roi=Roi(width=640, height=480),
            trigger="software",
            timeout_s=1.0,
            socket_buffer_bytes=32 << 20,  # no packets lost on a busy test machine
        )
    )
    cam.fired_by_wire = True  # what trigger = "line" sets; the camera is set up for the trigger the test fires
    health = Health()
    p = Pipeline(
        cam,
        NoDefectDetector(),
        RecipeRules(Recipe()),
        health,
        [TimedSink()],
        triggered=True,
        frame_timeout_s=1.0,
        stall_timeouts=100,
    )
    p.start()
    results = []
    try:
        assert wait_for(lambda: camera_ok(health), 20)
        # The fake camera's first frame of a session arrives broken about one time in four ("status timeout",
        # measured: 17 of 60 sessions, none of the later frames); a broken board frame is a REJECT, rightly.
        # One pulse before the boards takes that frame; it is older than the window, so the first board skips it.
        cam._camera.software_trigger()
        time.sleep(WIRE_FRAME_WINDOW_S + 0.2)
        for lag_s in (0.0, 0.06, 0.15, -0.1):
            time.sleep(0.4)
            if lag_s >= 0:  # the pulse first, the register write lag_s later
                pulsed_ns = time.time_ns()
                cam._camera.software_trigger()
                time.sleep(lag_s)
                t = p.trigger(TriggerRequest(part_seq=len(results)))
            else:  # the register write first
                t = p.trigger(TriggerRequest(part_seq=len(results)))
                time.sleep(-lag_s)
                pulsed_ns = time.time_ns()
                cam._camera.software_trigger()
            assert t.done.wait(5)
            results.append((t.result, pulsed_ns))
        stale_before = p.counters.stale
        cam._camera.software_trigger()  # a spurious pulse ...
        time.sleep(1.0)  # ... long before the next board's
        pulsed_ns = time.time_ns()
        cam._camera.software_trigger()
        t = p.trigger(TriggerRequest(part_seq=9))
        assert t.done.wait(5)
        results.append((t.result, pulsed_ns))
    finally:
        p.stop()
    assert [r.verdict for r, _ in results] == [Verdict.PASS] * 5, [r.reason for r, _ in results]
    taken_after_pulse = [r.frame_meta["device_timestamp_ns"] >= pulsed - 5_000_000 for r, pulsed in results]
    assert all(taken_after_pulse), "a board was answered by the frame of an earlier pulse"
    assert p.counters.stale > stale_before, "the spurious pulse's frame was passed over"
