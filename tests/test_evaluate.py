"""Evaluation: metrics equal hand-computed numbers, the threshold comes from validation only,
bootstrap intervals behave, McNemar matches known values, bad inputs are named."""

from __future__ import annotations

import inspect
import math
import time

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from medclf.evaluation import metrics, statistics
from medclf.evaluation.metrics import choose_threshold, mcnemar, metrics_at, sigmoid_scores
from medclf.evaluation.statistics import bootstrap_ci, evaluate_model, threshold_bootstrap

CLASSES = ["NORMAL", "PNEUMONIA"]

# Ten hand-made images: 4 normal (label 0), 6 pneumonia (label 1); no tied probabilities.
Y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
P = np.array([0.10, 0.40, 0.35, 0.80, 0.90, 0.65, 0.55, 0.30, 0.70, 0.20])
# At 0.5 the predictions are     0     0     0     1     1     1     1     0     1     0
# so TN=3, FP=1 (0.80), FN=2 (0.30, 0.20), TP=4.


def scored(n: int, seed: int, separation: float = 1.5, positive_share: float = 0.6):
    """Labels and probabilities of a moderately good classifier."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < positive_share).astype(int)
    y[:2] = [0, 1]  # both classes always present
    p = 1 / (1 + np.exp(-(rng.normal(size=n) + separation * (2 * y - 1))))
    return y, p


# ---------------------------------------------------------------------------------------------
# metrics
# ---------------------------------------------------------------------------------------------

def test_metrics_match_hand_computed_numbers():
    m = metrics_at(Y, P, 0.5, CLASSES)
    assert m["n"] == 10 and m["threshold"] == 0.5
    assert m["confusion_matrix"] == [[3, 1], [2, 4]]
    np.testing.assert_allclose(m["confusion_matrix_normalized"], [[0.75, 0.25], [2 / 6, 4 / 6]])
    assert m["accuracy"] == pytest.approx(0.7)
    assert m["balanced_accuracy"] == pytest.approx((3 / 4 + 4 / 6) / 2)  # 0.708333
    normal, pneumonia = m["per_class"]["NORMAL"], m["per_class"]["PNEUMONIA"]
    assert normal == pytest.approx({"precision": 3 / 5, "recall": 3 / 4, "f1": 2 / 3, "support": 4})
    assert pneumonia == pytest.approx({"precision": 4 / 5, "recall": 4 / 6, "f1": 8 / 11, "support": 6})
    # ROC AUC: of the 24 (pneumonia, normal) pairs, 15 rank the pneumonia image higher.
    assert m["roc_auc"] == pytest.approx(15 / 24)
    # Average precision: positives at ranks 1, 3, 4, 5, 8, 9 -> (1 + 2/3 + 3/4 + 4/5 + 5/8 + 6/9) / 6.
    assert m["pr_auc"] == pytest.approx(541 / 720)


def test_metrics_at_another_threshold_and_json_ready():
    m = metrics_at(Y, P, 0.3, CLASSES)  # p >= 0.3 is positive: 0.30 now counts
    assert m["confusion_matrix"] == [[1, 3], [1, 5]]
    assert m["per_class"]["PNEUMONIA"]["recall"] == pytest.approx(5 / 6)
    for value in (m["accuracy"], m["roc_auc"], m["per_class"]["NORMAL"]["recall"]):
        assert type(value) is float
    assert type(m["per_class"]["NORMAL"]["support"]) is int


def test_metrics_accept_keras_shaped_probabilities_and_float_labels():
    m = metrics_at(Y.astype("float32"), P.reshape(-1, 1).astype("float32"), 0.5, CLASSES)
    assert m["confusion_matrix"] == [[3, 1], [2, 4]]


def test_metrics_with_one_class_have_no_auc():
    m = metrics_at(np.ones(4, int), [0.2, 0.6, 0.7, 0.9], 0.5, CLASSES)
    assert m["roc_auc"] is None and m["pr_auc"] is None
    assert m["per_class"]["PNEUMONIA"]["recall"] == pytest.approx(0.75)


# ---------------------------------------------------------------------------------------------
# threshold
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("target, expected", [(0.95, 0.20), (1.0, 0.20), (0.8, 0.30), (4 / 6, 0.55),
                                              (0.5, 0.65), (1 / 6, 0.90)])
def test_threshold_on_hand_case(target, expected):
    # pneumonia probabilities, highest first: 0.90 0.70 0.65 0.55 0.30 0.20
    assert choose_threshold(Y, P, target) == pytest.approx(expected)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_threshold_meets_target_and_is_the_highest_such(seed, target):
    y, p = scored(300, seed)
    p = np.round(p, 2)  # ties on purpose
    t = choose_threshold(y, p, target)

    def sensitivity(threshold):
        return np.mean(p[y == 1] >= threshold)

    assert sensitivity(t) >= target
    higher = np.unique(p[p > t])
    assert all(sensitivity(h) < target for h in higher)  # no higher candidate meets the target
    assert sensitivity(np.nextafter(t, np.inf)) < target  # nor anything just above
    # and it gives the best specificity among thresholds meeting the target
    candidates = [c for c in np.unique(p) if sensitivity(c) >= target]
    assert np.mean(p[y == 0] < t) == max(np.mean(p[y == 0] < c) for c in candidates)


def test_exact_target_ratio_counts_as_met():
    y = np.array([0] * 5 + [1] * 20)
    p = np.concatenate([np.linspace(0.0, 0.2, 5), np.linspace(0.5, 0.9, 20)])
    assert choose_threshold(y, p, 0.95) == pytest.approx(p[6])  # 19 of 20 positives kept


def test_threshold_works_on_decision_scores():
    scores = np.log(P / (1 - P))  # logits: same order
    assert choose_threshold(Y, scores, 0.8) == pytest.approx(math.log(0.3 / 0.7))


# ---------------------------------------------------------------------------------------------
# the threshold never sees test labels
# ---------------------------------------------------------------------------------------------

def test_choose_threshold_signature_has_no_test_argument():
    assert list(inspect.signature(choose_threshold).parameters) == ["y_val", "p_val", "target_sensitivity"]


def test_threshold_independent_of_test_data():
    y_val, p_val = scored(200, 1)
    y_test, p_test = scored(300, 2)
    rng = np.random.default_rng(3)
    variants = [
        (y_test, p_test),
        (rng.permutation(y_test), p_test),  # shuffled test labels
        (1 - y_test, p_test),  # flipped test labels
        (y_test, np.clip(p_test + rng.normal(0, 0.2, p_test.size), 0, 1)),  # perturbed probabilities
        (y_test[:50], rng.random(50)),  # a different test set altogether
    ]
    outcomes = [evaluate_model(y_val, p_val, yt, pt, CLASSES, 0.95, 50, 0) for yt, pt in variants]
    expected = choose_threshold(y_val, p_val, 0.95)
    assert {o["threshold"] for o in outcomes} == {expected}
    assert all(o["val"] == outcomes[0]["val"] for o in outcomes)  # validation numbers untouched too
    assert outcomes[0]["test"] != outcomes[2]["test"]  # while the test numbers did change


def test_evaluate_model_passes_only_validation_to_choose_threshold(monkeypatch):
    calls = []
    real = metrics.choose_threshold

    def spy(*args, **kwargs):
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(metrics, "choose_threshold", spy)
    y_val, p_val = scored(120, 4)
    y_test, p_test = scored(90, 5)
    evaluate_model(y_val, p_val, y_test, p_test, CLASSES, 0.9, 20, 0)
    assert len(calls) == 1
    (y_arg, p_arg, target), kwargs = calls[0][0], calls[0][1]
    assert not kwargs and target == 0.9
    np.testing.assert_array_equal(y_arg, y_val)
    np.testing.assert_array_equal(p_arg, p_val)


# ---------------------------------------------------------------------------------------------
# evaluate_model
# ---------------------------------------------------------------------------------------------

def test_evaluate_model_structure_and_gap():
    y_val, p_val = scored(200, 6, separation=2.0)
    y_test, p_test = scored(250, 7, separation=1.0)
    out = evaluate_model(y_val, p_val, y_test, p_test, CLASSES, 0.95, 200, 0)
    assert set(out) >= {"threshold", "val", "test", "ci", "val_test_gap", "class_names", "target_sensitivity"}
    for split in ("val", "test"):
        assert set(out[split]) == {"at_0.5", "at_threshold"}
        assert out[split]["at_0.5"]["threshold"] == 0.5
        assert out[split]["at_threshold"]["threshold"] == out["threshold"]
    assert out["val"]["at_threshold"]["per_class"]["PNEUMONIA"]["recall"] >= 0.95
    assert set(out["ci"]) == {"accuracy", "recall_NORMAL", "recall_PNEUMONIA", "roc_auc"}
    for name in CLASSES:
        gap = out["val_test_gap"][name]
        assert gap["val"] == out["val"]["at_threshold"]["per_class"][name]["recall"]
        assert gap["test"] == out["test"]["at_threshold"]["per_class"][name]["recall"]
        assert gap["gap"] == pytest.approx(gap["val"] - gap["test"])
    # an easier validation set than test: validation is optimistic about normal recall
    assert out["val_test_gap"]["NORMAL"]["gap"] > 0


def test_evaluate_model_requires_probabilities():
    with pytest.raises(ValueError, match=r"p_test must be probabilities in \[0, 1\]; got 1\.5"):
        evaluate_model(Y, P, Y, np.where(P > 0.85, 1.5, P), CLASSES, 0.95, 10, 0)


# ---------------------------------------------------------------------------------------------
# bootstrap
# ---------------------------------------------------------------------------------------------

def test_rank_auc_equals_sklearn_with_ties():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, (20, 60))
    p = np.round(rng.random((20, 60)), 1)  # many ties
    expected = [roc_auc_score(row_y, row_p) for row_y, row_p in zip(y, p)]
    np.testing.assert_allclose(metrics.rank_auc(y, p), expected)


def test_bootstrap_contains_point_estimate_and_is_reproducible():
    y, p = scored(400, 8)
    ci = bootstrap_ci(y, p, 0.5, n_replicates=500, seed=1, class_names=CLASSES)
    m = metrics_at(y, p, 0.5, CLASSES)
    points = {"accuracy": m["accuracy"], "roc_auc": m["roc_auc"],
              "recall_NORMAL": m["per_class"]["NORMAL"]["recall"],
              "recall_PNEUMONIA": m["per_class"]["PNEUMONIA"]["recall"]}
    for key, point in points.items():
        low, high = ci[key]
        assert low < point < high, key
    assert bootstrap_ci(y, p, 0.5, n_replicates=500, seed=1, class_names=CLASSES) == ci
    assert bootstrap_ci(y, p, 0.5, n_replicates=500, seed=2, class_names=CLASSES) != ci
    assert set(bootstrap_ci(y, p, 0.5, n_replicates=10)) == {"accuracy", "recall_0", "recall_1", "roc_auc"}


def test_bootstrap_narrows_with_more_data():
    small = bootstrap_ci(*scored(100, 9), 0.5, n_replicates=400, seed=0)
    large = bootstrap_ci(*scored(2500, 9), 0.5, n_replicates=400, seed=0)
    for key in small:
        assert large[key][1] - large[key][0] < 0.6 * (small[key][1] - small[key][0]), key


def test_bootstrap_wider_at_higher_level():
    y, p = scored(300, 10)
    narrow = bootstrap_ci(y, p, 0.5, n_replicates=400, level=0.8)["accuracy"]
    wide = bootstrap_ci(y, p, 0.5, n_replicates=400, level=0.99)["accuracy"]
    assert wide[0] < narrow[0] and narrow[1] < wide[1]


def test_bootstrap_skips_single_class_replicates():
    y = np.array([0] * 30 + [1])  # one positive: many replicates lack it
    p = np.linspace(0, 1, 31)
    ci = bootstrap_ci(y, p, 0.5, n_replicates=200)
    assert all(v is not None and np.isfinite(v) for v in ci["roc_auc"] + ci["recall_1"])


def test_bootstrap_is_fast():
    y, p = scored(624, 11)
    start = time.perf_counter()
    bootstrap_ci(y, p, 0.5, n_replicates=1000, seed=0)
    assert time.perf_counter() - start < 2.0


# ---------------------------------------------------------------------------------------------
# the threshold's own uncertainty
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("decimals", [None, 1])  # continuous scores, and heavily tied ones
def test_threshold_bootstrap_equals_choose_threshold_on_each_resample(decimals):
    y, p = scored(150, 12)
    if decimals is not None:
        p = np.round(p, decimals)
    thresholds = threshold_bootstrap(y, p, 0.9, n_replicates=40, seed=3)
    idx = np.random.default_rng(3).integers(0, y.size, size=(40, y.size))  # the same resamples
    expected = [choose_threshold(y[i], p[i], 0.9) for i in idx]
    np.testing.assert_array_equal(thresholds, expected)
    assert np.unique(thresholds).size > 1  # it does move between resamples


def test_threshold_bootstrap_nan_without_positives():
    y = np.array([0] * 40 + [1])
    thresholds = threshold_bootstrap(y, np.linspace(0, 1, 41), 0.95, n_replicates=100, seed=0)
    assert np.isnan(thresholds).any() and np.isfinite(thresholds).any()
    assert np.all(thresholds[np.isfinite(thresholds)] == 1.0)  # the one positive's score


def test_bootstrap_with_per_replicate_thresholds():
    y, p = scored(300, 13)
    fixed = bootstrap_ci(y, p, 0.5, n_replicates=300, seed=4)
    assert bootstrap_ci(y, p, np.full(300, 0.5), n_replicates=300, seed=4) == fixed
    moving = bootstrap_ci(y, p, np.random.default_rng(0).uniform(0.2, 0.8, 300), n_replicates=300, seed=4)
    assert moving["roc_auc"] == fixed["roc_auc"]  # the ranking does not depend on the cut
    for key in ("recall_0", "recall_1"):
        assert moving[key][1] - moving[key][0] > fixed[key][1] - fixed[key][0], key
    half_nan = np.where(np.arange(300) % 2 == 0, 0.5, np.nan)  # NaN replicates are skipped
    assert all(v is not None for v in bootstrap_ci(y, p, half_nan, n_replicates=300)["accuracy"])
    with pytest.raises(ValueError, match=r"threshold must be one number or one per replicate \(300\); got shape \(5,\)"):
        bootstrap_ci(y, p, np.full(5, 0.5), n_replicates=300)


def test_evaluate_model_reports_the_threshold_interval_from_validation_only(monkeypatch):
    calls = []
    real = statistics.threshold_bootstrap

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(statistics, "threshold_bootstrap", spy)
    y_val, p_val = scored(200, 14)
    y_test, p_test = scored(250, 15)
    out = evaluate_model(y_val, p_val, y_test, p_test, CLASSES, 0.95, 300, 0)
    (y_arg, p_arg, target, replicates, seed), = calls
    np.testing.assert_array_equal(y_arg, y_val)
    np.testing.assert_array_equal(p_arg, p_val)
    assert (target, replicates, seed) == (0.95, 300, 0)
    low, high = out["threshold_ci"]
    assert low <= out["threshold"] <= high and low < high
    assert set(out["ci_threshold_resampled"]) == {"accuracy", "recall_NORMAL", "recall_PNEUMONIA"}
    normal, fixed = out["ci_threshold_resampled"]["recall_NORMAL"], out["ci"]["recall_NORMAL"]
    assert normal[1] - normal[0] > fixed[1] - fixed[0]  # the threshold's spread widens the interval
    # and its validation interval does not move when the test set changes
    other = evaluate_model(y_val, p_val, 1 - y_test, p_test, CLASSES, 0.95, 300, 0)
    assert other["threshold_ci"] == out["threshold_ci"]


# ---------------------------------------------------------------------------------------------
# McNemar and sigmoid
# ---------------------------------------------------------------------------------------------

def paired(b: int, c: int, both_right: int = 40, both_wrong: int = 5):
    """Labels and two prediction vectors with b (A right, B wrong) and c (A wrong, B right)."""
    y = np.ones(b + c + both_right + both_wrong, int)
    a = np.concatenate([np.ones(b), np.zeros(c), np.ones(both_right), np.zeros(both_wrong)]).astype(int)
    bb = np.concatenate([np.zeros(b), np.ones(c), np.ones(both_right), np.zeros(both_wrong)]).astype(int)
    return y, a, bb


def test_mcnemar_exact_hand_case():
    out = mcnemar(*paired(3, 10))
    # two-sided binomial: 2 * P(X <= 3 | n=13, 1/2) = 2 * (1 + 13 + 78 + 286) / 2**13
    assert out == {"statistic": 3.0, "p_value": pytest.approx(756 / 8192), "b": 3, "c": 10, "method": "exact"}


def test_mcnemar_chi_square_hand_case():
    out = mcnemar(*paired(10, 25))
    assert out["method"] == "chi2" and (out["b"], out["c"]) == (10, 25)
    assert out["statistic"] == pytest.approx((15 - 1) ** 2 / 35)  # 5.6
    assert out["p_value"] == pytest.approx(math.erfc(math.sqrt(5.6 / 2)))  # chi2(1) tail
    assert out["p_value"] == pytest.approx(0.01796, abs=1e-5)


def test_mcnemar_identical_models():
    out = mcnemar(*paired(0, 0))
    assert out["p_value"] == 1.0 and out["b"] == out["c"] == 0
    assert mcnemar(*paired(5, 5))["p_value"] == pytest.approx(1.0)


def test_sigmoid_scores():
    d = np.array([-1000.0, -2.0, 0.0, 0.5, 2.0, 1000.0])
    s = sigmoid_scores(d)
    assert s[2] == 0.5
    assert np.all((s >= 0) & (s <= 1)) and np.all(np.diff(s) >= 0) and np.all(np.diff(s[1:5]) > 0)
    assert s[4] == pytest.approx(1 / (1 + math.exp(-2)))
    assert sigmoid_scores([[0.0]]).shape == (1, 1)
    with pytest.raises(ValueError, match="NaN"):
        sigmoid_scores([0.0, np.nan])


# ---------------------------------------------------------------------------------------------
# input checks
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: choose_threshold(Y, P[:9]), r"y_val has 10, p_val has 9 values"),
    (lambda: choose_threshold(np.r_[Y[:9], 2], P), r"y_val must contain only the labels 0 and 1; got \[2\]"),
    (lambda: choose_threshold(np.zeros(10), P), r"y_val must contain both classes .* only label 0"),
    (lambda: choose_threshold(Y, np.r_[P[:9], np.nan]), r"p_val contains 1 NaN or infinite values .*index 9"),
    (lambda: choose_threshold(Y, P, 1.5), r"target_sensitivity must be in \(0, 1\]; got 1\.5"),
    (lambda: choose_threshold(Y, P, 0), r"target_sensitivity must be in \(0, 1\]; got 0"),
    (lambda: choose_threshold(Y, np.ones((10, 2))), r"p_val must be one-dimensional .* shape \(10, 2\)"),
    (lambda: choose_threshold([], []), r"y_val is empty"),
    (lambda: choose_threshold(["a"] * 10, P), r"y_val must hold numeric 0/1 labels"),
    (lambda: metrics_at(Y, P, float("nan"), CLASSES), r"threshold must be a finite number; got nan"),
    (lambda: metrics_at(Y, P, 0.5, ["only"]), r"class_names must be two distinct names .*\['only'\]"),
    (lambda: bootstrap_ci(Y, P, 0.5, n_replicates=0), r"n_replicates must be a positive integer; got 0"),
    (lambda: bootstrap_ci(Y, P, 0.5, level=1.0), r"level must be in \(0, 1\); got 1\.0"),
    (lambda: mcnemar(Y, Y, Y[:5]), r"y_true has 10, pred_a has 10, pred_b has 5 values"),
    (lambda: mcnemar(Y, P, Y), r"pred_a must contain only the labels 0 and 1"),
])
def test_bad_inputs_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()
