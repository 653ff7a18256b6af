"""Patients (groups) across the splits: counts, leaks, shared patients, where the splits fall in the numbering.

Images of one patient (or slide) look alike, so a patient on both sides of a split inflates test scores.
These tables, and the rules that read them (:func:`leak_report`, :func:`numbered_blocks`), feed
``notebooks/01_eda.ipynb``'s leakage check.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from medclf.analysis.eda import TOTAL, ordered_splits
from medclf.data.errors import DataError
from medclf.data.split import leaking_groups


def group_counts(ds) -> pd.DataFrame:
    """Images and distinct patients/groups per split and class.

    Returns:
        Columns ``split, class_name, images, groups, images_per_group``; one row per
        (split, class) plus a row per split with ``class_name == "total"`` (a group holding
        images of both classes is counted once there).
    """
    frame = ds.frame
    rows = []
    for split in ordered_splits(frame["split"].unique(), include_all=True):
        part = frame[frame["split"] == split]
        for name in [*ds.class_names, TOTAL]:
            sub = part if name == TOTAL else part[part["class_name"] == name]
            images, groups = len(sub), sub["group"].nunique()
            rows.append({"split": split, "class_name": name, "images": images, "groups": groups,
                         "images_per_group": round(images / groups, 2) if groups else np.nan})
    return pd.DataFrame(rows)


def group_leaks(ds) -> pd.DataFrame:
    """Groups (patients/slides) found in more than one working split, with their image counts.

    Returns:
        Columns ``group, splits, official, images, by_image`` (see :func:`medclf.data.leaking_groups`:
        ``official`` leaks come from the data set's own split folders, the others from our carving;
        ``by_image``: the group's images are all of classes the params carve one by one,
        ``split_by_image``, so our carving may split it on purpose).
    """
    frame = ds.frame
    leaks = leaking_groups(frame)
    leaks["images"] = leaks["group"].map(frame["group"].value_counts()).astype(int)
    per_image = frame["class_name"].isin(ds.split_by_image)
    leaks["by_image"] = leaks["group"].map(per_image.groupby(frame["group"]).all()).astype(bool)
    return leaks.reset_index(drop=True)


def patients_in_training(ds) -> pd.DataFrame:
    """How many validation and test images come from a patient who also has training images.

    A threshold chosen on validation carries over to the test set only if the two are drawn alike;
    a test set that shares patients with training (the official chest X-ray one does, for
    pneumonia) is easier than a validation set that shares none.

    Returns:
        Columns ``split, class_name, images, patient_in_train, share``; one row per (split, class)
        for the validation and test splits.
    """
    frame, in_train = ds.frame, ds.patient_in_training()
    rows = []
    for split in ("val", "test"):
        for name in ds.class_names:
            rows_of = (frame["split"] == split) & (frame["class_name"] == name)
            images, seen = int(rows_of.sum()), int((rows_of & in_train).sum())
            rows.append({"split": split, "class_name": name, "images": images, "patient_in_train": seen,
                         "share": round(seen / images, 3) if images else np.nan})
    return pd.DataFrame(rows)


def group_number_ranges(ds) -> pd.DataFrame:
    """Where each split's patients fall in the data set's patient numbering.

    Patient ids such as ``person123`` or ``NORMAL2-IM-0383`` are a prefix (the *series*) and a
    number. If a split is one block of that numbering (the official chest X-ray test normals are
    the lowest-numbered patients of both normal series), it was not drawn at random: it may come
    from another period or machine, and a validation set drawn at random from the other patients
    cannot show what differs in that block.

    Returns:
        Columns ``split, class_name, series, groups, first, median, last, below_train,
        above_train``: per (split, class, series), the number of patients, their lowest, median
        and highest number, and how many are numbered below (above) every training patient of
        that class and series. Empty when no group id ends in a number.
    """
    parts = ds.frame["group"].astype(str).str.extract(r"^(?P<series>.*?)(?P<number>\d+)$")
    frame = pd.concat([ds.frame[["split", "class_name", "group"]], parts], axis=1).dropna(subset=["number"])
    columns = ["split", "class_name", "series", "groups", "first", "median", "last", "below_train", "above_train"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    groups = frame.drop_duplicates(["split", "class_name", "group"]).assign(number=lambda f: f["number"].astype(int))
    train = groups[groups["split"] == "train"].groupby(["class_name", "series"])["number"].agg(["min", "max"])
    rows = []
    for split in ordered_splits(groups["split"].unique(), include_all=False):
        for (name, series), sub in groups[groups["split"] == split].groupby(["class_name", "series"], sort=True):
            low, high = train.loc[(name, series)] if (name, series) in train.index else (np.nan, np.nan)
            numbers = sub["number"]
            rows.append({"split": split, "class_name": name, "series": series, "groups": len(numbers),
                         "first": int(numbers.min()), "median": float(numbers.median()), "last": int(numbers.max()),
                         "below_train": int((numbers < low).sum()), "above_train": int((numbers > high).sum())})
    return pd.DataFrame(rows, columns=columns)


@dataclass
class LeakReport:
    """The groups found in more than one working split (:func:`group_leaks`), by who put them there.

    Attributes:
        leaks: every such group.
        official: put there by the data set's own split folders (kept for comparability with published
            results, but scores on them may be somewhat optimistic).
        by_image: split by our per-image carving of the ``split_by_image`` classes, on purpose.
        carved: split by any other carving: with ``split_mode: patient`` there must be none.
    """

    leaks: pd.DataFrame
    official: pd.DataFrame
    by_image: pd.DataFrame
    carved: pd.DataFrame

    def summary(self, split_mode: str, split_by_image) -> str:
        """One line: the split mode, the per-image classes and how many groups each cause put across splits."""
        return (f"split mode: {split_mode}, classes carved per image: {split_by_image or 'none'}; groups in more "
                f"than one split: {len(self.leaks)} ({len(self.official)} put there by the data set's own split "
                f"folders, {len(self.by_image)} by the per-image carving, {len(self.carved)} by other carving)")

    def check(self, split_mode: str) -> None:
        """Raise when a patient-wise split (``split_mode == "patient"``) put a patient on both sides by carving.

        Raises:
            DataError: naming how many groups leaked.
        """
        if split_mode == "patient" and not self.carved.empty:
            raise DataError(f"{len(self.carved)} patients/groups were split across train/val/test by the carving")


def leak_report(ds) -> LeakReport:
    """:func:`group_leaks` of ``ds`` sorted into a :class:`LeakReport`."""
    leaks = group_leaks(ds)
    official, by_image = leaks["official"].astype(bool), leaks["by_image"].astype(bool)  # .loc: also when empty
    return LeakReport(leaks, leaks.loc[official], leaks.loc[~official & by_image], leaks.loc[~official & ~by_image])


def selection_line(ds) -> str:
    """How many validation images choose epochs and models under ``select_on`` (:meth:`Dataset.selection_mask`)."""
    selection = ds.selection_mask()
    return (f"select_on: {ds.select_on}; validation images that choose epochs and models: "
            f"{int(selection.sum())} of {selection.size} (with new_patients: per class, images − patient_in_train "
            "of the val rows above)")


def numbered_blocks(ranges: pd.DataFrame) -> pd.DataFrame:
    """The rows of :func:`group_number_ranges` whose test patients are *all* numbered below every training
    patient of their class and series: a test set that is one block of the earliest patients."""
    return ranges[(ranges["split"] == "test") & (ranges["below_train"] == ranges["groups"])]


def block_note(blocks: pd.DataFrame) -> str | None:
    """A Markdown warning naming each block of :func:`numbered_blocks`; ``None`` when there is none."""
    if blocks.empty:
        return None
    which = ", ".join(f"{r.class_name} `{r.series}` ({r.groups} patients, numbers {r.first}–{r.last})"
                      for r in blocks.itertuples())
    return (f"**Every test patient of {which} is numbered below every training patient of that class "
            "and series**: the test set holds a block of the earliest patients. Validation patients are "
            "drawn from the training range, so validation recall of those classes may be optimistic "
            "for the test set.")
