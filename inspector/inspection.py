"""One board, one verdict: the inspection path every command and the station share.

Why one function: `run`, `inspect`, `evaluate`, `bench` and the tests used to assemble detect +
decide themselves, so the same board could get different verdicts depending on who looked at it.
`inspect_board` is the only place that turns a frame into a verdict:

    frame -> undistort -> register to the recipe's reference -> warp the frame into board pixels
          -> detector.detect (the model's own input preparation runs inside) -> boxes back to frame
          pixels -> decide (thresholds, size, ROI in board coordinates)

Why the frame is warped onto the reference (and not the reference onto the frame): the model
compares test and template at the same pixel positions, and this way its template input is always
the recipe's golden image, untouched: the same pixels on every board (prepared once and cached by
the detector), the same size whatever the camera's field of view, and board areas the camera does
not see keep the reference's pixels, so a board sitting off-centre shows no edge "defect". The
transform is kept: detections are reported in frame pixels (what the operator sees), and the ROI is
tested in board coordinates (so it follows the board).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import cv2
import numpy as np

from .decision import RecipeRules, to_gray8
from .detect.base import Detector
from .domain import Detection, Verdict
from .registration import UNREGISTERED, Registration, RegistrationError

if TYPE_CHECKING:
    from .board_serial import CodeReader, SerialCheck

#: Below this corner displacement the frame is used as it is: resampling would only blur it, and the
#: model was trained with up to 1 px of misregistration between board and template.
NO_WARP_PX = 0.25

#: The per-step timings every inspection reports (ms), in the order they run.
STEPS = ("undistort", "register", "detect", "decide")

#: Reason prefix of a board whose reference is not the size the recipe's ROI was checked against.
ROI_MISFIT = "ROI does not fit the reference"


class Registrar(Protocol):
    """Aligns a capture to its reference (`inspector.registration.BoardRegistrar`)."""

    def register(self, image: np.ndarray, reference: np.ndarray) -> Registration:
        """Transform from capture to reference pixels and its quality; raises RegistrationError."""


@dataclass(slots=True)
class BoardInspection:
    """The outcome for one board, in the terms of the frame the camera delivered."""

    verdict: Verdict
    detections: list[Detection]
    """The defects that count for the recipe, boxes in frame pixels."""
    found: list[Detection] = field(default_factory=list)
    """Everything the detector returned (above its thresholds), boxes in frame pixels."""
    ignored: int = 0
    """Detections dropped by threshold, size or ROI."""
    reason: str | None = None
    """Why the board was rejected: before inspection (not registered, no reference) or by its code."""
    board_to_frame: np.ndarray | None = None
    """3x3 transform from reference (board) pixels to frame pixels; None without a reference."""
    registration: Registration | None = None
    """The registrar's estimate (quality, method, shift, rotation); None without a reference."""
    timings_ms: dict[str, float] = field(default_factory=dict)
    """`undistort`, `register`, `detect`, `decide` (plus the detector's own `pre`, `invoke`, ...)."""
    image: np.ndarray | None = None
    """The frame after undistortion (what the boxes refer to)."""
    board_image: np.ndarray | None = None
    """What the detector was given: the frame in board pixels (the frame itself without a reference)."""
    reference: np.ndarray | None = None
    """The reference the detector compared with (the recipe's golden image, unwarped)."""
    serial: SerialCheck | None = None
    """The board code read from the board (recipe `code`), when the recipe has one."""

    @property
    def passed(self) -> bool:
        return self.verdict is Verdict.PASS

    @property
    def inspected(self) -> bool:
        """False for a board rejected before the detector saw it (`reason` says why)."""
        return self.board_image is not None

    @property
    def quality(self) -> float | None:
        return None if self.registration is None else self.registration.quality

    @property
    def frame_to_board(self) -> np.ndarray | None:
        return None if self.board_to_frame is None else np.linalg.inv(self.board_to_frame)

    def to_frame(self, detections: list[Detection]) -> list[Detection]:
        """Detections found on `board_image` (board pixels) moved to frame pixels, as this inspection did."""
        return map_boxes(detections, None if _identity(self.board_to_frame) else self.board_to_frame)


def _code_only(code_reader, image: np.ndarray, timings: dict[str, float], plc_serial: str | None):
    """The board code of a board rejected before the detector ran: still traceable, the code is read where it lies
    in the frame. None without a code reader."""
    if code_reader is None:
        return None
    read = code_reader.read(image)
    timings["serial"] = read.ms
    return code_reader.check(read, [], plc_serial)


def roi_misfit(rules: RecipeRules, board_hw: tuple[int, ...]) -> str | None:
    """Why the recipe's ROI cannot be laid on a board of `board_hw` (height, width: the reference the board is
    registered to, or the frame without one), or None.

    The ROI (polygon or mask) is in the pixels of the board it was checked against at compile time (the recipe's
    golden image, else the camera's frame). A board that carries its own reference (a replay folder's <id>_temp,
    `inspect --reference`) of another size is in other pixels: the ROI laid on it unchecked covered another part
    of it (a 640 px ROI's left half is a quarter of a 1280 px board) and defects outside that part were ignored,
    so the board PASSED. Why a REJECT and not the ROI scaled: another size may be the same board at another
    resolution, but as well another crop, field of view or product, and nothing in the images says which; a
    wrongly scaled ROI passes boards silently, a REJECT naming both sizes is seen on the first board.
    """
    if getattr(rules, "polygon", None) is None and getattr(rules, "mask", None) is None:
        return None
    roi = getattr(rules, "roi", None)
    checked = getattr(roi, "board_size", None)
    if checked is None:
        return None
    h, w = int(board_hw[0]), int(board_hw[1])
    if (w, h) == tuple(checked):
        return None
    return (
        f"{ROI_MISFIT}: the recipe's ROI was drawn on a {checked[0]}x{checked[1]} board, but this board's "
        f"reference is {w}x{h}; inspect it against a golden image of the recipe's size, or teach the recipe "
        "(reference and ROI) on this camera's golden image"
    )


def _identity(m: np.ndarray | None) -> bool:
    return m is None or np.array_equal(m, np.eye(3))


def map_boxes(detections: list[Detection], matrix: np.ndarray | None) -> list[Detection]:
    """The detections with their boxes moved by the 3x3 `matrix` (the axis-aligned box of the moved corners)."""
    if matrix is None or not detections:
        return list(detections)
    b = np.array([d.box for d in detections], np.float64)
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], 1).reshape(-1, 1, 2)
    moved = cv2.perspectiveTransform(corners, matrix).reshape(-1, 4, 2)
    lo, hi = moved.min(1), moved.max(1)
    return [
        Detection((float(x1), float(y1), float(x2), float(y2)), d.class_id, d.score, d.runner_up)
        for d, (x1, y1), (x2, y2) in zip(detections, lo.tolist(), hi.tolist(), strict=True)
    ]


def inspect_board(
    frame_image: np.ndarray,
    reference: np.ndarray | None,
    rules: RecipeRules,
    detector: Detector,
    registrar: Registrar,
    undistort: Callable[[np.ndarray], np.ndarray] | None = None,
    *,
    code_reader: CodeReader | None = None,
    plc_serial: str | None = None,
) -> BoardInspection:
    """Inspect one board: the station's verdict on `frame_image` against `reference` under `rules`.

    Colour (frame or reference) becomes gray here by the model's rule (`DetectorInfo.colour`), and 16-bit becomes
    8-bit by its significant bits, once, for registration and the detector alike. `reference` None falls back to the recipe's reference; a model that
    needs one and gets none is a
    REJECT with the reason, as is a board that cannot be registered and one whose reference is not the size the
    recipe's ROI was checked against (`roi_misfit`). Other failures (a broken model,
    a bad image) raise: the caller decides whether that is a REJECT (the station) or an error line
    (the command line). `detector` must be loaded.

    With a `code_reader` (the recipe's board code), the code is decoded from the registered board
    (its region is in board pixels) while the detector runs; the serial it gives and `plc_serial`
    must agree, and defects on the code do not count (`inspector.board_serial`).
    """
    timings = dict.fromkeys(STEPS, 0.0)
    info = detector.info
    colour = getattr(info, "colour", "red")
    t = time.perf_counter()
    image = undistort(frame_image) if undistort is not None else frame_image
    timings["undistort"] = (time.perf_counter() - t) * 1000
    if image.ndim == 3 or image.dtype != np.uint8:
        image = to_gray8(image, "board image", colour)
    if reference is None:
        reference = rules.reference_for(colour)
    elif reference.ndim == 3 or reference.dtype != np.uint8:
        reference = to_gray8(reference, "reference image", colour)
    if info.needs_reference and reference is None:
        return BoardInspection(
            Verdict.REJECT, [], reason="no reference image for this recipe", timings_ms=timings, image=image
        )
    misfit = roi_misfit(rules, (reference if reference is not None else image).shape)
    if misfit:
        serial = _code_only(code_reader, image, timings, plc_serial)
        return BoardInspection(
            Verdict.REJECT, [], reason=misfit, timings_ms=timings, image=image, reference=reference, serial=serial
        )

    registration = None
    board_to_frame = None
    board_image = image
    if reference is not None:
        t = time.perf_counter()
        try:
            registration = registrar.register(image, reference)
            if image.shape == reference.shape and registration.max_displacement_px(image.shape) < NO_WARP_PX:
                board_to_frame = np.eye(3)
            else:
                board_image = registration.warp_to_reference(image, reference)
                board_to_frame = registration.reference_to_image()
        except RegistrationError as exc:
            why = str(exc) or type(exc).__name__
            why = why.removeprefix(UNREGISTERED).removeprefix(": ")
            if image.shape[:2] != reference.shape[:2]:  # the likeliest cause first (a long reason is cut on screen)
                why = (
                    f"frame {image.shape[1]}x{image.shape[0]} against a {reference.shape[1]}x{reference.shape[0]} "
                    f"reference: the camera's region or resolution changed, or the reference is another camera's; {why}"
                )
            why = f"{UNREGISTERED}: {why}"
            timings["register"] = (time.perf_counter() - t) * 1000
            serial = _code_only(code_reader, image, timings, plc_serial)
            return BoardInspection(
                Verdict.REJECT, [], reason=why, timings_ms=timings, image=image, reference=reference, serial=serial
            )
        timings["register"] = (time.perf_counter() - t) * 1000
        limit = rules.recipe.max_unseen_fraction
        if limit < 1 and not _identity(board_to_frame):
            unseen = rules.unseen_fraction(board_to_frame, image.shape[:2], reference.shape[:2])
            if unseen > limit:
                # What the camera did not show is not compared (it takes the golden image): past the limit a board
                # far off in its fixture would hide its defects there and PASS.
                why = (
                    f"board not fully in view: {unseen:.0%} of the inspected area outside the frame (recipe "
                    f"max_unseen_fraction {limit:.0%}); check the fixture or the camera's field of view"
                )
                serial = _code_only(code_reader, image, timings, plc_serial)
                return BoardInspection(
                    Verdict.REJECT,
                    [],
                    reason=why,
                    serial=serial,
                    board_to_frame=board_to_frame,
                    registration=registration,
                    timings_ms=timings,
                    image=image,
                    reference=reference,
                )

    t = time.perf_counter()
    code_job = code_reader.start(board_image) if code_reader is not None else None
    found_board = detector.detect(board_image, reference, rules.thresholds_for(info.default_thresholds))
    timings["detect"] = (time.perf_counter() - t) * 1000
    timings.update(getattr(detector, "last_timings", None) or {})

    t = time.perf_counter()
    identity = _identity(board_to_frame)
    found = found_board if identity else map_boxes(found_board, board_to_frame)
    counted = found
    serial = None
    if code_job is not None:
        read = code_job.result()
        timings["serial"] = read.ms
        serial = code_reader.check(read, found_board, plc_serial)
        kept_ids = {id(d) for d in serial.kept}
        counted = [f for f, b in zip(found, found_board, strict=True) if id(b) in kept_ids]
    frame_to_board = None if identity else np.linalg.inv(board_to_frame)
    decision = rules.decide(counted, info.default_thresholds, to_board=frame_to_board)
    timings["decide"] = (time.perf_counter() - t) * 1000
    return BoardInspection(
        serial.verdict(decision.verdict) if serial is not None else decision.verdict,
        decision.kept,
        found=found,
        ignored=decision.ignored + len(found) - len(counted),
        reason=serial.reason if serial is not None else None,
        serial=serial,
        board_to_frame=board_to_frame,
        registration=registration,
        timings_ms=timings,
        image=image,
        board_image=board_image,
        reference=reference,
    )
