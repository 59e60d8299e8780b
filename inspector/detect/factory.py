"""Build the configured detector, and swap a running station onto a new model safely.

Why a factory: the station, the benchmark and the evaluation must all build the detector the
same way from `[detector]`, so a benchmark figure or an mAP is for exactly what the line runs.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from ..config import DetectorSection
from .base import Detector, DetectorInfo

if TYPE_CHECKING:
    from ..pipeline import Pipeline

log = logging.getLogger(__name__)


def create_detector(detector_cfg: DetectorSection) -> Detector:
    """The detector `[detector]` describes, not yet loaded (the inference thread loads it).

    The backend is the one `detector.type` names in the registry (inspector/detect/registry.py).
    The package's signature is checked when the detector loads, whoever built it (station, hot swap,
    model watcher, UI, `bench`, `evaluate`), when the plant configured `detector.trusted_keys`.
    """
    from ..signing import guard_detector
    from .registry import detector_factory

    return guard_detector(detector_cfg, detector_factory(detector_cfg.type)(detector_cfg))


def create_litert(detector_cfg: DetectorSection) -> Detector:
    """`[detector] type = "litert"`: the packaged model; its sidecar names the runtime (LiteRT, ONNX Runtime)."""
    from .packaged import PackagedDetector

    return PackagedDetector(
        detector_cfg.model,
        delegate=detector_cfg.delegate,
        auto_delegates=detector_cfg.auto_delegates,
        threads=detector_cfg.threads,
        tile_overlap=detector_cfg.tile_overlap,
        model_keys=_model_keys(detector_cfg) if detector_cfg.model_key is not None else None,
        providers=detector_cfg.providers,
        require_accelerator=detector_cfg.require_accelerator,
    )


def _model_keys(detector_cfg: DetectorSection):
    """Reads the plant key, machine id and station key when an encrypted package is loaded, not before."""

    def keys():
        from ..model_crypt import ModelKeys

        return ModelKeys.for_station(
            detector_cfg.model_key, detector_cfg.machine_id_file, detector_cfg.station_key_file()
        )

    return keys


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
