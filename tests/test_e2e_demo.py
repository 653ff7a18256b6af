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


def test_demo_profile_end_to_end(demo_run):
    first, overrides, out = demo_run
    assert first.returncode == 0, first.stdout + first.stderr
    index = (out / "reports" / "index.html").read_text()
    assert "SYNTHETIC DATA" in index and "01_eda.html" in index
    assert (out / "reports" / "01_eda.html").is_file() and (out / "notebooks" / "01_eda.ipynb").is_file()
    figures = sorted((out / "figures" / "01_eda").glob("*.png"))
    assert len(figures) >= 5
    counts = (out / "tables" / "eda_counts.md").read_text()
    assert "synthetic" in counts.lower()
    baselines = (out / "tables" / "baselines.md").read_text()
    assert "SYNTHETIC DATA" in baselines and "cnn_ours_chest" in baselines
    assert not (out / "tables" / "study_reproduction.md").exists()  # no study measured generated images
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


def test_demo_reports_show_no_stderr(demo_run):
    """Nothing in the demo's notebooks writes to stderr (warnings, tracebacks, text progress bars): no rendered
    report has a stderr block and no executed notebook a stderr stream."""
    import nbformat

    done, _, out = demo_run
    assert done.returncode == 0, done.stdout + done.stderr
    pages = sorted((out / "reports").glob("0*.html"))
    assert len(pages) == 6
    for page in pages:
        text = page.read_text()
        assert "<div" in text and 'data-mime-type="application/vnd.jupyter.stderr"' not in text, \
            f"{page.name} shows a stderr block"
    for path in sorted((out / "notebooks").glob("0*.ipynb")):
        streams = [output.get("text", "") for cell in nbformat.read(str(path), as_version=4).cells
                   for output in cell.get("outputs", []) if output.get("name") == "stderr"]
        assert not streams, f"{path.name} wrote to stderr: {streams[0][:500]}"


def _reuse_by_model(out) -> dict[str, bool]:
    records = [json.loads(path.read_text()) for path in sorted((out / "results").glob("*.json"))]
    return {record["model_id"]: record["training"]["model_cache"]["reused"] for record in records}


def test_a_figure_only_rerun_retrains_nothing_and_force_retrains(demo_run, tmp_path):
    """A copy of the demo's outputs rerun with only a figure setting changed: the notebooks that train rerun
    (their params changed) and every model comes from the model cache; ``--force`` retrains the models it
    reruns (two of the baselines, to keep the test short)."""
    import shutil

    first, overrides, out = demo_run
    assert first.returncode == 0, first.stdout + first.stderr
    assert not all(_reuse_by_model(out).values()), "the first demo run trained its models"
    copy_root = tmp_path / "out"
    shutil.copytree(out.parents[1], copy_root)
    moved = [*overrides, "-p", f"output_dir={copy_root}"]
    copy = copy_root / "synthetic" / "demo"
    training = ["--only", "baselines", "--only", "transfer", "--only", "augmentation"]
    figure_only = run_all(*moved, "-p", "eda_samples_per_class=3", *training)
    assert figure_only.returncode == 0, figure_only.stdout[-3000:] + figure_only.stderr[-3000:]
    statuses = {name: entry["status"] for name, entry in json.loads((copy / "run.json").read_text())["notebooks"].items()}
    assert {statuses[name] for name in ("baselines", "transfer", "augmentation")} == {"ok"}, statuses
    reused = _reuse_by_model(copy)
    assert reused and all(reused.values()), f"retrained after a figure-only change: {[m for m, r in reused.items() if not r]}"

    forced = run_all(*moved, "-p", "eda_samples_per_class=3", "-p", "baselines=[svm_pixels, ann_deep]",
                     "--force", "--only", "baselines")
    assert forced.returncode == 0, forced.stdout[-3000:] + forced.stderr[-3000:]
    names = json.loads((copy / "run.json").read_text())["params"]["baselines"]
    after = _reuse_by_model(copy)
    assert names and not any(after[name] for name in names), f"--force reused {[n for n in names if after[n]]}"
