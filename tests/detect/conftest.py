"""Fixtures for the detector tests: the committed fixture models and copies to break."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "models"
M320 = FIXTURES / "synth-det-320.tflite"
M320_FLOAT = FIXTURES / "synth-det-320-float.tflite"
M640 = FIXTURES / "synth-det-640.tflite"


def copy_package(model: Path, dest: Path) -> Path:
    """A writable copy of a model package (the .tflite and its sidecar)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy(model, dest / model.name)
    shutil.copy(model.with_suffix(".json"), dest / model.with_suffix(".json").name)
    return dest / model.name


@pytest.fixture
def model_copy(tmp_path) -> Path:
    return copy_package(M320, tmp_path / "pkg")
