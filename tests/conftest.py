"""Shared test set-up: Qt offscreen, synthetic boards, a station config in a temp folder."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


@pytest.fixture(scope="session")
def demo_boards(tmp_path_factory) -> Path:
    """12 synthetic boards with references and truth.json (generated once per test session)."""
    from inspector.synth import write_boards

    return write_boards(tmp_path_factory.mktemp("boards"), 12, seed=3)


@pytest.fixture(scope="session")
def demo_truth(demo_boards) -> dict:
    return json.loads((demo_boards / "truth.json").read_text())
