"""Honest evaluation: metrics from scikit-learn, the decision threshold chosen on validation only.

Pure functions on numpy arrays; nothing here knows about models, files or notebooks.

Conventions:
    * label 1 is the disease (positive) class, label 0 the normal one; ``class_names[i]`` names label i;
    * ``p`` is the predicted probability (or score) of class 1, and an image is called positive when
      ``p >= threshold``;
    * sensitivity is the recall of class 1, specificity the recall of class 0.

The rule the whole module is built around: the operating point is chosen from validation
predictions only (:func:`choose_threshold` takes no test arrays at all), then reported on test
together with the usual 0.5 cut-off (:func:`evaluate_model`). Validation carved from the training
folders tends to be easier than the official test set, so the validation→test gap of each class
recall is reported too.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Real

import numpy as np
from scipy import stats
from scipy.special import expit
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    precision_recall_fscore_support,
    roc_auc_score,
    roc_curve,
)

#: Below this many discordant pairs McNemar's test uses the exact binomial test.
MCNEMAR_EXACT_BELOW = 25

#: Tolerance for "sensitivity >= target" (recall is a ratio of counts; 19/20 must meet 0.95).
_TOL = 1e-12


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------

def _as_1d(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:  # Keras predict() gives (n, 1)
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per image); got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    return array


def _check_labels(y, name: str, both_classes: bool = False) -> np.ndarray:
    """Binary 0/1 labels as an int array; bools and floats equal to 0/1 are accepted."""
    array = _as_1d(y, name)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numeric 0/1 labels; got dtype {array.dtype}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise ValueError(f"{name} contains NaN or infinite labels (first at index "
                         f"{int(np.flatnonzero(~np.isfinite(array))[0])})")
    bad = ~np.isin(array, (0, 1))
    if bad.any():
        values = np.unique(array[bad])[:5].tolist()
        raise ValueError(f"{name} must contain only the labels 0 and 1; got {values} "
                         f"(first at index {int(np.flatnonzero(bad)[0])})")
    array = array.astype(np.int64)
    if both_classes:
        present = np.unique(array)
        if present.size < 2:
            raise ValueError(f"{name} must contain both classes (0 and 1); it holds only label "
                             f"{int(present[0])} ({array.size} images)")
    return array


def _check_scores(p, name: str, probabilities: bool = False) -> np.ndarray:
    """Finite float scores; with ``probabilities`` also within [0, 1]."""
    array = _as_1d(p, name)
    if array.dtype.kind not in "biuf":
        raise ValueError(f"{name} must hold numeric probabilities or scores; got dtype {array.dtype}")
    array = array.astype(np.float64)
    finite = np.isfinite(array)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        raise ValueError(f"{name} contains {int((~finite).sum())} NaN or infinite values "
                         f"(first at index {first}: {float(array[first])})")
    if probabilities and (array.min() < 0 or array.max() > 1):
        first = int(np.flatnonzero((array < 0) | (array > 1))[0])
        raise ValueError(f"{name} must be probabilities in [0, 1]; got {float(array[first])!r} at index {first} "
                         f"(map SVM decision values with sigmoid_scores first)")
    return array


def _check_same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"inputs must have one value per image, but {described} values")


def _check_threshold(threshold, name: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not np.isfinite(threshold):
        raise ValueError(f"{name} must be a finite number; got {threshold!r}")
    return float(threshold)


def _check_fraction(value, name: str, include_one: bool = True) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and 0 < value and (
        value <= 1 if include_one else value < 1)
    if not ok:
        interval = "(0, 1]" if include_one else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}; got {value!r}")
    return float(value)


def _check_class_names(class_names) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise ValueError(f"class_names must be a list of two names (label 0, label 1); got {class_names!r}")
    names = [str(c) for c in class_names]
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"class_names must be two distinct names (label 0, label 1); got {list(class_names)!r}")
    return names


# ---------------------------------------------------------------------------------------------
# threshold and metrics
# ---------------------------------------------------------------------------------------------

def choose_threshold(y_val, p_val, target_sensitivity: float = 0.95) -> float:
    """The decision threshold chosen on validation only.

    Returns the highest threshold ``t`` such that, on validation, the share of class-1 images with
    ``p_val >= t`` (the sensitivity) is at least ``target_sensitivity``. Raising the threshold can
    only lower sensitivity and raise specificity, so this is the threshold with the best validation
    specificity among those meeting the target. The candidates are the validation scores themselves
    (``sklearn.metrics.roc_curve`` thresholds), so the result is one of the ``p_val`` values.

    The function takes validation arrays only, by design: a threshold tuned on test labels would
    make every test number optimistic.

    Args:
        y_val: validation labels, 0/1 (1 = disease); both classes must be present.
        p_val: validation probabilities (or any finite scores) of class 1.
        target_sensitivity: required validation recall of class 1, in (0, 1].

    Returns:
        The threshold (a float).

    Raises:
        ValueError: lengths differ, labels are not 0/1 or one class is missing, scores are not
            finite, or the target is outside (0, 1].
    """
    y = _check_labels(y_val, "y_val", both_classes=True)
    p = _check_scores(p_val, "p_val")
    _check_same_length(y_val=y, p_val=p)
    target = _check_fraction(target_sensitivity, "target_sensitivity")
    _, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    # thresholds decrease and tpr increases along the curve: the first point meeting the target
    # is the highest threshold that does (tpr[-1] == 1, so there always is one).
    index = int(np.argmax(tpr >= target - _TOL))
    return float(thresholds[index])


def metrics_at(y_true, p, threshold: float, class_names: Sequence[str]) -> dict:
    """Classification metrics of ``p >= threshold`` against ``y_true`` (all from scikit-learn).

    Args:
        y_true: labels, 0/1.
        p: probabilities (or scores) of class 1.
        threshold: images with ``p >= threshold`` are called class 1.
        class_names: names of label 0 and label 1.

    Returns:
        A JSON-ready dict::

            {"threshold", "n", "accuracy", "balanced_accuracy",
             "per_class": {name: {"precision", "recall", "f1", "support"}},
             "confusion_matrix": [[tn, fp], [fn, tp]],            # rows true, columns predicted
             "confusion_matrix_normalized": rows divided by their totals,
             "roc_auc", "pr_auc"}                               # None when y_true has one class

        ``pr_auc`` is the average precision of class 1.

    Raises:
        ValueError: on bad inputs (see :func:`choose_threshold`).
    """
    y = _check_labels(y_true, "y_true")
    scores = _check_scores(p, "p")
    _check_same_length(y_true=y, p=scores)
    threshold = _check_threshold(threshold)
    names = _check_class_names(class_names)
    pred = (scores >= threshold).astype(np.int64)
    precision, recall, f1, support = precision_recall_fscore_support(
        y, pred, labels=[0, 1], zero_division=0)
    both = np.unique(y).size == 2
    return {
        "threshold": threshold,
        "n": int(y.size),
        "accuracy": float(accuracy_score(y, pred)),
        "balanced_accuracy": float(balanced_accuracy_score(y, pred)) if both else None,
        "per_class": {name: {"precision": float(precision[k]), "recall": float(recall[k]),
                             "f1": float(f1[k]), "support": int(support[k])}
                      for k, name in enumerate(names)},
        "confusion_matrix": confusion_matrix(y, pred, labels=[0, 1]).tolist(),
        "confusion_matrix_normalized": np.nan_to_num(
            confusion_matrix(y, pred, labels=[0, 1], normalize="true")).tolist(),
        "roc_auc": float(roc_auc_score(y, scores)) if both else None,
        "pr_auc": float(average_precision_score(y, scores)) if both else None,
    }


# ---------------------------------------------------------------------------------------------
# uncertainty
# ---------------------------------------------------------------------------------------------

def rank_auc(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    """ROC AUC of each row (Mann-Whitney form, ties counted half; equals ``roc_auc_score``).

    Rows with a single class give NaN.
    """
    n_pos = y.sum(axis=1)
    n_neg = y.shape[1] - n_pos
    ranks = stats.rankdata(p, axis=1)  # average ranks for ties
    rank_sum = (ranks * y).sum(axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        auc = (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    auc[(n_pos == 0) | (n_neg == 0)] = np.nan
    return auc


_rank_auc = rank_auc  # the former private name


def _check_replicates(n_replicates) -> int:
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, (int, np.integer)) or n_replicates < 1:
        raise ValueError(f"n_replicates must be a positive integer; got {n_replicates!r}")
    return int(n_replicates)


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
    """The threshold :func:`choose_threshold` would pick on each of ``n_replicates`` bootstrap
    resamples of the validation images (NaN for a resample without a positive image).

    Why: the chosen threshold is an order statistic of the positive validation scores (the
    ``ceil(target * n_pos)``-th highest), so with a few hundred positives and saturated
    probabilities it can move a long way between resamples — and between training runs. Its spread
    says how much of a test recall at that threshold is luck of the validation draw.

    Like :func:`choose_threshold` this takes validation arrays only. Vectorised: on each resample
    the threshold is that order statistic of its positive scores (equal to ``choose_threshold`` on
    the resample, which ``tests/test_evaluate.py`` checks).
    """
    y = _check_labels(y_val, "y_val", both_classes=True)
    p = _check_scores(p_val, "p_val")
    _check_same_length(y_val=y, p_val=p)
    target = _check_fraction(target_sensitivity, "target_sensitivity")
    n_replicates = _check_replicates(n_replicates)
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
        k = np.ceil((target - _TOL) * n_pos).astype(np.int64)  # rank of the threshold among positives
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
    y = _check_labels(y_true, "y_true")
    scores = _check_scores(p, "p")
    _check_same_length(y_true=y, p=scores)
    n_replicates = _check_replicates(n_replicates)
    if np.ndim(threshold) == 0:
        thresholds = np.full(n_replicates, _check_threshold(threshold))
    else:
        thresholds = np.asarray(threshold, dtype=np.float64)
        if thresholds.shape != (n_replicates,):
            raise ValueError(f"threshold must be one number or one per replicate ({n_replicates}); "
                             f"got shape {thresholds.shape}")
    level = _check_fraction(level, "level", include_one=False)
    names = _check_class_names(class_names) if class_names is not None else ["0", "1"]

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


# ---------------------------------------------------------------------------------------------
# the whole evaluation of one model
# ---------------------------------------------------------------------------------------------

def evaluate_model(y_val, p_val, y_test, p_test, class_names: Sequence[str],
                   target_sensitivity: float = 0.95, n_replicates: int = 1000, seed: int = 0) -> dict:
    """Evaluate one model: threshold from validation, metrics on validation and test.

    Steps: (1) :func:`choose_threshold` on ``(y_val, p_val)`` only; (2) :func:`metrics_at` on
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
             "bootstrap": {"n_replicates", "seed", "level"}}

        A positive gap means validation was optimistic about that class.

    Raises:
        ValueError: on bad inputs; probabilities must lie in [0, 1] (0.5 is reported).
    """
    names = _check_class_names(class_names)
    yv = _check_labels(y_val, "y_val", both_classes=True)
    pv = _check_scores(p_val, "p_val", probabilities=True)
    _check_same_length(y_val=yv, p_val=pv)
    yt = _check_labels(y_test, "y_test", both_classes=True)
    pt = _check_scores(p_test, "p_test", probabilities=True)
    _check_same_length(y_test=yt, p_test=pt)

    threshold = choose_threshold(yv, pv, target_sensitivity)  # validation only
    resampled = threshold_bootstrap(yv, pv, target_sensitivity, n_replicates, seed)  # validation only

    val = {"at_0.5": metrics_at(yv, pv, 0.5, names), "at_threshold": metrics_at(yv, pv, threshold, names)}
    test = {"at_0.5": metrics_at(yt, pt, 0.5, names), "at_threshold": metrics_at(yt, pt, threshold, names)}
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
    }


def selection_summary(y_val, p_val, mask, rule: str, n_replicates: int = 1000, seed: int = 0) -> dict:
    """The validation rows that chose epochs and models (``mask``, by ``rule``): how many, how many
    positives, their ROC AUC — the score :mod:`medclf.analysis.compare` ranks models by — and its 95% bootstrap
    interval over those rows (how far apart two models' AUCs must be before the ranking means much)."""
    y, p = _check_labels(y_val, "y_val"), _check_scores(p_val, "p_val")
    mask = np.asarray(mask, dtype=bool)
    _check_same_length(y_val=y, p_val=p, mask=mask)
    both = np.unique(y[mask]).size == 2
    auc = float(roc_auc_score(y[mask], p[mask])) if both else None
    interval = (bootstrap_ci(y[mask], p[mask], 0.5, n_replicates=n_replicates, seed=seed)["roc_auc"] if both
                else (None, None))
    return {"rule": rule, "images": int(mask.sum()), "positives": int(y[mask].sum()), "roc_auc": auc,
            "roc_auc_ci": list(interval)}


# ---------------------------------------------------------------------------------------------
# paired comparison and score mapping
# ---------------------------------------------------------------------------------------------

def mcnemar(y_true, pred_a, pred_b) -> dict:
    """McNemar's test: do two classifiers differ in accuracy on the same images?

    ``b`` counts images model A gets right and B wrong, ``c`` the reverse. With ``b + c < 25`` the
    exact two-sided binomial test is used (statistic ``min(b, c)``), otherwise the chi-square test
    with continuity correction (statistic ``(|b - c| - 1)² / (b + c)``, 1 degree of freedom).

    Args:
        y_true: labels, 0/1.
        pred_a, pred_b: 0/1 predictions of the two models on the same images.

    Returns:
        ``{"statistic", "p_value", "b", "c", "method"}`` with method ``"exact"`` or ``"chi2"``.

    Raises:
        ValueError: on lengths that differ or labels other than 0/1.
    """
    y = _check_labels(y_true, "y_true")
    a = _check_labels(pred_a, "pred_a")
    b_pred = _check_labels(pred_b, "pred_b")
    _check_same_length(y_true=y, pred_a=a, pred_b=b_pred)
    right_a, right_b = a == y, b_pred == y
    b = int(np.sum(right_a & ~right_b))
    c = int(np.sum(~right_a & right_b))
    if b + c == 0:
        return {"statistic": 0.0, "p_value": 1.0, "b": b, "c": c, "method": "exact"}
    if b + c < MCNEMAR_EXACT_BELOW:
        statistic = float(min(b, c))
        p_value = float(stats.binomtest(min(b, c), b + c, 0.5, alternative="two-sided").pvalue)
        method = "exact"
    else:
        statistic = float((abs(b - c) - 1) ** 2 / (b + c))
        p_value = float(stats.chi2.sf(statistic, df=1))
        method = "chi2"
    return {"statistic": statistic, "p_value": min(p_value, 1.0), "b": b, "c": c, "method": method}


def sigmoid_scores(decision) -> np.ndarray:
    """Map decision-function values (e.g. ``SVC.decision_function``) into (0, 1).

    The logistic function ``1 / (1 + exp(-d))``: monotonic, so ranking metrics (ROC AUC) are
    unchanged, and decision 0 (the SVM's own boundary) maps to 0.5. The result is not a
    calibrated probability.

    Args:
        decision: finite decision values, any shape.

    Returns:
        Float array of the same shape.
    """
    values = np.asarray(decision, dtype=np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError("decision contains NaN or infinite values")
    return expit(values)
