"""The error breakdown sorts each detection into exactly one kind and prices each kind in mAP points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from inspector.evaluation.breakdown import breakdown, classify_board, oracle_gains, size_bin

ROOT = Path(__file__).resolve().parent.parent
NAMES = ("open", "short", "mousebite", "spur", "copper", "pin-hole")

GT_B = np.array([[10, 10, 40, 40], [100, 100, 130, 130], [200, 200, 300, 260]], np.float32)
GT_C = np.array([0, 1, 2], np.int64)


def test_each_kind_once():
    boxes = np.array(
        [
            [10, 10, 40, 40],  # tp on defect 0
            [11, 11, 41, 41],  # duplicate of defect 0
            [100, 100, 160, 160],  # short, IoU 0.25 with defect 1: localisation
            [200, 200, 300, 262],  # copper on the mousebite: wrong class
            [500, 500, 520, 520],  # nothing there: background
        ],
        np.float32,
    )
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5], np.float32)
    classes = np.array([0, 0, 1, 4, 3], np.int64)
    kinds, matched = classify_board(GT_B, GT_C, boxes, scores, classes)
    assert [k for k, _ in kinds] == ["tp", "duplicate", "localisation", "wrong_class", "background"]
    assert matched.tolist() == [True, False, False]
    bd = breakdown([("g", GT_B, GT_C, boxes, scores, classes)], score=0.55).as_dict()
    assert bd["detections"] == {
        "tp": 1,
        "duplicate": 1,
        "localisation": 1,
        "wrong_class": 1,
        "both": 0,
        "background": 0,  # 0.5 is under the score
    }
    assert bd["missed"] == 2 and bd["labels"] == 3
    assert bd["by_size"][">=90"]["missed"] == 1 and bd["by_size"]["<40"]["tp"] == 1


def test_fixing_a_kind_gains_what_it_cost():
    gts = [(GT_B, GT_C)]
    perfect = (GT_B.copy(), np.array([0.9, 0.8, 0.7], np.float32), GT_C.copy())
    assert oracle_gains(gts, [perfect], NAMES)["base_map50"] == pytest.approx(1.0)
    loose = GT_B.copy()
    loose[1] = [100, 100, 160, 160]  # the short drawn too large: IoU 0.25
    g = oracle_gains(gts, [(loose, perfect[1], perfect[2])], NAMES)
    assert g["base_map50"] < 1.0
    assert g["base_map50"] + g["localisation"] == pytest.approx(1.0)
    assert g["duplicate"] == pytest.approx(0.0)


def test_size_bins():
    assert size_bin([0, 0, 39, 10]) == "<40"
    assert size_bin([0, 0, 10, 60]) == "60-90"
    assert size_bin([0, 0, 200, 10]) == ">=90"


def test_script_names_a_bad_dataset_and_missing_result_files(tmp_path):
    import cv2

    ds = tmp_path / "ds"
    (ds / "group1" / "1").mkdir(parents=True)
    (ds / "group1" / "1_not").mkdir()
    (ds / "trainval.txt").write_text("group1/1/10.jpg group1/1_not/10.txt\n")
    script = [
        sys.executable,
        str(ROOT / "scripts" / "error_breakdown.py"),
        "--root",
        str(ds),
        "--results",
        str(tmp_path),
    ]
    r = subprocess.run(script, capture_output=True, text=True)
    assert r.returncode != 0 and "dataset:" in r.stderr and "not found" in r.stderr and "Traceback" not in r.stderr
    for suffix in ("test", "temp"):
        cv2.imwrite(str(ds / "group1" / "1" / f"10_{suffix}.jpg"), np.full((64, 64), 255, np.uint8))
    (ds / "group1" / "1_not" / "10.txt").write_text("1 1 20 20 1\n")
    r = subprocess.run(script, capture_output=True, text=True)
    assert r.returncode != 0 and "no result file for 1 boards (e.g. 10.txt)" in r.stderr, r.stderr
    (tmp_path / "10.txt").write_text("1,1,20,20,0.9,open\n")
    r = subprocess.run([*script, "--json"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert '"tp": 1' in r.stdout
