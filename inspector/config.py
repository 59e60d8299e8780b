"""Station configuration: one TOML file, validated by pydantic.

Why strict (`extra="forbid"`): a misspelt key in a line configuration (`treshold`) must stop the
station at start-up with the key's path named, not run silently on a default.
With no file at all, the defaults are the demo station: replay camera over generated boards, the
bundled model, local SQLite under `data/`, the built-in PLC simulator.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, Union

from pydantic import (
    BeforeValidator,
    Field,
    TypeAdapter,
    ValidationError,
    field_validator,
    model_validator,
)

from .capture.aravis import AravisCamera, Roi  # noqa: F401 (re-exported)
from .capture.genicam import GenicamCamera  # noqa: F401 (re-exported)
from .capture.opencv import OpenCVCamera  # noqa: F401 (re-exported)
from .capture.registry import camera_configs
from .capture.replay import ReplayCamera
from .config_base import Section, TriggerMode  # noqa: F401 (re-exported)
from .detect.delegates import DEFAULT_AUTO_DELEGATES, ExternalDelegate  # noqa: F401 (re-exported)
from .detect.registry import default_detector, detector_configs, with_type
from .detect.settings import DEFAULT_MODEL, REPO_ROOT, PackagedModelSettings  # noqa: F401 (REPO_ROOT re-exported)
from .domain import CLASS_NAMES
from .plc_settings import default_plc_settings, with_protocol
from .plc_settings import protocols as plc_protocols

_HOSTNAME_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def check_host(value: str, what: str) -> str:
    """An IP address or a DNS host name, as a socket would take it; raises ValueError saying why not.

    Why here and not at connect: a typo such as `300.1.2.3` otherwise surfaces as a retry loop or a
    traceback from the PLC or camera thread long after start, with no key named.
    """
    v = value.strip()
    if not v:
        raise ValueError(f"{what} is empty")
    if v != value:
        raise ValueError(f"{what} has spaces around it")
    try:
        ipaddress.ip_address(v)
        return v
    except ValueError:
        pass
    labels = v.rstrip(".").split(".")
    if all(part.isdigit() for part in labels):
        raise ValueError(f"{what} is not a valid IP address")
    if len(v) > 253 or not all(_HOSTNAME_LABEL.match(part) for part in labels):
        raise ValueError(f"{what} is neither an IP address nor a valid host name")
    if labels[-1].isdigit():
        raise ValueError(f"{what} is not a valid IP address")
    return v


def check_timezone(tz: str) -> str:
    """`tz` must be an IANA zone this machine knows (shift boundaries and history use it)."""
    if tz == "UTC":
        return tz  # known without the zone database (a minimal machine may lack tzdata)
    from zoneinfo import ZoneInfo

    try:
        ZoneInfo(tz)
    except Exception:
        raise ValueError(
            "unknown time zone (an IANA name such as 'Europe/Berlin'; install the tzdata package "
            "if this machine has no zone database)"
        ) from None
    return tz


def check_shift_starts(starts: list[str]) -> list[str]:
    """Shift starts: HH:MM on the hour (yield per shift is built from hourly buckets), no duplicates."""
    from .shifts import ShiftPlan

    ShiftPlan.parse(starts).require_whole_hours()
    return starts


class ConfigError(Exception):
    """A configuration that cannot run; the message lists every bad key with its path."""

    def __init__(self, problems: list[str], source: str = "configuration"):
        self.problems = problems
        self.source = source
        super().__init__(f"{source}: " + "; ".join(problems))


_Model = Section


# ---------------------------------------------------------------- station
class StationSection(_Model):
    id: str = Field(
        "station-1", min_length=1, max_length=64, description="Unique station id, stored with every record."
    )
    name: str = Field("PCB AOI demo", description="Human-readable station name shown in the UI.")
    line: str = Field("line-1", description="Production line the station belongs to.")
    plugins: dict[str, str] = Field(
        default_factory=lambda: {"calibration": "station", "plc": "station"},
        description="Which entry point builds each plug-in part: part -> entry-point name in the group "
        "`pcb_inspector.<part>` (calibration, plc). A part left out is not loaded.",
    )


# ---------------------------------------------------------------- camera
# Each camera module owns its settings class (`type: Literal[...]`); [camera] is their union, built
# from the registry (inspector/capture/registry.py) when this module loads. The names below are
# re-exported for the code and station scripts that import them from here.
_CAMERA_CLASSES = tuple(camera_configs().values())
CameraSection = Annotated[
    Union[_CAMERA_CLASSES],  # noqa: UP007 (a runtime tuple of classes)
    Field(discriminator="type"),
]


class SupervisorSection(_Model):
    stall_timeouts: int = Field(3, ge=1, le=100, description="Consecutive timeouts/incomplete frames before re-init.")
    backoff_initial_s: float = Field(0.5, gt=0, description="First reconnect delay.")
    backoff_max_s: float = Field(10.0, gt=0, description="Reconnect delay cap.")
    repeat_boards: int = Field(
        5,
        ge=0,
        le=100,
        description="Inspected boards in a row with a defect at the same place of the frame (dust on the lens) or of "
        "the board (a process fault upstream) before the station drops READY (inspector/repeat_watch.py); triggered "
        "boards only; 0: never.",
    )
    repeat_radius_px: float = Field(
        12.0, gt=0, le=200, description="How close (px) defects of those boards must lie to count as one place."
    )

    @field_validator("repeat_boards")
    @classmethod
    def _a_run_is_two_boards_or_more(cls, v: int) -> int:
        if v == 1:
            raise ValueError("1 would stop the line on every rejected board: 0 (never) or 2 and more")
        return v


# ---------------------------------------------------------------- detector
# Each detector plug-in owns its settings class (`type: Literal[...]`); [detector] is their union, built
# from the registry (inspector/detect/registry.py) when this module loads. The keys every model package
# has live in `PackagedModelSettings` (inspector/detect/settings.py); a runtime's own keys (LiteRT's
# `delegate`, ONNX Runtime's `providers`) in its module. `with_type` turns old spellings (`engine`, no
# `type`, another runtime's keys) into today's, with a deprecation message.
_DETECTOR_CLASSES = tuple(detector_configs().values())
DetectorConfig = Annotated[
    Annotated[
        Union[_DETECTOR_CLASSES],  # noqa: UP007 (a runtime tuple of classes)
        Field(discriminator="type"),
    ],
    BeforeValidator(with_type),
]
_DETECTOR_ADAPTER: TypeAdapter[Any] = TypeAdapter(DetectorConfig)


def DetectorSection(**keys: Any) -> Any:  # noqa: N802 (was the one [detector] class; code still calls it so)
    """The `[detector]` settings the keys describe, validated: an instance of the class their `type` names.

    Why a function: `[detector]` used to be one class holding every backend's keys; it is now one class
    per plug-in, and `DetectorSection(model=..., delegate="cpu")` or `DetectorSection(type="classical")`
    still build the right one (without `type`, the model file's ending picks the runtime).
    """
    return _DETECTOR_ADAPTER.validate_python(keys)


# ---------------------------------------------------------------- recipe
Symbology = Literal["datamatrix", "qr", "code128"]


class BoardCode(_Model):
    """Where a board carries its serial as a printed code, and what to do when it cannot be read."""

    region: tuple[int, int, int, int] | None = Field(
        None,
        description="x, y, width, height of the area holding the code, in board pixels (the golden reference's "
        "pixels, which are frame pixels when the board is not registered); None searches the whole frame.",
    )
    margin_px: int = Field(
        16, ge=0, le=1000, description="Search this much around `region` too (board placement tolerance)."
    )
    symbologies: list[Symbology] = Field(
        default_factory=lambda: ["datamatrix"], min_length=1, description="Code types to look for."
    )
    require_code: bool = Field(
        False, description="A board whose code cannot be read is a REJECT ('board code unreadable')."
    )
    ignore_defects: bool = Field(
        True,
        description="Defects centred on a code that was read (its box and quiet zone) do not count: the code "
        "differs from board to board, so it always differs from the golden reference. Where no code was read, "
        "every defect counts: `region` is where to look, not an area exempt from inspection.",
    )

    @field_validator("region")
    @classmethod
    def _positive_size(cls, v: tuple[int, int, int, int] | None) -> tuple[int, int, int, int] | None:
        if v is not None and (v[0] < 0 or v[1] < 0 or v[2] <= 0 or v[3] <= 0):
            raise ValueError(f"region {list(v)} needs x, y >= 0 and width, height > 0")
        return v


MAX_DEFECTS_PASS = 99
"""`max_defects_pass` above this passes every board: the decoder keeps at most 100 peaks per tile (`top_k`)."""


class Recipe(_Model):
    id: int = Field(1, ge=0, le=65535, description="Recipe number the PLC selects with COMMAND_RECIPE.")
    name: str = Field("demo", min_length=1, description="Recipe (product) name.")
    thresholds: dict[str, float] = Field(
        default_factory=dict,
        description="Per-class score threshold by class name; missing classes use the model's default.",
    )
    min_defect_px: float = Field(0.0, ge=0, description="Ignore defects whose longer side is smaller than this (px).")
    min_defect_mm: float | None = Field(
        None, ge=0, description="Ignore defects smaller than this (mm); needs a scale calibration."
    )
    roi: list[tuple[float, float]] | None = Field(
        None,
        description="Inspection polygon (at least 3 corners, inside the board: the reference image, or the frame "
        "without one); defects whose centre lies outside are ignored.",
    )
    roi_mask: Path | None = Field(
        None,
        description="Mask image (white = inspect); alternative to `roi`. Must have the reference's (or the "
        "frame's) size unless `roi_mask_scale` is set.",
    )
    roi_mask_scale: bool = Field(
        False,
        description="Scale a mask of another size (same aspect ratio) to the board; off: a size mismatch stops "
        "the station instead of stretching the mask silently.",
    )
    min_roi_fraction: float = Field(
        0.05,
        gt=0,
        le=1,
        description="Smallest share of the board the ROI (polygon and mask together) may inspect; a smaller ROI "
        "is refused as a mistake. Lower it for a recipe that really inspects a small area.",
    )
    reference: Path | None = Field(None, description="Golden reference image of a defect-free board.")
    max_unseen_fraction: float = Field(
        0.10,
        ge=0,
        le=1,
        description="Largest share of the inspected area (the ROI, else the whole reference) that may lie outside "
        "the camera's view on a registered board; more is a REJECT ('board not fully in view'). Why: what the camera "
        "did not see is not compared, so a board far off in its fixture hid its defects there and PASSED. Draw the "
        "ROI on the board (not on an empty fixture border) and keep this small.",
    )
    max_defects_pass: int = Field(
        0,
        ge=0,
        description="Boards with more defects than this are rejected (normally 0). At most 99: the detector reports at "
        "most 100 defects per tile (its top_k), so 100 or more would pass every board of one tile.",
    )
    severity: list[str] = Field(
        default_factory=lambda: list(CLASS_NAMES),
        description="Defect classes, most severe first: a rejected board's RESULT_CODE and headline class is the "
        "most severe class found (ties: the higher score). Every class exactly once.",
    )
    code: BoardCode | None = Field(
        None, description="Read the board serial from a DataMatrix, QR or Code 128 on the board; None: not read."
    )

    @field_validator("severity")
    @classmethod
    def _severity_is_a_permutation(cls, v: list[str]) -> list[str]:
        unknown = [n for n in v if n not in CLASS_NAMES]
        if unknown:
            raise ValueError(f"unknown class(es) {unknown}; classes are {list(CLASS_NAMES)}")
        if sorted(v) != sorted(CLASS_NAMES):
            missing = [n for n in CLASS_NAMES if n not in v]
            dup = sorted({n for n in v if v.count(n) > 1})
            raise ValueError(f"must name every class exactly once (missing {missing}, repeated {dup})")
        return v

    @field_validator("max_defects_pass")
    @classmethod
    def _can_reject(cls, v: int) -> int:
        if v > MAX_DEFECTS_PASS:
            raise ValueError(
                f"{v} would pass every board of one tile: the detector reports at most {MAX_DEFECTS_PASS + 1} defects "
                f"per tile; at most {MAX_DEFECTS_PASS} (normally 0)"
            )
        return v

    @field_validator("thresholds")
    @classmethod
    def _known_classes(cls, v: dict[str, float]) -> dict[str, float]:
        for name, thr in v.items():
            if name not in CLASS_NAMES:
                raise ValueError(f"unknown class {name!r}; expected one of {', '.join(CLASS_NAMES)}")
            if not 0.0 < thr <= 1.0:
                raise ValueError(f"threshold for {name!r} is {thr}; expected 0 < t <= 1")
        if set(v) == set(CLASS_NAMES) and min(v.values()) >= 1.0:
            # 1.0 turns a class off (a sigmoid score stays below it); all of them off inspects nothing.
            raise ValueError(
                "every class's threshold is 1.0, which no score reaches: every board would PASS; lower at least one"
            )
        return v

    @field_validator("roi")
    @classmethod
    def _polygon_shape(cls, v: list[tuple[float, float]] | None) -> list[tuple[float, float]] | None:
        if v is None:
            return v
        from .roi import polygon_shape_problem

        problem = polygon_shape_problem(v)
        if problem:
            raise ValueError(problem)
        return v


# ---------------------------------------------------------------- plc
# Each protocol plug-in owns its settings class (inspector/plc_settings.py); [plc] is their union,
# chosen by `protocol` (default modbus), built once from the registry when this module loads.
_PLC_CLASSES = tuple(plc_protocols().values())
PlcConfig = Annotated[
    Annotated[
        Union[_PLC_CLASSES],  # noqa: UP007 (a runtime tuple of classes)
        Field(discriminator="protocol"),
    ],
    BeforeValidator(with_protocol),
]


# ---------------------------------------------------------------- storage
class StorageSection(_Model):
    database_url: str = Field(
        "sqlite:///data/inspections.db", description="SQLAlchemy URL: sqlite:///path or postgresql+psycopg://..."
    )
    archive_dir: Path = Field(Path("data/archive"), description="Folder for archived board images and crops.")
    archive: Literal["all", "rejects", "none"] = Field("all", description="Which boards keep their full image.")
    retention_days: float = Field(30.0, gt=0, description="Delete archived records older than this.")
    min_free_mb: int = Field(
        500,
        ge=0,
        description="Free-disk floor (MB): below it the station is NOT READY (disk, error 40) and retention deletes "
        "the images, then the rows, of records older than retention_min_days.",
    )
    retention_min_days: float = Field(
        7.0,
        ge=0,
        description="Below the disk floor, records younger than this (days) are never deleted, not even their images.",
    )
    queue_size: int = Field(1000, ge=10, le=1_000_000, description="Results buffered in memory for the writer thread.")
    spool_dir: Path = Field(Path("data/spool"), description="Results spilled here when the database is unavailable.")
    spool_reserve_mb: float = Field(
        2.0,
        ge=0,
        le=1024,
        description="Space the spool keeps allocated (spool_dir/reserve.journal) so records stay durable on a full "
        "disk (about 1 kB a board); 0 = none.",
    )
    archive_pass_every: int = Field(
        0, ge=0, description="With archive = 'rejects': also keep the full image of every Nth passed board (0 = none)."
    )
    sqlite_synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="SQLite synchronous mode in WAL: FULL survives power loss (one fsync per batch); NORMAL only a process crash.",
    )
    fsync_images: bool = Field(
        False, description="fsync every archive file (records are always durable; images then survive power loss too)."
    )
    batch_max: int = Field(256, ge=1, le=10000, description="Most results the writer commits in one transaction.")
    retention_interval_s: float = Field(60.0, gt=0, description="How often the writer runs a retention pass.")
    retention_batch: int = Field(500, ge=1, le=100_000, description="Inspections deleted per retention transaction.")
    shift_starts: list[str] = Field(
        default_factory=lambda: ["06:00", "14:00", "22:00"],
        min_length=1,
        description="Local start times (HH:MM) of the shifts, for yield per shift.",
    )
    timezone: str = Field("UTC", description="IANA time zone of the plant (shift boundaries and history display).")

    @field_validator("timezone")
    @classmethod
    def _zone(cls, v: str) -> str:
        return check_timezone(v)

    @field_validator("shift_starts")
    @classmethod
    def _shifts(cls, v: list[str]) -> list[str]:
        return check_shift_starts(v)

    station_key: Path | None = Field(
        None,
        description="Station signing key (Ed25519, PEM, mode 0600), kept outside the database and created on first "
        "start; signs audit events and result records. None: station.key beside the SQLite file (server "
        "databases: in the spool folder's parent).",
    )

    def station_key_path(self) -> Path:
        """Where the station key lives (the configured path, or the default beside the records)."""
        from .station_key import default_path

        if self.station_key is not None:
            return Path(self.station_key)
        return default_path(self.database_url, self.spool_dir)


# ---------------------------------------------------------------- calibration
class CalibrationSection(_Model):
    """How the station uses the calibrations stored in its records database (`pcb-inspector calibrate`).

    Each piece is used only when its calibration is stored; with none stored the station runs as before.
    """

    undistort: bool = Field(
        True, description="Undistort every frame with the active intrinsics calibration (when one is stored)."
    )
    registration: bool = Field(
        True,
        description="Kept so older station files load: every board is registered to its reference whenever one is "
        "used (a board 2 px off in the fixture otherwise turns trace edges into defects); false is ignored with a "
        "warning.",
    )
    motion: Literal["translation", "euclidean", "affine", "homography"] = Field(
        "affine", description="Registration transform; affine covers shift, rotation, scale and slight shear."
    )
    min_quality: float = Field(
        0.7, ge=0, le=1, description="Below this registration quality (ECC correlation) the board is rejected."
    )
    max_shift_px: float = Field(200.0, gt=0, description="A larger board displacement is a fixture fault (REJECT).")
    max_rotation_deg: float = Field(
        15.0, gt=0, le=180, description="A larger board rotation is a fixture fault (REJECT)."
    )
    max_scale_change: float = Field(
        0.1, gt=0, lt=1, description="A larger relative scale change is a set-up fault (REJECT)."
    )
    full_resolution: bool = Field(
        False, description="Refine the registration at full resolution too (a little more accurate, ~3x slower)."
    )
    optics_monitor: bool = Field(
        True,
        description="Compare focus, light and colour of production boards with the recipe's reference baseline "
        "(when one is stored); drift raises the `calibration` alarm.",
    )
    drop_ready_on_drift: bool | None = Field(
        None, description="Optics drift drops READY (true) or only alarms (false); None: as stored with the baseline."
    )
    check_period_s: float = Field(
        0.0, ge=0, le=3600, description="Check the optics at most once per this many seconds (0: every board)."
    )


# ---------------------------------------------------------------- ui / metrics
class UiSection(_Model):
    language: Literal["en", "zh_CN"] = Field("en", description="UI language; switchable at runtime.")
    fullscreen: bool = Field(False, description="Start full screen (kiosk).")
    auto_logout_s: int = Field(300, ge=10, description="Log out after this much inactivity.")
    display_fps: float = Field(15.0, gt=0, le=60, description="Maximum live-view refresh rate.")


class TemperatureSource(_Model):
    """Where the accelerator's temperature is read: named per board, because thermal zone names differ
    by vendor and a guess by name picks the wrong sensor (or none)."""

    sysfs: Path | None = Field(
        None,
        description="File holding one number, e.g. /sys/class/thermal/thermal_zone2/temp or an hwmon temp1_input.",
    )
    command: list[str] | None = Field(
        None,
        min_length=1,
        description="Vendor command whose output holds the temperature (first number), e.g. ['vcgencmd', "
        "'measure_temp']; run at most every 10 s, 2 s timeout.",
    )
    scale: float | None = Field(
        None, gt=0, description="Multiplier to °C; default 0.001 for sysfs (millidegrees), 1 for a command."
    )

    @model_validator(mode="after")
    def _one_source(self) -> TemperatureSource:
        if (self.sysfs is None) == (self.command is None):
            raise ValueError("metrics.accelerator_temperature: set exactly one of `sysfs` or `command`")
        return self


class MetricsSection(_Model):
    listen: str | None = Field(None, description="HOST:PORT for /metrics and /health; None = off.")
    latency_budget_ms: float = Field(48.0, gt=0, description="End-to-end p99 budget used by alerts.")
    accelerator_temperature: TemperatureSource | None = Field(
        None,
        description="Accelerator temperature source for pcb_accelerator_temperature_celsius; None = not read "
        "(a station whose model runs on an accelerator then raises AcceleratorTemperatureMissing).",
    )


class StationConfig(_Model):
    station: StationSection = Field(default_factory=StationSection, description="Station identity.")
    camera: CameraSection = Field(default_factory=ReplayCamera, description="Camera backend, chosen by `type`.")
    supervisor: SupervisorSection = Field(default_factory=SupervisorSection, description="Camera watchdog.")
    detector: DetectorConfig = Field(
        default_factory=default_detector,
        description="Detector, chosen by `type` (inspector/detect/registry.py); each type owns its keys.",
    )
    recipes: list[Recipe] = Field(default_factory=lambda: [Recipe()], min_length=1, description="Product recipes.")
    active_recipe: str = Field("demo", description="Name of the recipe loaded at start.")
    plc: PlcConfig = Field(
        default_factory=default_plc_settings,
        description="PLC link, chosen by `protocol` (modbus, opcua, off); each protocol owns its keys.",
    )
    storage: StorageSection = Field(default_factory=StorageSection, description="Records and image archive.")
    ui: UiSection = Field(default_factory=UiSection, description="Touchscreen UI.")
    metrics: MetricsSection = Field(default_factory=MetricsSection, description="Prometheus metrics and health.")
    calibration: CalibrationSection = Field(
        default_factory=CalibrationSection, description="Use of the stored calibrations (undistortion, registration)."
    )

    @model_validator(mode="after")
    def _detector_knows_the_station_key(self) -> StationConfig:
        # Encrypted model packages are bound to the station key; the detector is built from its section alone.
        if isinstance(self.detector, PackagedModelSettings):
            self.detector._storage = self.storage
        return self

    @model_validator(mode="after")
    def _recipes_consistent(self) -> StationConfig:
        names = [r.name for r in self.recipes]
        ids = [r.id for r in self.recipes]
        if len(set(names)) != len(names):
            raise ValueError(f"recipe names must be unique, got {names}")
        if len(set(ids)) != len(ids):
            raise ValueError(f"recipe ids must be unique, got {ids}")
        if self.active_recipe not in names:
            raise ValueError(f"active_recipe {self.active_recipe!r} is not one of the recipes {names}")
        return self

    def recipe(self, name: str | None = None) -> Recipe:
        name = name or self.active_recipe
        for r in self.recipes:
            if r.name == name:
                return r
        raise KeyError(f"no recipe named {name!r}")

    def recipe_by_id(self, recipe_id: int) -> Recipe:
        for r in self.recipes:
            if r.id == recipe_id:
                return r
        raise KeyError(f"no recipe with id {recipe_id}")


def _num(v: Any) -> Any:
    return int(v) if isinstance(v, float) and v.is_integer() else v


def _describe(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"] if not (isinstance(p, str) and p in {"function-after"}))
    value = err.get("input")
    kind = err["type"]
    ctx = err.get("ctx") or {}
    shown = repr(value) if isinstance(value, str) else value
    if kind == "extra_forbidden":
        return f"{loc}: unknown key (check the spelling; allowed keys are in `pcb-inspector config show`)"
    if kind == "missing":
        return f"{loc}: required key is missing"
    if kind in {"greater_than_equal", "greater_than"}:
        bound = _num(ctx.get("ge", ctx.get("gt")))
        word = "below" if kind == "greater_than_equal" else "not above"
        return f"{loc}: {shown} is {word} {bound}"
    if kind in {"less_than_equal", "less_than"}:
        bound = _num(ctx.get("le", ctx.get("lt")))
        word = "above" if kind == "less_than_equal" else "not below"
        return f"{loc}: {shown} is {word} {bound}"
    if kind == "literal_error":
        return f"{loc}: {shown} is not one of {ctx.get('expected')}"
    if kind == "union_tag_invalid":
        key = str(ctx.get("discriminator", "'type'")).strip("'")
        if key != "type" or loc == "detector":
            return f"{loc}.{key}: {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
        return f"{loc}: type {ctx.get('tag')!r} is not one of {ctx.get('expected_tags')}"
    if kind == "union_tag_not_found":
        # A section without its kind ([camera] with no `type`): pydantic said only "Unable to extract tag using
        # discriminator 'type'" and nothing of the other keys of the section.
        key = str(ctx.get("discriminator", "'type'")).strip("'")
        kinds = {"camera": camera_configs, "plc": plc_protocols, "detector": detector_configs}.get(loc)
        choices = f": one of {', '.join(repr(k) for k in sorted(kinds()))}" if kinds else ""
        return f"{loc}.{key}: required key is missing{choices}"
    msg = err["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg} (got {shown})" if loc else msg


def _strip_union_noise(loc: tuple) -> tuple:
    # Discriminated unions put the tag in the path (camera.aravis.exposure_us); the user wrote camera.exposure_us.
    out = []
    for i, part in enumerate(loc):
        if i > 0 and loc[i - 1] == "camera" and part in camera_configs():
            continue
        if i > 0 and loc[i - 1] == "plc" and part in plc_protocols():  # plc.modbus.port -> plc.port
            continue
        if i > 0 and loc[i - 1] == "detector" and part in detector_configs():  # detector.litert.threads
            continue
        out.append(part)
    return tuple(out)


def validation_problems(exc: ValidationError) -> list[str]:
    problems = []
    for err in exc.errors():
        err = dict(err)
        err["loc"] = _strip_union_noise(tuple(err["loc"]))
        problems.append(_describe(err))
    return problems


def parse_config(data: dict[str, Any], source: str = "configuration") -> StationConfig:
    try:
        return StationConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(validation_problems(exc), source) from None


def load_config(path: Path | str | None) -> StationConfig:
    """Load `station.toml`; None gives the demo defaults. Raises ConfigError, never a traceback."""
    if path is None:
        return StationConfig()
    path = Path(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError([f"file not found: {path}"], str(path)) from None
    except OSError as exc:
        raise ConfigError([f"cannot read {path}: {exc.strerror}"], str(path)) from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError([f"not UTF-8 text (byte {exc.start})"], str(path)) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"TOML syntax error: {exc}"], str(path)) from None
    plc = data.setdefault("plc", {})
    if isinstance(plc, dict):
        # A station file gets the protocol's file defaults (Modbus: the built-in PLC simulator only when the
        # file says so; the default (True) is the demo's, and a simulator beside a real PLC makes two masters).
        cls = plc_protocols().get(with_protocol(plc).get("protocol"))
        if cls is not None:
            cls.file_defaults(plc)
    cfg = parse_config(data, str(path))
    return resolve_paths(cfg, path.parent)


def resolve_paths(cfg: StationConfig, base: Path) -> StationConfig:
    """Relative paths to *inputs* in a config file (boards, references, masks, keys, the model, the
    GenTL producer) are relative to that file, not to the working directory.

    Storage paths (database, archive, spool) are not: they stay relative to the working directory,
    which the systemd units set to /var/lib/pcb-inspector while the file lives read-only in
    /etc/pcb-inspector (docs/deployment.md).
    """

    def fix(p: Path | None) -> Path | None:
        return p if p is None or p.is_absolute() else base / p

    det = cfg.detector
    if isinstance(det, PackagedModelSettings):  # the model and the keys of any packaged-model type
        if det.model != DEFAULT_MODEL and not det.model.is_absolute():
            det.model = base / det.model
        det.trusted_keys = [fix(k) for k in det.trusted_keys]
        det.model_key = fix(det.model_key)
    for key in type(cfg.camera).model_fields:  # every path a camera backend reads (folder, producer) is an input
        value = getattr(cfg.camera, key)
        if isinstance(value, Path):
            setattr(cfg.camera, key, fix(value))
    for r in cfg.recipes:
        if r.reference is not None:
            r.reference = fix(r.reference)
        if r.roi_mask is not None:
            r.roi_mask = fix(r.roi_mask)
    return cfg


def dump_toml(cfg: StationConfig) -> str:
    """Effective configuration as TOML (for `config show`), with None values left out."""
    data = cfg.model_dump(mode="json", exclude_none=True)
    return _to_toml(data)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def _key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


_INLINE_TABLES = {"thresholds", "options"}


def _to_toml(data: dict[str, Any], prefix: str = "") -> str:
    lines: list[str] = []
    tables: list[tuple[str, dict]] = []
    arrays: list[tuple[str, list]] = []
    for k, v in data.items():
        if isinstance(v, dict) and k not in _INLINE_TABLES:
            tables.append((k, v))
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            arrays.append((k, v))
        else:
            lines.append(f"{_key(k)} = {_toml_value(v)}")
    out = "\n".join(lines)
    for k, v in tables:
        name = f"{prefix}{k}"
        out += f"\n\n[{name}]\n" + _to_toml(v, name + ".").strip("\n")
    for k, items in arrays:
        name = f"{prefix}{k}"
        for item in items:
            out += f"\n\n[[{name}]]\n" + _to_toml(item, name + ".").strip("\n")
    return out.strip("\n") + "\n"
