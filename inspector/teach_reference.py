"""A recipe's golden reference taught from several good boards: each registered to the first, then the median.

Why: a golden image captured from one board carries that board's own surface (laminate weave, copper grain,
tarnish) and that capture's noise. Binarised, a dark corner of a copper pour or a weave spot in bare laminate
can come out as the other material; the golden board captured again repeats the mistake (same surface), so
the known-good check never shows it, but every other board of the line differs there and is rejected. The
median of a few registered good boards keeps what they share, the copper, and averages their surfaces out;
a blemish or defect on one teaching board is outvoted by the others (three or more boards). Measured in
docs/calibration.md (*A golden image taught from several good boards*): on camera renderings no better than one
clean capture (sparse views register less firmly to a golden image without a surface), so it is a tool for a
golden board that is not clean, not the default.

The first image fixes the board's coordinates (the recipe's ROI and mask are drawn on it): put the first board
square in the fixture. Areas another board's capture does not show keep the first image's pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .registration import BoardRegistrar, Registration, RegistrationError, gray8, is_blank


class TeachError(ValueError):
    """The boards cannot make a golden reference; the message names the board and why."""


@dataclass(frozen=True)
class TaughtReference:
    image: np.ndarray
    """The golden reference: same shape and type as the boards."""
    registrations: list[Registration | None]
    """Per board, how it was registered to the first (None for the first)."""


MIN_BOARDS = 2


def teach_reference(
    boards: Sequence[np.ndarray], names: Sequence[str] | None = None, registrar: BoardRegistrar | None = None
) -> TaughtReference:
    """The per-pixel median of `boards`, each registered to `boards[0]` (see the module's docstring).

    Refused, naming the board: fewer than two boards, boards of another size or pixel type than the first, a
    blank first board (nothing to register to), a board that cannot be registered to the first (another
    product, out of the fixture, too dark).
    """
    names = list(names) if names is not None else [f"board {i + 1}" for i in range(len(boards))]
    if len(names) != len(boards):
        raise ValueError("one name per board")
    if len(boards) < MIN_BOARDS:
        raise TeachError(f"teaching a golden reference needs at least {MIN_BOARDS} good boards, got {len(boards)}")
    first = np.asarray(boards[0])
    for name, b in zip(names, boards, strict=True):
        b = np.asarray(b)
        if b.shape != first.shape or b.dtype != first.dtype:
            raise TeachError(
                f"{name}: {b.shape} {b.dtype} differs from the first board ({first.shape} {first.dtype}): "
                "every teaching board must come from the same camera set-up"
            )
    registrar = registrar or BoardRegistrar()
    try:
        gray = gray8(first, registrar.settings.colour)
    except RegistrationError as exc:
        raise TeachError(f"{names[0]}: {exc}") from None
    if is_blank(gray):
        raise TeachError(f"{names[0]}: blank image (no contrast): the first board fixes the golden reference's pose")
    stack = [first]
    regs: list[Registration | None] = [None]
    for name, b in zip(names[1:], boards[1:], strict=True):
        try:
            reg = registrar.register(np.asarray(b), first)
        except RegistrationError as exc:
            raise TeachError(f"{name}: not registered to {names[0]}: {exc}") from None
        stack.append(reg.warp_to_reference(np.asarray(b), first))
        regs.append(reg)
    image = _median(stack, first.dtype)
    return TaughtReference(image=image, registrations=regs)


def _median(stack: list[np.ndarray], dtype: np.dtype) -> np.ndarray:
    """Per-pixel median, rounded back to the boards' type (an even count: the mean of the middle two)."""
    med = np.median(np.stack(stack), axis=0)
    info = np.iinfo(dtype) if np.issubdtype(dtype, np.integer) else None
    if info is None:
        return med.astype(dtype)
    return np.clip(np.rint(med), info.min, info.max).astype(dtype)


__all__ = ["MIN_BOARDS", "TaughtReference", "TeachError", "teach_reference"]
