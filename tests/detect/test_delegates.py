"""Delegate loading against real shared libraries: missing, not a delegate, a null plugin.

Each failure must be caught, the CPU must take over, and the backend string must say what runs
and why (that string is what the health panel and the UI show).
"""

from __future__ import annotations

import logging
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from inspector.config import DetectorSection, ExternalDelegate, parse_config
from inspector.detect.delegates import candidates, fallback_note, try_load
from inspector.detect.factory import create_detector
from inspector.detect.litert import LiteRTDetector
from inspector.synth import make_board

from .conftest import M320

NULL_PLUGIN_C = r"""
#include <stddef.h>
typedef void (*report_fn)(const char*);
void* tflite_plugin_create_delegate(char** keys, char** values, size_t n, report_fn report) {
    if (report) report("test plugin refuses on purpose");
    return NULL;
}
void tflite_plugin_destroy_delegate(void* d) {}
"""
NOT_A_DELEGATE_C = "int pcb_inspector_test_symbol(void) { return 42; }\n"


def _compile(tmp_path: Path, name: str, source: str) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (packaging/apt-test.txt lists it)")
    src = tmp_path / f"{name}.c"
    src.write_text(source)
    lib = tmp_path / f"lib{name}.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, capture_output=True)
    return lib


@pytest.fixture(scope="module")
def board():
    b = make_board(21)
    return b.image, b.reference


def _runs(det: LiteRTDetector, board) -> None:
    det.warm_up(1)
    det.detect(*board)
    assert det.last_timings["invoke"] > 0


def test_cpu_backend_names_threads(board):
    det = LiteRTDetector(M320, delegate="cpu", threads=2)
    assert det.load().backend == "CPU XNNPACK x2"
    _runs(det, board)


def test_missing_library_falls_back_to_cpu(board, caplog):
    caplog.set_level(logging.WARNING)
    det = LiteRTDetector(M320, delegate=ExternalDelegate(library="libvx_delegate.so", label="NPU (vx)"), threads=2)
    assert det.load().backend == "CPU XNNPACK x2 (fallback: libvx_delegate.so not found)"
    assert "OSError" in caplog.text and "libvx_delegate.so" in caplog.text
    _runs(det, board)


def test_library_that_is_not_a_delegate(tmp_path, board, caplog):
    caplog.set_level(logging.WARNING)
    lib = _compile(tmp_path, "notadelegate", NOT_A_DELEGATE_C)
    det = LiteRTDetector(M320, delegate=ExternalDelegate(library=str(lib)), threads=1)
    assert det.load().backend == f"CPU XNNPACK x1 (fallback: {lib} not a delegate)"
    assert "AttributeError" in caplog.text
    _runs(det, board)


def test_system_library_without_delegate_symbols(board):
    """libm is on every Linux system and has no tflite_plugin_create_delegate."""
    det = LiteRTDetector(M320, delegate=ExternalDelegate(library="libm.so.6"), threads=1)
    assert det.load().backend == "CPU XNNPACK x1 (fallback: libm.so.6 not a delegate)"
    _runs(det, board)


def test_null_plugin_is_a_value_error(tmp_path, board, caplog):
    caplog.set_level(logging.WARNING)
    lib = _compile(tmp_path, "nullplugin", NULL_PLUGIN_C)
    det = LiteRTDetector(M320, delegate=ExternalDelegate(library=str(lib), options={"k": 1}), threads=1)
    backend = det.load().backend
    assert backend.startswith("CPU XNNPACK x1 (fallback: ") and "refused: test plugin refuses on purpose" in backend
    assert "ValueError" in caplog.text
    _runs(det, board)


def test_auto_tries_the_list_in_order_then_cpu(tmp_path, board):
    lib = _compile(tmp_path, "notadelegate", NOT_A_DELEGATE_C)
    auto = [ExternalDelegate(library="libvx_delegate.so"), ExternalDelegate(library=str(lib))]
    det = LiteRTDetector(M320, delegate="auto", auto_delegates=auto, threads=2)
    assert det.load().backend == f"CPU XNNPACK x2 (fallback: libvx_delegate.so not found; {lib} not a delegate)"
    assert [a.library for a in det.backend.attempts] == ["libvx_delegate.so", str(lib)]
    _runs(det, board)


def test_default_auto_list_on_a_machine_without_accelerators(board):
    det = create_detector(DetectorSection(model=M320, threads=2))
    backend = det.load().backend
    assert backend == (
        "CPU XNNPACK x2 (fallback: none of libvx_delegate.so, libedgetpu.so.1, libarmnnDelegate.so found)"
    )
    _runs(det, board)


def test_delegate_from_toml_config_reaches_the_loader():
    cfg = parse_config(
        {
            "detector": {
                "model": str(M320),
                "delegate": {"library": "libarmnnDelegate.so", "options": {"backends": "GpuAcc,CpuAcc"}},
            }
        }
    )
    seen = []

    def loader(library, options):
        seen.append((library, options))
        raise OSError(f"{library}: cannot open shared object file: No such file or directory")

    cands = candidates(cfg.detector.delegate, cfg.detector.auto_delegates)
    assert [c.library for c in cands] == ["libarmnnDelegate.so"]
    d, attempt = try_load(cands[0], loader)
    assert d is None and attempt.reason == "not found"
    assert seen == [("libarmnnDelegate.so", {"backends": "GpuAcc,CpuAcc"})]
    assert candidates("cpu", cfg.detector.auto_delegates) == []
    assert fallback_note([attempt]) == " (fallback: libarmnnDelegate.so not found)"


def test_delegate_that_loads_but_rejects_the_graph_falls_back(board):
    """A loader returning something the interpreter cannot use: caught, CPU runs, reason shown."""
    det = LiteRTDetector(
        M320,
        delegate=ExternalDelegate(library="libfake.so"),
        threads=1,
        runtime_hooks={"delegate_loader": lambda lib, opts: object()},
    )
    assert det.load().backend == "CPU XNNPACK x1 (fallback: libfake.so refused the graph)"
    assert np.isfinite(det.warm_up(1))
