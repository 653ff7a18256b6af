"""benchmarks/bench_accel.py: reading the two declared policies' runs (the runs are the lead's) and the step probe."""

from __future__ import annotations

import json
import sys

from medclf.config import paths

sys.path.insert(0, str(paths.PROJECT_ROOT / "benchmarks"))

import bench_accel  # noqa: E402


def write_run(root, auc: float, accuracy: float, wall: float):
    folder = root / "chest_xray" / "quick"
    (folder / "results").mkdir(parents=True)
    test = {"at_threshold": {"accuracy": accuracy, "roc_auc": auc, "n": 624, "confusion_matrix": [[1, 2], [3, 4]],
                             "per_class": {"NORMAL": {"recall": 0.5, "support": 234}}}}
    (folder / "results" / "cnn.json").write_text(json.dumps({"model_id": "cnn", "evaluation": {"test": test}}))
    (folder / "run.json").write_text(json.dumps({"notebooks": {"02_baselines": {"status": "ok", "wall_s": wall}}}))
    return folder


def test_largest_test_metric_difference_skips_counts(tmp_path):
    on = write_run(tmp_path / "on", auc=0.9, accuracy=0.80, wall=10.0)
    off = write_run(tmp_path / "off", auc=0.9001, accuracy=0.81, wall=12.5)
    a, b = bench_accel.read_test_metrics(on), bench_accel.read_test_metrics(off)
    assert set(a["cnn"]) == {"at_threshold.accuracy", "at_threshold.roc_auc", "at_threshold.per_class.NORMAL.recall"}
    value, model, metric = bench_accel.largest_difference(a, b)
    assert (model, metric) == ("cnn", "at_threshold.accuracy") and abs(value - 0.01) < 1e-12
    assert bench_accel.largest_difference(a, {}) is None
    assert bench_accel.notebook_times(off) == {"02_baselines": 12.5}
    assert bench_accel.run_folder(tmp_path / "on", "chest_xray", "quick") == on


def test_runs_compare_the_two_declared_policies(tmp_path, monkeypatch):
    """Each run declares its policy on the command line; no run toggles ``accel`` (it no longer sets precision)."""
    import argparse

    commands = []
    monkeypatch.setattr(bench_accel.subprocess, "run", lambda command, **kwargs: commands.append(command))
    args = argparse.Namespace(dataset="chest_xray", profile="quick", data_root=None, only=["baselines"], param=[])
    for policy in bench_accel.POLICIES:
        bench_accel.run(policy, tmp_path, args)
    assert [c[c.index("-p") + 1] for c in commands] == ["mixed_precision=float32", "mixed_precision=mixed_bfloat16"]
    assert not any(part.startswith("accel=") for command in commands for part in command)


def test_cached_probe_measures_once_per_key_and_policy(tmp_path):
    calls = []

    def probe(policy):
        calls.append(policy)
        return 0.5

    store = tmp_path / "probe.json"
    first = bench_accel.cached_probe(probe, store, "model|32x32x1|cpu")
    assert first("float32") == 0.5 and first("float32") == 0.5 and calls == ["float32"]
    again = bench_accel.cached_probe(probe, store, "model|32x32x1|cpu")  # a later run reads the file
    assert again("float32") == 0.5 and calls == ["float32"]
    assert again("mixed_bfloat16") == 0.5 and calls == ["float32", "mixed_bfloat16"]


def test_step_seconds_times_a_training_step_and_restores_the_policy():
    import keras

    def build():
        inputs = keras.Input((8, 8, 1))
        return keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(keras.layers.Flatten()(inputs)))

    keras.mixed_precision.set_global_policy("float32")
    seconds = bench_accel.step_seconds(build, (8, 8, 1), "mixed_bfloat16", batch_size=4)
    assert 0.0 < seconds < 10.0
    assert keras.mixed_precision.global_policy().name == "float32"


def test_probe_models_times_each_model_under_both_policies(tmp_path, monkeypatch):
    monkeypatch.setattr(bench_accel, "step_seconds", lambda build, shape, policy: {"float32": 2.0}.get(policy, 1.0))
    timings = bench_accel.probe_models(["cnn_deeper"], 16, tmp_path / "probe.json")
    assert timings == {"cnn_deeper": {"float32": 2.0, "mixed_bfloat16": 1.0}}
    assert len(json.loads((tmp_path / "probe.json").read_text())) == 2
