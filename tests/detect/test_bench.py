"""`pcb-inspector bench` runs end to end on a real model and reports every figure (no speed asserts)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from inspector.cli import main

from .conftest import M640

KEYS = {
    "invoke_p50_ms", "invoke_p99_ms", "pre_p50_ms", "pre_p99_ms", "post_p50_ms", "post_p99_ms",
    "e2e_p50_ms", "e2e_p99_ms", "overhead_ratio", "boards_per_s", "rss_mb", "backend",
}  # fmt: skip


def test_bench_json_has_every_figure(capsys):
    rc = main(
        [
            "bench",
            "--model",
            str(M640),
            "--frames",
            "6",
            "--boards",
            "4",
            "--warmup",
            "2",
            "--delegate",
            "cpu",
            "--json",
        ]
    )
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and KEYS <= set(out)
    assert out["backend"].startswith("CPU XNNPACK") and out["frames"] == 6 and out["failed"] == 0
    for k in KEYS - {"backend"}:
        assert math.isfinite(out[k]) and out[k] > 0, k
    assert out["e2e_p50_ms"] >= out["invoke_p50_ms"]  # end-to-end contains the invoke
    assert out["designs"] == 1  # a line runs one recipe: the boards share one reference
    assert out["sized_inputs"] == []  # one pass at the input's size: no graph of another size
    # the CPU it ran on, read from the kernel (an INT8 invoke differs fourfold between CPUs with and without VNNI)
    assert set(out["cpu"]) == {"model", "arch", "cores", "vector", "int8_dot"} and out["cpu"]["cores"] >= 1


def test_bench_refuses_more_designs_than_boards(capsys):
    rc = main(["bench", "--model", str(M640), "--frames", "2", "--boards", "2", "--designs", "3", "--json"])
    assert rc == 2 and "--designs 3: must be between 1 and --boards (2)" in capsys.readouterr().err


def test_bench_reports_a_bad_model_as_one_line(tmp_path, capsys):
    bad = tmp_path / "m.tflite"
    bad.write_bytes(b"nope")
    rc = main(["bench", "--model", str(bad), "--frames", "2", "--boards", "2", "--warmup", "0", "--json"])
    err = capsys.readouterr().err
    assert rc == 2 and "m.json: model sidecar not found" in err


@pytest.mark.slow
def test_bench_prints_the_litert_and_the_onnx_package_side_by_side(capsys):
    pytest.importorskip("onnxruntime")
    from inspector.config import REPO_ROOT

    lite, onnx = REPO_ROOT / "models" / "pcb-defect-det.tflite", REPO_ROOT / "models" / "pcb-defect-det-onnx.onnx"
    args = ["bench", "--model", str(lite), "--model", str(onnx), "--frames", "2", "--boards", "2", "--warmup", "1"]
    rc = main([*args, "--delegate", "cpu", "--code", "none"])
    out = capsys.readouterr().out
    assert rc == 0, out
    rows = {line.split("  ")[0]: line for line in out.splitlines()}
    assert "CPU XNNPACK x2" in rows["backend"] and "CPU (ONNX Runtime x2)" in rows["backend"]
    assert "pcb-defect-det@" in out and "pcb-defect-det-onnx@" in out
    assert "cores; vectors" in rows["cpu"] and "INT8 dot product:" in rows["cpu"]
    cells = rows["invoke p50 ms"].split()[3:]
    assert len(cells) == 2 and all(float(c) > 0 for c in cells)


def test_bench_times_camera_frames_through_registration_and_preparation(capsys):
    """`--camera colour`: the boards and their reference are colour camera renderings, so every board is
    registered and prepared as on a line (the binary synthetic boards skip the preparation); all are inspected."""
    shipped = Path(__file__).resolve().parents[2] / "models" / "pcb-defect-det.tflite"
    rc = main(
        ["bench", "--model", str(shipped), "--frames", "4", "--boards", "3", "--warmup", "1", "--camera", "colour",
         "--delegate", "cpu", "--json"]
    )  # fmt: skip
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["camera"] == "colour" and out["frames"] == 4 and out["failed"] == 0
    assert {"register_p50_ms", "prepare_p50_ms"} <= set(out)
    assert out["scales"] == [1.0, 0.8] and out["sized_inputs"] == [[512, 512]]  # the 0.8 pass on its own graph


def test_bench_times_the_passes_the_station_is_set_to(capsys):
    """`--passes mirror`: the shipped package without its reduced pass (no 512 px graph built), said in the JSON."""
    shipped = Path(__file__).resolve().parents[2] / "models" / "pcb-defect-det.tflite"
    args = ["bench", "--model", str(shipped), "--frames", "3", "--boards", "2", "--warmup", "1", "--delegate", "cpu"]
    rc = main([*args, "--passes", "mirror", "--code", "none", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0 and out["failed"] == 0 and out["passes"] == "mirror"
    assert out["tta"] == "hflip" and out["scales"] == [1.0] and out["sized_inputs"] == []
