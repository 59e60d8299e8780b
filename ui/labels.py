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


#: Why the core rejected a board without (or despite) detections, by the English prefix the core
#: writes (inspector/pipeline.py). The detail after the prefix (an exception text, a file name) stays
#: as it is: it is for the engineer, the prefix is for the operator.
_REASONS = (
    "board not registered to the reference",
    "no reference image for this recipe",
    "inference backlog full",
    "trigger queue full",
    "inspection failed",
    "model not loaded",
    "station stopped",
    "camera not available",
    "camera error",
    "camera lost",
    "no frame",
)


def reason_label(reason: str | None) -> str:
    """A core reject reason in the UI's language: the known prefix translated, the detail kept."""
    if not reason:
        return ""
    for prefix in _REASONS:
        if reason.startswith(prefix):
            return QCoreApplication.translate("RejectReason", prefix) + reason[len(prefix) :]
    return reason


def _reasons_for_lupdate() -> None:  # pragma: no cover - lupdate reads the literals
    QCoreApplication.translate("RejectReason", "board not registered to the reference")
    QCoreApplication.translate("RejectReason", "no reference image for this recipe")
    QCoreApplication.translate("RejectReason", "inference backlog full")
    QCoreApplication.translate("RejectReason", "trigger queue full")
    QCoreApplication.translate("RejectReason", "inspection failed")
    QCoreApplication.translate("RejectReason", "model not loaded")
    QCoreApplication.translate("RejectReason", "station stopped")
    QCoreApplication.translate("RejectReason", "camera not available")
    QCoreApplication.translate("RejectReason", "camera error")
    QCoreApplication.translate("RejectReason", "camera lost")
    QCoreApplication.translate("RejectReason", "no frame")


def _for_lupdate() -> None:  # pragma: no cover - never called; lupdate reads the literals
    QCoreApplication.translate("DefectClass", "open")
    QCoreApplication.translate("DefectClass", "short")
    QCoreApplication.translate("DefectClass", "mousebite")
    QCoreApplication.translate("DefectClass", "spur")
    QCoreApplication.translate("DefectClass", "copper")
    QCoreApplication.translate("DefectClass", "pin-hole")
