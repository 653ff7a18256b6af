"""The loaded data set: one table of samples plus the decoded uint8 arrays, row for row."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medclf.config import datasets
from medclf.data.errors import DataError

SPLITS = ("train", "val", "test")

#: Columns of :attr:`Dataset.frame`.
FRAME_COLUMNS = (
    "relpath",       # path relative to data_root (npz: "<split>/<index>")
    "class_name",    # class folder name
    "label",         # int, index into class_names; the positive (disease) class is 1 for binary sets
    "source_split",  # split folder the file came from ("" when the data has none)
    "split",         # working split: train / val / test
    "group",         # patient / slide id used for grouped splitting
    "sha256",        # content hash of the file bytes (npz: of the array bytes)
    "file_bytes",    # size of the file in bytes
    "orig_width",    # decoded size before resizing
    "orig_height",
    "orig_mode",     # PIL mode of the source (L, RGB, RGBA, P, I;16, ...)
)


@dataclass
class Dataset:
    """A validated, split and decoded data set.

    Attributes:
        name: data set name (``params["dataset"]``).
        frame: one row per usable image, columns :data:`FRAME_COLUMNS`, in the row order of ``images``.
        images: uint8 array ``(N, size, size, channels)``; channels is 1 (grayscale) or 3 (rgb).
        class_names: class names in label order.
        positive_class: the disease class.
        skipped: files that were not used, columns ``relpath``, ``reason``.
        manifest_hash: fingerprint of the file list (names, sizes, mtimes) and decode settings.
        seed: the seed it was split with (and the default shuffle seed of :meth:`tf_dataset`).
        select_on: which validation rows choose (the ``select_on`` setting, :meth:`selection_mask`).
        split_by_image: classes whose validation images were carved one by one (``split_by_image``).
    """

    name: str
    frame: pd.DataFrame
    images: np.ndarray
    class_names: list[str]
    positive_class: str
    skipped: pd.DataFrame
    manifest_hash: str
    seed: int = 0
    select_on: str = "all"
    split_by_image: list[str] = field(default_factory=list)

    @property
    def is_synthetic(self) -> bool:
        """True for the generated demo data; every output made from it says so."""
        return datasets.get(self.name).synthetic

    def indices(self, split: str) -> np.ndarray:
        """Row indices of one working split."""
        if split not in SPLITS:
            raise ValueError(f"split must be one of {', '.join(SPLITS)}; got {split!r}")
        return np.flatnonzero(self.frame["split"].to_numpy() == split)

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of one split, uint8 images and int labels."""
        idx = self.indices(split)
        return self.images[idx], self.frame["label"].to_numpy()[idx]

    def relpaths(self, split: str) -> list[str]:
        """The files of ``split`` (paths relative to the data root), in the row order of :meth:`arrays`."""
        return self.frame["relpath"].to_numpy()[self.indices(split)].tolist()

    def patient_in_training(self) -> np.ndarray:
        """Per row of :attr:`frame`: does the row's patient (group) have images in the training split?"""
        return self.frame["group"].isin(set(self.frame.loc[self.frame["split"] == "train", "group"])).to_numpy()

    def selection_mask(self) -> np.ndarray:
        """Which validation rows choose epochs, test-time augmentation and the best model.

        All of them, unless :attr:`select_on` is ``"new_patients"``: then only the images whose
        patient has no training image. A validation set that shares patients with training (chest
        X-ray pneumonia, ``split_by_image``) rewards memorising those patients; its own share of them
        still sets the threshold, where matching the test set's share matters.

        Raises:
            DataError: the new patients' images lack a class (choose on all with ``-p select_on=all``).
        """
        rows = self.indices("val")
        if self.select_on != "new_patients":
            return np.ones(len(rows), dtype=bool)
        val, mask = self.frame.iloc[rows], ~self.patient_in_training()[rows]
        missing = sorted(set(self.class_names) - set(val.loc[mask, "class_name"]))
        if missing:
            raise DataError(f"select_on=new_patients: no validation image of {', '.join(missing)} comes from a "
                            "patient outside training; use -p select_on=all or carve validation by patient")
        return mask

    def selection_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """``(images, labels)`` of the validation rows in :meth:`selection_mask`."""
        images, labels = self.arrays("val")
        mask = self.selection_mask()
        return images[mask], labels[mask]

    def tf_dataset(self, split: str, batch_size: int = 32, shuffle: bool = False, seed: int | None = None,
                   augmenter=None):
        """A batched, prefetched ``tf.data.Dataset`` of ``(uint8 image, label)`` from memory
        (see :func:`medclf.data.pipeline.make_dataset`)."""
        from medclf.data.pipeline import make_dataset

        seed = self.seed if seed is None else seed
        return make_dataset(*self.arrays(split), batch_size, shuffle=shuffle, seed=seed, augmenter=augmenter)
