"""On-disk cache of decoded arrays, keyed by the file list, the image size and the colour mode.

One ``.npz`` per key (``medclf.config.paths.array_cache_file``); written atomically, read without pickle.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from medclf.core.io import atomic_path

#: Bump when decoding changes, so old caches are not reused.
CACHE_VERSION = 1

FIELDS = ("relpath", "sha256", "orig_width", "orig_height", "orig_mode", "error")


def cache_key(listing: list[tuple[str, int, int]], image_size: int, color_mode: str, resize: str,
              max_pixels: int | None = None) -> str:
    """Hash of (file list with sizes and mtimes, size, colour mode, resize method, pixel limit, cache version);
    the pixel limit decides which files are skipped."""
    payload = json.dumps([CACHE_VERSION, image_size, color_mode, resize, listing]
                         + ([] if max_pixels is None else [max_pixels]))
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def save(path: Path, images: np.ndarray, records: dict[str, list]) -> None:
    """Store decoded ``images`` (of the rows whose ``error`` is empty) and per-file ``records``."""
    arrays = {name: np.asarray(records[name]) for name in FIELDS}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.savez(handle, images=images, **arrays)


def load(path: Path) -> tuple[np.ndarray, dict[str, list]] | None:
    """``(images, records)`` from a cache file, or ``None`` when absent or unreadable."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as data:
            return data["images"], {name: data[name].tolist() for name in FIELDS}
    except (OSError, ValueError, KeyError):
        return None
