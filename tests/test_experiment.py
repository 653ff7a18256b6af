"""One model end to end on tiny synthetic data: records, predictions, ensembles, saved models."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from medclf.config import paths
from medclf.evaluation import metrics, records, scoring, selection
from medclf.evaluation.predictions import load_predictions, predictions_path
from medclf.training import experiment
from conftest import synthetic_params


@pytest.fixture(scope="module")
def tiny_params(tmp_path_factory):
    return synthetic_params(tmp_path_factory.mktemp("exp"), synthetic_images_per_class=60, bootstrap_replicates=50)


def run_images_val(params, run):
    return experiment.DataCache(params).get(run.record["spec"]["image_size_used"], run.spec.color_mode).arrays("val")[0]


@pytest.mark.parametrize("name", ["svm_pixels", "cnn_baseline_8", "cnn_ours_chest_ensemble"])
def test_run_model_writes_records_and_predictions(tiny_params, name):
    run = experiment.run_model(name, tiny_params)
    out = str(paths.run_dir(tiny_params))
    record = json.loads((records.record_path(out, name)).read_text())
    predictions = pd.read_csv(predictions_path(out, name))
    assert len(predictions) == len(run.y_test) and set(predictions.columns) >= {"file", "true_label", "probability"}
    assert predictions["probability"].between(0, 1).all()
    assert record["evaluation"]["threshold"] == run.threshold
    assert record["spec"]["image_size_used"] == min(32, run.spec.image_size)
    assert record["data"]["manifest_hash"] and record["training"]["mixed_precision"]
    assert (records.record_path(out, name).parent.parent / record["model_file"]).is_file()
    val = load_predictions(out, name, split="val")
    assert val["probability"].tolist() == pytest.approx(run.p_val.tolist())
    assert val["selected"].all()  # select_on=all here
    assert metrics.choose_threshold(val["true_label"], val["probability"],
                                     tiny_params["target_sensitivity"]) == record["evaluation"]["threshold"]
    framing = pd.DataFrame(record["evaluation"]["framing"]).set_index(["crop", "class_name"])
    assert sorted(framing.index.get_level_values("crop").unique()) == [0.7, 0.85, 1.0]
    plain = scoring.predict_probabilities(run.model, run_images_val(tiny_params, run))  # the probe scores without TTA
    t = metrics.choose_threshold(run.y_val, plain, tiny_params["target_sensitivity"])
    for label, name in enumerate(["NORMAL", "PNEUMONIA"]):
        called = (plain[run.y_val == label] >= t).mean()
        assert framing.loc[(1.0, name), "called_positive"] == pytest.approx(called)
    assert experiment.framing_line(run).startswith("Framing probe (validation): NORMAL images called PNEUMONIA")
    low, high = record["evaluation"]["threshold_ci"]
    assert low <= record["evaluation"]["threshold"] <= high
    assert experiment.threshold_line(run).startswith(f"Threshold {run.threshold:.3f}: over validation resamples")
    assert experiment.framing_line(run) in experiment.notes(run) and experiment.threshold_line(run) in experiment.notes(run)
    if run.spec.ensemble > 1:
        assert [row["member"] for row in record["training"]["members"]] == list(range(1, run.spec.ensemble + 1))


def test_saved_keras_model_reproduces_the_predictions(tiny_params):
    import keras
    import numpy as np

    run = experiment.run_model("cnn_baseline_8", tiny_params, model_id="reload_check")
    model = keras.models.load_model(paths.run_dir(tiny_params) / "models" / "reload_check.keras")
    data = experiment.DataCache(tiny_params).get(32, "rgb")
    again = scoring.predict_probabilities(model, data.arrays("test")[0])
    np.testing.assert_allclose(again, run.p_test, atol=1e-2)


def test_plan_table_applies_caps(tiny_params):
    plan = experiment.plan_table(["cnn_bn5", "svm_pixels"], {**tiny_params, "max_epochs": 7, "max_image_size": 64})
    assert plan.loc[0, "input"] == "64² grayscale" and plan.loc[0, "epochs"] == 7
    assert plan.loc[1, "epochs"] == "—"


def test_epochs_and_models_are_chosen_on_new_patients_and_the_threshold_on_all(tiny_params, monkeypatch):
    """select_on=new_patients: Keras validates on the validation images of patients outside training;
    the threshold and the reported validation metrics still use every validation image."""
    from medclf.training import fit

    params = {**tiny_params, "source_val": "merge", "split_by_image": ["PNEUMONIA"], "select_on": "new_patients"}
    seen = {}
    fit_spec = fit.fit_spec

    def spy(model, spec, train_arrays, val_arrays, **kwargs):
        seen["fit_val"] = len(val_arrays[1])
        return fit_spec(model, spec, train_arrays, val_arrays, **kwargs)

    monkeypatch.setattr(fit, "fit_spec", spy)
    run = experiment.run_model("cnn_baseline_8", params, model_id="select_new")
    ds = experiment.DataCache(params).get(32, "rgb")
    val = ds.frame.iloc[ds.indices("val")]
    new = ~val["group"].isin(ds.frame.loc[ds.frame["split"] == "train", "group"])
    assert 0 < new.sum() < len(val)  # some pneumonia validation images share a patient with training
    chosen = run.record["evaluation"]["selection"]
    assert seen["fit_val"] == chosen["images"] == new.sum() and chosen["rule"] == "new_patients"
    assert len(run.y_val) == len(val)  # the threshold was chosen on all of validation
    assert sum(map(sum, run.record["evaluation"]["val"]["at_threshold"]["confusion_matrix"])) == len(val)
    assert selection.selection_auc(run.record) == chosen["roc_auc"]
    saved = load_predictions(paths.run_dir(params), "select_new", split="val")
    assert saved["selected"].sum() == chosen["images"] and len(saved) == len(val)


def _run_with(framing_shares: dict[float, float], flagged: bool = False, weights: str | None = None,
              name: str = "cnn_deeper"):
    """A stand-in ModelRun for the text functions: a record with the framing probe's NORMAL shares and the flag."""
    from types import SimpleNamespace

    from medclf.models import registry

    framing = [{"crop": crop, "class_name": "NORMAL", "called_positive": share, "change": share - framing_shares[1.0]}
               for crop, share in framing_shares.items()]
    record = {"model_id": name, "family": registry.get_spec(name).family, "params": {"weights": weights},
              "training": {"weights_file": None},
              "evaluation": {"framing": framing,
                             "constant_predictions": {"flag": flagged, "spread": 0.0 if flagged else 0.4,
                                                      "tolerance": 1e-3}}}
    return SimpleNamespace(model_id=name, record=record, class_names=["NORMAL", "PNEUMONIA"],
                           spec=registry.get_spec(name))


def test_framing_verdict_follows_the_shares_and_quotes_its_cut_off():
    """The demo's svm shares (0.087 as they are, 0.478 and 1.0 cropped) moved by far more than the tolerance:
    they must not be called near-equal; shares within it are; a constant model gets no verdict."""
    moved = experiment.framing_line(_run_with({1.0: 0.087, 0.85: 0.478, 0.7: 1.0}))
    assert "Near-equal" not in moved and "+0.913" in moved and f"{experiment.FRAMING_TOLERANCE:.2f}" in moved
    assert "follow how tightly the image is framed" in moved
    steady = experiment.framing_line(_run_with({1.0: 0.20, 0.85: 0.22, 0.7: 0.25}))
    assert "Near-equal shares" in steady and f"{experiment.FRAMING_TOLERANCE:.2f}" in steady
    constant = experiment.framing_line(_run_with({1.0: 1.0, 0.85: 1.0, 0.7: 1.0}, flagged=True))
    assert "Near-equal" not in constant and "constant" in constant


def test_a_flagged_run_is_marked_in_its_heading_and_notes():
    run = _run_with({1.0: 1.0, 0.85: 1.0, 0.7: 1.0}, flagged=True, weights="none", name="mobilenet_v2_frozen")
    assert experiment.heading(run).startswith(f"### `mobilenet_v2_frozen`{selection.FLAGGED_MARK} — ")
    assert experiment.notes(run).startswith(f"**{selection.FLAGGED_MARK.strip()}** mobilenet_v2_frozen: constant")
    plain = _run_with({1.0: 0.2, 0.85: 0.2})
    assert selection.FLAGGED_MARK not in experiment.heading(plain) and experiment.constant_line(plain) is None


def test_a_transfer_description_says_the_weights_the_run_used():
    """The demo trains from random weights: its description must not call the backbone an ImageNet one."""
    random_run = _run_with({1.0: 0.2}, weights="none", name="mobilenet_v2_frozen")
    assert "ImageNet" not in experiment.heading(random_run) and "random weights" in experiment.heading(random_run)
    assert "ImageNet weights" in experiment.description(_run_with({1.0: 0.2}, weights="imagenet",
                                                                   name="mobilenet_v2_frozen"))
    assert experiment.description(_run_with({1.0: 0.2}, weights="none")) == experiment.registry.get_spec(
        "cnn_deeper").description  # not a transfer model: nothing about weights


def test_gap_line_names_the_class_validation_overstated_most():
    gaps = pd.DataFrame({"model_id": ["a", "a", "b", "b"], "class": ["NORMAL", "PNEUMONIA"] * 2,
                         "gap": [0.30, 0.02, 0.10, -0.04]})
    line = experiment.gap_line(gaps)
    assert "NORMAL +0.200" in line and "PNEUMONIA -0.010" in line and "the NORMAL class's" in line
    assert "over 2 models" in line and experiment.gap_line(gaps.iloc[0:0]) is None


def test_gap_line_leaves_out_flagged_models():
    gaps = pd.DataFrame({"model_id": ["a", "a", "z", "z"], "class": ["NORMAL", "PNEUMONIA"] * 2,
                         "gap": [0.30, 0.10, 0.0, 0.0]})
    flagged = [{"model_id": "z", "evaluation": {"constant_predictions": {"flag": True}}},
               {"model_id": "a", "evaluation": {}}]
    line = experiment.gap_line(gaps, flagged)
    assert "NORMAL +0.300" in line and "over 1 model (1 flagged" in line
    assert "every model here is flagged" in experiment.gap_line(gaps[gaps["model_id"] == "z"], flagged)
