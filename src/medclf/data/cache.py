"""On-disk cache of decoded arrays, keyed by the file list, the image size and the colour mode.

One ``.npz`` per key (``medclf.config.paths.array_cache_file``); written atomically (a write that fails,
e.g. on a full disk, leaves nothing and the run goes on uncached), read without pickle.
A cache file that cannot be read back whole (truncated, foreign, missing arrays, rows that do not
match) is reported in one line, deleted and rebuilt: it only ever holds what decoding makes again.
"""

from __future__ import annotations

import hashlib
import json
import sys
import zipfile
from pathlib import Path

import numpy as np

from medclf.config.paths import array_cache_file
from medclf.core.io import atomic_path

#: Bump when decoding changes, so old caches are not reused (2: EXIF orientation, bit depth, frames, min size).
CACHE_VERSION = 2

FIELDS = ("relpath", "sha256", "orig_width", "orig_height", "orig_mode", "error")


def cache_key(listing: list[tuple[str, int, int]], image_size: int, color_mode: str, resize: str,
              max_pixels: int, min_side: int) -> str:
    """Hash of (file list with sizes and mtimes, size, colour mode, resize method, size limits, cache version);
    the size limits decide which files are skipped."""
    payload = json.dumps([CACHE_VERSION, image_size, color_mode, resize, listing, max_pixels, min_side])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cache_file(params: dict, candidates) -> Path:
    """The one cache file for the discovered ``candidates`` (relpath, file_bytes, mtime_ns) under the decoding
    settings in ``params`` — the same answer for the runner's up-front check and for loading."""
    listing = list(zip(candidates["relpath"], candidates["file_bytes"].tolist(), candidates["mtime_ns"].tolist()))
    key = cache_key(listing, params["image_size"], params["color_mode"], params["resize"], params["max_image_pixels"],
                    params["min_image_size"])
    return array_cache_file(params, key)


def save(path: Path, images: np.ndarray, records: dict[str, list]) -> bool:
    """Store decoded ``images`` (of the rows whose ``error`` is empty) and per-file ``records``; whether it did.

    A write that fails (a full disk, ``ENOSPC``, or a quota) leaves no file behind (:func:`atomic_path`
    removes the partial one) and is one line on stderr: the caller goes on with the decoded arrays it
    holds, uncached, since the cache only ever holds what decoding makes again.
    """
    arrays = {name: np.asarray(records[name]) for name in FIELDS}
    try:
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as handle:
                np.savez(handle, images=images, **arrays)
    except OSError as exc:
        print(f"medclf: cache file {path} could not be written ({exc.strerror or exc}): going on without it; "
              "free disk space in cache_dir (or give another with -p cache_dir=PATH) so the next run need "
              "not decode again", file=sys.stderr, flush=True)
        return False
    return True


def problem(path: Path) -> str | None:
    """Why the cache file at ``path`` cannot be used, from its table of contents only (cheap: no
    array is read); ``None`` when it is absent or looks whole. A damaged array body is found by :func:`load`."""
    if not path.exists():
        return None
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name.removesuffix(".npy") for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        return f"not a readable .npz archive ({exc})"
    missing = sorted({"images", *FIELDS} - names)
    return f"lacks the arrays {', '.join(missing)}" if missing else None


def _read(path: Path, relpaths: list[str] | None) -> tuple[np.ndarray, dict[str, list]]:
    with np.load(path, allow_pickle=False) as data:
        images, records = data["images"], {name: data[name].tolist() for name in FIELDS}
    lengths = {len(values) for values in records.values()}
    if len(lengths) != 1:
        raise ValueError("its per-file records differ in length")
    usable = sum(error == "" for error in records["error"])
    if images.dtype != np.uint8 or images.ndim != 4 or len(images) != usable:
        raise ValueError(f"it holds {len(images)} images of {images.dtype} for {usable} decodable files")
    if relpaths is not None and records["relpath"] != list(relpaths):
        raise ValueError("its files are not the data set's")
    return images, records


def load(path: Path, relpaths: list[str] | None = None) -> tuple[np.ndarray, dict[str, list]] | None:
    """``(images, records)`` from a cache file, or ``None`` when absent or unusable.

    An unusable file (see the module docstring; ``relpaths``, when given, must be its files in order)
    is deleted with one line on stderr naming it, so that the caller decodes again and rewrites it.
    """
    if not path.is_file():
        return None
    try:
        return _read(path, relpaths)
    except Exception as exc:  # noqa: BLE001 - whatever a damaged file raises (BadZipFile, EOFError, zlib.error, ...), it is rebuilt
        reason = problem(path) or (str(exc).splitlines() or [type(exc).__name__])[0]
        print(f"medclf: cache file {path} is unusable ({reason}): deleted, decoding the images again",
              file=sys.stderr, flush=True)
        path.unlink(missing_ok=True)
        return None
