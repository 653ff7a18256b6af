"""Cross-model comparison of one data set's results: the headline table, every model, McNemar.

Everything here is computed from the per-model records and prediction files
(:mod:`medclf.evaluation.records`, :mod:`medclf.evaluation.predictions`: ``results/<model_id>.json``,
``predictions/<model_id>.csv``), so every number in the comparison is one of the records' numbers or
recomputable from the CSVs. Only comparable records meet: one profile, one split
(:func:`medclf.evaluation.records.comparable_records`).

The best model of each family, and the best overall, are picked by the one selection rule,
:mod:`medclf.evaluation.selection` (validation only; test numbers are only reported, never used to choose).

Paired comparisons use McNemar's test (:func:`medclf.evaluation.metrics.mcnemar`) on the same test images:
each model's predictions at its own stored threshold against the overall best's, rows matched by
file (:func:`medclf.evaluation.predictions.align_predictions`). Prediction files that do not hold the
same images (or disagree on a label) are refused.

Pure functions on records and DataFrames, except :func:`load_comparison`, which reads them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medclf.evaluation import metrics, tables
from medclf.evaluation.predictions import align_predictions, decisions, load_predictions, predictions_path
from medclf.evaluation.records import load_comparable
from medclf.evaluation.selection import (
    family_bests,
    family_order,
    has_constant_predictions,
    overall_best,
    rank_on_validation,
    selection_auc,
    selection_auc_ci,
    unchoosable_families,
)


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
    table = tables.records_table(records)
    aucs = [selection_auc(r) for r in records]
    intervals = [selection_auc_ci(r) for r in records]
    table.insert(5, "val_roc_auc", [np.nan if auc is None else auc for auc in aucs])
    for side, column in enumerate(("val_roc_auc_ci_low", "val_roc_auc_ci_high")):
        table.insert(6 + side, column, [np.nan if ci[side] is None else ci[side] for ci in intervals])
    table.insert(8, "val_accuracy", [r["evaluation"]["val"]["at_threshold"]["accuracy"] for r in records])
    table["constant_predictions"] = [has_constant_predictions(r) for r in records]
    best = overall_best(records)
    table["overall_best"] = [best is not None and r["model_id"] == best["model_id"] for r in records]
    return table


def all_models_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """Every model: :func:`medclf.evaluation.tables.records_table` plus ``val_roc_auc`` (with its bootstrap interval
    ``val_roc_auc_ci_low`` / ``_ci_high``; NaN for records written without one), ``val_accuracy``,
    ``constant_predictions`` (flagged: never chosen), ``family_best`` and ``overall_best``; rows by family,
    best on validation first."""
    if not records:
        return _with_validation([]).assign(family_best=pd.Series(dtype=bool))
    order = {f: i for i, f in enumerate(family_order(records))}
    ranked = sorted(rank_on_validation(records), key=lambda r: order[str(r.get("family"))])
    bests = {r["model_id"] for r in family_bests(records).values()}
    table = _with_validation(ranked)
    table.insert(table.columns.get_loc("overall_best"), "family_best", table["model_id"].isin(bests))
    return table.reset_index(drop=True)


def headline_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """One row per family: its validation-best model, with the test numbers of its record — the few columns a
    reader needs first (the full table, :func:`all_models_table`, has the rest).

    Columns: ``family, model_id, study, val_roc_auc``, then at the validation-chosen ``threshold`` the test
    ``accuracy``, each class's ``recall_<class>`` and ``roc_auc`` — each with ``_ci_low`` / ``_ci_high``
    (95% bootstrap over test images) — then ``threshold``, ``train_seconds`` and ``overall_best`` (True for
    the validation-best model of all). A family whose every model gave constant predictions has no row
    (:func:`medclf.evaluation.selection.unchoosable_families`).
    """
    table = all_models_table(records)
    table = table[table["family_best"]].reset_index(drop=True)
    metrics = ["accuracy", *(f"recall_{name}" for name in class_names(records)), "roc_auc"]
    columns = ["family", "model_id", "study", "val_roc_auc"]
    for metric in metrics:
        columns += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
    columns += ["threshold", "train_seconds", "overall_best"]
    return table[[c for c in columns if c in table.columns]]


def recall_frame(table: pd.DataFrame, names: Sequence[str]) -> pd.DataFrame:
    """Long form of per-class test recall (``model_id, family, class, recall, ci_low, ci_high``)
    from a :func:`headline_table` or :func:`all_models_table`, for grouped bars."""
    rows = [{"model_id": row["model_id"], "family": row["family"], "class": name,
             "recall": row[f"recall_{name}"], "ci_low": row[f"recall_{name}_ci_low"],
             "ci_high": row[f"recall_{name}_ci_high"]}
            for _, row in table.iterrows() for name in names]
    return pd.DataFrame(rows, columns=["model_id", "family", "class", "recall", "ci_low", "ci_high"])


# ---------------------------------------------------------------------------------------------
# McNemar and ROC inputs
# ---------------------------------------------------------------------------------------------

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
        medclf.evaluation.predictions.PredictionMismatchError: prediction files hold different images
            (see :func:`medclf.evaluation.predictions.align_predictions`).
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
        test = metrics.mcnemar(y, pred[best_id], pred[model_id])
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
    #: One line per model flagged for constant predictions (never chosen), and per family left without a row.
    flagged: list[str] = field(default_factory=list)


def constant_prediction_notes(records: Sequence[Mapping]) -> list[str]:
    """One line per record flagged for (near-)constant predictions, then one per family that has no choosable
    model left (so no headline row), saying why and what to do."""
    notes = []
    for record in records:
        if has_constant_predictions(record):
            info = record["evaluation"]["constant_predictions"]
            random_backbone = record.get("family") == "transfer" and "weights_file" in (record.get("training") or {}) \
                and record["training"]["weights_file"] is None
            hint = (" — its backbone had random weights (weights=none): with ImageNet weights (weights=imagenet, the "
                    "file in Keras' cache) the transfer models learn" if random_backbone else "")
            notes.append(f"{record['model_id']}: constant predictions (its probabilities span {info['spread']:.1e}, "
                         f"under {info['tolerance']:g}); flagged, never chosen{hint}")
    for family in unchoosable_families(records):
        notes.append(f"{family}: no headline row — every model of this family gave constant predictions")
    return notes


def compare_records(records: Sequence[Mapping], predictions: Mapping[str, pd.DataFrame],
                    problems: Sequence[str] = ()) -> Comparison:
    """Build every table of the comparison from records and their predictions (pure)."""
    best = overall_best(records)
    return Comparison(records=list(records), predictions=dict(predictions),
                      headline=headline_table(records), all_models=all_models_table(records),
                      mcnemar=mcnemar_vs_best(records, predictions), class_names=class_names(records),
                      best_id=None if best is None else best["model_id"], problems=list(problems),
                      flagged=constant_prediction_notes(records))


def load_predictions_for(out_dir: str | os.PathLike, records: Sequence[Mapping]
                         ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Each record's predictions CSV: ``({model_id: frame}, [one line per missing/unreadable file])``."""
    found, problems = {}, []
    for record in records:
        model_id = record["model_id"]
        path = predictions_path(out_dir, model_id)
        try:
            found[model_id] = load_predictions(out_dir, model_id)
        except FileNotFoundError:
            problems.append(f"{path}: missing; {model_id} is left out of McNemar and the ROC overlay "
                            "(rerun the notebook that trains it)")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            problems.append(f"{path}: unreadable ({error}); {model_id} is left out of McNemar and the ROC overlay")
    return found, problems


def load_comparison(out_dir: str | os.PathLike) -> Comparison:
    """Read every record and predictions file under ``out_dir`` (``outputs/<dataset>/<profile>``) and compare
    those made with the newest records' profile and split (:func:`medclf.evaluation.records.load_comparable`)."""
    records, left_out = load_comparable(out_dir)
    predictions, problems = load_predictions_for(out_dir, records)
    return compare_records(records, predictions, [*left_out, *problems])
