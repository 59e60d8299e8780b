"""Image archive: full frames, thumbnails, defect crops and shared references.

Ordering is what makes it crash-safe: every file of a board is written *before* the database row
that names it is committed, so a crash leaves at worst files no row names (orphans, which
`db check --repair` removes), never a row pointing at a missing or half-written file. Per-board
files have unique names, so they are written in place; the shared reference images are written
to a temporary name and renamed, because later boards reuse an existing one without rewriting it.
Layout, relative to the archive folder (the paths stored in the database):
  YYYY-MM-DD/HH/<uid>.png            full frame, lossless (PNG level 1: fast, 3-4 ms for 640x640)
  YYYY-MM-DD/HH/<uid>_thumb.jpg      160 px wide thumbnail for history lists
  YYYY-MM-DD/HH/<uid>_crops.png      all defect crops of the board side by side; each defect's
                                     path is `<uid>_crops.png#x,y,w,h` (read it with `read_crop`)
  refs/<sha1>.png                    reference (golden) images, shared by the boards that used them
One crops file per board instead of one file per defect: file creation dominates the cost on a
busy disk, and a 10-defect board would otherwise cost 10 extra files.
"""

from __future__ import annotations

import errno
import hashlib
import os
import threading
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np

from ..domain import Detection

CROP_PAD = 16
THUMB_WIDTH = 160


class ArchiveError(OSError):
    """Writing an archive file failed; `errno` is kept so callers can tell disk full apart.

    `files` holds what was written before the failure (still to be referenced by the row).
    """

    def __init__(self, code: int | None, message: str, files: ArchivedFiles):
        super().__init__(code, message)
        self.files = files


@dataclass(slots=True)
class ArchivedFiles:
    image: str | None = None
    thumb: str | None = None
    reference: str | None = None
    crops: list[str | None] | None = None
    error: str | None = None


def write_file(path: Path, data: bytes, *, fsync: bool = False) -> None:
    """Write a new, uniquely named file (no temporary: no row names it until it is complete)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, fsync: bool = False) -> None:
    # A unique temporary per writer: two threads may write the same content-addressed reference at
    # once; with one shared ".tmp" the second rename failed (ENOENT) and a board lost its images.
    tmp = path.with_name(f"{path.name}.{os.getpid()}-{threading.get_ident()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def encode(ext: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, buf = cv2.imencode(ext, image, params or [])
    if not ok:
        raise ValueError(f"cannot encode a {image.shape} {image.dtype} image as {ext}")
    return buf.tobytes()


def crop_box(image: np.ndarray, box: tuple[float, float, float, float], pad: int = CROP_PAD) -> np.ndarray:
    h, w = image.shape[:2]
    x1 = max(0, int(box[0]) - pad)
    y1 = max(0, int(box[1]) - pad)
    x2 = min(w, int(np.ceil(box[2])) + pad)
    y2 = min(h, int(np.ceil(box[3])) + pad)
    if x2 <= x1 or y2 <= y1:
        return image[0:1, 0:1]
    return image[y1:y2, x1:x2]


def crop_sheet(image: np.ndarray, detections: list[Detection]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """All crops side by side in one image, and each crop's (x, y, w, h) in it."""
    crops = [crop_box(image, d.box) for d in detections]
    height = max(c.shape[0] for c in crops)
    width = sum(c.shape[1] for c in crops)
    sheet = np.zeros((height, width, *image.shape[2:]), image.dtype)
    rects, x = [], 0
    for c in crops:
        h, w = c.shape[:2]
        sheet[:h, x : x + w] = c
        rects.append((x, 0, w, h))
        x += w
    return sheet, rects


def file_of(path: str) -> str:
    """The file part of an archive path (crop paths carry `#x,y,w,h`)."""
    return path.split("#", 1)[0]


def read_crop(archive_dir: Path, crop_path: str) -> np.ndarray | None:
    """A defect's crop from its stored path; None if the file is gone, unreadable or damaged (read strictly: a
    truncated crop sheet read leniently shows a half-gray crop the reviewer would judge)."""
    from ..image_file import ImageFileError, read_image_file

    file, _, frag = crop_path.partition("#")
    try:
        img = read_image_file(Path(archive_dir) / file)
    except ImageFileError:
        return None
    if not frag:
        return img
    x, y, w, h = (int(v) for v in frag.split(","))
    return img[y : y + h, x : x + w].copy()


class Archive:
    """Writes one board's files; used only by the writer thread (and its encoder pool)."""

    def __init__(self, root: Path, *, fsync: bool = False):
        self.root = Path(root)
        self.fsync = fsync
        self._known_refs: set[str] = set()
        self._made_dirs: set[Path] = set()
        self._last_ref: tuple[weakref.ref, str] | None = None

    def _dir(self, rel: Path) -> Path:
        d = self.root / rel
        if d not in self._made_dirs:
            d.mkdir(parents=True, exist_ok=True)
            self._made_dirs.add(d)
        return d

    @staticmethod
    def folder_for(ts: datetime) -> Path:
        return Path(ts.strftime("%Y-%m-%d")) / ts.strftime("%H")

    def write(
        self,
        uid: str,
        ts: datetime,
        image: np.ndarray | None,
        reference: np.ndarray | None,
        detections: list[Detection],
        *,
        full: bool,
    ) -> ArchivedFiles:
        """Write the board's files; an OSError (disk full...) is returned in `error`, not raised.

        Whatever was written before the error stays referenced, so nothing on disk is unaccounted for.
        """
        out = ArchivedFiles(crops=[None] * len(detections))
        if image is None:
            return out
        rel = self.folder_for(ts)
        try:
            folder = self._dir(rel)
            if detections:
                sheet, rects = crop_sheet(image, detections)
                name = f"{uid}_crops.png"
                write_file(folder / name, encode(".png", sheet, [cv2.IMWRITE_PNG_COMPRESSION, 1]), fsync=self.fsync)
                out.crops = [f"{rel / name}#{x},{y},{w},{h}" for x, y, w, h in rects]
            if full:
                name = f"{uid}.png"
                write_file(folder / name, encode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1]), fsync=self.fsync)
                out.image = str(rel / name)
                scale = THUMB_WIDTH / max(1, image.shape[1])
                thumb = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                name = f"{uid}_thumb.jpg"
                write_file(folder / name, encode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, 80]), fsync=self.fsync)
                out.thumb = str(rel / name)
                if reference is not None:
                    out.reference = self._reference(reference)
        except OSError as exc:
            out.error = describe_os_error(exc)
            raise ArchiveError(exc.errno, out.error, out) from exc
        return out

    def _reference(self, reference: np.ndarray) -> str:
        # The recipe's reference is usually the very same array for every board: skip re-hashing it.
        last = self._last_ref
        if last is not None and last[0]() is reference:
            h = last[1]
        else:
            h = hashlib.sha1(np.ascontiguousarray(reference).data, usedforsecurity=False).hexdigest()
            try:
                self._last_ref = (weakref.ref(reference), h)
            except TypeError:
                self._last_ref = None
        rel = f"refs/{h}.png"
        if h not in self._known_refs:
            path = self._dir(Path("refs")) / f"{h}.png"
            if not path.exists():
                atomic_write(path, encode(".png", reference, [cv2.IMWRITE_PNG_COMPRESSION, 1]), fsync=self.fsync)
            self._known_refs.add(h)
        return rel

    def forget_ref(self, rel: str) -> None:
        self._known_refs.discard(Path(rel).stem)


def describe_os_error(exc: OSError) -> str:
    code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    where = f" at {exc.filename}" if exc.filename else ""
    return f"{exc.strerror or exc} ({code}){where}"
