"""Profiles never mix: each profile's runs write under ``<output_dir>/<dataset>/<profile>/`` and its
tables are built from its own records only, even when two profiles share one output root."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from medclf.analysis import compare
from medclf.config import paths
from medclf.config.params import load_params
from medclf.reporting import artifacts
from test_compare import make_model  # realistic records: evaluate_model on generated predictions

MODELS = {"quick": ("svm_quick", "cnn_quick"), "full": ("svm_full", "cnn_full", "ann_full")}


def _params(tmp_path, profile: str) -> dict:
    return load_params("synthetic", profile, overrides={"output_dir": str(tmp_path / "out"),
                                                         "data_root": str(tmp_path / "data"),
                                                         "cache_dir": str(tmp_path / "cache")})


def _write_records(tmp_path) -> dict[str, dict]:
    params = {profile: _params(tmp_path, profile) for profile in MODELS}
    for profile, ids in MODELS.items():
        for seed, model_id in enumerate(ids):
            make_model(paths.run_dir(params[profile]), model_id, model_id.split("_")[0], 0.4 + 0.1 * seed, 0.5, seed)
    return params


def test_the_profile_is_part_of_every_output_path(tmp_path):
    quick, full = _params(tmp_path, "quick"), _params(tmp_path, "full")
    assert paths.run_dir(quick) == tmp_path / "out" / "synthetic" / "quick"
    assert paths.run_dir(full) == tmp_path / "out" / "synthetic" / "full"
    assert paths.tables_dir(quick) != paths.tables_dir(full)
    assert paths.figures_dir(quick, "06_compare") != paths.figures_dir(full, "06_compare")
    assert paths.RunPaths.of(quick).results != paths.RunPaths.of(full).results


def test_each_profiles_tables_hold_only_its_own_records(tmp_path):
    params = _write_records(tmp_path)
    for profile, ids in MODELS.items():
        comparison = compare.load_comparison(paths.run_dir(params[profile]))
        assert sorted(r["model_id"] for r in comparison.records) == sorted(ids)
        csv, _ = artifacts.save_table(comparison.all_models, params[profile], "all_models")
        assert csv.is_relative_to(paths.run_dir(params[profile]))
        assert set(pd.read_csv(csv)["model_id"]) == set(ids)


@pytest.mark.slow
def test_the_compare_notebook_run_under_two_profiles_keeps_them_apart(tmp_path):
    """The real 06_compare notebook, run by run_all.py for two profiles into one output root."""
    params = _write_records(tmp_path)
    for profile, ids in MODELS.items():
        run = subprocess.run(
            [sys.executable, str(paths.PROJECT_ROOT / "run_all.py"), "--only", "compare", "--profile", profile,
             "-p", f"output_dir={tmp_path / 'out'}", "-p", f"data_root={tmp_path / 'data'}",
             "-p", f"cache_dir={tmp_path / 'cache'}"],
            capture_output=True, text=True, timeout=600, cwd=paths.PROJECT_ROOT)
        assert run.returncode == 0, run.stdout + run.stderr
    for profile, ids in MODELS.items():
        tables = paths.tables_dir(params[profile])
        for name in ("all_models", "headline"):
            assert set(pd.read_csv(tables / f"{name}.csv")["model_id"]) <= set(ids), (profile, name)
        assert set(pd.read_csv(tables / "all_models.csv")["model_id"]) == set(ids)
