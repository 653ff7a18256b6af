"""End to end: ``python run_all.py`` on the demo profile, as a user runs it."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from medclf.config import paths as config

pytestmark = pytest.mark.slow


def run_all(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(config.PROJECT_ROOT / "run_all.py"), *args],
                          capture_output=True, text=True, timeout=900, cwd=config.PROJECT_ROOT)


def test_demo_profile_end_to_end(tmp_path):
    overrides = ["-p", f"output_dir={tmp_path / 'out'}", "-p", f"data_root={tmp_path / 'synthetic'}",
                 "-p", f"cache_dir={tmp_path / 'cache'}"]
    first = run_all(*overrides)
    assert first.returncode == 0, first.stdout + first.stderr
    out = tmp_path / "out" / "synthetic" / "demo"
    index = (out / "reports" / "index.html").read_text()
    assert "SYNTHETIC DATA" in index and "01_eda.html" in index
    assert (out / "reports" / "01_eda.html").is_file() and (out / "notebooks" / "01_eda.ipynb").is_file()
    figures = sorted((out / "figures" / "01_eda").glob("*.png"))
    assert len(figures) >= 5
    counts = (out / "tables" / "eda_counts.md").read_text()
    assert "synthetic" in counts.lower()
    baselines = (out / "tables" / "baselines.md").read_text()
    assert "SYNTHETIC DATA" in baselines and "cnn_ours_chest" in baselines
    assert (out / "tables" / "study_reproduction.md").is_file()
    assert len(list((out / "results").glob("*.json"))) == len(list((out / "predictions").glob("*.csv"))) >= 4
    run_info = json.loads((out / "run.json").read_text())
    assert {name: entry["status"] for name, entry in run_info["notebooks"].items()} == {
        name: "ok" for name in ("eda", "baselines", "transfer", "augmentation", "explain", "compare")}
    for table in ("transfer", "augmentation", "headline", "mcnemar_vs_best"):
        assert (out / "tables" / f"{table}.md").is_file(), table
    assert "headline" in index.lower()
    assert run_info["params"]["dataset"] == "synthetic" and run_info["params_hash"]

    again = run_all(*overrides)
    assert again.returncode == 0 and "up to date" in again.stdout
