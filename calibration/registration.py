"""Registration of each capture to the recipe's golden reference: re-exported from `inspector.registration`.

Why here too: the station cannot inspect without registration, so the registrar lives in the core
(`inspector` never imports `calibration`); the calibration tools and older imports keep this path.
"""

from inspector.registration import (
    UNREGISTERED,
    BoardRegistrar,
    Registration,
    RegistrationError,
    RegistrationSettings,
    settings_from_config,
)

__all__ = [
    "UNREGISTERED",
    "BoardRegistrar",
    "Registration",
    "RegistrationError",
    "RegistrationSettings",
    "settings_from_config",
]
