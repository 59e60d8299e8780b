"""Display names of the defect classes, in the UI's language.

The class names ('open', 'short', ...) are identifiers in the model, the database and the exports,
so they stay English there; only what the operator reads is translated, at display time.
"""

from __future__ import annotations

from PySide6.QtCore import QCoreApplication

from inspector.domain import CLASS_NAMES

CONTEXT = "DefectClass"


def class_label(name: str) -> str:
    """The class as the operator reads it (unknown names are shown as they are)."""
    return QCoreApplication.translate(CONTEXT, name) if name in CLASS_NAMES else name


def _for_lupdate() -> None:  # pragma: no cover - never called; lupdate reads the literals
    QCoreApplication.translate("DefectClass", "open")
    QCoreApplication.translate("DefectClass", "short")
    QCoreApplication.translate("DefectClass", "mousebite")
    QCoreApplication.translate("DefectClass", "spur")
    QCoreApplication.translate("DefectClass", "copper")
    QCoreApplication.translate("DefectClass", "pin-hole")
