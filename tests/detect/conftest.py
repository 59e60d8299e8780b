"""Fixtures for the detector tests: the committed fixture models and copies to break."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "models"
M320 = FIXTURES / "synth-det-320.tflite"
M320_FLOAT = FIXTURES / "synth-det-320-float.tflite"
M640 = FIXTURES / "synth-det-640.tflite"


RELEASES = Path(__file__).resolve().parents[2] / "models" / "releases"


def split_release(dest: Path) -> Path:
    """1.9.2, the shipped recipe trained on the training groups only, under the file name its sidecar describes.

    Why: a test that claims something on held-out DeepPCB boards needs a model that never saw them; the shipped
    model was trained on every pair."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(RELEASES / "pcb-defect-det-1.9.2.tflite", dest / "pcb-defect-det.tflite")
    shutil.copy(RELEASES / "pcb-defect-det-1.9.2.json", dest / "pcb-defect-det.json")
    return dest / "pcb-defect-det.tflite"


def copy_package(model: Path, dest: Path) -> Path:
    """A writable copy of a model package (the .tflite and its sidecar)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, dest / model.name)
    shutil.copy(model.with_suffix(".json"), dest / model.with_suffix(".json").name)
    return dest / model.name


def package_with(model: Path, dest: Path, **changes) -> Path:
    """A copy of `model` whose sidecar has `changes` applied (its hash still matches the file)."""
    from inspector.detect.package import sha256_file

    copy = copy_package(model, dest)
    side = copy.with_suffix(".json")
    meta = json.loads(side.read_text())
    meta.update(changes)
    meta["sha256"] = sha256_file(copy)
    side.write_text(json.dumps(meta))
    return copy


@pytest.fixture
def model_copy(tmp_path) -> Path:
    return copy_package(M320, tmp_path / "pkg")


def crop_around_first_defect(board, w: int, h: int):
    """A w x h frame (and its reference) around the board's first defect, and that defect's box in it."""
    x1, y1, x2, y2, _ = board.defects[0]
    ox, oy = max(0, (x1 + x2) // 2 - w // 2), max(0, (y1 + y2) // 2 - h // 2)
    img = board.image[oy : oy + h, ox : ox + w].copy()
    ref = board.reference[oy : oy + h, ox : ox + w].copy()
    return img, ref, np.array([[x1 - ox, y1 - oy, x2 - ox, y2 - oy]], np.float32)


def defective_boards(n: int, first: int):
    """The first `n` synthetic boards from seed `first` on that carry at least one defect."""
    from inspector.synth import make_board

    out = []
    for seed in range(first, first + 300):
        b = make_board(seed, defect_rate=1.0)
        if b.defects:
            out.append(b)
        if len(out) == n:
            return out
    raise AssertionError("not enough defective synthetic boards")
