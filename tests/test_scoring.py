"""Scoring images with Keras models: the numbers of ``model.predict``, without TensorFlow's retracing warnings."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from medclf.evaluation import scoring


def _tiny_model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential([keras.Input((12, 12, 1)), keras.layers.Conv2D(3, 3), keras.layers.Flatten(),
                             keras.layers.Dense(1, activation="sigmoid")])


@pytest.fixture
def tf_warnings(monkeypatch):
    """TensorFlow's log warnings while the test runs, counted from a fresh retracing detector (it warns at
    most twice per process, so earlier tests must not use its warnings up)."""
    from tensorflow.python.eager.polymorphic_function import polymorphic_function as pf

    monkeypatch.setattr(pf, "_frequent_tracing_detector_manager", pf._FrequentTracingDetectorManager())
    messages: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    handler = Keep(level=logging.WARNING)
    logger = logging.getLogger("tensorflow")
    logger.addHandler(handler)
    yield messages
    logger.removeHandler(handler)


def test_scoring_several_models_never_warns_of_retracing(tf_warnings):
    """A notebook scores each model on validation, test and cropped validation images (different batch
    sizes); with ``model.predict`` every model traced twice and TensorFlow printed retracing warnings."""
    rng = np.random.default_rng(0)
    models = [_tiny_model(seed) for seed in range(5)]
    for model in models:
        for n in (60, 30, 300, 60):
            p = scoring.predict_probabilities(model, rng.integers(0, 256, (n, 12, 12, 1), dtype=np.uint8))
            assert p.shape == (n,) and p.dtype == np.float64
    assert not [m for m in tf_warnings if "retracing" in m]
    images = rng.integers(0, 256, (70, 12, 12, 1), dtype=np.uint8)
    for model in models:  # the same numbers as Keras's own predict, batch by batch
        np.testing.assert_allclose(scoring.predict_probabilities(model, images, batch_size=32),
                                   model.predict(images, verbose=0).reshape(-1), rtol=0, atol=1e-6)
