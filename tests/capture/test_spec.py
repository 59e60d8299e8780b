"""`--camera SPEC` parsing: each form gives the config model a station file would hold."""

from __future__ import annotations

from pathlib import Path

import pytest

from inspector.capture.spec import parse_camera_spec
from inspector.config import AravisCamera, GenicamCamera, OpenCVCamera, ReplayCamera


def test_replay_forms():
    m = parse_camera_spec("replay:boards/day1")
    assert isinstance(m, ReplayCamera) and m.path == Path("boards/day1") and m.fps == 4.0
    assert parse_camera_spec("replay:boards@10fps").fps == 10.0
    assert parse_camera_spec("replay:clip.mp4@2.5FPS").fps == 2.5
    assert parse_camera_spec("replay:boards@max").fps is None
    assert parse_camera_spec("replay:boards@trigger").trigger == "software"
    assert parse_camera_spec("replay:demo").path is None


def test_aravis_forms():
    m = parse_camera_spec("aravis:127.0.0.1")
    assert isinstance(m, AravisCamera) and m.address == "127.0.0.1" and m.device_id is None
    m = parse_camera_spec("aravis:Fake_1")
    assert m.device_id == "Fake_1" and m.address is None
    m = parse_camera_spec("aravis:Basler-21234567")
    assert m.device_id == "Basler-21234567"
    assert parse_camera_spec("aravis:192.168.10.20@BayerRG8").pixel_format == "BayerRG8"


def test_opencv_and_genicam_forms():
    assert parse_camera_spec("opencv:0").source == 0
    m = parse_camera_spec("opencv:rtsp://user:pw@10.0.0.9:554/stream1")
    assert isinstance(m, OpenCVCamera) and m.source == "rtsp://user:pw@10.0.0.9:554/stream1"
    gst = "opencv:v4l2src device=/dev/video0 ! videoconvert ! appsink"
    assert parse_camera_spec(gst).source == gst.removeprefix("opencv:")
    m = parse_camera_spec("genicam:/opt/vendor/lib/producer.cti")
    assert isinstance(m, GenicamCamera) and m.cti == Path("/opt/vendor/lib/producer.cti") and m.serial is None
    assert parse_camera_spec("genicam:/opt/p.cti@SN123").serial == "SN123"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("", "empty camera spec"),
        ("127.0.0.1", "missing KIND: prefix"),
        ("usb:0", "unknown camera kind 'usb'"),
        ("replay:", "replay needs a folder"),
        ("replay:boards@fast10", "rate 'fast10' is not NUMBERfps"),
        ("replay:boards@0fps", "fps: 0.0 is not above 0"),
        ("aravis:", "aravis needs a camera IP address"),
        ("aravis:300.1.2.3", "'300.1.2.3' is not a valid IPv4 address"),
        ("aravis:::1", "GigE Vision cameras have IPv4 addresses"),
        ("aravis:my camera", "neither an IP address nor an Aravis device id"),
        ("aravis:127.0.0.1@Mono32", "pixel_format: 'Mono32' is not one of"),
        ("opencv:", "opencv needs a device index"),
        ("opencv:-1", "device index -1 is negative"),
        ("genicam:", "genicam needs the GenTL producer"),
        ("genicam:/opt/producer.so", "is not a GenTL producer (.cti file)"),
    ],
)
def test_bad_specs_say_what_is_wrong(spec, message):
    with pytest.raises(ValueError) as exc:
        parse_camera_spec(spec)
    assert message in str(exc.value)
    if spec:
        assert f"--camera {spec!r}" in str(exc.value)


def test_cli_override_reaches_the_station_config(tmp_path):
    import argparse

    from inspector.cli import CommandError
    from inspector.commands.common import station_config

    cfg = station_config(argparse.Namespace(config=None, camera="aravis:10.1.2.3", plc=None))
    assert isinstance(cfg.camera, AravisCamera) and cfg.camera.address == "10.1.2.3"
    with pytest.raises(CommandError, match="unknown camera kind"):
        station_config(argparse.Namespace(config=None, camera="webcam:0", plc=None))
