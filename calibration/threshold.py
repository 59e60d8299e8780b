"""The threshold position from golden boards and their designs, as the station calibrates it.

Why a module between `inspector.detect.threshold_position` (the measurement) and its two users, the command
line (`pcb-inspector calibrate threshold`) and the engineer's calibration wizard: both must measure the same
way and store the same record. The measurement takes the input domain the station runs (its camera's copper
look, gamma and resolution laid over the package's); the position the station runs now plays no part (every
position is tried), so a second calibration measures the camera, not the first one's result.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from inspector.detect.package import InputDomain
from inspector.detect.prepare import ImageDomainError
from inspector.detect.threshold_position import ThresholdFit, fit_threshold_position

from .errors import CalibrationError


def calibrate_threshold(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], spec: InputDomain | None, names: Sequence[str]
) -> ThresholdFit:
    """The threshold position for the station's input domain `spec` from (golden capture, design) pairs, the
    captures already undistorted as the station sees them. Raises CalibrationError naming the pair at fault."""
    if spec is None:
        raise CalibrationError("the station's model takes frames as they are: it has no threshold to calibrate")
    try:
        return fit_threshold_position(pairs, spec, names)
    except ImageDomainError as exc:
        raise CalibrationError(str(exc)) from None


def threshold_record(fit: ThresholdFit, images: Sequence[str], designs: Sequence[str]) -> dict:
    """What the calibration store keeps for one threshold calibration (kind `threshold`)."""
    return fit.to_json() | {"images": list(images), "designs": list(designs)}


def station_line(position: float) -> str:
    """The station.toml line that makes the station run at `position` (it is a station setting, not a record)."""
    return f"[detector] threshold_position = {position:.2f}"
