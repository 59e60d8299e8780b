"""Typed domain values that cross thread and package boundaries.

Why dataclasses and not dicts: every stage (capture, detector, decision, PLC, database, UI) reads
these, and a typo in a dict key would silently turn into a missing field on the line.
Frames are frozen and carry an *owned* image: the capture thread copies out of the driver buffer
before handing a frame on, so no consumer can see a buffer that the driver is refilling.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np

#: DeepPCB class ids (1-based, as the PLC's RESULT_CODE reports them) and their names.
CLASS_NAMES: tuple[str, ...] = ("open", "short", "mousebite", "spur", "copper", "pin-hole")


#: Default severity order, most severe first: opens and shorts break the circuit; mousebites and
#: spurs narrow a gap or a track; spurious copper and pin-holes are cosmetic until they grow.
DEFAULT_SEVERITY: tuple[int, ...] = tuple(range(1, len(CLASS_NAMES) + 1))


def class_name(class_id: int) -> str:
    """Name of a 1-based class id; raises ValueError naming the bad id."""
    if not 1 <= class_id <= len(CLASS_NAMES):
        raise ValueError(f"class id {class_id} is not one of 1..{len(CLASS_NAMES)}")
    return CLASS_NAMES[class_id - 1]


class Verdict(enum.StrEnum):
    PASS = "PASS"
    REJECT = "REJECT"


@dataclass(frozen=True, slots=True)
class Frame:
    """One captured image, owned by whoever holds it."""

    id: int
    """Acquisition id: +1 per frame delivered by the capture thread (the PLC's ACQ_ID)."""
    timestamp: float
    """`time.monotonic()` at capture; cycle times are measured from here."""
    image: np.ndarray
    """uint8 grayscale (H, W) or BGR (H, W, 3); always an owned, contiguous copy."""
    meta: dict[str, Any] = field(default_factory=dict)
    """Camera metadata: source, pixel format, exposure, gain, device timestamp, file name..."""
    trigger_id: int | None = None
    """Set when the frame answers a trigger, so a late frame can never be matched to another board."""

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])


@dataclass(frozen=True, slots=True)
class Detection:
    """One defect, with its box in original frame pixels (x1, y1, x2, y2)."""

    box: tuple[float, float, float, float]
    class_id: int
    score: float
    runner_up: tuple[int, float] | None = None
    """Class id and score of a box of another class on the same defect that lost to this one."""

    @property
    def label(self) -> str:
        return class_name(self.class_id)

    @property
    def width(self) -> float:
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        return self.box[3] - self.box[1]

    def to_json(self) -> dict[str, Any]:
        return {
            "box": [round(float(v), 1) for v in self.box],
            "class": self.label,
            "class_id": self.class_id,
            "score": round(float(self.score), 4),
            **(
                {"runner_up": {"class": class_name(self.runner_up[0]), "score": round(float(self.runner_up[1]), 4)}}
                if self.runner_up is not None
                else {}
            ),
        }


@dataclass(frozen=True, slots=True)
class TriggerRequest:
    """What the PLC latched at TRIGGER: the board this capture belongs to."""

    part_seq: int | None = None
    serial: str | None = None


@dataclass(slots=True)
class InspectionResult:
    """The verdict on one board, as every sink (database, PLC, UI) receives it.

    REJECT is the default everywhere: a result that could not be computed is built with
    `InspectionResult.failed(...)`, which rejects with a reason instead of passing silently.
    """

    frame_id: int
    recipe: str
    verdict: Verdict
    detections: list[Detection]
    timings_ms: dict[str, float]
    model_id: str
    board_serial: str | None = None
    part_seq: int | None = None
    reason: str | None = None
    """Why a board was rejected without (or despite) detections: 'no frame', 'model not loaded'..."""
    captured_at: float = 0.0
    """Monotonic capture time of the frame (cycle time = publish time - captured_at)."""
    timestamp: datetime = field(default_factory=lambda: datetime.now(UTC))
    uid: str = field(default_factory=lambda: uuid.uuid4().hex)
    """Globally unique id: the database key that survives plant sync."""
    image: np.ndarray | None = None
    reference: np.ndarray | None = None
    frame_meta: dict[str, Any] = field(default_factory=dict)
    severity: tuple[int, ...] = DEFAULT_SEVERITY
    """Class ids, most severe first (the recipe's `severity`): orders `worst`."""

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def cycle_ms(self) -> float:
        return float(self.timings_ms.get("total", 0.0))

    @property
    def worst(self) -> Detection | None:
        """The most severe defect by the recipe's severity order, the higher score among equals
        (its class is the PLC's RESULT_CODE and the operator's headline)."""
        rank = {c: i for i, c in enumerate(self.severity)}
        return min(self.detections, key=lambda d: (rank.get(d.class_id, len(rank)), -d.score), default=None)

    @property
    def max_score(self) -> float:
        """The highest score of any defect (the PLC's MAX_SCORE), whatever its class."""
        return max((d.score for d in self.detections), default=0.0)

    def class_counts(self) -> list[int]:
        counts = [0] * len(CLASS_NAMES)
        for d in self.detections:
            counts[d.class_id - 1] += 1
        return counts

    @classmethod
    def failed(
        cls,
        reason: str,
        *,
        frame_id: int = -1,
        recipe: str = "",
        model_id: str = "",
        trigger: TriggerRequest | None = None,
        captured_at: float = 0.0,
        timings_ms: dict[str, float] | None = None,
    ) -> InspectionResult:
        trigger = trigger or TriggerRequest()
        return cls(
            frame_id=frame_id,
            recipe=recipe,
            verdict=Verdict.REJECT,
            detections=[],
            timings_ms=timings_ms or {},
            model_id=model_id,
            board_serial=trigger.serial,
            part_seq=trigger.part_seq,
            reason=reason,
            captured_at=captured_at,
        )

    def to_json(self, image_name: str | None = None) -> dict[str, Any]:
        out: dict[str, Any] = {}
        if image_name is not None:
            out["image"] = image_name
        out.update(
            {
                "uid": self.uid,
                "frame_id": self.frame_id,
                "verdict": self.verdict.value,
                "reason": self.reason,
                "recipe": self.recipe,
                "serial": self.board_serial,
                "part_seq": self.part_seq,
                "detections": [d.to_json() for d in self.detections],
                "timings_ms": {k: round(v, 2) for k, v in self.timings_ms.items()},
                "model": self.model_id,
                "timestamp": self.timestamp.isoformat(),
            }
        )
        return out
