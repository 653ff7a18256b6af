"""Uncertainty and the whole evaluation of one model: bootstrap intervals, the threshold's spread, paired deltas.

Pure functions on numpy arrays, built on :mod:`medclf.evaluation.metrics`. :func:`evaluate_model` is the
one evaluation every trained model gets: threshold from validation only, metrics on validation and test,
bootstrap intervals on test. Validation carved from the training folders tends to be easier than the
official test set, so the validation→test gap of each class recall is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import roc_auc_score

from medclf.evaluation import metrics
from medclf.evaluation.metrics import (
    TOL,
    check_class_names,
    check_fraction,
    check_labels,
    check_replicates,
    check_same_length,
    check_scores,
    check_threshold,
    rank_auc,
)


# ---------------------------------------------------------------------------------------------
# intervals
# ---------------------------------------------------------------------------------------------

def percentile_interval(values, level: float = 0.95) -> tuple:
    """Central percentile interval of the finite ``values``; ``(None, None)`` when there are none."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return (None, None)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(values, [tail, 100 - tail])
    return (float(low), float(high))


def threshold_bootstrap(y_val, p_val, target_sensitivity: float = 0.95, n_replicates: int = 1000,
                        seed: int = 0) -> np.ndarray:
    """The threshold :func:`~medclf.evaluation.metrics.choose_threshold` would pick on each of ``n_replicates`` bootstrap
    resamples of the validation images (NaN for a resample without a positive image).

    Why: the chosen threshold is an order statistic of the positive validation scores (the
    ``ceil(target * n_pos)``-th highest), so with a few hundred positives and saturated
    probabilities it can move a long way between resamples — and between training runs. Its spread
    says how much of a test recall at that threshold is luck of the validation draw.

    Like :func:`~medclf.evaluation.metrics.choose_threshold` this takes validation arrays only. Vectorised: on each resample
    the threshold is that order statistic of its positive scores (equal to ``choose_threshold`` on
    the resample, which ``tests/test_evaluate.py`` checks).
    """
    y = check_labels(y_val, "y_val", both_classes=True)
    p = check_scores(p_val, "p_val")
    check_same_length(y_val=y, p_val=p)
    target = check_fraction(target_sensitivity, "target_sensitivity")
    n_replicates = check_replicates(n_replicates)
    n = y.size
    rng = np.random.default_rng(seed)
    thresholds = np.full(n_replicates, np.nan)
    chunk = max(1, 2_000_000 // n)
    for start in range(0, n_replicates, chunk):
        stop = min(start + chunk, n_replicates)
        idx = rng.integers(0, n, size=(stop - start, n))
        positive = y[idx] == 1
        descending = -np.sort(-np.where(positive, p[idx], -np.inf), axis=1)
        n_pos = positive.sum(axis=1)
        k = np.ceil((target - TOL) * n_pos).astype(np.int64)  # rank of the threshold among positives
        rows = np.flatnonzero(n_pos > 0)
        thresholds[start + rows] = descending[rows, k[rows] - 1]
    return thresholds


def bootstrap_ci(y_true, p, threshold, n_replicates: int = 1000, seed: int = 0,
                 level: float = 0.95, class_names: Sequence[str] | None = None,
                 with_auc: bool = True) -> dict[str, tuple]:
    """Percentile bootstrap confidence intervals over test images.

    Each replicate draws ``n`` images with replacement and recomputes accuracy and each class's
    recall at ``threshold`` and the ROC AUC. A replicate without any image of a class is skipped
    for that class's recall and for the AUC. The AUC of a replicate is computed in its rank
    (Mann-Whitney) form, vectorised over replicates; it equals ``sklearn.metrics.roc_auc_score``.

    Args:
        y_true: labels, 0/1.
        p: probabilities (or scores) of class 1.
        threshold: operating point (``p >= threshold`` is class 1): one number, or one per replicate
            (e.g. :func:`threshold_bootstrap`'s, so the interval also carries the uncertainty of a
            threshold chosen on a finite validation set; a NaN threshold skips that replicate).
        n_replicates: number of bootstrap replicates.
        seed: seed of the resampling (same seed, same intervals).
        level: coverage of the interval, in (0, 1).
        class_names: names of label 0 and 1 for the recall keys; default ``("0", "1")``.
        with_auc: also the ROC AUC interval (the costly part; it does not depend on the threshold).

    Returns:
        ``{"accuracy": (low, high), "recall_<class 0>": ..., "recall_<class 1>": ...,
        "roc_auc": ...}``; ``(None, None)`` where no replicate could be used.

    Raises:
        ValueError: on bad inputs.
    """
    y = check_labels(y_true, "y_true")
    scores = check_scores(p, "p")
    check_same_length(y_true=y, p=scores)
    n_replicates = check_replicates(n_replicates)
    if np.ndim(threshold) == 0:
        thresholds = np.full(n_replicates, check_threshold(threshold))
    else:
        thresholds = np.asarray(threshold, dtype=np.float64)
        if thresholds.shape != (n_replicates,):
            raise ValueError(f"threshold must be one number or one per replicate ({n_replicates}); "
                             f"got shape {thresholds.shape}")
    level = check_fraction(level, "level", include_one=False)
    names = check_class_names(class_names) if class_names is not None else ["0", "1"]

    n = y.size
    rng = np.random.default_rng(seed)
    accuracy = np.empty(n_replicates)
    recalls = np.empty((2, n_replicates))
    auc = np.empty(n_replicates)
    chunk = max(1, 2_000_000 // n)  # bound memory: about 2e6 resampled images per block
    for start in range(0, n_replicates, chunk):
        stop = min(start + chunk, n_replicates)
        idx = rng.integers(0, n, size=(stop - start, n))
        yb, pb = y[idx], scores[idx]
        cut = thresholds[start:stop]
        correct = yb == (pb >= cut[:, None])
        usable = ~np.isnan(cut)
        accuracy[start:stop] = np.where(usable, correct.mean(axis=1), np.nan)
        for k in (0, 1):
            in_class = yb == k
            with np.errstate(divide="ignore", invalid="ignore"):
                share = (correct & in_class).sum(axis=1) / in_class.sum(axis=1)
            recalls[k, start:stop] = np.where(usable, share, np.nan)
        if with_auc:
            auc[start:stop] = rank_auc(yb, pb)

    result = {"accuracy": percentile_interval(accuracy, level)}
    for k, name in enumerate(names):
        result[f"recall_{name}"] = percentile_interval(recalls[k], level)
    if with_auc:
        result["roc_auc"] = percentile_interval(auc, level)
    return result


def win_rates(y_true, scores, n_replicates: int = 1000, seed: int = 0) -> dict[str, float]:
    """How often each model has the highest ROC AUC when the rows are resampled with replacement.

    Args:
        y_true: labels, 0/1, one per row.
        scores: ``{model_id: probabilities}``, each one per row, **in the selection rule's order**: a tie
            goes to the model listed first, as the rule breaks it.
        n_replicates: bootstrap replicates; one that draws a single class is skipped.
        seed: seed of the resampling (same seed, same rates).

    Returns:
        ``{model_id: share of the usable replicates it wins}`` (the shares add up to 1); every share is NaN
        when no replicate is usable.
    """
    y = check_labels(y_true, "y_true")
    names = list(scores)
    if not names:
        return {}
    matrix = np.stack([check_scores(scores[name], f"scores[{name!r}]") for name in names])
    check_same_length(y_true=y, **{f"scores_{i}": row for i, row in enumerate(matrix)})
    n_replicates = check_replicates(n_replicates)
    rng = np.random.default_rng(seed)
    n = y.size
    wins = np.zeros(len(names), dtype=np.int64)
    chunk = max(1, 2_000_000 // max(1, n * len(names)))
    for start in range(0, n_replicates, chunk):
        idx = rng.integers(0, n, size=(min(chunk, n_replicates - start), n))
        aucs = np.stack([rank_auc(y[idx], row[idx]) for row in matrix])  # (models, replicates)
        usable = ~np.isnan(aucs).any(axis=0)
        winners = np.argmax(aucs[:, usable], axis=0)  # the first of equal maxima: the rule's tie-break
        wins += np.bincount(winners, minlength=len(names))
    total = wins.sum()
    return {name: (float(w / total) if total else float("nan")) for name, w in zip(names, wins)}


# ---------------------------------------------------------------------------------------------
# the whole evaluation of one model
# ---------------------------------------------------------------------------------------------

def evaluate_model(y_val, p_val, y_test, p_test, class_names: Sequence[str],
                   target_sensitivity: float = 0.95, n_replicates: int = 1000, seed: int = 0) -> dict:
    """Evaluate one model: threshold from validation, metrics on validation and test.

    Steps: (1) :func:`~medclf.evaluation.metrics.choose_threshold` on ``(y_val, p_val)`` only;
    (2) :func:`~medclf.evaluation.metrics.metrics_at` on
    validation and test, at 0.5 and at that threshold; (3) bootstrap intervals on test at the
    threshold; (4) the validation→test gap of each class recall at the threshold; (5) how far the
    threshold moves over resamples of validation (:func:`threshold_bootstrap`) and the test intervals
    when each test resample is scored at the threshold chosen on its own validation resample.

    Args:
        y_val, p_val: validation labels and probabilities of class 1.
        y_test, p_test: test labels and probabilities of class 1.
        class_names: names of label 0 and label 1.
        target_sensitivity: validation recall of class 1 the threshold must reach.
        n_replicates, seed: bootstrap settings.

    Returns:
        A JSON-ready dict::

            {"threshold": t, "target_sensitivity": ..., "class_names": [...],
             "val":  {"at_0.5": metrics, "at_threshold": metrics},
             "test": {"at_0.5": metrics, "at_threshold": metrics},
             "ci": {"accuracy": (lo, hi), "recall_<class>": ..., "roc_auc": ...},   # test, at t
             "threshold_ci": (lo, hi),                                 # t over validation resamples
             "ci_threshold_resampled": {"accuracy": ..., "recall_<class>": ...},  # test, t re-chosen
             "val_test_gap": {class: {"val": r, "test": r, "gap": val - test}},     # recalls at t
             "bootstrap": {"n_replicates", "seed", "level"},
             "constant_predictions": {"flag", "spread", "tolerance"}}   # metrics.constant_predictions

        A positive gap means validation was optimistic about that class.

    Raises:
        ValueError: on bad inputs; probabilities must lie in [0, 1] (0.5 is reported).
    """
    names = check_class_names(class_names)
    yv = check_labels(y_val, "y_val", both_classes=True)
    pv = check_scores(p_val, "p_val", probabilities=True)
    check_same_length(y_val=yv, p_val=pv)
    yt = check_labels(y_test, "y_test", both_classes=True)
    pt = check_scores(p_test, "p_test", probabilities=True)
    check_same_length(y_test=yt, p_test=pt)

    threshold = metrics.choose_threshold(yv, pv, target_sensitivity)  # validation only
    resampled = threshold_bootstrap(yv, pv, target_sensitivity, n_replicates, seed)  # validation only

    val = {"at_0.5": metrics.metrics_at(yv, pv, 0.5, names),
           "at_threshold": metrics.metrics_at(yv, pv, threshold, names)}
    test = {"at_0.5": metrics.metrics_at(yt, pt, 0.5, names),
            "at_threshold": metrics.metrics_at(yt, pt, threshold, names)}
    gap = {}
    for name in names:
        r_val = val["at_threshold"]["per_class"][name]["recall"]
        r_test = test["at_threshold"]["per_class"][name]["recall"]
        gap[name] = {"val": r_val, "test": r_test, "gap": r_val - r_test}
    return {
        "threshold": threshold,
        "target_sensitivity": float(target_sensitivity),
        "class_names": names,
        "val": val,
        "test": test,
        "ci": bootstrap_ci(yt, pt, threshold, n_replicates=n_replicates, seed=seed, class_names=names),
        "threshold_ci": percentile_interval(resampled),
        "ci_threshold_resampled": bootstrap_ci(yt, pt, resampled, n_replicates=n_replicates, seed=seed,
                                               class_names=names, with_auc=False),
        "val_test_gap": gap,
        "bootstrap": {"n_replicates": int(n_replicates), "seed": int(seed), "level": 0.95},
        "constant_predictions": metrics.constant_predictions(pv, pt),
    }


def selection_summary(y_val, p_val, mask, rule: str, n_replicates: int = 1000, seed: int = 0) -> dict:
    """The validation rows that chose epochs and models (``mask``, by ``rule``): how many, how many
    positives, their ROC AUC — the score :mod:`medclf.evaluation.selection` ranks models by — and its 95% bootstrap
    interval over those rows (how far apart two models' AUCs must be before the ranking means much)."""
    y, p = check_labels(y_val, "y_val"), check_scores(p_val, "p_val")
    mask = np.asarray(mask, dtype=bool)
    check_same_length(y_val=y, p_val=p, mask=mask)
    both = np.unique(y[mask]).size == 2
    auc = float(roc_auc_score(y[mask], p[mask])) if both else None
    interval = (bootstrap_ci(y[mask], p[mask], 0.5, n_replicates=n_replicates, seed=seed)["roc_auc"] if both
                else (None, None))
    return {"rule": rule, "images": int(mask.sum()), "positives": int(y[mask].sum()), "roc_auc": auc,
            "roc_auc_ci": list(interval)}


# ---------------------------------------------------------------------------------------------
# paired difference of two models
# ---------------------------------------------------------------------------------------------

def paired_bootstrap_delta(y, p_a, threshold_a: float, p_b, threshold_b: float, class_names: Sequence[str],
                           n_replicates: int = 1000, seed: int = 0, level: float = 0.95) -> dict[str, tuple]:
    """Percentile intervals of the differences A − B (accuracy, each class's recall, ROC AUC).

    Each replicate resamples the test images once and scores both models on that same sample,
    each at its own threshold, so the interval is that of the paired difference.

    Returns:
        ``{"accuracy": (low, high), "recall_<class>": ..., "roc_auc": ...}``; ``(None, None)``
        where no replicate could be used.
    """
    y = np.asarray(y, dtype=np.int64)
    p_a, p_b = np.asarray(p_a, dtype=np.float64), np.asarray(p_b, dtype=np.float64)
    right_a, right_b = (p_a >= threshold_a) == y, (p_b >= threshold_b) == y
    keys = ["accuracy", *(f"recall_{name}" for name in class_names), "roc_auc"]
    deltas = {key: np.empty(n_replicates) for key in keys}
    rng = np.random.default_rng(seed)
    chunk = max(1, 2_000_000 // y.size)  # about 2e6 resampled images per block, as bootstrap_ci
    for start in range(0, n_replicates, chunk):
        block = slice(start, min(start + chunk, n_replicates))
        idx = rng.integers(0, y.size, size=(block.stop - block.start, y.size))
        yb, ra, rb = y[idx], right_a[idx], right_b[idx]
        deltas["accuracy"][block] = ra.mean(axis=1) - rb.mean(axis=1)
        for k, name in enumerate(class_names):
            in_class = yb == k
            with np.errstate(divide="ignore", invalid="ignore"):
                deltas[f"recall_{name}"][block] = ((ra & in_class).sum(axis=1) - (rb & in_class).sum(axis=1)
                                                   ) / in_class.sum(axis=1)
        # the vectorised rank form of roc_auc_score (NaN for a one-class replicate)
        deltas["roc_auc"][block] = rank_auc(yb, p_a[idx]) - rank_auc(yb, p_b[idx])
    return {key: percentile_interval(values, level) for key, values in deltas.items()}
