"""The station's calibration hook: entry point `pcb_inspector.calibration` (`station = "calibration.station:attach"`).

Why an entry point: `inspector` must never import `calibration`, yet the running station needs its
pieces. `inspector.station.build_station` calls `attach(builder)` before the recipe is compiled and
the pipeline built (the entry point `[station] plugins.calibration` names). Per `[calibration]` and
per what is stored in the records database (`calibration.store`), it
- wraps the camera in `UndistortingCamera` (active intrinsics, `undistort = true`);
- exposes the station's registrar (registration is the inspection core's and always on);
- makes every recipe compile with the stored mm per pixel, so `min_defect_mm` works;
- adds an optics monitor as a part with a result sink, per recipe with a stored reference baseline
  (`optics_monitor = true`), reporting into health component `calibration`.
With nothing stored the station is exactly as without this package.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from inspector.config import Recipe, StationConfig
from inspector.decision import RecipeRules
from inspector.health import Health
from inspector.storage.db import sqlite_path

from .errors import CalibrationError
from .health import COMPONENT, OpticsLimits, OpticsMonitor, OpticsSample
from .registration import BoardRegistrar
from .store import INTRINSICS, SCALE, CalibrationStore, reference_kind
from .undistort import Undistorter, UndistortingCamera

log = logging.getLogger(__name__)


@dataclass
class _Stored:
    """What the records database holds for this station (read once, at start-up)."""

    undistorter: Undistorter | None = None
    intrinsics_note: str = ""
    mm_per_px: float | None = None
    scale_note: str = ""
    scale_problem: str = ""
    """Why the stored scale is not used (far from the camera's stated or the model's learnt resolution)."""
    baselines: dict[str, tuple[OpticsSample, OpticsLimits]] = field(default_factory=dict)


@dataclass
class StationCalibration:
    """What `attach` put into the station; `Station.calibration` holds it (UI: sizes in mm, active pieces)."""

    mm_per_px: float | None = None
    undistorter: Undistorter | None = None
    registrar: BoardRegistrar | None = None
    optics: OpticsRouter | None = None
    active: list[str] = field(default_factory=list)
    """One line per active piece, e.g. 'scale 0.0500 mm/px (calibration 4)'."""

    def rules_for(self, recipe: Recipe) -> RecipeRules:
        """A recipe compiled with the station's scale; recipe switches must use this for `min_defect_mm`."""
        return RecipeRules(recipe, mm_per_px=self.mm_per_px)

    def summary(self) -> str:
        return "; ".join(self.active) if self.active else "none active"


class OpticsRouter:
    """Result sink that hands each board to the optics monitor of its recipe, at most once per period.

    Why per recipe: the baseline is the recipe's golden board (a dark board design must not read as a
    dimmed lamp). Boards of a recipe without a baseline are not checked. Each monitor keeps only the
    newest image (drop and count), so `submit` never blocks inference.
    """

    name = "optics"

    def __init__(
        self,
        baselines: dict[str, tuple[OpticsSample, OpticsLimits]],
        health: Health,
        *,
        period_s: float = 0.0,
    ):
        self.health = health
        self.period_s = period_s
        self.monitors = {recipe: OpticsMonitor(base, limits, health) for recipe, (base, limits) in baselines.items()}
        self.skipped = 0
        """Boards not handed on: inside the check period, or of a recipe without a baseline."""
        self._last_at = 0.0
        self._recipe: str | None = None
        self._lock = threading.Lock()

    def submit(self, result: Any) -> None:
        if getattr(result, "image", None) is None:
            return  # a failed inspection has no image to measure
        recipe = result.recipe
        with self._lock:
            switched = recipe != self._recipe
            self._recipe = recipe
            now = time.monotonic()
            if not switched and self.period_s and now - self._last_at < self.period_s:
                self.skipped += 1
                return
            self._last_at = now
        monitor = self.monitors.get(recipe)
        if monitor is None:
            self.skipped += 1
            if switched:  # an alarm of the previous recipe's optics says nothing about this one
                self.health.ok(COMPONENT, f"optics: no reference baseline for recipe {recipe!r}, not checked")
            return
        monitor.submit(result)

    def start(self) -> None:
        for m in self.monitors.values():
            m.start()

    def stop(self) -> None:
        for m in self.monitors.values():
            m.stop()

    @property
    def checked(self) -> int:
        return sum(m.checked for m in self.monitors.values())

    @property
    def dropped(self) -> int:
        return sum(m.dropped for m in self.monitors.values())


#: A stored scale this far from the camera's stated resolution (`detector.camera_px_per_mm`) is refused: the two
#: measure one thing. Against the model's learnt resolution the resampling limit applies (MAX_RESAMPLE).
SCALE_AGREEMENT = 2.0


def scale_problem(cfg: StationConfig, mm_per_px: float) -> str | None:
    """Why a measured scale cannot be this station's, or None.

    Why: `min_defect_mm` turns into pixels through it. A pattern typed as 0.5 mm instead of 5 mm stored a scale ten
    times too fine; every defect under 5 mm was then ignored and defective boards PASSED, without a word.
    """
    px_per_mm = 1.0 / mm_per_px
    told = getattr(cfg.detector, "camera_px_per_mm", None)
    hint = (
        "a pattern size in another unit or a slipped decimal point? measure again with `pcb-inspector calibrate scale`"
    )
    if told:
        ratio = px_per_mm / told
        if not 1 / SCALE_AGREEMENT <= ratio <= SCALE_AGREEMENT:
            return (
                f"{mm_per_px:.5g} mm/px is {px_per_mm:.3g} px/mm, {ratio:.3g} times detector.camera_px_per_mm = "
                f"{told:g} ({hint})"
            )
        return None
    try:
        from inspector.detect.package import MAX_RESAMPLE, station_input_domain

        domain = station_input_domain(cfg.detector)
    except Exception:  # ModelError: the model lamp names an unreadable package
        return None
    learnt = getattr(domain, "px_per_mm", None) if domain is not None else None
    if learnt and not 1 / MAX_RESAMPLE <= px_per_mm / learnt <= MAX_RESAMPLE:
        return (
            f"{mm_per_px:.5g} mm/px is {px_per_mm:.3g} px/mm, {px_per_mm / learnt:.3g} times the {learnt:g} px/mm the "
            f"model learnt; the station reads boards at 1/{MAX_RESAMPLE:g} to {MAX_RESAMPLE:g} times that ({hint})"
        )
    return None


def _read_stored(cfg: StationConfig) -> _Stored | None:
    """The station's active calibrations; None when its SQLite database does not exist yet (nothing stored).

    A missing SQLite file is not created here: a station built without storage (tests, benchmarks)
    must not leave a database behind.
    """
    path = sqlite_path(cfg.storage.database_url)
    if path is not None and not path.exists():
        return None
    out = _Stored()
    with CalibrationStore.open(cfg) as store:
        intrinsics = store.active(INTRINSICS)
        if intrinsics is not None and cfg.calibration.undistort:
            out.undistorter = Undistorter.from_json(intrinsics.results)
            w, h = out.undistorter.image_size
            rms = intrinsics.results.get("rms_px")
            out.intrinsics_note = (
                f"undistortion {w}x{h} (calibration {intrinsics.id}"
                + (f", RMS {float(rms):.2f} px" if rms is not None else "")
                + ")"
            )
        elif intrinsics is not None:
            out.intrinsics_note = f"intrinsics calibration {intrinsics.id} stored but calibration.undistort is off"
        scale = store.active(SCALE)
        if scale is not None:
            try:
                out.mm_per_px = float(scale.results["mm_per_px"])
            except (KeyError, TypeError, ValueError):
                raise CalibrationError(f"stored scale calibration {scale.id} has no valid mm_per_px") from None
            if not out.mm_per_px > 0:
                raise CalibrationError(f"stored scale calibration {scale.id}: mm_per_px {out.mm_per_px} is not > 0")
            out.scale_note = f"scale {out.mm_per_px:.5f} mm/px (calibration {scale.id})"
            problem = scale_problem(cfg, out.mm_per_px)
            if problem:
                out.scale_problem = f"stored scale calibration {scale.id} refused: {problem}"
                out.mm_per_px, out.scale_note = None, ""
        if cfg.calibration.optics_monitor:
            for recipe in cfg.recipes:
                try:
                    kind = reference_kind(recipe.name)
                except CalibrationError:
                    continue  # a name too long to key a reference cannot have one stored
                baseline = store.baseline(recipe.name)
                if baseline is not None:
                    out.baselines[recipe.name] = baseline
                    if baseline[0].sharpness is None:
                        log.warning(
                            "optics baseline of recipe %r predates the sharpness measure: focus is compared by the "
                            "Laplacian's variance, which camera noise hides defocus from; store the reference again "
                            "(pcb-inspector calibrate reference)",
                            recipe.name,
                        )
                elif store.active(kind) is not None:
                    log.warning("reference calibration of recipe %r has no optics baseline", recipe.name)
    return out


def attach(builder: Any) -> StationCalibration:
    """Put the stored calibrations into the station being built (`inspector.station.StationBuilder`,
    before its pipeline exists); returns what is active.

    Raises RecipeError (as `RecipeRules` would without this package) when the active recipe sets
    `min_defect_mm` and no scale calibration is stored. Calibrations that cannot be read (database
    down, malformed rows) leave health `calibration` NOT OK with the reason: measurements the station
    cannot trust must not pass boards.
    """
    cfg: StationConfig = builder.cfg
    c = cfg.calibration
    health: Health = builder.health
    result = StationCalibration()
    try:
        stored = _read_stored(cfg)
    except Exception as exc:  # CalibrationError, StorageError, a database that is down
        log.error("calibrations not read: %s", exc)
        health.fail(COMPONENT, f"calibrations not read from the records database: {exc}")
        if cfg.recipe().min_defect_mm is not None:
            raise CalibrationError(
                f"recipe {cfg.recipe().name!r}: min_defect_mm needs the scale calibration, which could not be "
                f"read from the records database: {exc}"
            ) from None
        stored = None
        failed = True
    else:
        failed = False
    stored = stored or _Stored()

    if stored.undistorter is not None:
        undistorter = stored.undistorter
        builder.wrap_camera(lambda camera: UndistortingCamera(camera, undistorter))
        result.undistorter = stored.undistorter
        result.active.append(stored.intrinsics_note)
    elif stored.intrinsics_note:
        log.info("calibration: %s", stored.intrinsics_note)

    result.mm_per_px = stored.mm_per_px
    if stored.mm_per_px is not None:
        result.active.append(stored.scale_note)
    if stored.scale_problem:
        log.error("calibration: %s", stored.scale_problem)
        health.fail(COMPONENT, stored.scale_problem)
        if cfg.recipe().min_defect_mm is not None:
            raise CalibrationError(
                f"recipe {cfg.recipe().name!r}: min_defect_mm needs the scale: {stored.scale_problem}"
            )
    if stored.mm_per_px is None and cfg.recipe().min_defect_mm is not None:
        result.rules_for(cfg.recipe())  # raises RecipeError with the "calibrate scale" hint
    # Every recipe, at start and at each switch, is compiled with the stored scale.
    builder.compile_rules_with(result.rules_for)

    # Registration is the inspection core's (build_station gives every pipeline a registrar); kept
    # here so the calibration tools and the UI see the pose it found.
    result.registrar = builder.registrar if isinstance(builder.registrar, BoardRegistrar) else None

    if stored.baselines:
        baselines = {}
        for recipe, (base, limits) in stored.baselines.items():
            if c.drop_ready_on_drift is not None:
                limits = limits.model_copy(update={"drop_ready": c.drop_ready_on_drift})
            baselines[recipe] = (base, limits)
        result.optics = OpticsRouter(baselines, health, period_s=c.check_period_s)
        builder.add_part(result.optics)
        drop = sorted(r for r, (_, lim) in baselines.items() if lim.drop_ready)
        result.active.append(
            f"optics monitor (recipes {', '.join(sorted(baselines))}"
            + (f"; drift drops READY for {', '.join(drop)}" if drop else "; drift alarms only")
            + ")"
        )

    if result.active and not failed and result.optics is None:
        health.ok(COMPONENT, result.summary())
    log.info("calibration: %s", result.summary() if result.active else "none active (nothing stored)")
    return result
