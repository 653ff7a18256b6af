"""FusedAdam (medclf.accel.fused_adam) computes what keras.optimizers.Adam computes."""

from __future__ import annotations

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medclf.accel.fused_adam import FusedAdam  # noqa: E402


def trained_weights(optimizer: keras.optimizers.Optimizer) -> list[np.ndarray]:
    """Weights of a small seeded MLP after six Adam steps (float32, fixed batches)."""
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(96, 12)).astype("float32"), rng.integers(0, 2, 96).astype("float32")
    keras.utils.set_random_seed(1)
    model = keras.Sequential([keras.Input((12,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=optimizer, loss="binary_crossentropy")
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    return model.get_weights()


def test_six_steps_match_keras_adam():
    expected = trained_weights(keras.optimizers.Adam(1e-2, beta_1=0.8, epsilon=1e-6))
    fused = trained_weights(FusedAdam(1e-2, beta_1=0.8, epsilon=1e-6))
    initial = trained_weights(keras.optimizers.SGD(0.0))
    for want, got, start in zip(expected, fused, initial):
        assert np.abs(want - start).max() > 1e-3          # the steps moved the weights
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)


def test_amsgrad_takes_the_keras_path_and_still_matches():
    expected = trained_weights(keras.optimizers.Adam(1e-2, amsgrad=True))
    np.testing.assert_allclose(trained_weights(FusedAdam(1e-2, amsgrad=True))[0], expected[0], atol=1e-6)


def test_fused_adam_round_trips_through_config():
    optimizer = FusedAdam(learning_rate=5e-4)
    again = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert isinstance(again, FusedAdam) and float(again.learning_rate) == pytest.approx(5e-4)


def test_model_compiled_with_it_saves_and_loads(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, activation="sigmoid")])
    model.compile(optimizer=FusedAdam(1e-3), loss="binary_crossentropy")
    model.fit(np.ones((4, 3), "float32"), np.ones(4, "float32"), verbose=0)
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    assert isinstance(loaded.optimizer, FusedAdam)
    np.testing.assert_allclose(loaded.predict(np.ones((2, 3), "float32"), verbose=0),
                               model.predict(np.ones((2, 3), "float32"), verbose=0))
