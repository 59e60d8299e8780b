"""Assemble a station from its configuration: camera, detector, recipe, pipeline and sinks.

Why one place: the headless runner, the UI, the benchmark and the tests must all build the same
station from the same `station.toml`, or a fault found in one would not reproduce in another.
Parts outside `inspector` (the PLC link in `plc`) are found through entry points, so the core never
imports them.
"""

from __future__ import annotations

import logging
import shutil
import threading
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .capture import create_camera
from .config import Recipe, ReplayCamera, StationConfig
from .decision import RecipeRules
from .health import Health
from .pipeline import Pipeline, ResultSink
from .registration import BoardRegistrar, settings_from_config
from .startcheck import (
    camera_frame_size,
    checked_rules,
    compile_recipe,
    detector_needs_reference,
    running_needs_reference,
    start_recipe,
)

log = logging.getLogger(__name__)


class StationError(Exception):
    """The station cannot be assembled; the message names the part and the reason."""


@dataclass
class Station:
    cfg: StationConfig
    health: Health
    pipeline: Pipeline
    parts: list[Any] = field(default_factory=list)
    """Started parts with start()/stop() (PLC link, storage writer, metrics), stopped in reverse."""
    recorder: Any = None
    plc: Any = None
    calibration: Any = None
    """What the calibration package attached (calibration.station.StationCalibration); None without it."""
    _disk_stop: threading.Event = field(default_factory=threading.Event)

    def rules_for(self, recipe: Recipe) -> RecipeRules:
        """Compile `recipe` as this station runs it: with the stored mm-per-pixel scale when one is active.

        Every recipe switch (PLC, UI, editor) goes through here, so a recipe with `min_defect_mm`
        keeps working after a switch; without a scale it raises RecipeError, as at start.
        """
        if self.calibration is not None:
            rules = self.calibration.rules_for(recipe)
        else:
            rules = RecipeRules(recipe, board_size=camera_frame_size(self.cfg))
        # The ROI against the frame and the golden reference the running model needs: a recipe that
        # would inspect nothing or reject every board is refused here (PLC CMD_FAILED, UI "not saved").
        return checked_rules(self.cfg, recipe, rules, running_needs_reference(self.cfg, self.pipeline))

    def start(self) -> None:
        for part in self.parts:
            start = getattr(part, "start", None)
            if start:
                start()
        self.pipeline.start()
        if self.recorder is None:
            # With a recorder, its writer thread watches free space (it owns the archive and retention);
            # a second watcher would overwrite the writer's "archive write failed" reason.
            threading.Thread(target=self._disk_watch, name="disk-watch", daemon=True).start()

    def stop(self) -> None:
        """Stop capture and inference first, then flush the sinks, so no result is lost."""
        self._disk_stop.set()
        errors = []
        try:
            self.pipeline.stop()
        except RuntimeError as exc:
            errors.append(str(exc))
        for part in reversed(self.parts):
            stop = getattr(part, "stop", None) or getattr(part, "close", None)
            if stop:
                try:
                    stop()
                except Exception as exc:
                    log.exception("stopping %s failed", part)
                    errors.append(f"{type(part).__name__}: {exc}")
        if errors:
            raise StationError("unclean stop: " + "; ".join(errors))

    def _disk_watch(self) -> None:
        folder = Path(self.cfg.storage.archive_dir)
        floor = self.cfg.storage.min_free_mb
        while not self._disk_stop.is_set():
            probe = folder if folder.exists() else Path.cwd()
            try:
                free_mb = shutil.disk_usage(probe).free / 2**20
            except OSError as exc:
                self.health.fail("disk", f"cannot read free space of {probe}: {exc.strerror}")
            else:
                if free_mb < floor:
                    self.health.fail("disk", f"{free_mb:.0f} MB free < {floor} MB floor", f"{free_mb:.0f} MB free")
                else:
                    self.health.ok("disk", f"{free_mb / 1024:.1f} GB free")
            self._disk_stop.wait(5.0)


def build_station(
    cfg: StationConfig,
    *,
    sinks: list[ResultSink] | None = None,
    with_storage: bool = True,
    with_plc: bool = True,
    health: Health | None = None,
) -> Station:
    from .detect.factory import create_detector
    from .signing import guard_detector

    health = health or Health()
    # --- issue 9 (calibration): min_defect_mm needs the stored scale, which the calibration hook below
    # supplies by compiling the recipe again; without the calibration package it fails here as before.
    calibration_hook = _calibration_entry_point()
    recipe = cfg.recipe()
    if calibration_hook is not None and recipe.min_defect_mm is not None:
        recipe = recipe.model_copy(update={"min_defect_mm": None})
    # A recipe that cannot run (bad ROI, unreadable reference, no reference for a model that needs
    # one) leaves the station NOT READY with the reason; its boards are rejected, never passed.
    needs_reference = detector_needs_reference(cfg)
    rules = start_recipe(cfg, recipe, health, lambda r: compile_recipe(cfg, r, needs_reference=needs_reference))
    # --- end issue 9
    camera = create_camera(cfg)
    detector = create_detector(cfg.detector)
    detector = guard_detector(cfg.detector, detector)  # issue 10: refuse unsigned/tampered model packages
    plc_on = with_plc and cfg.plc.mode != "off"
    triggered = plc_on or getattr(cfg.camera, "trigger", "free_run") != "free_run"
    if plc_on and isinstance(cfg.camera, ReplayCamera) and cfg.camera.trigger == "free_run":
        # With a PLC, a replay source serves one frame per TRIGGER.
        cfg.camera.trigger = "software"
        camera = create_camera(cfg)
    timeout = getattr(cfg.camera, "timeout_s", 2.0)
    pipeline = Pipeline(
        camera,
        detector,
        rules,
        health,
        list(sinks or []),
        triggered=triggered,
        frame_timeout_s=timeout,
        stall_timeouts=cfg.supervisor.stall_timeouts,
        backoff_initial_s=cfg.supervisor.backoff_initial_s,
        backoff_max_s=cfg.supervisor.backoff_max_s,
        registrar=BoardRegistrar(settings_from_config(cfg.calibration)),
    )
    if not cfg.calibration.registration:
        log.warning(
            "calibration.registration = false is ignored: boards are always registered to their reference "
            "(remove the line from the station file)"
        )
    station = Station(cfg, health, pipeline)
    if with_storage:
        station.recorder = _attach_storage(cfg, health, pipeline)
        if station.recorder is not None:
            station.parts.append(station.recorder)
    # --- issue 9 (calibration) hook: undistortion, registration, mm per pixel, optics monitor.
    if calibration_hook is not None:
        station.calibration = calibration_hook.load()(cfg, station)
    # --- end issue 9 hook
    if plc_on:
        # --- durable publish (issue 5/6): the link sets RESULTS_VALID only once the recorder made the record durable.
        station.plc = _attach_plc(cfg, pipeline, health, recorder=station.recorder, rules_for=station.rules_for)
        station.parts.append(station.plc)
    else:
        health.ok("plc", "off (free-run)")
    # --- issue 10 (deployment) hooks: /metrics + /health server, systemd watchdog, model hot-swap watcher.
    from .metrics import attach_metrics
    from .model_store import attach_model_watcher
    from .watchdog import attach_watchdog

    attach_metrics(station)
    attach_watchdog(station)
    attach_model_watcher(station)
    # --- end issue 10 hooks
    return station


def _attach_storage(cfg: StationConfig, health: Health, pipeline: Pipeline) -> Any:
    try:
        from . import storage
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("inspector.storage"):
            log.warning("storage package not available: results are not recorded")
            health.fail("database", "storage package not installed")
            return None
        raise
    recorder = storage.open_recorder(cfg, health)
    pipeline.add_sink(recorder)
    return recorder


def _calibration_entry_point() -> Any:
    """The calibration package's `attach(cfg, station)` entry point, or None when it is not installed."""
    eps = list(entry_points(group="pcb_inspector.calibration"))
    return eps[0] if eps else None


def _attach_plc(
    cfg: StationConfig, pipeline: Pipeline, health: Health, recorder: Any = None, rules_for: Any = None
) -> Any:
    eps = list(entry_points(group="pcb_inspector.plc"))
    if not eps:
        raise StationError("plc.mode is set but the plc package is not installed (pip install -e .)")
    attach = eps[0].load()
    link = attach(cfg, pipeline, health, recorder=recorder, rules_for=rules_for)  # recorder None: published at once
    pipeline.add_sink(link)
    return link
