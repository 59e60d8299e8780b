"""Display names of defect classes and core reject reasons, in the UI's language.

The class names ('open', 'short', ...) are identifiers in the model, the database and the exports,
so they stay English there; only what the operator reads is translated, at display time.
`QT_TRANSLATE_NOOP` marks the literals for lupdate and returns them unchanged.
"""

from __future__ import annotations

from PySide6.QtCore import QT_TRANSLATE_NOOP, QCoreApplication

from inspector.domain import CLASS_NAMES

CONTEXT = "DefectClass"

_CLASSES = (
    QT_TRANSLATE_NOOP("DefectClass", "open"),
    QT_TRANSLATE_NOOP("DefectClass", "short"),
    QT_TRANSLATE_NOOP("DefectClass", "mousebite"),
    QT_TRANSLATE_NOOP("DefectClass", "spur"),
    QT_TRANSLATE_NOOP("DefectClass", "copper"),
    QT_TRANSLATE_NOOP("DefectClass", "pin-hole"),
)
assert _CLASSES == tuple(CLASS_NAMES), "ui/labels.py must list the core's classes for translation"

#: Why the core rejected a board without (or despite) detections, by the English prefix the core
#: writes (inspector/pipeline.py). The detail after the prefix (an exception text, a file name) stays
#: as it is: it is for the engineer, the prefix is for the operator.
_REASONS = (
    QT_TRANSLATE_NOOP("RejectReason", "board not registered to the reference"),
    QT_TRANSLATE_NOOP("RejectReason", "no reference image for this recipe"),
    QT_TRANSLATE_NOOP("RejectReason", "inference backlog full"),
    QT_TRANSLATE_NOOP("RejectReason", "trigger queue full"),
    QT_TRANSLATE_NOOP("RejectReason", "inspection failed"),
    QT_TRANSLATE_NOOP("RejectReason", "model not loaded"),
    QT_TRANSLATE_NOOP("RejectReason", "station stopped"),
    QT_TRANSLATE_NOOP("RejectReason", "camera not available"),
    QT_TRANSLATE_NOOP("RejectReason", "camera error"),
    QT_TRANSLATE_NOOP("RejectReason", "camera lost"),
    QT_TRANSLATE_NOOP("RejectReason", "no frame"),
)


def class_label(name: str) -> str:
    """The class as the operator reads it (unknown names are shown as they are)."""
    return QCoreApplication.translate(CONTEXT, name) if name in CLASS_NAMES else name


def reason_label(reason: str | None) -> str:
    """A core reject reason in the UI's language: the known prefix translated, the detail kept."""
    if not reason:
        return ""
    for prefix in _REASONS:
        if reason.startswith(prefix):
            return QCoreApplication.translate("RejectReason", prefix) + reason[len(prefix) :]
    return reason
