"""The optional CPU speed-ups (medclf.accel): hardware detection and the precision choice behind ``accel``."""

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
    # faster, but within the margin timing noise spans: float32, so a model's precision does not flip between runs
    for bf16_seconds, expected in ((0.89, "float32"), (0.86, "float32"), (0.85, "mixed_bfloat16"), (0.6, "mixed_bfloat16")):
        times = {"mixed_bfloat16": bf16_seconds, "float32": 1.0}
        assert precision.precision_policy("auto", times.__getitem__) == expected, bf16_seconds
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


def test_without_accel_auto_precision_is_float32_without_asking_the_hardware(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("hardware asked")

    monkeypatch.setattr(hardware, "gpu_has_bf16", refuse)
    monkeypatch.setattr(hardware, "cpu_has_bf16", refuse)
    assert precision.precision_policy("auto", refuse, accel=False) == "float32"
    assert precision.precision_policy("on", refuse, accel=False) == "mixed_bfloat16"
    assert precision.precision_policy("off", refuse, accel=False) == "float32"
