"""Model registry and builders: every named model builds small, compiles and trains one step."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest

from medclf.config import paths as config
from medclf.models.blocks import ConvBlock
from medclf.models.builders import OPTIMIZERS, build_compact_cnn, count_params, make_optimizer
from medclf.models.registry import MODELS, build_model, get_spec, model_names
from medclf.models.specs import CALLBACKS, COLOR_MODES, FAMILIES

KERAS_NAMES = [name for name, spec in MODELS.items() if spec.family in ("ann", "cnn")]  # transfer: test_transfer.py
STUDIES_MD = config.PROJECT_ROOT.parent / "shared" / "docs" / "STUDIES.md"


def small_shape(spec) -> tuple[int, int, int]:
    return spec.input_shape(16 if spec.family == "ann" else 32)


def uint8_batch(shape, n: int = 4, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, *shape), dtype=np.uint8), np.array([0, 1] * (n // 2), dtype=np.float32)


@pytest.mark.parametrize("name", KERAS_NAMES)
def test_keras_model_builds_and_trains_one_step(name, run_eagerly=True):
    """Eager: tracing a graph per model would triple the time; the graph path is tested once below."""
    keras.utils.set_random_seed(0)
    spec = get_spec(name)
    shape = small_shape(spec)
    model = build_model(spec, shape)
    assert model.name == name
    assert isinstance(model.get_layer("rescale"), keras.layers.Rescaling)
    output = model.get_layer("output")
    assert output.units == 1 and output.dtype_policy.compute_dtype == "float32"
    assert count_params(model) == model.count_params() > 0

    model.compile(optimizer=make_optimizer(spec.optimizer, spec.learning_rate), loss="binary_crossentropy",
                  run_eagerly=run_eagerly, jit_compile=False)
    x, y = uint8_batch(shape)
    loss = model.train_on_batch(x, y)
    assert np.isfinite(loss)
    prob = model.predict_on_batch(x)
    assert prob.shape == (len(x), 1)
    assert np.all((prob >= 0) & (prob <= 1))


def test_graph_mode_one_step():
    test_keras_model_builds_and_trains_one_step("cnn_baseline_8", run_eagerly=False)


def test_layers_are_named_for_feature_maps():
    model = build_model("cnn_deeper", (32, 32, 3))
    names = [layer.name for layer in model.layers]
    assert names[:5] == ["image", "rescale", "conv1", "pool1", "conv2"]
    assert model.get_layer("conv1").filters == 32 and model.get_layer("conv3").filters == 128


def test_svm_fits_and_scores():
    spec = get_spec("svm_pixels")
    shape = spec.input_shape(8)
    svm = build_model(spec, shape)
    x, y = uint8_batch(shape, n=10)
    svm.fit(x, y)
    scores = svm.decision_function(x)
    assert scores.shape == (10,) and np.all(np.isfinite(scores))
    assert count_params(svm) == svm[-1].support_vectors_.shape[0] * int(np.prod(shape))
    with pytest.raises(ValueError, match="reshape"):  # images of another size (the pipeline is numpy steps only)
        svm.decision_function(x[:, :3])
    with pytest.raises(ValueError, match="not fitted"):
        count_params(build_model(spec, shape))


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="no_such_model") as info:
        get_spec("no_such_model")
    assert all(name in str(info.value) for name in MODELS)
    with pytest.raises(ValueError, match="adam"):
        make_optimizer("lion", 1e-3)
    with pytest.raises(ValueError, match="input_shape"):
        build_model("cnn_deeper", (32, 32))


@pytest.mark.parametrize("name", list(MODELS))
def test_spec_fields_are_valid(name):
    spec = MODELS[name]
    assert spec.name == name and spec.description
    assert spec.family in FAMILIES and spec.optimizer in OPTIMIZERS and spec.color_mode in COLOR_MODES
    assert set(spec.callbacks) <= set(CALLBACKS)
    if spec.study is None:
        assert spec.reported is None and (spec.augment or spec.family == "transfer")
    else:
        assert 0 < spec.reported["accuracy"] < 1


def test_invalid_spec_is_rejected():
    spec = get_spec("cnn_deeper")
    import dataclasses
    with pytest.raises(ValueError, match="optimizer"):
        dataclasses.replace(spec, optimizer="lion")
    with pytest.raises(ValueError, match="callbacks"):
        dataclasses.replace(spec, callbacks=("patience",))
    with pytest.raises(ValueError, match="dropout_at"):
        ConvBlock(8, dropout_at="somewhere")


def test_reported_numbers_spot_check():
    assert get_spec("svm_pixels").reported == {"accuracy": 0.7644, "normal_recall": 0.39, "pneumonia_recall": 0.99}
    assert get_spec("cnn_deeper").reported == {"accuracy": 0.8446, "normal_recall": 0.60, "pneumonia_recall": 0.99}
    assert get_spec("cnn_bn5").reported["normal_recall"] == 0.74
    assert get_spec("ann_deep").reported["accuracy"] == 0.891
    assert get_spec("malaria_cnn_se").reported == {"accuracy": 0.9846, "test_errors": 40}
    assert get_spec("cnn_2conv_64").image_size == 64 and get_spec("cnn_2conv_64").epochs == 25
    assert get_spec("cnn_bn5").optimizer == "rmsprop" and get_spec("cnn_bn5").color_mode == "grayscale"
    assert get_spec("ann_deep_lr5e-4").learning_rate == 5e-4 and get_spec("ann_10_sgd").optimizer == "sgd"
    assert model_names(family="cnn", dataset="malaria") == ["malaria_cnn_base", "malaria_cnn_leaky_gap",
                                                            "malaria_cnn_se", "cnn_ours_malaria"]
    assert model_names(family="cnn", study=None) == ["cnn_ours_chest", "cnn_ours_chest_ensemble", "cnn_ours_malaria"]
    assert model_names(family="transfer", study="S1") == ["xception_frozen", "xception_head", "resnet101_frozen",
                                                          "xception_aug", "xception_head_aug"]
    assert get_spec("vgg19_s0").gray_mode == "conv" and get_spec("vgg16_frozen").dataset == "malaria"


def test_reported_accuracies_appear_in_studies_md():
    if not STUDIES_MD.is_file():
        pytest.skip(f"{STUDIES_MD} not present")
    reported = {float(a) for a in re.findall(r"acc (0\.\d+)", STUDIES_MD.read_text())}
    for spec in MODELS.values():
        if spec.reported:
            assert spec.reported["accuracy"] in reported, spec.name


def test_compact_cnn_is_parameterised():
    model = build_compact_cnn((32, 32, 1), filters=(8, 16), dropout=0.1, dense=(4,))
    assert [model.get_layer(f"conv{i}").filters for i in (1, 2)] == [8, 16]
    assert model.get_layer("head_drop").rate == 0.1 and model.get_layer("dense1").units == 4


def test_fit_spec_trains_with_the_specs_optimizer():
    """fit_spec compiles with make_optimizer(spec.optimizer): the ANNs' and CNNs' Adam is an Adam, SGD stays SGD
    (accel off: the model itself is fitted; with it on, see tests/test_accel.py)."""
    from medclf.training import fit

    from medclf.config.settings import TrainingSettings

    training = TrainingSettings(seed=0, class_weight=False, monitor="val_auc", patience=1, max_epochs=None,
                                max_image_size=None, accel=False, mixed_precision="float32", save_models=False)
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (8, 8, 8, 3), dtype=np.uint8), np.arange(8) % 2
    for name, expected in [("ann_10_adam", keras.optimizers.Adam), ("cnn_baseline_8", keras.optimizers.Adam),
                           ("ann_10_sgd", keras.optimizers.SGD)]:
        spec = get_spec(name)
        model = build_model(spec, (8, 8, 3))
        fit.fit_spec(model, spec, data, data, training=training, learning_rate=1e-3, epochs=1)
        assert isinstance(model.optimizer, expected) and int(model.optimizer.iterations) == 1


def test_models_are_plain_keras():
    """Built models and their optimizers are Keras' own classes (faster drop-ins are the training layer's choice),
    and the models package does not import medclf.accel."""
    assert type(make_optimizer("adam", 1e-3)) is keras.optimizers.Adam
    model = build_model("cnn_bn5", (32, 32, 1))
    norms = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(norms) == 5 and all(type(layer) is keras.layers.BatchNormalization for layer in norms)
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    import ast
    from pathlib import Path

    import medclf.models

    imported = {(path.name, node.module if isinstance(node, ast.ImportFrom) else alias.name)
                for path in Path(medclf.models.__file__).parent.glob("*.py")
                for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
                if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    assert not [pair for pair in imported if (pair[1] or "").startswith("medclf.accel")]
