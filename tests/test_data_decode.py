"""Every input mode loads correctly into the requested colour mode."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medclf.config.params import load_params
from medclf.data.decode import DEFAULT_MAX_PIXELS, decode_bytes, decode_files, limit_pixels


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
    result = decode_bytes(encoded(image), 2, "grayscale", min_side=1)
    assert result.array[..., 0].tolist() == [[0, 128], [255, 4]]


def test_transparency_is_composited_on_black():
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:2, :, 3] = 255  # top half opaque, bottom transparent
    result = decode_bytes(encoded(Image.fromarray(rgba, "RGBA")), 4, "rgb", min_side=1)
    assert (result.array[:2] == 200).all() and (result.array[2:] == 0).all()


def test_pad_keeps_aspect_ratio():
    wide = Image.fromarray(np.full((10, 40), 255, np.uint8))
    result = decode_bytes(encoded(wide), 20, "grayscale", resize="pad")
    column = result.array[:, 10, 0]
    assert column[0] == 0 and column[10] == 255  # black bars above and below


def test_undecodable_bytes_give_an_error_not_an_exception():
    result = decode_bytes(b"\x89PNG\r\n\x1a\n garbage", 8, "grayscale")
    assert result.array is None and result.error


def bomb_gif() -> bytes:
    """A valid 8×8 GIF whose header claims 65535×65535 pixels (four bytes changed)."""
    data = bytearray(encoded(Image.fromarray(GRAY[:8, :8], "L"), "GIF"))
    data[6:10] = b"\xff\xff\xff\xff"  # logical screen width and height
    return bytes(data)


def test_a_decompression_bomb_is_a_skip_with_its_reason(tmp_path):
    (tmp_path / "bomb.gif").write_bytes(bomb_gif())
    (tmp_path / "good.png").write_bytes(encoded(sources()["L"]))
    bomb, good = decode_files([tmp_path / "bomb.gif", tmp_path / "good.png"], 8, "grayscale")
    assert bomb.array is None and "decompression bomb" in bomb.error and "4,294,836,225 pixels" in bomb.error
    assert good.error is None and good.array.shape == (8, 8, 1)


def test_the_pixel_limit_skips_larger_images_and_is_set_in_pil(tmp_path):
    (tmp_path / "a.png").write_bytes(encoded(sources()["RGB"]))  # 16×16 = 256 pixels
    try:
        small, = decode_files([tmp_path / "a.png"], 8, "rgb", max_pixels=200)  # PIL only warns below 2×
        assert Image.MAX_IMAGE_PIXELS == 200 and small.array is None
        assert small.error.startswith("too large to decode") and "16×16" in small.error
        assert decode_files([tmp_path / "a.png"], 8, "rgb", max_pixels=256)[0].error is None
    finally:
        limit_pixels(DEFAULT_MAX_PIXELS)
    assert Image.MAX_IMAGE_PIXELS == DEFAULT_MAX_PIXELS


def test_the_default_limit_is_the_parameters_default():
    assert load_params()["max_image_pixels"] == DEFAULT_MAX_PIXELS


def test_random_byte_mutations_of_valid_images_never_raise(tmp_path):
    """Flip, overwrite or cut bytes of valid PNG, JPEG, GIF, BMP, TIFF and WebP files: every file decodes
    or comes back with an error; nothing escapes (PIL raised DecompressionBombError from such files)."""
    rng = np.random.default_rng(0)
    images = [encoded(sources()[mode], fmt) for mode, fmt in
              (("L", "PNG"), ("RGB", "JPEG"), ("P", "GIF"), ("RGB", "BMP"), ("I;16", "TIFF"), ("RGBA", "WEBP"))]
    files = []
    for i in range(240):
        data = bytearray(images[i % len(images)])
        for _ in range(int(rng.integers(1, 5))):
            at = int(rng.integers(0, len(data)))
            if rng.random() < 0.5:
                data[at] = int(rng.integers(0, 256))
            else:
                data[at:at + 4] = b"\xff\xff\xff\xff"[: len(data) - at]
        if rng.random() < 0.2:
            data = data[: int(rng.integers(1, len(data)))]
        files.append(tmp_path / f"m{i}.img")
        files[-1].write_bytes(bytes(data))
    results = decode_files(files, 8, "rgb")
    assert len(results) == len(files)
    for result in results:
        assert (result.array is None) != (result.error is None)
        if result.array is not None:
            assert result.array.shape == (8, 8, 3) and result.array.dtype == np.uint8
    assert any(r.error for r in results) and any(r.error is None for r in results)
