"""Checks of the data before any notebook starts: a usable root, two classes, a possible split, arrays that fit in memory.

Everything here stats files and reads no image, so the runner (``run_all.py``, ``--list`` included)
answers a bad data root in one line within a second or two, before any kernel or TensorFlow starts.
The notebooks load the same files with the same rules (:func:`medclf.data.load_dataset`).
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from medclf.data import cache
from medclf.data.dataset import SPLITS
from medclf.data.decode import CHANNELS
from medclf.data.discover import discover, extract_groups
from medclf.data.errors import DataError
from medclf.data.split import assign_splits

#: The decoded arrays may take at most this share of the machine's memory (training needs the rest).
MEMORY_SHARE = 0.5

#: Skipped files named in the runner's summary line; the EDA report lists them all.
SHOWN_SKIPPED = 5


@dataclass
class DataSummary:
    """What the checks found: counts per class and per working split, the skipped files, the cache's state."""

    root: Path
    classes: dict[str, int]
    splits: dict[str, int]
    skipped: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=["relpath", "reason"]))
    cache_file: Path | None = None
    cache_problem: str | None = None

    def lines(self) -> list[str]:
        """The runner's summary: one line of counts, one of skipped files (when any), one on the cache (when damaged)."""
        total = sum(self.classes.values())
        classes = ", ".join(f"{name} {n}" for name, n in self.classes.items())
        splits = ", ".join(f"{name} {n}" for name, n in self.splits.items())
        out = [f"data: {total} images under {self.root} ({classes}); split {splits}"]
        if len(self.skipped):
            shown = "; ".join(f"{r.relpath} ({r.reason})" for r in self.skipped.head(SHOWN_SKIPPED).itertuples())
            more = f"; and {len(self.skipped) - SHOWN_SKIPPED} more" if len(self.skipped) > SHOWN_SKIPPED else ""
            out.append(f"data: {len(self.skipped)} files skipped (listed in the EDA report): {shown}{more}")
        if self.cache_problem:
            out.append(f"data: cache file {self.cache_file} is unusable ({self.cache_problem}): it is deleted "
                       "and the images are decoded again")
        return out


def total_memory() -> int:
    """Physical memory of this machine in bytes (0 when unknown)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 0


def check_memory(n_images: int, params: dict, root: Path) -> None:
    """The decoded ``uint8`` arrays of ``n_images`` images at ``image_size`` must fit in :data:`MEMORY_SHARE` of memory.

    Raises:
        DataError: naming the need, the machine's memory and a size that would fit.
    """
    size, channels = params["image_size"], CHANNELS[params["color_mode"]]
    need, have = n_images * size * size * channels, total_memory()
    if have and need > MEMORY_SHARE * have:
        fits = int((MEMORY_SHARE * have / max(n_images * channels, 1)) ** 0.5)
        raise DataError(f"parameter 'image_size' = {size}: decoding the {n_images} images under {root} would take "
                        f"{need / 2**30:.1f} GiB of memory, more than half of this machine's {have / 2**30:.1f} GiB: "
                        f"give -p image_size={min(fits, size - 1)} or less")


def _require_every_split(counts: dict[str, dict[str, int]], class_names: list[str], root: Path,
                         official: set[str]) -> None:
    """Every working split must hold images of every class (the threshold, AUC and test metrics need both)."""
    for split in SPLITS:
        for name in class_names:
            if counts.get(split, {}).get(name, 0):
                continue
            if split in official:
                fix = (f"add {name} images to the official {split} folder"
                       + (" or use -p source_val=merge" if split == "val" else ""))
            else:
                key = {"train": "val_fraction / test_fraction", "val": "val_fraction", "test": "test_fraction"}[split]
                fix = f"add {name} images, raise {key}, or use -p split_mode=cell"
            raise DataError(f"data root {root}: the {split} split would hold no {name} image "
                            f"({sum(counts.get(s, {}).get(name, 0) for s in SPLITS)} {name} images in all): {fix}")


def check_folder(root: Path, params: dict) -> DataSummary:
    """Discover and split a class-folder tree as :func:`medclf.data.load_dataset` will, without decoding.

    Raises:
        DataError: an unusable root (see :mod:`medclf.data.discover`), too few images or patients to split,
            a split that would lack a class, or arrays too big for memory.
    """
    candidates, skipped = discover(root, params["class_names"])
    class_names = list(params["class_names"] or sorted(candidates["class_name"].unique()))
    frame = candidates.copy()
    frame["label"] = frame["class_name"].map({name: i for i, name in enumerate(class_names)}).astype(int)
    frame["group"] = extract_groups(frame["relpath"], params["group_pattern"])
    try:
        frame["split"] = assign_splits(frame, params)
    except DataError as exc:
        raise DataError(f"data root {root}: {exc}") from None
    counts = frame.groupby(["split", "class_name"]).size()
    by_split = {s: counts[s].to_dict() for s in counts.index.get_level_values(0).unique()}
    official = {s for s in ("val", "test") if (frame["source_split"] == s).any()}
    if params["source_val"] == "merge":
        official.discard("val")
    _require_every_split(by_split, class_names, root, official)
    check_memory(len(frame), params, root)
    cache_file = cache.cache_file(params, candidates)
    return DataSummary(root, {name: int((frame["class_name"] == name).sum()) for name in class_names},
                       {s: int((frame["split"] == s).sum()) for s in SPLITS}, skipped,
                       cache_file, cache.problem(cache_file))


def check_npz(path: Path, params: dict) -> DataSummary:
    """A MedMNIST ``.npz``: a readable archive with ``<split>_images`` and ``<split>_labels`` of two classes
    in every split; reads only the labels.

    Raises:
        DataError: a folder, an unreadable or foreign file, a split lacking a class, or arrays too big for memory.
    """
    class_names = list(params["class_names"] or ["normal", "pneumonia"])
    if path.is_dir():
        raise DataError(f"data root {path} is a folder: dataset '{params['dataset']}' reads one MedMNIST .npz file; "
                        "point --data-root at it")
    try:
        with zipfile.ZipFile(path) as archive:
            names = {name.removesuffix(".npy") for name in archive.namelist()}
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}): download the official MedMNIST file") from None
    splits: dict[str, int] = {}
    by_split: dict[str, dict[str, int]] = {}
    with np.load(path, allow_pickle=False) as npz:
        for split in SPLITS:
            if f"{split}_images" not in names or f"{split}_labels" not in names:
                raise DataError(f"{path} lacks '{split}_images'/'{split}_labels': is it the MedMNIST file?")
            try:
                labels = npz[f"{split}_labels"].reshape(-1)
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
                raise DataError(f"{path} is damaged ({exc}): download the official MedMNIST file again") from None
            if labels.size and not set(np.unique(labels).tolist()) <= {0, 1}:
                raise DataError(f"{path}: '{split}_labels' holds labels other than 0 and 1: medclf classifies two classes")
            splits[split] = int(labels.size)
            by_split[split] = {name: int((labels == i).sum()) for i, name in enumerate(class_names)}
    _require_every_split(by_split, class_names, path, set(SPLITS))
    check_memory(sum(splits.values()), params, path)
    classes = {name: sum(by_split[s][name] for s in SPLITS) for name in class_names}
    return DataSummary(path, classes, splits)
