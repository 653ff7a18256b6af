"""Quiet by default: no TensorFlow/absl/CUDA start-up lines in the terminal or in executed notebooks.

``medclf.core.quiet`` (installed by ``import medclf``) sets ``TF_CPP_MIN_LOG_LEVEL=3`` and filters the
lines absl writes while TensorFlow's libraries load; ``MEDCLF_VERBOSE=1`` / ``run_all.py --verbose``
shows them again. The Keras ``shuffle=True … ignored`` warning is gone at its source (``fit_keras``).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from conftest import user_env
from medclf.core import quiet

#: What must never reach the user by default.
NOISE = re.compile(r"^(I0000|W0000|E0000|WARNING: All log messages)|cuInit|oneDNN custom operations"
                   r"|`shuffle=True` was passed", re.MULTILINE)

TF_SNIPPET = ("import medclf, keras, tensorflow as tf\n"
              "print('sum', float(tf.reduce_sum(tf.ones(3))))\n")


def _stderr_streams(notebook: Path) -> str:
    nb = nbformat.read(str(notebook), as_version=4)
    return "".join(out.get("text", "") for cell in nb.cells for out in cell.get("outputs", [])
                   if out.get("output_type") == "stream" and out.get("name") == "stderr")


def test_filter_drops_only_start_up_lines(capfd):
    with quiet.filtered_native_stderr():
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\n"
                    b"I0000 00:00:1796409934.539339   22977 port.cc:153] oneDNN custom operations are on.\n"
                    b"W0000 00:00:1796409934.539339   22977 x.cc:1] a warning\n"
                    b"E0000 00:00:1796409934.539339   22977 x.cc:2] a real error\n"
                    b"Traceback: something else\n")
    err = capfd.readouterr().err
    assert err == ("E0000 00:00:1796409934.539339   22977 x.cc:2] a real error\n"
                   "Traceback: something else\n")


@pytest.mark.slow  # fresh TensorFlow processes, 10-20 s; --all runs it
def test_tensorflow_import_is_quiet_unless_verbose():
    quiet_run = subprocess.run([sys.executable, "-c", TF_SNIPPET], capture_output=True, text=True,
                               timeout=300, env=user_env())
    assert quiet_run.returncode == 0, quiet_run.stderr
    assert "sum 3.0" in quiet_run.stdout
    assert not NOISE.search(quiet_run.stdout + quiet_run.stderr), quiet_run.stderr
    loud = subprocess.run([sys.executable, "-c", TF_SNIPPET + "import os; print('level', os.environ.get("
                           "'TF_CPP_MIN_LOG_LEVEL'))"], capture_output=True, text=True, timeout=300,
                          env=user_env(**{quiet.VERBOSE_ENV: "1"}))
    assert loud.returncode == 0 and "level None" in loud.stdout, loud.stderr


@pytest.mark.slow
def test_run_all_terminal_notebooks_and_reports_are_quiet(demo_run):
    """``python run_all.py`` on the demo profile, as a user runs it (:func:`conftest.user_env`: nothing set
    that quiets TensorFlow): not in the terminal, not in any executed notebook, not in any report."""
    result, _, out = demo_run
    assert result.returncode == 0, result.stdout + result.stderr
    assert not NOISE.search(result.stdout + result.stderr), result.stdout + result.stderr
    notebooks, pages = sorted((out / "notebooks").glob("0*.ipynb")), sorted((out / "reports").glob("0*.html"))
    assert len(notebooks) == len(pages) == 6
    for executed in notebooks:
        assert not NOISE.search(_stderr_streams(executed)), executed.name
    for page in pages:
        assert not NOISE.search(page.read_text()), page.name


@pytest.mark.slow
def test_runner_kernel_importing_tensorflow_is_quiet(tmp_path):
    """A notebook kernel started by the runner imports medclf and TensorFlow: nothing on stderr."""
    nb_dir = tmp_path / "notebooks"
    nb_dir.mkdir()
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('settings = {"dataset": "synthetic"}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(TF_SNIPPET)]
    nbformat.write(nb, str(nb_dir / "01_tf.ipynb"))
    script = ("import sys\nfrom medclf.cli.run_all import main\nfrom medclf.pipeline.plan import Notebook\n"
              f"sys.exit(main(sys.argv[1:], registry=(Notebook('tf', '01_tf.ipynb'),), "
              f"notebooks_dir={str(nb_dir)!r}))\n")
    result = subprocess.run(
        [sys.executable, "-c", script, "-p", f"output_dir={tmp_path / 'out'}", "-p", f"data_root={tmp_path / 'syn'}",
         "-p", f"cache_dir={tmp_path / 'cache'}", "-p", "synthetic_images_per_class=20"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path, env=user_env())
    assert result.returncode == 0, result.stdout + result.stderr
    assert not NOISE.search(result.stdout + result.stderr), result.stdout + result.stderr
    executed = tmp_path / "out" / "synthetic" / "demo" / "notebooks" / "01_tf.ipynb"
    outputs = json.dumps(nbformat.read(str(executed), as_version=4).cells[-1].outputs)
    assert "sum 3.0" in outputs
    assert not _stderr_streams(executed).strip()
