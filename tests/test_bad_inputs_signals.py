"""Bad inputs, part signals: a run stopped in any way leaves the published outputs of one complete run.

Each case stops or blocks a run (Ctrl-C, ``kill -9`` of the kernel, ``kill -STOP`` of the kernel, SIGTERM of
the runner, a second run, a stale lock, a failing notebook, a crash half-way through publishing) and checks
the exit code, the message, and that the **published tree** is byte-identical afterwards.

Published tree: every file under ``<output_dir>/<dataset>/<profile>/`` except the runner's own state,
``RunPaths.is_run_state``: ``run.json``, ``reports/index.html`` (its summary page, rewritten to show the
interruption), ``.lock``, ``.staging/`` and the copies of failed notebooks (``*.failed.ipynb``,
``*.failed.html``) — see docs/runs.md.

Most cases run real kernels on two tiny notebooks (``01_b`` writes a record, a table and a figure from the
seed; ``02_c`` depends on it and reads its record), executed by ``run_all.main`` in a fresh process with the
data layer faked; the last test runs ``run_all.py`` on the real notebooks (demo profile, tiny settings).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import psutil
import pytest

from badinput import assert_one_line_error, run_all, snapshot
from medclf.config import paths
from medclf.config.params import params_hash

pytestmark = pytest.mark.slow

NOTEBOOK_CODE = {
    "01_b": """
import json, os, time
from pathlib import Path
from medclf.config import paths
from medclf.core import io
layout = paths.RunPaths.of(settings)
seed = settings["seed"]
io.write_json(layout.record("b"), {"seed": seed})
io.write_text(layout.tables / "b.csv", f"seed\\n{seed}\\n")
io.write_text(layout.figures("01_b") / "b.png", "figure of seed %d" % seed)
""",
    "02_c": """
import json, os, time
from pathlib import Path
from medclf.config import paths
from medclf.core import io
layout = paths.RunPaths.of(settings)
seed_b = json.loads(layout.record("b").read_text())["seed"]
io.write_json(layout.record("c"), {"seed": settings["seed"], "b_seed": seed_b})
io.write_text(layout.tables / "c.csv", f"seed,b_seed\\n{settings['seed']},{seed_b}\\n")
""",
}

#: Appended to a notebook: with MEDCLF_TEST_HOLD naming a file, write the kernel's pid there and wait
#: (sleeping, or busy when MEDCLF_TEST_BUSY is set); with MEDCLF_TEST_RAISE, fail.
HOLD = """
hold = os.environ.get("MEDCLF_TEST_HOLD")
if hold and os.environ.get("MEDCLF_TEST_IN", "01_b") == NAME:
    Path(hold).write_text(str(os.getpid()))
    end = time.monotonic() + 300
    while time.monotonic() < end:
        if os.environ.get("MEDCLF_TEST_BUSY"):
            sum(range(100_000))
        else:
            time.sleep(0.5)
if os.environ.get("MEDCLF_TEST_RAISE") == NAME:
    raise ValueError("boom")
"""

RUNNER = """
import os, signal, sys
from pathlib import Path
import medclf.data
from medclf.cli import run_all
from medclf.pipeline import staging
from medclf.pipeline.plan import Notebook
medclf.data.prepare = lambda params: None
medclf.data.manifest_fingerprint = lambda params: "data-v1"
medclf.data.check = lambda params: None
crash_after = os.environ.get("MEDCLF_TEST_CRASH_AFTER_MOVES")
if crash_after:  # die (SIGKILL) half-way through a publish
    moves = []
    real_replace = staging._replace
    def replace(source, target):
        if len(moves) == int(crash_after):
            os.kill(os.getpid(), signal.SIGKILL)
        moves.append(source)
        real_replace(source, target)
    staging._replace = replace
root = Path(sys.argv[1])
run_all.exit_process(run_all.main(["-p", f"output_dir={root / 'out'}", "-p", f"data_root={root / 'data'}",
                                   "-p", f"cache_dir={root / 'cache'}", *sys.argv[2:]],
                                  registry=(Notebook("b", "01_b.ipynb"), Notebook("c", "02_c.ipynb", ("b",))),
                                  notebooks_dir=root / "notebooks"))
"""


def _default_sigint() -> None:
    """In the child: the default action of every stop signal, even when this test session was started with
    one ignored (a background job ignores SIGINT, nohup SIGHUP), so that the runner stops on them as in a
    terminal."""
    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        signal.signal(getattr(signal, name), signal.SIG_DFL)


def make_notebook(path: Path, code: str) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('settings = {"dataset": "synthetic"}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [params, nbformat.v4.new_code_cell(f"NAME = {path.stem!r}\n" + code), nbformat.v4.new_code_cell(HOLD)]
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, str(path))


def published(out: Path, data_only: bool = False) -> dict[str, str]:
    """``{relative path: sha256}`` of the published tree (``data_only``: without notebooks/ and reports/,
    whose executed copies carry execution times)."""
    layout = paths.RunPaths(out)
    found = {p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
             for p in layout.published_files()}
    return {k: v for k, v in found.items() if not (data_only and k.split("/")[0] in ("notebooks", "reports"))}


class Bench:
    """Tiny notebooks, the child runner and the output folder (data and cache folders too) in tmp_path."""

    def __init__(self, tmp_path: Path, write: bool = True):
        self.root = tmp_path
        self.out = tmp_path / "out" / "synthetic" / "demo"
        self.hold = tmp_path / "kernel.pid"
        self.before: dict[str, str] = {}  # the published tree of the complete seed-1 run (``bench`` fixture)
        if not write:  # a copy of a bench: rewritten notebooks would get new cell ids and count as changed
            return
        for stem, code in NOTEBOOK_CODE.items():
            make_notebook(tmp_path / "notebooks" / f"{stem}.ipynb", code)
        (tmp_path / "runner.py").write_text(RUNNER)

    def start(self, *args: str, **env: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(self.root / "runner.py"), str(self.root), *args],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, **env}, preexec_fn=_default_sigint)

    def run(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        child = self.start(*args, **env)
        out, err = child.communicate(timeout=300)
        return subprocess.CompletedProcess(child.args, child.returncode, out, err)

    def held(self, *args: str, **env: str) -> tuple[subprocess.Popen, int]:
        """A run whose notebook waits (see HOLD); returns it and the kernel's pid once the kernel waits."""
        self.hold.unlink(missing_ok=True)
        child = self.start(*args, MEDCLF_TEST_HOLD=str(self.hold), **env)
        deadline = time.monotonic() + 120
        while not (self.hold.is_file() and self.hold.read_text()):
            if child.poll() is not None or time.monotonic() > deadline:
                child.kill()
                pytest.fail("the held notebook never started: " + "".join(child.communicate()))
            time.sleep(0.1)
        return child, int(self.hold.read_text())

    def run_json(self) -> dict:
        return json.loads((self.out / "run.json").read_text())

    def complete(self, *args: str) -> dict[str, str]:
        done = self.run(*args)
        assert done.returncode == 0, done.stdout + done.stderr
        return published(self.out)


@pytest.fixture(scope="module")
def _completed_bench(tmp_path_factory) -> tuple[Path, Path, dict[str, str]]:
    """One complete run with seed 1, made once for the module (the runner and two kernels, seconds):
    ``(its folder, a pristine copy of it, its published tree)``."""
    root = tmp_path_factory.mktemp("signals") / "bench"
    before = Bench(root).complete("-p", "seed=1")
    pristine = root.with_name("pristine")
    shutil.copytree(root, pristine, symlinks=True)
    return root, pristine, before


@pytest.fixture
def bench(_completed_bench) -> Bench:
    """A bench after one complete seed-1 run (``bench.before``: its published tree): each test gets the
    pristine copy back at the same absolute path, so the output folder, and with it the parameters hash
    and "up to date", are those of that run (mtimes kept)."""
    root, pristine, before = _completed_bench
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(pristine, root, symlinks=True)
    bench = Bench(root, write=False)
    bench.before = before
    return bench


def finish(child: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
    out, err = child.communicate(timeout=timeout)
    return child.returncode, out, err


def gone(pid: int, wait: float = 10) -> bool:
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        if not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return True
        time.sleep(0.1)
    return False


def reap(pid: int) -> None:
    for sig in (signal.SIGCONT, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return


def assert_no_leftovers(out: Path) -> None:
    assert not (out / ".staging").exists() and not (out / ".lock").exists(), sorted(p.name for p in out.iterdir())


def test_sigint_during_a_notebook_keeps_the_published_tree_and_reruns_it(bench):
    before = bench.before
    child, kernel = bench.held("-p", "seed=2")
    child.send_signal(signal.SIGINT)
    code, out, err = finish(child)
    assert code == 130, out + err
    assert ("interrupted: finished notebooks are recorded in run.json; "
            "the unfinished one's outputs were discarded") in err
    assert published(bench.out) == before
    assert gone(kernel)
    assert bench.run_json()["notebooks"]["b"]["status"] == "interrupted"
    assert_no_leftovers(bench.out)

    again = bench.run("-p", "seed=1")  # the old parameters: b is not "up to date", and c follows it
    assert again.returncode == 0, again.stdout + again.stderr
    assert "01_b" in again.stdout and "up to date" not in again.stdout
    assert published(bench.out, data_only=True) == {k: v for k, v in before.items()
                                                     if not k.startswith(("notebooks/", "reports/"))}
    plan = bench.run("-p", "seed=1", "--list").stdout
    assert plan.count("skip (up to date") == 2  # "; last ok run ..." may follow


def test_kill_9_of_the_kernel_fails_the_notebook_keeps_its_copy_and_the_tree(bench):
    before = bench.before
    child, kernel = bench.held("-p", "seed=2")
    os.kill(kernel, signal.SIGKILL)
    code, out, err = finish(child)
    assert code == 1, out + err
    assert "01_b" in out and "FAILED" in out and "DeadKernelError" in out
    assert "skipped (depends on failed b)" in out
    kept = out.split("executed notebook kept at ")[1].split()[0]
    assert Path(kept).is_file() and Path(kept).name == "01_b.failed.ipynb"
    assert published(bench.out) == before
    assert_no_leftovers(bench.out)
    again = bench.run("-p", "seed=1")
    assert again.returncode == 0 and "up to date" not in again.stdout, again.stdout + again.stderr
    assert not Path(kept).exists()


def test_a_stopped_kernel_is_stopped_by_the_watchdog(bench):
    before = bench.before
    stall = 4
    child, kernel = bench.held("-p", "seed=2", "-p", f"stall_timeout_s={stall}", MEDCLF_TEST_BUSY="1")
    try:
        time.sleep(stall + 1)  # busy, so not a stall
        assert child.poll() is None, "a busy kernel was taken for a stalled one"
        stopped = time.monotonic()
        os.kill(kernel, signal.SIGSTOP)
        code, out, err = finish(child, timeout=stall + 60)
        took = time.monotonic() - stopped
    finally:
        reap(kernel)
    assert code == 1, out + err
    assert f"stalled: no progress for {stall} s (kernel pid {kernel} is stopped, e.g. by kill -STOP)" in out
    assert "stall_timeout_s" in out and took < stall + 30, took
    assert published(bench.out) == before
    assert gone(kernel)


def test_sigterm_of_the_runner(bench):
    before = bench.before
    child, kernel = bench.held("-p", "seed=2", MEDCLF_TEST_IN="02_c")
    child.send_signal(signal.SIGTERM)
    code, out, err = finish(child)
    assert code == 143, out + err
    assert "terminated (SIGTERM): finished notebooks are recorded in run.json" in err
    assert gone(kernel)
    after = published(bench.out)  # b finished and was published with seed 2; c's outputs are the old ones
    assert {k: v for k, v in after.items() if "01_b" not in k and "/b." not in k} == \
           {k: v for k, v in before.items() if "01_b" not in k and "/b." not in k}
    assert json.loads((bench.out / "results" / "c.json").read_text()) == {"seed": 1, "b_seed": 1}
    assert json.loads((bench.out / "results" / "b.json").read_text()) == {"seed": 2}
    assert bench.run_json()["notebooks"]["c"]["status"] == "interrupted"
    assert_no_leftovers(bench.out)


def test_a_second_run_on_a_locked_folder_exits_2_naming_the_holder(bench):
    before = bench.before
    child, kernel = bench.held("-p", "seed=1", "--force")
    try:
        during = snapshot(bench.out)
        proc = run_all("-p", f"output_dir={bench.root / 'out'}", "-p", f"data_root={bench.root / 'data'}",
                       "-p", f"cache_dir={bench.root / 'cache'}")
        line = assert_one_line_error(proc, "in use by another run", f"pid {child.pid}", socket.gethostname(),
                                     str(bench.out / ".lock"))
        assert line.startswith("error: output folder")
        assert snapshot(bench.out) == during and not (bench.root / "data").exists()
    finally:
        child.send_signal(signal.SIGTERM)
        finish(child)
    assert published(bench.out) == before


def test_a_stale_lock_is_taken_over_with_a_note(bench):
    before = bench.before
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (bench.out / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(),
                                                 "started": "2025-01-01T00:00:00+00:00",
                                                 "command": ["run_all.py", "-p", "seed=1"]}))
    done = bench.run("-p", "seed=1")
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"note: took over the stale lock of a run that ended without releasing it (pid {dead.pid} on host " \
           in done.stdout and "its process is gone" in done.stdout
    assert done.stdout.count("skipped (up to date)") == 2
    assert published(bench.out) == before
    assert_no_leftovers(bench.out)


def test_a_failed_notebook_keeps_a_copy_that_exists_and_changes_nothing(bench):
    before = bench.before
    done = bench.run("-p", "seed=2", MEDCLF_TEST_RAISE="01_b")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED  at cell 3: ValueError: boom" in done.stdout
    kept = bench.out / "notebooks" / "01_b.failed.ipynb"
    assert f"01_b failed; executed notebook kept at {kept}" in done.stdout and kept.is_file()
    assert (bench.out / "reports" / "01_b.failed.html").is_file()
    assert published(bench.out) == before
    assert_no_leftovers(bench.out)


def test_a_cell_timeout_fails_the_notebook(bench):
    before = bench.before
    done = bench.run("-p", "seed=2", "-p", "cell_timeout_s=3", MEDCLF_TEST_HOLD=str(bench.hold))
    assert done.returncode == 1, done.stdout + done.stderr
    assert "FAILED  at cell 3: cell timed out after 3 s (cell_timeout_s" in done.stdout
    assert published(bench.out) == before


def test_a_crash_mid_publish_is_completed_by_the_next_run(bench, tmp_path):
    crashed = bench.run("-p", "seed=2", MEDCLF_TEST_CRASH_AFTER_MOVES="2")
    assert crashed.returncode == -signal.SIGKILL, crashed.stdout + crashed.stderr
    journal = bench.out / ".staging" / "01_b.publish.json"
    assert journal.is_file()
    mixed = published(bench.out, data_only=True)

    done = bench.run("-p", "seed=2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "recovered: finished publishing 01_b, which a stopped run had begun" in done.stdout
    assert "note: took over the stale lock" in done.stdout
    assert "[1/2] 01_b" in done.stdout and "skipped (up to date)" in done.stdout  # recorded by the recovery
    assert_no_leftovers(bench.out)

    reference = Bench(tmp_path / "reference")  # the same run, never stopped
    reference.complete("-p", "seed=2")
    assert published(bench.out, data_only=True) == published(reference.out, data_only=True) != mixed
    assert bench.run_json()["notebooks"]["b"]["status"] == "up to date"


# --------------------------------------------------------------------------- the real notebooks

TINY = ["-p", "synthetic_images_per_class=40", "-p", "synthetic_image_size=32", "-p", "max_image_size=32",
        "-p", "max_epochs=1", "-p", "baselines=[svm_pixels, ann_deep]", "-p", "transfer_models=[mobilenet_v2_frozen]",
        "-p", "bootstrap_replicates=20", "-p", "lime_samples=20", "-p", "lime_segments=10"]


def _interrupt_02(args: list[str], out: Path, how: str) -> subprocess.CompletedProcess:
    """Start ``run_all.py``; once 02 has staged a new record (the moment the issue's mixed outputs began),
    SIGINT the runner (``how="sigint"``) or SIGKILL the kernel (``"kill9"``)."""
    child = subprocess.Popen([sys.executable, str(paths.PROJECT_ROOT / "run_all.py"), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=paths.PROJECT_ROOT,
                             preexec_fn=_default_sigint)
    staged = out / ".staging" / "02_baselines" / "results" / "svm_pixels.json"
    published_record = out / "results" / "svm_pixels.json"
    deadline = time.monotonic() + 600
    while True:
        assert child.poll() is None and time.monotonic() < deadline, "".join(child.communicate())
        try:
            if staged.stat().st_ino != published_record.stat().st_ino:
                break
        except FileNotFoundError:
            pass
        time.sleep(0.05)
    if how == "sigint":
        child.send_signal(signal.SIGINT)
    else:
        kernels = [p for p in psutil.Process(child.pid).children(recursive=True)
                   if any("ipykernel" in part for part in p.cmdline())]
        assert kernels
        kernels[0].kill()
    out_text, err = child.communicate(timeout=300)
    return subprocess.CompletedProcess(child.args, child.returncode, out_text, err)


def _consistent(out: Path) -> str:
    """Every record, model card and notebook entry carries run.json's parameters hash; returns it."""
    info = json.loads((out / "run.json").read_text())
    wanted = info["params_hash"]
    for folder in ("results", "models"):
        for path in (out / folder).glob("*.json"):
            assert params_hash(json.loads(path.read_text())["params"]) == wanted, path
    assert {name: entry["params_hash"] for name, entry in info["notebooks"].items()} == \
           {name: wanted for name in info["notebooks"]}
    assert all(entry["status"] in ("ok", "up to date") for entry in info["notebooks"].values())
    return wanted


def test_real_notebooks_ctrl_c_and_kill_9_during_02_then_the_old_parameters(tmp_path):
    """The issue's sequence: a complete run; a rerun with a changed parameter stopped during 02 by Ctrl-C, the
    same rerun stopped during 02 by kill -9 of its kernel; then a rerun with the old parameters redoes 02 (and
    what the changed runs touched) and leaves one run's outputs, those of the first run."""
    base = ["-p", f"output_dir={tmp_path / 'out'}", "-p", f"cache_dir={tmp_path / 'cache'}",
            "-p", f"data_root={tmp_path / 'data'}", *TINY]
    changed = [*base, "-p", "target_sensitivity=0.9"]
    out = tmp_path / "out" / "synthetic" / "demo"
    first = run_all(*base, timeout=900)
    assert first.returncode == 0, first.stdout + first.stderr
    good = _consistent(out)
    models_before = {k: v for k, v in published(out).items() if not k.startswith(("notebooks/01", "reports/01",
                                                                                    "figures/01", "tables/eda"))}
    for how, code, said in (("sigint", 130, "interrupted: finished notebooks are recorded"),
                            ("kill9", 1, "DeadKernelError")):
        stopped = _interrupt_02(changed, out, how)
        assert stopped.returncode == code and said in stopped.stdout + stopped.stderr, stopped.stdout + stopped.stderr
        if how == "kill9":
            kept = stopped.stdout.split("executed notebook kept at ")[1].split()[0]
            assert Path(kept).is_file()
            eda = next(line for line in stopped.stdout.splitlines() if line.startswith("[1/6] 01_eda"))
            assert "up to date" in eda, stopped.stdout  # Ctrl-C's run had recorded it with the changed parameters
        # 02's outputs are the first run's; so are 03..06's after Ctrl-C, while after a failed 02 the run went
        # on with 03 and 04 (they do not depend on 02) and skipped 05 and 06
        kept_keys = {k for k in models_before if how == "sigint" or any(
            part in k for part in ("02_baselines", "svm_pixels", "ann_deep", "tables/baselines",
                                   "tables/study_reproduction.", "05_explain", "06_compare"))}
        assert {k: v for k, v in published(out).items() if k in kept_keys} == \
               {k: v for k, v in models_before.items() if k in kept_keys}
    again = run_all(*base, timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    line = next(line for line in again.stdout.splitlines() if line.startswith("[2/6] 02_baselines"))
    assert " ok " in line, again.stdout
    assert _consistent(out) == good
