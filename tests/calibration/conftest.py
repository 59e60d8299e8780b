"""Synthetic calibration views (rendered once per session) and a golden board for registration."""

from __future__ import annotations

import pytest

from calibration.pattern import Pattern
from calibration.synthetic import SyntheticCamera, calibration_views
from inspector.synth import make_board


@pytest.fixture(scope="session")
def checker() -> Pattern:
    return Pattern.parse("checkerboard:9x6:5mm")


@pytest.fixture(scope="session")
def cam() -> SyntheticCamera:
    return SyntheticCamera()


@pytest.fixture(scope="session")
def views(checker, cam):
    """12 views of the checkerboard at known poses through a lens with known distortion."""
    return calibration_views(checker, cam, 12, seed=1)


@pytest.fixture(scope="session")
def board():
    return make_board(5, defect_rate=1.0)
