"""Tables made from result records: headline test numbers, validation→test gaps, published numbers beside ours.

A record's ``reported`` field holds a study's published numbers for the model it reproduces
(``None`` for models of our own)::

    {"accuracy": 0.891, "normal_recall": 0.74, "pneumonia_recall": 0.98}     # as medclf.models.registry has it

Per-class recalls are read from flat keys ``<class>_recall`` or ``recall_<class>`` (class name in
any case), or from ``"recall": {class: value}``; a single number ``"recall": 0.98`` is the recall of
the disease class (label 1). ``roc_auc`` and ``test_errors`` are shown where a study gave them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd


#: The one symbol of a missing value wherever a table is shown (NaN, None and NA alike), in notebooks and pages.
MISSING = "—"
#: Decimals of every fractional number shown: metrics, thresholds, intervals.
DECIMALS = 3
#: Decimals of a duration (a column whose name says seconds): 62.7 s, not 62.720.
SECONDS_DECIMALS = 1


def _is_seconds(name: Any) -> bool:
    """Whether a column holds durations: its name says seconds (``train_seconds``, ``wall_s``, ``s/epoch``)."""
    text = str(name).lower().replace(" ", "_")
    return "seconds" in text or text.endswith("_s") or "s/epoch" in text


def format_value(value: Any, decimals: int = DECIMALS, p_value: bool = False) -> Any:
    """One table cell as shown to people: missing → :data:`MISSING`, a fraction with ``decimals`` decimals
    (a p-value under ``10**-decimals`` as ``<0.001``), anything else (integers, text) unchanged."""
    if value is None or (not isinstance(value, (str, bytes, list, tuple, dict)) and pd.isna(value)):
        return MISSING
    if isinstance(value, (float, np.floating)):
        if p_value and 0 <= value < 10 ** -decimals:
            return f"<{10 ** -decimals:.{decimals}f}"
        return f"{value:.{decimals}f}"
    return value


def format_seconds(value: Any) -> Any:
    """A duration as shown: :data:`SECONDS_DECIMALS` decimals, two under 0.1 s (an SVM's 0.02 s is not 0.0)."""
    if isinstance(value, (float, np.floating)) and not pd.isna(value) and abs(value) < 0.1:
        return f"{value:.2f}"
    return format_value(value, SECONDS_DECIMALS)


def _counts_column(column: pd.Series) -> bool:
    """A float column that holds counts (epochs, parameters, errors) widened to float by a missing value:
    every value whole and some above 1 (metrics and thresholds lie in 0..1)."""
    values = pd.to_numeric(column, errors="coerce").dropna()
    return (pd.api.types.is_float_dtype(column) and len(values) > 0 and bool((values == values.round()).all())
            and bool((values.abs() > 1).any()))


def _spaced(columns: pd.Index) -> pd.Index:
    """Column names with ``_`` shown as spaces (every level of a MultiIndex)."""
    if isinstance(columns, pd.MultiIndex):
        return pd.MultiIndex.from_tuples([tuple(str(c).replace("_", " ") for c in key) for key in columns],
                                         names=columns.names)
    return pd.Index([str(c).replace("_", " ") for c in columns], name=columns.name)


def readable(frame: pd.DataFrame, decimals: int = DECIMALS) -> pd.DataFrame:
    """``frame`` as shown in notebooks and reports: every fraction with ``decimals`` decimals, whole-number
    columns as integers, every missing value as :data:`MISSING` (never ``nan``/``None``) and ``_`` in
    column names as spaces (so headers wrap).

    The saved tables keep the exact numbers; only what people read is formatted here, so
    :func:`medclf.reporting.pages.readable_html` and the notebooks' ``display`` calls look the same.
    """
    shown = frame.copy()
    for i in range(shown.shape[1]):
        column = shown.iloc[:, i]
        if _counts_column(column):
            cells = [MISSING if pd.isna(v) else int(v) for v in column]
        else:
            p_value = str(shown.columns[i]).lower().replace(" ", "_").startswith("p_value")
            if _is_seconds(shown.columns[i]):
                cells = [format_seconds(v) for v in column]
            else:
                cells = [format_value(v, decimals, p_value) for v in column]
        shown.isetitem(i, pd.Series(cells, index=shown.index, dtype=object))
    # headers wrap at spaces (``recall_PNEUMONIA_ci_high`` has none: 26 such columns made a 3400 px table)
    shown.columns = _spaced(shown.columns)
    if not isinstance(shown.index, pd.RangeIndex):  # an index can hold numbers too (a threshold per row)
        levels = [[format_value(v, decimals) for v in shown.index.get_level_values(k)]
                  for k in range(shown.index.nlevels)]
        shown.index = pd.MultiIndex.from_arrays(levels, names=shown.index.names) if shown.index.nlevels > 1 \
            else pd.Index(levels[0], name=shown.index.name, dtype=object)
    return shown


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
