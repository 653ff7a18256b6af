"""Images are decoded as a viewer shows them: EXIF orientation, real bit depth, one frame, a minimum size."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medclf.data.decode import bit_depth, decode_bytes


def _png(array: np.ndarray, mode: str | None = None) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_12_bit_image_in_a_16_bit_png_keeps_its_contrast():
    """Values 0–4095 (a 12-bit X-ray exported from DICOM) must span the 8-bit range, not its bottom 16th."""
    ramp = np.tile(np.linspace(0, 4095, 256).astype(np.uint16), (256, 1))
    decoded = decode_bytes(_png(ramp), 256, "grayscale")
    assert decoded.error is None
    levels = np.unique(decoded.array)
    assert decoded.array.max() == 255 and decoded.array.min() == 0
    assert len(levels) >= 250, f"only {len(levels)} grey levels survive"


def test_a_true_16_bit_image_is_scaled_by_65535():
    ramp = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (64, 1))
    decoded = decode_bytes(_png(ramp), 64, "grayscale")
    assert decoded.array.max() == 255 and decoded.array[0, 32, 0] == pytest.approx(32 / 63 * 255, abs=2)


@pytest.mark.parametrize("value, bits", [(0, 8), (255, 8), (256, 10), (1023, 10), (4095, 12), (4096, 14), (65535, 16)])
def test_bit_depth_is_the_smallest_that_holds_the_values(value, bits):
    assert bit_depth(value) == bits


def test_the_exif_orientation_is_applied():
    """A landscape sensor image tagged 'rotate 90° clockwise to view' (orientation 6) arrives upright: the
    bright left column of the stored pixels becomes the top row."""
    stored = np.zeros((40, 80), np.uint8)
    stored[:, :10] = 255
    image = Image.fromarray(stored, "L")
    exif = image.getexif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", exif=exif.tobytes(), quality=95)
    decoded = decode_bytes(buffer.getvalue(), 40, "grayscale", resize="pad")
    assert decoded.error is None
    array = decoded.array[..., 0].astype(int)
    # upright it is 80 tall × 40 wide: padded into 40×40 it fills columns 10..29, its bright top rows 0..4
    assert array[:4, 12:28].mean() > 200 and array[-5:, 12:28].mean() < 60, array[:, 20]


def test_an_animated_gif_is_skipped_with_its_frame_count():
    frames = [Image.fromarray(np.full((16, 16), v, np.uint8), "L") for v in (0, 128, 255)]
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:])
    decoded = decode_bytes(buffer.getvalue(), 16, "grayscale")
    assert decoded.array is None and "3 frames" in decoded.error


@pytest.mark.parametrize("side", [1, 7])
def test_an_image_under_the_minimum_size_is_skipped(side):
    decoded = decode_bytes(_png(np.zeros((side, side), np.uint8)), 16, "grayscale")
    assert decoded.array is None and "too small" in decoded.error and "min_image_size" in decoded.error


def test_the_minimum_size_is_a_parameter():
    decoded = decode_bytes(_png(np.zeros((4, 4), np.uint8)), 16, "grayscale", min_side=2)
    assert decoded.error is None
