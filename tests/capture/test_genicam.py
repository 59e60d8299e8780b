"""GenicamCameraSource through harvesters with the simulated GenTL producer the `genicam` wheel ships.

The producer (`genicam/viky.cti`, "Viky" by Machine Vision Games) simulates three cameras in process,
with no network. It has PixelFormat (RGBa8, Mono8), Width/Height and AcquisitionFrameRate, but no
trigger nodes, so the trigger tests here check the refusal; software triggering is covered with Aravis.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from inspector.capture.base import CameraError
from inspector.capture.genicam import GenicamCameraSource
from inspector.config import GenicamCamera


@pytest.fixture(scope="module")
def viky() -> Path:
    try:
        import genicam
        import harvesters  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"harvesters/genicam wheels not installed ({exc}); `pip install '.[genicam]'`")
    cti = Path(genicam.__file__).parent / "viky.cti"
    if not cti.is_file():
        pytest.skip(f"the genicam wheel for this platform ships no simulated producer at {cti}")
    return cti


@pytest.mark.parametrize(("fmt", "shape"), [("Mono8", (400, 400)), ("RGBa8", (400, 400, 3))])
def test_frames_from_the_simulated_producer(viky, fmt, shape):
    cam = GenicamCameraSource(GenicamCamera(cti=viky, serial="1", pixel_format=fmt, fps=20))
    info = cam.open()
    try:
        assert info.serial == "1" and info.pixel_format == fmt and (info.width, info.height) == (400, 400)
        grabs = [cam.grab(2.0) for _ in range(4)]
    finally:
        cam.close()
    ids = [g.meta["device_frame_id"] for g in grabs]
    assert ids == list(range(ids[0], ids[0] + 4)) and all(g.meta["dropped_before"] == 0 for g in grabs)
    for g in grabs:
        assert g.image.shape == shape and g.image.dtype == np.uint8
        assert g.image.flags.writeable and g.image.base is None  # copied out before the buffer was queued
    assert any(g.image.any() for g in grabs), "the simulated camera's picture came through empty"


def test_reopen_and_errors_are_named(viky):
    cam = GenicamCameraSource(GenicamCamera(cti=viky, serial="2"))
    cam.open()
    cam.grab(2.0)
    cam.close()
    cam.open()  # the supervisor's reinitialisation path: close, then open again
    cam.grab(2.0)
    cam.close()
    with pytest.raises(CameraError, match=r"no camera with serial 'X9' .* \(found 0, 1, 2\)"):
        GenicamCameraSource(GenicamCamera(cti=viky, serial="X9")).open()
    with pytest.raises(CameraError, match="has no TriggerMode node; camera.trigger must be free_run"):
        GenicamCameraSource(GenicamCamera(cti=viky, trigger="software")).open()
    with pytest.raises(CameraError, match="pixel format Mono16 not offered"):
        GenicamCameraSource(GenicamCamera(cti=viky, pixel_format="Mono16")).open()
    with pytest.raises(CameraError, match="does not exist"):
        GenicamCameraSource(GenicamCamera(cti=viky.with_name("missing.cti"))).open()


def test_pipeline_runs_on_the_genicam_backend(viky):
    from capture_helpers import NoDefectDetector, TimedSink, wait_for

    from inspector.config import Recipe
    from inspector.decision import RecipeRules
    from inspector.health import Health
    from inspector.pipeline import Pipeline

    health = Health()
    sink = TimedSink()
    cam = GenicamCameraSource(GenicamCamera(cti=viky, serial="0", pixel_format="Mono8", fps=20))
    p = Pipeline(cam, NoDefectDetector(), RecipeRules(Recipe()), health, [sink], frame_timeout_s=2.0)
    p.start()
    try:
        assert wait_for(lambda: len(sink.results()) >= 5, 20), health.summary()
        assert health.get("camera").ok and "400x400 Mono8" in health.get("camera").detail
    finally:
        p.stop()
    results = sink.results()
    assert all(r.frame_meta["source"].endswith("viky.cti@0") for r in results)
    assert p.counters.frames >= len(results) and p.counters.incomplete == 0
