"""Cross-model comparison of one data set's results: the headline table, every model, McNemar, published results.

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

Published results (:attr:`medclf.config.datasets.DatasetInfo.published`) are set beside the family bests
in :func:`published_table`, each marked as reported by its authors and placed against our overall best's
95% intervals (inside, below or above).

Pure functions on records and DataFrames, except :func:`load_comparison`, which reads them.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from medclf.config.datasets import PublishedResult
from medclf.evaluation import metrics, statistics, tables
from medclf.evaluation.predictions import align_predictions, decisions, load_predictions, predictions_path
from medclf.evaluation.records import load_comparable
from medclf.evaluation.selection import (
    certainty_note,
    family_bests,
    family_order,
    family_win_rates,
    flagged_note,
    has_constant_predictions,
    overall_best,
    rank_on_validation,
    selection_auc,
    selection_auc_ci,
    unchoosable_families,
    win_rates,
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
                    "only_best_right", "only_model_right", "statistic", "method", "p_value", "constant_predictions",
                    "note"]


def mcnemar_vs_best(records: Sequence[Mapping], predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """McNemar's test of every model against the validation-best one, on the same test images.

    Each model predicts class 1 where its probability is at least its own stored threshold
    (``evaluation.threshold``, chosen on validation). Rows follow :func:`rank_on_validation`.
    ``accuracy`` is recomputed from the CSV; a ``note`` says when it disagrees with the record
    (a stale predictions file) or when a model has no predictions.

    Columns: ``model_id, family, n, accuracy, best_model_id, best_accuracy, only_best_right,
    only_model_right, statistic, method, p_value, constant_predictions, note``; ``constant_predictions`` is
    the model's flag (:func:`medclf.evaluation.selection.has_constant_predictions`: its row is tested, and
    marked wherever shown).

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
                              "constant_predictions": has_constant_predictions(r),
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
               "best_accuracy": best_accuracy, "constant_predictions": has_constant_predictions(record)}
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
# published results beside ours
# ---------------------------------------------------------------------------------------------

#: ``reported_by`` of a published row: the number is the paper's, not recomputed here.
REPORTED_BY_AUTHORS = "reported by the authors"

_PUBLISHED_COLUMNS = ["reported_by", "source", "model", "evaluation", "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high",
                      "accuracy_at_0.5", "accuracy_at_0.5_ci_low", "accuracy_at_0.5_ci_high", "accuracy_at_threshold",
                      "accuracy_at_threshold_ci_low", "accuracy_at_threshold_ci_high", "threshold", "sensitivity",
                      "specificity", "vs_our_best", "overall_best", "note"]


def interval_verdict(value, low, high) -> str:
    """Where a published ``value`` falls against our interval ``[low, high]``: ``"inside"``, ``"below"`` or
    ``"above"``; ``""`` when the value or either end is missing."""
    numbers = [np.nan if v is None else float(v) for v in (value, low, high)]
    if any(math.isnan(v) for v in numbers):
        return ""
    value, low, high = numbers
    return "below" if value < low else "above" if value > high else "inside"


def accuracy_at_half(record: Mapping, frame: pd.DataFrame | None) -> tuple[float, float, float]:
    """``(accuracy, ci_low, ci_high)`` on test at probability 0.5, as MedMNIST reports it: the record's accuracy and a
    95% bootstrap interval recomputed from its predictions CSV (records keep intervals at the validation-chosen
    threshold only), with the record's replicates and seed. The ends are NaN without predictions, or when the
    CSV's accuracy disagrees with the record's (a stale file)."""
    evaluation = record["evaluation"]
    point = float(evaluation["test"]["at_0.5"]["accuracy"])
    settings = evaluation.get("bootstrap") or {}
    if frame is None or not settings.get("n_replicates"):
        return point, np.nan, np.nan
    y = frame["true_label"].to_numpy(np.int64)
    p = frame["probability"].to_numpy(np.float64)
    if not math.isclose(float(np.mean((p >= 0.5) == y)), point, abs_tol=1e-9):
        return point, np.nan, np.nan
    low, high = statistics.bootstrap_ci(y, p, 0.5, n_replicates=int(settings["n_replicates"]),
                                        seed=int(settings.get("seed", 0)), with_auc=False)["accuracy"]
    return point, (np.nan if low is None else low), (np.nan if high is None else high)


def _our_row(record: Mapping, frame: pd.DataFrame | None, best_id: str | None) -> dict:
    evaluation, ci = record["evaluation"], record["evaluation"].get("ci") or {}
    at_t, at_half = evaluation["test"]["at_threshold"], evaluation["test"]["at_0.5"]
    names = class_names([record])
    half = accuracy_at_half(record, frame)
    row = {"reported_by": f"ours: best {record.get('family')} on validation", "source": "this run",
           "model": record["model_id"], "evaluation": f"test split ({at_t.get('n', '?')} images), per image",
           "roc_auc": at_t.get("roc_auc"), "accuracy_at_threshold": at_t["accuracy"],
           "threshold": evaluation["threshold"], "sensitivity": at_half["per_class"][names[1]]["recall"],
           "specificity": at_half["per_class"][names[0]]["recall"], "vs_our_best": "",
           "overall_best": record["model_id"] == best_id, "note": ""}
    row["accuracy_at_0.5"], row["accuracy_at_0.5_ci_low"], row["accuracy_at_0.5_ci_high"] = half
    for key in ("roc_auc", "accuracy_at_threshold"):
        low, high = ci.get("roc_auc" if key == "roc_auc" else "accuracy") or (None, None)
        row[f"{key}_ci_low"], row[f"{key}_ci_high"] = (np.nan if low is None else low), (np.nan if high is None else high)
    return row


def _published_row(result: PublishedResult, best: dict | None) -> dict:
    if best is None:
        verdict = "no model of ours to compare"
    else:
        parts = [(label, interval_verdict(value, best[f"{key}_ci_low"], best[f"{key}_ci_high"]))
                 for label, value, key in (("AUC", result.roc_auc, "roc_auc"),
                                           ("acc@0.5", result.accuracy, "accuracy_at_0.5"))
                 if value is not None]
        verdict = " · ".join(f"{label} {word or 'no interval'}" for label, word in parts)
    return {"reported_by": REPORTED_BY_AUTHORS, "source": result.source, "model": result.model,
            "evaluation": result.evaluation, "roc_auc": result.roc_auc, "accuracy_at_0.5": result.accuracy,
            "sensitivity": result.sensitivity, "specificity": result.specificity, "vs_our_best": verdict,
            "overall_best": False, "note": result.note}


def published_table(published: Sequence[PublishedResult], records: Sequence[Mapping],
                    predictions: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Published results beside ours: one row per result the papers reported (``reported_by`` says so, and
    ``evaluation`` how they measured it), then the validation-best model of each family
    (:func:`medclf.evaluation.selection.family_bests`: models flagged for constant predictions never appear).

    Our rows hold test ``roc_auc`` and ``accuracy_at_threshold`` (the validation-chosen ``threshold``) with the
    record's 95% intervals, and ``accuracy_at_0.5`` with its interval (:func:`accuracy_at_half`); ``sensitivity``
    and ``specificity`` are at 0.5, the authors' decision rule. A published row puts the authors' accuracy under
    ``accuracy_at_0.5`` and says in ``vs_our_best`` whether its AUC and accuracy fall inside, below or above the
    intervals of our overall best (``overall_best``). No published results, no rows: an empty table.
    """
    if not published:
        return pd.DataFrame(columns=_PUBLISHED_COLUMNS)
    best = overall_best(records)
    ours = [_our_row(r, predictions.get(r["model_id"]), best and best["model_id"])
            for r in family_bests(records).values()]
    best_row = next((row for row in ours if row["overall_best"]), None)
    rows = [_published_row(result, best_row) for result in published] + ours
    return pd.DataFrame(rows).reindex(columns=_PUBLISHED_COLUMNS)


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
    #: Each choosable model's share of bootstrap resamples of the selection rows it wins, of all models and
    #: within its family (:func:`medclf.evaluation.selection.win_rates`); empty without validation predictions.
    win_rates: dict[str, float] = field(default_factory=dict)
    family_win_rates: dict[str, float] = field(default_factory=dict)
    #: Whether validation singles out the overall best (:func:`medclf.evaluation.selection.certainty_note`).
    certainty: str | None = None

    @property
    def notes(self) -> list[str]:
        """The lines under the headline: how sure the choice is, then the flagged models."""
        return ([self.certainty] if self.certainty else []) + self.flagged


def constant_prediction_notes(records: Sequence[Mapping]) -> list[str]:
    """One line per record flagged for (near-)constant predictions (:func:`flagged_note`), then one per family
    that has no choosable model left (so no headline row), saying why and what to do."""
    notes = [note for note in map(flagged_note, records) if note]
    for family in unchoosable_families(records):
        notes.append(f"{family}: no headline row — every model of this family gave constant predictions")
    return notes


def _with_win_rates(table: pd.DataFrame, overall: Mapping[str, float], family: Mapping[str, float]) -> pd.DataFrame:
    """``table`` with ``val_win_rate`` and ``family_win_rate`` after the validation AUC's interval (NaN: no rate)."""
    table = table.copy()
    at = table.columns.get_loc("val_roc_auc_ci_high" if "val_roc_auc_ci_high" in table else "val_roc_auc") + 1
    table.insert(at, "val_win_rate", [overall.get(m, np.nan) for m in table["model_id"]])
    table.insert(at + 1, "family_win_rate", [family.get(m, np.nan) for m in table["model_id"]])
    return table


def compare_records(records: Sequence[Mapping], predictions: Mapping[str, pd.DataFrame],
                    problems: Sequence[str] = (), val_predictions: Mapping[str, pd.DataFrame] | None = None
                    ) -> Comparison:
    """Build every table of the comparison from records and their test (and validation) predictions (pure)."""
    best = overall_best(records)
    rates, n_rows = win_rates(records, val_predictions or {})
    family_rates = family_win_rates(records, val_predictions or {})
    return Comparison(records=list(records), predictions=dict(predictions),
                      headline=_with_win_rates(headline_table(records), rates, family_rates),
                      all_models=_with_win_rates(all_models_table(records), rates, family_rates),
                      mcnemar=mcnemar_vs_best(records, predictions), class_names=class_names(records),
                      best_id=None if best is None else best["model_id"], problems=list(problems),
                      flagged=constant_prediction_notes(records), win_rates=rates, family_win_rates=family_rates,
                      certainty=certainty_note(records, rates, n_rows))


def load_predictions_for(out_dir: str | os.PathLike, records: Sequence[Mapping], split: str = "test"
                         ) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """Each record's predictions CSV of ``split``: ``({model_id: frame}, [one line per missing/unreadable file])``."""
    found, problems = {}, []
    left_out = "McNemar and the ROC overlay" if split == "test" else "the win rates"
    for record in records:
        model_id = record["model_id"]
        path = predictions_path(out_dir, model_id, split)
        try:
            found[model_id] = load_predictions(out_dir, model_id, split)
        except FileNotFoundError:
            problems.append(f"{path}: missing; {model_id} is left out of {left_out} "
                            "(rerun the notebook that trains it)")
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
            problems.append(f"{path}: unreadable ({error}); {model_id} is left out of {left_out}")
    return found, problems


def load_comparison(out_dir: str | os.PathLike) -> Comparison:
    """Read every record and predictions file under ``out_dir`` (``outputs/<dataset>/<profile>``) and compare
    those made with the newest records' profile and split (:func:`medclf.evaluation.records.load_comparable`)."""
    records, left_out = load_comparable(out_dir)
    predictions, problems = load_predictions_for(out_dir, records)
    val_predictions, val_problems = load_predictions_for(out_dir, records, "val")
    return compare_records(records, predictions, [*left_out, *problems, *val_problems], val_predictions)
