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
