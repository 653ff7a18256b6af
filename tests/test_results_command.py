"""``python -m medclf results``: the numbers of finished runs as Markdown, in a fresh process as a user runs it."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from medclf.cli.results import BEGIN, END
from medclf.config import paths as config


def results(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medclf", "results", *args], capture_output=True, text=True,
                          timeout=300, cwd=config.PROJECT_ROOT)


@pytest.mark.slow
def test_the_demo_run_becomes_one_section_with_its_headline(demo_run, tmp_path):
    done, _, out = demo_run
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    root = out.parents[1]
    assert "No finished real-data run" in results(str(root)).stdout  # synthetic runs only on request
    shown = results(str(root), "--include-synthetic")
    assert shown.returncode == 0, shown.stderr
    headline = pd.read_csv(out / "tables" / "headline.csv")
    text = shown.stdout
    assert "### synthetic, demo profile" in text and "commit " in text and "CPU " in text
    table = [line for line in text.splitlines() if line.startswith("| ") and not line.startswith("| family")]
    assert len(table) == len(headline)
    for model_id in headline["model_id"]:
        assert model_id in text

    page = tmp_path / "results.md"
    page.write_text(f"# Results\n\nwritten by hand\n\n{BEGIN}\nstale generated text\n{END}\n\nafter\n")
    updated = results(str(root), "--include-synthetic", "--update", str(page))
    assert updated.returncode == 0, updated.stderr
    new = page.read_text()
    assert "written by hand" in new and "after" in new and "stale generated text" not in new and "### synthetic, demo profile" in new


def test_bad_folders_and_pages_get_one_line_and_exit_2(tmp_path):
    missing = results(str(tmp_path / "nowhere"))
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1 and "does not exist" in missing.stderr
    page = tmp_path / "page.md"
    page.write_text("no block here\n")
    unmarked = results(str(tmp_path), "--update", str(page))
    assert unmarked.returncode == 2 and unmarked.stderr.count("\n") == 1 and "no generated block" in unmarked.stderr
    assert page.read_text() == "no block here\n"
