"""Staging and publishing a notebook's outputs, the output-folder lock, what reruns after a stop (fast, no kernel)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from medclf.config import paths
from medclf.core import io
from medclf.pipeline import plan, runlock, staging
from medclf.pipeline.plan import Notebook


def tree(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in paths.RunPaths(root).published_files()}


@pytest.fixture
def run(tmp_path) -> Path:
    root = tmp_path / "out" / "synthetic" / "demo"
    io.write_text(root / "results" / "a.json", "a1")
    io.write_text(root / "results" / "gone.json", "old")
    io.write_text(root / "tables" / "t.csv", "t1")
    io.write_text(root / "run.json", "{}")
    return root


def test_run_dir_is_the_stage_only_in_the_stages_kernel(run, monkeypatch):
    params = {"output_dir": str(run.parents[1]), "dataset": "synthetic", "profile": "demo"}
    assert paths.run_dir(params) == run
    stage = staging.open_stage(run, "02_b")
    with staging.staged_env(stage):
        assert paths.run_dir(params) == stage.dir == run / ".staging" / "02_b"
        assert paths.published_run_dir(params) == run
        assert paths.run_dir({**params, "profile": "quick"}) == run.parent / "quick"  # another folder: as is
    assert paths.STAGING_ENV not in os.environ and paths.run_dir(params) == run


def test_publish_moves_new_and_replaced_files_and_removals_together(run):
    before = tree(run)
    stage = staging.open_stage(run, "02_b")
    assert (stage.dir / "results" / "a.json").read_text() == "a1"  # earlier outputs read through the stage
    assert not (stage.dir / "run.json").exists()
    io.write_text(stage.dir / "results" / "a.json", "a2")
    io.write_text(stage.dir / "figures" / "02_b" / "f.png", "fig")
    (stage.dir / "results" / "gone.json").unlink()
    assert tree(run) == before  # nothing visible before the publish
    assert staging.changes(stage) == (["figures/02_b/f.png", "results/a.json"], ["results/gone.json"])
    recorded = []
    moved = staging.publish(run, stage, "b", {"status": "ok"}, lambda name, entry: recorded.append((name, entry)))
    assert moved == 2 and recorded == [("b", {"status": "ok"})]
    assert tree(run) == {"results/a.json": "a2", "tables/t.csv": "t1", "figures/02_b/f.png": "fig"}
    assert not (run / ".staging").exists()


def test_a_publish_stopped_half_way_is_finished_by_recover(run, monkeypatch):
    stage = staging.open_stage(run, "02_b")
    io.write_text(stage.dir / "results" / "a.json", "a2")
    io.write_text(stage.dir / "tables" / "t.csv", "t2")
    calls = []

    def stop_after_one(source, target):
        if calls:
            raise KeyboardInterrupt
        calls.append(source)
        os.replace(source, target)

    monkeypatch.setattr(staging, "_replace", stop_after_one)
    with pytest.raises(KeyboardInterrupt):
        staging.publish(run, stage, "b", {"status": "ok"}, lambda name, entry: None)
    assert (run / ".staging" / "02_b.publish.json").is_file()
    monkeypatch.setattr(staging, "_replace", os.replace)
    recorded = []
    said = staging.recover(run, lambda name, entry: recorded.append((name, entry)), lambda *a: None)
    assert said == ["recovered: finished publishing 02_b, which a stopped run had begun (1 of its 2 files were "
                    "still to move)"]
    assert recorded == [("b", {"status": "ok"})]
    assert tree(run) == {"results/a.json": "a2", "results/gone.json": "old", "tables/t.csv": "t2"}
    assert not (run / ".staging").exists()


def test_recover_removes_unfinished_stages_and_leaves_the_tree(run):
    before = tree(run)
    stage = staging.open_stage(run, "03_c")
    io.write_text(stage.dir / "results" / "a.json", "half")
    assert staging.recover(run, lambda *a: pytest.fail("nothing to record"), lambda *a: None) == [
        "removed the unpublished outputs of 03_c left by a stopped run; the published ones are unchanged"]
    assert tree(run) == before and not (run / ".staging").exists()
    assert staging.recover(run, lambda *a: None, lambda *a: None) == []


def test_run_state_is_not_published_output(run):
    io.write_text(run / "reports" / "index.html", "x")
    io.write_text(run / "reports" / "01_a.html", "x")
    io.write_text(run / "notebooks" / "01_a.failed.ipynb", "x")
    io.write_text(run / ".lock", "x")
    assert [p.relative_to(run).as_posix() for p in paths.RunPaths(run).published_files()] == [
        "reports/01_a.html", "results/a.json", "results/gone.json", "tables/t.csv"]


def test_the_lock_refuses_a_second_holder_and_takes_over_a_stale_one(tmp_path):
    root = tmp_path / "run"
    said = []
    with runlock.hold(root, {"started": "now", "command": ["run_all.py"]}, said.append) as lock:
        holder = json.loads(lock.read_text())
        assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
        code = ("import sys; from medclf.pipeline import runlock\n"
                "try:\n    runlock.hold(sys.argv[1], {}, print).__enter__()\n"
                "except runlock.LockHeld as exc:\n    print(exc); sys.exit(2)")
        other = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True)
        assert other.returncode == 2, other.stderr
        assert f"is in use by another run: pid {os.getpid()} on host {socket.gethostname()}, started now " \
               "(run_all.py)" in other.stdout
    assert not lock.exists() and said == []

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    root.mkdir(exist_ok=True)
    (root / ".lock").write_text(json.dumps({"pid": dead.pid, "host": socket.gethostname(), "started": "then"}))
    with runlock.hold(root, {}, said.append):
        pass
    assert said == [f"note: took over the stale lock of a run that ended without releasing it (pid {dead.pid} on "
                    f"host {socket.gethostname()}, started then; its process is gone)"]


def _plan(tmp_path, previous):
    nb_dir = tmp_path / "nb"
    nb_dir.mkdir(exist_ok=True)
    registry = (Notebook("a", "01_a.ipynb"), Notebook("b", "02_b.ipynb", ("a",)))
    for nb in registry:
        (nb_dir / nb.file).write_text("{}")
    out = tmp_path / "out"
    for stem in ("01_a", "02_b"):
        io.write_text(out / "notebooks" / f"{stem}.ipynb", "{}")
        io.write_text(out / "reports" / f"{stem}.html", "x")
    first = plan.make_plan(list(registry), list(registry), nb_dir, out, "p", "d", {}, src_hash="s")
    entries = {s.notebook.name: {"ok_fingerprint": s.fingerprint, "status": "ok",
                                 "ok_finished": "2025-01-01T10:00:00+00:00"} for s in first}
    for name, change in previous.items():
        entries[name].update(change)
    steps = plan.make_plan(list(registry), list(registry), nb_dir, out, "p", "d", {"notebooks": entries},
                           src_hash="s")
    return {s.notebook.name: (s.run, s.reason) for s in steps}


@pytest.mark.parametrize("status, reason", [("interrupted", "last run interrupted"), ("failed", "last run failed"),
                                            ("running", "last run did not finish")])
def test_a_notebook_that_did_not_finish_reruns_with_its_dependents(tmp_path, status, reason):
    assert _plan(tmp_path, {}) == {"a": (False, "up to date"), "b": (False, "up to date")}
    assert _plan(tmp_path, {"a": {"status": status}}) == {"a": (True, reason), "b": (True, "dependency a reran")}


def test_a_dependency_that_reran_alone_makes_its_dependents_rerun(tmp_path):
    newer = {"a": {"ok_finished": "2025-01-01T11:00:00+00:00"}}
    assert _plan(tmp_path, newer) == {"a": (False, "up to date"), "b": (True, "dependency a reran")}
