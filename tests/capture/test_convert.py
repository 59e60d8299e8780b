"""Pixel-format conversion: every camera format the station accepts, to Mono8 or BGR8."""

from __future__ import annotations

import numpy as np
import pytest

from inspector.capture.convert import PFNC, PixelFormatError, mosaic, output_format, to_inspection_image

# A scene of four flat colour patches (BGR), big enough that demosaicing is exact inside each patch.
PATCHES = {(0, 0): (255, 0, 0), (0, 1): (0, 0, 255), (1, 0): (0, 255, 0), (1, 1): (40, 120, 200)}


def scene(h: int = 64, w: int = 96) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    for (r, c), bgr in PATCHES.items():
        img[r * h // 2 : (r + 1) * h // 2, c * w // 2 : (c + 1) * w // 2] = bgr
    return img


@pytest.mark.parametrize("fmt", ["BayerRG8", "BayerGR8", "BayerBG8", "BayerGB8"])
def test_bayer_demosaics_to_the_right_colours(fmt):
    bgr = scene()
    raw = mosaic(bgr, fmt)
    out = to_inspection_image(raw.tobytes(), 96, 64, fmt)
    assert out.shape == (64, 96, 3) and output_format(fmt) == "BGR8"
    h, w = 64, 96
    for (r, c), expected in PATCHES.items():
        y, x = r * h // 2 + h // 4, c * w // 2 + w // 4  # patch centres
        assert tuple(out[y, x]) == expected, f"{fmt}: patch {(r, c)} came out {tuple(out[y, x])}"


def test_bayer_pattern_mixup_swaps_red_and_blue():
    # The same mosaic read with the wrong pattern gives wrong colours: the test above is not vacuous.
    raw = mosaic(scene(), "BayerRG8")
    wrong = to_inspection_image(raw.tobytes(), 96, 64, "BayerBG8")
    assert tuple(wrong[16, 24]) != (255, 0, 0)


def test_bayer16_scales_to_8_bit():
    raw8 = mosaic(scene(), "BayerGR8")
    raw16 = raw8.astype(np.uint16) << 8
    out = to_inspection_image(raw16.astype("<u2").tobytes(), 96, 64, "BayerGR16")
    assert tuple(out[16, 24]) == (255, 0, 0) and tuple(out[48, 72]) == (40, 120, 200)


@pytest.mark.parametrize(("fmt", "bits"), [("Mono16", 16), ("Mono12", 12), ("Mono10", 10), ("Mono14", 14)])
def test_mono_containers_shift_to_mono8(fmt, bits):
    values = np.array([[0, 1, (1 << bits) - 1, 1 << (bits - 1)]], dtype="<u2")
    out = to_inspection_image(values.tobytes(), 4, 1, fmt)
    assert out.dtype == np.uint8 and out.tolist() == [[0, 0, 255, 128]]


def test_mono8_passthrough_is_a_copy():
    src = bytearray(np.arange(12, dtype=np.uint8).tobytes())
    out = to_inspection_image(src, 4, 3, "Mono8")
    src[0] = 99  # the driver refills its buffer...
    assert out[0, 0] == 0 and out.shape == (3, 4)  # ...and the station's frame does not change
    assert out.flags.writeable and out.flags.c_contiguous and out.base is None


def test_rgb_rgba_and_bgr_come_out_bgr():
    bgr = scene(8, 8)
    rgb = bgr[:, :, ::-1].copy()
    assert np.array_equal(to_inspection_image(rgb.tobytes(), 8, 8, "RGB8"), bgr)
    assert np.array_equal(to_inspection_image(bgr.tobytes(), 8, 8, "BGR8"), bgr)
    rgba = np.dstack([rgb, np.full((8, 8), 7, np.uint8)])
    assert np.array_equal(to_inspection_image(rgba.tobytes(), 8, 8, "RGBa8"), bgr)
    assert np.array_equal(to_inspection_image(rgba.tobytes(), 8, 8, PFNC["RGBa8"]), bgr)  # by PFNC code


def test_padded_rows_use_the_stride():
    img = np.arange(4 * 5, dtype=np.uint8).reshape(4, 5)
    padded = np.zeros((4, 8), np.uint8)
    padded[:, :5] = img
    assert np.array_equal(to_inspection_image(padded.tobytes(), 5, 4, "Mono8", stride=8), img)


def test_bad_buffers_and_formats_are_named():
    with pytest.raises(PixelFormatError, match=r"Mono8 4x4: buffer holds 15 bytes, the image needs 16"):
        to_inspection_image(bytes(15), 4, 4, "Mono8")
    with pytest.raises(PixelFormatError, match=r"'YUV422_8' is not supported"):
        to_inspection_image(bytes(32), 4, 4, "YUV422_8")
    with pytest.raises(PixelFormatError, match=r"0x0210001F is not supported"):
        to_inspection_image(bytes(32), 4, 4, 0x0210001F)
    with pytest.raises(PixelFormatError, match="empty"):
        to_inspection_image(b"", 0, 4, "Mono8")
