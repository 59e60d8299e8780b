"""Checks the image's OpenCV against what the station calls; scripts/build_image.sh runs it in the image.

The image carries an OpenCV built with only some modules (packaging/Dockerfile, opencv stage), so a call
the station makes can be missing there while every test on a development machine (full PyPI wheel)
passes. Two checks:
1. every `cv2.NAME` written in the installed inspector, plc and calibration packages exists in this cv2
   (a name of a module left out of the build, e.g. cv2.aruco without objdetect, fails here);
2. the calls the station makes run on small synthetic images: codecs, filters, warps, registration
   (ECC, ORB), calibration (chessboard, ChArUco, calibrateCamera) and the MJPEG .avi replay path.
It prints a few timings (ms per call, to compare with the PyPI wheel) and exits non-zero on any failure.

    python packaging/cv2_check.py          (any environment with the station installed)
"""

from __future__ import annotations

import importlib.util
import re
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

FAILED: list[str] = []


def check(name: str, fn) -> None:
    try:
        fn()
    except Exception as exc:  # noqa: BLE001 - every failure is reported, then the exit code says it
        FAILED.append(f"{name}: {type(exc).__name__}: {exc}")


def names_the_station_uses() -> set[str]:
    found: set[str] = set()
    for pkg in ("inspector", "plc", "calibration"):
        spec = importlib.util.find_spec(pkg)
        if spec is None or not spec.submodule_search_locations:
            FAILED.append(f"package {pkg} is not installed")
            continue
        for root in spec.submodule_search_locations:
            for path in Path(root).rglob("*.py"):
                found |= set(re.findall(r"\bcv2\.([A-Za-z_][A-Za-z0-9_]*)", path.read_text(encoding="utf-8")))
    return found


def board(h: int = 480, w: int = 640) -> np.ndarray:
    rng = np.random.default_rng(1)
    img = np.full((h, w, 3), 40, np.uint8)
    for _ in range(60):
        x, y = int(rng.integers(20, w - 60)), int(rng.integers(20, h - 60))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(8, 40)), y + int(rng.integers(8, 40))), (200, 180, 90), -1)
        cv2.circle(img, (x + 5, y + 5), 4, (20, 220, 220), -1)
    cv2.putText(img, "PCB-01", (30, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2, cv2.LINE_8)
    return cv2.GaussianBlur(img, (3, 3), 0)


def codecs(tmp: Path) -> None:
    img = board()
    for ext, params in (
        (".jpg", [cv2.IMWRITE_JPEG_QUALITY, 90]),
        (".png", [cv2.IMWRITE_PNG_COMPRESSION, 3]),
        (".tif", []),
        (".bmp", []),
    ):
        ok, buf = cv2.imencode(ext, img, params)
        assert ok, ext
        back = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
        assert back is not None and back.shape == img.shape, ext
        path = tmp / f"b{ext}"
        assert cv2.imwrite(str(path), img, params), ext
        assert cv2.imread(str(path), cv2.IMREAD_GRAYSCALE).shape == img.shape[:2], ext
        assert cv2.imread(str(path), cv2.IMREAD_COLOR).shape == img.shape, ext


def image_ops() -> None:
    img = board()
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    bgra = cv2.merge([*cv2.split(img), np.full(gray.shape, 255, np.uint8)])
    assert cv2.cvtColor(bgra, cv2.COLOR_BGRA2GRAY).shape == gray.shape
    assert cv2.cvtColor(bgra, cv2.COLOR_BGRA2BGR).shape == img.shape
    for code in (cv2.COLOR_BayerRGGB2BGR, cv2.COLOR_BayerGRBG2BGR, cv2.COLOR_BayerGBRG2BGR, cv2.COLOR_BayerBGGR2BGR):
        assert cv2.cvtColor(gray, code).shape == img.shape
    cv2.resize(img, (320, 240), interpolation=cv2.INTER_AREA)
    cv2.resize(img, None, fx=1.5, fy=1.5, interpolation=cv2.INTER_LINEAR)
    cv2.resize(gray, (100, 100), interpolation=cv2.INTER_NEAREST)
    m = cv2.getRotationMatrix2D((320, 240), 3.0, 1.0)
    cv2.warpAffine(img, m, (640, 480), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    h = np.array([[1, 0.01, 3], [0.002, 1, -2], [1e-5, 0, 1]], np.float64)
    cv2.warpPerspective(img, h, (640, 480), borderMode=cv2.BORDER_CONSTANT)
    pts = cv2.perspectiveTransform(np.float32([[[10, 10]], [[100, 50]]]), h)
    assert pts.shape == (2, 1, 2)
    gx = cv2.Sobel(gray, cv2.CV_32F, 1, 0, ksize=3, borderType=cv2.BORDER_REFLECT)
    gy = cv2.Sobel(gray, cv2.CV_32F, 0, 1, ksize=3)
    cv2.magnitude(gx, gy)
    cv2.convertScaleAbs(cv2.Laplacian(gray, cv2.CV_16S))
    cv2.exp(gx[:4, :4] * 0)
    cv2.meanStdDev(gray)
    cv2.calcHist([gray], [0], None, [256], [0, 256])
    cv2.medianBlur(gray, 5)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    _, bw = cv2.threshold(gray, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    cv2.threshold(gray, 100, 255, cv2.THRESH_BINARY_INV)
    cv2.adaptiveThreshold(gray, 255, cv2.ADAPTIVE_THRESH_GAUSSIAN_C, cv2.THRESH_BINARY, 11, 2)
    bw = cv2.morphologyEx(cv2.morphologyEx(bw, cv2.MORPH_OPEN, k), cv2.MORPH_CLOSE, k)
    cv2.dilate(cv2.erode(bw, k), k)
    n, _, stats, _ = cv2.connectedComponentsWithStats(bw)
    assert n > 1 and stats[1:, cv2.CC_STAT_AREA].max() > 0
    contours, _ = cv2.findContours(bw, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    c = max(contours, key=cv2.contourArea)
    cv2.minAreaRect(c), cv2.boundingRect(c), cv2.convexHull(c), cv2.pointPolygonTest(c, (5.0, 5.0), False)
    canvas = img.copy()
    cv2.drawContours(canvas, contours, -1, (0, 0, 255), 1)
    cv2.fillPoly(canvas, [np.int32([[0, 0], [10, 0], [5, 8]])], (1, 2, 3))
    cv2.polylines(canvas, [np.int32([[0, 0], [10, 0], [5, 8]])], True, (1, 2, 3))
    cv2.line(canvas, (0, 0), (20, 20), (9, 9, 9))
    cv2.ellipse(canvas, (50, 50), (10, 5), 0, 0, 360, (9, 9, 9))
    cv2.absdiff(img, canvas), cv2.add(img, canvas), cv2.flip(img, 1)
    cv2.copyMakeBorder(gray, 2, 2, 2, 2, cv2.BORDER_REFLECT)
    f = np.float32(gray)
    shift, _ = cv2.phaseCorrelate(f, np.roll(f, 3, axis=1), cv2.createHanningWindow(f.shape[::-1], cv2.CV_32F))
    assert abs(abs(shift[0]) - 3) < 0.5, shift


def registration() -> None:
    ref = cv2.cvtColor(board(), cv2.COLOR_BGR2GRAY)
    shifted = cv2.warpAffine(ref, np.float32([[1, 0, 2.5], [0, 1, -1.5]]), (640, 480), borderMode=cv2.BORDER_REPLICATE)
    crit = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 50, 1e-5)
    for motion in (cv2.MOTION_TRANSLATION, cv2.MOTION_EUCLIDEAN, cv2.MOTION_AFFINE):
        _, w = cv2.findTransformECC(
            np.float32(ref), np.float32(shifted), np.eye(2, 3, dtype=np.float32), motion, crit, None, 5
        )
        assert abs(w[0, 2] - 2.5) < 0.2 and abs(w[1, 2] + 1.5) < 0.2, (motion, w)
    cv2.findTransformECC(
        np.float32(ref), np.float32(shifted), np.eye(3, dtype=np.float32), cv2.MOTION_HOMOGRAPHY, crit, None, 5
    )
    assert cv2.computeECC(np.float32(ref), np.float32(ref)) > 0.99
    orb = cv2.ORB_create(nfeatures=3000, scaleFactor=1.2, nlevels=8, fastThreshold=10)
    k1, d1 = orb.detectAndCompute(ref, None)
    k2, d2 = orb.detectAndCompute(shifted, None)
    matches = [m for m, n in cv2.BFMatcher(cv2.NORM_HAMMING).knnMatch(d1, d2, k=2) if m.distance < 0.8 * n.distance]
    src = np.float32([k1[m.queryIdx].pt for m in matches])
    dst = np.float32([k2[m.trainIdx].pt for m in matches])
    a, _ = cv2.estimateAffinePartial2D(src, dst, method=cv2.RANSAC)
    hm, _ = cv2.findHomography(src, dst, cv2.RANSAC, 3.0)
    assert abs(a[0, 2] - 2.5) < 0.5 and hm is not None, a
    remap_x, remap_y = np.meshgrid(np.arange(640, dtype=np.float32), np.arange(480, dtype=np.float32))
    cv2.remap(ref, remap_x, remap_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_TRANSPARENT)


def calibration() -> None:
    cols, rows, sq = 9, 6, 40
    board_img = np.full(((rows + 3) * sq, (cols + 3) * sq), 255, np.uint8)
    for r in range(rows + 1):
        for c in range(cols + 1):
            if (r + c) % 2 == 0:
                cv2.rectangle(board_img, ((c + 1) * sq, (r + 1) * sq), ((c + 2) * sq - 1, (r + 2) * sq - 1), 0, -1)
    obj = np.zeros((cols * rows, 3), np.float32)
    obj[:, :2] = np.mgrid[0:cols, 0:rows].T.reshape(-1, 2) * sq
    flags = cv2.CALIB_CB_NORMALIZE_IMAGE | cv2.CALIB_CB_ACCURACY
    objs, imgs = [], []
    for i, (ax, ay) in enumerate(((0, 0), (0.15, 0), (0, 0.15), (-0.12, 0.08), (0.1, -0.1))):
        h, w = board_img.shape
        k = np.array([[800, 0, w / 2], [0, 800, h / 2], [0, 0, 1]], np.float64)
        rot, _ = cv2.Rodrigues(np.array([ax, ay, 0.02 * i]))
        hm = k @ np.column_stack([rot[:, 0], rot[:, 1], [0, 0, 1.0]]) @ np.linalg.inv(k)
        view = cv2.warpPerspective(board_img, hm / hm[2, 2], (w, h), borderValue=255)
        ok, corners = cv2.findChessboardCornersSB(view, (cols, rows), flags=flags)
        assert ok, f"chessboard not found in view {i}"
        objs.append(obj)
        imgs.append(corners.astype(np.float32))
    rms, kk, dist, rvecs, tvecs = cv2.calibrateCamera(
        objs, imgs, board_img.shape[::-1], None, None, flags=cv2.CALIB_FIX_K3
    )
    assert rms < 1.0, rms
    cv2.projectPoints(obj, rvecs[0], tvecs[0], kk, dist)
    cv2.undistortPoints(imgs[0], kk, dist)
    cv2.undistort(board_img, kk, dist)
    newk, _ = cv2.getOptimalNewCameraMatrix(kk, dist, board_img.shape[::-1], 0)
    cv2.initUndistortRectifyMap(kk, dist, None, newk, board_img.shape[::-1], cv2.CV_16SC2)
    d = cv2.aruco.getPredefinedDictionary(cv2.aruco.DICT_5X5_100)
    charuco = cv2.aruco.CharucoBoard((7, 5), 40.0, 30.0, d)
    img = charuco.generateImage((700, 500), marginSize=20)
    corners, ids, _, _ = cv2.aruco.CharucoDetector(charuco).detectBoard(img)
    assert ids is not None and len(ids) >= 20, ids


def video_replay(tmp: Path) -> None:
    """replay:FILE.avi: an MJPEG .avi opens through OpenCV's own MJPEG reader (no FFmpeg needed)."""
    path = tmp / "r.avi"
    # OpenCV's own MJPEG writer by name: with CAP_ANY the image-sequence backend tries first and logs a warning.
    out = cv2.VideoWriter(str(path), cv2.CAP_OPENCV_MJPEG, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (640, 480))
    assert out.isOpened(), "MJPEG writer"
    for _ in range(5):
        out.write(board())
    out.release()
    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), "MJPEG .avi reader"
    assert int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)) == 640 and int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)) == 480
    n = 0
    while cap.read()[0]:
        n += 1
    cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
    assert n == 5 and cap.read()[0], n
    cap.release()


def timings() -> str:
    img = board(1080, 1440)
    gray = cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)
    m = cv2.getRotationMatrix2D((720, 540), 1.5, 1.0)
    calls = {
        "resize 640": lambda: cv2.resize(img, (640, 480), interpolation=cv2.INTER_AREA),
        "warpAffine": lambda: cv2.warpAffine(img, m, (1440, 1080), flags=cv2.INTER_LINEAR),
        "GaussianBlur": lambda: cv2.GaussianBlur(gray, (5, 5), 0),
        "imencode jpg": lambda: cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, 90]),
        "imencode png": lambda: cv2.imencode(".png", img, [cv2.IMWRITE_PNG_COMPRESSION, 3]),
    }
    out = []
    for name, fn in calls.items():
        best = float("inf")
        for _ in range(10):  # the best of 10: on a shared machine the mean measures the neighbours
            t = time.perf_counter()
            fn()
            best = min(best, time.perf_counter() - t)
        out.append(f"{name} {best * 1000:.1f}")
    return "ms per call, best of 10 (1440x1080): " + ", ".join(out)


def main() -> int:
    used = names_the_station_uses()
    missing = sorted(n for n in used if not hasattr(cv2, n))
    if missing:
        FAILED.append(f"cv2 lacks names the station uses: {', '.join(missing)}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        check("codecs", lambda: codecs(tmp))
        check("image ops", image_ops)
        check("registration", registration)
        check("calibration", calibration)
        check("video replay", lambda: video_replay(tmp))
    info = cv2.getBuildInformation()
    ffmpeg = re.search(r"FFMPEG:\s*(\w+)", info)
    print(
        f"cv2 {cv2.__version__} at {Path(cv2.__file__).parent}; FFmpeg: {ffmpeg.group(1) if ffmpeg else 'NO'}; "
        f"{len(used)} cv2 names used by the station, {len(missing)} missing"
    )
    print(timings())
    for f in FAILED:
        print("FAIL", f)
    print("cv2 check:", "FAILED" if FAILED else "ok")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
