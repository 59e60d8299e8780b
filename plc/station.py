"""The PLC link as a station part: `attach(cfg, pipeline, health, recorder=...)` (entry point `pcb_inspector.plc`).

The link itself (link.py) knows no protocol; `cfg.plc` (the settings class of its protocol plug-in:
plc/modbus, plc/opcua) builds the transport it runs over. This module wires it to the station:
the recipe switcher the PLC's recipe commands use, and the recorder that gates RESULTS_VALID.
"""

from __future__ import annotations

import logging

from inspector.config import StationConfig
from inspector.health import Health

from .link import PlcLink, RecipeCallback

log = logging.getLogger(__name__)

__all__ = ["PlcLink", "attach", "default_recipe_switcher"]


def default_recipe_switcher(
    cfg: StationConfig, pipeline, rules_for=None, health: Health | None = None
) -> RecipeCallback:
    """Load recipe `id` from the configuration and switch the pipeline to it between two boards.

    `rules_for` compiles the recipe as the station runs it (`Station.rules_for`: with the stored
    mm-per-pixel scale); a recipe that cannot be compiled (bad ROI, no reference for a model that
    needs one) is refused (CMD_FAILED) and the running one stays.
    """
    from inspector.decision import RecipeError
    from inspector.startcheck import clear_recipe_fault, compile_recipe, running_needs_reference

    def compile_rules(recipe):
        if rules_for is not None:
            return rules_for(recipe)
        return compile_recipe(cfg, recipe, needs_reference=running_needs_reference(cfg, pipeline))

    def switch(recipe_id: int) -> bool:
        try:
            recipe = cfg.recipe_by_id(recipe_id)
        except KeyError:
            log.warning("PLC asked for recipe %d; configured ids: %s", recipe_id, [r.id for r in cfg.recipes])
            return False
        try:
            rules = compile_rules(recipe)
        except RecipeError as exc:
            log.error("PLC asked for recipe %d (%s), which cannot run: %s", recipe_id, recipe.name, exc)
            return False
        pipeline.set_recipe(rules)
        if health is not None:
            clear_recipe_fault(health, recipe.name)  # a station that started on a bad recipe is READY again
            state = health.get("recipe")
            if state is None or state.ok:
                # The `recipe` component names the recipe running, as at start: the UI follows the switch by it.
                # While an engineer edits it stays failed; ending the edit names the recipe then running.
                health.ok("recipe", recipe.name)
        return True

    return switch


def attach(
    cfg: StationConfig,
    pipeline,
    health: Health,
    *,
    on_recipe: RecipeCallback | None = None,
    startup_grace_s: float = 30.0,
    port: int | None = None,
    recorder=None,
    rules_for=None,
) -> PlcLink:
    """Entry point `pcb_inspector.plc`: the PLC link for this station (call start() to run it).

    Pass the station's recorder so RESULTS_VALID waits for a durable record; without one (no storage)
    results are published as soon as they are inspected, and start() logs that.
    """
    return PlcLink(
        cfg.plc,
        pipeline,
        health,
        recipe_id=cfg.recipe().id,
        on_recipe=on_recipe or default_recipe_switcher(cfg, pipeline, rules_for, health),
        startup_grace_s=startup_grace_s,
        port=port,
        recorder=recorder,
    )
