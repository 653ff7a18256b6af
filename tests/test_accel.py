"""The optional CPU speed-ups (medclf.accel): hardware detection, the precision choice, and the fused
kernels swapped in for training only — with ``accel`` off or on, the same model trains to the same predictions."""

from __future__ import annotations

import numpy as np
import pytest

from medclf.accel import hardware, precision

AMX_CPU = "processor : 0\nflags : fpu sse avx512f amx_bf16 amx_tile\n"
OLD_CPU = "processor : 0\nflags : fpu sse avx2\n"


def test_bf16_detection_reads_cpu_flags():
    assert hardware.cpu_has_bf16(AMX_CPU) and not hardware.cpu_has_bf16(OLD_CPU)
    assert hardware.cpu_has_bf16("flags : avx512_bf16\n")
    assert hardware.cpu_bf16_flags(AMX_CPU) == ["amx_bf16"] and hardware.cpu_bf16_flags(OLD_CPU) == []
    assert hardware.cpu_bf16_flags("flags : avx512_bf16 amx_bf16\n") == ["amx_bf16", "avx512_bf16"]


def test_cpu_model_names_the_cpu():
    assert hardware.cpu_model("processor : 0\nmodel name\t: AMD EPYC 9R14\nflags : avx2\n") == "AMD EPYC 9R14"
    assert hardware.cpu_model(OLD_CPU) == "cpu"


def _onednn_in_fresh_process(setting: str | None) -> tuple[str, str]:
    """``(TF_ENABLE_ONEDNN_OPTS after importing medclf, hardware.onednn_enabled())`` in a new Python process."""
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if setting is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = setting
    code = ("import os, medclf; from medclf.accel import hardware; import tensorflow; "
            "print(os.environ['TF_ENABLE_ONEDNN_OPTS'], hardware.onednn_enabled())")
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
    assert hardware.device_id().startswith(hardware.cpu_model()) and hardware.device_id().endswith(("|onednn", "|eigen"))


def test_precision_policy_modes(monkeypatch):
    monkeypatch.setattr(hardware, "gpu_has_bf16", lambda: False)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda cpuinfo=None: False)
    assert precision.precision_policy("auto") == "float32"
    assert precision.precision_policy("on") == "mixed_bfloat16"
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda cpuinfo=None: True)
    assert precision.precision_policy("auto") == "mixed_bfloat16"
    assert precision.precision_policy("off") == "float32"
    with pytest.raises(ValueError, match="auto, on or off"):
        precision.precision_policy("maybe")


def test_auto_precision_follows_the_probe_only_where_bf16_exists(monkeypatch):
    calls = []

    def probe(policy):
        calls.append(policy)
        return {"mixed_bfloat16": 2.0, "float32": 1.0}[policy]

    monkeypatch.setattr(hardware, "gpu_has_bf16", lambda: False)
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda cpuinfo=None: True)
    assert precision.precision_policy("auto", probe) == "float32"  # measured slower in bf16: not used
    assert precision.precision_policy("auto", lambda policy: {"mixed_bfloat16": 1.0, "float32": 3.0}[policy]) \
        == "mixed_bfloat16"
    assert precision.precision_policy("on", probe) == "mixed_bfloat16" and precision.precision_policy("off", probe) == "float32"
    monkeypatch.setattr(hardware, "cpu_has_bf16", lambda cpuinfo=None: False)
    calls.clear()
    assert precision.precision_policy("auto", probe) == "float32" and calls == []  # no bf16 hardware: no probe


def test_cached_probe_measures_once_per_key_and_policy(tmp_path):
    calls = []

    def probe(policy):
        calls.append(policy)
        return 0.5

    store = tmp_path / "probe.json"
    first = precision.cached_probe(probe, store, "model|32x32x1|cpu")
    assert first("float32") == 0.5 and first("float32") == 0.5 and calls == ["float32"]
    again = precision.cached_probe(probe, store, "model|32x32x1|cpu")  # a later run reads the file
    assert again("float32") == 0.5 and calls == ["float32"]
    assert again("mixed_bfloat16") == 0.5 and calls == ["float32", "mixed_bfloat16"]


def test_step_seconds_times_a_training_step_and_restores_the_policy():
    import keras

    def build():
        inputs = keras.Input((8, 8, 1))
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs)))

    keras.mixed_precision.set_global_policy("float32")
    seconds = precision.step_seconds(build, (8, 8, 1), "mixed_bfloat16", batch_size=4)
    assert 0.0 < seconds < 10.0
    assert precision.current_policy() == "float32"




# --------------------------------------------------------------------------- fused kernels, for training only


def _tiny_cnn(seed: int):
    """Two conv blocks with batch norm before and after the activation, dropout, a dense head: every layer
    kind the fused swap touches or must leave alone."""
    from medclf.models.blocks import ConvBlock
    from medclf.models.builders import build_cnn
    from medclf.training.fit import seed_everything

    seed_everything(seed)
    return build_cnn((12, 12, 1), [ConvBlock(4, batch_norm="before_activation"),
                                   ConvBlock(6, batch_norm="after_activation", dropout=0.1,
                                             dropout_at="after_activation")],
                     dense=(4,), dense_dropout=0.1, name="tiny")


def test_training_copy_swaps_trainable_batch_norms_and_shares_every_other_layer():
    import keras

    from medclf.accel import swap
    from medclf.accel.fused_adam import FusedAdam
    from medclf.accel.fused_bn import FusedBatchNormalization

    model = _tiny_cnn(0)
    copy = swap.training_copy(model)
    fused = [layer for layer in copy.layers if isinstance(layer, FusedBatchNormalization)]
    assert [layer.name for layer in fused] == ["bn1", "bn2"]
    assert all(copy.get_layer(layer.name) is layer for layer in model.layers
               if not isinstance(layer, (keras.layers.BatchNormalization, keras.layers.InputLayer)))
    assert all(type(layer) is keras.layers.BatchNormalization for layer in model.layers if "bn" in layer.name)
    model.get_layer("bn1").trainable = False  # frozen batch norms run in inference mode: nothing to fuse
    model.get_layer("bn2").trainable = False
    assert swap.training_copy(model) is model
    adam = keras.optimizers.Adam(learning_rate=3e-3, beta_2=0.99)
    faster = swap.faster_optimizer(adam)
    assert type(faster) is FusedAdam and faster.get_config() == {**adam.get_config(), "name": faster.name}
    sgd = keras.optimizers.SGD(1e-2)
    assert swap.faster_optimizer(sgd) is sgd


@pytest.mark.parametrize("accel", [False, True])
def test_fit_spec_leaves_the_model_plain_keras(accel):
    from medclf.training import fit

    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (16, 12, 12, 1), dtype=np.uint8), np.arange(16) % 2
    spec = __import__("types").SimpleNamespace(optimizer="adam", callbacks=(), batch_size=8)
    params = {"class_weight": False, "seed": 0, "monitor": "val_auc", "patience": 1, "accel": accel}
    model = _tiny_cnn(0)
    fit.fit_spec(model, spec, (x, y), (x, y), params=params, learning_rate=1e-2, epochs=1)
    assert all(type(layer).__module__.startswith("keras.") for layer in model.layers)
    assert int(model.get_layer("bn1").moving_mean.numpy().any())  # the trained statistics reached the plain model


@pytest.mark.parametrize("optimizer, learning_rate, tolerance", [("sgd", 0.05, 1e-5), ("adam", 1e-3, 1e-3)])
def test_accel_off_and_on_train_the_same_model_to_the_same_predictions(optimizer, learning_rate, tolerance):
    """float32 both sides, fit_spec with accel off (plain Keras) and on (fused Adam + fused batch norm).

    With SGD the two agree to float rounding. Adam divides each step by the gradient's running size, so
    rounding-level differences in near-zero gradients (batch norm's backward pass reorders its sums) grow
    to ~1e-4 here: still far below how much training moved the predictions."""
    import keras

    from medclf.training import fit

    keras.mixed_precision.set_global_policy(precision.set_precision("auto", accel=False))
    assert precision.current_policy() == "float32"
    rng = np.random.default_rng(1)
    x, y = rng.integers(0, 256, (48, 12, 12, 1), dtype=np.uint8), np.arange(48) % 2
    spec = __import__("types").SimpleNamespace(optimizer=optimizer, callbacks=(), batch_size=16)
    predictions = {}
    for accel in (False, True):
        params = {"class_weight": True, "seed": 0, "monitor": "val_auc", "patience": 1, "accel": accel}
        model = _tiny_cnn(3)
        initial = model.predict(x.astype("float32"), verbose=0)[:, 0]
        fit.fit_spec(model, spec, (x, y), (x[:16], y[:16]), params=params, learning_rate=learning_rate, epochs=3)
        predictions[accel] = model.predict(x.astype("float32"), verbose=0)[:, 0]
    difference = np.abs(predictions[True] - predictions[False]).max()
    moved = np.abs(predictions[False] - initial).max()
    assert difference < tolerance and difference < moved / 20, (difference, moved)


def test_without_accel_auto_precision_is_float32_without_asking_the_hardware(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("hardware asked")

    monkeypatch.setattr(hardware, "gpu_has_bf16", refuse)
    monkeypatch.setattr(hardware, "cpu_has_bf16", refuse)
    assert precision.precision_policy("auto", refuse, accel=False) == "float32"
    assert precision.precision_policy("on", refuse, accel=False) == "mixed_bfloat16"
    assert precision.precision_policy("off", refuse, accel=False) == "float32"


def test_feature_cache_keys_say_whether_the_features_were_folded():
    from medclf.training.transfer_fit import feature_key

    common = dict(backbone="mobilenet_v2", weights="none", image_shape=(32, 32, 3), gray_mode="repeat", cut="x",
                  manifest_hash="h", precision="float32", seed=0)
    assert feature_key(**common) == feature_key(**common, folded=True) != feature_key(**common, folded=False)
