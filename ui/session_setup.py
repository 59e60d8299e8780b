"""Everything `pcb-inspector ui` starts, in one object the CLI and the tests share.

Order matters: the records database opens first (users and audit live there), then the first-start
admin is created if there is none, then the station, the bridge and the window.
"""

from __future__ import annotations

import gc
import logging
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import QApplication

from inspector.config import StationConfig

from . import i18n
from .app import MainWindow, install_activity_filter, setup_application
from .auth import Session
from .bridge import UiBridge, configure_shifts
from .controller import StationController
from .demo import DEMO_USERS, assemble, demo_config
from .worker import QueuedLockout, queued_audit

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Exempt everything built at start-up (Qt wrappers, model, SQLAlchemy mappers) from future GCs.

    A full (generation 2) collection walks every live object while holding the GIL; in the running
    demo station one took 75 ms and stalled the touchscreen's event loop for 105 ms
    (scripts/bench_ui.py). Objects made at start-up live for the whole run, so scanning them again
    is wasted work; `gc.freeze` moves them to a permanent generation and later collections only see
    what the run itself allocates.
    """
    gc.collect()
    gc.freeze()


@dataclass
class UiRuntime:
    app: QApplication
    cfg: StationConfig
    window: MainWindow
    bridge: UiBridge
    controller: StationController
    session: Session
    records: Any = None
    notes: list[str] = field(default_factory=list)
    workdir: Path | None = None
    _filter: Any = None

    @classmethod
    def create(cls, cfg: StationConfig, *, demo: bool = False, language: str | None = None) -> UiRuntime:
        app = setup_application()
        workdir = None
        if demo:
            cfg, workdir = demo_config(cfg)
        from .records import Records

        records = Records.open(cfg)
        if records.count_users() == 0:
            if demo:
                for name, role, secret in DEMO_USERS:
                    records.create_user(name, role, secret, by="demo-setup")
            else:
                from .users_screen import FirstAdminDialog

                dlg = FirstAdminDialog(records)
                if not dlg.exec():
                    raise SystemExit("no administrator created: the station UI needs one to start")
        # Recipes edited in the UI are stored as versions; the newest version wins over the file's.
        stored = [records.latest_recipe(r.name) for r in cfg.recipes]
        cfg.recipes = [s or r for s, r in zip(stored, cfg.recipes)]
        assembly = assemble(cfg, demo=demo)
        station = assembly.station
        configure_shifts(cfg.storage.shift_starts, cfg.storage.timezone)  # counters reset per the plant's plan
        bridge = UiBridge(cfg.ui.display_fps)
        controller = StationController(cfg, station.pipeline, station.health, station)
        audit = queued_audit(records)  # the operator's taps never wait for an audit row's fsync
        session = Session(
            records.authenticate, cfg.ui.auto_logout_s, audit=audit, lockout=QueuedLockout(records.lockout_store())
        )
        window = MainWindow(
            controller,
            bridge,
            session,
            records=records,
            audit=audit,
            user_names=records.user_names,
            station_name=cfg.station.name,
        )
        # Only now does the window listen: the Health snapshot `attach` sends (a recipe refused while the station was
        # built) and the seeded counts reached no one when sent before, and a state set once is never sent again.
        bridge.attach(station.pipeline, station.health)
        seed_shift_counts(bridge, records)
        bridge.start()
        add_quality_screens(window, records, cfg, controller, session)
        add_engineering_screens(window, records, controller, session)
        flt = install_activity_filter(app, session)
        lang = language or cfg.ui.language
        if lang != "en":
            i18n.set_language(lang)
        freeze_startup_objects()
        return cls(app, cfg, window, bridge, controller, session, records, assembly.notes, workdir, flt)

    def prepare_screen(self, name: str) -> None:
        """Show a screen with content (used for screenshots): log in as needed, pick a board."""
        needs_engineer = name in {"recipe", "calibration", "model", "audit"}
        needs_admin = name in {"users"}
        if needs_admin:
            self._login_as("admin")
        elif needs_engineer:
            self._login_as("engineer")
        elif name in {"review"}:
            self._login_as("operator")
        w = self.window
        if name == "audit":
            w.show_screen(name)
            w.screens[name].verify()
            return
        if name == "review":
            scr = w.screens.get("history")
            if scr is not None:
                scr.enter()
                scr.open_first(prefer_reject=True)
            return
        w.show_screen(name)

    def _login_as(self, role: str) -> None:
        for name, r, secret in DEMO_USERS:
            if r == role:
                try:
                    self.session.login(name, secret)
                except Exception:
                    log.warning("cannot log in as demo %s (not a demo database?)", role)
                return

    def close(self) -> None:
        self.bridge.stop()
        self.controller.shutdown()
        self.window.hide()
        self.window.deleteLater()
        if self.records is not None:
            self.records.close()
        if self.workdir is not None:  # the demo's throwaway database and archive (never a real station's)
            shutil.rmtree(self.workdir, ignore_errors=True)


def seed_shift_counts(bridge: UiBridge, records) -> None:
    """The Line screen's counters start from the boards already recorded this shift (before any board of this
    run is counted). A database that cannot be read leaves them at 0: the line must still start."""
    shift = bridge.shift
    try:
        t = records.shift_tally(shift)
    except Exception as exc:  # noqa: BLE001 - counters are a display; the station runs without them
        log.warning("shift counters start at 0: cannot read this shift's records: %s", exc)
        return
    bridge.seed_counts(shift, t.inspected, t.passed, t.serial_mismatch, t.code_unreadable)


def add_quality_screens(window: MainWindow, records, cfg: StationConfig, controller, session) -> None:
    from .charts import ChartsScreen
    from .history_screen import HistoryScreen
    from .recipe_editor import RecipeEditor
    from .review_screen import ReviewScreen
    from .users_screen import UsersScreen

    review = ReviewScreen(records, session)
    history = HistoryScreen(records, controller.recipe_names)
    history.open_inspection.connect(lambda iid: (window.show_screen("review"), review.load(iid)))
    review.back.connect(lambda: window.show_screen("history"))
    review.saved.connect(lambda n: window.show_toast(lambda: window.tr("%1 review(s) stored").replace("%1", str(n))))
    window.add_screen("history", history)
    window.add_screen("review", review)
    window.add_screen("charts", ChartsScreen(records))
    window.add_screen(
        "recipe",
        RecipeEditor(
            controller,
            session,
            queued_audit(records),
            records=records,
            live_image=lambda: (window.operator.live.image, window.operator.live.image_scale),
        ),
    )
    window.add_screen("users", UsersScreen(records, session))
    from .audit_screen import AuditScreen

    window.add_screen("audit", AuditScreen(records, session))


def threshold_source(controller):
    """What the wizard's threshold row measures: the active recipe's golden reference, with the input domain the
    station runs its model with (read from the sidecar each time: a model swap changes it)."""
    from inspector.detect.package import station_input_domain

    from .threshold_panel import ThresholdSource

    recipe = controller.recipe()
    return ThresholdSource(recipe.name, recipe.reference, station_input_domain(controller.cfg.detector))


def add_engineering_screens(window: MainWindow, records, controller, session) -> None:
    """Calibration wizard (fed by the pipeline's results, like the bridge) and the model panel."""
    from calibration.store import CalibrationStore

    from .calibration_wizard import CalibrationWizard
    from .model_panel import ModelPanel

    wizard = CalibrationWizard(
        session,
        queued_audit(records),
        CalibrationStore(records.db),
        recipes=controller.recipe_names,
        threshold_source=lambda: threshold_source(controller),
    )
    controller.pipeline.on_result(wizard.feed.submit)
    window.add_screen("calibration", wizard)
    window.add_screen("model", ModelPanel(controller, session, queued_audit(records)))
