"""`pcb-inspector inspect` and `run --headless` as a user runs them (subprocess, real files)."""

from __future__ import annotations

import json
import subprocess
import sys

import cv2
import numpy as np
import pytest


def cli(*args, cwd=None, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "inspector.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=timeout
    )


@pytest.fixture()
def classical_cfg(tmp_path):
    cfg = tmp_path / "station.toml"
    cfg.write_text('[detector]\nengine = "classical"\n[plc]\nmode = "off"\n')
    return cfg


def test_inspect_json_and_bad_images(tmp_path, demo_boards, demo_truth, classical_cfg):
    names = sorted(demo_truth)[:4]
    good = [str(demo_boards / f"{n}_test.png") for n in names]
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    deep = tmp_path / "float.tiff"
    cv2.imwrite(str(deep), np.zeros((64, 64), np.float32))
    args = [
        "inspect",
        "--config",
        str(classical_cfg),
        "--json",
        good[0],
        str(tmp_path / "missing.png"),
        str(empty),
        str(junk),
        str(deep),
        *good[1:],
    ]
    r = cli(*args)
    assert r.returncode == 1, r.stderr  # bad images make the exit status non-zero ...
    rows = [json.loads(line) for line in r.stdout.splitlines()]
    by_image = {row["image"]: row for row in rows}
    for g, n in zip(good, names, strict=True):  # ... but every good image was still inspected
        row = by_image[g]
        assert row["verdict"] == ("REJECT" if demo_truth[n] else "PASS")
        assert set(row) >= {"image", "verdict", "detections", "timings_ms", "model"}
        assert row["model"].startswith("classical-diff")
        for d in row["detections"]:
            assert len(d["box"]) == 4 and d["class"] and 0 <= d["score"] <= 1
    assert "file not found" in by_image[str(tmp_path / "missing.png")]["error"]
    assert "empty" in by_image[str(empty)]["error"]
    assert "not a readable image" in by_image[str(junk)]["error"]
    assert "bit depth" in by_image[str(deep)]["error"]
    assert "Traceback" not in r.stderr


def test_inspect_human_output_names_the_model(demo_boards, demo_truth, classical_cfg):
    n = sorted(demo_truth)[0]
    r = cli("inspect", "--config", str(classical_cfg), str(demo_boards / f"{n}_test.png"))
    assert r.returncode == 0, r.stderr
    assert "model: classical-diff" in r.stderr
    assert ("REJECT" if demo_truth[n] else "PASS") in r.stdout


def test_headless_run_logs_one_line_per_board(tmp_path, demo_boards, classical_cfg):
    r = cli(
        "run",
        "--headless",
        "--config",
        str(classical_cfg),
        "--camera",
        f"replay:{demo_boards}@50fps",
        "--boards",
        "6",
        "--db",
        f"sqlite:///{tmp_path}/i.db",
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr
    lines = [line for line in r.stdout.splitlines() if line.startswith("board ")]
    assert len(lines) >= 6
    assert all(("PASS" in line) or ("REJECT" in line) for line in lines)
    assert "stopped in" in r.stderr and "model: classical-diff" in r.stderr
