"""Discover image files in a class-folder tree and set aside files that are not images.

Layouts: ``ROOT/<class>/*`` or ``ROOT/<split>/<class>/*`` with split in train/val/test. A root
that cannot be used (missing, a file, empty, loose images without class folders, one class,
unreadable) is a :class:`DataError` of one line; a file that cannot be used (not an image, empty,
a broken or looping symbolic link, not a regular file) is set aside with its reason.
"""

from __future__ import annotations

import errno
import os
import re
import stat as stat_mode
from pathlib import Path

import pandas as pd

from medclf.data.errors import DataError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
SPLIT_FOLDERS = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}

#: A classifier here separates exactly two classes (negative, positive): one sigmoid output.
N_CLASSES = 2


def _entries(path: Path) -> list[Path]:
    """The entries of folder ``path``; an unreadable folder is a DataError naming it."""
    try:
        return sorted(path.iterdir())
    except PermissionError:
        raise DataError(f"cannot read folder {path} (permission denied): make it readable "
                        f"(chmod -R u+rX '{path}') or point --data-root elsewhere") from None
    except OSError as exc:
        raise DataError(f"cannot read folder {path} ({exc.strerror or exc}): check the path and its permissions") from None


def _subdirs(path: Path) -> list[Path]:
    return [p for p in _entries(path) if p.is_dir() and not p.name.startswith(".")]


def detect_layout(root: Path) -> str:
    """``"split"`` when every subfolder of ``root`` is a split name, ``"class"`` otherwise.

    Raises:
        DataError: ``root`` does not exist, is not a folder, is unreadable, or has no subfolders.
    """
    if not root.exists():
        kind = "is a broken symbolic link" if root.is_symlink() else "does not exist"
        raise DataError(f"data root {root} {kind}: pass --data-root PATH (or -p data_root=PATH) "
                        "pointing at the data set folder, or --download")
    if not root.is_dir():
        raise DataError(f"data root {root} is a file, not a folder: point --data-root at the folder holding "
                        "one folder per class (ROOT/<class>/<images>)")
    dirs = _subdirs(root)
    if not dirs:
        loose = [p for p in _entries(root) if not p.name.startswith(".")]
        if not loose:
            raise DataError(f"data root {root} is empty: put the images in one folder per class "
                            f"({root}/<class>/<images>)")
        images = sum(p.suffix.lower() in IMAGE_SUFFIXES for p in loose)
        raise DataError(f"data root {root} holds {len(loose)} files ({images} images) but no class folders: "
                        f"move the images into one folder per class ({root}/<class>/<images>)")
    names = {d.name.lower() for d in dirs}
    if names <= set(SPLIT_FOLDERS):
        return "split"
    if names & set(SPLIT_FOLDERS):
        raise DataError(f"unknown layout in {root}: it mixes split folders and other folders "
                        f"({', '.join(sorted(d.name for d in dirs))})")
    return "class"


def _class_folders(parent: Path, class_names: list[str] | None, root: Path) -> dict[str, Path]:
    found = {d.name: d for d in _subdirs(parent)}
    if class_names is None:
        if not found:
            raise DataError(f"no class folders in {parent}: expected {parent}/<class>/<images>, one folder per class")
        if len(found) != N_CLASSES:
            loose = [p.name for p in _entries(parent) if not p.is_dir() and not p.name.startswith(".")]
            ignored = f"; the {len(loose)} files beside them are ignored" if loose else ""
            what = "only one class folder" if len(found) == 1 else f"{len(found)} class folders"
            where = f"data root {parent}" if parent == root else str(parent)
            raise DataError(f"{where} has {what} ({', '.join(found)}){ignored}: medclf classifies two classes, "
                            "so give it one folder per class (negative, positive), or name the two to use "
                            "with -p 'class_names=[NEG, POS]'")
        return found
    for name in class_names:
        path = parent / name
        if name not in found:
            if path.exists() or path.is_symlink():
                raise DataError(f"class folder {path} is not a folder (a file or a broken link): "
                                f"replace it with a folder of that class's images")
            raise DataError(f"class folder {path} is missing: expected folders {', '.join(class_names)} in {parent}")
    return {c: found[c] for c in class_names}


def _walk(folder: Path, root: Path, skipped: list[dict]) -> list[Path]:
    """Every non-folder entry under ``folder`` (symbolic links included, not followed into folders),
    sorted as paths; unreadable subfolders and links to folders go to ``skipped``."""
    def onerror(exc: OSError) -> None:
        if Path(exc.filename) == folder:
            _entries(folder)  # raises the one-line DataError
        skipped.append({"relpath": Path(exc.filename).relative_to(root).as_posix() + "/",
                        "reason": f"unreadable folder ({exc.strerror or exc})"})

    files = []
    for dirpath, dirnames, filenames in os.walk(folder, onerror=onerror):
        for name in list(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                dirnames.remove(name)
                rel = Path(dirpath, name).relative_to(root).as_posix()
                skipped.append({"relpath": rel, "reason": "symbolic link to a folder (not followed)"})
        files += [Path(dirpath, name) for name in filenames]
    return sorted(files)


def file_problem(path: Path) -> tuple[os.stat_result | None, str | None]:
    """``(stat, None)`` for a usable regular file, ``(None, reason)`` for a broken or looping
    symbolic link, an unreadable entry or something that is not a regular file."""
    try:
        st = path.stat()
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "symbolic link loop"
        if path.is_symlink() and exc.errno == errno.ENOENT:
            return None, f"broken symbolic link (target {os.readlink(path)} does not exist)"
        return None, f"cannot be read ({exc.strerror or exc})"
    if not stat_mode.S_ISREG(st.st_mode):
        return None, "not a regular file"
    return st, None


def unusable_entry(path: Path) -> str | None:
    """Why the directory entry ``path`` cannot be read as a file (:func:`file_problem`), or None."""
    return file_problem(path)[1]


def walk_files(folder: Path) -> tuple[list[Path], list[tuple[Path, str]]]:
    """The readable files under ``folder`` (recursively, sorted; links to files count) and the entries that
    are not (dangling or looping links, links to folders, unreadable subfolders), each with its reason."""
    folder = Path(folder)
    skipped: list[dict] = []
    files, unusable = [], []
    for path in _walk(folder, folder, skipped):
        reason = file_problem(path)[1]
        (unusable.append((path, reason)) if reason else files.append(path))
    unusable += [(folder / entry["relpath"].rstrip("/"), entry["reason"]) for entry in skipped]
    return sorted(files), sorted(unusable)


def discover(root: Path, class_names: list[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """List the candidate image files under ``root``.

    Args:
        root: the data set folder.
        class_names: expected class folders; ``None`` takes the class folders found (there must be two).

    Returns:
        ``(candidates, skipped)``: candidates has columns ``relpath, class_name, source_split, file_bytes,
        mtime_ns``; skipped has ``relpath, reason`` for files that are not images, are empty, are
        broken or looping symbolic links, and for unreadable subfolders.

    Raises:
        DataError: missing, unreadable or empty root, unknown layout, a missing class folder, a number of
            class folders other than two, or a class with no files.
    """
    root = Path(root)
    layout = detect_layout(root)
    parents = ({SPLIT_FOLDERS[d.name.lower()]: d for d in _subdirs(root)} if layout == "split" else {"": root})
    rows, skipped = [], []
    found_names: set[str] = set()
    for split, parent in parents.items():
        folders = _class_folders(parent, class_names, root)
        found_names |= set(folders)
        for class_name, folder in folders.items():
            for path in _walk(folder, root, skipped):
                relpath = path.relative_to(root).as_posix()
                st, reason = file_problem(path)
                reason = reason or skip_reason(path, st.st_size)
                if reason:
                    skipped.append({"relpath": relpath, "reason": reason})
                else:
                    rows.append({"relpath": relpath, "class_name": class_name, "source_split": split,
                                 "file_bytes": st.st_size, "mtime_ns": st.st_mtime_ns})
    if class_names is None and len(found_names) != N_CLASSES:
        raise DataError(f"the split folders of {root} name {len(found_names)} classes ({', '.join(sorted(found_names))}): "
                        "medclf classifies two; use the same two class folders in every split, or name them "
                        "with -p 'class_names=[NEG, POS]'")
    candidates = pd.DataFrame(rows, columns=["relpath", "class_name", "source_split", "file_bytes", "mtime_ns"])
    _require_every_class(candidates, root, class_names or sorted(found_names))
    skipped = pd.DataFrame(skipped, columns=["relpath", "reason"])
    return candidates, skipped.sort_values("relpath", ignore_index=True)


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
    """Every file under ``root`` as ``(relpath, size, mtime_ns)``, sorted: cheap change detection.

    A broken or looping symbolic link counts with its own (link) size and time; unreadable
    subfolders are left out (discovery lists them as skipped).
    """
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            full = os.path.join(dirpath, name)
            try:
                st = os.stat(full)
            except OSError:
                try:
                    st = os.lstat(full)
                except OSError:
                    continue
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
