"""Per-image predictions: the CSV files beside each record, read back, checked and aligned across models.

Layout under ``out_dir`` = ``outputs/<dataset>/<profile>`` (:class:`medclf.config.paths.RunPaths`)::

    predictions/<model_id>.csv       file, true_label, true_class, probability — one row per test image
    predictions/val/<model_id>.csv   the same for validation, with ``selected`` (rows that chose models)

Written atomically (:mod:`medclf.core.io`). :func:`align_predictions` is the one way to pair two or more
models' predictions image by image (McNemar, paired bootstrap, ROC overlays).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from medclf.config import paths
from medclf.core import io
from medclf.evaluation.records import check_model_id

#: Columns of a predictions CSV (:func:`save_predictions`), in order.
PREDICTION_COLUMNS = ("file", "true_label", "true_class", "probability")
#: The columns pairing needs.
_PAIRING_COLUMNS = ("file", "true_label", "probability")


class PredictionMismatchError(ValueError):
    """Two models' prediction files do not hold the same test images with the same labels."""


#: Splits whose predictions are saved: test in ``predictions/``, validation in ``predictions/val/``.
PREDICTION_SPLITS = ("test", "val")


def predictions_path(out_dir: str | os.PathLike, model_id: str, split: str = "test") -> Path:
    """``<out_dir>/predictions/<model_id>.csv`` (test) or ``<out_dir>/predictions/val/<model_id>.csv``."""
    if split not in PREDICTION_SPLITS:
        raise ValueError(f"split must be one of {PREDICTION_SPLITS}; got {split!r}")
    folder = paths.RunPaths(Path(out_dir)).predictions
    return (folder if split == "test" else folder / split) / f"{check_model_id(model_id)}.csv"


def save_predictions(out_dir: str | os.PathLike, model_id: str, relpaths: Sequence[str], y_true, p,
                     class_names: Sequence[str], split: str = "test", selected=None) -> Path:
    """Write :func:`predictions_path` of ``split``: one row per image of that split (atomic).

    Columns: ``file`` (path relative to the data root), ``true_label`` (int), ``true_class``
    (its name) and ``probability`` (predicted probability of label 1); with ``selected`` (booleans,
    validation) also ``selected``: the row is one of those that chose epochs and models
    (:meth:`medclf.data.Dataset.selection_mask`). Validation predictions let a reader recompute the
    threshold or the ranking without retraining.

    Returns:
        The path written.

    Raises:
        ValueError: lengths differ, or a label is not an index into ``class_names``.
    """
    check_model_id(model_id)
    files = [str(f) for f in relpaths]
    labels = np.asarray(y_true).reshape(-1)
    probs = np.asarray(p, dtype=np.float64).reshape(-1)
    if not (len(files) == labels.size == probs.size):
        raise ValueError(f"one value per image needed, but relpaths has {len(files)}, y_true {labels.size} "
                         f"and p {probs.size} values")
    names = list(class_names)
    if labels.size and (not np.all(np.isin(labels, np.arange(len(names))))):
        bad = np.unique(labels[~np.isin(labels, np.arange(len(names)))])[:5].tolist()
        raise ValueError(f"y_true holds labels {bad} that are not indices into class_names {names}")
    labels = labels.astype(np.int64)
    frame = pd.DataFrame({"file": files, "true_label": labels,
                          "true_class": [names[k] for k in labels], "probability": probs})
    if selected is not None:
        selected = np.asarray(selected, dtype=bool).reshape(-1)
        if selected.size != len(frame):
            raise ValueError(f"selected has {selected.size} values for {len(frame)} images")
        frame["selected"] = selected
    return io.write_text(predictions_path(out_dir, model_id, split), frame.to_csv(index=False))


def load_predictions(out_dir: str | os.PathLike, model_id: str, split: str = "test") -> pd.DataFrame:
    """Read a predictions CSV back (``file`` and ``true_class`` as strings)."""
    return pd.read_csv(predictions_path(out_dir, model_id, split), dtype={"file": str, "true_class": str})



def check_predictions(model_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    """One model's predictions indexed by ``file``, after checking its columns and that no file repeats.

    Raises:
        PredictionMismatchError: a missing column or a file listed twice.
    """
    missing = [c for c in _PAIRING_COLUMNS if c not in frame.columns]
    if missing:
        raise PredictionMismatchError(f"predictions of {model_id!r} lack column(s) {missing}; "
                                      f"expected {list(_PAIRING_COLUMNS)} (save_predictions)")
    duplicated = frame["file"][frame["file"].duplicated()]
    if len(duplicated):
        raise PredictionMismatchError(f"predictions of {model_id!r} list {len(duplicated)} file(s) twice, "
                                      f"e.g. {duplicated.iloc[0]!r}: one row per test image is expected")
    return frame.set_index("file")


def align_predictions(predictions: Mapping[str, pd.DataFrame], reference: str
                      ) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Match every model's prediction rows to ``reference``'s by file.

    Args:
        predictions: ``{model_id: predictions DataFrame}`` (as :func:`load_predictions`).
        reference: the model whose file order is kept.

    Returns:
        ``(files, y_true, {model_id: probabilities})``, all in the reference's row order.

    Raises:
        PredictionMismatchError: a file set differs from the reference's, a file is listed twice,
            or a true label differs; the message names both models and an example file.
    """
    ref = check_predictions(reference, predictions[reference])
    files = list(ref.index)
    y = ref["true_label"].to_numpy(np.int64)
    probabilities = {}
    for model_id, frame in predictions.items():
        frame = check_predictions(model_id, frame)
        only_ref = ref.index.difference(frame.index)
        only_this = frame.index.difference(ref.index)
        if len(only_ref) or len(only_this):
            example = only_ref[0] if len(only_ref) else only_this[0]
            raise PredictionMismatchError(
                f"predictions/{model_id}.csv and predictions/{reference}.csv hold different test images "
                f"({len(only_this)} only in {model_id}, {len(only_ref)} only in {reference}, e.g. {example!r}); "
                "paired tests need the same images: rerun the stale model on the current split, or remove "
                "its results/ and predictions/ files")
        frame = frame.loc[files]
        labels = frame["true_label"].to_numpy(np.int64)
        if not np.array_equal(labels, y):
            first = files[int(np.flatnonzero(labels != y)[0])]
            raise PredictionMismatchError(
                f"predictions/{model_id}.csv and predictions/{reference}.csv disagree on the true label of "
                f"{first!r}: they were made from different data")
        probabilities[model_id] = frame["probability"].to_numpy(np.float64)
    return files, y, probabilities


def decisions(record: Mapping, probabilities) -> np.ndarray:
    """0/1 decisions at the record's own validation-chosen threshold (``evaluation.threshold``)."""
    return (np.asarray(probabilities, dtype=np.float64) >= float(record["evaluation"]["threshold"])).astype(np.int64)
