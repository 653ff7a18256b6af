"""Training helpers: class weights, callbacks, the tf.data pipeline, timing records."""

from __future__ import annotations

import numpy as np
import pytest

from medclf.config.settings import TrainingSettings
from medclf.data.augment import build_augmenter, check_augmentation
from medclf.data.pipeline import make_dataset
from medclf.training import callbacks, fit


def test_class_weights_are_balanced():
    weights = fit.class_weights(np.array([0] * 25 + [1] * 75))
    assert weights == pytest.approx({0: 2.0, 1: 2 / 3})


def test_step_decay_halves_every_ten_epochs():
    schedule = callbacks.step_decay(2e-3)
    assert [schedule(e) for e in (0, 9, 10, 25)] == pytest.approx([2e-3, 2e-3, 1e-3, 5e-4])


def test_best_epoch_follows_the_monitor_direction():
    history = {"val_loss": [0.5, 0.3, 0.4], "val_auc": [0.8, 0.9, 0.95]}
    assert fit.best_epoch(history, "val_loss") == 2 and fit.best_epoch(history, "val_auc") == 3
    assert fit.best_epoch(history, "val_accuracy") is None


def test_make_callbacks_by_name():
    made = callbacks.make_callbacks(("early_stopping", "reduce_lr", "step_decay", "two_target_stop"), 1e-3,
                                    monitor="val_auc", patience=4)
    assert [type(c).__name__ for c in made] == ["EarlyStopping", "ReduceLROnPlateau", "LearningRateScheduler",
                                                "TwoTargetEarlyStopping"]
    assert made[0].restore_best_weights and made[0].monitor == "val_auc"
    with pytest.raises(ValueError, match="unknown callback 'warp'"):
        callbacks.make_callbacks(("warp",), 1e-3, monitor="val_auc", patience=4)


class FakeModel:
    """Stands in for a Keras model: weights are the epoch number they were taken at."""

    def __init__(self):
        self.epoch, self.stop_training, self.weights = 0, False, None

    def get_weights(self):
        return self.epoch

    def set_weights(self, weights):
        self.weights = weights


def run_two_target(logs: list[tuple[float, float]], patience: int = 2) -> tuple[int | None, int]:
    _, TwoTarget = callbacks.callback_classes()
    callback, model = TwoTarget(accuracy_target=0.9, recall_target=0.95, patience=patience), FakeModel()
    callback.set_model(model)
    callback.on_train_begin()
    for epoch, (accuracy, recall) in enumerate(logs):
        model.epoch = epoch
        callback.on_epoch_end(epoch, {"val_accuracy": accuracy, "val_recall": recall})
        if model.stop_training:
            break
    callback.on_train_end()
    return model.weights, epoch


def test_two_target_stop_waits_for_both_targets_then_patience():
    # epochs 0-1 miss a target; 2 meets both; 3 improves accuracy; 4-5 do not improve: stop at 5
    weights, stopped = run_two_target([(0.95, 0.9), (0.85, 0.99), (0.91, 0.96), (0.93, 0.96), (0.92, 0.95),
                                       (0.92, 0.96), (0.99, 0.99)])
    assert stopped == 5 and weights == 3  # best epoch's weights restored


def test_two_target_stop_never_fires_when_targets_are_not_met():
    weights, stopped = run_two_target([(0.5, 0.5)] * 6)
    assert weights is None and stopped == 5


def test_combine_results_sums_members():
    a = fit.TrainResult(10.0, 2.0, 5, 3, "float32", {"loss": [1.0]})
    b = fit.TrainResult(6.0, 2.0, 3, 2, "float32", {"loss": [2.0]})
    combined = fit.combine_results([a, b])
    assert (combined.seconds, combined.epochs_run, combined.seconds_per_epoch) == (16.0, 8, 2.0)
    assert combined.history == {"loss": [1.0]} and len(combined.members) == 2


def test_augmentation_config_is_checked():
    assert build_augmenter({}) is None
    with pytest.raises(ValueError, match="unknown augmentation 'blur'"):
        check_augmentation({"blur": 1})
    with pytest.raises(ValueError, match="flip must be one of"):
        check_augmentation({"flip": "diagonal"})
    with pytest.raises(ValueError, match="rotation must be a non-negative number"):
        check_augmentation({"rotation": -1})


def test_augmenter_keeps_shape_and_pixel_range():
    augmenter = build_augmenter({"flip": "horizontal", "rotation": 0.1, "zoom": 0.1, "translation": 0.1,
                                 "shear": 0.1, "brightness": 0.2, "contrast": 0.2}, seed=1)
    images = np.random.default_rng(0).integers(0, 256, (4, 24, 24, 1)).astype("float32")
    out = np.asarray(augmenter(images, training=True))
    assert out.shape == images.shape and out.min() >= 0 and out.max() <= 255
    assert not np.allclose(out, images)


def test_augmented_pipeline_is_the_same_for_the_same_seed():
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (24, 16, 16, 1), dtype=np.uint8), np.arange(24) % 2
    config = {"rotation": 0.1, "zoom": 0.1, "brightness": 0.1, "flip": "horizontal"}
    runs = [np.concatenate([images.numpy() for images, _ in make_dataset(
        x, y, 4, shuffle=True, seed=3, augmenter=build_augmenter(config, seed=3))]) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_epoch_timer_records_wall_and_cpu_seconds_per_epoch():
    keras = pytest.importorskip("keras")
    EpochTimer, _ = callbacks.callback_classes()
    timer = EpochTimer()
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.random.default_rng(0).normal(size=(64, 3)).astype("float32")
    model.fit(x, x[:, :1], epochs=3, batch_size=8, verbose=0, callbacks=[timer])
    assert len(timer.seconds) == len(timer.cpu_seconds) == 3
    assert all(s > 0 for s in timer.seconds) and all(c >= 0 for c in timer.cpu_seconds)
    assert sum(timer.cpu_seconds) > 0  # the process did work while fitting


def test_fit_reports_each_epoch_to_the_progress_file(tmp_path, monkeypatch):
    """fit_keras reports every epoch (task label, epoch of the most it may run, seconds, validation metrics)."""
    import json

    from medclf.core import progress

    keras = pytest.importorskip("keras")
    status, seen = tmp_path / "status.json", []
    monkeypatch.setenv(progress.ENV_VAR, str(status))

    class Peek(keras.callbacks.Callback):  # runs after fit_keras' own timer, which reports
        def on_epoch_end(self, epoch, logs=None):
            seen.append(json.loads(status.read_text()))

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (32, 8, 8, 1), dtype=np.uint8), np.arange(32) % 2
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(1, activation="sigmoid")])
    fit.compile_model(model, keras.optimizers.SGD())
    training = TrainingSettings(seed=0, class_weight=False, monitor="val_auc", patience=1, max_epochs=None,
                                max_image_size=None, accel=False, mixed_precision="float32", save_models=False)
    with progress.task("tiny"):
        result = fit.fit_keras(model, (x, y), (x, y), epochs=3, batch_size=8, callbacks=[Peek()], training=training,
                               verbose=0)
    assert result.epochs_run == 3
    assert [state["epoch"] for state in seen] == [1, 2, 3] and {state["epochs"] for state in seen} == {3}
    assert all(state["task"] == "tiny" and state["seconds_per_epoch"] > 0 for state in seen)
    assert set(seen[-1]["val"]) >= {"loss", "auc", "accuracy"}
