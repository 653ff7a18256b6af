"""The runner (run_all.py): plan, skip-if-up-to-date, failures, atomic outputs, run.json, CLI errors.

Most tests replace ``papermill.execute_notebook`` with a fake that copies the notebook (and
raises like papermill for a cell containing ``raise``); one test runs a real kernel end to end.
The data layer (``medclf.data.prepare`` / ``manifest_fingerprint``) is monkeypatched throughout.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

import medclf.data
from medclf.cli import run_all
from medclf.config.param_specs import SPECS
from medclf.core import progress
from medclf.pipeline import execute, plan
from medclf.pipeline.plan import Notebook

PARAMS_CELL = 'settings = {"dataset": "synthetic"}'


def make_notebook(path: Path, *code: str) -> Path:
    """A tiny notebook: a title, the tagged parameters cell, then ``code`` cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    params = nbformat.v4.new_code_cell(PARAMS_CELL)
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {path.stem}"), params,
                *[nbformat.v4.new_code_cell(src) for src in code]]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))
    return path


class Workspace:
    """Notebooks, registry and output folder in tmp_path, with the data layer faked."""

    def __init__(self, tmp_path: Path, monkeypatch, capsys):
        self.nb_dir = tmp_path / "notebooks"
        self.out_root = tmp_path / "out"
        self.out = self.out_root / "synthetic" / "demo"
        self.capsys = capsys
        self.data_hash = "data-v1"
        self.prepared = 0
        self.registry = (Notebook("b", "01_b.ipynb"), Notebook("c", "02_c.ipynb", ("b",)),
                         Notebook("a", "03_a.ipynb"), Notebook("later", "04_later.ipynb", ("a",)))

        def prepare(params):
            self.prepared += 1

        monkeypatch.setattr(medclf.data, "prepare", prepare, raising=False)
        monkeypatch.setattr(medclf.data, "manifest_fingerprint", lambda params: self.data_hash, raising=False)
        monkeypatch.setattr(medclf.data, "check", lambda params: None, raising=False)

    def run(self, *argv: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = run_all.main(["-p", f"output_dir={self.out_root}", *argv],
                                registry=self.registry, notebooks_dir=self.nb_dir)
        out, err = self.capsys.readouterr()
        return code, out, err

    def run_json(self) -> dict:
        return json.loads((self.out / "run.json").read_text())

    def status(self) -> dict[str, str]:
        return {k: v["status"] for k, v in self.run_json()["notebooks"].items()}


@pytest.fixture
def ws(tmp_path, monkeypatch, capsys):
    return Workspace(tmp_path, monkeypatch, capsys)


@pytest.fixture
def fake_papermill(monkeypatch):
    """Replace papermill.execute_notebook; returns the list of executed notebook stems."""
    import papermill
    from papermill.exceptions import PapermillExecutionError

    calls: list[str] = []

    def execute_notebook(input_path, output_path, parameters=None, **kwargs):
        calls.append(Path(input_path).stem)
        nb = nbformat.read(input_path, as_version=4)
        for index, cell in enumerate(nb.cells):
            cell.metadata["papermill"] = {"status": "completed"}
            if cell.cell_type == "code" and "raise" in cell.source:
                cell.metadata["papermill"]["status"] = "failed"
                nbformat.write(nb, output_path)
                raise PapermillExecutionError(index + 1, index, cell.source, "ValueError", "boom", [])
            if cell.cell_type == "code":
                cell.execution_count = index + 1
                cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"ran {index}\n")]
        nbformat.write(nb, output_path)

    monkeypatch.setattr(papermill, "execute_notebook", execute_notebook)
    return calls


# --------------------------------------------------------------------------- registry


def test_registry_order_and_available(tmp_path):
    names = [nb.name for nb in plan.REGISTRY]
    assert names == ["eda", "baselines", "transfer", "augmentation", "explain", "compare"]
    assert plan.REGISTRY[0].file == "01_eda.ipynb"
    assert set(plan.REGISTRY[5].deps) == {"baselines", "transfer", "augmentation"}
    make_notebook(tmp_path / "01_eda.ipynb")
    make_notebook(tmp_path / "06_compare.ipynb")
    available = plan.available_notebooks(plan.REGISTRY, tmp_path)
    assert [nb.name for nb in available] == ["eda", "compare"]
    assert [nb.name for nb in plan.select_notebooks(available, ["01_eda"])] == ["eda"]
    assert [nb.name for nb in plan.select_notebooks(available, ["compare", "eda"])] == ["eda", "compare"]
    with pytest.raises(plan.OrchestrationError, match="unknown notebook 'nope'"):
        plan.select_notebooks(available, ["nope"])
    with pytest.raises(plan.OrchestrationError, match="does not exist yet"):
        plan.select_notebooks(available, ["baselines"])


def test_light_imports():
    code = ("import sys, medclf.cli.run_all, medclf.pipeline.plan, medclf.pipeline.execute, "
            "medclf.pipeline.provenance; "
            "heavy = [m for m in ('tensorflow', 'keras', 'papermill', 'nbconvert') if m in sys.modules]; "
            "print(heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# --------------------------------------------------------------------------- CLI errors / --list


def test_unknown_param_exits_2_with_one_line(ws, fake_papermill):
    make_notebook(ws.nb_dir / "01_b.ipynb")
    code, out, err = ws.run("-p", "no_such_param=3")
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: unknown parameter 'no_such_param'")
    assert "Traceback" not in err and fake_papermill == []
    code, _, err = ws.run("--only", "zzz")
    assert code == 2 and err.startswith("error: unknown notebook 'zzz'") and err.count("\n") == 1


def test_data_error_exits_2(ws, fake_papermill, monkeypatch):
    def prepare(params):
        raise medclf.data.DataError("data root /nowhere does not exist: pass --data-root or --download")

    monkeypatch.setattr(medclf.data, "prepare", prepare, raising=False)
    make_notebook(ws.nb_dir / "01_b.ipynb")
    code, out, err = ws.run()
    assert code == 2
    assert err == "error: data root /nowhere does not exist: pass --data-root or --download\n"
    assert fake_papermill == []


def test_list_runs_nothing(ws, fake_papermill):
    make_notebook(ws.nb_dir / "01_b.ipynb")
    make_notebook(ws.nb_dir / "02_c.ipynb")
    code, out, _ = ws.run("--list")
    assert code == 0 and fake_papermill == [] and ws.prepared == 0
    assert not ws.out.exists()
    assert "01_b" in out and "02_c" in out and "would run (never run successfully)" in out
    assert "deps: b" in out
    assert ws.run()[0] == 0
    calls = len(fake_papermill)
    code, out, _ = ws.run("--list")
    assert code == 0 and len(fake_papermill) == calls
    assert out.count("skip (up to date") == 2
    code, out, _ = ws.run("--list", "--force")
    cpu = ws.run_json()["machine"]["cpu"]
    for stem in ("01_b", "02_c"):
        assert f"{stem} ... would run (forced; last ok run 0 s on {cpu})" in out, out


# --------------------------------------------------------------------------- skip / rerun


def test_up_to_date_and_what_reruns(ws, fake_papermill):
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1")
    make_notebook(ws.nb_dir / "02_c.ipynb", "y = 2")
    make_notebook(ws.nb_dir / "03_a.ipynb", "z = 3")

    code, out, _ = ws.run()
    assert code == 0 and fake_papermill == ["01_b", "02_c", "03_a"]
    assert "[1/3] 01_b" in out and " ok " in out
    for stem in ("01_b", "02_c", "03_a"):
        assert (ws.out / "notebooks" / f"{stem}.ipynb").is_file()
        assert (ws.out / "reports" / f"{stem}.html").is_file()
    info = ws.run_json()
    assert info["params"]["dataset"] == "synthetic" and info["data_manifest_hash"] == "data-v1"
    assert {"python", "tensorflow", "numpy", "pandas", "scikit-learn", "papermill", "keras"} <= set(info["versions"])
    assert "commit" in info["git"] and info["started"] and info["ended"]
    assert info["machine"]["cpus"] >= 1 and info["machine"]["cpu"]
    assert info["machine"]["tf_enable_onednn_opts"] == os.environ["TF_ENABLE_ONEDNN_OPTS"]  # medclf sets a default

    fake_papermill.clear()
    start = time.monotonic()
    code, out, _ = ws.run()
    assert code == 0 and fake_papermill == []
    assert time.monotonic() - start < 10
    assert out.count("skipped (up to date)") == 3
    assert set(ws.status().values()) == {"up to date"}

    # the notebook changes: it and its dependent rerun, the independent one does not
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 10")
    assert "notebook changed" in ws.run("--list")[1]
    assert ws.run()[0] == 0 and fake_papermill == ["01_b", "02_c"]

    fake_papermill.clear()  # the data changes
    ws.data_hash = "data-v2"
    assert ws.run()[0] == 0 and fake_papermill == ["01_b", "02_c", "03_a"]

    fake_papermill.clear()  # parameters change (seed) -> everything reruns; the same again -> nothing
    assert ws.run("-p", "seed=7")[0] == 0 and len(fake_papermill) == 3
    assert ws.run("-p", "seed=7")[0] == 0 and len(fake_papermill) == 3

    fake_papermill.clear()  # --force
    assert ws.run("-p", "seed=7", "--force")[0] == 0 and len(fake_papermill) == 3

    fake_papermill.clear()  # a missing output forces a rerun of that notebook only
    (ws.out / "reports" / "03_a.html").unlink()
    assert ws.run("-p", "seed=7")[0] == 0 and fake_papermill == ["03_a"]


@pytest.mark.parametrize("accel, steal", [("true", 3.0), ("false", None)])
def test_cpu_steal_is_counted_only_with_accel(ws, fake_papermill, monkeypatch, accel, steal):
    """CPU-steal accounting is one of the optional speed-ups' companions: with accel off, steal_s is null."""
    from medclf.accel import cpu_steal

    readings = iter([100.0, 103.0])
    monkeypatch.setattr(cpu_steal, "steal_seconds", lambda: next(readings))
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1")
    code, _, _ = ws.run("--only", "b", "-p", f"accel={accel}")
    assert code == 0 and ws.run_json()["notebooks"]["b"]["steal_s"] == steal


def test_only_keeps_other_entries(ws, fake_papermill):
    make_notebook(ws.nb_dir / "01_b.ipynb")
    make_notebook(ws.nb_dir / "03_a.ipynb")
    assert ws.run()[0] == 0
    fake_papermill.clear()
    code, out, _ = ws.run("--only", "a", "--force")
    assert code == 0 and fake_papermill == ["03_a"] and "[1/1] 03_a" in out
    assert set(ws.run_json()["notebooks"]) == {"a", "b"}
    assert ws.run_json()["selected"] == ["a"]


def test_failure_keeps_good_notebook_and_skips_dependents(ws, fake_papermill):
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1")
    make_notebook(ws.nb_dir / "02_c.ipynb", "y = 2")
    make_notebook(ws.nb_dir / "03_a.ipynb", "z = 3")
    assert ws.run()[0] == 0
    good_nb = (ws.out / "notebooks" / "01_b.ipynb").read_bytes()
    good_html = (ws.out / "reports" / "01_b.html").read_bytes()

    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1", "raise ValueError('boom')")
    make_notebook(ws.nb_dir / "03_a.ipynb", "z = 4")
    fake_papermill.clear()
    code, out, _ = ws.run()
    assert code == 1
    assert fake_papermill == ["01_b", "03_a"]
    assert "01_b" in out and "FAILED  at cell 4: ValueError: boom" in out
    assert "skipped (depends on failed b)" in out
    assert ws.status() == {"b": "failed", "c": "skipped", "a": "ok"}
    assert (ws.out / "notebooks" / "01_b.failed.ipynb").is_file()
    assert (ws.out / "reports" / "01_b.failed.html").is_file()
    assert (ws.out / "notebooks" / "01_b.ipynb").read_bytes() == good_nb
    assert (ws.out / "reports" / "01_b.html").read_bytes() == good_html
    assert not list((ws.out / "notebooks").glob(".*tmp*"))
    index = (ws.out / "reports" / "index.html").read_text()
    assert 'href="01_b.failed.html"' in index and "ValueError: boom" in index


def test_export_failure_leaves_old_outputs(ws, fake_papermill, monkeypatch):
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1")
    assert ws.run()[0] == 0
    html_path, nb_path = ws.out / "reports" / "01_b.html", ws.out / "notebooks" / "01_b.ipynb"
    old_html, old_nb = html_path.read_bytes(), nb_path.read_bytes()

    from nbconvert import HTMLExporter

    def broken(self, nb, resources=None, **kw):
        raise RuntimeError("exporter crashed mid-way")

    monkeypatch.setattr(HTMLExporter, "from_notebook_node", broken)
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 2")
    code, out, _ = ws.run()
    assert code == 1 and "exporter crashed mid-way" in out
    assert html_path.read_bytes() == old_html and nb_path.read_bytes() == old_nb
    assert not [p for p in ws.out.rglob("*") if ".tmp" in p.name]


def test_interrupted_write_leaves_old_html(ws, fake_papermill, monkeypatch):
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1")
    assert ws.run()[0] == 0
    html_path = ws.out / "reports" / "01_b.html"
    old_html = html_path.read_bytes()
    real_write_text = Path.write_text
    interrupted = []

    def write_half_then_interrupt(self, data, *args, **kwargs):
        if self.name.startswith(".01_b.html") and not interrupted:
            interrupted.append(self)
            real_write_text(self, data[: len(data) // 2], *args, **kwargs)
            raise KeyboardInterrupt
        return real_write_text(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_half_then_interrupt)
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 2")
    code, _, err = ws.run()
    assert interrupted and code == 130 and "interrupted" in err
    assert html_path.read_bytes() == old_html
    assert not interrupted[0].exists()
    assert ws.run_json()["status"] == "interrupted"


# --------------------------------------------------------------------------- real kernel


@pytest.mark.slow
def test_end_to_end_with_kernel(ws):
    """Six real kernel executions: run, skip, fail + dependents, recover."""
    check = ("assert settings['dataset'] == 'synthetic' and settings['profile'] == 'demo'\n"
             "assert settings['output_dir'].endswith('out') and settings['seed'] == 42, settings\n"
             f"assert len(settings) == {len(SPECS)}\n"
             "print('params ok')")
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1 + 1", check)
    make_notebook(ws.nb_dir / "02_c.ipynb", "y = 2")
    make_notebook(ws.nb_dir / "03_a.ipynb", "z = 3")
    good_b = (ws.nb_dir / "01_b.ipynb").read_bytes()

    code, out, err = ws.run()
    assert code == 0, out + err
    assert ws.status() == {"b": "ok", "c": "ok", "a": "ok"}
    executed = nbformat.read(str(ws.out / "notebooks" / "01_b.ipynb"), as_version=4)
    assert "params ok" in json.dumps(executed.cells[-1].outputs)
    index = (ws.out / "reports" / "index.html").read_text()
    assert "SYNTHETIC DATA — demo only, not a medical result" in index
    for stem in ("01_b", "02_c", "03_a"):
        assert f'href="{stem}.html"' in index and (ws.out / "reports" / f"{stem}.html").is_file()

    start = time.monotonic()
    code, out, _ = ws.run()
    assert code == 0 and out.count("skipped (up to date)") == 3
    assert time.monotonic() - start < 10

    good_nb = (ws.out / "notebooks" / "01_b.ipynb").read_bytes()
    make_notebook(ws.nb_dir / "01_b.ipynb", "raise ValueError('boom')")
    make_notebook(ws.nb_dir / "03_a.ipynb", "z = 4")
    code, out, _ = ws.run()
    assert code == 1
    assert "FAILED  at cell 3: ValueError: boom" in out
    assert "skipped (depends on failed b)" in out
    assert ws.status() == {"b": "failed", "c": "skipped", "a": "ok"}
    assert (ws.out / "notebooks" / "01_b.failed.ipynb").is_file()
    assert (ws.out / "notebooks" / "01_b.ipynb").read_bytes() == good_nb
    entry = ws.run_json()["notebooks"]["b"]
    assert entry["cell"] == 3 and entry["error"] == "ValueError: boom"

    (ws.nb_dir / "01_b.ipynb").write_bytes(good_b)
    code, out, _ = ws.run("--only", "01_b", "--force")
    assert code == 0 and "[1/1] 01_b" in out
    assert not (ws.out / "notebooks" / "01_b.failed.ipynb").exists()
    assert not (ws.out / "reports" / "01_b.failed.html").exists()
    assert ws.status() == {"b": "ok", "c": "skipped", "a": "ok"}


def test_a_running_notebook_shows_its_progress(ws, monkeypatch):
    """The kernel reports through medclf.core.progress; the runner prints each new status while the notebook runs."""
    monkeypatch.setattr(execute, "PROGRESS_INTERVAL_S", 0.1)
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    make_notebook(ws.nb_dir / "03_a.ipynb",
                  "import time\nfrom medclf.core import progress\n"
                  "with progress.task('model x'):\n"
                  "    progress.report(epoch=2, epochs=5, seconds_per_epoch=61.2, val={'auc': 0.9})\n"
                  "    time.sleep(1.5)")
    code, out, err = ws.run("--only", "a")
    assert code == 0, out + err
    lines = out.splitlines()
    shown = [line for line in lines if "model x · epoch 2/5 · 61 s/epoch, ≤ 4 min left · val auc 0.900" in line]
    assert len(shown) == 1 and shown[0].lstrip().startswith("03_a 0:0"), out
    assert lines.index(shown[0]) < next(i for i, line in enumerate(lines) if line.startswith("[1/1] 03_a"))
    assert progress.ENV_VAR not in os.environ
    assert not list((ws.out / "notebooks").glob(".*progress*"))


def test_a_relative_keras_home_is_made_absolute_for_the_kernels(monkeypatch, tmp_path, capsys):
    import os

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERAS_HOME", "keras")  # kernels run in the notebooks' folder
    assert run_all.main(["-p", "no_such_key=1"]) == 2
    assert os.environ["KERAS_HOME"] == str(tmp_path / "keras")


RUNNER_IN_A_CHILD = """
import sys
from pathlib import Path
import medclf.data
from medclf.cli import run_all
from medclf.pipeline.plan import Notebook
medclf.data.prepare = lambda params: None
medclf.data.manifest_fingerprint = lambda params: "data-v1"
medclf.data.check = lambda params: None
root = Path(sys.argv[1])
run_all.exit_process(run_all.main(["-p", f"output_dir={root / 'out'}", "-p", f"data_root={root / 'data'}",
                                   "-p", f"cache_dir={root / 'cache'}"],
                                  registry=(Notebook("b", "01_b.ipynb"), Notebook("a", "02_a.ipynb")),
                                  notebooks_dir=root / "notebooks"))
"""


def _default_stop_signals() -> None:
    """In the child: the default action of every stop signal, even when this test session was started
    with one ignored (a background job ignores SIGINT, nohup SIGHUP), as the runner sees them in a terminal."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


@pytest.mark.slow
@pytest.mark.parametrize("sig, code, said", [("SIGTERM", 143, "terminated (SIGTERM)"),
                                             ("SIGHUP", 129, "terminated (SIGHUP)"),
                                             ("SIGINT", 130, "interrupted")])
def test_a_signal_to_the_runner_stops_the_kernel_and_keeps_what_finished(tmp_path, sig, code, said):
    """``kill`` (or a scheduler's time limit, or a terminal that closes: SIGHUP) reaches the runner alone, not
    the kernel, which runs in a session of its own: the runner must shut the kernel down, keep the finished
    notebook and record the interruption. Everything it reads and writes is under tmp_path."""
    make_notebook(tmp_path / "notebooks" / "01_b.ipynb", "x = 1")
    pid_file = tmp_path / "kernel.pid"
    make_notebook(tmp_path / "notebooks" / "02_a.ipynb",
                  f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(300)")
    script = tmp_path / "runner.py"
    script.write_text(RUNNER_IN_A_CHILD)
    child = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, preexec_fn=_default_stop_signals)
    deadline = time.monotonic() + 120
    while not (pid_file.is_file() and pid_file.read_text()) and time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        time.sleep(0.2)
    kernel = int(pid_file.read_text())
    child.send_signal(getattr(signal, sig))
    _, err = child.communicate(timeout=60)

    assert child.returncode == code, err
    assert f"{said}: finished notebooks are recorded in run.json" in err
    for _ in range(50):  # the kernel manager waits for the kernel to exit; allow it a moment
        try:
            os.kill(kernel, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        os.kill(kernel, signal.SIGKILL)
        pytest.fail(f"kernel {kernel} still running after the runner was stopped by {sig}")
    out = tmp_path / "out" / "synthetic" / "demo"
    run = json.loads((out / "run.json").read_text())
    assert run["status"] == "interrupted" and run["interrupted_by"] == sig
    assert run["notebooks"]["b"]["status"] == "ok" and (out / "notebooks" / "01_b.ipynb").is_file()
    assert not (out / "notebooks" / "02_a.ipynb").exists()
    assert not [p.name for p in out.rglob(".*")], "temporary or progress files left behind"


def test_a_stopping_run_kills_its_kernel_at_once(monkeypatch):
    """Once a stop signal arrived, the kernel is killed rather than asked to shut down: the graceful way waits
    up to 5 s for a kernel busy in native code (training), which cannot answer."""
    from jupyter_client.manager import AsyncKernelManager

    asked = []

    async def shutdown_kernel(self, now=False, restart=False):
        asked.append(now)

    monkeypatch.setattr(AsyncKernelManager, "shutdown_kernel", shutdown_kernel)
    manager = execute._kernel_manager_class()()
    import asyncio

    asyncio.run(manager.shutdown_kernel())  # a notebook that finished: graceful
    with execute.signals_as_interrupt():
        with pytest.raises(execute.Terminated) as stopped:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # the handler raises at the next bytecode
        asyncio.run(manager.shutdown_kernel())  # nbclient's clean-up while the interrupt unwinds
    asyncio.run(manager.shutdown_kernel())  # a later run in this process: graceful again
    assert execute.stop_signal(stopped.value) == "SIGTERM"
    assert asked == [False, True, False]


def test_the_runner_process_exits_with_its_code_after_the_exit_hooks(tmp_path):
    """run_all.py ends with exit_process: the exit hooks run and the output is flushed (only the final garbage
    collection is skipped)."""
    code = ("import atexit, sys\nfrom medclf.cli import run_all\n"
            "atexit.register(lambda: open(sys.argv[1], 'w').write('hook ran'))\n"
            "sys.stdout.write('last line, not flushed')\nrun_all.exit_process(7)\nprint('never')")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path / "hook")], capture_output=True, text=True)
    assert done.returncode == 7 and done.stdout == "last line, not flushed"
    assert (tmp_path / "hook").read_text() == "hook ran"


def test_a_stop_before_the_notebooks_is_one_line_with_the_signal_s_code(ws, fake_papermill, monkeypatch):
    def check(params):
        raise execute.Terminated("SIGHUP")

    monkeypatch.setattr(medclf.data, "check", check, raising=False)
    make_notebook(ws.nb_dir / "01_b.ipynb")
    code, _, err = ws.run()
    assert code == 129 and err == "terminated (SIGHUP): stopped before the run was recorded in run.json\n"
    assert fake_papermill == [] and not ws.out.exists()


# --------------------------------------------------------------------------- the notebook is what the runner thinks


@pytest.mark.parametrize("tags", [[], [["parameters"], ["parameters"]]], ids=["tag lost", "two tagged"])
def test_a_notebook_without_exactly_one_parameters_cell_is_refused_before_any_kernel(ws, fake_papermill, tags):
    """Before: a lost tag (a cell recreated in JupyterLab) ran the notebook on its defaults, reported ok."""
    path = make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1")
    node = nbformat.read(str(path), as_version=4)
    node.cells[1].metadata["tags"] = []
    for extra in tags:
        cell = nbformat.v4.new_code_cell("settings = {}")
        cell.metadata["tags"] = extra
        node.cells.append(cell)
    nbformat.write(node, str(path))
    code, out, err = ws.run("--only", "b")
    lines = err.strip().splitlines()
    assert code == 2 and fake_papermill == [] and len(lines) == 1, out + err
    found = "no code cell" if not tags else "2 code cells (4, 5)"
    assert lines[0].startswith(f"error: {path} has {found} tagged 'parameters'") and "property inspector" in lines[0]
    assert not ws.out.exists()


@pytest.mark.parametrize("ending", ["import sys\nsys.exit(0)", "raise SystemExit"])
def test_a_notebook_that_exits_early_is_a_failure_at_that_cell(ws, ending):
    """Before: ``sys.exit(0)`` in a cell ended the notebook early and the run reported it ok. Real kernel."""
    make_notebook(ws.nb_dir / "01_b.ipynb", "x = 1", ending, "open('after.txt', 'w').write('ran')")
    code, out, _ = ws.run("--only", "b")
    entry = ws.run_json()["notebooks"]["b"]
    assert code == 1 and entry["status"] == "failed" and entry["cell"] == 4, out
    assert "stopped itself with sys.exit(" in entry["error"] and "FAILED  at cell 4" in out
    assert not (ws.out / "notebooks" / "01_b.ipynb").exists() and (ws.out / "notebooks" / "01_b.failed.ipynb").is_file()
