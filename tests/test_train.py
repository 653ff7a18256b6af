"""Training helpers: precision detection, class weights, callbacks, timing records."""

from __future__ import annotations

import numpy as np
import pytest

from medclf.training import train
from medclf.data.augment import build_augmenter, check_augmentation

AMX_CPU = "processor : 0\nflags : fpu sse avx512f amx_bf16 amx_tile\n"
OLD_CPU = "processor : 0\nflags : fpu sse avx2\n"


def test_bf16_detection_reads_cpu_flags():
    assert train.cpu_has_bf16(AMX_CPU) and not train.cpu_has_bf16(OLD_CPU)
    assert train.cpu_has_bf16("flags : avx512_bf16\n")
    assert train.cpu_bf16_flags(AMX_CPU) == ["amx_bf16"] and train.cpu_bf16_flags(OLD_CPU) == []
    assert train.cpu_bf16_flags("flags : avx512_bf16 amx_bf16\n") == ["amx_bf16", "avx512_bf16"]


def test_cpu_model_names_the_cpu():
    assert train.cpu_model("processor : 0\nmodel name\t: AMD EPYC 9R14\nflags : avx2\n") == "AMD EPYC 9R14"
    assert train.cpu_model(OLD_CPU) == "cpu"


def _onednn_in_fresh_process(setting: str | None) -> tuple[str, str]:
    """``(TF_ENABLE_ONEDNN_OPTS after importing medclf, train.onednn_enabled())`` in a new Python process."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = ("import os, medclf; from medclf import train; import tensorflow; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], train.onednn_enabled())")
    done = subprocess.run([sys.executable, "-c", code], env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"},
                          capture_output=True, text=True, timeout=120, check=True)
    return tuple(done.stdout.split()[-2:])


@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"), reason="oneDNN default is x86's")
def test_importing_medclf_turns_onednn_on_unless_the_user_said_otherwise():
    assert _onednn_in_fresh_process(None) == ("1", "True")
    assert _onednn_in_fresh_process("0") == ("0", "False")


def test_device_id_names_the_cpu_kernels():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("on a GPU the device id is the GPU's name")
    assert train.device_id().startswith(train.cpu_model()) and train.device_id().endswith(("|onednn", "|eigen"))


def test_precision_policy_modes(monkeypatch):
    monkeypatch.setattr(train, "gpu_has_bf16", lambda: False)
    monkeypatch.setattr(train, "cpu_has_bf16", lambda cpuinfo=None: False)
    assert train.precision_policy("auto") == "float32"
    assert train.precision_policy("on") == "mixed_bfloat16"
    monkeypatch.setattr(train, "cpu_has_bf16", lambda cpuinfo=None: True)
    assert train.precision_policy("auto") == "mixed_bfloat16"
    assert train.precision_policy("off") == "float32"
    with pytest.raises(ValueError, match="auto, on or off"):
        train.precision_policy("maybe")


def test_auto_precision_follows_the_probe_only_where_bf16_exists(monkeypatch):
    calls = []

    def probe(policy):
        calls.append(policy)
        return {"mixed_bfloat16": 2.0, "float32": 1.0}[policy]

    monkeypatch.setattr(train, "gpu_has_bf16", lambda: False)
    monkeypatch.setattr(train, "cpu_has_bf16", lambda cpuinfo=None: True)
    assert train.precision_policy("auto", probe) == "float32"  # measured slower in bf16: not used
    assert train.precision_policy("auto", lambda policy: {"mixed_bfloat16": 1.0, "float32": 3.0}[policy]) \
        == "mixed_bfloat16"
    assert train.precision_policy("on", probe) == "mixed_bfloat16" and train.precision_policy("off", probe) == "float32"
    monkeypatch.setattr(train, "cpu_has_bf16", lambda cpuinfo=None: False)
    calls.clear()
    assert train.precision_policy("auto", probe) == "float32" and calls == []  # no bf16 hardware: no probe


def test_cached_probe_measures_once_per_key_and_policy(tmp_path):
    calls = []

    def probe(policy):
        calls.append(policy)
        return 0.5

    store = tmp_path / "probe.json"
    first = train.cached_probe(probe, store, "model|32x32x1|cpu")
    assert first("float32") == 0.5 and first("float32") == 0.5 and calls == ["float32"]
    again = train.cached_probe(probe, store, "model|32x32x1|cpu")  # a later run reads the file
    assert again("float32") == 0.5 and calls == ["float32"]
    assert again("mixed_bfloat16") == 0.5 and calls == ["float32", "mixed_bfloat16"]


def test_step_seconds_times_a_training_step_and_restores_the_policy():
    import keras

    def build():
        inputs = keras.Input((8, 8, 1))
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs)))

    keras.mixed_precision.set_global_policy("float32")
    seconds = train.step_seconds(build, (8, 8, 1), "mixed_bfloat16", batch_size=4)
    assert 0.0 < seconds < 10.0
    assert train.current_policy() == "float32"


def test_class_weights_are_balanced():
    weights = train.class_weights(np.array([0] * 25 + [1] * 75))
    assert weights == pytest.approx({0: 2.0, 1: 2 / 3})


def test_step_decay_halves_every_ten_epochs():
    schedule = train.step_decay(2e-3)
    assert [schedule(e) for e in (0, 9, 10, 25)] == pytest.approx([2e-3, 2e-3, 1e-3, 5e-4])


def test_best_epoch_follows_the_monitor_direction():
    history = {"val_loss": [0.5, 0.3, 0.4], "val_auc": [0.8, 0.9, 0.95]}
    assert train.best_epoch(history, "val_loss") == 2 and train.best_epoch(history, "val_auc") == 3
    assert train.best_epoch(history, "val_accuracy") is None


def test_make_callbacks_by_name():
    params = {"monitor": "val_auc", "patience": 4}
    made = train.make_callbacks(("early_stopping", "reduce_lr", "step_decay", "two_target_stop"), params, 1e-3)
    assert [type(c).__name__ for c in made] == ["EarlyStopping", "ReduceLROnPlateau", "LearningRateScheduler",
                                                "TwoTargetEarlyStopping"]
    assert made[0].restore_best_weights and made[0].monitor == "val_auc"
    with pytest.raises(ValueError, match="unknown callback 'warp'"):
        train.make_callbacks(("warp",), params, 1e-3)


class FakeModel:
    """Stands in for a Keras model: weights are the epoch number they were taken at."""

    def __init__(self):
        self.epoch, self.stop_training, self.weights = 0, False, None

    def get_weights(self):
        return self.epoch

    def set_weights(self, weights):
        self.weights = weights


def run_two_target(logs: list[tuple[float, float]], patience: int = 2) -> tuple[int | None, int]:
    _, TwoTarget = train._callback_classes()
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
    a = train.TrainResult(10.0, 2.0, 5, 3, "float32", {"loss": [1.0]})
    b = train.TrainResult(6.0, 2.0, 3, 2, "float32", {"loss": [2.0]})
    combined = train.combine_results([a, b])
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
    runs = [np.concatenate([images.numpy() for images, _ in train.make_dataset(
        x, y, 4, shuffle=True, seed=3, augmenter=build_augmenter(config, seed=3))]) for _ in range(2)]
    np.testing.assert_array_equal(runs[0], runs[1])


def test_epoch_timer_records_wall_and_cpu_seconds_per_epoch():
    keras = pytest.importorskip("keras")
    EpochTimer, _ = train._callback_classes()
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
    train.compile_model(model, keras.optimizers.SGD())
    params = {"class_weight": False, "seed": 0, "monitor": "val_auc"}
    with progress.task("tiny"):
        result = train.fit_keras(model, (x, y), (x, y), epochs=3, batch_size=8, callbacks=[Peek()], params=params,
                                 verbose=0)
    assert result.epochs_run == 3
    assert [state["epoch"] for state in seen] == [1, 2, 3] and {state["epochs"] for state in seen} == {3}
    assert all(state["task"] == "tiny" and state["seconds_per_epoch"] > 0 for state in seen)
    assert set(seen[-1]["val"]) >= {"loss", "auc", "accuracy"}
