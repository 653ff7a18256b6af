"""Atomic file output: a reader never sees a half-written figure, table, notebook or cache file.

Everything is written to a temporary file in the destination folder and moved into place with
``os.replace``, which is atomic on POSIX; an interrupted write leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


_UMASK = os.umask(0)
os.umask(_UMASK)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success move it onto ``path``, else delete it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix, dir=path.parent)
    os.close(fd)
    tmp = Path(tmp)
    try:
        yield tmp
        tmp.chmod(0o666 & ~_UMASK)  # mkstemp makes 0600 files; give the usual permissions
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Atomically write ``text`` to ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def write_json(path: str | os.PathLike, data: Any) -> Path:
    """Atomically write ``data`` as indented JSON."""
    return write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def save_figure(fig, path: str | os.PathLike, dpi: int = 110) -> Path:
    """Atomically save a matplotlib figure (format from the suffix)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=path.suffix.lstrip(".") or "png")
    return path


def save_table(frame, path_without_suffix: str | os.PathLike) -> tuple[Path, Path]:
    """Atomically write a DataFrame as ``.csv`` and ``.md`` side by side."""
    base = Path(path_without_suffix)
    csv_path, md_path = base.with_suffix(".csv"), base.with_suffix(".md")
    write_text(csv_path, frame.to_csv(index=False))
    write_text(md_path, frame.to_markdown(index=False) + "\n")
    return csv_path, md_path
