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


def test_each_column_says_the_threshold_its_verdict_rows_were_counted_at(tmp_path):
    """A sidecar whose INT8 figures were counted at 0.25 and whose float figures at 0.3 (or per class) shows each."""
    import json

    names = ("open", "short", "mousebite", "spur", "copper", "pin-hole")
    side = tmp_path / "m.json"
    side.write_text(
        json.dumps(
            {
                "name": "m",
                "version": "1.0.1",
                "metrics": {
                    "val_int8": {"map50": 0.97, "thresholds": dict.fromkeys(names, 0.25)},
                    "val_float_tflite": {"map50": 0.97, "thresholds": {**dict.fromkeys(names, 0.3), "spur": 0.2}},
                    "val_int8_camera_gray": {"map50": 0.96},  # measured before the thresholds were recorded
                },
            }
        )
    )
    r = subprocess.run([sys.executable, str(SCRIPT), str(side)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    row = next(line for line in r.stdout.splitlines() if line.startswith("| score threshold"))
    assert row.endswith("| 0.25 | 0.3 / 0.3 / 0.3 / 0.2 / 0.3 / 0.3 | – |")
