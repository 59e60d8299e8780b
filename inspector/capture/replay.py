"""Replay camera: a folder of images or a video file, at a set rate or one frame per trigger.

Why it matters beyond demos: it is how a quality engineer re-runs a day's archived boards through a
new model or recipe. Boards named `<id>_test.<ext>` with a `<id>_temp.<ext>` beside them (the
DeepPCB and demo layout) carry their own golden reference in the frame metadata.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from pydantic import Field

from ..config_base import Section, TriggerMode
from ..image_file import ImageFileError, read_image_file
from ..synth import write_boards
from .base import Camera, CameraError, CameraInfo, FrameTimeout, Grab, IncompleteFrame

log = logging.getLogger(__name__)

IMAGE_EXTS = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".avi", ".mkv", ".mov"}


class ReplayCamera(Section):
    type: Literal["replay"] = Field("replay", description="Replay images from a folder or video file (demo, tests).")
    path: Path | None = Field(
        None, description="Folder of images or a video file. None: generated synthetic demo boards."
    )
    fps: float | None = Field(4.0, gt=0, le=1000, description="Free-run rate in frames/s; None = as fast as possible.")
    loop: bool = Field(
        True,
        description="Start again at the first image after the last one. false: the last image is the last frame "
        "(each board judged once; the camera then sends nothing, also after a reconnect).",
    )
    trigger: TriggerMode = Field(
        "free_run", description="free_run: frames at `fps`; software: one frame per trigger (PLC mode)."
    )
    demo_boards: int = Field(24, ge=1, le=10000, description="How many synthetic boards to generate when path is None.")
    seed: int = Field(7, description="Seed of the synthetic board generator.")

    def frame_size(self) -> tuple[int, int] | None:
        """(width, height) of the boards it serves, read from the first file (None: unreadable)."""
        if self.path is None:
            import inspect

            size = inspect.signature(write_boards).parameters["size"].default
            return (int(size), int(size))
        return replay_frame_size(Path(self.path))

    def input_problems(self) -> list[str]:
        if self.path is None:
            return []
        if not Path(self.path).exists():
            return [f"camera.path: {self.path} does not exist"]
        if replay_frame_size(Path(self.path)) is None:
            return [f"camera.path: {self.path} holds no readable board image (a folder of images or a video file)"]
        return []


def replay_frame_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of the first board image in a folder, or of a video file; None when unreadable."""
    if path.is_dir():
        img = _first_readable(list_board_images(path))
        return (img.shape[1], img.shape[0]) if img is not None else None
    if path.suffix.lower() in VIDEO_EXTS and path.is_file():
        cap = cv2.VideoCapture(str(path))
        try:
            w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT))
        finally:
            cap.release()
        return (w, h) if w and h else None
    return None


def demo_boards_dir(count: int, seed: int) -> Path:
    """Generated demo boards, cached per (count, seed) so a second start is instant."""
    root = Path(tempfile.gettempdir()) / "pcb-inspector-demo" / f"n{count}-s{seed}"
    if not (root / "truth.json").is_file():
        write_boards(root, count, seed)
    return root


def _first_readable(files: list[Path]) -> np.ndarray | None:
    """The first of `files` that reads whole (a damaged file in the folder is refused when its turn comes)."""
    for path in files:
        try:
            return read_image_file(path)
        except ImageFileError:
            continue
    return None


def read_replay_image(path: Path, what: str = "replay image") -> np.ndarray:
    """One file of the folder, strictly (`inspector.image_file`), or IncompleteFrame naming the file.

    Why IncompleteFrame: a truncated or damaged file is what a frame with lost packets is to a real camera, a
    frame that must never be inspected (a truncated JPEG read leniently is half gray: phantom defects). The
    supervisor counts it and goes on with the next board (a triggered board gets a REJECT naming the file).
    """
    try:
        return read_image_file(path)
    except ImageFileError as exc:
        message = f"{what} {path}: {exc}"
    log.warning("%s: board not inspected", message)  # the supervisor only counts an incomplete frame
    raise IncompleteFrame(message)


def list_board_images(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTS and not p.stem.endswith("_temp"))
    return files


def reference_for(path: Path) -> Path | None:
    if not path.stem.endswith("_test"):
        return None
    base = path.stem[: -len("_test")]
    for ext in (path.suffix, *IMAGE_EXTS):
        cand = path.with_name(f"{base}_temp{ext}")
        if cand.is_file():
            return cand
    return None


class ReplayCameraSource(Camera):
    def __init__(self, cfg: ReplayCamera):
        self.cfg = cfg
        self.triggered = cfg.trigger != "free_run"
        self._files: list[Path] = []
        self._video: cv2.VideoCapture | None = None
        self._index = 0
        self._next_time = 0.0
        self._pending = threading.Semaphore(0)
        self._ref_cache: dict[Path, np.ndarray] = {}
        self._opened = False
        self._ended = False
        """With `loop = false`: the end was reached and logged (once, not on every grab after it)."""

    @property
    def source(self) -> Path:
        if self.cfg.path is None:
            return demo_boards_dir(self.cfg.demo_boards, self.cfg.seed)
        return self.cfg.path

    @property
    def nominal_fps(self) -> float | None:
        return self.cfg.fps

    @property
    def description(self) -> str:
        return f"replay:{self.source}"

    def open(self) -> CameraInfo:
        src = self.source
        if not src.exists():
            raise CameraError(f"replay source {src} does not exist")
        if src.is_dir():
            self._files = list_board_images(src)
            if not self._files:
                raise CameraError(f"replay folder {src} holds no images ({', '.join(sorted(IMAGE_EXTS))})")
            first = _first_readable(self._files)
            if first is None:
                raise CameraError(f"replay folder {src} holds no readable image (each is damaged or truncated)")
            h, w = first.shape[:2]
            fmt = "Mono8" if first.ndim == 2 else "BGR8"
        elif src.suffix.lower() in VIDEO_EXTS:
            self._video = cv2.VideoCapture(str(src))
            if not self._video.isOpened():
                raise CameraError(f"replay video {src} cannot be opened")
            w = int(self._video.get(cv2.CAP_PROP_FRAME_WIDTH))
            h = int(self._video.get(cv2.CAP_PROP_FRAME_HEIGHT))
            fmt = "BGR8"
            if not self.cfg.loop and self._index:
                # Where the last session stopped: a reconnect does not replay the boards already judged.
                self._video.set(cv2.CAP_PROP_POS_FRAMES, self._index)
        else:
            raise CameraError(f"replay source {src} is neither a folder nor a video ({', '.join(sorted(VIDEO_EXTS))})")
        if self.cfg.loop:
            self._index = 0
        # With loop = false the position survives the reopen: the supervisor reopens a camera that sends nothing
        # (the end of the folder looks like a stall), and starting over would judge and record every board again.
        self._next_time = time.monotonic()
        self._opened = True
        return CameraInfo(model="replay", serial=str(src), width=w, height=h, pixel_format=fmt)

    def close(self) -> None:
        if self._video is not None:
            self._video.release()
            self._video = None
        self._opened = False

    def trigger(self) -> None:
        self._pending.release()

    def flush(self) -> None:
        while self._pending.acquire(blocking=False):
            pass

    def _end_message(self) -> str:
        what = "video" if self._video is not None else "folder"
        return f"end of replay {what} {self.source}: all {self._index} frames served (camera.loop = false)"

    def _reached_end(self) -> FrameTimeout:
        """The end with loop = false: said once in the log, then the same FrameTimeout for every grab."""
        if not self._ended:
            self._ended = True
            log.warning("%s; no more frames", self._end_message())
        return FrameTimeout(self._end_message())

    def _read_next(self) -> Grab:
        if self._video is not None:
            ok, img = self._video.read()
            if not ok:
                if not self.cfg.loop:
                    raise self._reached_end()
                self._video.set(cv2.CAP_PROP_POS_FRAMES, 0)
                ok, img = self._video.read()
                if not ok:
                    raise CameraError("replay video yields no frames")
            self._index += 1
            return Grab(np.ascontiguousarray(img), {"source": "video", "index": self._index - 1})
        if self._index >= len(self._files):
            if not self.cfg.loop:
                raise self._reached_end()
            self._index = 0
        path = self._files[self._index]
        self._index += 1
        self._ended = False
        img = read_replay_image(path)
        meta: dict = {"source": "replay", "file": str(path), "name": path.stem.removesuffix("_test")}
        ref_path = reference_for(path)
        if ref_path is not None:
            ref = self._ref_cache.get(ref_path)
            if ref is None:
                # As stored: the station turns a colour golden image gray by the model's rule, as it does the colour
                # board (read as luma here, it was compared with the board's red plane), and a 16-bit one onto 8 bit
                # by its significant bits (read as 8-bit gray here, a 12-bit golden image came out near black).
                # A damaged golden image refuses the board: judged against the recipe's reference instead, it would
                # be compared with another board's golden image.
                ref = read_replay_image(ref_path, "golden image")
                if len(self._ref_cache) < 256:
                    self._ref_cache[ref_path] = ref
            meta["reference"] = ref
        return Grab(img, meta)

    def _at_end(self) -> bool:
        """With loop = false: every frame was served (also across a reopen: the position is kept)."""
        if self.cfg.loop:
            return False
        return self._ended if self._video is not None else self._index >= len(self._files)

    def grab(self, timeout_s: float) -> Grab:
        if not self._opened:
            raise CameraError("replay camera is not open")
        if self._at_end() and not self.triggered:
            # Like a camera that sends nothing: wait out the timeout rather than spin the capture thread.
            time.sleep(max(0.0, timeout_s))
            raise self._reached_end()
        if self.triggered:
            if not self._pending.acquire(timeout=timeout_s):
                raise FrameTimeout(f"no trigger within {timeout_s:.1f} s")
        elif self.cfg.fps:
            wait = self._next_time - time.monotonic()
            if wait > timeout_s:
                time.sleep(timeout_s)
                raise FrameTimeout("replay rate slower than the frame timeout")
            if wait > 0:
                time.sleep(wait)
            self._next_time = max(self._next_time + 1.0 / self.cfg.fps, time.monotonic() - 1.0)
        grab = self._read_next()
        grab.meta["timestamp"] = time.monotonic()
        grab.meta.setdefault("pixel_format", "Mono8" if grab.image.ndim == 2 else "BGR8")
        return grab


def create(cfg: ReplayCamera) -> Camera:
    return ReplayCameraSource(cfg)


def parse_spec(spec: str, rest: str) -> ReplayCamera:
    """`replay:DIR | replay:DIR@10fps | replay:FILE.mp4@max | replay:DIR@trigger | replay:demo`."""
    from .spec import RATE, bad_spec, build_spec, split_suffix

    path, opt = split_suffix(rest)
    data: dict = {"type": "replay"}
    if not path:
        raise bad_spec(spec, "replay needs a folder or video file, e.g. replay:boards/ or replay:demo")
    if path != "demo":
        data["path"] = Path(path)
    if opt is not None:
        low = opt.lower()
        if low == "trigger":
            data["trigger"] = "software"
        elif low in {"max", "fast"}:
            data["fps"] = None
        elif m := RATE.match(opt):
            data["fps"] = float(m.group(1))
        else:
            raise bad_spec(spec, f"rate {opt!r} is not NUMBERfps, max or trigger (e.g. replay:DIR@10fps)")
    return build_spec(spec, ReplayCamera, data)


CONFIG = ReplayCamera
