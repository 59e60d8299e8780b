"""One strict reader for the station's image files: golden references, replayed frames, teaching boards, the
boards `inspect` and `evaluate` judge.

Why one reader: the same file must give the same pixels wherever it is judged, or `inspect`, `evaluate` and `run`
disagree about the same board. The image is returned as stored (`cv2.IMREAD_UNCHANGED`: colour stays colour,
16-bit stays 16-bit, EXIF orientation is not applied, as a camera delivers frames); each caller converts it by the
model's colour rule where it needs gray.

Why strict: `cv2.imread` fills the missing part of a truncated JPEG with gray and returns it as if it were whole.
A golden image read that way makes every known-good board a REJECT with phantom defects, and a truncated board
is judged on pixels nobody captured. A file whose decoder gives up, whose JPEG lacks its end marker or whose PNG
lacks its IEND chunk is refused; so is a header that claims more pixels than OpenCV decodes (OpenCV raises
`cv2.error` for it, which would otherwise end in a traceback or kill the capture thread).
"""

from __future__ import annotations

import struct
from pathlib import Path

import cv2
import numpy as np

_JPEG_START = b"\xff\xd8"
_JPEG_END = b"\xff\xd9"
_JPEG_SOS = b"\xff\xda"
"""Start of scan: the image data follows it (inside it 0xFF is stuffed, so the end marker cannot occur by chance);
an embedded EXIF thumbnail's own end marker comes before the main image's last scan."""
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_IEND = b"\x00\x00\x00\x00IEND"
UNREADABLE = "not a readable image"
"""How every decode failure's message starts (callers and tests look for it)."""


class ImageFileError(ValueError):
    """The file is not a whole, readable image. The message says what is wrong; the caller names the file
    (and what it is for: reference image, replay frame, board)."""

    def __init__(self, message: str, *, missing: bool = False) -> None:
        super().__init__(message)
        self.missing = missing
        """True when there is no file at the path (callers word that their own way)."""


def read_image_file(path: Path, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """The image in `path` as stored (or as `flags` asks, e.g. `cv2.IMREAD_GRAYSCALE`), fully decoded, or
    ImageFileError saying why not."""
    path = Path(path)
    if not path.exists():
        raise ImageFileError("file not found", missing=True)
    if path.is_dir():
        raise ImageFileError("is a folder, not an image")
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ImageFileError(f"cannot be read ({exc.strerror or exc})") from None
    if not raw:
        raise ImageFileError("file is empty (0 bytes)")
    return decode_image(raw, flags)


def decode_image(raw: bytes, flags: int = cv2.IMREAD_UNCHANGED) -> np.ndarray:
    """Decode an encoded image as stored; refuses what `read_image_file` refuses (see the module's docstring)."""
    try:
        img = cv2.imdecode(np.frombuffer(raw, np.uint8), flags)
    except cv2.error as exc:
        raise ImageFileError(_decoder_refused(raw, exc)) from None
    if img is None:
        raise ImageFileError(f"{UNREADABLE} (unknown format or truncated)")
    if img.size == 0:
        raise ImageFileError(f"{UNREADABLE} (it decodes to an empty image)")
    # Some decoders (other OpenCV builds) return what they had when the data ran out; the end marker says whether
    # the file is whole. Data after it (padding, a camera's trailer) is allowed: the image itself is complete.
    if raw.startswith(_JPEG_START) and raw.find(_JPEG_END, max(raw.rfind(_JPEG_SOS), 0)) < 0:
        raise ImageFileError(f"{UNREADABLE}: truncated (the JPEG stops before its end marker)")
    if raw.startswith(_PNG_SIGNATURE) and raw.find(_PNG_IEND, len(_PNG_SIGNATURE)) < 0:
        raise ImageFileError(f"{UNREADABLE}: truncated (the PNG stops before its IEND chunk)")
    return img


def _decoder_refused(raw: bytes, exc: cv2.error) -> str:
    """Why OpenCV's decoder raised, in words (the usual cause: a damaged header claiming a huge image)."""
    text = str(exc)
    if "CV_IO_MAX_IMAGE_PIXELS" in text or "validateInputImageSize" in text:
        claims = "an image"
        if raw.startswith(_PNG_SIGNATURE) and len(raw) >= 24:
            w, h = struct.unpack(">II", raw[16:24])
            claims = f"a {w}x{h} image"
        return f"{UNREADABLE}: its header claims {claims}, more pixels than OpenCV decodes (damaged header?)"
    detail = text.strip().splitlines()[-1] if text.strip() else type(exc).__name__
    return f"{UNREADABLE} (the decoder failed: {detail})"


__all__ = ["UNREADABLE", "ImageFileError", "decode_image", "read_image_file"]
