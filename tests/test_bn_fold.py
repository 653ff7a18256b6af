"""Batch-norm folding: the folded copy computes what the original computes (inference mode)."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from conftest import freeze_random_batch_norm  # noqa: E402
from medclf.accel.bn_fold import fold_batch_norm  # noqa: E402


def small_net():
    """Conv with and without bias, a depthwise conv with multiplier 2, a batch norm that cannot fold
    (its convolution's output is also read by a residual), and one after a non-convolution."""
    inputs = keras.Input((12, 12, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="c1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2, name="dw")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    y = keras.layers.Conv2D(8, 1, name="c2")(x)
    z = keras.layers.BatchNormalization(name="bn3")(y)
    x = keras.layers.Add()([y, z])  # y has two readers: bn3 must not fold into c2
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.BatchNormalization(name="bn4")(x)
    return keras.Model(inputs, x)


def test_folded_copy_matches_the_original_and_folds_only_what_it_may():
    keras.utils.set_random_seed(0)
    model = freeze_random_batch_norm(small_net())
    folded = fold_batch_norm(model)
    x = np.random.default_rng(1).uniform(0, 255, (3, 12, 12, 3)).astype("float32")
    np.testing.assert_allclose(folded.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-4, atol=1e-4)
    names = {layer.name for layer in folded.layers}
    assert "bn1" not in names and "bn2" not in names
    assert isinstance(folded.get_layer("bn3"), keras.layers.BatchNormalization) and "bn4" in names
    assert folded.get_layer("c1").use_bias and not model.get_layer("c1").use_bias  # the original is untouched
    assert not folded.trainable_weights


def test_mobilenet_v2_backbone_folds_every_batch_norm_and_matches():
    keras.utils.set_random_seed(0)
    backbone = keras.applications.MobileNetV2(include_top=False, weights=None, input_shape=(32, 32, 3))
    model = freeze_random_batch_norm(backbone)
    folded = fold_batch_norm(model)
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in folded.layers)
    x = np.random.default_rng(2).uniform(-1, 1, (2, 32, 32, 3)).astype("float32")
    expected = model.predict(x, verbose=0)
    np.testing.assert_allclose(folded.predict(x, verbose=0), expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())


def test_a_model_without_foldable_batch_norm_comes_back_as_is():
    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(2)])
    assert fold_batch_norm(keras.Model(model.inputs, model.outputs)).count_params() == model.count_params()
