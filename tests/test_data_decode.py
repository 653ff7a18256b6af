"""Every input mode loads correctly into the requested colour mode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medclf.data.decode import decode_bytes


def encoded(image: Image.Image, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


GRAY = np.tile(np.arange(0, 256, 16, dtype=np.uint8), (16, 1))  # 16x16 ramp


def sources() -> dict[str, Image.Image]:
    rgb = np.stack([GRAY, GRAY, GRAY], axis=-1)
    rgba = np.dstack([rgb, np.full_like(GRAY, 255)])
    return {
        "L": Image.fromarray(GRAY, "L"),
        "RGB": Image.fromarray(rgb, "RGB"),
        "RGBA": Image.fromarray(rgba, "RGBA"),
        "P": Image.fromarray(rgb, "RGB").quantize(256),
        "I;16": Image.fromarray(GRAY.astype(np.uint16) * 257),
    }


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA", "P", "I;16"])
@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3)])
def test_modes_load_into_requested_colour_mode(mode, color_mode, channels):
    image = sources()[mode]
    assert image.mode == mode
    result = decode_bytes(encoded(image), 16, color_mode)
    assert result.error is None and result.orig_mode == mode
    assert result.array.shape == (16, 16, channels) and result.array.dtype == np.uint8
    # the grey ramp survives every conversion (palette quantisation may move a level by a little)
    np.testing.assert_allclose(result.array[..., 0], GRAY, atol=3)


def test_sixteen_bit_uses_full_range():
    image = Image.fromarray(np.array([[0, 32768], [65535, 1000]], dtype=np.uint16))
    result = decode_bytes(encoded(image), 2, "grayscale")
    assert result.array[..., 0].tolist() == [[0, 128], [255, 4]]


def test_transparency_is_composited_on_black():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:2, :, 3] = 255  # top half opaque, bottom transparent
    result = decode_bytes(encoded(Image.fromarray(rgba, "RGBA")), 4, "rgb")
    assert (result.array[:2] == 200).all() and (result.array[2:] == 0).all()


def test_pad_keeps_aspect_ratio():
    wide = Image.fromarray(np.full((10, 40), 255, np.uint8))
    result = decode_bytes(encoded(wide), 20, "grayscale", resize="pad")
    column = result.array[:, 10, 0]
    assert column[0] == 0 and column[10] == 255  # black bars above and below


def test_undecodable_bytes_give_an_error_not_an_exception():
    result = decode_bytes(b"\x89PNG\r\n\x1a\n garbage", 8, "grayscale")
    assert result.array is None and result.error
