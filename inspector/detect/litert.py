"""The LiteRT detector, by its old name: a packaged model, which LiteRT runs when the sidecar says so.

Why this module stays: stations, tests and tools built a `LiteRTDetector`; the model-format work
now lives in `inspector.detect.packaged` and the LiteRT runtime in `inspector.detect.runtimes.litert`,
and a `.tflite` package (sidecar `runtime` "litert", the default) behaves exactly as before.
"""

from __future__ import annotations

from .packaged import SCORE_FLOOR, PackagedDetector, _Dequantised
from .tiling import Tile

#: Every packaged model is a PackagedDetector; the sidecar names its runtime.
LiteRTDetector = PackagedDetector

__all__ = ["SCORE_FLOOR", "LiteRTDetector", "PackagedDetector", "Tile", "_Dequantised"]
