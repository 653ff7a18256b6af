"""The default ``python -m pytest`` leaves the long (``slow``) tests out and says so; ``--all`` runs them too."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = '''
import pytest


def test_quick():
    pass


@pytest.mark.slow
def test_long():
    pass
'''


@pytest.fixture(scope="module")
def suite(tmp_path_factory) -> Path:
    """A folder with this suite's conftest, its markers and one quick and one slow test."""
    root = tmp_path_factory.mktemp("suite")
    shutil.copy(Path(__file__).with_name("conftest.py"), root / "conftest.py")
    (root / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: long\n    realdata: real data\n")
    (root / "test_two.py").write_text(TESTS)
    return root


def pytest_in(root: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=root,
                          capture_output=True, text=True, timeout=300)


def test_the_default_run_leaves_slow_tests_out_and_says_how_to_run_them(suite):
    done = pytest_in(suite)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 1 deselected" in done.stdout
    assert "1 long end-to-end tests (marked slow) were left out: python -m pytest --all" in done.stdout


def test_all_runs_every_test_and_a_marker_or_node_id_chooses_itself(suite):
    done = pytest_in(suite, "--all")
    assert done.returncode == 0 and "2 passed" in done.stdout and "deselected" not in done.stdout, done.stdout
    chosen = pytest_in(suite, "test_two.py::test_long")
    assert chosen.returncode == 0 and "1 passed" in chosen.stdout and "left out" not in chosen.stdout, chosen.stdout
    marked = pytest_in(suite, "-m", "slow")
    assert marked.returncode == 0 and "1 passed, 1 deselected" in marked.stdout, marked.stdout
