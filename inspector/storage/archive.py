"""Image archive: full frames, thumbnails, defect crops and shared references, written atomically.

Why atomic (write to a temporary name, then rename): a crash mid-write must leave either the whole
file or no file, never a truncated PNG that a database row points to. Temporary files end in `.tmp`
and `db check --repair` removes any a crash left behind.
Files are written *before* the database row that names them is committed, so a crash leaves at
worst an unreferenced file (an orphan that `db check` finds), never a row pointing at nothing.
Paths are relative to the archive folder: `YYYY-MM-DD/HH/<uid>.png`, `..._thumb.jpg`,
`..._d<k>.png`, and `refs/<sha1>.png` for reference images, which many boards share.
"""

from __future__ import annotations

import errno
import hashlib
import os
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


def atomic_write(path: Path, data: bytes, *, fsync: bool = False) -> None:
    tmp = path.with_name(path.name + ".tmp")
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


class Archive:
    """Writes one board's files; used only by the writer thread (and its encoder pool)."""

    def __init__(self, root: Path, *, fsync: bool = False):
        self.root = Path(root)
        self.fsync = fsync
        self._known_refs: set[str] = set()
        self._made_dirs: set[Path] = set()

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
            for k, det in enumerate(detections):
                name = f"{uid}_d{k}.png"
                atomic_write(folder / name, encode(".png", crop_box(image, det.box)), fsync=self.fsync)
                out.crops[k] = str(rel / name)
            if full:
                name = f"{uid}.png"
                atomic_write(folder / name, encode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 1]), fsync=self.fsync)
                out.image = str(rel / name)
                scale = THUMB_WIDTH / max(1, image.shape[1])
                thumb = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
                name = f"{uid}_thumb.jpg"
                atomic_write(folder / name, encode(".jpg", thumb, [cv2.IMWRITE_JPEG_QUALITY, 80]), fsync=self.fsync)
                out.thumb = str(rel / name)
                if reference is not None:
                    out.reference = self._reference(reference)
        except OSError as exc:
            out.error = describe_os_error(exc)
            raise ArchiveError(exc.errno, out.error, out) from exc
        return out

    def _reference(self, reference: np.ndarray) -> str:
        h = hashlib.sha1(np.ascontiguousarray(reference).data, usedforsecurity=False).hexdigest()
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
