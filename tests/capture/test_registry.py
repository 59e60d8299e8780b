"""The camera registry: one module plus one registry line gives a camera type everywhere.

The new camera below lives in a file of the test's own, outside the package; the only other change
is the registry line. A station file with `[camera] type = "pattern"`, `--camera pattern:...` and
`create_camera` then all know it, and the camera it builds serves frames.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from inspector.capture.registry import CAMERA_MODULES, camera_backends, camera_configs
from inspector.config import StationConfig

PATTERN_CAMERA = '''
"""A camera that serves one generated board image per grab (the test's own backend)."""
from __future__ import annotations
import time
from typing import Literal
import numpy as np
from pydantic import Field
from inspector.capture.base import Camera, CameraInfo, Grab
from inspector.config_base import Section, TriggerMode


class PatternCamera(Section):
    type: Literal["pattern"] = Field("pattern", description="Generated test pattern.")
    size: int = Field(64, ge=8, le=4096, description="Square image side, px.")
    trigger: TriggerMode = Field("free_run", description="free_run or software.")


class PatternSource(Camera):
    def __init__(self, cfg: PatternCamera):
        self.cfg = cfg
        self.seq = 0

    def open(self) -> CameraInfo:
        return CameraInfo(model="pattern", serial="1", width=self.cfg.size, height=self.cfg.size, pixel_format="Mono8")

    def close(self) -> None:
        pass

    def grab(self, timeout_s: float) -> Grab:
        time.sleep(0.01)
        self.seq += 1
        return Grab(image=np.full((self.cfg.size, self.cfg.size), 128, np.uint8), meta={"seq": self.seq})


def create(cfg: PatternCamera) -> Camera:
    return PatternSource(cfg)


def parse_spec(spec: str, rest: str) -> PatternCamera:
    from inspector.capture.spec import build_spec
    return build_spec(spec, PatternCamera, {"type": "pattern", "size": int(rest or 64)})


CONFIG = PatternCamera
'''


def test_every_registered_camera_owns_its_config_create_and_spec():
    assert list(camera_backends()) == list(CAMERA_MODULES) == ["replay", "aravis", "opencv", "genicam"]
    for name, backend in camera_backends().items():
        assert backend.config.model_fields["type"].default == name
        assert backend.config is camera_configs()[name]
        assert backend.parse_spec is not None
    # The [camera] union is the registry's classes, nothing typed by hand.
    assert set(StationConfig.model_fields["camera"].annotation.__args__) == set(camera_configs().values())


def test_a_new_camera_is_one_module_and_one_registry_line(tmp_path: Path):
    (tmp_path / "pattern_camera.py").write_text(PATTERN_CAMERA)
    station = tmp_path / "station.toml"
    station.write_text('[camera]\ntype = "pattern"\nsize = 96\n[detector]\ntype = "classical"\n[plc]\nmode = "off"\n')
    script = textwrap.dedent(
        f"""
        import json, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from inspector.capture import registry
        registry.CAMERA_MODULES["pattern"] = "pattern_camera"   # the one registry line
        from inspector.config import ConfigError, load_config
        from inspector.capture import create_camera
        from inspector.capture.spec import parse_camera_spec
        cfg = load_config({str(station)!r})
        cam = create_camera(cfg)
        info = cam.open()
        grab = cam.grab(1.0)
        spec = parse_camera_spec("pattern:32")
        try:
            load_config_err = None
            from inspector.config import parse_config
            parse_config({{"camera": {{"type": "pattern", "size": 2}}}})
        except ConfigError as exc:
            load_config_err = str(exc)
        try:
            parse_camera_spec("nosuch:1")
        except ValueError as exc:
            unknown = str(exc)
        print(json.dumps({{"type": cfg.camera.type, "size": cfg.camera.size, "width": info.width,
                          "shape": list(grab.image.shape), "spec": spec.size, "bad": load_config_err,
                          "unknown": unknown}}))
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["type"] == "pattern" and got["size"] == 96 and got["width"] == 96 and got["shape"] == [96, 96]
    assert got["spec"] == 32
    assert "camera.size: 2 is below 8" in got["bad"]
    assert "expected one of replay, aravis, opencv, genicam, pattern" in got["unknown"]
