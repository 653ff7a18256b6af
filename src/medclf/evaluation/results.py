"""One record per trained model: a JSON file of everything needed to re-read its numbers, and a
CSV of its per-image test predictions.

Layout under ``out_dir`` = ``outputs/<dataset>`` (:func:`medclf.config.paths.dataset_output_dir`)::

    results/<model_id>.json      the record (see :data:`REQUIRED`)
    predictions/<model_id>.csv   file, true_label, true_class, probability — one row per test image

Both are written atomically (:mod:`medclf.core.io`), so a reader never sees half a file.

A record's ``reported`` field holds a study's published numbers for the model it reproduces
(``None`` for models of our own)::

    {"accuracy": 0.891, "normal_recall": 0.74, "pneumonia_recall": 0.98}     # as medclf.models.registry has it

Per-class recalls are read from flat keys ``<class>_recall`` or ``recall_<class>`` (class name in
any case), or from ``"recall": {class: value}``; a single number ``"recall": 0.98`` is the recall of
the disease class (label 1). ``roc_auc`` and ``test_errors`` are shown where a study gave them.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medclf.config import paths as config
from medclf.core import io
from medclf.core.versions import git_info, package_versions

#: Git state (commit, dirty) of the code this process imported, read once at import: a record
#: written at the end of a long run names the code that trained it even if the checkout has moved on.
CODE_GIT = git_info(config.PROJECT_ROOT)

#: Keys every record has; nested keys are written ``parent.child``.
REQUIRED = (
    "model_id", "model", "family", "study", "reported", "params", "spec", "data", "training",
    "params_count", "evaluation", "created", "versions",
    "data.dataset", "data.manifest_hash", "data.split_counts",
    "training.seconds", "training.seconds_per_epoch", "training.epochs_run", "training.best_epoch",
    "training.mixed_precision", "training.history",
    "evaluation.threshold", "evaluation.val", "evaluation.test", "evaluation.ci",
)

_MODEL_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class RecordError(ValueError):
    """A result record is incomplete or malformed; the message names the missing keys."""


# ---------------------------------------------------------------------------------------------
# building and checking records
# ---------------------------------------------------------------------------------------------

def utc_now() -> str:
    """Current UTC time as ISO 8601 with seconds, e.g. ``2025-01-31T12:00:00+00:00``."""
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()


def build_record(*, model_id: str, model: str, family: str, study: str | None, reported: dict | None,
                 params: dict, spec: dict, data: dict, training: dict, params_count: int,
                 evaluation: dict, versions: dict | None = None, git: dict | None = None, **extra: Any) -> dict:
    """A record with ``created`` (now, UTC), ``versions`` and ``git`` filled in; checked by :func:`validate_record`.

    ``versions`` defaults to :func:`medclf.core.versions.package_versions`, ``git`` to :data:`CODE_GIT`.
    Extra keyword arguments are kept as additional top-level keys.
    """
    if versions is None:
        versions = package_versions()
    record = {"model_id": model_id, "model": model, "family": family, "study": study, "reported": reported,
              "params": params, "spec": spec, "data": data, "training": training,
              "params_count": params_count, "evaluation": evaluation, "created": utc_now(),
              "versions": versions, "git": CODE_GIT if git is None else git, **extra}
    validate_record(record)
    return record


def _lookup(record: Mapping, dotted: str) -> tuple[bool, Any]:
    node: Any = record
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def validate_record(record: dict) -> dict:
    """Check that ``record`` has every key of :data:`REQUIRED` with a sensible type.

    Returns:
        The record itself.

    Raises:
        RecordError: naming the record and every missing or mistyped key.
    """
    if not isinstance(record, Mapping):
        raise RecordError(f"a record must be a dict; got {type(record).__name__}")
    name = record.get("model_id", "<no model_id>")
    missing = [key for key in REQUIRED if not _lookup(record, key)[0]]
    if missing:
        raise RecordError(f"record {name!r} is missing {', '.join(missing)}; "
                          f"a record needs: {', '.join(REQUIRED)}")
    problems = []
    if not isinstance(record["model_id"], str) or not _MODEL_ID.match(record["model_id"]):
        problems.append(f"model_id must be a file-name-safe string (letters, digits, . _ -); "
                        f"got {record['model_id']!r}")
    if record["reported"] is not None and not isinstance(record["reported"], Mapping):
        problems.append(f"reported must be a dict or None; got {type(record['reported']).__name__}")
    for key in ("params", "spec", "data", "training", "evaluation", "versions"):
        if not isinstance(record[key], Mapping):
            problems.append(f"{key} must be a dict; got {type(record[key]).__name__}")
    for key in ("val", "test"):
        part = record["evaluation"][key]
        if not isinstance(part, Mapping) or not {"at_0.5", "at_threshold"} <= set(part):
            problems.append(f"evaluation.{key} must hold 'at_0.5' and 'at_threshold' (evaluate_model's output)")
    if problems:
        raise RecordError(f"record {name!r} is malformed: " + "; ".join(problems))
    return record


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, tuples to lists, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


# ---------------------------------------------------------------------------------------------
# writing and reading
# ---------------------------------------------------------------------------------------------

def _check_model_id(model_id: str) -> str:
    if not isinstance(model_id, str) or not _MODEL_ID.match(model_id):
        raise ValueError(f"model_id must be a file-name-safe string (letters, digits, . _ -); got {model_id!r}")
    return model_id


def record_path(out_dir: str | os.PathLike, model_id: str) -> Path:
    """``<out_dir>/results/<model_id>.json``."""
    return Path(out_dir) / "results" / f"{_check_model_id(model_id)}.json"


#: Splits whose predictions are saved: test in ``predictions/``, validation in ``predictions/val/``.
PREDICTION_SPLITS = ("test", "val")


def predictions_path(out_dir: str | os.PathLike, model_id: str, split: str = "test") -> Path:
    """``<out_dir>/predictions/<model_id>.csv`` (test) or ``<out_dir>/predictions/val/<model_id>.csv``."""
    if split not in PREDICTION_SPLITS:
        raise ValueError(f"split must be one of {PREDICTION_SPLITS}; got {split!r}")
    folder = Path(out_dir) / "predictions"
    return (folder if split == "test" else folder / split) / f"{_check_model_id(model_id)}.csv"


def save_record(out_dir: str | os.PathLike, model_id: str, record: dict) -> Path:
    """Validate ``record`` and write it to ``<out_dir>/results/<model_id>.json`` (atomic).

    Numpy values are converted to plain JSON numbers and NaN to ``null``.

    Returns:
        The path written.

    Raises:
        RecordError: the record is incomplete or its ``model_id`` differs from ``model_id``.
    """
    _check_model_id(model_id)
    validate_record(record)
    if record["model_id"] != model_id:
        raise RecordError(f"record['model_id'] is {record['model_id']!r} but it is saved as {model_id!r}")
    return io.write_json(record_path(out_dir, model_id), _jsonable(record))


def model_card_path(model_path: str | os.PathLike) -> Path:
    """The record kept beside a saved model: ``models/<id>.keras`` → ``models/<id>.json``."""
    return Path(model_path).with_suffix(".json")


def save_model_card(model_path: str | os.PathLike, record: dict) -> Path:
    """Write ``record`` beside the saved model (atomic), so the model file travels with its input size,
    colour mode, resize mode, class names and validation-chosen threshold (what ``predict`` needs)."""
    validate_record(record)
    return io.write_json(model_card_path(model_path), _jsonable(record))


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
    _check_model_id(model_id)
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


def load_records(out_dir: str | os.PathLike) -> list[dict]:
    """Every record under ``<out_dir>/results`` (sorted by file name; none if the folder is missing).

    Raises:
        RecordError: a file is not valid JSON or not a valid record (the message names the file).
    """
    folder = Path(out_dir) / "results"
    if not folder.is_dir():
        return []
    records = []
    for path in sorted(folder.glob("*.json")):
        if path.name.startswith("."):  # an atomic write in progress
            continue
        records.append(read_record(path))
    return records


#: Parameters that decide which image lands in which split (with the data set's files), and which
#: validation rows rank the models (``select_on``).
SPLIT_PARAMS = ("dataset", "data_root", "seed", "split_mode", "split_by_image", "select_on", "source_val",
                "val_fraction", "test_fraction", "group_pattern")


def selection_auc(record: Mapping) -> float | None:
    """Validation ROC AUC of the rows that choose models (``evaluation.selection``: with ``select_on:
    new_patients`` only the images of patients outside training); all validation rows for records
    written before it existed."""
    evaluation = record["evaluation"]
    chosen = evaluation.get("selection")
    return chosen["roc_auc"] if chosen else evaluation["val"]["at_threshold"].get("roc_auc")


def selection_auc_ci(record: Mapping) -> tuple[float | None, float | None]:
    """95% bootstrap interval of :func:`selection_auc`; ``(None, None)`` for records written without one."""
    chosen = record["evaluation"].get("selection") or {}
    low, high = chosen.get("roc_auc_ci") or (None, None)
    return low, high


def split_settings(record: Mapping) -> dict:
    """The record's :data:`SPLIT_PARAMS`: ``data_root`` resolved (relative paths are from the project root),
    ``split_by_image`` absent read as none and ``select_on`` as ``all`` (records written before they existed)."""
    values = {key: record["params"].get(key) for key in SPLIT_PARAMS}
    if values["data_root"]:
        values["data_root"] = str(config.resolve(values["data_root"]).resolve())
    values["split_by_image"] = values["split_by_image"] or []
    values["select_on"] = values["select_on"] or "all"
    return values


def records_on_one_split(records: Sequence[Mapping]) -> tuple[list[Mapping], list[str]]:
    """The records split like the newest one, and a line for each other record.

    Choosing a model by validation score, or testing two models on paired predictions, is fair only
    between models that saw the same validation and test images and were scored on the same validation
    rows (``select_on``); both follow from the data files and :data:`SPLIT_PARAMS`, which every record keeps.

    Returns:
        ``(kept records, one line per record left out)``.
    """
    if not records:
        return [], []
    newest = split_settings(max(records, key=lambda r: r["created"]))
    kept, left_out = [], []
    for record in records:
        settings = split_settings(record)
        if settings == newest:
            kept.append(record)
            continue
        differ = ", ".join(f"{key} {settings[key]!r} (newest: {newest[key]!r})"
                           for key in SPLIT_PARAMS if settings[key] != newest[key])
        left_out.append(f"results/{record['model_id']}.json was split differently from the newest records "
                        f"({differ}); left out: rerun the notebook that trains it, or remove its results/ and "
                        "predictions/ files")
    return kept, left_out


def read_record(path: str | os.PathLike) -> dict:
    """One record file, read and validated.

    Raises:
        RecordError: not valid JSON or not a valid record (the message names the file).
    """
    try:
        record = json.loads(Path(path).read_text())
        validate_record(record)
    except (json.JSONDecodeError, RecordError) as error:
        raise RecordError(f"{path}: {error}") from error
    return record


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------

def _class_names(record: Mapping) -> list[str]:
    evaluation = record["evaluation"]
    if "class_names" in evaluation:
        return list(evaluation["class_names"])
    return list(evaluation["test"]["at_threshold"]["per_class"])


def _nan_pair(interval) -> tuple[float, float]:
    """A stored ``(low, high)`` interval with missing ends (or a missing interval) as NaN."""
    low, high = interval or (None, None)
    return (np.nan if low is None else low, np.nan if high is None else high)


def _ci(record: Mapping, key: str) -> tuple[float, float]:
    return _nan_pair((record["evaluation"].get("ci") or {}).get(key))


def _num(value: Any) -> float:
    return np.nan if value is None else value


#: The crop whose effect the tables show (:mod:`medclf.evaluation.framing`): the central 85% of each side.
FRAMING_CROP = 0.85


def framing_shift(record: Mapping, crop: float = FRAMING_CROP) -> float:
    """How much the share of validation images of the first (negative) class called positive rises when
    each image is cropped to its central ``crop`` of each side (``evaluation.framing``, see
    :mod:`medclf.evaluation.framing`); NaN when the record has no such row. Near 0: the model does not read framing."""
    negative = _class_names(record)[0]
    rows = record["evaluation"].get("framing") or []
    return next((float(r["change"]) for r in rows if r["crop"] == crop and r["class_name"] == negative), np.nan)


def records_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """One row per model: the headline test numbers, with 95% bootstrap intervals.

    Unless a column says ``at_0.5``, test metrics are at the threshold chosen on validation
    (``threshold``). Columns: ``model_id, model, family, study, image_size, accuracy,
    accuracy_ci_low, accuracy_ci_high, accuracy_at_0.5``, then per class ``recall_<class>,
    recall_<class>_ci_low, recall_<class>_ci_high``, then ``roc_auc, roc_auc_ci_low,
    roc_auc_ci_high, threshold, threshold_ci_low, threshold_ci_high`` (the threshold's 95% interval over
    validation resamples; NaN for older records) ``, framing_shift`` (:func:`framing_shift`, on validation)``,
    params_count,
    train_seconds, seconds_per_epoch, epochs_run, best_epoch``. Rows keep the order of ``records``.
    """
    rows = []
    for record in records:
        ev = record["evaluation"]
        at_t, at_half = ev["test"]["at_threshold"], ev["test"]["at_0.5"]
        training = record["training"]
        row = {"model_id": record["model_id"], "model": record.get("model"), "family": record.get("family"),
               "study": record.get("study"), "image_size": _input_size(record)}
        row["accuracy"] = at_t["accuracy"]
        row["accuracy_ci_low"], row["accuracy_ci_high"] = _ci(record, "accuracy")
        row["accuracy_at_0.5"] = at_half["accuracy"]
        for name in _class_names(record):
            row[f"recall_{name}"] = at_t["per_class"][name]["recall"]
            row[f"recall_{name}_ci_low"], row[f"recall_{name}_ci_high"] = _ci(record, f"recall_{name}")
        row["roc_auc"] = _num(at_t.get("roc_auc"))
        row["roc_auc_ci_low"], row["roc_auc_ci_high"] = _ci(record, "roc_auc")
        row["threshold"] = ev["threshold"]
        row["threshold_ci_low"], row["threshold_ci_high"] = _nan_pair(ev.get("threshold_ci"))
        row["framing_shift"] = framing_shift(record)
        row["params_count"] = record.get("params_count")
        row["train_seconds"] = training.get("seconds")
        row["seconds_per_epoch"] = training.get("seconds_per_epoch")
        row["epochs_run"] = training.get("epochs_run")
        row["best_epoch"] = training.get("best_epoch")
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["model_id", "model", "family", "study", "image_size", "accuracy",
                                     "accuracy_ci_low", "accuracy_ci_high", "accuracy_at_0.5", *_TABLE_TAIL])
    frame = pd.DataFrame(rows)
    return frame[[c for c in frame.columns if c not in _TABLE_TAIL] + _TABLE_TAIL]


#: The last columns of :func:`records_table`, in order.
_TABLE_TAIL = ["roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "threshold", "threshold_ci_low", "threshold_ci_high",
               "framing_shift", "params_count", "train_seconds", "seconds_per_epoch", "epochs_run", "best_epoch"]


def _input_size(record: Mapping) -> Any:
    """The model's input side: the size it was trained at, else the data set's."""
    return (record.get("spec") or {}).get("image_size_used") or (record.get("params") or {}).get("image_size")


def gap_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """Per model and class: recall at the validation-chosen threshold on validation vs test.

    A positive ``gap`` means validation was optimistic about that class (for the chest X-ray
    data, validation carved from the training folder is easier than the official test set).
    """
    rows = []
    for record in records:
        for name, values in record["evaluation"].get("val_test_gap", {}).items():
            rows.append({"model_id": record["model_id"], "class": name, "val_recall": values["val"],
                         "test_recall": values["test"], "gap": values["gap"],
                         "val_auc": _num(record["evaluation"]["val"]["at_threshold"].get("roc_auc")),
                         "test_auc": _num(record["evaluation"]["test"]["at_threshold"].get("roc_auc"))})
    return pd.DataFrame(rows, columns=["model_id", "class", "val_recall", "test_recall", "gap", "val_auc", "test_auc"])


def _reported_recalls(reported: Mapping, class_names: Sequence[str]) -> dict[str, float]:
    """Reported recall per class name from any of the accepted shapes (see the module docstring)."""
    recalls: dict[str, float] = {}
    value = reported.get("recall")
    if isinstance(value, Mapping):
        by_lower = {str(k).lower(): v for k, v in value.items()}
        recalls.update({name: by_lower[name.lower()] for name in class_names if name.lower() in by_lower})
    elif value is not None and len(class_names) == 2:
        recalls[class_names[1]] = value  # a single recall is the disease class's (sensitivity)
    flat = {str(k).lower(): v for k, v in reported.items()}
    for name in class_names:
        for key in (f"{name.lower()}_recall", f"recall_{name.lower()}"):
            if key in flat:
                recalls[name] = flat[key]
    return recalls


def study_reproduction_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """Published numbers next to ours, for every record whose ``reported`` is set.

    Columns: ``study, model, model_id, reported_accuracy, accuracy_at_0.5, accuracy_at_threshold``,
    then per class ``reported_recall_<class>, recall_<class>_at_0.5, recall_<class>_at_threshold``,
    then ``reported_roc_auc`` (only if some study gave one), ``roc_auc, threshold``, then
    ``reported_test_errors, test_errors_at_0.5, test_errors_at_threshold`` (only if some study
    gave its error count). Our numbers are
    on the test set; ``threshold`` is the one chosen on validation. A value the study did not report
    is NaN.
    """
    rows = []
    for record in records:
        reported = record.get("reported")
        if not reported:
            continue
        ev = record["evaluation"]
        at_t, at_half = ev["test"]["at_threshold"], ev["test"]["at_0.5"]
        names = _class_names(record)
        recalls = _reported_recalls(reported, names)
        row = {"study": record.get("study"), "model": record.get("model"), "model_id": record["model_id"],
               "reported_accuracy": _num(reported.get("accuracy")),
               "accuracy_at_0.5": at_half["accuracy"], "accuracy_at_threshold": at_t["accuracy"]}
        for name in names:
            row[f"reported_recall_{name}"] = _num(recalls.get(name))
            row[f"recall_{name}_at_0.5"] = at_half["per_class"][name]["recall"]
            row[f"recall_{name}_at_threshold"] = at_t["per_class"][name]["recall"]
        row["reported_roc_auc"] = _num(reported.get("roc_auc"))
        row["roc_auc"] = _num(at_t.get("roc_auc"))
        row["threshold"] = ev["threshold"]
        row["reported_test_errors"] = _num(reported.get("test_errors"))
        row["test_errors_at_0.5"] = _errors(at_half)
        row["test_errors_at_threshold"] = _errors(at_t)
        rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["study", "model", "model_id", "reported_accuracy", "accuracy_at_0.5",
                                     "accuracy_at_threshold", "roc_auc", "threshold"])
    frame = pd.DataFrame(rows)
    # optional columns only where some study reported the number
    if frame["reported_roc_auc"].isna().all():
        frame = frame.drop(columns="reported_roc_auc")
    if frame["reported_test_errors"].isna().all():
        frame = frame.drop(columns=["reported_test_errors", "test_errors_at_0.5", "test_errors_at_threshold"])
    return frame


def _errors(metrics: Mapping) -> float:
    """Misclassified test images: n × (1 − accuracy), rounded."""
    n = metrics.get("n")
    return np.nan if n is None else int(round(n * (1 - metrics["accuracy"])))
