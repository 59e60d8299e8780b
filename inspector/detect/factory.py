"""Build the configured detector, and swap a running station onto a new model safely.

Why a factory: the station, the benchmark and the evaluation must all build the detector the
same way from `[detector]`, so a benchmark figure or an mAP is for exactly what the line runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from .base import Detector, DetectorInfo

if TYPE_CHECKING:
    from ..pipeline import Pipeline

log = logging.getLogger(__name__)


def create_detector(detector_cfg: Any) -> Detector:
    """The detector `[detector]` describes, not yet loaded (the inference thread loads it).

    `detector_cfg` is one of the plug-ins' settings classes (`inspector.config.DetectorConfig`); the
    backend is the one its `type` names in the registry (inspector/detect/registry.py).
    The package's signature is checked when the detector loads, whoever built it (station, hot swap,
    model watcher, UI, `bench`, `evaluate`), when the plant configured `detector.trusted_keys`.
    """
    from ..signing import guard_detector
    from .registry import detector_factory

    return guard_detector(detector_cfg, detector_factory(detector_cfg.type)(detector_cfg))


def hot_swap(pipeline: Pipeline, detector: Detector, warm_up_runs: int = 3) -> DetectorInfo:
    """Load, verify and warm up `detector` beside the running one, then switch between two boards.

    Runs in the caller's thread while the pipeline keeps inspecting with the old model. A model
    that fails to load raises ModelError here and the station keeps its current model; only a
    verified, warmed-up detector is handed to the pipeline, which switches before its next board
    and records the new model id from that board on.
    """
    info = detector.load()
    detector.warm_up(warm_up_runs)
    log.info("hot swap: %s ready on %s; switching at the next board", info.model_id, info.backend)
    pipeline.swap_detector(detector)
    return info
