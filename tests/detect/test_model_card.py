"""The model card's metrics block is the sidecar's own figures, rendered, never hand-copied."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "model_card_metrics.py"


def test_shipped_card_block_matches_the_sidecar():
    r = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            str(ROOT / "models" / "pcb-defect-det.json"),
            "--card",
            str(ROOT / "models" / "MODEL_CARD.md"),
            "--check",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr


def test_an_edited_figure_is_caught(tmp_path):
    card = tmp_path / "card.md"
    text = (ROOT / "models" / "MODEL_CARD.md").read_text()
    start = text.index("| COCO mAP@0.5 |")
    card.write_text(text[:start] + "| COCO mAP@0.5 | 0.9990 |" + text[text.index("\n", start) :])
    r = subprocess.run(
        [sys.executable, str(SCRIPT), str(ROOT / "models" / "pcb-defect-det.json"), "--card", str(card), "--check"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 1 and "differs" in r.stderr
    # Writing it back from the sidecar restores the real figure.
    assert (
        subprocess.run(
            [sys.executable, str(SCRIPT), str(ROOT / "models" / "pcb-defect-det.json"), "--card", str(card)]
        ).returncode
        == 0
    )
    assert "| COCO mAP@0.5 | 0.9990 |" not in card.read_text()


def test_a_sidecar_without_figures_is_refused(tmp_path):
    side = tmp_path / "m.json"
    side.write_text('{"name": "m", "version": "1.0.0", "metrics": {}}')
    r = subprocess.run([sys.executable, str(SCRIPT), str(side)], capture_output=True, text=True)
    assert r.returncode != 0 and "evaluate" in r.stderr
