"""Lens undistortion for the capture path: maps computed once, one remap per frame.

Why once: `cv2.undistort` rebuilds the maps on every call (tens of ms at 5 MP); `initUndistortRectifyMap`
with fixed-point maps is done at start-up and `remap` then costs a few ms per frame.
`UndistortingCamera` wraps any `inspector.capture.base.Camera`, so the capture thread (which owns
the camera) gets straight images without the pipeline knowing about calibration.
"""

from __future__ import annotations

import cv2
import numpy as np

from inspector.capture.base import Camera, CameraError, CameraInfo, Grab

from .errors import CalibrationError


class Undistorter:
    def __init__(
        self,
        camera_matrix: np.ndarray,
        dist_coeffs: np.ndarray,
        image_size: tuple[int, int],
        *,
        alpha: float | None = None,
    ):
        """`alpha` None keeps the camera matrix (same scale, centre pixels unchanged, corners may be
        empty); 0..1 is OpenCV's free-scaling (0: only valid pixels, 1: all source pixels)."""
        self.camera_matrix = np.asarray(camera_matrix, np.float64).reshape(3, 3)
        self.dist_coeffs = np.asarray(dist_coeffs, np.float64).reshape(-1)
        self.image_size = (int(image_size[0]), int(image_size[1]))
        if alpha is None:
            self.new_camera_matrix = self.camera_matrix.copy()
        else:
            self.new_camera_matrix, _ = cv2.getOptimalNewCameraMatrix(
                self.camera_matrix, self.dist_coeffs, self.image_size, alpha, self.image_size
            )
        self.map1, self.map2 = cv2.initUndistortRectifyMap(
            self.camera_matrix, self.dist_coeffs, None, self.new_camera_matrix, self.image_size, cv2.CV_16SC2
        )

    def apply(self, image: np.ndarray) -> np.ndarray:
        """The undistorted image (same size and type); raises CalibrationError on a size mismatch."""
        h, w = image.shape[:2]
        if (w, h) != self.image_size:
            raise CalibrationError(
                f"frame is {w}x{h} but the intrinsics were calibrated at {self.image_size[0]}x{self.image_size[1]}; "
                "recalibrate after changing the camera's resolution or ROI"
            )
        return cv2.remap(image, self.map1, self.map2, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)

    def undistort_points(self, points: np.ndarray) -> np.ndarray:
        """Pixel positions in the undistorted image for points seen in the raw image."""
        pts = np.asarray(points, np.float64).reshape(-1, 1, 2)
        out = cv2.undistortPoints(
            pts,
            self.camera_matrix,
            self.dist_coeffs,
            P=self.new_camera_matrix,
            criteria=(cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 40, 1e-9),
        )
        return out.reshape(-1, 2)

    @classmethod
    def from_json(cls, data: dict, alpha: float | None = None) -> Undistorter:
        from .intrinsics import IntrinsicsResult

        r = IntrinsicsResult.from_json(data)
        return cls(r.camera_matrix, r.dist_coeffs, r.image_size, alpha=alpha)


class UndistortingCamera(Camera):
    """A camera whose frames come out undistorted; everything else passes through to the wrapped one."""

    def __init__(self, camera: Camera, undistorter: Undistorter):
        self.inner = camera
        self.undistorter = undistorter
        self.triggered = camera.triggered
        self.fired_by_wire = camera.fired_by_wire

    def open(self) -> CameraInfo:
        """The wrapped camera, refused (CameraError: NOT READY, both sizes named, retried) when its frames are not the
        size the active intrinsics were calibrated at. Checked at each frame only, the station turned READY at open,
        rejected the board, reconnected and turned READY again, board after board."""
        info = self.inner.open()
        want = tuple(int(v) for v in self.undistorter.image_size)
        got = (int(info.width or 0), int(info.height or 0))
        if all(got) and got != want:
            self.inner.close()
            raise CameraError(
                f"the camera delivers {got[0]}x{got[1]} frames but the active intrinsics were calibrated at "
                f"{want[0]}x{want[1]}: calibrate the lens again at this resolution, or set camera.roi back"
            )
        return info

    def close(self) -> None:
        self.inner.close()

    def grab(self, timeout_s: float) -> Grab:
        g = self.inner.grab(timeout_s)
        try:
            image = self.undistorter.apply(g.image)
        except CalibrationError as exc:  # the capture thread handles camera errors (NOT READY + reason)
            raise CameraError(str(exc)) from None
        return Grab(image, {**g.meta, "undistorted": True})

    def trigger(self) -> None:
        self.inner.trigger()

    def flush(self) -> None:
        self.inner.flush()

    def check(self) -> None:
        """The wrapped camera's idle check: without it a camera lost between boards went unnoticed until the next
        board was rejected, the station READY meanwhile."""
        self.inner.check()

    @property
    def nominal_fps(self) -> float | None:
        return self.inner.nominal_fps

    @property
    def description(self) -> str:
        return f"{self.inner.description} (undistorted)"
