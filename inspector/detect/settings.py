"""The `[detector]` keys every packaged model has, whatever runtime runs it.

Why one base class: a model package is the same thing on LiteRT, ONNX Runtime or a runtime added
later (a file with its sidecar, a signature, maybe encrypted, cut into tiles), so its file, threads,
keys and tile overlap are named and checked once. A runtime's plug-in module subclasses this with
`type: Literal["<runtime>"]` and only the settings of its own (LiteRT's delegates, ONNX Runtime's
execution providers); the `[detector]` union in `inspector.config` is built from those classes.

This module imports only pydantic and `inspector.config_base`: the plug-in modules import it while
`inspector.config` loads.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, PrivateAttr

from ..config_base import Section

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
DEFAULT_MODEL = REPO_ROOT / "models" / "pcb-defect-det.tflite"


class PackagedModelSettings(Section):
    """A packaged model (model file + sidecar) on the runtime the subclass's `type` names.

    The sidecar's `runtime` must be that same name: the detector refuses, naming both, to run a
    package on another runtime's settings.
    """

    #: Model file endings that pick this type in a `[detector]` without `type` (files written before
    #: detectors were plug-ins let the sidecar choose; the file's ending says the same).
    model_suffixes: ClassVar[tuple[str, ...]] = ()

    type: str = Field(..., description="The runtime (a subclass narrows it to its own name).")
    model: Path = Field(DEFAULT_MODEL, description="Path to the model package file; its sidecar .json sits beside it.")
    threads: int = Field(2, ge=1, le=64, description="CPU threads the runtime may use.")
    require_accelerator: bool = Field(
        False,
        description="NOT READY (model lamp red, with the reason) unless an accelerator really took part of the "
        "graph, instead of running on the CPU (which shows amber).",
    )
    camera_copper: Literal["bright", "dark"] | None = Field(
        None,
        description="How this station's camera shows bare copper against the laminate: 'bright' (diffuse ring or "
        "coaxial light: the metal reflects into the lens) or 'dark' (dark-field light). None: as the model package's "
        "input_domain says (the shipped one: bright). It decides which material of a camera frame is copper: set "
        "the wrong way, every defect is reported as its opposite (an open as a short, a pin-hole as copper).",
    )
    camera_gamma: float | None = Field(
        None,
        ge=0.25,
        le=4.0,
        description="The camera's output gamma when it cannot be set to 1 (linear): e.g. 0.45 for an sRGB-like "
        "curve. Frames are made linear before the model's preparation; a gamma left on compresses the copper/laminate "
        "contrast, and such frames are refused as low contrast. None: linear (the model package's 1).",
    )
    camera_px_per_mm: float | None = Field(
        None,
        gt=0,
        le=1000,
        description="This camera's resolution on the board, px per mm (`pcb-inspector calibrate scale` prints it). "
        "Where the model package declares the resolution it learnt (input_domain.px_per_mm; the shipped one: 48, "
        "DeepPCB's) and this differs, frames and the golden image are resampled to it and boxes come back in the "
        "camera's pixels. None: the camera is taken to image boards as the model learnt them.",
    )
    threshold_position: float | None = Field(
        None,
        ge=0.1,
        le=0.9,
        description="Where between laminate (0) and copper (1) this camera's frames are split into the network's "
        "two levels; `pcb-inspector calibrate threshold` measures it on a golden board against its design. A camera "
        "that darkens the outer edge of the copper (etched sidewalls under a ring light) puts every edge inward at "
        "the midpoint, and thin features come out thinner than the network learnt them. None: the package's (0.5).",
    )
    passes: Literal["package", "mirror", "single"] = Field(
        "package",
        description="Which of the model package's passes run on each board: 'package' all it declares (the shipped "
        "one: the board and its mirror image at full size and at 0.8, four invokes); 'mirror' the full-size board and "
        "its mirror image (two); 'single' the board once (one). Fewer passes take less time and find fewer defects: "
        "measured in docs/performance.md, *Fewer passes*; the model card's figures are the package's.",
    )
    tile_overlap: int | None = Field(
        None, ge=0, description="Tile overlap in px for frames larger than the model input; None = from the model."
    )
    trusted_keys: list[Path] = Field(
        default_factory=list,
        description="Ed25519 public keys (PEM) of this plant's model releases; when set, the station runs only "
        "model packages whose .sig verifies with one of them. Empty = signatures not checked (development).",
    )
    model_key: Path | None = Field(
        None,
        description="Plant model key file from the plant's key service: needed to run encrypted model packages "
        "(`pcb-inspector model encrypt`). None: only plain packages run.",
    )
    machine_id_file: Path = Field(
        Path("/etc/machine-id"),
        description="This device's machine id; with storage.station_key it binds station-encrypted packages "
        "to this device.",
    )
    #: The storage section whose station key binds encrypted packages to this device (set by StationConfig).
    _storage: Any = PrivateAttr(None)

    def cpu_only(self) -> PackagedModelSettings:
        """These settings on the CPU alone, one thread: how the start check loads the package (it checks the
        package, not the accelerator). A runtime with accelerator keys of its own overrides this."""
        return self.model_copy(update={"threads": 1, "require_accelerator": False})

    def station_key_file(self) -> Path | None:
        """The station key used for the device binding (storage.station_key), when known."""
        fn = getattr(self._storage, "station_key_path", None)
        return Path(fn()) if fn is not None else None

    def keys_loader(self) -> Callable[[], Any] | None:
        """Reads the plant key, machine id and station key when an encrypted package loads, not before
        (so a missing key file reaches the model lamp); None without `model_key`."""
        if self.model_key is None:
            return None

        def keys():
            from ..model_crypt import ModelKeys

            return ModelKeys.for_station(self.model_key, self.machine_id_file, self.station_key_file())

        return keys


#: `[detector] passes`: which of a package's passes a station runs on each board (the field's values, written once).
PASSES: tuple[str, ...] = get_args(PackagedModelSettings.model_fields["passes"].annotation)
