"""The models to explain: which records qualify, the selection rule's choice, and each model loaded with its
test predictions and input images.

Which models to show is the one selection rule's choice (:func:`medclf.evaluation.selection.family_bests`),
the same as the comparison's, on **validation** only, among the records with a saved Keras model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from medclf.analysis.explain.feature_maps import conv_layer_names
from medclf.config import paths
from medclf.evaluation.predictions import load_predictions
from medclf.models.files import load_model as load_model_file
from medclf.evaluation.selection import (
    choosable,
    family_bests,
    family_order,
    has_constant_predictions,
    rank_on_validation,
    selection_auc,
)
from medclf.training.experiment import DataCache


def validation_auc(record: Mapping) -> float:
    """The record's validation ROC AUC on the rows that choose models (:func:`medclf.evaluation.selection.selection_auc`;
    NaN when absent)."""
    value = selection_auc(record)
    return float("nan") if value is None else float(value)


def is_explainable(record: Mapping) -> bool:
    """A saved Keras model (``.keras``): the SVM and unsaved models are left out."""
    return str(record.get("model_file") or "").endswith(".keras")


def explainable(records: Sequence[Mapping]) -> list[Mapping]:
    """The records whose model can be explained: a saved Keras model (the SVM and unsaved models are left out).

    Which of them to show is :func:`medclf.evaluation.selection.family_bests` of these — the one
    "best on validation" rule, so 05 explains the model 06 compares whenever that model was saved.
    """
    return [record for record in records if is_explainable(record)]


def comparison_pair(records: Sequence[Mapping]) -> list[Mapping]:
    """Two models to explain side by side, by the selection rule: the best of the two best families, or,
    with one family only, its two best models (fewer when there are fewer)."""
    candidates = choosable(explainable(records))
    champions = rank_on_validation(list(family_bests(candidates).values()))
    if len(champions) >= 2:
        return champions[:2]
    return rank_on_validation(candidates)[:2]


def selection_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """Every record with its validation AUC and whether the selection rule chose it for explaining (or why not);
    rows by family, in the rule's order."""
    chosen = {r["model_id"] for r in family_bests(explainable(records)).values()}
    order = {family: i for i, family in enumerate(family_order(records))}
    rows = []
    for record in sorted(rank_on_validation(records), key=lambda r: order[str(r.get("family"))]):
        reason = ("chosen" if record["model_id"] in chosen else
                  "no saved Keras model" if not is_explainable(record) else
                  "constant predictions (flagged)" if has_constant_predictions(record) else "lower on validation")
        rows.append({"family": record["family"], "model_id": record["model_id"],
                     "val_roc_auc": validation_auc(record), "threshold": record["evaluation"]["threshold"],
                     "image_size": record["spec"].get("image_size_used"),
                     "color_mode": record["spec"].get("color_mode"), "selection": reason})
    columns = ["family", "model_id", "val_roc_auc", "threshold", "image_size", "color_mode", "selection"]
    return pd.DataFrame(rows, columns=columns)


def load_model(record: Mapping, out_dir: str | Path) -> keras.Model:
    """The record's saved Keras model (``out_dir / record["model_file"]``, read by the one model loader,
    :func:`medclf.models.files.load_model`).

    Raises:
        FileNotFoundError: the file is missing (the message says how to get it back).
        ValueError: the record has no Keras model file.
    """
    if not is_explainable(record):
        raise ValueError(f"record {record['model_id']!r} has no saved Keras model (model_file="
                         f"{record.get('model_file')!r}); only Keras models can be explained")
    path = Path(out_dir) / record["model_file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file of record {record['model_id']!r} is missing; re-run the "
                                "notebook that trained it with save_models=true")
    return load_model_file(path, expected_sha256=record.get("model_sha256"),
                           recorded_in=f"results/{record['model_id']}.json")


def input_spec(record: Mapping) -> tuple[int, str]:
    """``(image_size, color_mode)`` the record's model takes (for :class:`medclf.training.experiment.DataCache`)."""
    return int(record["spec"]["image_size_used"]), str(record["spec"]["color_mode"])


def images_for(ds: Any, files: Sequence[str]) -> np.ndarray:
    """The decoded images of ``files`` (predictions' ``file`` = ``ds.frame["relpath"]``), in that order.

    Raises:
        ValueError: a file is not in the data set (the predictions come from other data).
    """
    index = pd.Series(np.arange(len(ds.frame)), index=ds.frame["relpath"].to_numpy())
    files = [str(f) for f in files]
    missing = [f for f in files if f not in index.index]
    if missing:
        raise ValueError(f"{len(missing)} predicted file(s) not in the loaded data set, e.g. {missing[0]!r}: the "
                         "records come from other data; re-run the notebook that wrote them")
    return ds.images[index.loc[files].to_numpy()]


@dataclass
class LoadedModel:
    """A trained model ready to explain: its record, the Keras model, its test predictions and the
    data set decoded at the model's input size and colour mode."""

    record: Mapping
    model: keras.Model
    predictions: pd.DataFrame
    dataset: Any

    @property
    def model_id(self) -> str:
        return self.record["model_id"]

    @property
    def threshold(self) -> float:
        """The decision threshold chosen on validation when the model was scored."""
        return float(self.record["evaluation"]["threshold"])

    def images(self, files: Sequence[str]) -> np.ndarray:
        """Input images of ``files`` as this model takes them."""
        return images_for(self.dataset, files)


def load_for_explanation(record: Mapping, params: dict, data: Any = None) -> LoadedModel:
    """Load a record's model, predictions and input images (from ``paths.run_dir(params)``).

    Args:
        record: a result record with a ``.keras`` model file.
        params: the parameter set (``output_dir``, ``dataset`` and the data settings).
        data: a :class:`medclf.training.experiment.DataCache` shared between models (one decode per input size).
    """
    out_dir = paths.run_dir(params)
    data = data or DataCache(params)
    return LoadedModel(record, load_model(record, out_dir), load_predictions(out_dir, record["model_id"]),
                       data.get(*input_spec(record)))


def pick_examples(predictions: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """``per_class`` test images of each true class, drawn with ``seed`` (same files for every model).

    Returns:
        Rows of ``predictions`` (file, true_label, true_class, probability), by class then file.
    """
    picked = [group.sample(min(per_class, len(group)), random_state=seed)
              for _, group in predictions.groupby("true_label", sort=True)]
    if not picked:
        return predictions.iloc[:0]
    return pd.concat(picked).sort_values(["true_label", "file"], ignore_index=True)


#: Columns of :func:`explained_table`.
EXPLAINED_COLUMNS = ("model_id", "method", "file", "true_class", "probability", "probability_recomputed", "seconds")


def feature_map_subject(best: Mapping[str, LoadedModel], examples: pd.DataFrame) -> tuple[LoadedModel, str] | None:
    """The model and test file whose feature maps to show: the best CNN (else the first chosen model with
    convolution layers) and the first example of the disease class (else the first example); ``None``
    when no chosen model has convolution layers."""
    subject = best.get("cnn") or next((m for m in best.values() if conv_layer_names(m.model)), None)
    if subject is None:
        return None
    positives = examples.loc[examples["true_label"] == 1, "file"]
    return subject, str(positives.iloc[0] if len(positives) else examples["file"].iloc[0])


def explained_table(log: Sequence[Mapping], loaded: Mapping[str, LoadedModel]) -> pd.DataFrame:
    """What was explained: one row per log entry (model, method, file) with the file's true class and stored
    probability from the model's predictions; columns :data:`EXPLAINED_COLUMNS`."""
    stored = pd.concat([m.predictions.assign(model_id=mid) for mid, m in loaded.items()]).set_index(["model_id", "file"])
    explained = pd.DataFrame(list(log), columns=["model_id", "method", "file", "probability_recomputed", "seconds"])
    explained = explained.join(stored[["true_class", "probability"]], on=["model_id", "file"])
    return explained[list(EXPLAINED_COLUMNS)]
