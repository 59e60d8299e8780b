"""Errors the calibration package raises; each names the file, view or value at fault."""

from __future__ import annotations


class CalibrationError(Exception):
    """A calibration that cannot be computed or stored; the message says what to do."""


class RegistrationError(CalibrationError):
    """A capture that cannot be aligned to its golden reference.

    The pipeline turns it into a REJECT with this message as the reason: a board that cannot be
    registered is never inspected against a misaligned reference, and never passes silently.
    """

    def __init__(self, message: str, quality: float = 0.0):
        super().__init__(message)
        self.quality = quality
