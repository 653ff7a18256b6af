"""The model cache: the same inputs reuse the trained model (same scores), any input that changes the
weights trains again, a report-only change does not, ``model_cache: false`` neither reads nor writes,
``refresh`` (``run_all.py --force``) retrains and replaces, and a damaged entry costs a retraining, never the run."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medclf.config import paths
from medclf.training import experiment, model_cache
from conftest import synthetic_params


def cache_entries(params) -> list:
    folder = paths.model_cache_dir(params)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@pytest.fixture
def params(tmp_path):
    return synthetic_params(tmp_path, synthetic_images_per_class=40)


@pytest.fixture
def built_not_fitted(monkeypatch) -> list[tuple[str, int]]:
    """Networks are built (seeded) but not fitted, so ``run_model`` computes every cache key, writes and reads
    its entries and scores as usual without training: what these tests check is which inputs reach the key
    and which entries are used, not the weights. Returns the ``(spec name, seed)`` of each network built."""
    import keras

    from medclf.models import registry
    from medclf.training import fit, train_or_reuse

    built, fit_one = [], train_or_reuse._fit_one

    def build_only(spec, input_shape, data, settings, augmentation, verbose):
        if spec.family == "svm":
            return fit_one(spec, input_shape, data, settings, augmentation, verbose)
        fit.seed_everything(settings.training.seed)
        built.append((spec.name, settings.training.seed))
        return registry.build_model(spec, input_shape), fit.TrainResult(
            seconds=0.5, seconds_per_epoch=0.5, epochs_run=1, best_epoch=1,
            precision=keras.mixed_precision.global_policy().name)

    monkeypatch.setattr(train_or_reuse, "_fit_one", build_only)
    return built


@pytest.mark.parametrize("name", ["svm_pixels", "cnn_baseline_8"])
def test_same_inputs_reuse_the_model_and_score_the_same(params, name):
    first = experiment.run_model(name, params)
    assert first.record["training"]["model_cache"]["reused"] is False
    assert len(cache_entries(params)) == 1
    # report-only settings are not in the key: the second run reuses the model
    again = experiment.run_model(name, {**params, "bootstrap_replicates": 30, "report_hide_code": True})
    info = again.record["training"]["model_cache"]
    assert info == {"key": first.record["training"]["model_cache"]["key"], "reused": True}
    np.testing.assert_array_equal(again.p_test, first.p_test)
    np.testing.assert_array_equal(again.p_val, first.p_val)
    assert again.record["training"]["seconds"] == first.record["training"]["seconds"]  # as trained


def test_inputs_that_change_the_weights_train_again(params, built_not_fitted):
    base = experiment.run_model("cnn_baseline_8", params)
    keys = {base.record["training"]["model_cache"]["key"]}
    for change in ({"seed": 7}, {"model_overrides": {"cnn_baseline_8": {"learning_rate": 3e-4}}},
                   {"class_weight": False}, {"max_image_size": 24}):
        run = experiment.run_model("cnn_baseline_8", {**params, **change})
        assert run.record["training"]["model_cache"]["reused"] is False, change
        keys.add(run.record["training"]["model_cache"]["key"])
    assert len(keys) == 5 and len(cache_entries(params)) == 5 and len(built_not_fitted) == 5


def test_model_cache_off_neither_reads_nor_writes(params):
    experiment.run_model("svm_pixels", params)
    before = cache_entries(params)
    run = experiment.run_model("svm_pixels", {**params, "model_cache": False})
    assert run.record["training"]["model_cache"] == {"key": None, "reused": False}
    assert cache_entries(params) == before


def test_refresh_trains_again_and_replaces_the_entry(params):
    first = experiment.run_model("svm_pixels", params)
    key = first.record["training"]["model_cache"]["key"]
    info_file = paths.model_cache_dir(params) / key / model_cache.TRAINING_FILE
    before = info_file.stat().st_mtime_ns
    run = experiment.run_model("svm_pixels", {**params, "model_cache": "refresh"})
    assert run.record["training"]["model_cache"] == {"key": key, "reused": False}
    assert info_file.stat().st_mtime_ns > before and cache_entries(params) == [key]
    assert experiment.run_model("svm_pixels", params).record["training"]["model_cache"]["reused"] is True


def test_the_setting_is_not_in_the_params_hash():
    from medclf.config.params import params_hash

    assert params_hash({"seed": 1, "model_cache": True}) == params_hash({"seed": 1, "model_cache": "refresh"})


def test_a_damaged_entry_is_trained_again_with_one_line(params, capsys):
    first = experiment.run_model("cnn_baseline_8", params)
    entry = paths.model_cache_dir(params) / first.record["training"]["model_cache"]["key"]
    info = json.loads((entry / model_cache.TRAINING_FILE).read_text())
    (entry / info["model_file"]).write_bytes(b"not a model")
    capsys.readouterr()
    again = experiment.run_model("cnn_baseline_8", params)
    assert again.record["training"]["model_cache"]["reused"] is False
    assert "model cache: entry" in capsys.readouterr().out
    np.testing.assert_allclose(again.p_test, first.p_test, atol=1e-6)  # same seed, same training


def test_an_entry_without_its_training_file_is_ignored(params):
    first = experiment.run_model("svm_pixels", params)
    entry = paths.model_cache_dir(params) / first.record["training"]["model_cache"]["key"]
    (entry / model_cache.TRAINING_FILE).unlink()  # a stop between the model file and training.json
    assert experiment.run_model("svm_pixels", params).record["training"]["model_cache"]["reused"] is False


def test_the_key_names_no_memory_address():
    from medclf.models import registry

    described = json.dumps(model_cache._describe(registry.get_spec("cnn_deeper")))
    assert " at 0x" not in described and "build_cnn" in described


def test_a_model_and_an_ensemble_of_it_share_one_training_identity():
    """Name, description and ensemble size are not how one network trains; its recipe is."""
    import dataclasses

    from medclf.models import registry

    single, ensemble = registry.get_spec("cnn_ours_chest"), registry.get_spec("cnn_ours_chest_ensemble")
    assert model_cache.identity_digest(single) == model_cache.identity_digest(ensemble)
    for other in (registry.get_spec("cnn_ours_malaria"), dataclasses.replace(single, learning_rate=3e-4),
                  dataclasses.replace(single, augmentation=None)):
        assert model_cache.identity_digest(other) != model_cache.identity_digest(single)


def test_an_ensemble_member_and_the_single_model_with_its_seed_are_trained_once(params, built_not_fitted):
    ensemble = experiment.run_model("cnn_ours_chest_ensemble", params)
    info = ensemble.record["training"]["model_cache"]
    assert info["reused"] is False and len(set(info["key"])) == 3 and len(cache_entries(params)) == 3
    seed = params["seed"]
    assert built_not_fitted == [("cnn_ours_chest_ensemble", seed + i) for i in range(3)]
    single = experiment.run_model("cnn_ours_chest", params)  # the first member: seed `seed`
    assert len(built_not_fitted) == 3  # nothing trained for it
    assert single.record["training"]["model_cache"] == {"key": info["key"][0], "reused": True}
    assert len(cache_entries(params)) == 3 and single.model.name == "cnn_ours_chest"
    member = ensemble.model.get_layer("member1")
    for mine, its in zip(single.model.get_weights(), member.get_weights(), strict=True):
        np.testing.assert_array_equal(mine, its)
    again = experiment.run_model("cnn_ours_chest_ensemble", params)
    assert again.record["training"]["model_cache"] == {"key": info["key"], "reused": True}
    np.testing.assert_array_equal(again.p_test, ensemble.p_test)


def test_an_ensemble_reuses_the_single_model_as_its_first_member(params, built_not_fitted):
    single = experiment.run_model("cnn_ours_chest", params)
    ensemble = experiment.run_model("cnn_ours_chest_ensemble", params)
    info = ensemble.record["training"]["model_cache"]
    assert info["key"][0] == single.record["training"]["model_cache"]["key"]
    assert info["reused"] is False and len(cache_entries(params)) == 3  # two members trained, one reused
    seed = params["seed"]
    assert [s for _, s in built_not_fitted] == [seed, seed + 1, seed + 2]


def test_an_ensemble_without_the_cache_has_no_keys(params, built_not_fitted):
    run = experiment.run_model("cnn_ours_chest_ensemble", {**params, "model_cache": False})
    assert run.record["training"]["model_cache"] == {"key": None, "reused": False}
    assert cache_entries(params) == [] and len(built_not_fitted) == 3
