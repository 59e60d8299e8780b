"""`scripts/reproduce_model.sh` refuses a set-up it cannot honour before three hours of training, not after."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "reproduce_model.sh"


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"TRAIN_ON": "all"}, "TRAIN_ON=all needs RECIPE_SIDECAR: the sidecar of this recipe trained on the split"),
        ({"TRAIN_ON": "all", "RECIPE_SIDECAR": "/nonexistent/m.json"}, "RECIPE_SIDECAR /nonexistent/m.json: no such"),
        ({"TRAIN_ON": "both"}, "TRAIN_ON=both: expected split or all"),
    ],
)
def test_a_model_trained_on_every_pair_needs_its_recipes_figures_named_first(tmp_path, env, expected):
    run = tmp_path / "run"
    clean = {k: v for k, v in os.environ.items() if k not in {"TRAIN_ON", "RECIPE_SIDECAR"}}
    r = subprocess.run(
        ["bash", str(SCRIPT)], env={**clean, **env, "RUN": str(run)}, capture_output=True, text=True, timeout=60
    )
    assert r.returncode != 0 and expected in r.stderr, r.stderr
    assert not run.exists()  # nothing trained, nothing written
