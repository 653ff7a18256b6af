"""One selection rule and comparable records: 05 (explain) and 06 (compare) pick the same models, ties
included, and records of two profiles in one folder never meet in one table."""

from __future__ import annotations

import copy

import pytest

from medclf.analysis import compare, explain
from medclf.evaluation import records, selection
from test_compare import make_model  # realistic records: evaluate_model on generated predictions


def with_keras_files(found):
    """Records as if every model had been saved as a Keras file (so 05 may explain any of them)."""
    return [{**record, "model_file": f"models/{record['model_id']}.keras"} for record in found]


@pytest.fixture
def tied(tmp_path):
    """Two families, each with two models whose validation AUCs tie."""
    out = tmp_path / "out" / "chest_xray"
    for model_id, family, seed in (("ann_b", "ann", 1), ("ann_a", "ann", 2), ("cnn_z", "cnn", 3), ("cnn_y", "cnn", 4)):
        make_model(out, model_id, family, 0.5, 0.5, seed)
    found = with_keras_files(records.load_records(out))
    for record in found:
        val = record["evaluation"]["val"]["at_threshold"]
        val["roc_auc"] = 0.9
        record["evaluation"]["selection"] = None  # rank on all validation rows
        val["accuracy"] = {"ann_a": 0.8, "ann_b": 0.8, "cnn_z": 0.85, "cnn_y": 0.80}[record["model_id"]]
    return found


def picks_of_06(found):
    headline = compare.headline_table(found)
    return dict(zip(headline["family"], headline["model_id"]))


def picks_of_05(found):
    chosen = selection.family_bests(explain.explainable(found))
    table = explain.selection_table(found)
    assert set(table.loc[table["selection"] == "chosen", "model_id"]) == {r["model_id"] for r in chosen.values()}
    return {family: record["model_id"] for family, record in chosen.items()}


def test_05_and_06_choose_the_same_models_on_a_tie(tied):
    # ann: AUC and accuracy tie, so the model id decides; cnn: AUC ties, accuracy decides
    expected = {"ann": "ann_a", "cnn": "cnn_z"}
    assert picks_of_06(tied) == picks_of_05(tied) == expected
    assert picks_of_06(tied[::-1]) == picks_of_05(tied[::-1]) == expected  # the order of the files does not matter
    assert compare.compare_records(tied, {}).best_id == "cnn_z" == selection.overall_best(tied)["model_id"]
    assert [r["model_id"] for r in explain.comparison_pair(tied)] == ["cnn_z", "ann_a"]
    only_cnn = [r for r in tied if r["family"] == "cnn"]
    assert [r["model_id"] for r in explain.comparison_pair(only_cnn)] == ["cnn_z", "cnn_y"]


def test_05_skips_unsaved_models_but_ranks_the_rest_by_the_same_rule(tied):
    unsaved = copy.deepcopy(tied)
    next(r for r in unsaved if r["model_id"] == "ann_a")["model_file"] = None
    assert picks_of_06(unsaved)["ann"] == "ann_a"  # 06 compares every record
    assert picks_of_05(unsaved)["ann"] == "ann_b"  # 05 can only explain saved models: the next one by the rule
    table = explain.selection_table(unsaved).set_index("model_id")
    assert table.loc["ann_a", "selection"] == "no saved Keras model"


def write_profile(out, profile: str, created: str, ids: list[str], strength: float) -> None:
    for k, model_id in enumerate(ids):
        make_model(out, model_id, model_id.split("_")[0], strength, strength, 10 + k)
        record = records.read_record(records.record_path(out, model_id))
        record["params"] = {**record["params"], "profile": profile}
        record["created"] = created
        records.save_record(out, model_id, record)


def test_records_of_two_profiles_in_one_folder_never_meet(tmp_path):
    out = tmp_path / "out" / "chest_xray"
    write_profile(out, "full", "2030-01-02T00:00:00+00:00", ["cnn_full", "ann_full"], 0.3)
    write_profile(out, "quick", "2030-01-01T00:00:00+00:00", ["cnn_quick", "ann_quick", "svm_quick"], 0.9)
    everything = records.load_records(out)
    assert len(everything) == 5
    kept, left_out = records.load_comparable(out)
    assert sorted(r["model_id"] for r in kept) == ["ann_full", "cnn_full"]  # the newest profile only
    assert len(left_out) == 3 and all("profile 'quick' (newest: 'full')" in line for line in left_out)

    comparison = compare.load_comparison(out)
    assert sorted(r["model_id"] for r in comparison.records) == ["ann_full", "cnn_full"]
    for table in (comparison.headline, comparison.all_models):
        assert set(table["model_id"]) == {"ann_full", "cnn_full"}  # quick's better numbers stay out
    assert set(comparison.mcnemar["model_id"]) <= {"ann_full", "cnn_full"}
    assert comparison.problems[:3] == left_out
    assert set(explain.selection_table(with_keras_files(kept))["model_id"]) == {"ann_full", "cnn_full"}

    # a quick run made later takes over, and the full records are the ones left out
    write_profile(out, "quick", "2030-01-03T00:00:00+00:00", ["cnn_quick"], 0.9)
    kept, left_out = records.load_comparable(out)
    assert sorted(r["model_id"] for r in kept) == ["ann_quick", "cnn_quick", "svm_quick"]
    assert sum("profile 'full' (newest: 'quick')" in line for line in left_out) == 2


def test_a_record_without_a_profile_is_not_comparable_with_one_that_has_it():
    base = {"params": {"dataset": "chest_xray", "seed": 0}}
    assert records.comparable_settings(base)["profile"] is None
    assert records.comparable_settings(base) != records.comparable_settings(
        {"params": {**base["params"], "profile": "quick"}})


def flag_constant(found, *model_ids):
    """Copies of the records with ``model_ids`` flagged for constant predictions (validation AUC made the best,
    so only the flag can keep them from being chosen)."""
    flagged = copy.deepcopy(found)
    for record in flagged:
        if record["model_id"] in model_ids:
            record["evaluation"]["constant_predictions"] = {"flag": True, "spread": 2e-5, "tolerance": 1e-3}
            record["evaluation"]["val"]["at_threshold"]["roc_auc"] = 0.99
    return flagged


def test_a_model_with_constant_predictions_is_never_chosen(tied):
    flagged = flag_constant(tied, "cnn_z")
    assert picks_of_06(flagged) == picks_of_05(flagged) == {"ann": "ann_a", "cnn": "cnn_y"}
    assert selection.overall_best(flagged)["model_id"] == "ann_a"  # cnn_y ties with it; the id decides
    assert selection.rank_on_validation(flagged)[-1]["model_id"] == "cnn_z"  # listed, last
    assert "cnn_z" not in [r["model_id"] for r in explain.comparison_pair(flagged)]
    table = explain.selection_table(flagged)
    assert table.set_index("model_id").loc["cnn_z", "selection"] == "constant predictions (flagged)"
    full = compare.all_models_table(flagged)
    assert full.set_index("model_id")["constant_predictions"].to_dict() == {
        "ann_a": False, "ann_b": False, "cnn_y": False, "cnn_z": True}
    notes = compare.compare_records(flagged, {}).flagged
    assert len(notes) == 1 and notes[0].startswith("cnn_z: constant predictions")


def test_a_family_of_constant_models_has_no_headline_row_and_a_note(tied):
    flagged = flag_constant(tied, "cnn_z", "cnn_y")
    assert picks_of_06(flagged) == picks_of_05(flagged) == {"ann": "ann_a"}
    assert selection.unchoosable_families(flagged) == ["cnn"]
    assert compare.compare_records(flagged, {}).flagged[-1] == (
        "cnn: no headline row — every model of this family gave constant predictions")
    assert selection.overall_best(flag_constant(tied, *[r["model_id"] for r in tied])) is None


def test_evaluate_model_flags_near_constant_probabilities():
    from medclf.evaluation import metrics, statistics

    y = [0, 1, 0, 1, 0, 1]
    constant = statistics.evaluate_model(y, [0.5001] * 6, y, [0.50012] * 6, ["a", "b"], n_replicates=5)
    assert constant["constant_predictions"]["flag"] is True
    informative = statistics.evaluate_model(y, [0.49, 0.53, 0.5, 0.51, 0.48, 0.52], y, [0.5, 0.6] * 3, ["a", "b"],
                                            n_replicates=5)
    assert informative["constant_predictions"]["flag"] is False  # a small but real spread ranks images
    assert informative["constant_predictions"]["spread"] == pytest.approx(0.12)
    assert metrics.constant_predictions([0.3], [0.3 + metrics.CONSTANT_SPREAD])["flag"] is False
