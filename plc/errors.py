"""The PLC link's own ERROR_CODE values; the core's component codes stay in inspector/health.py.

Why registered into Health: `Health.error_code()` answers for every component, including the link's
own 'plc' lamp, so the UI, /health and the PLC's ERROR_CODE register show the same number.
"""

from __future__ import annotations

from inspector.health import ERROR_CODES, register_error_codes

PLC_ERROR_CODES: dict[str, int] = {
    "plc": 50,  # PLC heartbeat lost or the link down
    "plc_master": 51,  # a second master wrote the control block (not a component: plc/handshake.py)
}
register_error_codes(PLC_ERROR_CODES)

__all__ = ["ERROR_CODES", "PLC_ERROR_CODES"]
