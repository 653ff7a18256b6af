"""Decode one image file into a fixed-size uint8 array, whatever its mode (L, RGB, RGBA, P, 16-bit).

An image is read as a viewer shows it: its EXIF orientation is applied, and a 16-bit image is scaled by
the bit depth its values use (a 12-bit X-ray exported from DICOM into a 16-bit PNG keeps its contrast
instead of arriving nearly black).

Decoding never raises for a bad file: whatever PIL raises on it (unknown format, truncation, a header
declaring more than ``max_image_pixels`` pixels — a decompression bomb —, a corrupt stream), and an
image that cannot stand for one picture (several frames, fewer than ``min_image_size`` pixels on a side)
becomes a :class:`Decoded` with an ``error``, which callers list as a skipped file.
"""

from __future__ import annotations

import hashlib
import io
import re
import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm import tqdm

from medclf.core import progress

CHANNELS = {"grayscale": 1, "rgb": 3}
#: PIL's own default limit (``max_image_pixels`` in params/default.yaml has the same value).
DEFAULT_MAX_PIXELS = 89_478_485
#: Smallest side (pixels) an image may have to be decoded (``min_image_size`` in params/default.yaml has the
#: same value): a 1×1 or 2×2 file is a thumbnail or a placeholder, and scoring it like a picture is noise.
DEFAULT_MIN_SIDE = 8
#: Bit depths a 16-bit container commonly holds (DICOM exports: 10, 12 or 14 bits stored in 16).
_BIT_DEPTHS = (8, 10, 12, 14, 16)
#: The EXIF tag that says how the camera was held (1: upright).
_ORIENTATION = 0x0112
_LIMIT_LOCK = threading.Lock()


def limit_pixels(max_pixels: int) -> None:
    """The one place PIL's decompression-bomb limit is set: ``Image.MAX_IMAGE_PIXELS = max_pixels``.

    PIL then refuses (``DecompressionBombError``) any image over twice the limit as it opens the file;
    :func:`decode_bytes` skips those between one and two times it. PIL's warning for the latter, and its
    warnings about damaged metadata (``Corrupt EXIF data``, a TIFF tag too long), are silenced: a file is
    decoded or reported as skipped, in one line, and a warning per damaged tag would bury that line.
    """
    with _LIMIT_LOCK:
        Image.MAX_IMAGE_PIXELS = int(max_pixels)
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"PIL\.")


@dataclass(frozen=True)
class Decoded:
    """Result of decoding one file: the array, or why it could not be used."""

    array: np.ndarray | None
    sha256: str
    orig_width: int = 0
    orig_height: int = 0
    orig_mode: str = ""
    error: str | None = None


def to_8bit(img: Image.Image) -> Image.Image:
    """Bring any PIL mode to an 8-bit L or RGB image.

    16-bit and 32-bit integer images are scaled from the full range of the bit depth their values use
    (:func:`bit_depth`: 4095 for a 12-bit image stored in 16 bits, 65535 for a true 16-bit one), so
    relative intensities are kept and so is the contrast; float images are min-max scaled; transparency
    is composited on black.
    """
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        values = np.asarray(img, dtype=np.float64)
        if img.mode == "F":
            lo, hi = float(values.min()), float(values.max())
            values = (values - lo) / (hi - lo or 1.0) * 255.0
        else:
            top = float(values.max())
            full = 2.0 ** bit_depth(top) - 1 if top <= 65535 else top
            values = values / full * 255.0
        return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8), mode="L")
    if img.mode == "P":
        img = img.convert("RGBA") if "transparency" in img.info else img.convert("RGB")
    if img.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    if img.mode in ("L", "RGB"):
        return img
    return img.convert("RGB")


def bit_depth(max_value: float) -> int:
    """The smallest common bit depth (:data:`_BIT_DEPTHS`) whose range holds ``max_value``.

    A PNG's optional ``sBIT`` chunk would say so, but DICOM converters rarely write it; the values do
    tell: a 12-bit detector never exceeds 4095. A true 16-bit image whose brightest pixel is under 4096
    is then stretched as if 12-bit, which only brightens a very dark image; no contrast is lost.
    """
    for bits in _BIT_DEPTHS:
        if max_value < 2 ** bits:
            return bits
    return 16


def resize_square(img: Image.Image, size: int, method: str) -> Image.Image:
    """``stretch``: ignore aspect ratio (as the studies did); ``pad``: keep it and pad with black."""
    if method == "pad":
        return ImageOps.pad(img, (size, size), method=Image.Resampling.BILINEAR, color=0)
    return img.resize((size, size), Image.Resampling.BILINEAR)


def to_array(img: Image.Image, size: int, color_mode: str, resize: str = "stretch") -> np.ndarray:
    """A decoded PIL image of any mode as a ``(size, size, channels)`` uint8 array."""
    converted = to_8bit(img).convert("L" if color_mode == "grayscale" else "RGB")
    array = np.asarray(resize_square(converted, size, resize), dtype=np.uint8)
    return array.reshape(size, size, CHANNELS[color_mode])


def decode_bytes(data: bytes, size: int, color_mode: str, resize: str = "stretch",
                 max_pixels: int | None = None, min_side: int = DEFAULT_MIN_SIDE) -> Decoded:
    """Decode image bytes to a ``(size, size, channels)`` uint8 array; never raises for bad data.

    An image of more than ``max_pixels`` pixels (default: PIL's limit, set by :func:`limit_pixels`), one
    with a side under ``min_side`` pixels and one with several frames (an animated GIF, a multi-page
    TIFF: which frame is the picture is not ours to guess) are not decoded: the header is enough to skip
    them. The EXIF orientation is applied before resizing, as a viewer does.
    """
    digest = hashlib.sha256(data).hexdigest()
    limit = Image.MAX_IMAGE_PIXELS if max_pixels is None else max_pixels
    try:
        with Image.open(io.BytesIO(data)) as img:
            mode, (width, height) = img.mode, img.size
            if limit and width * height > limit:
                return Decoded(None, digest, width, height, mode,
                               error=_too_large(f"{width}×{height} = {width * height:,} pixels", limit))
            if min(width, height) < min_side:
                return Decoded(None, digest, width, height, mode,
                               error=f"too small: {width}×{height} pixels, under min_image_size {min_side} "
                                     "(lower it if such images are real)")
            frames = getattr(img, "n_frames", 1)
            if frames > 1:
                return Decoded(None, digest, width, height, mode,
                               error=f"{frames} frames (animated or multi-page): save the frame to classify "
                                     "as an image of its own")
            img.load()
            upright = ImageOps.exif_transpose(img) if img.getexif().get(_ORIENTATION, 1) != 1 else img
            array = to_array(upright, size, color_mode, resize)
    except Image.DecompressionBombError as exc:  # PIL's own check as it opened the file: over twice its limit
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{int(found.group(1)):,} pixels" if found else f"over {2 * Image.MAX_IMAGE_PIXELS:,} pixels"
        return Decoded(None, digest, error=_too_large(size, limit))
    except Exception as exc:  # noqa: BLE001 - any failure on one file is a reported skip, never the batch's end
        return Decoded(None, digest, error=_describe(exc))
    return Decoded(array, digest, width, height, mode)


def _too_large(size: str, limit: int) -> str:
    return (f"too large to decode: its header says {size}, over max_image_pixels {limit:,} "
            "(possibly a decompression bomb; raise the limit if it is a real image)")


def _describe(exc: Exception) -> str:
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    if "truncated" in text.lower():
        return f"truncated image ({text})"
    if isinstance(exc, UnidentifiedImageError):
        return "not a readable image (unknown format or corrupt header)"
    if isinstance(exc, (OSError, SyntaxError, ValueError)):
        return f"cannot decode ({text})"
    return f"cannot decode ({type(exc).__name__}: {text})"


def decode_files(paths: list[Path], size: int, color_mode: str, resize: str = "stretch",
                 workers: int = 2, desc: str = "decoding", max_pixels: int = DEFAULT_MAX_PIXELS,
                 min_side: int = DEFAULT_MIN_SIDE) -> list[Decoded]:
    """Decode many files with a thread pool (PIL releases the GIL), showing a progress bar; a file that
    cannot be read or decoded (:func:`decode_bytes`) comes back with its ``error``."""
    limit_pixels(max_pixels)

    def one(path: Path) -> Decoded:
        try:
            data = path.read_bytes()
        except OSError as exc:
            return Decoded(None, "", error=f"cannot read file ({exc.strerror or exc})")
        return decode_bytes(data, size, color_mode, resize, max_pixels, min_side)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool, progress.task(desc):
        return list(tqdm(pool.map(one, paths), total=len(paths), desc=desc, unit="img", mininterval=2.0,
                         disable=not progress.bars_wanted()))
