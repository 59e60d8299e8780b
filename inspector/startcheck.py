"""The checks the station runs at start that need no hardware, shared by `config check` and start-up.

Why one module: a setting that is only found wrong later (a reference file that is not there, a
recipe that inspects nothing, a model package whose hash does not match) stops a line hours after
`config check` said OK. Everything that can be known from the file, the disk and the model package
is checked here, and the same functions decide READY at station start and at a recipe switch.
Hardware (camera, PLC, database server) is left to the station, which reports it as NOT READY.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from .config import Recipe, ReplayCamera, StationConfig
from .decision import RecipeError, RecipeRules, code_area_problem
from .detect.base import ModelError
from .detect.settings import PackagedModelSettings
from .health import Health
from .roi import check_roi

log = logging.getLogger(__name__)

#: Reasons the start check gives the `recipe` health component start with this, so a later good
#: recipe switch clears exactly that fault (and not, say, the editor's ENGINEER_EDITING).
RECIPE_FAULT = "cannot run"


@dataclass
class CheckReport:
    problems: list[str] = field(default_factory=list)
    """Each names the key (`recipes.<name>.roi: ...`); any problem makes `config check` fail."""
    warnings: list[str] = field(default_factory=list)
    """Allowed but rarely intended (a recipe inspecting less than half of the board)."""

    @property
    def ok(self) -> bool:
        return not self.problems


def recipe_key(recipe: Recipe) -> str:
    return f"recipes.{recipe.name}"


# ------------------------------------------------------------------ board size without a reference
def camera_frame_size(cfg: StationConfig) -> tuple[int, int] | None:
    """(width, height) of the frames the configured camera delivers, where that is known without it.

    Each camera's settings class answers for itself (`frame_size()`, optional): a new camera type
    needs nothing here.
    """
    frame_size = getattr(cfg.camera, "frame_size", None)
    return frame_size() if callable(frame_size) else None


# ------------------------------------------------------------------ golden references
def detector_needs_reference(cfg: StationConfig) -> bool | None:
    """Whether the configured model takes the golden reference; None when its package cannot be read
    (the model check reports that)."""
    if not isinstance(cfg.detector, PackagedModelSettings):
        return True  # the classical baseline: a difference to the golden board
    from .detect.package import read_meta

    try:
        return read_meta(cfg.detector.model).needs_reference
    except ModelError:
        return None


def camera_reference_gap(cfg: StationConfig) -> str | None:
    """None when every board the camera delivers carries its own reference, else why not.

    Only replay sources do: the generated demo boards, and folders in the `<id>_test` /
    `<id>_temp` layout. A live camera delivers the board alone.
    """
    cam = cfg.camera
    if isinstance(cam, ReplayCamera):
        if cam.path is None:
            return None
        path = Path(cam.path)
        if path.is_dir():
            from .capture.replay import list_board_images, reference_for

            files = list_board_images(path)
            missing = [p for p in files if reference_for(p) is None]
            if files and not missing:
                return None
            if files:
                return (
                    f"{len(missing)} of {len(files)} boards in camera.path {path} have no <id>_temp reference "
                    f"beside them (first: {missing[0].name})"
                )
            return f"camera.path {path} holds no board images"
        return f"camera.path {path} is a video, whose frames carry no reference"
    return f"the {cam.type} camera delivers boards without a reference"


def reference_problem(cfg: StationConfig, recipe: Recipe, needs_reference: bool | None) -> str | None:
    """Why `recipe` cannot run on this model for want of a golden reference, or None."""
    if not needs_reference or recipe.reference is not None:
        return None
    gap = camera_reference_gap(cfg)
    if gap is None:
        return None
    det = cfg.detector
    model = f"model {det.model.name}" if isinstance(det, PackagedModelSettings) else f"the {det.type} detector"
    return (
        f"{recipe_key(recipe)}.reference: not set, but {model} compares every board with a golden reference "
        f'and {gap}; set reference = "golden.png"'
    )


# ------------------------------------------------------------------ recipes
def compile_recipe(
    cfg: StationConfig, recipe: Recipe, *, needs_reference: bool | None, mm_per_px: float | None = None
) -> RecipeRules:
    """Compile `recipe` as the station runs it, or raise RecipeError naming the key and the reason.

    Checks the reference and mask files, the ROI against the board (the reference, or the camera's
    frame size when the recipe has none) and the golden reference the model needs.
    """
    rules = RecipeRules(recipe, mm_per_px=mm_per_px, board_size=camera_frame_size(cfg))
    return checked_rules(cfg, recipe, rules, needs_reference)


def checked_rules(cfg: StationConfig, recipe: Recipe, rules: RecipeRules, needs_reference: bool | None) -> RecipeRules:
    """`rules` (compiled elsewhere, e.g. with the calibrated scale) after the checks that need the
    station's configuration: the ROI against the camera's frame when the recipe has no reference, and
    the golden reference the model needs. Raises RecipeError naming the key."""
    size = camera_frame_size(cfg) if rules.reference is None else None
    roi = getattr(rules, "roi", None)
    if size is not None and (recipe.roi or recipe.roi_mask) and (roi is None or roi.board_size != size):
        rep = check_roi(
            recipe.roi, rules.mask, size, scale_mask=recipe.roi_mask_scale, min_fraction=recipe.min_roi_fraction
        )
        if not rep.ok:
            raise RecipeError(f"recipe {recipe.name!r}: " + "; ".join(rep.messages()))
        rules.mask, rules.roi = rep.mask, rep
    if size is not None:  # the code region against the camera's frame, where the recipe has no golden image
        problem = code_area_problem(recipe, size, getattr(rules, "polygon", None), rules.mask)
        if problem:
            raise RecipeError(f"recipe {recipe.name!r}: {problem}")
    _check_resampling(cfg, rules)
    problem = reference_problem(cfg, recipe, needs_reference)
    if problem:
        raise RecipeError(problem)
    if rules.reference is not None:
        _check_registrable(cfg, recipe, rules.reference)
        _check_readable(cfg, recipe, rules.reference)
    return rules


def _check_resampling(cfg: StationConfig, rules: RecipeRules) -> None:
    """Refuse a `detector.camera_px_per_mm` that resamples the board beyond what the model can read
    (`inspector.detect.package.resample_problem`), saying what the recipe's golden image (else the camera's frame)
    would become.

    Why here too (the detector refuses to load as well): the recipe is what the station starts with and switches
    to, so its NOT READY reason names the key, and `config check` says it without loading the model.
    """
    from .detect.package import read_meta, resample_problem, station_input_domain

    try:
        domain = station_input_domain(cfg.detector)
        if domain is None:
            return
        input_hw = tuple(read_meta(cfg.detector.model).input.shape[1:3])
    except ModelError:
        return  # the model lamp names an unreadable package
    if rules.reference is not None:
        size, what = (rules.reference.shape[1], rules.reference.shape[0]), "golden image"
    else:
        size, what = camera_frame_size(cfg), "camera frame"
    problem = resample_problem(domain, size, what, input_hw)
    if problem:
        raise RecipeError(problem)


def _check_readable(cfg: StationConfig, recipe: Recipe, reference) -> None:
    """Refuse a golden reference the model's input preparation cannot read (copper and laminate too close: a camera
    gamma left on; copper clipped: over-exposed).

    Why at load: every board would be a REJECT `image not inspectable` naming the golden image, so the station would
    inspect nothing while looking busy; the remedy is at the camera, before production.
    """
    from .detect.package import station_input_domain
    from .detect.prepare import ImageDomainError, prepare

    try:
        domain = station_input_domain(cfg.detector)
    except ModelError:
        return  # the model lamp names an unreadable package
    if domain is None:
        return
    try:
        prepare(reference, domain, "reference image")
    except ImageDomainError as exc:
        raise RecipeError(
            f"{recipe_key(recipe)}.reference {recipe.reference}: the model cannot read it ({exc}); capture the golden "
            "board again with the camera set up as docs/camera.md asks"
        ) from None


def _check_registrable(cfg: StationConfig, recipe: Recipe, reference) -> None:
    """Refuse a golden reference every board would fail to register to (a blank image: no copper edge in view).

    Why at load: every board of such a recipe would be a REJECT "not registered", so the station would inspect
    nothing while looking busy; a golden image without structure is the light off, a lens cap or a wrong crop.
    Building the reference's pyramid here also spares its first board the 9 ms.
    """
    from .registration import BoardRegistrar, RegistrationError, is_blank, settings_from_config

    try:
        if is_blank(reference):  # the rule a capture is held to (`estimate`)
            raise RegistrationError("the image is blank (no contrast)")
        BoardRegistrar(settings_from_config(cfg.calibration)).prepare(reference)
    except RegistrationError as exc:
        raise RecipeError(
            f"{recipe_key(recipe)}.reference {recipe.reference}: boards cannot be registered to it ({exc}); "
            "capture the golden board again, with the board in view and the light on"
        ) from None


def running_needs_reference(cfg: StationConfig, pipeline: object) -> bool | None:
    """As `detector_needs_reference`, from the loaded model when the pipeline has one."""
    info = getattr(pipeline, "detector_info", None)
    if info is not None:
        return bool(info.needs_reference)
    return detector_needs_reference(cfg)


def coverage_warning(recipe: Recipe, rules: RecipeRules) -> str | None:
    roi = getattr(rules, "roi", None)
    if roi is None or not roi.excludes_most:
        return None
    return (
        f"{recipe_key(recipe)}: the ROI inspects only {roi.coverage:.0%} of the board; defects elsewhere are "
        "ignored (PASS)"
    )


def check_recipe(cfg: StationConfig, recipe: Recipe, needs_reference: bool | None, report: CheckReport) -> None:
    # The mm-per-pixel scale lives in the records database (calibration); its absence is a start-up
    # matter of that database, so the recipe is checked here without min_defect_mm.
    plain = recipe.model_copy(update={"min_defect_mm": None})
    try:
        rules = compile_recipe(cfg, plain, needs_reference=needs_reference)
    except RecipeError as exc:
        report.problems.append(_keyed(recipe, str(exc)))
        return
    warning = coverage_warning(recipe, rules)
    if warning:
        report.warnings.append(warning)


def _keyed(recipe: Recipe, message: str) -> str:
    """`recipe 'x': roi: ...` -> `recipes.x.roi: ...`; messages that already name a key are kept."""
    prefix = f"recipe {recipe.name!r}: "
    if message.startswith(recipe_key(recipe)):
        return message
    if message.startswith(prefix):
        # Several problems are joined by "; " before the next key (a message may contain "; " itself).
        parts = [
            p for p in re.split(r"; (?=(?:roi|roi_mask|reference|min_roi_fraction): )", message[len(prefix) :]) if p
        ]
        return "; ".join(f"{recipe_key(recipe)}.{p}" for p in parts)
    if "reference image" in message:
        return f"{recipe_key(recipe)}.reference: {message}"
    if "ROI mask" in message:
        return f"{recipe_key(recipe)}.roi_mask: {message}"
    return f"{recipe_key(recipe)}: {message}"


# ------------------------------------------------------------------ the whole file
def check_model(cfg: StationConfig, report: CheckReport) -> None:
    """The model package: sidecar, runtime, hash, labels, signature, and that its runtime accepts it on the CPU."""
    det = cfg.detector
    if not isinstance(det, PackagedModelSettings):
        return
    from .detect.package import read_meta
    from .detect.packaged import PackagedDetector
    from .signing import verify_model

    try:
        runtime = read_meta(det.model).runtime
        if runtime != det.type:
            report.problems.append(
                f"detector.type: {det.type!r}, but the sidecar of {det.model.name} names runtime {runtime!r}: "
                f"set type = {runtime!r} (with that runtime's settings) or configure a {det.type} package"
            )
            return
        if det.trusted_keys:
            verify_model(det.model, det.trusted_keys)
        probe = PackagedDetector(det.model, det.cpu_only())
        try:
            probe.load()
        finally:
            close = getattr(probe, "close", None)
            if close:
                close()
    except ModelError as exc:  # a setting the model refuses names its own key (detector.camera_px_per_mm)
        report.problems.append(str(exc) if str(exc).startswith("detector.") else f"detector.model: {exc}")
    except Exception as exc:  # the runtime refusing the graph is a model problem too, not a crash
        report.problems.append(f"detector.model: {det.model}: {det.type} cannot load it ({type(exc).__name__}: {exc})")


def check_files(cfg: StationConfig, report: CheckReport) -> None:
    input_problems = getattr(cfg.camera, "input_problems", None)  # the camera's own file checks, optional
    if callable(input_problems):
        report.problems.extend(input_problems())
    for i, key in enumerate(getattr(cfg.detector, "trusted_keys", ())):
        from .signing import SignatureError, load_public_key

        try:
            load_public_key(key)
        except SignatureError as exc:
            report.problems.append(f"detector.trusted_keys.{i}: {exc}")
    try:
        from sqlalchemy.engine import make_url

        backend = make_url(cfg.storage.database_url).get_backend_name()
    except Exception:
        report.problems.append(
            f"storage.database_url: {cfg.storage.database_url!r} is not a SQLAlchemy URL "
            "(sqlite:///path or postgresql+psycopg://user@host/db)"
        )
    else:
        if backend not in {"sqlite", "postgresql"}:
            report.problems.append(f"storage.database_url: {backend!r}: only sqlite and postgresql are supported")
    listen = cfg.metrics.listen
    if listen is not None:
        host, sep, port = listen.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            report.problems.append(f"metrics.listen: {listen!r} is not HOST:PORT")
        else:
            from .config import check_host

            try:
                check_host(host.strip("[]"), "the host")
            except ValueError as exc:
                report.problems.append(f"metrics.listen: {exc} (got {listen!r})")


def threshold_warnings(cfg: StationConfig, report: CheckReport) -> None:
    """A recipe threshold under the model's one-box-per-defect limit (sidecar `cross_class.min_score`).

    Why: the model drops a second-class box on a defect only down to that score; a recipe that reports lower
    scores (to catch fainter defects) also reports those second boxes, so one defect can count as two classes in
    DEFECT_COUNT, CLASS_COUNTS and the Pareto. Allowed (the board is still rejected), rarely intended.
    """
    det = cfg.detector
    if not isinstance(det, PackagedModelSettings):
        return
    from .detect.package import read_meta

    try:
        cross = read_meta(det.model).cross_class
    except ModelError:
        return  # check_model names the problem
    if cross is None or cross.min_score <= 0:
        return
    for recipe in cfg.recipes:
        low = {name: t for name, t in recipe.thresholds.items() if t < cross.min_score}
        if low:
            listed = ", ".join(f"{name} {t:g}" for name, t in sorted(low.items()))
            report.warnings.append(
                f"{recipe_key(recipe)}.thresholds: {listed} below {cross.min_score:g}, the score down to which "
                f"{det.model.name} reports one class per defect (sidecar cross_class.min_score): a defect scored "
                "between may be counted twice, as two classes"
            )


def check_config(cfg: StationConfig, *, model: bool = True) -> CheckReport:
    """Every start check that needs no hardware; `config check` fails on any problem."""
    report = CheckReport()
    check_files(cfg, report)
    if model:
        check_model(cfg, report)
        threshold_warnings(cfg, report)
    needs = detector_needs_reference(cfg)
    for recipe in cfg.recipes:
        check_recipe(cfg, recipe, needs, report)
    return report


# ------------------------------------------------------------------ station start and switches
def start_recipe(cfg: StationConfig, recipe: Recipe, health: Health, compile_rules) -> RecipeRules:
    """The rules the station starts with: the recipe compiled, or, when it cannot run, rules that
    reject every board with the reason while the `recipe` component keeps the station NOT READY."""
    try:
        rules = compile_rules(recipe)
    except RecipeError as exc:
        reason = f"{RECIPE_FAULT}: {_keyed(recipe, str(exc))}"
        log.error("recipe %s %s", recipe.name, reason)
        health.fail("recipe", reason)
        return RefusedRecipe(recipe, reason)
    health.ok("recipe", recipe.name)
    warning = coverage_warning(recipe, rules)
    if warning:
        log.warning("%s", warning)
    return rules


def clear_recipe_fault(health: Health, name: str) -> None:
    """A recipe that compiled was applied: drop the start check's fault (only that one)."""
    state = health.get("recipe")
    if state is not None and not state.ok and state.reason.startswith(RECIPE_FAULT):
        health.ok("recipe", name)


class RefusedRecipe(RecipeRules):
    """Stands in for a recipe that cannot run: every board is a REJECT naming why (fail safe)."""

    def __init__(self, recipe: Recipe, reason: str):  # noqa: D107 - nothing is loaded
        self.recipe = recipe
        self.name = recipe.name
        self.thresholds = {}
        self.min_px = recipe.min_defect_px
        self.reference = None
        self.mask = None
        self.polygon = None
        self.roi = None
        self.severity = ()
        self.reason = reason
        self.refused = True

    def reference_for(self, _colour):
        """The first thing a board asks of its recipe (its golden image): the REJECT names why the recipe cannot
        run, not the attribute a refused recipe never loaded."""
        raise RecipeError(f"recipe {self.name!r} {self.reason}")

    def thresholds_for(self, defaults: dict[int, float]) -> dict[int, float]:
        raise RecipeError(f"recipe {self.name!r} {self.reason}")

    def decide(self, detections, defaults, *_args, **_kw):
        raise RecipeError(f"recipe {self.name!r} {self.reason}")
