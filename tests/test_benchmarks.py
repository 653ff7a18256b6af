"""Smoke tests of the benchmark scripts on tiny synthetic data (chest X-ray layout): both sides run."""

from __future__ import annotations

import os
import sys

import pytest

from conftest import synthetic_params
from medclf.config import paths as config
from medclf.data import load_dataset

sys.path.insert(0, str(config.PROJECT_ROOT / "benchmarks"))


@pytest.fixture(scope="module")
def synthetic_root(tmp_path_factory):
    params = synthetic_params(tmp_path_factory.mktemp("bench"))
    load_dataset(params)  # generates the files: train|val|test/NORMAL|PNEUMONIA
    return params


@pytest.mark.parametrize("side", ["a", "b"])
def test_transfer_cache_benchmark_runs_both_sides(synthetic_root, side):
    import bench_transfer_cache

    params = {**synthetic_root, "weights": "none", "color_mode": "grayscale", "image_size": 32}
    (wall, cpu, _), counts = bench_transfer_cache.variant(side, params, 20, 1, 32, "float32")
    assert wall > 0 and cpu > 0 and counts["train"] == 20 and counts["val"] > 0


def test_input_pipeline_benchmark_runs_both_sides(synthetic_root, monkeypatch):
    import bench_input_pipeline

    from medclf.config import params as params_module

    load_params = params_module.load_params
    monkeypatch.setattr(params_module, "load_params", lambda *args: {  # keep its caches out of outputs/
        **load_params(*args), "cache_dir": synthetic_root["cache_dir"]})
    root = synthetic_root["data_root"]
    theirs, theirs_cpu, _, onednn_a = bench_input_pipeline.studies_way(root, 16, 1)
    ours, ours_cpu, _, onednn_b, policy = bench_input_pipeline.workspace_way(root, 16, 1)
    assert onednn_a == onednn_b  # in one process TensorFlow starts once
    assert len(theirs) == len(ours) == 1 and min(theirs + ours + theirs_cpu + ours_cpu) > 0 and policy


@pytest.mark.slow
def test_gpu_study_script_runs_the_demo_and_prints_one_line_per_notebook(demo_run, tmp_path):
    """``benchmarks/gpu_study.sh --profile demo`` on this CPU, as a user runs it, with ``--out`` the session's
    demo run (:func:`conftest.demo_run` lays it out as the script does): the script must hand the runner
    exactly the demo's data set, profile and folders, or a notebook would rerun instead of being up to date.
    It works on a copy put where that run was (its settings name the folder); the run is put back after. One
    summary line per notebook and a total line naming the device."""
    import shutil
    import subprocess

    first, _, out = demo_run
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]
    root = out.parents[1]
    kept = root.with_name(root.name + ".kept")
    root.rename(kept)
    try:
        shutil.copytree(kept, root, symlinks=True)
        done = subprocess.run(["bash", str(config.PROJECT_ROOT / "benchmarks" / "gpu_study.sh"), "--profile", "demo",
                               "--no-install", "--out", str(root)], capture_output=True, text=True, timeout=600,
                              env={**os.environ, "PYTHON": sys.executable}, cwd=tmp_path)
    finally:
        shutil.rmtree(root, ignore_errors=True)
        kept.rename(root)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    summary = done.stdout.split("== summary\n", 1)[1].splitlines()
    notebooks = [line for line in summary if line.startswith("synthetic/demo") and "TOTAL" not in line]
    assert [line.split()[1] for line in notebooks] == ["01_eda", "02_baselines", "03_transfer", "04_augmentation",
                                                       "05_explain", "06_compare"]
    assert all(line.split()[2:5] == ["up", "to", "date"] for line in notebooks), "\n".join(notebooks)
    total = next(line for line in summary if "TOTAL" in line)
    assert "models trained" in total and ("CPU" in total or "GPU" in total.upper())
    assert "GPUs:" in done.stdout  # the device line


def test_gpu_study_script_rejects_an_unknown_data_set(tmp_path):
    import subprocess

    done = subprocess.run(["bash", str(config.PROJECT_ROOT / "benchmarks" / "gpu_study.sh"), "--no-install",
                           "--datasets", "chestxray", "--out", str(tmp_path), "--", "--list"],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHON": sys.executable})
    assert done.returncode == 2 and "unknown data set chestxray" in done.stderr
