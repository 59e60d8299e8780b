"""Errors the calibration package raises; each names the file, view or value at fault.

`RegistrationError` belongs to the inspection core (`inspector.registration`, which cannot import
this package); it is re-exported here and is not a CalibrationError, so handlers catch both.
"""

from __future__ import annotations

from inspector.registration import RegistrationError

__all__ = ["CalibrationError", "RegistrationError"]


class CalibrationError(Exception):
    """A calibration that cannot be computed or stored; the message says what to do."""
