"""The same defect at the same place on board after board: dust on the lens (or a process fault upstream) is an alarm
that stops the line, not a run of plausible rejects.

Real boards: the DeepPCB fixture 92000010 rendered as a gray camera sees it, the shipped model, and a soft dark speck
(dust on the lens) at one place of every frame taken after the golden image.
"""

from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydantic import ValidationError

from inspector.config import DetectorSection, Recipe, StationConfig, SupervisorSection
from inspector.decision import RecipeRules
from inspector.detect.factory import create_detector
from inspector.domain import TriggerRequest, Verdict
from inspector.evaluation.camera_domain import capture_pair
from inspector.inspection import inspect_board
from inspector.registration import BoardRegistrar
from inspector.repeat_watch import RepeatedDefectWatch
from inspector.station import build_station

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ROOT / "models" / "pcb-defect-det.tflite"
TEMPLATE = ROOT / "tests" / "fixtures" / "deeppcb" / "92000010_temp.jpg"
SPECK = (455.0, 544.0)  # on a wide copper pour of 92000010, where the golden image has no defect


def _dust(frame: np.ndarray, centre: tuple[float, float] = SPECK, sigma: float = 3.0, depth: float = 0.6):
    """A speck of dust on the lens: the light through a few pixels dimmed, softly (it sits out of focus)."""
    h, w = frame.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dim = 1.0 - depth * np.exp(-((xx - centre[0]) ** 2 + (yy - centre[1]) ** 2) / (2 * sigma**2))
    return np.clip(frame.astype(np.float32) * dim, 0, 255).astype(np.uint8)


def _captures(n: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """The golden capture of 92000010 and `n` good boards of the design (each its own physical board, 3 px / 0.5 deg
    off), taken after dust settled on the lens."""
    temp = cv2.imread(str(TEMPLATE), cv2.IMREAD_GRAYSCALE)
    golden = capture_pair(temp, temp, 1, mode="gray")["golden"][0]
    boards = []
    for seed in range(1, n + 1):
        f = capture_pair(temp, temp, seed, mode="gray", max_shift=3, max_rot_deg=0.5, other=True)
        boards.append(_dust(f["other"][0]))
    return golden, boards


def test_a_run_needs_every_board_at_one_place_and_a_pass_breaks_it():
    watch = RepeatedDefectWatch(boards=3, radius_px=10.0)
    spot = ((100.0, 100.0, 110.0, 110.0), "pin-hole")
    elsewhere = ((400.0, 300.0, 410.0, 312.0), "spur")
    assert watch.observe([spot]) is None
    assert watch.observe([spot, elsewhere]) is None
    hit = watch.observe([((103.0, 98.0, 113.0, 110.0), "open")])  # 3 px and 1 px off: the same place
    assert hit is not None and (hit.x, hit.y, hit.boards, hit.label) == (108.0, 104.0, 3, "open")
    assert "3 boards in a row" in hit.reason and "clean the lens" in hit.reason
    assert watch.observe([]) is None  # a board without defects (a PASS) ends the run
    assert watch.observe([spot]) is None and watch.observe([spot]) is None
    assert watch.observe([spot]) is not None  # three again after it
    assert watch.observe([((130.0, 100.0, 140.0, 110.0), "spur")]) is None  # 30 px away: another place
    watch.reset()
    assert watch.observe([spot]) is None and watch.observe([spot]) is None  # a CLEAR starts the count again
    assert len(watch._recent) <= 3  # bounded: it keeps only the boards a run can span
    with pytest.raises(ValueError, match="at least 2"):
        RepeatedDefectWatch(boards=1)


def test_the_place_that_repeats_names_the_cause():
    """A defect at one place of the frame is named with the lens first; one that moves in the frame (a loose
    fixture) but stays at one place of the board is the process's; at both (a tight fixture) the frame's wins."""
    board_place = ((200.0, 200.0, 210.0, 210.0), "short")
    watch = RepeatedDefectWatch(boards=3)
    for k in range(3):
        moved = ((200.0 + 30 * k, 200.0, 210.0 + 30 * k, 210.0), "short")  # 30 px further each board in the frame
        hit = watch.observe([moved], [board_place])
    assert hit is not None and hit.place == "board" and (hit.x, hit.y) == (205.0, 205.0), hit
    assert "of the board (short): check the process upstream" in hit.reason and "lens" not in hit.reason
    watch.reset()
    for k in range(3):
        hit = watch.observe([board_place], [((200.0 + 30 * k, 200.0, 210.0 + 30 * k, 210.0), "short")])
    assert hit is not None and hit.place == "frame" and "clean the lens" in hit.reason, hit
    watch.reset()
    for _ in range(3):
        hit = watch.observe([board_place], [board_place])
    assert hit is not None and hit.place == "frame", hit


def test_one_board_in_a_run_is_refused_in_the_station_file():
    """`repeat_boards = 1` would stop the line on every rejected board: refused by name; 0 switches the watch off."""
    with pytest.raises(ValidationError, match="0 \\(never\\) or 2 and more"):
        SupervisorSection(repeat_boards=1)
    assert SupervisorSection(repeat_boards=0).repeat_boards == 0
    assert StationConfig().supervisor.repeat_boards == 5


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped model is not in models/")
def test_dust_on_the_lens_rejects_good_board_after_good_board_at_one_place_and_the_watch_names_it():
    """Five good boards of 92000010 taken after dust settled on the lens: each is rejected for a defect at the speck
    (it dims copper to the laminate's level there). The watch says so on the fifth board, at the speck, and not
    before; the same boards without the speck pass."""
    golden, boards = _captures(5)
    det = create_detector(DetectorSection(model=SHIPPED, delegate="cpu", threads=2))
    det.load()
    watch = RepeatedDefectWatch(boards=5, radius_px=12.0)
    try:
        registrar = BoardRegistrar()
        rules = RecipeRules(Recipe())
        for k, frame in enumerate(boards):
            board = inspect_board(frame, golden, rules, det, registrar)
            assert board.verdict is Verdict.REJECT, (k, board.reason)
            hit = watch.observe((d.box, d.label) for d in board.detections)
            assert (hit is None) == (k < 4), (k, hit)
        assert np.hypot(hit.x - SPECK[0], hit.y - SPECK[1]) < 12.0, hit
        temp = cv2.imread(str(TEMPLATE), cv2.IMREAD_GRAYSCALE)
        clean = capture_pair(temp, temp, 3, mode="gray", max_shift=3, max_rot_deg=0.5, other=True)["other"][0]
        assert inspect_board(clean, golden, rules, det, registrar).verdict is Verdict.PASS
    finally:
        det.close()


class _Station:
    """The station as `run` builds it (`build_station`), on a replay camera over `frames` in order, one software
    trigger per board, with `[supervisor] repeat_boards = 3` and the golden image as its recipe's reference."""

    def __init__(self, tmp_path: Path, golden: np.ndarray, frames: list[np.ndarray], trigger: str = "software"):
        cv2.imwrite(str(tmp_path / "golden.png"), golden)
        folder = tmp_path / "frames"
        folder.mkdir()
        for k, frame in enumerate(frames):
            cv2.imwrite(str(folder / f"{k:03d}.png"), frame)
        cfg = StationConfig.model_validate(
            {
                "detector": {"model": str(SHIPPED), "delegate": "cpu", "threads": 2},
                "plc": {"mode": "off"},
                "camera": {
                    "type": "replay",
                    "path": str(folder),
                    "fps": 20,
                    "loop": trigger == "free_run",
                    "trigger": trigger,
                },
                "supervisor": {"repeat_boards": 3},
                "recipes": [{"name": "b92", "reference": str(tmp_path / "golden.png")}],
                "active_recipe": "b92",
            }
        )
        self.results: list = []
        self.station = build_station(cfg, with_storage=False, with_plc=False)
        self.station.pipeline.on_result(self.results.append)
        self.health = self.station.pipeline.health
        self.boards = 0

    def board(self) -> None:
        t = self.station.pipeline.trigger(TriggerRequest(part_seq=self.boards))
        assert t.done.wait(120), f"no result for board {self.boards}"
        self.boards += 1

    def verdicts(self) -> list[Verdict]:
        deadline = time.monotonic() + 10
        while len(self.results) < self.boards and time.monotonic() < deadline:
            time.sleep(0.05)
        return [r.verdict for r in self.results]


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped model is not in models/")
def test_the_station_drops_ready_on_a_repeated_defect_until_cleared(tmp_path):
    """With `[supervisor] repeat_boards = 3`: three good boards rejected at the dust speck, and the station is NOT
    READY with the reason and ERROR_CODE 85 (the PLC sees it); the operator's or the PLC's CLEAR makes it READY
    again, and it takes three more such boards to stop again."""
    golden, boards = _captures(3)
    line = _Station(tmp_path, golden, boards * 2)
    health = line.health
    line.station.start()
    try:
        line.board()
        line.board()
        assert health.get("repeat").ok
        line.board()
        state = health.get("repeat")
        assert not state.ok and "same defect on 3 boards in a row" in state.reason, state
        assert "clean the lens" in state.reason and "of the board" not in state.reason
        assert not health.ready and health.error_code() == 85
        line.station.pipeline.clear_faults()
        assert health.get("repeat").ok
        line.board()
        line.board()
        assert health.get("repeat").ok  # two boards since the CLEAR: not yet a run
        line.board()
        assert not health.get("repeat").ok
    finally:
        line.station.stop()
    assert line.verdicts() == [Verdict.REJECT] * 6


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped model is not in models/")
def test_a_free_running_camera_is_not_watched_for_repeats(tmp_path):
    """Free-running, the camera shows a board that stands still frame after frame: the same defect at the same place
    is then one board seen again, not a fault. Only triggered boards (one board per trigger) are watched."""
    golden, boards = _captures(3)
    line = _Station(tmp_path, golden, boards * 2, trigger="free_run")
    line.station.start()
    try:
        deadline = time.monotonic() + 60
        while len(line.results) < 6 and time.monotonic() < deadline:
            time.sleep(0.05)
        state = line.health.get("repeat")
    finally:
        line.station.stop()
    assert len(line.results) >= 6 and all(r.verdict is Verdict.REJECT for r in line.results[:6])
    assert state.ok, state


@pytest.mark.skipif(not SHIPPED.is_file(), reason="the shipped model is not in models/")
def test_a_defect_at_one_place_of_the_board_repeats_on_a_loose_fixture_and_is_named_as_the_process(tmp_path):
    """A process fault puts the same defects at the same place of every board (here DeepPCB 92000010's own defects,
    on three physical boards); on a fixture that lets boards sit up to 20 px apart the frame's place moves, the
    board's does not. The station says so: not the lens, the process upstream."""
    test = cv2.imread(str(TEMPLATE).replace("_temp", "_test"), cv2.IMREAD_GRAYSCALE)
    temp = cv2.imread(str(TEMPLATE), cv2.IMREAD_GRAYSCALE)
    golden = capture_pair(temp, temp, 1, mode="gray")["golden"][0]
    boards, captures = [], []
    for seed in (11, 12, 13):
        frame, capture = capture_pair(test, temp, seed, mode="gray", max_shift=10, max_rot_deg=0.5)["board"]
        boards.append(frame)
        captures.append(capture.matrix[:, 2])
    spread = max(float(np.hypot(*(a - b))) for a in captures for b in captures)
    assert spread > 12.0, captures  # the boards really lie further apart than one place of the frame
    line = _Station(tmp_path, golden, boards)
    line.station.start()
    try:
        for _ in boards:
            line.board()
        state = line.health.get("repeat")
    finally:
        line.station.stop()
    assert line.verdicts() == [Verdict.REJECT] * 3
    assert not state.ok and "of the board" in state.reason and "check the process upstream" in state.reason, state
