"""The same defect at the same place of the frame on several boards in a row: a fault of the station or the line,
not of the boards.

Why: a speck of dust that settles on the lens after the golden image was taken darkens the same few pixels of every
frame; where they fall on copper the network calls a defect there, and the station rejects good board after good
board, each for a plausible reason (probed on camera renderings of 14 designs: 7-9 of 28 good boards rejected, the
calls at the speck; `docs/camera.md`). A process fault upstream (a stencil, an etch mask) does the same at one place
of the board, wherever the board lies in the frame. Either way the boards are right to be rejected and the line is
wrong to go on: after `boards` inspected boards in a row that each have a defect within `radius_px` of one place of
the frame, or of the board, the station raises an alarm and drops READY (`Pipeline`), as it does after three boards
in a row that cannot be registered. On a fixture that holds boards within a few pixels the two places are one.

The watch only counts; it owns no thread. The inference thread feeds it; `reset` may come from another thread
(the operator's or the PLC's CLEAR, a recipe switch).
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class RepeatedDefect:
    """Where the defect repeats (the centre of the newest board's box, in frame pixels, or in board pixels where only
    the board's place repeats) and on how many boards."""

    x: float
    y: float
    boards: int
    label: str
    place: Literal["frame", "board"] = "frame"

    @property
    def reason(self) -> str:
        where = f"{self.boards} boards in a row at x {self.x:.0f}, y {self.y:.0f} px"
        if self.place == "board":  # the frames differ, the boards' place does not: not the lens
            return f"same defect on {where} of the board ({self.label}): check the process upstream"
        return f"same defect on {where} ({self.label}): clean the lens, or check the process upstream"


class RepeatedDefectWatch:
    """Counts inspected boards whose defects share a place (see the module's docstring); bounded by `boards`."""

    def __init__(self, boards: int = 5, radius_px: float = 12.0):
        if boards < 2:
            raise ValueError(f"a repeated defect needs at least 2 boards, got {boards}")
        if radius_px <= 0:
            raise ValueError(f"radius_px must be positive, got {radius_px}")
        self.boards = boards
        self.radius_px = radius_px
        self._recent: dict[str, deque[list[tuple[float, float, str]]]] = {
            "frame": deque(maxlen=boards),
            "board": deque(maxlen=boards),
        }
        self._lock = threading.Lock()

    def reset(self) -> None:
        """Forget the boards seen (after a CLEAR, so the alarm comes back only after `boards` more boards)."""
        with self._lock:
            for recent in self._recent.values():
                recent.clear()

    def observe(
        self,
        defects: Iterable[tuple[Sequence[float], str]],
        in_board: Iterable[tuple[Sequence[float], str]] | None = None,
    ) -> RepeatedDefect | None:
        """One inspected board's defects as (box x0, y0, x1, y1 in frame pixels, label), and the same boxes in board
        pixels (None: a board without a reference, whose frame is its board); a board without any (a PASS) breaks
        every run. Returns the repeat when this board completes one: the frame's place first (it names the lens)."""
        frame = self._centres(defects)
        board = frame if in_board is None else self._centres(in_board)
        in_frame, on_board = self._run("frame", frame), self._run("board", board)  # both histories take this board
        return in_frame or on_board

    @staticmethod
    def _centres(defects: Iterable[tuple[Sequence[float], str]]) -> list[tuple[float, float, str]]:
        return [((b[0] + b[2]) / 2.0, (b[1] + b[3]) / 2.0, label) for b, label in defects]

    def _run(self, place: Literal["frame", "board"], centres: list[tuple[float, float, str]]) -> RepeatedDefect | None:
        r2 = self.radius_px**2
        with self._lock:
            recent = self._recent[place]
            recent.append(centres)
            if len(recent) < self.boards:
                return None
            older = list(recent)[:-1]
        for x, y, label in centres:
            if all(any((x - ox) ** 2 + (y - oy) ** 2 <= r2 for ox, oy, _ in board) for board in older):
                return RepeatedDefect(x, y, self.boards, label, place)
        return None


def watch_from(section) -> RepeatedDefectWatch | None:
    """The watch a station's `[supervisor]` section asks for (`repeat_boards`, `repeat_radius_px`); None for 0."""
    return RepeatedDefectWatch(section.repeat_boards, section.repeat_radius_px) if section.repeat_boards else None


__all__ = ["RepeatedDefect", "RepeatedDefectWatch", "watch_from"]
