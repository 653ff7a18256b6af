"""medclf.accel: hardware detection, and the dtype policy a model trains in: declared, never measured."""

from __future__ import annotations

import pytest

from medclf.accel import hardware, precision
from medclf.config.params import ParamError, USER_SOURCE, declared_in, load_params, parse_override

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


@pytest.mark.slow  # fresh TensorFlow processes, 10-20 s; --all runs it
@pytest.mark.skipif(__import__("platform").machine() not in ("x86_64", "AMD64"), reason="oneDNN default is x86's")
def test_importing_medclf_turns_onednn_on_unless_the_user_said_otherwise():
    assert _onednn_in_fresh_process(None) == ("1", "True")
    assert _onednn_in_fresh_process("0") == ("0", "False")


def test_device_id_names_the_cpu_kernels():
    import tensorflow as tf

    if tf.config.list_physical_devices("GPU"):
        pytest.skip("on a GPU the device id is the GPU's name")
    assert hardware.device_id().startswith(hardware.cpu_model()) and hardware.device_id().endswith(("|onednn", "|eigen"))


def test_precision_is_declared_float32_by_default_and_names_where_it_was_declared():
    params = load_params()
    assert precision.declared_precision("cnn_deeper", params) == precision.Declared("float32", "default")
    params = load_params(overrides={"mixed_precision": "mixed_bfloat16"})
    assert precision.declared_precision("cnn_deeper", params) == precision.Declared("mixed_bfloat16", USER_SOURCE)
    params = load_params(overrides={"model_overrides": {"cnn_deeper": {"mixed_precision": "mixed_bfloat16"}}})
    assert precision.declared_precision("cnn_deeper", params) == precision.Declared(
        "mixed_bfloat16", f"model_overrides ({USER_SOURCE})")
    assert precision.declared_precision("ann_deep", params) == precision.Declared("float32", "default")


def test_declared_in_names_the_last_file_layer_that_set_the_value(tmp_path):
    (tmp_path / "profiles").mkdir(parents=True)
    (tmp_path / "datasets").mkdir()
    (tmp_path / "default.yaml").write_text("mixed_precision: float32\nseed: 1\nmodel_overrides: {}\n")
    (tmp_path / "datasets" / "synthetic.yaml").write_text("seed: 2\n")
    (tmp_path / "profiles" / "quick.yaml").write_text(
        "mixed_precision: mixed_bfloat16\nper_dataset:\n  synthetic:\n"
        "    model_overrides: {cnn_deeper: {mixed_precision: mixed_bfloat16}}\n")
    params = {"dataset": "synthetic", "profile": "quick", "mixed_precision": "mixed_bfloat16", "seed": 2,
              "model_overrides": {"cnn_deeper": {"mixed_precision": "mixed_bfloat16"}}}
    assert declared_in("mixed_precision", params, tmp_path) == "profile quick"
    assert declared_in("seed", params, tmp_path) == "dataset synthetic"
    assert declared_in("model_overrides", params, tmp_path) == "profile quick per_dataset.synthetic"
    assert declared_in("mixed_precision", {**params, "mixed_precision": "float32"}, tmp_path) == USER_SOURCE
    assert declared_in("mixed_precision", {**params, "profile": "demo"}, tmp_path) == USER_SOURCE  # no such file


@pytest.mark.parametrize("override, fix", [
    ({"mixed_precision": "auto"}, "float32 (the default) or mixed_bfloat16"),
    ({"mixed_precision": "on"}, "write mixed_bfloat16"),
    (dict([parse_override("mixed_precision=off")]), "write float32"),
    ({"mixed_precision": False}, "write float32"),  # what YAML makes of `mixed_precision: off`
    ({"model_overrides": {"cnn_deeper": {"mixed_precision": "auto"}}}, "float32 (the default) or mixed_bfloat16"),
    ({"mixed_precision": "bfloat16"}, "must be one of float32, mixed_bfloat16, mixed_float16"),
])
def test_retired_or_unknown_precisions_are_refused_in_one_line_saying_what_to_write(override, fix):
    with pytest.raises(ParamError) as raised:
        load_params(overrides=override)
    assert fix in str(raised.value) and "\n" not in str(raised.value)


def test_mixed_float16_is_refused_without_a_gpu_and_set_with_one(monkeypatch):
    import keras

    monkeypatch.setattr(hardware, "has_gpu", lambda: False)
    with pytest.raises(ValueError, match="needs a GPU and none is visible: declare float32 or mixed_bfloat16") \
            as raised:
        precision.set_precision("mixed_float16")
    assert "\n" not in str(raised.value)
    assert precision.set_precision("mixed_bfloat16") == precision.current_policy() == "mixed_bfloat16"
    monkeypatch.setattr(hardware, "has_gpu", lambda: True)
    assert precision.set_precision("mixed_float16") == keras.mixed_precision.global_policy().name


def test_no_precision_decision_reads_a_clock_or_the_hardware_speed(monkeypatch):
    """Declared on every machine alike: with every clock and the bf16 detection refusing, each model of
    each profile still gets its policy, the one its settings name."""
    import time

    import keras  # noqa: F401  (imported before the clocks go: importing TensorFlow reads them)

    def refuse(*args, **kwargs):
        raise AssertionError("a precision decision read a clock or asked how fast the hardware is")

    for clock in ("perf_counter", "monotonic", "time", "process_time", "perf_counter_ns", "monotonic_ns"):
        monkeypatch.setattr(time, clock, refuse)
    monkeypatch.setattr(hardware, "cpu_has_bf16", refuse)
    monkeypatch.setattr(hardware, "cpu_bf16_flags", refuse)
    for dataset, profile in (("synthetic", "demo"), ("chest_xray", "quick"), ("chest_xray", "full"),
                             ("malaria", "quick"), ("pneumoniamnist", "full")):
        params = load_params(dataset, profile)
        for name in {*params["baselines"], *params["transfer_models"], *params["augmentation_models"]}:
            declared = precision.declared_precision(name, params)
            own = (params["model_overrides"].get(name) or {}).get("mixed_precision")
            assert declared.policy == (own or params["mixed_precision"]), (dataset, profile, name)
            if declared.policy != "mixed_float16":
                assert precision.set_precision(declared.policy) == precision.current_policy() == declared.policy


_TRAIN_IN_FRESH_PROCESS = """
import hashlib, json, random, sys, time
from pathlib import Path

# a clock that ticks by random amounts (seeded per process): any timing read into a decision follows it
noise, now = random.Random(int(sys.argv[1])), [1000.0]
def noisy():
    now[0] += noise.uniform(1e-6, 1.0)
    return now[0]
time.perf_counter = time.monotonic = noisy

root, cache = Path(sys.argv[2]), Path(sys.argv[3])
cache.mkdir(parents=True)
(cache / "precision_probe.json").write_text(json.dumps({"anything|mixed_bfloat16": float(sys.argv[1]),
                                                        "anything|float32": 1.0}))
from medclf.config.params import load_params
from medclf.training import experiment

params = load_params(overrides={"data_root": str(root / "syn"), "cache_dir": str(cache),
                                "output_dir": str(cache / "out"), "synthetic_images_per_class": 40,
                                "synthetic_image_size": 32, "max_epochs": 1, "max_image_size": 32,
                                "bootstrap_replicates": 5, "model_cache": False, "save_models": False})
run = experiment.run_model("cnn_deeper", params)
weights = hashlib.sha256(b"".join(w.tobytes() for w in run.model.get_weights())).hexdigest()
print(json.dumps({"policy": run.record["training"]["mixed_precision"],
                  "declared_in": run.record["training"].get("mixed_precision_declared_in"), "weights": weights}))
"""


@pytest.mark.slow  # fresh TensorFlow processes, 10-20 s; --all runs it
def test_two_fresh_processes_with_different_clocks_and_probe_files_train_identical_weights(tmp_path):
    """The acceptance check of declared precision: what a clock or a left-over probe file says changes
    nothing; the same settings train the same weights (SHA-256 of every weight array)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = []
    for seed in (1, 2):
        done = subprocess.run([sys.executable, "-c", _TRAIN_IN_FRESH_PROCESS, str(seed), str(tmp_path),
                               str(tmp_path / f"clone{seed}")], env=env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-2000:]
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    assert results[0] == results[1]
    assert results[0]["policy"] == "float32" and results[0]["declared_in"] == "default"


def test_a_declared_bf16_is_applied_and_recorded_with_where_it_was_declared(tmp_path):
    from conftest import synthetic_params
    from medclf.training import experiment

    params = synthetic_params(tmp_path, model_cache=False, save_models=False,
                              model_overrides={"cnn_deeper": {"mixed_precision": "mixed_bfloat16"}})
    run = experiment.run_model("cnn_deeper", params)
    training = run.record["training"]
    assert training["mixed_precision"] == "mixed_bfloat16"
    assert training["mixed_precision_declared_in"] == f"model_overrides ({USER_SOURCE})"
    # the convolutions compute in bf16 (the last activation stays float32, as Keras' mixed policies keep outputs)
    assert [layer.compute_dtype for layer in run.model.layers if "conv" in layer.name] == ["bfloat16"] * 3
