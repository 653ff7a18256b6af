"""Discover image files in a class-folder tree and set aside files that are not images.

Layouts: ``ROOT/<class>/*`` or ``ROOT/<split>/<class>/*`` with split in train/val/test.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from pathlib import Path

import pandas as pd

from medclf.data.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _subdirs(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))


def detect_layout(root: Path) -> str:
    """``"split"`` when every subfolder of ``root`` is a split name, ``"class"`` otherwise.

    Raises:
        DataError: ``root`` does not exist, is not a folder, or has no subfolders.
    """
    if not root.exists():
        raise DataError(f"data root {root} does not exist: pass --data-root PATH (or -p data_root=PATH) "
                        "pointing at the data set folder, or --download")
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder: point --data-root at the folder holding the class folders")
    dirs = _subdirs(root)
    if not dirs:
        raise DataError(f"unknown layout in {root}: expected class folders (ROOT/<class>/*) "
                        "or split folders (ROOT/train/<class>/*)")
    names = {d.name.lower() for d in dirs}
    if names <= set(SPLIT_FOLDERS):
        return "split"
    if names & set(SPLIT_FOLDERS):
        raise DataError(f"unknown layout in {root}: it mixes split folders and other folders "
                        f"({', '.join(sorted(d.name for d in dirs))})")
    return "class"


def _class_folders(parent: Path, class_names: list[str] | None) -> dict[str, Path]:
    found = {d.name: d for d in _subdirs(parent)}
    if class_names is None:
        return found
    missing = [c for c in class_names if c not in found]
    if missing:
        raise DataError(f"class folder {parent / missing[0]} is missing: expected folders "
                        f"{', '.join(class_names)} in {parent}")
    return {c: found[c] for c in class_names}


def unusable_entry(path: Path) -> str | None:
    """Why the directory entry ``path`` cannot be read as a file (a dangling or looping link, a link to a
    folder, a pipe or device), or None for a regular file or a link to one."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if not path.is_symlink():
            return f"cannot read file ({exc.strerror or exc})"
        if exc.errno == errno.ELOOP:
            return "symbolic link that loops (it points back at itself)"
        return f"dangling symbolic link (its target {os.readlink(path)} does not exist)"
    if stat.S_ISDIR(mode):
        return f"symbolic link to a folder ({os.readlink(path)}), not followed: pass the folder itself"
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe, socket or device)"
    return None


def walk_files(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The files under ``folder`` (recursively, sorted; links to files count) and the entries that are
    not readable files, each with its :func:`unusable_entry` reason. Links to folders are not followed."""
    files, unusable = [], []
    for dirpath, dirnames, filenames in os.walk(folder):
        base = Path(dirpath)
        entries = [base / name for name in filenames] + [base / name for name in dirnames
                                                          if (base / name).is_symlink()]
        for path in entries:
            reason = unusable_entry(path)
            if reason:
                unusable.append((path, reason))
            else:
                files.append(path)
    return sorted(files), sorted(unusable)


def discover(root: Path, class_names: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """List the candidate image files under ``root``.

    Args:
        root: the data set folder.
        class_names: expected class folders; ``None`` takes every class folder found.

    Returns:
        ``(candidates, skipped)``: candidates has columns ``relpath, class_name, source_split, file_bytes,
        mtime_ns``; skipped has ``relpath, reason`` for files that are not images or are empty.

    Raises:
        DataError: missing root, unknown layout, a missing class folder, or a class with no files.
    """
    root = Path(root)
    layout = detect_layout(root)
    parents = ({SPLIT_FOLDERS[d.name.lower()]: d for d in _subdirs(root)} if layout == "split" else {"": root})
    rows, skipped = [], []
    for split, parent in parents.items():
        folders = _class_folders(parent, class_names)
        if not folders:
            raise DataError(f"no class folders in {parent}: expected {parent}/<class>/<images>")
        for class_name, folder in folders.items():
            found, unusable = walk_files(folder)
            skipped += [{"relpath": path.relative_to(root).as_posix(), "reason": why} for path, why in unusable]
            for path in found:
                relpath = path.relative_to(root).as_posix()
                info = path.stat()
                reason = skip_reason(path, info.st_size)
                if reason:
                    skipped.append({"relpath": relpath, "reason": reason})
                else:
                    rows.append({"relpath": relpath, "class_name": class_name, "source_split": split,
                                 "file_bytes": info.st_size, "mtime_ns": info.st_mtime_ns})
    candidates = pd.DataFrame(rows, columns=["relpath", "class_name", "source_split", "file_bytes", "mtime_ns"])
    _require_every_class(candidates, root, class_names or sorted({r["class_name"] for r in rows}))
    return candidates, pd.DataFrame(skipped, columns=["relpath", "reason"])


def skip_reason(path: Path, size: int) -> str | None:
    """Why a file of ``size`` bytes is not used as an image (suffix not in :data:`IMAGE_SUFFIXES`, or empty); None if it is."""
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        return f"not an image file ({path.suffix or path.name})"
    if size == 0:
        return "empty file (0 bytes)"
    return None


def _require_every_class(candidates: pd.DataFrame, root: Path, class_names: list[str]) -> None:
    counts = candidates["class_name"].value_counts()
    for name in class_names:
        if counts.get(name, 0) == 0:
            raise DataError(f"class '{name}' has no image files under {root}: add images to its folder "
                            "or remove the class from class_names")


def listing_signature(root: Path) -> list[tuple[str, int, int]]:
    """Every file under ``root`` as ``(relpath, size, mtime_ns)``, sorted: cheap change detection."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:  # a dangling or looping link: listed (and skipped) by discover
                st = os.lstat(full)
            out.append((os.path.relpath(full, root), st.st_size, st.st_mtime_ns))
    return out


def extract_groups(relpaths: pd.Series, pattern: str | None) -> pd.Series:
    """Patient/group id of each file: the first regex group matched on the file name.

    Without a pattern, or where it does not match, a file is its own group (its relative path).
    """
    if not pattern:
        return relpaths.copy()
    regex = re.compile(pattern)
    matched = relpaths.map(lambda p: (m := regex.search(Path(p).name)) and m.group(1))
    return matched.where(matched.notna() & (matched != ""), relpaths)
