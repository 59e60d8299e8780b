"""What the backend string and the health lamp say is what really runs the graph.

Real LiteRT throughout: XNNPACK's DELEGATE kernels on the CPU are not an accelerator; a real
delegate plugin (compiled here) that loads but takes no node is not used and is reported; a missing
delegate with `detector.require_accelerator` turns the model lamp red with the reason, and without
it the model runs on the CPU behind an amber lamp and a metric.
"""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from inspector.capture.replay import ReplayCameraSource
from inspector.config import DetectorSection, ExternalDelegate, Recipe, ReplayCamera
from inspector.decision import RecipeRules
from inspector.detect.base import ModelError
from inspector.detect.factory import create_detector
from inspector.detect.litert import LiteRTDetector
from inspector.health import Health
from inspector.pipeline import Pipeline
from inspector.synth import make_board

from .conftest import M320

#: A delegate plugin that LiteRT loads and asks to take nodes; its Prepare claims none.
NOOP_DELEGATE_C = r"""
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
typedef struct TfLiteDelegate {
  void* data_;
  int (*Prepare)(void* context, struct TfLiteDelegate* delegate);
  void* CopyFromBufferHandle;
  void* CopyToBufferHandle;
  void* FreeBufferHandle;
  int64_t flags;
  void* opaque_delegate_builder;
} TfLiteDelegate;
static int prepare(void* context, TfLiteDelegate* d) { return 0; }
void* tflite_plugin_create_delegate(char** keys, char** values, size_t n, void (*report)(const char*)) {
  TfLiteDelegate* d = calloc(1, sizeof(TfLiteDelegate));
  d->Prepare = prepare;
  return d;
}
void tflite_plugin_destroy_delegate(void* d) { free(d); }
"""


@pytest.fixture(scope="module")
def noop_delegate(tmp_path_factory) -> Path:
    if shutil.which("gcc") is None:
        pytest.skip("gcc is not installed (packaging/apt-test.txt lists it)")
    folder = tmp_path_factory.mktemp("noop")
    src = folder / "noop.c"
    src.write_text(NOOP_DELEGATE_C)
    lib = folder / "libnoopdelegate.so"
    subprocess.run(["gcc", "-shared", "-fPIC", "-o", str(lib), str(src)], check=True, capture_output=True)
    return lib


def test_xnnpack_alone_is_not_an_accelerator():
    det = LiteRTDetector(M320, delegate="cpu", threads=1)
    info = det.load()
    b = det.backend
    # XNNPACK really took nodes (DELEGATE kernels in the graph) ...
    assert b.graph_nodes > 0 and 0 < b.cpu_delegate_nodes <= b.graph_nodes
    # ... and none of them count as accelerated, nor is anything amber: no accelerator was asked for.
    assert b.accelerator_nodes == 0 and not b.accelerated and not info.accelerated
    assert not b.cpu_fallback and info.warning == ""
    assert info.backend == "CPU XNNPACK x1"


def test_delegate_that_takes_no_node_is_not_used_and_said(noop_delegate, caplog):
    caplog.set_level(logging.WARNING)
    det = LiteRTDetector(M320, delegate=ExternalDelegate(library=str(noop_delegate), label="NPU (noop)"), threads=1)
    info = det.load()
    total = det.backend.graph_nodes
    assert total > 0
    assert info.backend == f"CPU XNNPACK x1 (fallback: {noop_delegate} took none of the {total} nodes)"
    assert "took none of the" in caplog.text and "NPU (noop)" in caplog.text
    assert not info.accelerated and info.warning.startswith("CPU fallback: ")
    b = make_board(5)
    det.detect(b.image, b.reference)  # the CPU runs it: with XNNPACK, not the builtin kernels the delegate left
    assert det.backend.cpu_delegate_nodes > 0


def test_require_accelerator_refuses_a_delegate_that_takes_nothing(noop_delegate):
    det = LiteRTDetector(
        M320, delegate=ExternalDelegate(library=str(noop_delegate)), threads=1, require_accelerator=True
    )
    with pytest.raises(ModelError, match="require_accelerator") as e:
        det.load()
    assert "took none of the" in str(e.value)


def _model_state(health: Health, timeout: float = 60.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = health.get("model")
        if s is not None and s.reason not in ("loading", "starting"):
            return s
        time.sleep(0.05)
    raise AssertionError(f"model lamp never settled: {health.get('model')}")


def _pipeline(demo_boards, detector, health):
    cam = ReplayCameraSource(ReplayCamera(path=demo_boards, fps=None, loop=True, trigger="software"))
    return Pipeline(cam, detector, RecipeRules(Recipe()), health, [], triggered=True, keep_images=False)


def test_missing_delegate_with_require_accelerator_is_not_ready(demo_boards):
    section = DetectorSection(
        model=M320, delegate=ExternalDelegate(library="libvx_delegate.so", label="NPU (vx)"), require_accelerator=True
    )
    health = Health()
    p = _pipeline(demo_boards, create_detector(section), health)
    p.start()
    try:
        s = _model_state(health)
    finally:
        p.stop()
    assert not s.ok and not health.ready
    assert "require_accelerator" in s.reason and "libvx_delegate.so not found" in s.reason
    assert "NOT READY" in health.summary() and "require_accelerator" in health.summary()


def test_missing_delegate_without_requirement_runs_on_the_cpu_behind_an_amber_lamp(demo_boards):
    section = DetectorSection(model=M320, delegate=ExternalDelegate(library="libvx_delegate.so", label="NPU (vx)"))
    health = Health()
    p = _pipeline(demo_boards, create_detector(section), health)
    p.start()
    try:
        s = _model_state(health)
        from prometheus_client import generate_latest

        from inspector.metrics import StationMetrics

        scrape = generate_latest(StationMetrics("st-1", health, p).registry).decode()
    finally:
        p.stop()
    assert s.ok  # the line keeps running ...
    assert s.warning == "CPU fallback: libvx_delegate.so not found"  # ... and says it is not as configured
    assert s.detail == "CPU XNNPACK x2 (fallback: libvx_delegate.so not found)"
    assert 'pcb_model_cpu_fallback{station="st-1"} 1.0' in scrape
    assert 'pcb_accelerator_present{station="st-1"} 0.0' in scrape
