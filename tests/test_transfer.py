"""Transfer models: every backbone builds and trains (random weights), preprocessing matches Keras,
the offline ImageNet error names the file, and the cached-feature path equals the end-to-end model."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import freeze_random_batch_norm  # noqa: E402
from medclf.models import builders, registry, transfer  # noqa: E402
from medclf.training import transfer_fit  # noqa: E402


def images(n, size, channels, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, channels)).astype("float32")


#: The deepest backbones take 15-30 s each to trace one training step on a 2-CPU machine; they are built by
#: the same code as the others (a ``keras.applications`` class behind the same head), so the default run
#: builds the shallow ones and ``--all`` every one.
DEEP = pytest.mark.slow


@pytest.mark.parametrize("name,size", [("vgg16_frozen", 32), ("vgg19_s0", 32), ("vgg19_conv_head", 32),
                                       ("xception_head", 72), pytest.param("resnet101_frozen", 32, marks=DEEP),
                                       pytest.param("efficientnet_b0_frozen", 32, marks=DEEP),
                                       pytest.param("densenet121_frozen", 32, marks=DEEP),
                                       ("mobilenet_v2_finetune", 32)])
def test_every_backbone_builds_trains_one_step_and_predicts(name, size):
    spec = registry.get_spec(name)
    model = registry.build_model(spec, spec.input_shape(size), weights="none")
    x, y = images(4, size, spec.channels), np.array([0, 1, 1, 1], dtype="float32")  # unbalanced: a nonzero bias gradient even on dead features
    frozen = [w.name for w in model.non_trainable_weights]
    before = [w.numpy().copy() for w in model.trainable_weights]
    model.compile(builders.make_optimizer(spec.optimizer, spec.learning_rate), "binary_crossentropy")
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    after = [w.numpy() for w in model.trainable_weights]
    assert any(not np.allclose(a, b) for a, b in zip(before, after)), "one step changed no weight"
    p = model.predict(x, verbose=0)
    assert p.shape == (4, 1) and np.all((p >= 0) & (p <= 1))
    assert frozen, "the backbone should be frozen"


def test_imagenet_weights_missing_offline_gives_one_line_naming_the_file(tmp_path, monkeypatch):
    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        import urllib.error

        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    with pytest.raises(transfer.WeightsUnavailable) as caught:
        registry.build_model("vgg16_frozen", (32, 32, 3), weights="imagenet")
    message = str(caught.value)
    assert "\n" not in message
    assert str(tmp_path / "models" / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    assert "weights=none" in message


MOBILENET_224 = "mobilenet_v2_weights_tf_dim_ordering_tf_kernels_1.0_224_no_top.h5"


def _offline(monkeypatch, keras_home):
    """Keras' cache at ``keras_home/models`` and no network (as in the test above)."""
    import urllib.error

    from keras.src.utils import file_utils

    def offline(*args, **kwargs):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setenv("KERAS_HOME", str(keras_home))
    monkeypatch.setattr(file_utils, "urlretrieve", offline)
    monkeypatch.setattr(transfer, "_SUBSTITUTES", {})


def test_missing_size_specific_imagenet_weights_load_the_224_px_file(tmp_path, monkeypatch, capsys):
    """MobileNetV2 at 96 px offline with only the 224-px no-top file cached: its weights are loaded (they do
    not depend on the input size), one line says so, and weights_file names the file for the record."""
    from conftest import SHARED_DATA

    source = SHARED_DATA.parent / "keras" / "models" / MOBILENET_224
    if not source.is_file():
        pytest.skip(f"the 224-px MobileNetV2 ImageNet file is not present: {source}")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / MOBILENET_224).symlink_to(source)
    _offline(monkeypatch, tmp_path)
    assert transfer.weights_file("mobilenet_v2", (96, 96, 3), "imagenet") == "imagenet"
    small = transfer.load_backbone("mobilenet_v2", (96, 96, 3), "imagenet")
    lines = [line for line in capsys.readouterr().out.splitlines() if "224-px file" in line]
    assert len(lines) == 1 and MOBILENET_224 in lines[0] and "96×96" in lines[0]
    reference = keras.applications.MobileNetV2(include_top=False, weights=str(source), input_shape=(224, 224, 3))
    assert all(np.array_equal(a, b) for a, b in zip(small.get_weights(), reference.get_weights()))
    assert small.output_shape == (None, 3, 3, 1280)
    used = str(tmp_path / "models" / MOBILENET_224)
    assert transfer.weights_file("mobilenet_v2", (96, 96, 3), "imagenet") == used
    assert transfer.weights_file("mobilenet_v2", (96, 96, 1), "none") is None
    key = dict(backbone="mobilenet_v2", image_shape=(96, 96, 3), gray_mode="repeat", cut="out_relu",
               manifest_hash="m", precision="float32")
    assert transfer_fit.feature_key(weights="imagenet", **key) == transfer_fit.feature_key(weights=used, **key)
    model = registry.build_model("mobilenet_v2_frozen", (96, 96, 1), weights="imagenet")  # again: no second line
    assert "224-px file" not in capsys.readouterr().out and model.output_shape == (None, 1)


def test_no_imagenet_weights_file_at_all_is_still_an_error(tmp_path, monkeypatch):
    _offline(monkeypatch, tmp_path)
    with pytest.raises(transfer.WeightsUnavailable, match="1.0_96_no_top.h5"):
        transfer.load_backbone("mobilenet_v2", (96, 96, 3), "imagenet")
    assert transfer.weights_file("mobilenet_v2", (96, 96, 3), "imagenet") == "imagenet"


def test_missing_weights_file_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        registry.build_model("mobilenet_v2_frozen", (32, 32, 1), weights=str(tmp_path / "nope.h5"))


@pytest.mark.parametrize("backbone,keras_module", [("vgg16", "vgg16"), ("mobilenet_v2", "mobilenet_v2"),
                                                   ("densenet121", "densenet")])
def test_preprocessing_layers_match_keras_preprocess_input(backbone, keras_module):
    model = transfer.build_transfer((32, 32, 3), backbone, weights="none")
    name = next(layer.name for layer in model.layers if layer.name == "preprocess")
    preprocessed = keras.Model(model.input, model.get_layer(name).output)
    x = images(2, 32, 3)
    expected = getattr(keras.applications, keras_module).preprocess_input(x.copy())
    np.testing.assert_allclose(preprocessed.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-3)


def test_gray_stems_repeat_and_learned_conv_start_equal():
    x = images(2, 32, 1)
    outputs = []
    for mode in ("repeat", "conv"):
        keras.utils.set_random_seed(0)
        model = transfer.build_transfer((32, 32, 1), "mobilenet_v2", gray_mode=mode, weights="none")
        outputs.append(keras.Model(model.input, model.get_layer("preprocess").output).predict(x, verbose=0))
    np.testing.assert_allclose(outputs[0], outputs[1], rtol=1e-6)
    assert outputs[0].shape == (2, 32, 32, 3)


def test_cached_features_path_equals_the_end_to_end_frozen_model():
    keras.utils.set_random_seed(1)
    model = transfer.build_transfer((32, 32, 1), "mobilenet_v2", head_dropout=0.2, dense=(8,), dropout=0.3,
                                    weights="none")
    lower, upper, cut = transfer.split_at_static(model)
    assert cut == "gap"  # the head's dropout and dense layers train; everything below is static
    x = images(6, 32, 1)
    np.testing.assert_allclose(model.predict(x, verbose=0), upper.predict(lower.predict(x, verbose=0), verbose=0),
                               rtol=1e-5, atol=1e-6)
    # training the part above the cut trains the full model (shared layers)
    upper.get_layer("output").set_weights([np.ones((8, 1)), np.array([0.5])])
    np.testing.assert_allclose(model.get_layer("output").get_weights()[0], 1.0)


def test_fine_tuning_cut_moves_below_the_unfrozen_layers_and_keeps_batch_norm_frozen():
    model = transfer.build_transfer((32, 32, 3), "mobilenet_v2", weights="none")
    trainable = transfer.unfreeze_top(model, 20)
    assert trainable > 0
    assert all(not layer.trainable for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization))
    lower, upper, cut = transfer.split_at_static(model)
    names = [layer.name for layer in model.layers]
    first_trainable = min(i for i, layer in enumerate(model.layers) if layer.trainable_weights)
    assert names.index(cut) < first_trainable
    x = images(3, 32, 3)
    np.testing.assert_allclose(model.predict(x, verbose=0), upper.predict(lower.predict(x, verbose=0), verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_a_learned_stem_leaves_no_static_base_to_cache():
    repeat = transfer.build_transfer((32, 32, 1), "mobilenet_v2", weights="none")
    learned = transfer.build_transfer((32, 32, 1), "mobilenet_v2", gray_mode="conv", weights="none")
    assert transfer.has_static_base(repeat)
    assert not transfer.has_static_base(learned)


def test_feature_cache_is_reused_and_recomputed_when_unreadable(tmp_path):
    lower = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten()])
    x = images(5, 4, 1)
    path = tmp_path / "f.npy"
    first = transfer_fit.cached_features(lower, x, path, progress=False)
    np.save(path, np.zeros_like(first))  # a cached file is trusted as is...
    np.testing.assert_array_equal(transfer_fit.cached_features(lower, x, path, progress=False), 0)
    path.write_bytes(b"garbage")  # ...but an unreadable one is recomputed
    np.testing.assert_allclose(transfer_fit.cached_features(lower, x, path, progress=False), first)


def test_feature_key_depends_on_what_changes_the_features():
    base = dict(backbone="mobilenet_v2", weights="imagenet", image_shape=(224, 224, 1), gray_mode="repeat",
                cut="gap", manifest_hash="abc", precision="float32", seed=1)
    key = transfer_fit.feature_key(**base)
    for change in ({"backbone": "vgg16"}, {"image_shape": (128, 128, 1)}, {"cut": "block_12_add"},
                   {"manifest_hash": "abd"}, {"precision": "mixed_bfloat16"}, {"weights": "none"}):
        assert transfer_fit.feature_key(**{**base, **change}) != key
    assert transfer_fit.feature_key(**{**base, "seed": 2}) == key  # ImageNet weights do not depend on the seed
    assert transfer_fit.feature_key(**{**base, "weights": "none"}) != transfer_fit.feature_key(
        **{**base, "weights": "none", "seed": 2})


def test_saved_transfer_model_predicts_the_same_after_loading(tmp_path):
    model = transfer.build_transfer((32, 32, 3), "vgg16", dense=(4,), weights="none")
    x = images(2, 32, 3)
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5)
    assert [layer.name for layer in transfer.backbone_layers(loaded)] == model.backbone_layers


def run_fine_tuned(tmp_path, name, **overrides):
    """``experiment.run_model(name)`` on tiny synthetic data: 1 head epoch, then the top 10 layers for 1 epoch."""
    from medclf.training import experiment
    from medclf.config.params import load_params

    params = load_params("synthetic", "demo", None, {
        "output_dir": str(tmp_path / "out"), "cache_dir": str(tmp_path / "cache"), "data_root": str(tmp_path / "syn"),
        "synthetic_images_per_class": 40,
        "bootstrap_replicates": 20, "max_image_size": 32, "mixed_precision": "float32", "fine_tune_epochs": 1,
        "model_overrides": {name: {"fine_tune": 10, "epochs": 1}}, **overrides})
    return experiment.run_model(name, params)


def test_fit_transfer_on_synthetic_data_caches_features_and_fine_tunes_only_the_top(tmp_path):
    run = run_fine_tuned(tmp_path, "mobilenet_v2_finetune")
    stages = run.record["training"]["members"]
    assert [s["stage"] for s in stages] == ["head", "fine_tune"]
    assert stages[0]["feature_seconds"] > 0  # extraction is part of the training time
    assert run.record["training"]["seconds"] >= sum(s["seconds"] + s["feature_seconds"] for s in stages) - 0.05
    cached = sorted((tmp_path / "cache" / "features").rglob("*.npy"))
    assert len(cached) == 2  # both stages train from the fine-tuning cut: (train, val)
    labels = np.ravel(run.p_test) >= run.threshold  # the record scores the model it trained
    assert run.record["evaluation"]["test"]["at_threshold"]["accuracy"] == pytest.approx(np.mean(labels == run.y_test))


@pytest.mark.slow  # a staged fine-tune, 10-35 s; --all runs it
def test_max_epochs_caps_the_fine_tuning_stage_too(tmp_path):
    run = run_fine_tuned(tmp_path, "mobilenet_v2_finetune", fine_tune_epochs=3, max_epochs=1, patience=5)
    assert [(s["stage"], s["epochs_run"]) for s in run.record["training"]["members"]] == [("head", 1), ("fine_tune", 1)]
    assert run.record["training"]["weights_file"] is None  # the demo profile: random weights


@pytest.mark.slow  # a staged fine-tune, 10-35 s; --all runs it
def test_fine_tuning_with_augmentation_warm_starts_the_head_on_cached_features(tmp_path):
    run = run_fine_tuned(tmp_path, "mobilenet_v2_finetune_aug")
    head, fine = run.record["training"]["members"]
    assert run.record["training"]["augmentation"] == registry.get_spec("mobilenet_v2_finetune_aug").augmentation
    assert head["feature_seconds"] > 0 and fine["epochs_run"] == 1
    cached = sorted((tmp_path / "cache" / "features").rglob("*.npy"))
    assert len(cached) == 2  # the head's (train, val) features; the augmented stage runs end to end
    assert np.load(cached[0]).shape[1:] == (1280,)  # cut at the top of the backbone, not at the fine-tuning cut


@pytest.mark.slow  # a staged fine-tune, 10-35 s; --all runs it
def test_both_transfer_stages_validate_on_the_selection_rows(tmp_path, monkeypatch):
    """select_on=new_patients: the head (on cached features) and the augmented fine-tuning both stop on the
    validation images of patients outside training."""
    from medclf.training import fit

    fit_spec, sizes = fit.fit_spec, []

    def spy(model, spec, train_arrays, val_arrays, **kwargs):
        sizes.append(len(val_arrays[1]))
        return fit_spec(model, spec, train_arrays, val_arrays, **kwargs)

    monkeypatch.setattr(fit, "fit_spec", spy)
    run = run_fine_tuned(tmp_path, "mobilenet_v2_finetune_aug", source_val="merge", split_by_image=["PNEUMONIA"],
                         select_on="new_patients", val_fraction=0.3, synthetic_images_per_class=60,
                         data_root=str(tmp_path / "syn"))  # 7 of 19 pneumonia validation images from new patients
    chosen = run.record["evaluation"]["selection"]
    assert sizes == [chosen["images"], chosen["images"]] and chosen["images"] < len(run.y_val)


@pytest.mark.slow  # a staged fine-tune, 10-35 s; --all runs it
def test_an_ensemble_of_fine_tuned_transfer_models_trains_each_member_in_stages(tmp_path):
    """mobilenet_v2_finetune_aug_ensemble (2 members here): each member trains its two stages with its own seed,
    and the averaged model saves, reloads and explains as one. (With ImageNet weights the members share one
    feature cache: its key ignores the seed, test_feature_key_depends_on_what_changes_the_features.)"""
    import keras

    from medclf.analysis import explain

    name = "mobilenet_v2_finetune_aug_ensemble"
    params_overrides = {"model_overrides": {name: {"fine_tune": 10, "epochs": 1, "ensemble": 2}}, "save_models": True}
    run = run_fine_tuned(tmp_path, name, **params_overrides)
    rows = run.record["training"]["members"]
    assert [(r["member"], r["stage"]) for r in rows] == [(1, "head"), (1, "fine_tune"), (2, "head"), (2, "fine_tune")]
    assert len(sorted((tmp_path / "cache" / "features").rglob("*.npy"))) == 4  # random weights: own backbone each
    members = explain.ensemble_members(run.model)
    weights = [m.get_layer("output").get_weights()[0] for m in members]
    assert len(members) == 2 and not np.allclose(*weights)  # seeded apart
    loaded = keras.models.load_model(tmp_path / "out" / "synthetic" / "demo" / run.record["model_file"])
    x = np.random.default_rng(0).integers(0, 255, (3, 32, 32, 1)).astype("float32")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), run.model.predict(x, verbose=0), atol=1e-5)
    assert explain.gradcams(run.model, x).shape == (3, 32, 32)
