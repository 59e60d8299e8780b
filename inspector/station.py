"""Assemble a station from its configuration: camera, detector, recipe, pipeline and sinks.

Why one place: the headless runner, the UI, the benchmark and the tests must all build the same
station from the same `station.toml`, or a fault found in one would not reproduce in another.
Parts outside `inspector` (the calibration in `calibration`, the PLC link in `plc`) are found through
entry points named in `[station] plugins`, so the core never imports them. `StationBuilder` is the one
contract every part meets (see its docstring).
"""

from __future__ import annotations

import logging
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from .capture import Camera, create_camera
from .config import Recipe, ReplayCamera, StationConfig
from .decision import RecipeRules
from .detect.base import Detector
from .health import Health
from .pipeline import Pipeline, ResultSink
from .registration import BoardRegistrar, settings_from_config
from .repeat_watch import watch_from
from .startcheck import (
    CheckReport,
    camera_frame_size,
    checked_rules,
    detector_needs_reference,
    running_needs_reference,
    start_recipe,
    threshold_warnings,
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

    _compile: Callable[[Recipe], RecipeRules] | None = None
    """How recipes are compiled (the builder's, e.g. with the stored mm-per-pixel scale)."""

    def add_part(self, part: Any) -> None:
        """Add a part made from the built pipeline (PLC link, metrics, watchers); its sink gets results.

        Before start only: a sink added to a running pipeline would miss boards already inspected."""
        self.parts.append(part)
        sink = sink_of(part)
        if sink is not None:
            self.pipeline.add_sink(sink)

    def rules_for(self, recipe: Recipe) -> RecipeRules:
        """Compile `recipe` as this station runs it: with the stored mm-per-pixel scale when one is active.

        Every recipe switch (PLC, UI, editor) goes through here, so a recipe with `min_defect_mm`
        keeps working after a switch; without a scale it raises RecipeError, as at start.
        """
        if self._compile is not None:
            rules = self._compile(recipe)
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


class StationBuilder:
    """What the parts of a station may change, offered once, before the pipeline is built.

    Why: a part that rewrote a built pipeline (its camera, its rules) raced with whatever had already
    read them, and the recipe was compiled twice. A plug-in's prepare hook (calibration) gets this
    builder and may wrap the camera, set the registrar, set how recipes are compiled and add parts;
    then the pipeline is built from what it holds, and the builder is sealed.

    A part has a `name`, `start()`, `stop()` and, optionally, a result sink: its `sink` attribute, or
    the part itself when it has `submit(result)`. The station starts parts in the order added, before
    the pipeline, and stops them in reverse after it.
    """

    def __init__(self, cfg: StationConfig, health: Health, camera: Camera, registrar: Any):
        self.cfg = cfg
        self.health = health
        self.camera = camera
        self.registrar = registrar
        self.parts: list[Any] = []
        self.sinks: list[ResultSink] = []
        self._compile: Callable[[Recipe], RecipeRules] = lambda r: RecipeRules(r, board_size=camera_frame_size(cfg))
        self._sealed = False

    def _open(self, what: str) -> None:
        if self._sealed:
            raise StationError(f"{what}: the pipeline is already built (parts change the station before it)")

    def wrap_camera(self, wrap: Callable[[Camera], Camera]) -> None:
        """Replace the camera by `wrap(camera)` (e.g. undistortion around the real camera)."""
        self._open("wrap_camera")
        self.camera = wrap(self.camera)

    def set_registrar(self, registrar: Any) -> None:
        self._open("set_registrar")
        self.registrar = registrar

    def compile_rules_with(self, compile_rules: Callable[[Recipe], RecipeRules]) -> None:
        """How a recipe becomes rules at start and at every switch (e.g. with the stored mm per pixel);
        the station's checks (ROI against the frame, the reference the model needs) run after it."""
        self._open("compile_rules_with")
        self._compile = compile_rules

    def add_sink(self, sink: ResultSink) -> None:
        self._open("add_sink")
        self.sinks.append(sink)

    def add_part(self, part: Any) -> None:
        self._open("add_part")
        self.parts.append(part)
        sink = sink_of(part)
        if sink is not None:
            self.sinks.append(sink)

    def compile_rules(self, recipe: Recipe) -> RecipeRules:
        return self._compile(recipe)


def sink_of(part: Any) -> ResultSink | None:
    """A part's result sink: its `sink` attribute, or the part itself when it takes results."""
    sink = getattr(part, "sink", None)
    if sink is not None:
        return sink
    return part if callable(getattr(part, "submit", None)) else None


def build_station(
    cfg: StationConfig,
    *,
    sinks: list[ResultSink] | None = None,
    with_storage: bool = True,
    with_plc: bool = True,
    health: Health | None = None,
    detector: Detector | None = None,
    plc_options: dict[str, Any] | None = None,
) -> Station:
    """The one place a station is assembled: the runner, the UI, the benchmarks and the tests use it.

    `detector` replaces the configured one (tests that need a particular detector); it is still
    guarded by the signature check like the configured one. `plc_options` are extra keyword
    arguments for the PLC plug-in's attach (tests and benchmarks: an ephemeral port, a longer
    start-up grace).
    """
    from .detect.factory import create_detector
    from .signing import guard_detector

    health = health or Health()
    plc_on = with_plc and cfg.plc.mode != "off"
    if plc_on and isinstance(cfg.camera, ReplayCamera) and cfg.camera.trigger == "free_run":
        # With a PLC, a replay source serves one frame per TRIGGER.
        cfg.camera.trigger = "software"
    triggered = plc_on or getattr(cfg.camera, "trigger", "free_run") != "free_run"
    builder = StationBuilder(cfg, health, create_camera(cfg), BoardRegistrar(settings_from_config(cfg.calibration)))
    builder.sinks.extend(sinks or [])
    recorder = _open_storage(cfg, health) if with_storage else None
    if recorder is not None:
        builder.add_part(recorder)
    # Plug-ins that shape the station (calibration: undistortion, the mm-per-pixel scale, the optics
    # monitor) run before the recipe is compiled and the pipeline built.
    prepare = _entry_point(cfg, "calibration", required=False)
    calibration = prepare.load()(builder) if prepare is not None else None
    if not cfg.calibration.registration:
        log.warning(
            "calibration.registration = false is ignored: boards are always registered to their reference "
            "(remove the line from the station file)"
        )
    # A recipe that cannot run (bad ROI, unreadable reference, no reference for a model that needs
    # one) leaves the station NOT READY with the reason; its boards are rejected, never passed.
    needs_reference = detector_needs_reference(cfg)
    rules = start_recipe(
        cfg, cfg.recipe(), health, lambda r: checked_rules(cfg, r, builder.compile_rules(r), needs_reference)
    )
    thresholds = CheckReport()
    threshold_warnings(cfg, thresholds)  # what `config check` warns of, in the station's log too
    for warning in thresholds.warnings:
        log.warning("%s", warning)
    # create_detector checks the package's signature; a detector handed in gets the same check.
    detector = create_detector(cfg.detector) if detector is None else guard_detector(cfg.detector, detector)
    pipeline = Pipeline(
        builder.camera,
        detector,
        rules,
        health,
        list(builder.sinks),
        triggered=triggered,
        frame_timeout_s=getattr(cfg.camera, "timeout_s", 2.0),
        stall_timeouts=cfg.supervisor.stall_timeouts,
        backoff_initial_s=cfg.supervisor.backoff_initial_s,
        backoff_max_s=cfg.supervisor.backoff_max_s,
        registrar=builder.registrar,
        repeat=watch_from(cfg.supervisor),
    )
    builder._sealed = True
    station = Station(cfg, health, pipeline, parts=list(builder.parts), recorder=recorder, calibration=calibration)
    station._compile = builder.compile_rules
    # Parts that drive the built pipeline (trigger it, swap its model, watch it) are made from it; they
    # join through add_part, which is the only place their sinks meet the pipeline.
    if plc_on:
        attach = _entry_point(cfg, "plc", required=True).load()
        # The link sets RESULTS_VALID only once the recorder made the record durable (None: at once).
        station.plc = attach(
            cfg, pipeline, health, recorder=recorder, rules_for=station.rules_for, **(plc_options or {})
        )
        station.add_part(station.plc)
    else:
        health.ok("plc", "off (free-run)")
    from .metrics import attach_metrics
    from .model_store import attach_model_watcher
    from .watchdog import attach_watchdog

    attach_metrics(station)
    attach_watchdog(station)
    attach_model_watcher(station)
    return station


def _open_storage(cfg: StationConfig, health: Health) -> Any:
    try:
        from . import storage
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("inspector.storage"):
            log.warning("storage package not available: results are not recorded")
            health.fail("database", "storage package not installed")
            return None
        raise
    return storage.open_recorder(cfg, health)


def _entry_point(cfg: StationConfig, part: str, *, required: bool) -> Any:
    """The entry point `[station] plugins` names for `part` in group `pcb_inspector.<part>`.

    None when the part is left out of `plugins`, or (not required) when its package is not installed;
    a name that is not installed while others are is an error naming both, never "the first one".
    """
    group = f"pcb_inspector.{part}"
    name = cfg.station.plugins.get(part)
    if name is None:
        if required:
            raise StationError(f"station.plugins has no {part!r} entry, but the station needs one ({group})")
        return None
    eps = {ep.name: ep for ep in entry_points(group=group)}
    if name in eps:
        return eps[name]
    if not eps and not required:
        log.info("%s: no plug-in installed (%s); the station runs without it", part, group)
        return None
    installed = ", ".join(sorted(eps)) or "none (pip install -e .)"
    raise StationError(f"station.plugins.{part} = {name!r}: no such entry point in {group}; installed: {installed}")
