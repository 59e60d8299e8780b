"""Display names of defect classes, core reject reasons and status-lamp lines, in the UI's language.

The class names ('open', 'short', ...) are identifiers in the model, the database and the exports,
so they stay English there; only what the operator reads is translated, at display time.
`QT_TRANSLATE_NOOP` marks the literals for lupdate and returns them unchanged.
"""

from __future__ import annotations

import re

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
    QT_TRANSLATE_NOOP("RejectReason", "board not fully in view"),
    QT_TRANSLATE_NOOP("RejectReason", "image not inspectable"),
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
    QT_TRANSLATE_NOOP("RejectReason", "serial mismatch"),
    QT_TRANSLATE_NOOP("RejectReason", "board code unreadable"),
    QT_TRANSLATE_NOOP("RejectReason", "ROI does not fit the reference"),
    # What makes an image not inspectable, remedy first (inspector/detect/prepare.py): for the operator too.
    QT_TRANSLATE_NOOP(
        "RejectReason", "board image: low contrast: camera gamma to 1, black level to 0, or more light on copper"
    ),
    QT_TRANSLATE_NOOP(
        "RejectReason", "reference image: low contrast: camera gamma to 1, black level to 0, or more light on copper"
    ),
    QT_TRANSLATE_NOOP("RejectReason", "board image: over-exposed, lower the exposure, gain or light"),
    QT_TRANSLATE_NOOP("RejectReason", "reference image: over-exposed, lower the exposure, gain or light"),
)


def class_label(name: str) -> str:
    """The class as the operator reads it (unknown names are shown as they are)."""
    return QCoreApplication.translate(CONTEXT, name) if name in CLASS_NAMES else name


_ROLES = (
    QT_TRANSLATE_NOOP("Role", "operator"),
    QT_TRANSLATE_NOOP("Role", "engineer"),
    QT_TRANSLATE_NOOP("Role", "admin"),
)


def role_label(role: str) -> str:
    """A user's role as the screen names it (the role ids stay English in the database and the audit trail)."""
    return QCoreApplication.translate("Role", role) if role in _ROLES else role


def reason_label(reason: str | None) -> str:
    """A core reject reason in the UI's language: the known prefix translated, the detail kept."""
    if not reason:
        return ""
    for prefix in _REASONS:
        if reason.startswith(prefix):
            rest = reason[len(prefix) :]
            if rest.startswith(": "):  # "image not inspectable: board image: over-exposed, ...": the cause's remedy too
                rest = ": " + reason_label(rest[2:])
            return QCoreApplication.translate("RejectReason", prefix) + rest
    return reason


#: Status-lamp and alarm lines the core writes (inspector/health.py users), as English patterns and
#: translatable templates; %1, %2 ... are the captured parts (names, numbers, addresses), kept as they
#: are. A line that matches no pattern (an exception text, say) is shown unchanged.
_LAMP = (
    (
        r"(\S+), (\d+) written, backlog (\d+), spool (\d+)",
        QT_TRANSLATE_NOOP("Lamp", "%1, %2 written, backlog %3, spool %4"),
    ),
    (r"([\d.]+) GB free", QT_TRANSLATE_NOOP("Lamp", "%1 GB free")),
    (r"([\d.]+) MB free", QT_TRANSLATE_NOOP("Lamp", "%1 MB free")),
    (r"([\d.]+) MB free < (\d+) MB floor", QT_TRANSLATE_NOOP("Lamp", "%1 MB free < %2 MB floor")),
    (r"off \(free-run\)", QT_TRANSLATE_NOOP("Lamp", "off (free-run)")),
    (r"server (\S+)", QT_TRANSLATE_NOOP("Lamp", "server %1")),
    (r"client (\S+)", QT_TRANSLATE_NOOP("Lamp", "client %1")),
    (
        r"(CPU XNNPACK x\d+) \(fallback: none of (.+) found\)",
        QT_TRANSLATE_NOOP("Lamp", "%1 (fallback: none of %2 found)"),
    ),
    (r"starting", QT_TRANSLATE_NOOP("Lamp", "starting")),
    (r"loading", QT_TRANSLATE_NOOP("Lamp", "loading")),
    (r"stopped by operator", QT_TRANSLATE_NOOP("Lamp", "stopped by operator")),
    (r"opened, waiting for the first frame", QT_TRANSLATE_NOOP("Lamp", "opened, waiting for the first frame")),
    (r"missed trigger (.+)", QT_TRANSLATE_NOOP("Lamp", "missed trigger %1")),
    (r"stalled (.+)", QT_TRANSLATE_NOOP("Lamp", "stalled %1")),
    (r"lost: (.+); reconnecting", QT_TRANSLATE_NOOP("Lamp", "lost: %1; reconnecting")),
    (
        r"cannot open \(attempt (\d+), retry in ([\d.]+) s\): (.+)",
        QT_TRANSLATE_NOOP("Lamp", "cannot open (attempt %1, retry in %2 s): %3"),
    ),
    (r"PLC link down", QT_TRANSLATE_NOOP("Lamp", "PLC link down")),
    (
        r"waiting for the PLC heartbeat \(CONTROL b6 toggling\)",
        QT_TRANSLATE_NOOP("Lamp", "waiting for the PLC heartbeat (CONTROL b6 toggling)"),
    ),
    (
        r"PLC heartbeat lost \(no toggle within ([\d.]+) s\)",
        QT_TRANSLATE_NOOP("Lamp", "PLC heartbeat lost (no toggle within %1 s)"),
    ),
    (r"second PLC master: (.+)", QT_TRANSLATE_NOOP("Lamp", "second PLC master: %1")),
    (r"cannot run: (.+)", QT_TRANSLATE_NOOP("Lamp", "cannot run: %1")),
    (
        r"writer behind: (\d+) of (\d+) results queued",
        QT_TRANSLATE_NOOP("Lamp", "writer behind: %1 of %2 results queued"),
    ),
    (
        r"writer queue full \((\d+)\): results spilled to the spool",
        QT_TRANSLATE_NOOP("Lamp", "writer queue full (%1): results spilled to the spool"),
    ),
    (r"archive write failed: (.+)", QT_TRANSLATE_NOOP("Lamp", "archive write failed: %1")),
    (
        r"optics drift: focus: check the lens focus and the board height \(sharpness (\d+)% below the baseline, "
        r"limit (\d+)%\)",
        QT_TRANSLATE_NOOP(
            "Lamp", "focus: check the lens focus and the board height (sharpness %1% below the baseline, limit %2%)"
        ),
    ),
    (
        r"same defect on (\d+) boards in a row at x (\d+), y (\d+) px \((.+)\): clean the lens, or check the process "
        r"upstream",
        QT_TRANSLATE_NOOP(
            "Lamp",
            "same defect on %1 boards in a row at x %2, y %3 px (%4): clean the lens, or check the process upstream",
        ),
    ),
    (
        r"same defect on (\d+) boards in a row at x (\d+), y (\d+) px of the board \((.+)\): check the process "
        r"upstream",
        QT_TRANSLATE_NOOP(
            "Lamp", "same defect on %1 boards in a row at x %2, y %3 px of the board (%4): check the process upstream"
        ),
    ),
    (r"(\d+) boards in a row: (.+)", QT_TRANSLATE_NOOP("Lamp", "%1 boards in a row: %2")),
)
_IN_A_ROW = _LAMP[-1][1]
_REPEATED = {_LAMP[-3][1], _LAMP[-2][1]}  # the same defect at one place of the frame, of the board
_LAMP_RE = tuple((re.compile(pattern), template) for pattern, template in _LAMP)


def _part(parts: list[str], k: re.Match) -> str:
    i = int(k.group(1)) - 1
    return parts[i] if 0 <= i < len(parts) else k.group(0)  # a translation's stray %N is left visible


def lamp_label(text: str | None) -> str:
    """A status-lamp detail or alarm reason in the UI's language (the whole line must match a pattern)."""
    if not text:
        return ""
    for rx, template in _LAMP_RE:
        m = rx.fullmatch(text)
        if m is None:
            continue
        parts = list(m.groups())
        if template == _IN_A_ROW:  # its second part is a core reject reason
            parts[1] = reason_label(parts[1])
        elif template in _REPEATED:  # its fourth part is a defect class
            parts[3] = class_label(parts[3])
        # One pass, so a value that itself contains "%1" is never substituted again.
        return re.sub(r"%(\d+)", lambda k, p=parts: _part(p, k), QCoreApplication.translate("Lamp", template))
    return text
