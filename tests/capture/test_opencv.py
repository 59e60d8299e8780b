"""OpenCVCameraSource on a video file and on an HTTP stream served from 127.0.0.1.

There is no USB camera on a test machine; a file and a local HTTP server exercise the same
VideoCapture paths (FFmpeg backend, open/read timeouts, end of stream) that a network camera uses.
"""

from __future__ import annotations

import functools
import http.server
import threading

import cv2
import numpy as np
import pytest

from inspector.capture.base import CameraError, FrameTimeout
from inspector.capture.opencv import OpenCVCameraSource
from inspector.config import OpenCVCamera


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """Ten 160x120 frames whose brightness encodes the frame number (MJPG keeps flat areas exact enough)."""
    folder = tmp_path_factory.mktemp("clip")
    path = folder / "clip.avi"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10, (160, 120))
    assert w.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(10):
        w.write(np.full((120, 160, 3), 10 + i * 20, np.uint8))
    w.release()
    return path


@pytest.fixture
def http_server(clip):
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    handler.log_message = lambda *a, **k: None
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{srv.server_address[1]}"
    srv.shutdown()
    srv.server_close()
    t.join(5)


def read_all(cam: OpenCVCameraSource) -> list[np.ndarray]:
    images = []
    with pytest.raises(FrameTimeout):
        while True:
            images.append(cam.grab(1.0).image)
    return images


def test_video_file_in_order_then_end_of_stream(clip):
    cam = OpenCVCameraSource(OpenCVCamera(source=str(clip)))
    info = cam.open()
    try:
        assert (info.width, info.height, info.pixel_format) == (160, 120, "BGR8") and info.extra["kind"] == "file"
        images = read_all(cam)
    finally:
        cam.close()
    assert len(images) == 10
    levels = [int(round(img.mean())) for img in images]
    assert all(abs(lv - (10 + i * 20)) <= 3 for i, lv in enumerate(levels)), levels
    assert all(img.flags.writeable and img.dtype == np.uint8 for img in images)


def test_http_stream_and_unreachable_url(http_server):
    cam = OpenCVCameraSource(OpenCVCamera(source=f"{http_server}/clip.avi", timeout_s=2))
    info = cam.open()
    try:
        assert info.extra["kind"] == "url" and (info.width, info.height) == (160, 120)
        assert len(read_all(cam)) == 10
    finally:
        cam.close()
    with pytest.raises(CameraError, match=r"opencv:http://127.0.0.1:\d+/missing.avi: cannot open \(url\)"):
        OpenCVCameraSource(OpenCVCamera(source=f"{http_server}/missing.avi", timeout_s=1)).open()


def test_credentials_are_not_printed_and_gstreamer_is_checked():
    cam = OpenCVCameraSource(OpenCVCamera(source="rtsp://admin:secret@10.0.0.9/stream"))
    assert cam.description == "opencv:rtsp://admin:***@10.0.0.9/stream"
    gst = OpenCVCameraSource(OpenCVCamera(source="videotestsrc num-buffers=3 ! videoconvert ! appsink"))
    from inspector.capture.opencv import _has_gstreamer

    if _has_gstreamer():
        info = gst.open()
        assert info.extra["kind"] == "gstreamer"
        gst.close()
    else:
        with pytest.raises(CameraError, match="no GStreamer support"):
            gst.open()
