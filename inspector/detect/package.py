"""Model package: a `.tflite` file plus a sidecar JSON that says what the file is and how to read it.

Why a sidecar: the `.tflite` alone does not say which channel order, class order, stride,
thresholds or licence apply, and a wrong guess gives plausible-looking but wrong detections. The
station therefore never runs a file whose hash, shapes, dtypes and label count do not match its
sidecar; every mismatch becomes one `ModelError` naming the file and the mismatch.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from .base import ColourRule, ModelError
from .settings import PASSES

FORMAT_VERSION = 1
SEMVER = r"^\d+\.\d+\.\d+([-+][0-9A-Za-z.-]+)?$"
INPUT_CHANNELS = ("board", "reference", "absdiff")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Quantisation(_Strict):
    scale: float = Field(..., gt=0, description="Real value = scale * (q - zero_point).")
    zero_point: int = Field(..., description="Quantised value of real 0.")


class InputSpec(_Strict):
    shape: tuple[int, int, int, int] = Field(..., description="NHWC input shape; batch is 1.")
    dtype: Literal["uint8", "int8", "float32"] = Field(..., description="Input tensor type.")
    quantisation: Quantisation | None = Field(None, description="Input quantisation; None for float inputs.")
    channels: tuple[Literal["board", "reference", "absdiff"], ...] = Field(
        ..., description="What each input channel holds, e.g. board, reference, absdiff (|board - reference|)."
    )
    value_range: tuple[float, float] = Field(
        (0.0, 255.0), description="Real input range the graph expects (pixels 0..255; scaling is in the graph)."
    )


class OutputSpec(_Strict):
    head: Literal["centernet"] = Field(..., description="Decoding: CenterNet heatmap + regression.")
    strides: tuple[int, ...] = Field(..., min_length=1, description="Output stride(s) in input pixels.")
    heatmap_activation: Literal["sigmoid", "none"] = Field(
        "sigmoid", description="'sigmoid': the graph outputs 0..1 scores; 'none': logits (sigmoid applied here)."
    )
    regression: Literal["log_wh_offset"] = Field(
        "log_wh_offset", description="Regression channels: log(w/stride), log(h/stride), dx, dy."
    )


class MultiScale(_Strict):
    """Extra passes over a reduced copy of the frame, for defects larger than the training ones.

    Why: a model trained on 320 px crops of boards whose defects are mostly under 60 px splits a
    large irregular defect into fragments; the same defect shrunk to 0.8x is found whole (recall on
    defects >= 90 px 0.80 -> 0.89 with model 1.4.0's weights). Only large boxes are taken from a reduced pass,
    so small defects keep the full-resolution answer.
    """

    scales: tuple[float, ...] = Field(
        ...,
        min_length=1,
        max_length=3,
        description="Frame scales of the extra passes, each in [0.3, 1) (e.g. [0.8]); each costs one more pass.",
    )
    min_box_px: float = Field(
        ...,
        ge=0,
        description="A reduced pass only contributes boxes whose longer side is at least this, in frame pixels.",
    )
    label_margin_px: float = Field(
        0.0,
        ge=0,
        le=64,
        description="Margin the training labels draw around a defect, in model-input pixels. The model draws it "
        "at input scale, so a box from a pass at scale s is shrunk by margin * (1/s - 1) on each side.",
    )

    mirror: bool = Field(
        True,
        description="With `tta: hflip`, run the reduced passes mirrored too (two invokes each); false: once each, "
        "about 7 ms less a board for about 0.2 point of held-out mAP@0.5 (docs/performance.md).",
    )

    @field_validator("scales")
    @classmethod
    def _in_range(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        bad = [s for s in v if not 0.3 <= s < 1.0]
        if bad:
            raise ValueError(f"scales {bad} are outside [0.3, 1)")
        return v


class JoinFragments(_Strict):
    """Union boxes for touching same-class boxes (`inspector.detect.fragments`).

    Why: the model draws a long or irregular defect as touching pieces, each too small to count as
    the defect; the union of two pieces is offered as one more box, scored as the weaker piece.
    """

    min_score: float = Field(
        ..., gt=0, le=1, description="Both pieces must score at least this (and pass their class threshold)."
    )
    max_gap_px: float = Field(
        0.0, ge=0, le=64, description="Pieces at most this far apart, in frame pixels, count as touching."
    )
    max_part_iou: float = Field(
        0.8,
        gt=0,
        le=1,
        description="A union overlapping one of its pieces by at least this IoU duplicates it and is not added.",
    )


class CrossClass(_Strict):
    """Suppression of boxes of another class on the same defect (`inspector.detect.cross_class`).

    Why: class-wise NMS leaves two boxes of different classes on one unsure defect; both would count.
    """

    iou: float = Field(
        ..., gt=0, le=1, description="A box overlapping a better-scoring box of another class by this IoU is dropped."
    )
    min_score: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Only boxes scoring at least this are dropped (set it to the lowest class threshold a recipe "
        "uses: weaker boxes are never reported, and kept they rank as the defect's second guess in evaluation).",
    )


class InputDomain(_Strict):
    """The image domain the network was trained on, and how the station brings a camera frame there.

    Why in the package: a network only answers reliably on the kind of image it learnt (the shipped
    one: DeepPCB's binarised copper masks). The station applies this to the board AND the golden
    image before tiling (`inspector.detect.prepare`); an input that is already binary passes untouched.
    """

    kind: Literal["binary_copper"] = Field(
        ..., description="'binary_copper': the network takes binarised copper masks (two levels, 0 and 255)."
    )
    method: Literal["otsu", "adaptive"] = Field(
        "otsu", description="Threshold after illumination flattening: one global Otsu level, or local (adaptive)."
    )
    copper_level: Literal[0, 255] = Field(
        0, description="Value of copper in the network's input (DeepPCB: copper 0, laminate 255)."
    )
    camera_copper: Literal["bright", "dark"] = Field(
        "bright", description="Whether copper is brighter ('bright') or darker than laminate in the camera frame."
    )
    camera_gamma: float = Field(
        1.0,
        ge=0.25,
        le=4.0,
        description="The camera's output gamma (1: linear); a camera frame and its golden image are made linear "
        "(v^(1/gamma)) before they are prepared. A station setting (`[detector] camera_gamma`).",
    )
    px_per_mm: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="The board resolution the network learnt, px per mm (DeepPCB's images: about 48). None: not "
        "declared; frames are never resampled.",
    )
    camera_px_per_mm: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="This station's camera resolution on the board, px per mm (a station setting, `[detector] "
        "camera_px_per_mm`). Where it and px_per_mm differ, board and golden image are resampled to px_per_mm before "
        "they are prepared, and boxes come back in the camera's pixels. None: taken to be px_per_mm.",
    )
    colour: ColourRule = Field(
        "red",
        description="How a colour frame becomes gray: 'luma' (ITU-R 601 weights) or 'red' (the red plane: bare "
        "copper reflects red far more than laminate, so it has the most copper/laminate contrast).",
    )
    flatten_px: float = Field(
        96.0,
        ge=4,
        le=1024,
        description="Gaussian sigma (px) over which the light is followed (edges, then both materials).",
    )
    smooth_px: int = Field(3, ge=0, le=15, description="Median aperture (odd px) against sensor noise; 0/1 = none.")
    clean_px: int = Field(0, ge=0, le=15, description="Open/close element (px) that removes specks; 0/1 = none.")
    speck_px: int = Field(
        16, ge=0, le=400, description="Islands of either level smaller than this area (px) are removed; 0 = none."
    )
    threshold_position: float = Field(
        0.5,
        ge=0.1,
        le=0.9,
        description="Where between a camera frame's two material levels a pixel changes material: 0 at the "
        "laminate's level, 1 at the copper's; 0.5, the midpoint, is where a blurred edge crosses at its true place. "
        "A camera that darkens the outermost fraction of a pixel of every copper edge (etched sidewalls under a "
        "ring light) moves the midpoint's edges inward; the station then sets this from the golden board's design "
        "(`pcb-inspector calibrate threshold`). A station setting (`[detector] threshold_position`).",
    )
    same_band: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="A registered board's pixel this close to the midpoint of its two material levels (as a "
        "fraction of the way to either level) takes the golden image's material: too weak to be a defect (tarnish, "
        "noise, a blurred edge); 0 = none.",
    )
    same_contrast: float = Field(
        0.0,
        ge=0.0,
        le=4.0,
        description="A registered board's pixel whose ratio to the golden capture stays within this factor of the "
        "ratio expected there (the two captures' light and material levels, fitted) is unsure: where the captures "
        "agree, a differing mask is the binarisations disagreeing. Unsure differences follow the golden mask unless "
        "their region holds a sure pixel; 0 or 1 = off.",
    )
    same_material: Literal["golden", "either"] = Field(
        "golden",
        description="same_contrast compares a pixel's ratio with the ratio of the material the golden mask gives it "
        "('golden'), or, where the golden capture lies between its two levels and its label may be wrong, with "
        "either material's ratio ('either').",
    )
    adaptive_block_px: int = Field(
        51, ge=3, le=1025, description="Neighbourhood (odd px) of the adaptive threshold (method 'adaptive')."
    )
    adaptive_c: float = Field(0.0, ge=-64, le=64, description="Offset subtracted from the adaptive threshold.")
    light_degree: int = Field(
        3,
        ge=0,
        le=6,
        description="Degree of the polynomial light field fitted over the frame; 0 = a local average over flatten_px.",
    )
    refine: int = Field(
        2, ge=0, le=5, description="Rounds that re-estimate the light from both materials after the edge-based split."
    )
    binary_margin: int = Field(
        40, ge=0, le=127, description="A pixel within this of 0 or 255 counts as binary (JPEG ringing)."
    )
    binary_fraction: float = Field(
        0.9,
        gt=0.5,
        le=1.0,
        description="An 8-bit input with at least this fraction of binary pixels is already binary: passed untouched.",
    )

    @field_validator("smooth_px", "adaptive_block_px")
    @classmethod
    def _odd(cls, v: int, info) -> int:
        if v > 1 and v % 2 == 0:
            raise ValueError(f"{info.field_name} must be odd (an aperture), got {v}")
        return v


class ModelMeta(_Strict):
    format_version: int = Field(..., description="Sidecar format; this runtime reads version 1.")
    name: str = Field(..., min_length=1, max_length=64, description="Model name.")
    version: str = Field(..., pattern=SEMVER, description="Semantic version of the model.")
    runtime: str = Field(
        "litert",
        min_length=1,
        description="What runs the graph in `file`: a detector type whose plug-in has a runtime "
        "(inspector/detect/registry.py; 'litert' for a .tflite, 'onnxruntime' for an .onnx). Older sidecars "
        "have none: LiteRT.",
    )
    file: str = Field(..., min_length=1, description="The model file name (.tflite, .onnx), beside the sidecar.")
    sha256: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="sha256 of the model file.")
    identity: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 over the .tflite's sha256, the labels in order and the input channels, written at "
        "export; the model id's hash part. A sidecar whose labels were changed since no longer matches and is "
        "refused. Missing (older sidecars): computed, so a label change still changes the model id.",
    )
    labels: tuple[str, ...] = Field(..., min_length=1, description="Class names in output-channel order.")
    input: InputSpec = Field(..., description="Input tensor.")
    needs_reference: bool = Field(..., description="The golden reference must be passed with every board.")
    output: OutputSpec = Field(..., description="How the outputs are decoded.")
    thresholds: dict[str, float] = Field(..., description="Default score threshold per label.")
    nms_iou: float = Field(0.5, gt=0, le=1, description="IoU above which same-class boxes are merged.")
    tta: Literal["none", "hflip"] = Field(
        "none",
        description="Test-time augmentation: 'hflip' also runs the mirrored board and averages both outputs "
        "(two invokes per tile; the validation figures in `metrics` say which setting they were measured with).",
    )
    multiscale: MultiScale | None = Field(
        None, description="Extra passes at reduced scales whose large boxes are merged in (None: one scale)."
    )
    join_fragments: JoinFragments | None = Field(
        None, description="Also offer the union of touching same-class boxes (None: boxes as decoded)."
    )
    cross_class: CrossClass | None = Field(
        None,
        description="Keep one class per defect: drop a box covered by a better-scoring box of another class, and "
        "report its class as the keeper's runner-up (None: boxes of different classes never suppress each other).",
    )
    input_domain: InputDomain | None = Field(
        None,
        description="Image domain the network expects and how a camera frame gets there (None: frames as given).",
    )
    max_defect_px: int = Field(
        180, ge=0, description="Largest defect side expected, px; sets the tile overlap for large frames."
    )
    training: dict[str, Any] = Field(default_factory=dict, description="Training data summary and recipe.")
    metrics: dict[str, Any] = Field(default_factory=dict, description="Validation metrics.")
    licence: str = Field("", description="Licence notes (data and weights).")

    @property
    def computed_identity(self) -> str:
        """sha256 over what the package is: the .tflite's hash, the labels in output-channel order and
        the input channels. Why not the file hash alone: the same weights with the labels reordered in
        the sidecar report an `open` as a `short`, and must not pass as the same model."""
        return package_identity(self.sha256, self.labels, self.input.channels)

    @property
    def model_id(self) -> str:
        return f"{self.name}@{self.version}+{self.computed_identity[:12]}"


def package_identity(sha256: str, labels: tuple[str, ...] | list[str], channels: tuple[str, ...] | list[str]) -> str:
    doc = {"sha256": sha256, "labels": list(labels), "channels": list(channels)}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def with_camera(
    meta: ModelMeta,
    copper: str | None = None,
    gamma: float | None = None,
    px_per_mm: float | None = None,
    threshold_position: float | None = None,
) -> ModelMeta:
    """`meta` with the station's camera in its input domain: `detector.camera_copper` and `detector.camera_gamma`,
    where the station sets them.

    Why station settings and not only the package's: how copper looks is the camera's and the light's (a dark-field
    ring light shows it darker than the laminate), and so is the camera's gamma, not the network's. Nothing in a
    binarised mask says which material is copper, so the preparation takes it on trust, and the wrong way round every
    defect comes back as its opposite (missing copper and extra copper exchange: open/short, mousebite/spur,
    pin-hole/copper). A gamma of 0.45 leaves copper and laminate too close to split (such frames are refused);
    told, the station makes the frames linear first. The camera's resolution (`detector.camera_px_per_mm`) is the
    optics', too: told, the station resamples its frames to the resolution the network learnt.
    """
    if meta.input_domain is None:
        return meta
    update = {}
    if copper is not None and copper != meta.input_domain.camera_copper:
        update["camera_copper"] = copper
    if gamma is not None and gamma != meta.input_domain.camera_gamma:
        update["camera_gamma"] = gamma
    if px_per_mm is not None and px_per_mm != meta.input_domain.camera_px_per_mm:
        update["camera_px_per_mm"] = px_per_mm
    if threshold_position is not None and threshold_position != meta.input_domain.threshold_position:
        update["threshold_position"] = threshold_position
    if not update:
        return meta
    return meta.model_copy(update={"input_domain": meta.input_domain.model_copy(update=update)})


def with_passes(meta: ModelMeta, passes: str) -> ModelMeta:
    """`meta` with only the passes the station's `detector.passes` keeps: 'package' all the sidecar declares,
    'mirror' the full-size board and its mirror image (no reduced pass), 'single' the board once. Never more.

    Why a station setting: the package's passes were chosen for accuracy on a CPU with INT8 dot-product
    instructions; on one without (docs/performance.md, *Which CPU*) the four invokes of the shipped package take
    about 120 ms, and a line whose takt time that exceeds trades points for time here, with the cost measured
    (docs/performance.md, *Fewer passes*), instead of exporting a package of its own.
    """
    if passes not in PASSES:
        raise ModelError(f"detector.passes {passes!r}: expected one of {', '.join(PASSES)}")
    update: dict[str, Any] = {}
    if passes in ("mirror", "single") and meta.multiscale is not None:
        update["multiscale"] = None
    if passes == "single" and meta.tta != "none":
        update["tta"] = "none"
    return meta.model_copy(update=update) if update else meta


def invokes_per_tile(meta: ModelMeta) -> int:
    """Invokes a board-sized frame costs under `meta`'s passes (mirror and reduced passes counted)."""
    mirror = 2 if meta.tta == "hflip" else 1
    reduced = 0
    if meta.multiscale is not None:
        reduced = len(meta.multiscale.scales) * (mirror if meta.multiscale.mirror else 1)
    return mirror + reduced


def station_input_domain(detector: Any) -> InputDomain | None:
    """The input domain the station's `[detector]` runs its model with (the package's, with the station's camera
    settings laid over it), read from the sidecar without loading the model; None for a detector without a package or
    a model that takes frames as they are. Raises ModelError when the sidecar cannot be read."""
    model = getattr(detector, "model", None)
    if model is None:
        return None
    meta = read_meta(Path(model))
    copper, gamma = getattr(detector, "camera_copper", None), getattr(detector, "camera_gamma", None)
    return with_camera(
        meta,
        copper,
        gamma,
        getattr(detector, "camera_px_per_mm", None),
        getattr(detector, "threshold_position", None),
    ).input_domain


#: The most the station resamples a camera's frames, either way (network pixels per camera pixel in 1/4 .. 4: 12 to
#: 192 px/mm for a model that learnt 48). Measured: 0.75 to 1.67 (docs/model.md, *Resolution*); past a factor of 4 a
#: shrunk board keeps no feature the model learnt (a 5 px pin-hole becomes one pixel) and an enlarged one costs 16x
#: the invokes. A value that far off is a typing slip (480 for 48.0), which made every board PASS.
MAX_RESAMPLE = 4.0


def _raw_resample(domain: InputDomain | None) -> float:
    if domain is None or domain.px_per_mm is None or domain.camera_px_per_mm is None:
        return 1.0
    s = domain.px_per_mm / domain.camera_px_per_mm
    return 1.0 if abs(s - 1.0) <= 0.01 else s


def resample_problem(
    domain: InputDomain | None,
    image_size: tuple[int, int] | None = None,
    what: str = "board",
    input_hw: tuple[int, ...] | None = None,
) -> str | None:
    """Why `detector.camera_px_per_mm` cannot be right for this model, naming the key, or None.

    Refused: a resampling by more than `MAX_RESAMPLE` either way. With `image_size` ((width, height) of the golden
    image or the camera's frame, called `what`) the message says what the board would become, and with `input_hw`
    (the model input's height, width) how that compares with what the model takes.
    """
    s = _raw_resample(domain)
    if 1 / MAX_RESAMPLE <= s <= MAX_RESAMPLE:
        return None
    learnt, told = domain.px_per_mm, domain.camera_px_per_mm
    way = "shrinks" if s < 1 else "enlarges"
    out = f"detector.camera_px_per_mm = {told:g}: the model learnt boards at {learnt:g} px/mm, so the station {way}"
    if image_size is not None:
        w, h = image_size
        rw, rh = max(1, round(w * s)), max(1, round(h * s))
        out += f" the {w}x{h} {what} by {s:.3g}, to {rw}x{rh}"
        if input_hw is not None and s < 1 and (rw < input_hw[1] or rh < input_hw[0]):
            out += f" (smaller than the model's {input_hw[1]}x{input_hw[0]} input)"
    else:
        out += f" every frame by {s:.3g}"
    out += f": every trace and defect at {s:.3g} times the size the model learnt"
    out += " (it finds nothing and every board PASSES)" if s < 1 else " (16 times the work and more)"
    lo, hi = learnt / MAX_RESAMPLE, learnt * MAX_RESAMPLE
    return (
        out + f"; the station resamples by 1/{MAX_RESAMPLE:g} to {MAX_RESAMPLE:g} at most ({lo:g} to {hi:g} px/mm for "
        "this model): check the value (a slipped decimal point?); `pcb-inspector calibrate scale` measures it"
    )


def resample_factor(domain: InputDomain | None) -> float:
    """Network pixels per camera pixel: 1 unless the model declares the resolution it learnt and the station its
    camera's, and the two differ by more than 1 %. Raises ModelError naming `detector.camera_px_per_mm` when that
    is more than `MAX_RESAMPLE` either way (`resample_problem`), so no command runs a model on boards it cannot read.

    Why: the network learnt defects at one size in pixels (a trace 10-20 px wide, a pin-hole 5-15 px at DeepPCB's
    48 px/mm), and its preparation's apertures and speck sizes are in those pixels too. A camera at 36 px/mm shows
    every feature at three quarters of that size, and the figures measured at 48 px/mm no longer hold."""
    problem = resample_problem(domain)
    if problem:
        raise ModelError(problem)
    return _raw_resample(domain)


def sidecar_path(model: Path) -> Path:
    return Path(model).with_suffix(".json")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def read_meta(model: Path) -> ModelMeta:
    """Parse and validate the sidecar of `model`; raises ModelError naming the file and the bad key."""
    side = sidecar_path(model)
    if not side.is_file():
        raise ModelError(f"{side}: model sidecar not found (every .tflite needs its .json beside it)")
    try:
        data = json.loads(side.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{side}: not readable JSON ({exc})") from None
    try:
        meta = ModelMeta.model_validate(data)
    except ValidationError as exc:
        probs = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ModelError(f"{side}: invalid model sidecar: {probs}") from None
    if meta.format_version != FORMAT_VERSION:
        raise ModelError(f"{side}: format_version {meta.format_version} is not supported (expected {FORMAT_VERSION})")
    from .runtimes import runtimes

    if meta.runtime not in runtimes():
        raise ModelError(f"{side}: runtime {meta.runtime!r} is not one of {sorted(runtimes())} (sidecar key 'runtime')")
    unknown = sorted(set(meta.thresholds) - set(meta.labels))
    if unknown:
        raise ModelError(f"{side}: thresholds name unknown labels {unknown}")
    if any(not 0 < t <= 1 for t in meta.thresholds.values()):
        raise ModelError(f"{side}: thresholds must be in (0, 1], got {meta.thresholds}")
    if set(meta.thresholds) >= set(meta.labels) and min(meta.thresholds.values()) >= 1.0:
        # 1.0 turns a label off (a sigmoid score stays below it); all off, the package passes every board.
        raise ModelError(f"{side}: every label's threshold is 1.0, which no score reaches: every board would PASS")
    if meta.input.shape[0] != 1 or meta.input.shape[3] != len(meta.input.channels):
        raise ModelError(
            f"{side}: input.shape {list(meta.input.shape)} must be [1, H, W, {len(meta.input.channels)}] "
            f"for channels {list(meta.input.channels)}"
        )
    if meta.identity is not None and meta.identity != meta.computed_identity:
        raise ModelError(
            f"{side}: labels {list(meta.labels)} (or input channels {list(meta.input.channels)}) are not the ones "
            f"this package was written with: identity {meta.computed_identity[:12]}... does not match the sidecar's "
            f"{meta.identity[:12]}...; the class order is fixed by the trained weights, so re-export the model "
            "instead of editing its labels"
        )
    if meta.needs_reference != any(c != "board" for c in meta.input.channels):
        raise ModelError(f"{side}: needs_reference={meta.needs_reference} contradicts channels {meta.input.channels}")
    return meta


def load_package(model: Path, keys: Any = None) -> tuple[ModelMeta, bytes]:
    """Read the sidecar and the model bytes and check the hash; the interpreter checks come later.

    An encrypted `.tflite` (`inspector.model_crypt`) is decrypted here with `keys` (a ModelKeys, or a
    callable returning one, called only for an encrypted file), in memory only; the sidecar's sha256 is
    that of the plaintext, so it also proves the right key was used.
    """
    model = Path(model)
    meta = read_meta(model)
    if model.name != meta.file:
        raise ModelError(f"{sidecar_path(model)}: describes {meta.file!r}, not {model.name!r}")
    try:
        blob = model.read_bytes()
    except FileNotFoundError:
        raise ModelError(f"{model}: model file not found") from None
    except OSError as exc:
        raise ModelError(f"{model}: cannot read model ({exc.strerror})") from None
    from ..model_crypt import decrypt, is_encrypted

    if is_encrypted(blob):
        blob = decrypt(blob, keys() if callable(keys) else keys, str(model))
    digest = hashlib.sha256(blob).hexdigest()
    if digest != meta.sha256:
        raise ModelError(
            f"{model}: sha256 {digest[:12]}... does not match the sidecar's {meta.sha256[:12]}... "
            f"({len(blob)} bytes; the file is corrupt, truncated or not the model the sidecar describes)"
        )
    return meta, blob


def write_sidecar(model: Path, meta: dict[str, Any]) -> Path:
    """Write the sidecar for `model` with the hash filled in; validates before writing."""
    model = Path(model)
    data = {**meta, "file": model.name, "sha256": sha256_file(model), "format_version": FORMAT_VERSION}
    data.pop("identity", None)
    data["identity"] = ModelMeta.model_validate(data).computed_identity
    ModelMeta.model_validate(data)
    side = sidecar_path(model)
    side.write_text(json.dumps(data, indent=2) + "\n")
    return side
