"""Cross-model comparison: choices made on validation only, headline numbers equal to the records,
McNemar on aligned predictions, clear refusals; the comparison plots return figures."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from medclf.reporting import artifacts
from medclf.analysis import compare
from medclf.plots import compare_plots
from medclf.core import io  # noqa: E402
from medclf.evaluation import metrics, selection, statistics  # noqa: E402
from medclf.evaluation.predictions import (  # noqa: E402
    PredictionMismatchError,
    load_predictions,
    predictions_path,
    save_predictions,
)
from medclf.evaluation.records import (  # noqa: E402
    build_record,
    comparable_settings,
    load_records,
    read_record,
    record_path,
    save_record,
)

CLASSES = ["NORMAL", "PNEUMONIA"]
N_VAL, N_TEST = 60, 80
Y_VAL = np.array([0, 1] * (N_VAL // 2))
Y_TEST = np.array([0] * 30 + [1] * 50)
FILES = [f"test/{CLASSES[y]}/img{i:03d}.jpeg" for i, y in enumerate(Y_TEST)]
VAL_FILES = [f"train/{CLASSES[y]}/v{i:03d}.jpeg" for i, y in enumerate(Y_VAL)]


def scores(y, strength: float, seed: int) -> np.ndarray:
    """Probabilities that separate the classes better as ``strength`` grows (0: chance)."""
    rng = np.random.default_rng(seed)
    return np.clip(0.5 + strength * (y - 0.5) + rng.normal(0, 0.25, y.size), 0, 1)


def make_model(out_dir, model_id, family, val_strength, test_strength, seed, seconds=10.0, params_count=1000):
    """Save a realistic record (evaluate_model on generated predictions) and its test and validation predictions."""
    p_val, p_test = scores(Y_VAL, val_strength, seed), scores(Y_TEST, test_strength, seed + 100)
    evaluation = statistics.evaluate_model(Y_VAL, p_val, Y_TEST, p_test, CLASSES, 0.9, n_replicates=50, seed=0)
    record = build_record(
        model_id=model_id, model=model_id, family=family, study=None, reported=None,
        params={"dataset": "chest_xray", "image_size": 64}, spec={"image_size_used": 64},
        data={"dataset": "chest_xray", "manifest_hash": "m", "split_counts": {"val": N_VAL, "test": N_TEST}},
        training={"seconds": seconds, "seconds_per_epoch": seconds / 2, "epochs_run": 2, "best_epoch": 2,
                  "mixed_precision": False, "history": {}},
        params_count=params_count, evaluation=evaluation, versions={"python": "3.11"})
    save_record(out_dir, model_id, record)
    save_predictions(out_dir, model_id, FILES, Y_TEST, p_test, CLASSES)
    save_predictions(out_dir, model_id, VAL_FILES, Y_VAL, p_val, CLASSES, split="val")
    return record


@pytest.fixture
def out_dir(tmp_path):
    """Five models in three families. In the cnn family the validation favourite is worse on test."""
    out = tmp_path / "out" / "chest_xray"
    make_model(out, "svm_a", "svm", 0.50, 0.55, 1, seconds=0.5, params_count=0)
    make_model(out, "ann_a", "ann", 0.30, 0.35, 2, seconds=5.0)
    make_model(out, "ann_b", "ann", 0.40, 0.40, 3, seconds=8.0)
    make_model(out, "cnn_val_star", "cnn", 0.90, 0.20, 4, seconds=100.0)   # best on validation, weak on test
    make_model(out, "cnn_test_star", "cnn", 0.60, 0.90, 5, seconds=200.0)  # better on test: must not be chosen
    return out


def by_id(records):
    return {r["model_id"]: r for r in records}


def val_auc(record):
    return record["evaluation"]["val"]["at_threshold"]["roc_auc"]


def test_family_bests_are_chosen_on_validation_even_when_test_disagrees(out_dir):
    records = load_records(out_dir)
    rec = by_id(records)
    assert val_auc(rec["cnn_val_star"]) > val_auc(rec["cnn_test_star"])
    test_auc = {k: r["evaluation"]["test"]["at_threshold"]["roc_auc"] for k, r in rec.items()}
    assert test_auc["cnn_test_star"] > test_auc["cnn_val_star"]  # the test set disagrees
    bests = selection.family_bests(records)
    assert list(bests) == ["svm", "ann", "cnn"]
    assert {f: r["model_id"] for f, r in bests.items()} == {"svm": "svm_a", "ann": "ann_b", "cnn": "cnn_val_star"}
    assert selection.overall_best(records)["model_id"] == "cnn_val_star"
    headline = compare.headline_table(records)
    assert headline["model_id"].tolist() == ["svm_a", "ann_b", "cnn_val_star"]
    assert headline["overall_best"].tolist() == [False, False, True]


def test_ties_on_validation_auc_go_to_validation_accuracy_then_name(out_dir):
    records = load_records(out_dir)
    a, b = by_id(records)["ann_a"], by_id(records)["ann_b"]
    for record, accuracy in ((a, 0.9), (b, 0.8)):
        record["evaluation"]["val"]["at_threshold"].update(roc_auc=0.95, accuracy=accuracy)
    assert selection.family_bests(records)["ann"]["model_id"] == "ann_a"
    b["evaluation"]["val"]["at_threshold"]["accuracy"] = 0.9
    assert selection.family_bests(records)["ann"]["model_id"] == "ann_a"  # full tie: by model_id
    b["evaluation"]["val"]["at_threshold"]["roc_auc"] = None  # a missing AUC never wins
    assert selection.family_bests(records)["ann"]["model_id"] == "ann_a"


def test_models_are_ranked_on_the_selection_rows_when_the_record_has_them(out_dir):
    records = load_records(out_dir)
    rec = by_id(records)
    rec["cnn_test_star"]["evaluation"]["selection"] = {"rule": "new_patients", "images": 20, "positives": 5,
                                                      "roc_auc": 0.99, "roc_auc_ci": [0.95, 1.0]}  # memorised less
    rec["cnn_val_star"]["evaluation"]["selection"] = {"rule": "new_patients", "images": 20, "positives": 5,
                                                     "roc_auc": 0.80}
    assert selection.family_bests(records)["cnn"]["model_id"] == "cnn_test_star"
    table = compare.all_models_table(records).set_index("model_id")
    assert table.loc["cnn_test_star", "val_roc_auc"] == 0.99
    assert tuple(table.loc["cnn_test_star", ["val_roc_auc_ci_low", "val_roc_auc_ci_high"]]) == (0.95, 1.0)
    assert table.loc["cnn_val_star", ["val_roc_auc_ci_low", "val_roc_auc_ci_high"]].isna().all()  # written without


def test_selection_summary_scores_the_masked_rows():
    y, p = np.array([0, 0, 1, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9, 0.2])
    mask = np.array([True, True, True, True, False])
    summary = statistics.selection_summary(y, p, mask, "new_patients", n_replicates=200, seed=3)
    interval = summary.pop("roc_auc_ci")
    assert summary == {"rule": "new_patients", "images": 4, "positives": 2, "roc_auc": 0.75}
    assert interval == list(statistics.bootstrap_ci(y[mask], p[mask], 0.5, n_replicates=200, seed=3)["roc_auc"])
    one_class = statistics.selection_summary(y, p, y == 1, "new_patients")
    assert one_class["roc_auc"] is None and one_class["roc_auc_ci"] == [None, None]  # one class: no AUC


def test_selection_auc_interval_narrows_with_more_selection_rows():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    p = np.clip(0.5 + (y - 0.5) * 0.4 + rng.normal(0, 0.3, y.size), 0, 1)
    widths = []
    for n in (100, 2000):
        mask = np.arange(y.size) < n
        low, high = statistics.selection_summary(y, p, mask, "all", n_replicates=300)["roc_auc_ci"]
        widths.append(high - low)
        assert low <= statistics.selection_summary(y, p, mask, "all", n_replicates=10)["roc_auc"] <= high
    assert widths[1] < widths[0] / 2


def test_other_families_follow_the_known_ones():
    records = [{"model_id": m, "family": f} for m, f in (("x", "zeta"), ("y", "transfer"), ("z", "alpha"),
                                                         ("w", "svm"))]
    assert selection.family_order(records) == ["svm", "transfer", "alpha", "zeta"]


def test_headline_values_equal_the_records_and_survive_the_csv(out_dir):
    records = load_records(out_dir)
    rec = by_id(records)
    headline = compare.headline_table(records)
    with_ci = [f"{m}{end}" for m in ("accuracy", *(f"recall_{c}" for c in CLASSES), "roc_auc")
               for end in ("", "_ci_low", "_ci_high")]
    assert headline.columns.tolist() == ["family", "model_id", "study", "val_roc_auc", *with_ci,
                                         "threshold", "train_seconds", "overall_best"]
    params = {"dataset": "chest_xray", "profile": "quick", "output_dir": str(out_dir.parent)}
    csv_path, _ = artifacts.save_table(headline, params, "headline")
    from_csv = pd.read_csv(csv_path)
    for table in (headline, from_csv):
        for _, row in table.iterrows():
            record = rec[row["model_id"]]
            ev = record["evaluation"]
            at_t = ev["test"]["at_threshold"]
            assert row["family"] == record["family"]
            assert row["accuracy"] == at_t["accuracy"]
            assert [row["accuracy_ci_low"], row["accuracy_ci_high"]] == list(ev["ci"]["accuracy"])
            for name in CLASSES:
                assert row[f"recall_{name}"] == at_t["per_class"][name]["recall"]
                assert [row[f"recall_{name}_ci_low"], row[f"recall_{name}_ci_high"]] == list(ev["ci"][f"recall_{name}"])
            assert row["roc_auc"] == at_t["roc_auc"]
            assert [row["roc_auc_ci_low"], row["roc_auc_ci_high"]] == list(ev["ci"]["roc_auc"])
            assert row["threshold"] == ev["threshold"]
            assert row["val_roc_auc"] == ev["val"]["at_threshold"]["roc_auc"]
            assert row["train_seconds"] == record["training"]["seconds"]
    for _, row in compare.all_models_table(records).iterrows():  # the columns the headline leaves out
        record = rec[row["model_id"]]
        ci = [np.nan if v is None else v for v in selection.selection_auc_ci(record)]
        np.testing.assert_array_equal([row["val_roc_auc_ci_low"], row["val_roc_auc_ci_high"]], ci)
        assert row["val_accuracy"] == record["evaluation"]["val"]["at_threshold"]["accuracy"]
        assert row["params_count"] == record["params_count"]


def test_all_models_table_lists_every_record_by_family(out_dir):
    records = load_records(out_dir)
    table = compare.all_models_table(records)
    assert table["model_id"].tolist() == ["svm_a", "ann_b", "ann_a", "cnn_val_star", "cnn_test_star"]
    assert table["family_best"].tolist() == [True, True, False, True, False]
    assert table["overall_best"].sum() == 1
    assert table.equals(compare.all_models_table(list(reversed(records))))  # order of input does not matter
    long = compare.recall_frame(table, CLASSES)
    assert len(long) == 2 * len(table) and set(long["class"]) == set(CLASSES)


def test_mcnemar_against_best_matches_evaluate_on_aligned_predictions(out_dir):
    # a model's CSV in another row order must be aligned by file, not by position
    shuffled = load_predictions(out_dir, "ann_a").sample(frac=1, random_state=0)
    io.write_text(predictions_path(out_dir, "ann_a"), shuffled.to_csv(index=False))
    comparison = compare.load_comparison(out_dir)
    assert comparison.best_id == "cnn_val_star" and comparison.problems == []
    table = comparison.mcnemar
    rec = by_id(comparison.records)
    ranked = [r["model_id"] for r in selection.rank_on_validation(comparison.records)]
    assert table["model_id"].tolist() == ranked[1:] and ranked[0] == "cnn_val_star"
    best = load_predictions(out_dir, "cnn_val_star")
    best_pred = (best["probability"] >= rec["cnn_val_star"]["evaluation"]["threshold"]).astype(int)
    for _, row in table.iterrows():
        other = load_predictions(out_dir, row["model_id"]).set_index("file").loc[best["file"]]
        pred = (other["probability"] >= rec[row["model_id"]]["evaluation"]["threshold"]).astype(int)
        expected = metrics.mcnemar(best["true_label"], best_pred, pred.to_numpy())
        assert (row["only_best_right"], row["only_model_right"]) == (expected["b"], expected["c"])
        assert row["p_value"] == expected["p_value"] and row["statistic"] == expected["statistic"]
        assert row["method"] == expected["method"] and row["n"] == N_TEST
        assert row["accuracy"] == pytest.approx(rec[row["model_id"]]["evaluation"]["test"]["at_threshold"]["accuracy"])
        assert row["note"] == ""


def test_misaligned_predictions_are_refused_clearly(out_dir):
    records = load_records(out_dir)
    predictions, _ = compare.load_predictions_for(out_dir, records)
    other = predictions["ann_a"].copy()
    other.loc[0, "file"] = "test/NORMAL/somewhere_else.jpeg"
    with pytest.raises(PredictionMismatchError, match=r"predictions/ann_a\.csv and predictions/cnn_val_star\.csv "
                                                      r"hold different test images \(1 only in ann_a, 1 only in"):
        compare.mcnemar_vs_best(records, {**predictions, "ann_a": other})
    with pytest.raises(PredictionMismatchError, match="different test images"):
        compare.mcnemar_vs_best(records, {**predictions, "ann_a": predictions["ann_a"].iloc[:-5]})
    flipped = predictions["ann_a"].copy()
    flipped.loc[3, "true_label"] = 1 - flipped.loc[3, "true_label"]
    with pytest.raises(PredictionMismatchError, match=r"disagree on the true label of 'test/NORMAL/img003\.jpeg'"):
        compare.mcnemar_vs_best(records, {**predictions, "ann_a": flipped})
    doubled = pd.concat([predictions["ann_a"], predictions["ann_a"].iloc[:1]])
    with pytest.raises(PredictionMismatchError, match="list 1 file"):
        compare.mcnemar_vs_best(records, {**predictions, "ann_a": doubled})


def test_missing_or_stale_predictions_are_noted_not_fatal(out_dir):
    predictions_path(out_dir, "ann_b").unlink()
    stale = load_predictions(out_dir, "svm_a")
    stale["probability"] = 1 - stale["probability"]
    io.write_text(predictions_path(out_dir, "svm_a"), stale.to_csv(index=False))
    comparison = compare.load_comparison(out_dir)
    assert len(comparison.problems) == 1 and "ann_b.csv: missing" in comparison.problems[0]
    notes = comparison.mcnemar.set_index("model_id")["note"]
    assert notes["ann_b"] == "no predictions file predictions/ann_b.csv"
    assert "disagrees with the record" in notes["svm_a"] or "stale file" in notes["svm_a"]
    labels = [label for label, _, _ in compare.roc_inputs(comparison.headline, comparison.predictions)]
    assert labels == ["svm: svm_a", "cnn: cnn_val_star (best)"]  # ann_b has no predictions


def test_records_split_otherwise_are_left_out_and_named(out_dir):
    record = read_record(record_path(out_dir, "cnn_test_star"))
    record["params"] = {**record["params"], "split_by_image": ["PNEUMONIA"]}
    record["created"] = "2000-01-01T00:00:00+00:00"  # older than the others
    save_record(out_dir, "cnn_test_star", record)
    comparison = compare.load_comparison(out_dir)
    assert "cnn_test_star" not in by_id(comparison.records) and len(comparison.records) == 4
    assert any("cnn_test_star.json was made with another profile or split" in line
               and "split_by_image ['PNEUMONIA']" in line for line in comparison.problems)
    same = {**record["params"], "split_by_image": None, "data_root": None}
    assert comparable_settings({"params": same}) == comparable_settings(by_id(comparison.records)["svm_a"])
    assert comparable_settings({"params": {**same, "select_on": "all"}})["select_on"] == "all"  # absent = all
    assert comparable_settings({"params": {**same, "select_on": "new_patients"}}) != \
        comparable_settings(by_id(comparison.records)["svm_a"])  # ranked on other validation rows


def test_no_records_gives_empty_tables(tmp_path):
    comparison = compare.load_comparison(tmp_path)
    assert comparison.best_id is None and comparison.records == []
    assert comparison.headline.empty and comparison.all_models.empty and comparison.mcnemar.empty
    assert "accuracy" in comparison.headline.columns


def test_mixed_class_names_are_refused(out_dir):
    records = load_records(out_dir)
    records[0]["evaluation"]["class_names"] = ["Uninfected", "Parasitized"]
    with pytest.raises(ValueError, match="compare records of one data set only"):
        compare.class_names(records)


@pytest.fixture
def in_empty_dir(tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    yield cwd
    assert list(cwd.iterdir()) == []  # drawing wrote nothing
    plt.close("all")


def test_comparison_plots_return_figures_and_write_nothing(out_dir, in_empty_dir):
    comparison = compare.load_comparison(out_dir)
    fig, ax = plt.subplots()
    curves = compare.roc_inputs(comparison.headline, comparison.predictions)
    assert compare_plots.plot_roc_overlay(ax, curves) is fig
    assert sum(line.get_gid() == "medclf-chance" for line in ax.lines) == 1
    assert max(line.get_linewidth() for line in ax.lines) > 2  # the best one stands out

    fig, axes = plt.subplots(1, 2, sharey=True)
    assert compare_plots.plot_accuracy_vs_time(axes, comparison.all_models) is fig
    assert axes[1].get_xscale() == "log"  # training seconds
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert labels == list(comparison.all_models["model_id"])  # one row per model, named on its own line

    fig, ax = plt.subplots()
    recalls = compare.recall_frame(comparison.headline, comparison.class_names)
    assert compare_plots.plot_recall_bars(ax, recalls, comparison.class_names) is fig
    assert sum(len(c) for c in ax.containers if isinstance(c, BarContainer)) == len(recalls)

    fig, ax = plt.subplots()
    assert compare_plots.plot_mcnemar(ax, comparison.mcnemar) is fig
    bars = [bar for c in ax.containers if isinstance(c, BarContainer) for bar in c if bar.get_width() > 0]
    assert len(bars) == comparison.mcnemar["p_value"].notna().sum()


def test_a_flagged_model_is_marked_in_the_mcnemar_table_and_in_both_charts(out_dir, in_empty_dir):
    """A model flagged for constant predictions still has its McNemar row and its accuracy/time bars, but every
    label and shown table cell naming it carries the one mark (selection.FLAGGED_MARK); the others do not."""
    records = load_records(out_dir)
    for record in records:
        if record["model_id"] == "ann_b":
            record["evaluation"]["constant_predictions"] = {"flag": True, "spread": 0.0, "tolerance": 1e-3}
    comparison = compare.compare_records(records, compare.load_predictions_for(out_dir, records)[0])
    flagged = f"ann_b{selection.FLAGGED_MARK}"
    assert comparison.mcnemar.set_index("model_id")["constant_predictions"].to_dict()["ann_b"] is True
    assert not comparison.mcnemar.set_index("model_id")["constant_predictions"].drop("ann_b").any()
    shown = selection.mark_frame(comparison.mcnemar, records)
    assert flagged in set(shown["model_id"]) and "ann_b" not in set(shown["model_id"])
    assert selection.mark_frame(shown, records).equals(shown)  # marking twice marks once

    fig, axes = plt.subplots(1, 2, sharey=True)
    compare_plots.plot_accuracy_vs_time(axes, comparison.all_models)
    labels = [t.get_text() for t in axes[0].get_yticklabels()]
    assert flagged in labels and "ann_b" not in labels and "ann_a" in labels

    fig, ax = plt.subplots()
    compare_plots.plot_mcnemar(ax, comparison.mcnemar)
    labels = [t.get_text() for t in ax.get_yticklabels()]
    assert flagged in labels and "ann_b" not in labels
