"""Assign train / val / test, grouped by patient so that no patient is on both sides of a split."""

from __future__ import annotations

import numpy as np
import pandas as pd
from medclf.data.errors import DataError


def fold_share(fraction: float, tolerance: float = 0.15, max_folds: int = 20) -> tuple[int, int]:
    """``(m, k)``: hold out ``m`` of ``k`` grouped folds, ``m / k`` within ``tolerance`` (relative) of
    ``fraction``: one fold of ``round(1 / fraction)`` when that is close enough (0.1 → 1 of 10,
    0.3 → 1 of 3), else the smallest ``k`` that is (0.4 → 2 of 5, not the 1 of 2 that one fold would
    give), else the closest over ``k ≤ max_folds``. Fewer folds need fewer patients."""
    k = max(2, round(1.0 / fraction))
    if abs(1.0 / k - fraction) <= tolerance * fraction:
        return 1, k
    options = [(max(1, round(fraction * k)), k) for k in range(2, max_folds + 1)]
    close = [(m, k) for m, k in options if m < k and abs(m / k - fraction) <= tolerance * fraction]
    return close[0] if close else min(options, key=lambda mk: (abs(mk[0] / mk[1] - fraction), mk[1]))


def holdout_mask(labels: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int) -> np.ndarray:
    """Boolean mask of about ``fraction`` of the rows, stratified by label.

    With ``groups`` the hold-out is ``m`` folds of a seeded ``StratifiedGroupKFold`` with ``k`` folds
    (:func:`fold_share`), so whole groups (patients) move together; without, a stratified random split
    of single rows.

    Raises:
        DataError: too few rows or groups to hold out ``fraction`` (one line saying what to change).
    """
    from sklearn.model_selection import StratifiedGroupKFold, train_test_split  # slow import, only when splitting

    if not 0.0 < fraction < 1.0:
        raise DataError(f"split fraction must be between 0 and 1, got {fraction}")
    n = len(labels)
    mask = np.zeros(n, dtype=bool)
    stratify = labels if np.unique(labels).size > 1 and np.bincount(labels).min() >= 2 else None
    if groups is None:
        try:
            _, held = train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=stratify)
        except ValueError as exc:
            raise DataError(f"too few images ({n}) to hold out {fraction:.0%} of them with every class on both "
                            f"sides ({str(exc).splitlines()[0]}): add images or raise the fraction") from None
        mask[held] = True
        return mask
    m, n_splits = fold_share(fraction)
    n_groups = np.unique(groups).size
    if n_groups < n_splits:
        raise DataError(f"only {n_groups} patient groups for a {fraction:.0%} grouped hold-out ({m} of {n_splits} "
                        "folds): lower the fraction, add data, or use -p split_mode=cell")
    folds = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    try:
        for _, (_, held) in zip(range(m), folds.split(np.zeros(n), labels, groups)):
            mask[held] = True
    except ValueError as exc:  # e.g. a class with fewer images than folds
        raise DataError(f"cannot hold out {fraction:.0%} by patient ({m} of {n_splits} folds: "
                        f"{str(exc).splitlines()[0]}): raise the fraction, add data, or use -p split_mode=cell") from None
    return mask


def assign_splits(frame: pd.DataFrame, params: dict) -> pd.Series:
    """Working split of every row of ``frame`` (columns ``label``, ``group``, ``source_split``).

    - An official ``test`` folder is kept as the test set; otherwise ``test_fraction`` is held out.
    - An official ``val`` folder is kept when ``source_val == "keep"``; with ``"merge"`` (chest X-ray,
      whose official val has 16 images) it joins the training pool.
    - Validation is then carved from the training pool with ``val_fraction``.
    - ``split_mode == "patient"`` groups by ``group``; ``"cell"`` splits single images.
    - Validation images of the classes in ``split_by_image`` are carved one by one even when grouped,
      to mirror an official test set that shares those classes' patients with the training folder
      (chest X-ray pneumonia), so that a threshold chosen on validation carries over to it.
    """
    seed = params["seed"]
    by_image_classes = params.get("split_by_image") or []
    if by_image_classes:
        _check_split_by_image(by_image_classes, sorted(frame["class_name"].unique()))
    grouped = params["split_mode"] == "patient"
    split = pd.Series("train", index=frame.index, dtype=object)
    source = frame["source_split"].to_numpy()

    if (source == "test").any():
        split[source == "test"] = "test"
    else:
        split[_carve(frame, split == "train", params["test_fraction"], seed, grouped)] = "test"

    keep_val = params.get("source_val", "keep") == "keep" and (source == "val").any()
    if keep_val:
        split[source == "val"] = "val"
    else:
        by_image = frame["class_name"].isin(by_image_classes).to_numpy() if by_image_classes else None
        split[_carve(frame, split == "train", params["val_fraction"], seed + 1, grouped, by_image)] = "val"
    return split


def _check_split_by_image(names: list[str], class_names: list[str]) -> None:
    """``split_by_image`` must name classes of the data set.

    Raises:
        DataError: a name that is not one of ``class_names``.
    """
    unknown = sorted(set(names) - set(class_names))
    if unknown:
        raise DataError(f"split_by_image names {', '.join(unknown)}, not classes of this data set "
                        f"({', '.join(class_names)}): fix the list in the params or -p split_by_image=[]")


def _carve(frame: pd.DataFrame, pool: pd.Series, fraction: float, seed: int, grouped: bool,
           by_image: np.ndarray | None = None) -> pd.Series:
    """Mask over ``frame`` of the rows held out of ``pool``; rows flagged ``by_image`` are their own group."""
    pool_idx = np.flatnonzero(pool.to_numpy())
    sub = frame.iloc[pool_idx]
    groups = sub["group"].to_numpy(dtype=object, copy=True) if grouped else None
    if groups is not None and by_image is not None:
        alone = by_image[pool_idx]
        groups[alone] = [f"<image {i}>" for i in pool_idx[alone]]
    held = holdout_mask(sub["label"].to_numpy(), groups, fraction, seed)
    mask = np.zeros(len(frame), dtype=bool)
    mask[pool_idx[held]] = True
    return pd.Series(mask, index=frame.index)


def leaking_groups(frame: pd.DataFrame) -> pd.DataFrame:
    """Groups (patients) found in more than one working split, with ``official`` telling where it comes from.

    ``official`` is True when the group crosses splits only because the data set's own split
    folders put it there (the official chest X-ray test set shares patients with its training set):
    within each source folder the group sits in one working split. False means our carving leaked,
    which a grouped split must never do.

    Returns:
        Columns ``group, splits, official``; empty when no group crosses splits.
    """
    spread = frame.groupby("group")["split"].agg(lambda s: sorted(set(s)))
    spread = spread[spread.map(len) > 1]
    carved = frame[frame["group"].isin(spread.index)].groupby(["source_split", "group"])["split"].nunique()
    ours = set(carved[carved > 1].index.get_level_values("group"))
    return pd.DataFrame({"group": spread.index, "splits": spread.map(", ".join).to_numpy(),
                         "official": [g not in ours for g in spread.index]})
