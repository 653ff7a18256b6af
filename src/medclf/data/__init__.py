"""Data layer: discover → validate → split → decode once → cache.

Public entry points:

- :func:`check` checks the data before any notebook starts (stats files, decodes nothing);
- :func:`prepare` makes the data available (generates the synthetic set, downloads on request)
  or fails with one actionable line;
- :func:`manifest_fingerprint` fingerprints the file list without decoding (for up-to-date checks);
- :func:`load_dataset` returns a :class:`Dataset` of uint8 arrays, decoding only what the cache lacks;
- :func:`duplicate_groups` lists exact-content duplicates within and across splits.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from medclf.config import datasets
from medclf.config import paths as config
from medclf.config.settings import DataSettings
from medclf.data import cache, download, synthetic
from medclf.data.preflight import DataSummary, check_folder, check_npz
from medclf.data.dataset import FRAME_COLUMNS, SPLITS, Dataset
from medclf.data.decode import CHANNELS, decode_files, to_array
from medclf.data.discover import discover, extract_groups, listing_signature
from medclf.data.errors import DataError
from medclf.data.split import assign_splits, leaking_groups

__all__ = ["DataError", "DataSummary", "Dataset", "SPLITS", "check", "data_root", "duplicate_groups", "leaking_groups",
           "load_dataset", "manifest_fingerprint", "prepare"]


def data_root(params: dict) -> Path:
    """The data set's folder (or ``.npz`` file) from ``params["data_root"]``."""
    if not params.get("data_root"):
        raise DataError(f"no data root set for dataset '{params['dataset']}': pass --data-root PATH "
                        "(or -p data_root=PATH)")
    return config.resolve(params["data_root"])


def check(params: dict) -> DataSummary | None:
    """Check the data as the notebooks will load it, before any of them starts.

    Returns:
        The counts, skipped files and cache state; ``None`` when :func:`prepare` will make the data
        first (the synthetic set to generate, or a missing root with ``download``): check again after it.

    Raises:
        DataError: one line naming the path, what is wrong and what to do (see :mod:`medclf.data.preflight`).
    """
    root = data_root(params)
    info = datasets.get(params["dataset"])
    if info.layout == "generated":
        state = synthetic.state(root, params["synthetic_images_per_class"], params["synthetic_image_size"],
                                params["seed"])
        if state != "ready":
            return None
    elif not root.exists() and not root.is_symlink():
        if not params["download"]:
            raise DataError(download.missing_data_message(params["dataset"], root))
        if info.archive is None:
            raise DataError(f"there is no official download for '{params['dataset']}': put your data at {root} "
                            "and drop --download")
        return None
    return check_npz(root, params) if info.layout == "npz" else check_folder(root, params)


def prepare(params: dict) -> Path:
    """Make the data available at its root and return the root.

    Generates the synthetic set; downloads when ``params["download"]`` is true and the root is missing.

    Raises:
        DataError: the root is missing (the message says what to download and where to put it).
    """
    root = data_root(params)
    if datasets.get(params["dataset"]).layout == "generated":
        return synthetic.generate(root, params["synthetic_images_per_class"], params["synthetic_image_size"],
                                  params["seed"])
    if not root.exists():
        if not params["download"]:
            raise DataError(download.missing_data_message(params["dataset"], root))
        download.download(params["dataset"], root)
    return root


def manifest_fingerprint(params: dict) -> str:
    """Hash of every file under the data root (names, sizes, mtimes) and the decode settings.

    Cheap: it stats files and decodes nothing, so up-to-date checks stay fast on 27k images.
    """
    root = data_root(params)
    if not root.exists():
        raise DataError(download.missing_data_message(params["dataset"], root))
    if root.is_file():
        listing = [(root.name, root.stat().st_size, root.stat().st_mtime_ns)]
    else:
        listing = listing_signature(root)
    settings = [params["image_size"], params["color_mode"], params["resize"], cache.CACHE_VERSION,
                params["max_image_pixels"], params["min_image_size"]]
    return hashlib.sha256(json.dumps([settings, listing]).encode()).hexdigest()[:16]


def load_dataset(params: dict) -> Dataset:
    """Load, validate, split and decode the data set named by ``params``.

    Decoded arrays come from the on-disk cache when the file list and decode settings are unchanged.
    Files that are not images, are empty, truncated or undecodable are skipped and listed in
    ``Dataset.skipped``.

    Raises:
        DataError: missing root, unknown layout, missing or empty class, or no usable images.
    """
    root = prepare(params)
    data = DataSettings.of(params)  # checked once by the runner: only picked here
    if datasets.get(data.dataset).layout == "npz":
        frame, images, skipped = _load_npz(root, data)
    else:
        frame, images, skipped = _load_folder(root, params)
    class_names = list(params["class_names"] or sorted(frame["class_name"].unique()))
    frame["label"] = frame["class_name"].map({name: i for i, name in enumerate(class_names)}).astype(int)
    frame["group"] = extract_groups(frame["relpath"], params["group_pattern"])
    frame["split"] = assign_splits(frame, params)
    return Dataset(
        name=params["dataset"],
        frame=frame[list(FRAME_COLUMNS)].reset_index(drop=True),
        images=images,
        class_names=class_names,
        positive_class=params["positive_class"] or class_names[-1],
        skipped=skipped.reset_index(drop=True),
        manifest_hash=manifest_fingerprint(params),
        seed=params["seed"],
        select_on=params["select_on"],
        split_by_image=list(params["split_by_image"] or []),
    )


def _load_folder(root: Path, params: dict) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    candidates, skipped = discover(root, params["class_names"])
    path = cache.cache_file(params, candidates)
    cached = cache.load(path, candidates["relpath"].tolist())
    if cached is None:
        images, records = _decode_candidates(root, candidates, DataSettings.of(params))
        cache.save(path, images, records)
    else:
        images, records = cached
    records = pd.DataFrame(records)
    bad = records["error"] != ""
    skipped = pd.concat([skipped, records.loc[bad, ["relpath", "error"]].rename(columns={"error": "reason"})])
    frame = candidates.merge(records.loc[~bad].drop(columns="error"), on="relpath", how="inner")
    if frame.empty:
        raise DataError(f"no readable images under {root}: see the skipped files ({len(skipped)})")
    for name in params["class_names"] or []:
        if not (frame["class_name"] == name).any():
            raise DataError(f"class '{name}' has no readable images under {root}: every file was skipped")
    return frame, images, skipped.sort_values("relpath")


def _decode_candidates(root: Path, candidates: pd.DataFrame, data: DataSettings) -> tuple[np.ndarray, dict]:
    decoded = decode_files([root / p for p in candidates["relpath"]], data.image_size, data.color_mode,
                           data.resize, data.workers, desc=f"decoding {data.dataset}",
                           max_pixels=data.max_image_pixels, min_side=data.min_image_size)
    ok = [d.array for d in decoded if d.error is None]
    shape = (0, data.image_size, data.image_size, CHANNELS[data.color_mode])
    images = np.stack(ok) if ok else np.zeros(shape, np.uint8)
    records = {
        "relpath": candidates["relpath"].tolist(),
        "sha256": [d.sha256 for d in decoded],
        "orig_width": [d.orig_width for d in decoded],
        "orig_height": [d.orig_height for d in decoded],
        "orig_mode": [d.orig_mode for d in decoded],
        "error": [d.error or "" for d in decoded],
    }
    return images, records


def _load_npz(path: Path, data: DataSettings) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame]:
    """MedMNIST ``.npz``: official splits, labels 0/1 in ``<split>_labels``."""
    class_names = data.class_names or ["normal", "pneumonia"]
    try:
        npz = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path} is not a readable .npz file ({exc}): download the official MedMNIST file") from None
    frames, arrays = [], []
    with npz:
        for split in SPLITS:
            if f"{split}_images" not in npz or f"{split}_labels" not in npz:
                raise DataError(f"{path} lacks '{split}_images'/'{split}_labels': is it the MedMNIST file?")
            images, labels = npz[f"{split}_images"], npz[f"{split}_labels"].reshape(-1).astype(int)
            rows = [_npz_row(split, i, img, class_names[label]) for i, (img, label) in enumerate(zip(images, labels))]
            frames.append(pd.DataFrame(rows))
            arrays.append(_resize_arrays(images, data))
    return pd.concat(frames, ignore_index=True), np.concatenate(arrays), pd.DataFrame(columns=["relpath", "reason"])


def _npz_row(split: str, index: int, image: np.ndarray, class_name: str) -> dict:
    return {"relpath": f"{split}/{index}", "class_name": class_name, "source_split": split,
            "sha256": hashlib.sha256(image.tobytes()).hexdigest(), "file_bytes": image.nbytes,
            "orig_width": image.shape[1], "orig_height": image.shape[0], "orig_mode": "L" if image.ndim == 2 else "RGB"}


def _resize_arrays(images: np.ndarray, data: DataSettings) -> np.ndarray:
    from PIL import Image

    size, mode = data.image_size, data.color_mode
    if images.shape[1:3] == (size, size) and (images.ndim == 3) == (mode == "grayscale"):
        return images.reshape(len(images), size, size, CHANNELS[mode])
    return np.stack([to_array(Image.fromarray(image), size, mode, data.resize) for image in images])


def duplicate_groups(ds: Dataset) -> pd.DataFrame:
    """Files whose content is byte-identical to another file's.

    Returns:
        One row per duplicated file: ``dup_group`` (int), ``relpath``, ``split``, ``class_name``,
        ``sha256``; sorted by group.
    """
    frame = ds.frame
    dup = frame[frame.duplicated("sha256", keep=False)].copy()
    dup["dup_group"] = dup.groupby("sha256", sort=True).ngroup()
    return dup[["dup_group", "relpath", "split", "class_name", "sha256"]].sort_values(
        ["dup_group", "relpath"]).reset_index(drop=True)
