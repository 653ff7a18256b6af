"""The errors worth a look: false negatives and false positives at a record's stored threshold, most confident first."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from medclf.analysis.explain.gradcam import gradcams, supports_gradcam
from medclf.evaluation.predictions import PREDICTION_COLUMNS

ERROR_KINDS = ("false negative", "false positive")


def error_cases(predictions: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """False negatives and false positives at ``threshold``, most confident errors first.

    An image is called positive (label 1) when ``probability >= threshold`` (as in
    :mod:`medclf.evaluation.metrics`). Confidence in the wrong answer is ``1 - probability`` for a false
    negative and ``probability`` for a false positive.

    Args:
        predictions: a predictions CSV (:func:`medclf.evaluation.predictions.load_predictions`).
        threshold: the record's validation-chosen threshold (``record["evaluation"]["threshold"]``).

    Returns:
        The misclassified rows with columns ``file, true_label, true_class, probability, error``
        (``"false negative"`` / ``"false positive"``) and ``wrong_confidence``: false negatives
        first, each kind sorted by ``wrong_confidence`` descending.

    Raises:
        ValueError: missing columns or a non-finite threshold.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {', '.join(missing)}; expected {', '.join(PREDICTION_COLUMNS)}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}")
    frame = predictions[list(PREDICTION_COLUMNS)].copy()
    called = frame["probability"].to_numpy() >= threshold
    truth = frame["true_label"].to_numpy() == 1
    frame["error"] = np.where(truth & ~called, ERROR_KINDS[0], np.where(~truth & called, ERROR_KINDS[1], ""))
    frame = frame[frame["error"] != ""].copy()
    frame["wrong_confidence"] = np.where(frame["error"] == ERROR_KINDS[0], 1 - frame["probability"],
                                         frame["probability"])
    frame["kind_order"] = (frame["error"] == ERROR_KINDS[1]).astype(int)
    frame = frame.sort_values(["kind_order", "wrong_confidence", "file"], ascending=[True, False, True], kind="stable")
    return frame.drop(columns="kind_order").reset_index(drop=True)


def most_confident(errors: pd.DataFrame, per_kind: int) -> pd.DataFrame:
    """The first ``per_kind`` rows of each error kind of :func:`error_cases` (its most confident ones),
    false negatives first."""
    return errors.groupby("error", sort=False).head(per_kind).reset_index(drop=True)


def error_counts(errors: pd.DataFrame, *, model_id: str, threshold: float, test_images: int) -> dict[str, Any]:
    """One row of the error-count table: ``model_id, threshold``, the count of each of :data:`ERROR_KINDS`
    (zero when absent) and ``test_images``."""
    counts = errors["error"].value_counts().reindex(ERROR_KINDS, fill_value=0)
    return {"model_id": model_id, "threshold": threshold, **{k: int(v) for k, v in counts.items()},
            "test_images": test_images}


@dataclass
class ErrorGallery:
    """One model's most confident errors, ready to draw (:func:`medclf.plots.explain_plots.plot_error_gallery`).

    Attributes:
        model_id, threshold: the model and its validation-chosen threshold.
        shown: the rows of :func:`most_confident` (empty: no error on the test set).
        images: their input images.
        cams: their Grad-CAM maps, or ``None`` for a model without a spatial layer.
    """

    model_id: str
    threshold: float
    shown: pd.DataFrame
    images: np.ndarray | None = None
    cams: np.ndarray | None = None


def error_galleries(subjects: Sequence[Any], per_kind: int) -> tuple[pd.DataFrame, list[ErrorGallery]]:
    """For each loaded model (:class:`medclf.analysis.explain.subjects.LoadedModel`): its test errors at its
    stored threshold counted (:func:`error_counts`) and the ``per_kind`` most confident of each kind gathered
    with their images and Grad-CAM maps.

    Returns:
        The count table (one row per model) and one :class:`ErrorGallery` per model, in ``subjects`` order.
    """
    counts, galleries = [], []
    for subject in subjects:
        errors = error_cases(subject.predictions, subject.threshold)
        counts.append(error_counts(errors, model_id=subject.model_id, threshold=subject.threshold,
                                   test_images=len(subject.predictions)))
        shown = most_confident(errors, per_kind)
        gallery = ErrorGallery(subject.model_id, subject.threshold, shown)
        if not shown.empty:
            gallery.images = subject.images(shown["file"])
            gallery.cams = gradcams(subject.model, gallery.images) if supports_gradcam(subject.model) else None
        galleries.append(gallery)
    return pd.DataFrame(counts, columns=["model_id", "threshold", *ERROR_KINDS, "test_images"]), galleries


def gallery_log(gallery: ErrorGallery) -> list[dict[str, Any]]:
    """Log rows (``model_id, method, file``) of the images a gallery shows."""
    return [{"model_id": gallery.model_id, "method": f"error gallery ({row.error})", "file": row.file}
            for row in gallery.shown.itertuples(index=False)]
