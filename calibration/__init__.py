"""Calibration: intrinsics and distortion, mm per pixel, registration to the golden board, optics health.

Depends on `inspector` only (never on `ui` or `plc`); `inspector` never imports this package.
"""
