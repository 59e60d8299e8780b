"""What the screens may ask of the station: start, stop, switch recipe, apply an edited recipe.

Why a thin object between the screens and `inspector.station.Station`: the screens are tested with
a real pipeline but without a PLC or a database, and the app runs a full station; both give the
screens the same handful of calls. Start and stop run off the GUI thread (joining the capture and
inference threads can take a second), and report back through signals.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal

from inspector.config import Recipe, StationConfig
from inspector.decision import RecipeRules
from inspector.health import ComponentState, Health
from inspector.startcheck import clear_recipe_fault

log = logging.getLogger(__name__)

STOPPED_BY_OPERATOR = "stopped by operator"
"""The `pipeline` fault STOP sets; START clears only this one (a failing inspection stays a fault)."""


class StationController(QObject):
    running_changed = Signal(bool)
    recipe_changed = Signal(str)
    error = Signal(str)
    _recipe_noticed = Signal()
    """Emitted from any thread (the PLC's recipe command); delivered on the GUI thread, queued."""

    def __init__(self, cfg: StationConfig, pipeline, health: Health, station: Any = None):
        super().__init__()
        self.cfg = cfg
        self.pipeline = pipeline
        self.health = health
        self.station = station
        self._busy = threading.Lock()
        self._started_once = False
        self._told_recipe = self.active_recipe
        # The PLC switches recipes on its own thread and says so in the `recipe` health component (its detail is the
        # recipe running); the screens hear of it on the GUI thread only.
        self._recipe_noticed.connect(self._recipe_maybe_switched, Qt.ConnectionType.QueuedConnection)
        health.subscribe(self._on_health)

    @property
    def active_recipe(self) -> str:
        """The recipe the pipeline runs (or runs from the next board on), asked of the pipeline every time.

        A copy kept here went stale when the PLC switched recipes: the Line screen named the old one, choosing it
        did nothing, and saving it in the editor switched the line back behind the PLC's back."""
        rules = getattr(self.pipeline, "current_rules", None) or getattr(self.pipeline, "rules", None)
        name = getattr(rules, "name", None)
        return name if isinstance(name, str) and name else self.cfg.active_recipe

    def _on_health(self, state: ComponentState) -> None:
        if state.name == "recipe":
            self._recipe_noticed.emit()

    def _recipe_maybe_switched(self) -> None:
        """On the GUI thread: tell the screens when the recipe running is not the one they were last told of."""
        name = self.active_recipe
        if name != self._told_recipe:
            self._told_recipe = name
            self.recipe_changed.emit(name)

    @property
    def running(self) -> bool:
        return bool(self.pipeline.running)

    def recipe_names(self) -> list[str]:
        return [r.name for r in self.cfg.recipes]

    def recipe(self, name: str | None = None) -> Recipe:
        return self.cfg.recipe(name or self.active_recipe)

    # ------------------------------------------------------------ run control
    def start(self, wait: bool = False) -> None:
        self._in_background(self._start, wait)

    def stop(self, wait: bool = False) -> None:
        self._in_background(self._stop, wait)

    def _in_background(self, fn, wait: bool) -> None:
        t = threading.Thread(target=self._guarded, args=(fn,), name=f"ui-{fn.__name__.strip('_')}", daemon=True)
        t.start()
        if wait:
            t.join(30)

    def _guarded(self, fn) -> None:
        if not self._busy.acquire(blocking=False):
            return
        try:
            fn()
        except Exception as exc:
            log.exception("station control failed")
            self.error.emit(str(exc))
        finally:
            self._busy.release()
            self.running_changed.emit(self.running)

    def _start(self) -> None:
        if self.running:
            return
        # STOP's own fault goes with the operator's START; whether the station is READY is then up to the rest.
        state = self.health.get("pipeline")
        if state is not None and not state.ok and state.reason == STOPPED_BY_OPERATOR:
            self.health.ok("pipeline", "started by operator")
        if self.station is not None and not self._started_once:
            self.station.start()
        else:
            self.pipeline.start()
        self._started_once = True

    def _stop(self) -> None:
        if not self.running:
            return
        # Only the pipeline stops: the PLC link and the database writer keep running so the PLC
        # sees NOT READY and every record already made is still written.
        self.pipeline.stop()
        self.health.fail("pipeline", STOPPED_BY_OPERATOR)

    def shutdown(self) -> None:
        """Application exit: stop everything, flushing the sinks."""
        try:
            if self.station is not None and self._started_once:
                self.station.stop()
            elif self.running:
                self.pipeline.stop()
        except Exception:
            log.exception("station stop failed")

    # ------------------------------------------------------------ recipes
    def _rules(self, recipe: Recipe) -> RecipeRules:
        """As the station runs it: with the stored mm-per-pixel scale (`Station.rules_for`)."""
        rules_for = getattr(self.station, "rules_for", None)
        return rules_for(recipe) if rules_for is not None else RecipeRules(recipe)

    def select_recipe(self, name: str) -> None:
        """Switch the running pipeline to another recipe from the next board on."""
        recipe = self.cfg.recipe(name)
        rules = self._rules(recipe)
        self.pipeline.set_recipe(rules)
        clear_recipe_fault(self.health, name)  # started on a recipe that could not run: READY again
        self._told_recipe = name
        self.recipe_changed.emit(name)

    def apply_recipe(self, recipe: Recipe) -> None:
        """Store an edited recipe in the configuration; the pipeline uses it from the next board only if it is the
        recipe running (the PLC may have switched to another since the editor opened: that one stays)."""
        rules = self._rules(recipe)  # raises RecipeError before anything is changed
        recipes = [recipe if r.name == recipe.name else r for r in self.cfg.recipes]
        if recipe.name not in {r.name for r in self.cfg.recipes}:
            recipes.append(recipe)
        self.cfg.recipes = recipes
        running = self.active_recipe
        if recipe.name == running:
            self.pipeline.set_recipe(rules)
        self._told_recipe = running
        self.recipe_changed.emit(running)

    # ------------------------------------------------------------ editing state
    def begin_editing(self, user: str, recipe: str) -> None:
        """While an engineer edits, the station is NOT READY and the PLC sees ENGINEER_EDITING."""
        self.health.fail("recipe", f"ENGINEER_EDITING: {user} is editing recipe {recipe}")
        self._plc_editing(True)

    def end_editing(self) -> None:
        self._plc_editing(False)
        rules = getattr(self.pipeline, "current_rules", None) or getattr(self.pipeline, "rules", None)
        refused = getattr(rules, "refused", False) and getattr(rules, "reason", "")
        if refused:  # the recipe the station started on could not run and has not been replaced
            self.health.fail("recipe", refused)
        else:
            self.health.ok("recipe", self.active_recipe)

    def _plc_editing(self, editing: bool) -> None:
        """The PLC link's own flag (STATUS bit ENGINEER_EDITING), when a PLC link is running."""
        link = getattr(self.station, "plc", None)
        if link is not None and hasattr(link, "set_engineer_editing"):
            try:
                link.set_engineer_editing(editing)
            except Exception:
                log.exception("cannot tell the PLC link that an engineer is editing")
