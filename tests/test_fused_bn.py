"""FusedBatchNormalization (medclf.accel.fused_bn) computes what keras.layers.BatchNormalization computes."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medclf.accel.fused_bn import FusedBatchNormalization  # noqa: E402


def twin_layers(channels: int = 3):
    """A Keras and a fused layer with the same (non-trivial) weights and moving statistics."""
    rng = np.random.default_rng(0)
    shape = (None, 6, 6, channels)
    plain, fused = keras.layers.BatchNormalization(momentum=0.9), FusedBatchNormalization(momentum=0.9)
    plain.build(shape)
    fused.build(shape)
    weights = [rng.uniform(0.5, 2, channels), rng.normal(size=channels), rng.normal(size=channels),
               rng.uniform(0.5, 2, channels)]
    plain.set_weights(weights)
    fused.set_weights(weights)
    return plain, fused


def batch(channels: int = 3) -> np.ndarray:
    return np.random.default_rng(1).normal(2.0, 3.0, (4, 6, 6, channels)).astype("float32")


def test_training_output_moving_statistics_and_gradients_match_keras():
    import tensorflow as tf

    plain, fused = twin_layers()
    x = tf.constant(batch())
    grads = []
    for layer in (plain, fused):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * tf.range(1.0, 1.0 + y.shape[-1]))
        grads.append(tape.gradient(loss, [x, layer.gamma, layer.beta]))
        layer.out = y.numpy()
    np.testing.assert_allclose(fused.out, plain.out, atol=1e-4)
    np.testing.assert_allclose(fused.moving_mean.numpy(), plain.moving_mean.numpy(), atol=1e-5)
    np.testing.assert_allclose(fused.moving_variance.numpy(), plain.moving_variance.numpy(), rtol=1e-4)
    for got, want in zip(grads[1], grads[0]):
        np.testing.assert_allclose(np.asarray(got), np.asarray(want), atol=1e-3)


def test_inference_and_other_ranks_use_the_keras_computation():
    plain, fused = twin_layers()
    x = batch()
    np.testing.assert_allclose(fused(x, training=False), plain(x, training=False), atol=1e-5)
    flat = x.reshape(4, -1)[:, :3]
    np.testing.assert_allclose(FusedBatchNormalization()(flat, training=True),
                               keras.layers.BatchNormalization()(flat, training=True), atol=1e-5)


def test_bfloat16_training_runs_and_returns_the_compute_dtype():
    layer = FusedBatchNormalization(dtype="mixed_bfloat16")
    y = layer(batch().astype("float32"), training=True)
    assert keras.backend.standardize_dtype(y.dtype) == "bfloat16" and np.isfinite(np.asarray(y, np.float32)).all()


def test_a_model_with_the_layer_saves_and_loads(tmp_path):
    inputs = keras.Input((6, 6, 3))
    model = keras.Model(inputs, FusedBatchNormalization(name="bn")(inputs))
    path = tmp_path / "m.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert type(loaded.get_layer("bn")) is FusedBatchNormalization
    np.testing.assert_allclose(loaded.predict(batch(), verbose=0), model.predict(batch(), verbose=0))
