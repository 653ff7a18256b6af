"""Cross-model comparison of one data set's results: the headline table, every model, McNemar.

Everything here is computed from the per-model records and prediction files that
:mod:`medclf.evaluation.results` writes (``results/<model_id>.json``, ``predictions/<model_id>.csv``), so
every number in the comparison is one of the records' numbers or recomputable from the CSVs.

The choices follow the evaluation rules: the best model of each family, and the best overall, are
picked on **validation** only — highest validation ROC AUC, then highest validation accuracy (both
at the model's validation-chosen threshold), then ``model_id`` alphabetically so the pick is
deterministic. Test numbers are only reported, never used to choose.

Paired comparisons use McNemar's test (:func:`medclf.evaluation.evaluate.mcnemar`) on the same test images:
each model's predictions at its own stored threshold against the overall best's, rows matched by
file. Prediction files that do not hold the same images (or disagree on a label) are refused.

Pure functions on records and DataFrames, except :func:`load_comparison`, which reads them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medclf.evaluation import evaluate
from medclf.evaluation import results

#: Model families in display order; any other ``record["family"]`` follows, sorted.
FAMILIES = ("svm", "ann", "cnn", "transfer")

_PREDICTION_COLUMNS = ("file", "true_label", "probability")


class PredictionMismatchError(ValueError):
    """Two models' prediction files do not hold the same test images with the same labels."""


# ---------------------------------------------------------------------------------------------
# choosing on validation
# ---------------------------------------------------------------------------------------------

def _finite(value) -> float:
    return float(value) if value is not None and math.isfinite(value) else -math.inf


def validation_scores(record: Mapping) -> tuple[float, float]:
    """``(selection ROC AUC, val accuracy at the record's threshold)``; a missing value counts as −inf."""
    return _finite(results.selection_auc(record)), _finite(record["evaluation"]["val"]["at_threshold"].get("accuracy"))


def rank_on_validation(records: Sequence[Mapping]) -> list[Mapping]:
    """Records best first: validation AUC, then validation accuracy (descending), then ``model_id``."""
    return sorted(records, key=lambda r: (*(-s for s in validation_scores(r)), r["model_id"]))


def family_order(records: Sequence[Mapping]) -> list[str]:
    """The families present: those of :data:`FAMILIES` in that order, then any other, sorted."""
    present = {str(r.get("family")) for r in records}
    return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))


def family_bests(records: Sequence[Mapping]) -> dict[str, Mapping]:
    """The validation-best record of each family, in :func:`family_order`."""
    ranked = rank_on_validation(records)
    return {family: next(r for r in ranked if str(r.get("family")) == family) for family in family_order(records)}


def overall_best(records: Sequence[Mapping]) -> Mapping | None:
    """The validation-best record of all (``None`` when there are none)."""
    ranked = rank_on_validation(records)
    return ranked[0] if ranked else None


def class_names(records: Sequence[Mapping]) -> list[str]:
    """Class names (label order) shared by all records.

    Raises:
        ValueError: records disagree (they come from different data sets or class orders).
    """
    names: list[str] | None = None
    for record in records:
        ev = record["evaluation"]
        mine = list(ev.get("class_names") or ev["test"]["at_threshold"]["per_class"])
        if names is None:
            names = mine
        elif mine != names:
            raise ValueError(f"record {record['model_id']!r} has classes {mine} but others have {names}: "
                             "compare records of one data set only")
    return names or []


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------

def _with_validation(records: Sequence[Mapping]) -> pd.DataFrame:
    table = results.records_table(records)
    aucs = [results.selection_auc(r) for r in records]
    intervals = [results.selection_auc_ci(r) for r in records]
    table.insert(5, "val_roc_auc", [np.nan if auc is None else auc for auc in aucs])
    for side, column in enumerate(("val_roc_auc_ci_low", "val_roc_auc_ci_high")):
        table.insert(6 + side, column, [np.nan if ci[side] is None else ci[side] for ci in intervals])
    table.insert(8, "val_accuracy", [r["evaluation"]["val"]["at_threshold"]["accuracy"] for r in records])
    best = overall_best(records)
    table["overall_best"] = [best is not None and r["model_id"] == best["model_id"] for r in records]
    return table


def all_models_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """Every model: :func:`medclf.evaluation.results.records_table` plus ``val_roc_auc`` (with its bootstrap interval
    ``val_roc_auc_ci_low`` / ``_ci_high``; NaN for records written without one), ``val_accuracy``,
    ``family_best`` and ``overall_best``; rows by family, best on validation first."""
    if not records:
        return _with_validation([]).assign(family_best=pd.Series(dtype=bool))
    order = {f: i for i, f in enumerate(family_order(records))}
    ranked = sorted(rank_on_validation(records), key=lambda r: order[str(r.get("family"))])
    bests = {r["model_id"] for r in family_bests(records).values()}
    table = _with_validation(ranked)
    table.insert(table.columns.get_loc("overall_best"), "family_best", table["model_id"].isin(bests))
    return table.reset_index(drop=True)


def headline_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """One row per family: its validation-best model, with the test numbers of its record.

    Columns: ``family, model_id, study, image_size, val_roc_auc`` (+ its ``_ci_low`` / ``_ci_high``),
    ``val_accuracy``, test ``accuracy``,
    each class's ``recall_<class>`` and ``roc_auc`` — each with ``_ci_low`` / ``_ci_high`` (95%
    bootstrap over test images) — at the validation-chosen ``threshold``, then ``train_seconds``,
    ``params_count`` and ``overall_best`` (True for the validation-best model of all).
    """
    table = all_models_table(records)
    table = table[table["family_best"]].reset_index(drop=True)
    drop = ["model", "accuracy_at_0.5", "seconds_per_epoch", "epochs_run", "best_epoch", "family_best"]
    table = table.drop(columns=[c for c in drop if c in table.columns])
    first = ["family", "model_id", "study", "image_size", "val_roc_auc", "val_roc_auc_ci_low", "val_roc_auc_ci_high",
             "val_accuracy"]
    last = ["threshold", "train_seconds", "params_count", "overall_best"]
    middle = [c for c in table.columns if c not in first + last]
    return table[first + middle + last]


def recall_frame(table: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Long form of per-class test recall (``model_id, family, class, recall, ci_low, ci_high``)
    from a :func:`headline_table` or :func:`all_models_table`, for grouped bars."""
    rows = [{"model_id": row["model_id"], "family": row["family"], "class": name,
             "recall": row[f"recall_{name}"], "ci_low": row[f"recall_{name}_ci_low"],
             "ci_high": row[f"recall_{name}_ci_high"]}
            for _, row in table.iterrows() for name in names]
    return pd.DataFrame(rows, columns=["model_id", "family", "class", "recall", "ci_low", "ci_high"])


# ---------------------------------------------------------------------------------------------
# predictions: alignment, McNemar, ROC inputs
# ---------------------------------------------------------------------------------------------

def check_predictions(model_id: str, frame: pd.DataFrame) -> pd.DataFrame:
    """One model's predictions indexed by ``file``, after checking its columns and that no file repeats.

    Raises:
        PredictionMismatchError: a missing column or a file listed twice.
    """
    missing = [c for c in _PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise PredictionMismatchError(f"predictions of {model_id!r} lack column(s) {missing}; "
                                      f"expected {list(_PREDICTION_COLUMNS)} (results.save_predictions)")
    duplicated = frame["file"][frame["file"].duplicated()]
    if len(duplicated):
        raise PredictionMismatchError(f"predictions of {model_id!r} list {len(duplicated)} file(s) twice, "
                                      f"e.g. {duplicated.iloc[0]!r}: one row per test image is expected")
    return frame.set_index("file")


def align_predictions(predictions: Mapping[str, pd.DataFrame], reference: str
                      ) -> tuple[list[str], np.ndarray, dict[str, np.ndarray]]:
    """Match every model's prediction rows to ``reference``'s by file.

    Args:
        predictions: ``{model_id: predictions DataFrame}`` (as :func:`medclf.evaluation.results.load_predictions`).
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


_MCNEMAR_COLUMNS = ["model_id", "family", "n", "accuracy", "best_model_id", "best_accuracy",
                    "only_best_right", "only_model_right", "statistic", "method", "p_value", "note"]


def mcnemar_vs_best(records: Sequence[Mapping], predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """McNemar's test of every model against the validation-best one, on the same test images.

    Each model predicts class 1 where its probability is at least its own stored threshold
    (``evaluation.threshold``, chosen on validation). Rows follow :func:`rank_on_validation`.
    ``accuracy`` is recomputed from the CSV; a ``note`` says when it disagrees with the record
    (a stale predictions file) or when a model has no predictions.

    Columns: ``model_id, family, n, accuracy, best_model_id, best_accuracy, only_best_right,
    only_model_right, statistic, method, p_value, note``.

    Raises:
        PredictionMismatchError: prediction files hold different images (see :func:`align_predictions`).
    """
    best = overall_best(records)
    if best is None:
        return pd.DataFrame(columns=_MCNEMAR_COLUMNS)
    best_id = best["model_id"]
    ranked = rank_on_validation(records)
    present = {r["model_id"]: predictions[r["model_id"]] for r in ranked if r["model_id"] in predictions}
    if best_id not in present:
        return pd.DataFrame([{"model_id": r["model_id"], "family": r.get("family"), "best_model_id": best_id,
                              "note": f"no predictions for the best model {best_id}"}
                             for r in ranked if r["model_id"] != best_id], columns=_MCNEMAR_COLUMNS)
    _, y, probs = align_predictions(present, best_id)
    by_id = {r["model_id"]: r for r in records}
    pred = {model_id: decisions(by_id[model_id], p) for model_id, p in probs.items()}
    best_accuracy = float(np.mean(pred[best_id] == y))
    rows = []
    for record in ranked:
        model_id = record["model_id"]
        if model_id == best_id:
            continue
        row = {"model_id": model_id, "family": record.get("family"), "best_model_id": best_id,
               "best_accuracy": best_accuracy}
        if model_id not in pred:
            rows.append({**row, "note": f"no predictions file predictions/{model_id}.csv"})
            continue
        test = evaluate.mcnemar(y, pred[best_id], pred[model_id])
        accuracy = float(np.mean(pred[model_id] == y))
        stored = record["evaluation"]["test"]["at_threshold"]["accuracy"]
        note = "" if math.isclose(accuracy, stored, abs_tol=1e-9) else (
            f"predictions CSV gives accuracy {accuracy:.4f} but the record says {stored:.4f}: stale file?")
        rows.append({**row, "n": int(y.size), "accuracy": accuracy, "only_best_right": test["b"],
                     "only_model_right": test["c"], "statistic": test["statistic"], "method": test["method"],
                     "p_value": test["p_value"], "note": note})
    return pd.DataFrame(rows, columns=_MCNEMAR_COLUMNS)


def roc_inputs(headline: pd.DataFrame, predictions: Mapping[str, pd.DataFrame]
               ) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """``(label, y_true, probability)`` per headline model that has predictions, for an ROC overlay.

    The label reads ``family: model_id``, with ``(best)`` appended for the overall best.
    """
    curves = []
    for _, row in headline.iterrows():
        frame = predictions.get(row["model_id"])
        if frame is None:
            continue
        label = f"{row['family']}: {row['model_id']}" + (" (best)" if row["overall_best"] else "")
        curves.append((label, frame["true_label"].to_numpy(np.int64), frame["probability"].to_numpy(np.float64)))
    return curves


# ---------------------------------------------------------------------------------------------
# all of it, from disk
# ---------------------------------------------------------------------------------------------

@dataclass
class Comparison:
    """Everything the compare notebook shows, for one data set's records."""

    records: list[dict]
    predictions: dict[str, pd.DataFrame]
    headline: pd.DataFrame
    all_models: pd.DataFrame
    mcnemar: pd.DataFrame
    class_names: list[str]
    best_id: str | None
    problems: list[str] = field(default_factory=list)


def compare_records(records: Sequence[Mapping], predictions: Mapping[str, pd.DataFrame],
                    problems: Sequence[str] = ()) -> Comparison:
    """Build every table of the comparison from records and their predictions (pure)."""
    best = overall_best(records)
    return Comparison(records=list(records), predictions=dict(predictions),
                      headline=headline_table(records), all_models=all_models_table(records),
                      mcnemar=mcnemar_vs_best(records, predictions), class_names=class_names(records),
                      best_id=None if best is None else best["model_id"], problems=list(problems))


def load_predictions_for(out_dir: str | os.PathLike, records: Sequence[Mapping]
                         ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Each record's predictions CSV: ``({model_id: frame}, [one line per missing/unreadable file])``."""
    found, problems = {}, []
    for record in records:
        model_id = record["model_id"]
        path = results.predictions_path(out_dir, model_id)
        try:
            found[model_id] = results.load_predictions(out_dir, model_id)
        except FileNotFoundError:
            problems.append(f"{path}: missing; {model_id} is left out of McNemar and the ROC overlay "
                            "(rerun the notebook that trains it)")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            problems.append(f"{path}: unreadable ({error}); {model_id} is left out of McNemar and the ROC overlay")
    return found, problems


def load_comparison(out_dir: str | os.PathLike) -> Comparison:
    """Read every record and predictions file under ``out_dir`` (``outputs/<dataset>``) and compare
    those made on the newest records' split (:func:`medclf.evaluation.results.records_on_one_split`)."""
    records, left_out = results.records_on_one_split(results.load_records(out_dir))
    predictions, problems = load_predictions_for(out_dir, records)
    return compare_records(records, predictions, [*left_out, *problems])
