"""Published baselines beside ours: the registry's rows, the comparison table, the index page, and which data
sets show the study reproduction."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from medclf.analysis import compare
from medclf.config import datasets
from medclf.config.datasets import PublishedResult
from medclf.config.params import load_params
from medclf.evaluation import selection, statistics
from medclf.evaluation.records import load_records
from medclf.reporting import artifacts, pages
from medclf.training import experiment
from test_compare import make_model  # realistic records: evaluate_model on generated predictions

METRICS = ("roc_auc", "accuracy", "sensitivity", "specificity")


# ---------------------------------------------------------------------------------------------
# the registry
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", datasets.names())
def test_registered_published_rows_are_well_formed(name):
    for row in datasets.get(name).published:
        assert isinstance(row, PublishedResult)
        assert row.source.strip() and row.model.strip() and row.evaluation.strip()
        assert any(char.isdigit() for char in row.source), f"{row.source!r} names no year"
        values = [getattr(row, metric) for metric in METRICS]
        assert any(v is not None for v in values), f"{row.model}: no number at all"
        assert all(v is None or 0.0 <= v <= 1.0 for v in values)


def test_the_real_data_sets_carry_their_papers_and_generated_ones_none():
    sources = {name: {row.source for row in datasets.get(name).published} for name in datasets.names()}
    assert any("Kermany" in s for s in sources["chest_xray"])
    assert any("MedMNIST" in s for s in sources["pneumoniamnist"])
    assert any("Rajaraman" in s for s in sources["malaria"])
    assert len(datasets.get("pneumoniamnist").published) == 7  # the MedMNIST v2 table's seven methods
    assert datasets.get("synthetic").published == () and datasets.get("folder").published == ()


def test_a_percentage_or_an_unnamed_source_is_refused():
    with pytest.raises(ValueError, match="fraction"):
        PublishedResult("Someone 2020, J 1:1", "net", "test set", accuracy=92.8)
    with pytest.raises(ValueError, match="source"):
        PublishedResult(" ", "net", "test set", accuracy=0.9)


def test_pneumoniamnist_and_the_synthetic_demo_drop_the_study_reproduction():
    flags = {name: datasets.get(name).study_reproduction for name in datasets.names()}
    assert flags["pneumoniamnist"] is False and flags["synthetic"] is False
    assert all(flags[name] for name in ("chest_xray", "malaria", "folder"))
    assert not artifacts.applies({"dataset": "pneumoniamnist"}, "study_reproduction")
    assert artifacts.applies({"dataset": "chest_xray"}, "study_reproduction")


def test_pneumoniamnist_plan_table_shows_no_study_number():
    names = ["cnn_deeper", "svm_pixels"]
    params = {"max_epochs": None, "max_image_size": None, "model_overrides": {}}
    chest = experiment.plan_table(names, {**params, "dataset": "chest_xray"})
    mnist = experiment.plan_table(names, {**params, "dataset": "pneumoniamnist"})
    assert chest["reported_accuracy"].notna().all()
    assert mnist["reported_accuracy"].isna().all()


def test_the_full_pneumoniamnist_profile_trains_at_the_images_own_size():
    """28-px images: no CNN or ANN upsampled to the chest studies' 128-224 px, MobileNetV2 at its smallest size,
    ensembles of ours in both families."""
    params = load_params("pneumoniamnist", "full")
    sizes = {name: experiment.input_size(experiment.resolve_spec(name, params), params)
             for key in ("baselines", "transfer_models", "augmentation_models") for name in params[key]}
    families = {name: experiment.resolve_spec(name, params).family for name in sizes}
    assert {sizes[n] for n in sizes if families[n] != "transfer"} == {params["image_size"]} == {28}
    assert {sizes[n] for n in sizes if families[n] == "transfer"} == {96}
    assert {"cnn_ours_chest_ensemble", "mobilenet_v2_finetune_aug_ensemble"} <= set(sizes)


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def out_dir(tmp_path):
    """Three families; cnn_best is the validation-best model of all; cnn_flat gave constant predictions."""
    out = tmp_path / "out" / "chest_xray"
    make_model(out, "svm_a", "svm", 0.50, 0.55, 1)
    make_model(out, "ann_a", "ann", 0.30, 0.35, 2)
    make_model(out, "cnn_best", "cnn", 0.90, 0.50, 4)
    make_model(out, "cnn_second", "cnn", 0.60, 0.90, 5)
    return out


def _comparison(out_dir, flag: str | None = None):
    records = load_records(out_dir)
    for record in records:
        if record["model_id"] == flag:
            record["evaluation"]["constant_predictions"] = {"flag": True, "spread": 0.0, "tolerance": 1e-6}
    return compare.compare_records(records, compare.load_predictions_for(out_dir, records)[0])


def _published_against(best: pd.Series) -> list[PublishedResult]:
    """One published row inside both of ``best``'s intervals, one below, one above, one AUC-only."""
    lo, hi = best["roc_auc_ci_low"], best["roc_auc_ci_high"]
    alo, ahi = best["accuracy_at_0.5_ci_low"], best["accuracy_at_0.5_ci_high"]
    return [PublishedResult("Inside et al. 2020, J 1:1", "inside", "their test set", (lo + hi) / 2, (alo + ahi) / 2),
            PublishedResult("Below et al. 2021, J 2:2", "below", "5-fold CV by patient", lo / 2, alo / 2),
            PublishedResult("Above et al. 2022, J 3:3", "above", "their test set", min(1.0, hi + 1e-3),
                            min(1.0, ahi + 1e-3)),
            PublishedResult("Auc et al. 2023, J 4:4", "auc only", "their test set", roc_auc=(lo + hi) / 2)]


def test_published_rows_and_ours_side_by_side_with_the_right_verdicts(out_dir):
    C = _comparison(out_dir)
    assert compare.published_table([], C.records, C.predictions).empty  # nothing published: no table
    probe = compare.published_table([PublishedResult("X 2020, J 1:1", "x", "test", 0.5)], C.records, C.predictions)
    best = probe[probe["overall_best"]].iloc[0]
    assert best["model"] == selection.overall_best(C.records)["model_id"] == "cnn_best"
    assert best["roc_auc_ci_low"] < best["roc_auc_ci_high"] and best["accuracy_at_0.5_ci_low"] < best[
        "accuracy_at_0.5_ci_high"]

    published = _published_against(best)
    table = compare.published_table(published, C.records, C.predictions)
    authors = table[table["reported_by"] == compare.REPORTED_BY_AUTHORS]
    assert authors["model"].tolist() == ["inside", "below", "above", "auc only"]
    assert authors["evaluation"].tolist() == [p.evaluation for p in published]
    assert authors["vs_our_best"].tolist() == ["AUC inside · acc@0.5 inside", "AUC below · acc@0.5 below",
                                               "AUC above · acc@0.5 above", "AUC inside"]
    assert authors["roc_auc_ci_low"].isna().all() and authors["accuracy_at_threshold"].isna().all()
    assert not authors["overall_best"].any()
    # ours: the validation-best of each family (the one selection rule), in family order, after the published rows
    mine = table[table["reported_by"] != compare.REPORTED_BY_AUTHORS]
    bests = selection.family_bests(C.records)
    assert mine["model"].tolist() == [r["model_id"] for r in bests.values()] == ["svm_a", "ann_a", "cnn_best"]
    assert mine.index.tolist() == list(range(len(published), len(table)))  # after the published rows
    assert mine["overall_best"].tolist() == [False, False, True]


def test_our_numbers_are_the_records_and_the_csv_at_half(out_dir):
    C = _comparison(out_dir)
    table = compare.published_table(datasets.get("chest_xray").published, C.records, C.predictions)
    records = {r["model_id"]: r for r in C.records}
    for _, row in table[table["reported_by"] != compare.REPORTED_BY_AUTHORS].iterrows():
        ev = records[row["model"]]["evaluation"]
        assert row["roc_auc"] == ev["test"]["at_threshold"]["roc_auc"]
        assert (row["roc_auc_ci_low"], row["roc_auc_ci_high"]) == tuple(ev["ci"]["roc_auc"])
        assert row["accuracy_at_threshold"] == ev["test"]["at_threshold"]["accuracy"]
        assert (row["accuracy_at_threshold_ci_low"], row["accuracy_at_threshold_ci_high"]) == tuple(ev["ci"]["accuracy"])
        assert row["threshold"] == ev["threshold"]
        assert row["accuracy_at_0.5"] == ev["test"]["at_0.5"]["accuracy"]
        frame = C.predictions[row["model"]]
        expected = statistics.bootstrap_ci(frame["true_label"].to_numpy(), frame["probability"].to_numpy(), 0.5,
                                           n_replicates=ev["bootstrap"]["n_replicates"], seed=ev["bootstrap"]["seed"],
                                           with_auc=False)["accuracy"]
        assert (row["accuracy_at_0.5_ci_low"], row["accuracy_at_0.5_ci_high"]) == expected
        assert row["accuracy_at_0.5_ci_low"] <= row["accuracy_at_0.5"] <= row["accuracy_at_0.5_ci_high"]
        names = ev["class_names"]
        assert row["sensitivity"] == ev["test"]["at_0.5"]["per_class"][names[1]]["recall"]
        assert row["specificity"] == ev["test"]["at_0.5"]["per_class"][names[0]]["recall"]


def test_a_stale_or_missing_predictions_file_leaves_the_half_interval_blank(out_dir):
    C = _comparison(out_dir)
    record = next(r for r in C.records if r["model_id"] == "cnn_best")
    point, low, high = compare.accuracy_at_half(record, None)
    assert point == record["evaluation"]["test"]["at_0.5"]["accuracy"] and math.isnan(low) and math.isnan(high)
    stale = C.predictions["cnn_best"].assign(probability=1.0 - C.predictions["cnn_best"]["probability"])
    assert math.isnan(compare.accuracy_at_half(record, stale)[1])


def test_constant_prediction_models_are_left_out_like_the_headline(out_dir):
    C = _comparison(out_dir, flag="cnn_best")
    table = compare.published_table(datasets.get("chest_xray").published, C.records, C.predictions)
    assert "cnn_best" not in table["model"].tolist()
    assert table["model"].tolist()[-3:] == C.headline["model_id"].tolist() == ["svm_a", "ann_a", "cnn_second"]
    assert table.loc[table["model"] == "cnn_second", "overall_best"].item()


def test_with_no_models_the_published_rows_say_so(tmp_path):
    table = compare.published_table(datasets.get("malaria").published, [], {})
    assert len(table) == len(datasets.get("malaria").published)
    assert set(table["vs_our_best"]) == {"no model of ours to compare"}


def test_interval_verdict():
    assert compare.interval_verdict(0.5, 0.4, 0.6) == "inside"
    assert compare.interval_verdict(0.4, 0.4, 0.6) == "inside"
    assert compare.interval_verdict(0.3, 0.4, 0.6) == "below"
    assert compare.interval_verdict(0.7, 0.4, 0.6) == "above"
    assert compare.interval_verdict(None, 0.4, 0.6) == compare.interval_verdict(0.5, np.nan, 0.6) == ""


# ---------------------------------------------------------------------------------------------
# the index page
# ---------------------------------------------------------------------------------------------

def _run_info(dataset: str) -> dict:
    return {"dataset": dataset, "profile": "full", "notebooks": {}}


def test_index_shows_the_published_section_marked_as_the_authors(out_dir):
    C = _comparison(out_dir)
    table = compare.published_table(datasets.get("pneumoniamnist").published, C.records, C.predictions)
    tables_dir = out_dir / "tables"
    tables_dir.mkdir()
    table.to_csv(tables_dir / "published.csv", index=False)
    fragment = pages.published_html(tables_dir)
    page = pages.index_html(_run_info("pneumoniamnist"), [], None, None, fragment)
    assert "Published results, as reported by their authors" in page
    assert page.count("<td>reported by the authors</td>") == 7
    assert "Google AutoML Vision" in page and "cnn_best" in page and "★ best on validation" in page
    for header in ("AUC (95% CI)", "acc @0.5 (95% CI)", "acc @val. threshold (95% CI)"):
        assert f"<th>{header}</th>" in page
    assert '<div class="wide" style="overflow-x: auto"><table' in fragment  # scrolls inside its box, never the page
    assert "<th>note</th>" not in fragment and "<th>sensitivity</th>" not in fragment  # the narrow selection


def test_no_published_table_no_section(tmp_path):
    assert pages.published_html(tmp_path) is None
    pd.DataFrame(columns=["reported_by", "model"]).to_csv(tmp_path / "published.csv", index=False)
    assert pages.published_html(tmp_path) is None
    page = pages.index_html(_run_info("synthetic"), [], None, None, None)
    assert "Published results" not in page


def test_write_index_picks_up_the_published_table(out_dir):
    C = _comparison(out_dir)
    (out_dir / "tables").mkdir()
    compare.published_table(datasets.get("malaria").published, C.records, C.predictions).to_csv(
        out_dir / "tables" / "published.csv", index=False)
    page = pages.write_index(out_dir, _run_info("malaria")).read_text()
    assert "Rajaraman et al. 2018" in page and "5-fold cross-validation by patient" in page
