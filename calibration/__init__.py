"""Calibration: intrinsics and distortion, mm per pixel, registration to the golden board, optics health.

Depends on `inspector` only (never on `ui` or `plc`); `inspector` never imports this package.
The pieces other parts use:
- `Undistorter` / `UndistortingCamera`: undistortion maps computed once, applied in the capture path;
- `BoardRegistrar`: the pipeline's `Registrar` (reference warped onto each capture + quality);
- `OpticsMonitor`: a result sink that alarms on focus / light / colour drift (health "calibration");
- `view_feedback`, `CoverageMap`: pure functions for the UI's calibration wizard;
- `CalibrationStore`: the station's active calibrations and their history (records database).
"""

from .errors import CalibrationError, RegistrationError
from .health import OpticsCheck, OpticsLimits, OpticsMonitor, OpticsSample, compare, measure_optics
from .intrinsics import IntrinsicsResult, calibrate_intrinsics, load_views
from .pattern import CoverageMap, Pattern, PatternError, ViewFeedback, find_pattern, view_feedback
from .registration import BoardRegistrar, Registration, RegistrationSettings
from .scale import ScaleResult, scale_from_object, scale_from_pattern
from .undistort import Undistorter, UndistortingCamera

__all__ = [
    "BoardRegistrar",
    "CalibrationError",
    "CoverageMap",
    "IntrinsicsResult",
    "OpticsCheck",
    "OpticsLimits",
    "OpticsMonitor",
    "OpticsSample",
    "Pattern",
    "PatternError",
    "Registration",
    "RegistrationError",
    "RegistrationSettings",
    "ScaleResult",
    "Undistorter",
    "UndistortingCamera",
    "ViewFeedback",
    "calibrate_intrinsics",
    "compare",
    "find_pattern",
    "load_views",
    "measure_optics",
    "scale_from_object",
    "scale_from_pattern",
    "view_feedback",
]
