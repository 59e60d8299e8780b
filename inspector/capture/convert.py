"""Pixel-format conversion from what a camera sends to what the station inspects (Mono8 or BGR8).

Why one module for every backend: Aravis, harvesters and OpenCV all hand over raw buffers named by
GenICam PFNC pixel formats; converting in one place means a BayerRG8 board looks the same whichever
driver captured it, and the tests of the conversion cover every backend at once.

Every function returns a new, C-contiguous, writable array that owns its memory, so the driver
buffer it came from can go back to the pool immediately.
"""

from __future__ import annotations

import cv2
import numpy as np

#: GenICam PFNC codes (what ArvBuffer / GenTL report) for the formats the station understands.
PFNC: dict[str, int] = {
    "Mono8": 0x01080001,
    "Mono10": 0x01100003,
    "Mono12": 0x01100005,
    "Mono14": 0x01100025,
    "Mono16": 0x01100007,
    "RGB8": 0x02180014,
    "BGR8": 0x02180015,
    "RGBa8": 0x02200016,
    "BGRa8": 0x02200017,
    "BayerGR8": 0x01080008,
    "BayerRG8": 0x01080009,
    "BayerGB8": 0x0108000A,
    "BayerBG8": 0x0108000B,
    "BayerGR16": 0x0110002E,
    "BayerRG16": 0x0110002F,
    "BayerGB16": 0x01100030,
    "BayerBG16": 0x01100031,
}
PFNC_NAMES: dict[int, str] = {v: k for k, v in PFNC.items()}

#: Significant bits of the 16-bit-container mono formats (shifted down to 8 bits).
_MONO_BITS = {"Mono10": 10, "Mono12": 12, "Mono14": 14, "Mono16": 16}

# GenICam names a Bayer pattern by its top-left 2x2 cell; OpenCV's *RGGB* aliases use the same naming
# (the older COLOR_BayerRG2BGR names are shifted by one pixel, a classic source of swapped red/blue).
_BAYER = {
    "BayerRG": cv2.COLOR_BayerRGGB2BGR,
    "BayerGR": cv2.COLOR_BayerGRBG2BGR,
    "BayerBG": cv2.COLOR_BayerBGGR2BGR,
    "BayerGB": cv2.COLOR_BayerGBRG2BGR,
}

SUPPORTED = tuple(PFNC)


class PixelFormatError(ValueError):
    """A pixel format the station cannot convert, or a buffer that does not match its format."""


def format_name(pixel_format: str | int) -> str:
    """Canonical name for a PFNC code or name; raises PixelFormatError for unknown ones."""
    if isinstance(pixel_format, int):
        try:
            return PFNC_NAMES[pixel_format]
        except KeyError:
            raise PixelFormatError(
                f"pixel format 0x{pixel_format:08X} is not supported ({', '.join(SUPPORTED)})"
            ) from None
    if pixel_format not in PFNC:
        raise PixelFormatError(f"pixel format {pixel_format!r} is not supported ({', '.join(SUPPORTED)})")
    return pixel_format


def bytes_per_pixel(pixel_format: str | int) -> int:
    name = format_name(pixel_format)
    if name in {"RGB8", "BGR8"}:
        return 3
    if name in {"RGBa8", "BGRa8"}:
        return 4
    if name in _MONO_BITS or name.endswith("16"):
        return 2
    return 1


def output_format(pixel_format: str | int) -> str:
    """What `to_inspection_image` returns for this input: 'Mono8' or 'BGR8'."""
    name = format_name(pixel_format)
    return "Mono8" if name.startswith("Mono") else "BGR8"


def _as_array(data, width: int, height: int, name: str, stride: int | None) -> np.ndarray:
    bpp = bytes_per_pixel(name)
    row = width * bpp
    stride = stride or row
    if stride < row:
        raise PixelFormatError(f"{name} {width}x{height}: row stride {stride} is shorter than a row ({row} bytes)")
    flat = np.frombuffer(data, dtype=np.uint8) if not isinstance(data, np.ndarray) else data.reshape(-1).view(np.uint8)
    need = stride * (height - 1) + row
    if flat.size < need:
        raise PixelFormatError(f"{name} {width}x{height}: buffer holds {flat.size} bytes, the image needs {need}")
    rows = np.lib.stride_tricks.as_strided(flat, shape=(height, row), strides=(stride, 1), writeable=False)
    if bpp == 2:
        return rows.copy().view("<u2").reshape(height, width)
    if bpp in (3, 4):
        return rows.reshape(height, width, bpp)
    return rows


def _to_8bit(img16: np.ndarray, bits: int) -> np.ndarray:
    return (img16 >> (bits - 8)).astype(np.uint8)


def to_inspection_image(
    data: bytes | bytearray | memoryview | np.ndarray,
    width: int,
    height: int,
    pixel_format: str | int,
    *,
    stride: int | None = None,
) -> np.ndarray:
    """Raw buffer -> owned uint8 image: (H, W) for mono formats, (H, W, 3) BGR for colour ones.

    `stride` is the row pitch in bytes when rows are padded (None: tightly packed).
    Raises PixelFormatError naming the format and the size problem.
    """
    if width <= 0 or height <= 0:
        raise PixelFormatError(f"image size {width}x{height} is empty")
    name = format_name(pixel_format)
    img = _as_array(data, width, height, name, stride)
    if name == "Mono8":
        out = img
    elif name in _MONO_BITS:
        out = _to_8bit(img, _MONO_BITS[name])
    elif name == "RGB8":
        out = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    elif name == "BGR8":
        out = img
    elif name == "RGBa8":
        out = cv2.cvtColor(img, cv2.COLOR_RGBA2BGR)
    elif name == "BGRa8":
        out = cv2.cvtColor(img, cv2.COLOR_BGRA2BGR)
    elif name.startswith("Bayer"):
        code = _BAYER[name[:7]]
        if name.endswith("16"):
            out = _to_8bit(cv2.cvtColor(np.ascontiguousarray(img), code), 16)
        else:
            out = cv2.cvtColor(np.ascontiguousarray(img), code)
    else:  # pragma: no cover - format_name guards this
        raise PixelFormatError(f"pixel format {name!r} has no conversion")
    # Always hand back memory nobody else holds: the driver may refill `data` right after this.
    if out is img or not out.flags.c_contiguous or not out.flags.writeable or out.base is not None:
        out = np.array(out, dtype=np.uint8, order="C", copy=True)
    return out


def mosaic(bgr: np.ndarray, pattern: str) -> np.ndarray:
    """The Bayer mosaic a sensor with `pattern` (e.g. 'BayerRG8') would record for a BGR scene.

    Used by tests and by the probe's self-check; the inverse of the demosaic above up to interpolation.
    """
    name = format_name(pattern)
    if not name.startswith("Bayer"):
        raise PixelFormatError(f"{name} is not a Bayer format")
    cell = name[5:7]  # e.g. 'RG' from BayerRG8: top-left is R, then G; the second row is G, B
    order = {"RG": "RGGB", "GR": "GRBG", "BG": "BGGR", "GB": "GBRG"}[cell]
    chan = {"B": 0, "G": 1, "R": 2}
    out = np.empty(bgr.shape[:2], dtype=bgr.dtype)
    for (dy, dx), c in zip(((0, 0), (0, 1), (1, 0), (1, 1)), order):
        out[dy::2, dx::2] = bgr[dy::2, dx::2, chan[c]]
    return out
