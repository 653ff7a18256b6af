"""Metrics of one set of scores: input checks, the validation-chosen threshold, metrics at a threshold, McNemar.

Pure functions on numpy arrays; nothing here knows about models, files or notebooks.

Conventions:
    * label 1 is the disease (positive) class, label 0 the normal one; ``class_names[i]`` names label i;
    * ``p`` is the predicted probability (or score) of class 1, and an image is called positive when
      ``p >= threshold``;
    * sensitivity is the recall of class 1, specificity the recall of class 0.

The rule the evaluation is built around: the operating point is chosen from validation
predictions only (:func:`choose_threshold` takes no test arrays at all), then reported on test
together with the usual 0.5 cut-off (:func:`medclf.evaluation.statistics.evaluate_model`).
The ``check_*`` functions validate inputs for this module and :mod:`medclf.evaluation.statistics`.
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
TOL = 1e-12


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------

def as_1d(values, name: str) -> np.ndarray:
    """``values`` as a non-empty 1-D array (a Keras ``(n, 1)`` output is flattened)."""
    array = np.asarray(values)
    if array.ndim == 2 and array.shape[1] == 1:  # Keras predict() gives (n, 1)
        array = array[:, 0]
    if array.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (one value per image); got shape {array.shape}")
    if array.size == 0:
        raise ValueError(f"{name} is empty")
    return array


def check_labels(y, name: str, both_classes: bool = False) -> np.ndarray:
    """Binary 0/1 labels as an int array; bools and floats equal to 0/1 are accepted."""
    array = as_1d(y, name)
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


def check_scores(p, name: str, probabilities: bool = False) -> np.ndarray:
    """Finite float scores; with ``probabilities`` also within [0, 1]."""
    array = as_1d(p, name)
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


def check_same_length(**arrays: np.ndarray) -> None:
    lengths = {name: len(a) for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        described = ", ".join(f"{name} has {n}" for name, n in lengths.items())
        raise ValueError(f"inputs must have one value per image, but {described} values")


def check_threshold(threshold, name: str = "threshold") -> float:
    if isinstance(threshold, bool) or not isinstance(threshold, Real) or not np.isfinite(threshold):
        raise ValueError(f"{name} must be a finite number; got {threshold!r}")
    return float(threshold)


def check_fraction(value, name: str, include_one: bool = True) -> float:
    ok = isinstance(value, Real) and not isinstance(value, bool) and 0 < value and (
        value <= 1 if include_one else value < 1)
    if not ok:
        interval = "(0, 1]" if include_one else "(0, 1)"
        raise ValueError(f"{name} must be in {interval}; got {value!r}")
    return float(value)


def check_class_names(class_names) -> list[str]:
    if isinstance(class_names, str) or not isinstance(class_names, Sequence):
        raise ValueError(f"class_names must be a list of two names (label 0, label 1); got {class_names!r}")
    names = [str(c) for c in class_names]
    if len(names) != 2 or names[0] == names[1]:
        raise ValueError(f"class_names must be two distinct names (label 0, label 1); got {list(class_names)!r}")
    return names


def check_replicates(n_replicates) -> int:
    if isinstance(n_replicates, bool) or not isinstance(n_replicates, (int, np.integer)) or n_replicates < 1:
        raise ValueError(f"n_replicates must be a positive integer; got {n_replicates!r}")
    return int(n_replicates)



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
    y = check_labels(y_val, "y_val", both_classes=True)
    p = check_scores(p_val, "p_val")
    check_same_length(y_val=y, p_val=p)
    target = check_fraction(target_sensitivity, "target_sensitivity")
    _, tpr, thresholds = roc_curve(y, p, drop_intermediate=False)
    # thresholds decrease and tpr increases along the curve: the first point meeting the target
    # is the highest threshold that does (tpr[-1] == 1, so there always is one).
    index = int(np.argmax(tpr >= target - TOL))
    return float(thresholds[index])


#: A model whose probabilities over all validation and test images span less than this is flagged as giving
#: (near-)constant predictions (:func:`constant_predictions`).
CONSTANT_SPREAD = 1e-3


def constant_predictions(*probabilities) -> dict:
    """Whether a model's probabilities are (near-)constant: ``{"flag", "spread", "tolerance"}``, where
    ``spread`` is max − min over all the given arrays and ``flag`` is ``spread < CONSTANT_SPREAD``.

    Such a model (e.g. a head on vanishing random-backbone features, p = 0.5001 for every image) ranks
    nothing: its AUC is 0.5 by ties, and its "threshold" only separates rounding noise. Its record is
    flagged so that it is never headlined, explained or chosen (:mod:`medclf.evaluation.selection`).
    """
    values = np.concatenate([check_scores(p, "p") for p in probabilities])
    spread = float(values.max() - values.min()) if values.size else 0.0
    return {"flag": spread < CONSTANT_SPREAD, "spread": spread, "tolerance": CONSTANT_SPREAD}


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
    y = check_labels(y_true, "y_true")
    scores = check_scores(p, "p")
    check_same_length(y_true=y, p=scores)
    threshold = check_threshold(threshold)
    names = check_class_names(class_names)
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
# rank AUC, paired comparison and score mapping
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
    y = check_labels(y_true, "y_true")
    a = check_labels(pred_a, "pred_a")
    b_pred = check_labels(pred_b, "pred_b")
    check_same_length(y_true=y, pred_a=a, pred_b=b_pred)
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
