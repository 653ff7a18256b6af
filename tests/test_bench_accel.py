"""benchmarks/bench_accel.py: reading two runs' records and notebook times (the runs themselves are the lead's)."""

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
