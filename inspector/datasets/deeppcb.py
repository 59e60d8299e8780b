"""DeepPCB layout loader.

The layout is quirky (the list names a `.jpg` that does not exist; `_test`/`_temp` suffixes are
implied; some annotation files lack a final newline), so it is parsed in one place and every
consumer (training, `pcb-inspector evaluate`, tests) gets the same `BoardPair` records.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ..domain import CLASS_NAMES as CLASS_NAMES  # DeepPCB's classes are the station's: ids 1-6 in this order
from ..image_file import ImageFileError, read_image_file


class DatasetError(ValueError):
    """A dataset file is missing or malformed; the message names the file and line."""


@dataclass(frozen=True)
class BoardPair:
    """One board under inspection, its defect-free template and its annotated defects."""

    id: str
    group: str
    test_path: Path
    template_path: Path
    annotation_path: Path | None
    boxes: np.ndarray = field(repr=False)  # (N, 4) float32 x1, y1, x2, y2 in pixels
    classes: np.ndarray = field(repr=False)  # (N,) int64, 0-based class index


def read_annotation(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse `x1 y1 x2 y2 class` lines (class 1-based); tolerate commas and a missing newline."""
    boxes: list[list[float]] = []
    classes: list[int] = []
    try:
        text = path.read_text()
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read annotation ({exc.strerror})") from exc
    for lineno, line in enumerate(text.splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts:
            continue
        if len(parts) != 5:
            raise DatasetError(f"{path}:{lineno}: expected 'x1 y1 x2 y2 class', got {line!r}")
        try:
            x1, y1, x2, y2, c = (int(float(p)) for p in parts)
        except ValueError as exc:
            raise DatasetError(f"{path}:{lineno}: non-numeric value in {line!r}") from exc
        if not 1 <= c <= len(CLASS_NAMES):
            raise DatasetError(f"{path}:{lineno}: class {c} is not in 1..{len(CLASS_NAMES)}")
        if x2 <= x1 or y2 <= y1:
            raise DatasetError(f"{path}:{lineno}: empty box {x1},{y1},{x2},{y2}")
        boxes.append([x1, y1, x2, y2])
        classes.append(c - 1)
    return np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(classes, np.int64)


def load_list(root: Path, list_file: Path | None = None) -> list[BoardPair]:
    """Read a DeepPCB list file (default `root/trainval.txt`) into board pairs."""
    root = Path(root)
    list_file = Path(list_file) if list_file is not None else root / "trainval.txt"
    if not list_file.is_file():
        raise DatasetError(f"{list_file}: list file not found")
    pairs: list[BoardPair] = []
    for lineno, line in enumerate(list_file.read_text().splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2:
            raise DatasetError(f"{list_file}:{lineno}: expected 'image annotation', got {line!r}")
        img_rel, ann_rel = parts
        stem = img_rel[: -len(".jpg")] if img_rel.endswith(".jpg") else img_rel
        test_path = root / f"{stem}_test.jpg"
        template_path = root / f"{stem}_temp.jpg"
        ann_path = root / ann_rel
        for p in (test_path, template_path):
            if not p.is_file():
                raise DatasetError(f"{list_file}:{lineno}: image {p} not found")
        boxes, classes = (
            read_annotation(ann_path)
            if ann_path.exists()
            else (
                np.zeros((0, 4), np.float32),
                np.zeros((0,), np.int64),
            )
        )
        pairs.append(
            BoardPair(
                id=Path(stem).name,
                group=img_rel.split("/")[0].removeprefix("group"),
                test_path=test_path,
                template_path=template_path,
                annotation_path=ann_path if ann_path.exists() else None,
                boxes=boxes,
                classes=classes,
            )
        )
    return pairs


def read_gray(path: Path) -> np.ndarray:
    """Read an image as 8-bit grayscale; a few DeepPCB boards are stored as 3-channel.

    For training (what the network learnt from): OpenCV's own gray conversion. A board the station judges is read
    with `read_board` instead, as `inspect` and `run` read it. Read strictly all the same: a truncated JPEG read by
    `cv2.imread` comes back gray-filled, and a network trained or calibrated on it learns pixels nobody captured
    (the 2,000 DeepPCB images decode byte-identical either way).
    """
    try:
        return read_image_file(path, cv2.IMREAD_GRAYSCALE)
    except ImageFileError as exc:
        raise DatasetError(f"{path}: {exc}") from None


def read_board(path: Path) -> np.ndarray:
    """A board or template as the station reads it (`inspector.image_file`): as stored, strictly.

    Why not `read_gray`: the station (`run`, `inspect`) turns a colour frame gray by the model's colour rule and a
    16-bit one onto 8 bit by its significant bits, inside `inspect_board`, and applies no EXIF rotation; OpenCV's
    gray read takes the luma, the top 8 bits and the rotation, so `evaluate` judged another image than the line
    (a known-good colour or 10-bit board: inspect PASS, evaluate REJECT). A truncated or damaged file is a
    DatasetError naming it, never a half-gray board.
    """
    try:
        img = read_image_file(path)
    except ImageFileError as exc:
        raise DatasetError(f"{path}: {exc}") from None
    if img.dtype not in (np.uint8, np.uint16):
        raise DatasetError(f"{path}: unsupported bit depth ({img.dtype}); expected 8 or 16 bit")
    return img


VAL_GROUPS: frozenset[str] = frozenset({"44000", "92000"})
"""Held-out board groups: 161 pairs, 16% of trainval, every class represented."""


def split_by_group(
    pairs: list[BoardPair], val_groups: frozenset[str] = VAL_GROUPS
) -> tuple[list[BoardPair], list[BoardPair]]:
    """Split by board group so that no validation board design is ever seen in training."""
    train = [p for p in pairs if p.group not in val_groups]
    val = [p for p in pairs if p.group in val_groups]
    return train, val


HELD_OUT_LIST = "heldout.txt"
"""List file (DeepPCB format) of a dataset's held-out boards, written by `pcb-inspector dataset export`."""


def split_by_board(pairs: list[BoardPair], fraction: float = 0.2) -> tuple[list[BoardPair], list[BoardPair]]:
    """Hold out about `fraction` of the boards, chosen by a hash of group/id: the same board always
    lands on the same side, whatever else is in the export, so a re-export does not leak validation
    boards into training. At least one board on each side when there are two or more."""
    import hashlib

    if not 0.0 < fraction < 1.0:
        raise ValueError(f"held-out fraction {fraction}: expected between 0 and 1")

    def position(p: BoardPair) -> float:  # where the board's hash falls in [0, 1): its own, not a rank among others
        return int(hashlib.sha256(f"{p.group}/{p.id}".encode()).hexdigest()[:15], 16) / 16**15

    # Held out by the board's own hash, so a board's side does not depend on the rest of the export. Taking the
    # first n by rank did: boards added to a re-export pushed earlier validation boards into training.
    held = {id(p) for p in pairs if position(p) < fraction}
    if len(pairs) >= 2 and not held:  # a tiny export: the first by hash, as before
        held = {id(min(pairs, key=position))}
    if len(pairs) >= 2 and len(held) == len(pairs):
        held.discard(id(max(pairs, key=position)))
    return [p for p in pairs if id(p) not in held], [p for p in pairs if id(p) in held]


def held_out_split(
    root: Path, pairs: list[BoardPair], val_groups: frozenset[str] | None = None
) -> tuple[list[BoardPair], list[BoardPair], str]:
    """(train, held-out, how) for a dataset root, the same for the trainer, the INT8 check and the docs:

    - `val_groups` given: those board groups (DeepPCB's own split when they are 44000,92000);
    - else `root/heldout.txt` when the dataset has one (a station export): exactly those boards;
    - else DeepPCB's validation groups when present;
    - else (one group per recipe, e.g. a single-recipe station) a split by board, `split_by_board`.
    """
    if val_groups is not None:
        train, val = split_by_group(pairs, val_groups)
        return train, val, f"board groups {','.join(sorted(val_groups))}"
    listed = Path(root) / HELD_OUT_LIST
    if listed.is_file():
        ids = {(p.group, p.id) for p in load_list(root, listed)}
        train = [p for p in pairs if (p.group, p.id) not in ids]
        val = [p for p in pairs if (p.group, p.id) in ids]
        return train, val, f"the boards in {listed}"
    train, val = split_by_group(pairs, VAL_GROUPS)
    if val:
        return train, val, f"board groups {','.join(sorted(VAL_GROUPS))}"
    train, val = split_by_board(pairs)
    return train, val, "20% of the boards, by board (no held-out list or validation groups in the data)"
