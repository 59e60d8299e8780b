"""The detector interface the pipeline calls from its inference thread.

Why an interface: the station runs LiteRT today, but a vendor runtime (e.g. a Hailo or RKNN SDK)
must be able to drop in without touching the pipeline, the decision or the sinks.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..domain import Detection

ColourRule = Literal["luma", "red"]
"""How a colour frame becomes gray (`inspector.detect.prepare.to_gray`, the one conversion every caller uses): 'luma'
(ITU-R 601 weights) or 'red' (the red plane, where bare copper and laminate differ most)."""


class ModelError(Exception):
    """A model that cannot be used: missing, corrupt, truncated or not matching its metadata."""


@dataclass(frozen=True, slots=True)
class DetectorInfo:
    model_id: str
    """`name@version+sha256[:12]`, recorded with every inspection."""
    backend: str
    """What actually runs, e.g. `CPU XNNPACK x2` or `NPU (vx)` or `CPU XNNPACK x2 (fallback: ...)`."""
    input_size: tuple[int, int]
    """Model input (height, width)."""
    needs_reference: bool
    labels: tuple[str, ...]
    default_thresholds: dict[int, float]
    """Per class id (1-based)."""
    nms_iou: float = 0.5
    accelerated: bool = False
    """An accelerator took part of the graph (counted nodes; XNNPACK's CPU kernels do not count)."""
    warning: str = ""
    """Runs, but not as configured (e.g. `CPU fallback: ...`): the model lamp is amber, not green."""
    colour: ColourRule = "red"
    """How a colour frame or golden image becomes gray for this model (its sidecar's `input_domain.colour`).

    The station converts the frame, the recipe's reference and registration's input by this one rule, so
    that registration, preparation and the verdict look at the pixels `evaluate --camera colour` scored."""


class Detector(ABC):
    @abstractmethod
    def load(self) -> DetectorInfo:
        """Load and verify the model; raises ModelError naming the file and the problem."""

    @abstractmethod
    def warm_up(self, runs: int = 3) -> float:
        """Run a few dummy inferences; returns the median milliseconds (used to judge delegation)."""

    @abstractmethod
    def detect(
        self,
        image: np.ndarray,
        reference: np.ndarray | None = None,
        thresholds: dict[int, float] | None = None,
    ) -> list[Detection]:
        """Detections in `image` pixels, above `thresholds` (per class id) or the model's defaults."""

    @property
    @abstractmethod
    def info(self) -> DetectorInfo:
        """Set once `load` succeeded."""

    def close(self) -> None:
        """Release the interpreter and delegate."""

    #: Filled by `detect`: milliseconds spent in pre-processing, invoke and post-processing.
    last_timings: dict[str, float]
