"""Calibration inside a real station: `build_station` with stored calibrations in a real SQLite database.

The boards are seen through a lens with known distortion (the stored intrinsics), one is displaced in
the fixture, one is a different board, and some are taken with a dimmed, defocused lens. The station
runs the replay camera, the classical difference detector, the recorder and the calibration hook
found through the `pcb_inspector.calibration` entry point, exactly as `pcb-inspector run` builds it.
"""

from __future__ import annotations

import time
from importlib.metadata import entry_points
from pathlib import Path

import cv2
import numpy as np
import pytest

from calibration.errors import CalibrationError
from calibration.health import OpticsLimits, measure_optics
from calibration.intrinsics import IntrinsicsResult
from calibration.store import INTRINSICS, SCALE, CalibrationStore, reference_kind
from calibration.undistort import Undistorter, UndistortingCamera
from inspector.config import StationConfig
from inspector.decision import RecipeError
from inspector.domain import TriggerRequest, Verdict
from inspector.health import ERROR_CODES
from inspector.pipeline import UNREGISTERED
from inspector.registration import BoardRegistrar
from inspector.station import build_station
from inspector.storage import open_database
from inspector.synth import make_board, write_boards

SIZE = 640
K = np.array([[800.0, 0, 322.0], [0, 800.0, 317.0], [0, 0, 1]])
DIST = np.array([-0.12, 0.05, 0.0, 0.0, 0.0])
MM_PER_PX = 0.05
SHIFT = (9, -6)


def _lens() -> Undistorter:
    return Undistorter(K, DIST, (SIZE, SIZE))


def _distort(images: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What the lens makes of ideal boards: for each sensor pixel, the ideal (undistorted) point it sees."""
    ys, xs = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    m = _lens().undistort_points(np.stack([xs.ravel(), ys.ravel()], 1)).astype(np.float32).reshape(SIZE, SIZE, 2)
    return {
        k: cv2.remap(v, m[..., 0], m[..., 1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
        for k, v in images.items()
    }


@pytest.fixture(scope="module")
def line(tmp_path_factory):
    """Boards of one design (seed 5) through the lens, in capture order, each with the golden reference."""
    folder = tmp_path_factory.mktemp("line")
    design = make_board(5, defect_rate=1.0)
    golden = design.reference
    moved = cv2.warpAffine(  # whole-pixel move: the fixture displacement adds no blur of its own
        golden, np.float32([[1, 0, SHIFT[0]], [0, 1, SHIFT[1]]]), (SIZE, SIZE), borderMode=cv2.BORDER_REPLICATE
    )
    raw = _distort(
        {
            "golden": golden,
            "a_moved": moved,
            "b_defects": design.image,
            "c_wrong": make_board(77, defect_rate=0.0).image,
        }
    )
    # dimmed lamp and defocused lens
    dark = cv2.GaussianBlur((raw["golden"].astype(np.float32) * 0.55).astype(np.uint8), (0, 0), 2.0)
    for name in ("a_moved", "b_defects", "c_wrong"):
        cv2.imwrite(str(folder / f"{name}_test.png"), raw[name])
    for i in (1, 2, 3):
        cv2.imwrite(str(folder / f"d{i}_dark_test.png"), dark)
    for p in list(folder.glob("*_test.png")):
        cv2.imwrite(str(p.with_name(p.name.replace("_test", "_temp"))), golden)
    # the optics baseline as `calibrate reference` measures it: on the undistorted golden capture
    baseline = measure_optics(_lens().apply(raw["golden"]))
    return folder, design, baseline


def _config(tmp: Path, boards: Path, **calibration) -> StationConfig:
    return StationConfig.model_validate(
        {
            "camera": {"type": "replay", "path": str(boards), "fps": None, "loop": True, "trigger": "software"},
            "detector": {"engine": "classical"},
            "recipes": [
                {"id": 1, "name": "strict", "min_defect_mm": 0.5},
                {"id": 2, "name": "coarse", "min_defect_mm": 2.5},
            ],
            "active_recipe": "strict",
            "plc": {"mode": "off"},
            "storage": {
                "database_url": f"sqlite:///{tmp}/records.db",
                "archive_dir": str(tmp / "archive"),
                "spool_dir": str(tmp / "spool"),
                "archive": "none",
                "min_free_mb": 0,
            },
            "calibration": calibration,
        }
    )


def _store_calibrations(cfg: StationConfig, baseline) -> None:
    db = open_database(cfg.storage.database_url, station_id=cfg.station.id)
    with CalibrationStore(db, owns_db=True) as store:
        intr = IntrinsicsResult(K, DIST, (SIZE, SIZE), 0.12, {}, 12, pattern="checkerboard:9x6:5mm")
        store.save(INTRINSICS, intr.to_json(), "eng.lee")
        store.save(SCALE, {"mm_per_px": MM_PER_PX, "method": "pattern"}, "eng.lee")
        limits = OpticsLimits(window=3)  # drop_ready stays False: the config turns it on
        store.save(reference_kind("strict"), {"optics": baseline.to_json(), "limits": limits.model_dump()}, "eng.lee")


class Run:
    """Trigger boards one by one and wait until each one has also been through the optics monitor."""

    def __init__(self, station):
        self.station = station
        self.measured = 0

    def board(self, part: int):
        p = self.station.pipeline
        ticket = p.trigger(TriggerRequest(part_seq=part))
        assert ticket.done.wait(30), f"no result for part {part}"
        r = ticket.result
        optics = self.station.calibration.optics
        if optics is not None and r.image is not None and r.recipe in optics.monitors:
            self.measured += 1
            deadline = time.monotonic() + 30
            while optics.checked + optics.dropped < self.measured and time.monotonic() < deadline:
                time.sleep(0.01)
            assert optics.checked + optics.dropped == self.measured
        return r


def test_group_registered():
    names = [ep.value for ep in entry_points(group="pcb_inspector.calibration")]
    assert names == ["calibration.station:attach"]


def test_stored_calibrations_undistort_register_scale_and_watch_the_optics(tmp_path, line):
    boards, design, baseline = line
    cfg = _config(tmp_path, boards, registration=True, drop_ready_on_drift=True)
    _store_calibrations(cfg, baseline)
    station = build_station(cfg)
    cal = station.calibration
    assert isinstance(station.pipeline.camera, UndistortingCamera)
    assert station.pipeline.registrar is cal.registrar is not None
    assert cal.optics in station.pipeline.sinks and cal.optics in station.parts
    assert cal.mm_per_px == MM_PER_PX and station.pipeline.rules.min_px == pytest.approx(0.5 / MM_PER_PX)
    assert len(cal.active) == 3, cal.active  # undistortion, scale, optics (registration is always on)
    health = station.health
    station.start()
    run = Run(station)
    try:
        moved = run.board(1)
        # undistorted, registered (the whole-pixel fixture shift found again) and judged a good board
        assert moved.verdict is Verdict.PASS, moved.reason or moved.detections
        assert moved.frame_meta.get("undistorted") is True and moved.timings_ms["register"] > 0
        m = cal.registrar.last.reference_to_image()
        assert np.hypot(m[0, 2] - SHIFT[0], m[1, 2] - SHIFT[1]) < 0.5

        defects = run.board(2)  # 4 defects of about 30 px = 1.5 mm, over the 0.5 mm of "strict"
        assert defects.verdict is Verdict.REJECT and len(defects.detections) == len(design.defects) == 4
        assert all(max(d.width, d.height) * MM_PER_PX >= 0.5 for d in defects.detections)

        wrong = run.board(3)
        assert wrong.verdict is Verdict.REJECT and wrong.reason.startswith(UNREGISTERED)
        # One unregistrable board is a REJECT with its reason, not a station fault: READY stays up so
        # the PLC can send the next board (three in a row drop READY: tests/test_pipeline.py).
        assert health.get("registration").ok and ERROR_CODES["registration"] == 70

        assert health.get("calibration").ok  # optics within limits so far
        for part in (4, 5, 6):  # dimmed, defocused lens
            dark = run.board(part)
        assert health.get("registration").ok  # the next registered board clears the fault
        state = health.get("calibration")
        assert not state.ok and "focus" in state.reason and "darker" in state.reason, state
        assert not health.ready and health.error_code() == ERROR_CODES["calibration"] == 75
        assert not dark.reason and dark.image is not None  # inspected; the alarm is about the optics

        # a recipe switch compiled with the station's scale: 2.5 mm = 50 px hides the 1.5 mm defects
        station.pipeline.set_recipe(cal.rules_for(cfg.recipe("coarse")))
        again = [run.board(7), run.board(8)]
        assert [r.recipe for r in again] == ["coarse", "coarse"]
        assert [r.verdict for r in again] == [Verdict.PASS, Verdict.PASS] and not again[1].detections
        assert "no reference baseline for recipe 'coarse'" in health.get("calibration").detail
    finally:
        station.stop()
    assert cal.optics.checked == run.measured == 5 and cal.optics.skipped == 2


def test_without_undistortion_the_lens_fakes_defects(tmp_path, line):
    """The control for the test above: same boards and calibrations, `undistort = false`."""
    boards, _, baseline = line
    cfg = _config(tmp_path, boards, registration=True, undistort=False, optics_monitor=False)
    _store_calibrations(cfg, baseline)
    station = build_station(cfg)
    assert not isinstance(station.pipeline.camera, UndistortingCamera) and station.calibration.optics is None
    station.start()
    try:
        moved = Run(station).board(1)
    finally:
        station.stop()
    assert moved.verdict is Verdict.REJECT and moved.detections and "undistorted" not in moved.frame_meta


def test_nothing_stored_runs_as_before(tmp_path, caplog):
    boards = write_boards(tmp_path / "boards", 3, seed=3)
    cfg = _config(tmp_path, boards)
    cfg.recipes[0].min_defect_mm = None
    caplog.set_level("INFO", logger="calibration.station")
    station = build_station(cfg, with_storage=False)
    assert not (tmp_path / "records.db").exists()  # no database created to look for calibrations
    cal = station.calibration
    assert (cal.mm_per_px, cal.undistorter, cal.optics, cal.active) == (None, None, None, [])
    # registration needs nothing stored: every station registers its boards
    assert isinstance(station.pipeline.registrar, BoardRegistrar) and cal.registrar is station.pipeline.registrar
    assert station.health.get("calibration") is None
    assert "calibration: none active" in caplog.text
    station.start()
    try:
        r = Run(station).board(1)
    finally:
        station.stop()
    assert not r.reason and "undistorted" not in r.frame_meta

    # min_defect_mm without a stored scale stops the build with the hint, as RecipeRules always did
    cfg.recipes[0].min_defect_mm = 0.5
    with pytest.raises(RecipeError, match="calibrate scale"):
        build_station(cfg)


def test_recipe_switches_keep_the_stored_scale(tmp_path, line):
    """PLC and UI switches compile through Station.rules_for: min_defect_mm keeps its stored mm/px."""
    from plc.station import default_recipe_switcher

    boards, _design, baseline = line
    cfg = _config(tmp_path, boards)
    _store_calibrations(cfg, baseline)
    station = build_station(cfg)
    assert station.rules_for(cfg.recipe("coarse")).min_px == pytest.approx(2.5 / MM_PER_PX)
    switch = default_recipe_switcher(cfg, station.pipeline, station.rules_for)
    assert switch(2)  # the PLC asks for "coarse" (id 2)
    assert station.pipeline._next_rules.min_px == pytest.approx(2.5 / MM_PER_PX)
    assert not switch(99)  # unknown id: refused, nothing queued over the valid switch
    assert station.pipeline._next_rules.recipe.name == "coarse"
    # Without the scale the same switch is refused (the running recipe stays), never compiled without mm.
    bare = default_recipe_switcher(cfg, station.pipeline)
    assert not bare(1)
    assert station.pipeline._next_rules.recipe.name == "coarse"
    # The touchscreen's recipe selection goes the same way.
    pytest.importorskip("PySide6")
    from ui.controller import StationController

    ui = StationController(cfg, station.pipeline, station.health, station)
    ui.select_recipe("strict")
    assert station.pipeline._next_rules.min_px == pytest.approx(0.5 / MM_PER_PX)


def test_the_start_recipe_is_compiled_once_with_the_stored_scale(tmp_path, line, monkeypatch):
    """The calibration part sets the compiler before the pipeline exists: the start recipe is compiled
    once, with the stored scale (it used to be compiled without it, then again by the hook)."""
    import inspector.decision as decision

    boards, _design, baseline = line
    cfg = _config(tmp_path, boards)
    _store_calibrations(cfg, baseline)
    compiled: list[tuple[str, float | None]] = []
    real_init = decision.RecipeRules.__init__

    def counting_init(self, recipe, *args, **kwargs):
        compiled.append((recipe.name, kwargs.get("mm_per_px")))
        real_init(self, recipe, *args, **kwargs)

    monkeypatch.setattr(decision.RecipeRules, "__init__", counting_init)
    station = build_station(cfg)
    assert compiled == [("strict", MM_PER_PX)]
    assert station.pipeline.rules.min_px == pytest.approx(0.5 / MM_PER_PX)


def test_intrinsics_of_another_resolution_keep_the_camera_not_ready_naming_both_sizes(tmp_path, line):
    """640x480 intrinsics on a 640x640 camera: the frame check alone rejected each board, reconnected and turned the
    camera (and READY) back on, board after board. docs/calibration.md promises NOT READY naming both sizes."""
    boards, _, baseline = line
    cfg = _config(tmp_path, boards)
    db = open_database(cfg.storage.database_url, station_id=cfg.station.id)
    with CalibrationStore(db, owns_db=True) as store:
        intr = IntrinsicsResult(K, DIST, (SIZE, 480), 0.12, {}, 12, pattern="checkerboard:9x6:5mm")
        store.save(INTRINSICS, intr.to_json(), "eng.lee")
        store.save(SCALE, {"mm_per_px": MM_PER_PX, "method": "pattern"}, "eng.lee")
    station = build_station(cfg)
    station.start()
    try:
        seen = []
        deadline = time.monotonic() + 6
        while time.monotonic() < deadline:
            cam = station.health.get("camera")
            seen.append((cam.ok if cam else None, station.health.ready))
            time.sleep(0.05)
        cam = station.health.get("camera")
        assert not cam.ok and "640x640" in cam.reason and "640x480" in cam.reason, cam.reason
        assert not any(ok for ok, _ in seen) and not any(ready for _, ready in seen)
        ticket = station.pipeline.trigger(TriggerRequest(part_seq=1))
        if ticket.done.wait(30):  # a trigger while NOT READY is refused or answered REJECT, never PASS
            assert ticket.result.verdict is Verdict.REJECT
    finally:
        station.stop()


MODEL = Path(__file__).resolve().parents[2] / "models" / "pcb-defect-det.tflite"


@pytest.mark.skipif(not MODEL.is_file(), reason="needs the shipped model package")
def test_a_scale_ten_times_off_is_refused_not_used(tmp_path, line):
    """A 5 mm pattern typed as 0.5 mm stores 0.005 mm/px (200 px/mm). Used, min_defect_mm 0.5 became 100 px and
    defective boards PASSED. The shipped model learnt 48 px/mm; the station reads 12-192 px/mm at most: refused,
    the calibration lamp names it, and a recipe in mm does not start on it."""
    boards, _, _ = line
    cfg = _config(tmp_path, boards)
    cfg.detector = {"type": "litert", "model": str(MODEL)}
    db = open_database(cfg.storage.database_url, station_id=cfg.station.id)
    with CalibrationStore(db, owns_db=True) as store:
        store.save(SCALE, {"mm_per_px": 0.005, "method": "pattern"}, "eng.b")
    with pytest.raises(CalibrationError, match=r"stored scale calibration 1 refused: 0\.005 mm/px"):
        build_station(cfg)
    cfg.recipes = [r.model_copy(update={"min_defect_mm": None}) for r in cfg.recipes]
    station = build_station(cfg)
    try:
        state = station.health.get("calibration")
        assert not state.ok and "4.17 times the 48 px/mm the model learnt" in state.reason, state.reason
        assert station.calibration.mm_per_px is None
    finally:
        station.stop()
    # Told the camera's resolution, the stored scale must agree with it within a factor 2.
    cfg.detector = {"type": "litert", "model": str(MODEL), "camera_px_per_mm": 20.0}
    with CalibrationStore(open_database(cfg.storage.database_url, station_id=cfg.station.id), owns_db=True) as store:
        store.save(SCALE, {"mm_per_px": 0.02, "method": "pattern"}, "eng.b")  # 50 px/mm: within 4x of 48
    station = build_station(cfg)
    try:
        state = station.health.get("calibration")
        assert not state.ok and "2.5 times detector.camera_px_per_mm = 20" in state.reason, state.reason
    finally:
        station.stop()
