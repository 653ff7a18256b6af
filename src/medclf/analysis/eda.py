"""Exploratory data analysis: computations only (tables and arrays), no plotting.

Every function takes a :class:`~medclf.data.dataset.Dataset` (or one of its parts) and returns a
pandas DataFrame, a NumPy array or a dict of arrays; :mod:`medclf.plots.eda` draws them and
``notebooks/01_eda.ipynb`` shows and saves them.

Large arrays (malaria: ~27k RGB images) are reduced in chunks, so no float copy of the whole
image stack is ever made.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
from skimage.color import rgb2hsv
from skimage.filters import gaussian

from medclf.data.dataset import SPLITS

#: Label used for files that come from no split folder (``source_split == ""``).
NO_SOURCE_SPLIT = "(none)"
#: Row / column label of totals in pivot tables.
TOTAL = "total"

_CHUNK_VALUES = 1 << 22  # ~4M pixel values per chunk: 32 MB as float64


# --------------------------------------------------------------------------- counts


def class_counts(ds, by: str = "split") -> pd.DataFrame:
    """Tidy image counts per split (or per source split) and class.

    Args:
        ds: the data set.
        by: ``"split"`` (working split) or ``"source_split"`` (the official split folder the
            file came from; files from no split folder are listed as :data:`NO_SOURCE_SPLIT`).

    Returns:
        Columns ``<by>, class_name, count``; every (split, class) pair present in the data or
        in :data:`SPLITS` is a row (zero counts included), splits in train/val/test order.
    """
    if by not in ("split", "source_split"):
        raise ValueError(f"by must be 'split' or 'source_split'; got {by!r}")
    keys = ds.frame[by].fillna("").replace("", NO_SOURCE_SPLIT)
    splits = ordered_splits(keys.unique(), include_all=(by == "split"))
    counts = pd.crosstab(keys, ds.frame["class_name"]).reindex(
        index=splits, columns=ds.class_names, fill_value=0)
    tidy = counts.stack().rename("count").reset_index()
    tidy.columns = [by, "class_name", "count"]
    tidy["count"] = tidy["count"].astype(int)
    return tidy


def counts_pivot(tidy: pd.DataFrame) -> pd.DataFrame:
    """Pivot tidy counts (from :func:`class_counts`) to splits x classes with totals.

    Returns:
        One row per split plus a :data:`TOTAL` row; one column per class plus :data:`TOTAL`.
    """
    by = tidy.columns[0]
    table = tidy.pivot(index=by, columns="class_name", values="count")
    table = table.reindex(index=pd.unique(tidy[by]), columns=pd.unique(tidy["class_name"]))
    table[TOTAL] = table.sum(axis=1)
    table.loc[TOTAL] = table.sum(axis=0)
    table.columns.name = None
    return table.astype(int)


def class_shares(pivot: pd.DataFrame) -> pd.DataFrame:
    """Share of each class within each row of a :func:`counts_pivot` table (rows sum to 1)."""
    classes = [c for c in pivot.columns if c != TOTAL]
    totals = pivot[TOTAL].replace(0, np.nan)
    return pivot[classes].div(totals, axis=0).round(4)


def ordered_splits(values, include_all: bool) -> list[str]:
    """train, val, test (all three, or those among ``values``), then any other split name in ``values``, sorted."""
    known = [s for s in SPLITS if include_all or s in set(values)]
    return known + sorted(set(values) - set(SPLITS))


# --------------------------------------------------------------------------- sizes


def size_stats(ds) -> pd.DataFrame:
    """Original (pre-resize) image sizes per class: min / median / max / mean of width and height.

    Returns:
        One row per class (label order), columns ``class_name, images,
        width_min, width_median, width_max, width_mean, height_min, ... , height_mean``.
    """
    frame = ds.frame
    grouped = frame.groupby("class_name", sort=False)
    parts = {"images": grouped.size()}
    for side in ("width", "height"):
        column = grouped[f"orig_{side}"]
        for stat in ("min", "median", "max", "mean"):
            parts[f"{side}_{stat}"] = column.agg(stat)
    table = pd.DataFrame(parts).reindex(ds.class_names)
    table.index.name = "class_name"
    return table.reset_index().round(1)


def mode_counts(ds) -> pd.DataFrame:
    """Counts of source image modes (``L``, ``RGB``, ...) per class, to spot mixed encodings."""
    table = pd.crosstab(ds.frame["class_name"], ds.frame["orig_mode"]).reindex(ds.class_names, fill_value=0)
    table.columns.name = None
    table.index.name = "class_name"
    return table.reset_index()


# --------------------------------------------------------------------------- intensities


def _chunks(indices: np.ndarray, values_per_image: int) -> Iterator[np.ndarray]:
    step = max(1, _CHUNK_VALUES // max(1, values_per_image))
    for start in range(0, len(indices), step):
        yield indices[start:start + step]


def image_stats(ds) -> pd.DataFrame:
    """Per-image intensity statistics of the decoded uint8 arrays.

    Returns:
        One row per image (row order of ``ds.frame``): ``relpath, split, class_name, mean, std,
        min, max`` and, for 3-channel data, ``mean_R, mean_G, mean_B``.
    """
    images = ds.images
    n, channels = len(images), images.shape[-1]
    values_per_image = int(np.prod(images.shape[1:]))
    out = {key: np.zeros(n) for key in ("mean", "sq_mean", "min", "max")}
    channel_means = np.zeros((n, channels))
    for idx in _chunks(np.arange(n), values_per_image):
        x = images[idx].reshape(len(idx), -1, channels).astype(np.float64)
        flat = x.reshape(len(idx), -1)
        out["mean"][idx] = flat.mean(axis=1)
        out["sq_mean"][idx] = (flat ** 2).mean(axis=1)
        out["min"][idx] = flat.min(axis=1)
        out["max"][idx] = flat.max(axis=1)
        channel_means[idx] = x.mean(axis=1)
    table = ds.frame[["relpath", "split", "class_name"]].reset_index(drop=True).copy()
    table["mean"] = out["mean"]
    table["std"] = np.sqrt(np.maximum(out["sq_mean"] - out["mean"] ** 2, 0.0))
    table["sq_mean"] = out["sq_mean"]
    table["min"], table["max"] = out["min"], out["max"]
    if channels == 3:
        for c, name in enumerate("RGB"):
            table[f"mean_{name}"] = channel_means[:, c]
    return table


def intensity_stats(ds, per_image: pd.DataFrame | None = None) -> pd.DataFrame:
    """Pixel-value statistics per class over all pixels of all images of the class.

    Args:
        ds: the data set (all images have the same size, so class moments are averages of
            per-image moments).
        per_image: the output of :func:`image_stats`, to avoid computing it twice.

    Returns:
        One row per class: ``class_name, images, mean, std, min, max``, plus ``mean_R/G/B``
        for RGB data, and ``image_mean_std`` (spread of the per-image means).
    """
    per_image = image_stats(ds) if per_image is None else per_image
    rows = []
    for name in ds.class_names:
        part = per_image[per_image["class_name"] == name]
        mean = part["mean"].mean()
        row = {"class_name": name, "images": len(part), "mean": mean,
               "std": float(np.sqrt(max(part["sq_mean"].mean() - mean ** 2, 0.0))),
               "min": part["min"].min(), "max": part["max"].max(),
               "image_mean_std": part["mean"].std(ddof=0)}
        for channel in ("R", "G", "B"):
            if f"mean_{channel}" in part:
                row[f"mean_{channel}"] = part[f"mean_{channel}"].mean()
        rows.append(row)
    return pd.DataFrame(rows).round(3)


def pixel_histograms(ds, density: bool = True) -> pd.DataFrame:
    """Histogram of pixel values 0..255 per class (all channels pooled).

    Returns:
        Index ``value`` 0..255, one column per class; each column sums to 1 when ``density``.
    """
    labels = ds.frame["class_name"].to_numpy()
    values_per_image = int(np.prod(ds.images.shape[1:]))
    table = {}
    for name in ds.class_names:
        counts = np.zeros(256, dtype=np.int64)
        for idx in _chunks(np.flatnonzero(labels == name), values_per_image):
            counts += np.bincount(ds.images[idx].ravel(), minlength=256)
        table[name] = counts / max(counts.sum(), 1) if density else counts
    frame = pd.DataFrame(table, index=pd.RangeIndex(256, name="value"))
    return frame


def mean_images(ds) -> dict[str, np.ndarray]:
    """Pixel-wise mean image of each class.

    Returns:
        ``{class_name: float32 array (S, S, C)}`` in label order, values in 0..255; a class with
        no images is left out.
    """
    labels = ds.frame["class_name"].to_numpy()
    values_per_image = int(np.prod(ds.images.shape[1:]))
    means = {}
    for name in ds.class_names:
        rows = np.flatnonzero(labels == name)
        if len(rows) == 0:
            continue
        total = np.zeros(ds.images.shape[1:], dtype=np.float64)
        for idx in _chunks(rows, values_per_image):
            total += ds.images[idx].sum(axis=0, dtype=np.float64)
        means[name] = (total / len(rows)).astype(np.float32)
    return means


# --------------------------------------------------------------------------- samples


def sample_indices(ds, n: int = 8, seed: int | None = None,
                   split: str | None = None) -> dict[str, np.ndarray]:
    """Pick a reproducible random sample of row indices per class.

    Args:
        ds: the data set.
        n: images per class (notebook 01 passes the ``eda_samples_per_class`` setting).
        seed: defaults to the seed the data set was split with (``ds.seed``).
        split: restrict to one working split; ``None`` samples from all.

    Returns:
        ``{class_name: row indices}`` in label order, each of length ``min(n, images of class)``.
    """
    seed = ds.seed if seed is None else seed
    rng = np.random.default_rng(seed)
    mask = np.ones(len(ds.frame), bool) if split is None else ds.frame["split"].to_numpy() == split
    labels = ds.frame["class_name"].to_numpy()
    picks = {}
    for name in ds.class_names:
        rows = np.flatnonzero(mask & (labels == name))
        picks[name] = np.sort(rng.choice(rows, size=min(n, len(rows)), replace=False))
    return picks


# --------------------------------------------------------------------------- duplicates


def duplicate_table(dups: pd.DataFrame) -> pd.DataFrame:
    """One row per duplicate group (from :func:`medclf.data.duplicate_groups`).

    Returns:
        Columns ``dup_group, files, splits, classes, across_splits, cross_class, relpaths``.
    """
    columns = ["dup_group", "files", "splits", "classes", "across_splits", "cross_class", "relpaths"]
    if dups.empty:
        return pd.DataFrame(columns=columns)
    grouped = dups.groupby("dup_group", sort=True)
    table = pd.DataFrame({
        "files": grouped.size(),
        "splits": grouped["split"].agg(lambda s: ", ".join(ordered_splits(s.unique(), include_all=False))),
        "classes": grouped["class_name"].agg(lambda s: ", ".join(sorted(s.unique()))),
        "across_splits": grouped["split"].nunique() > 1,
        "cross_class": grouped["class_name"].nunique() > 1,
        "relpaths": grouped["relpath"].agg(lambda s: "; ".join(sorted(s))),
    }).reset_index()
    return table[columns]


def duplicates_summary(dups: pd.DataFrame) -> pd.DataFrame:
    """Headline numbers about exact-content duplicates.

    Args:
        dups: output of :func:`medclf.data.duplicate_groups` (``dup_group, relpath, split,
            class_name``; one row per file that has a twin).

    Returns:
        Columns ``metric, value`` with: duplicate groups, files in duplicate groups, redundant
        copies (files minus groups), groups within one split, groups across splits (leakage
        between train/val/test), groups spanning classes (label noise).
    """
    table = duplicate_table(dups)
    groups = len(table)
    files = int(table["files"].sum()) if groups else 0
    across = int(table["across_splits"].sum()) if groups else 0
    cross_class = int(table["cross_class"].sum()) if groups else 0
    metrics = [("duplicate groups", groups), ("files in duplicate groups", files),
               ("redundant copies", files - groups), ("groups within one split", groups - across),
               ("groups across splits", across), ("groups spanning classes", cross_class)]
    return pd.DataFrame(metrics, columns=["metric", "value"])


def skipped_summary(skipped: pd.DataFrame) -> pd.DataFrame:
    """Number of skipped files per reason (``reason, files``), most frequent first."""
    if skipped.empty:
        return pd.DataFrame(columns=["reason", "files"])
    counts = skipped["reason"].value_counts()
    return pd.DataFrame({"reason": counts.index, "files": counts.to_numpy()})


# --------------------------------------------------------------------------- colour and blur


def hsv_channels(image: np.ndarray) -> np.ndarray:
    """Hue, saturation and value of an RGB image, each in 0..1.

    Args:
        image: uint8 ``(S, S, 3)``.

    Returns:
        float array ``(S, S, 3)``: ``[..., 0]`` hue, ``[..., 1]`` saturation, ``[..., 2]`` value.
        The stained parasites of malaria cells stand out in saturation.
    """
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"hsv_channels needs an RGB image (S, S, 3); got shape {image.shape}")
    return rgb2hsv(image)


def gaussian_blur(image: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """Gaussian-blur an image the way the malaria studies did (5x5 kernel, sigma 1).

    The kernel is truncated at 2 sigma, so sigma=1 gives a 5x5 kernel. Each channel is blurred
    on its own.

    Args:
        image: uint8 ``(S, S, C)`` or ``(S, S)``.
        sigma: standard deviation in pixels.

    Returns:
        uint8 array of the same shape.
    """
    channel_axis = -1 if image.ndim == 3 else None
    blurred = gaussian(image.astype(np.float64), sigma=sigma, truncate=2.0, mode="reflect",
                       channel_axis=channel_axis, preserve_range=True)
    return np.clip(np.rint(blurred), 0, 255).astype(np.uint8)
