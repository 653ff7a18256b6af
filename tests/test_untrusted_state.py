"""A run folder's state is input: journals, run.json, the lock and staging are checked, never followed
through a link, and a path they name never leaves the run folder (fast, no kernel)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from medclf.cli.run_all import journal_check
from medclf.config import paths
from medclf.core import io
from medclf.pipeline import plan, provenance, runlock, staging
from medclf.pipeline.plan import OrchestrationError

CHECK = journal_check(plan.REGISTRY)
GOOD_ENTRY = {"status": "ok", "file": "02_baselines.ipynb", "wall_s": 1.0}


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def place(tmp_path):
    """``(run folder, outside folder)``: a published tree and files a planted path aims at."""
    run = tmp_path / "out" / "synthetic" / "demo"
    io.write_text(run / "results" / "a.json", "a1")
    io.write_text(run / "run.json", "{}")
    outside = tmp_path / "outside"
    io.write_text(outside / "victim.txt", "keep me")
    io.write_text(outside / "folder" / "inner.txt", "keep me too")
    return run, outside


def plant_journal(run: Path, stem: str, **fields) -> Path:
    journal = paths.RunPaths(run).publish_journal(stem)
    plan_ = {"notebook": stem, "name": "baselines", "entry": GOOD_ENTRY, "moved": [], "removed": [], **fields}
    io.write_json(journal, plan_)
    return journal


def recover(run: Path) -> tuple[list[str], list]:
    recorded = []
    said = staging.recover(run, lambda name, entry: recorded.append((name, entry)), CHECK)
    return said, recorded


@pytest.mark.parametrize("relative", [True, False], ids=["relative", "absolute"])
def test_a_journal_removing_a_file_outside_the_run_folder_is_refused(place, relative):
    """Before: ``removed: ['../../../../../tmp/x']`` deleted that file on the next run."""
    run, outside = place
    victim = outside / "victim.txt"
    aim = os.path.relpath(victim, run) if relative else str(victim)
    journal = plant_journal(run, "02_baselines", removed=[aim])
    before = snapshot(outside)
    said, recorded = recover(run)
    assert snapshot(outside) == before and recorded == [] and not journal.exists()
    assert len(said) == 1 and said[0].startswith(f"refused the publish journal {journal}: its removed names")
    assert "nothing it names was moved or removed" in said[0]
    assert (run / "results" / "a.json").read_text() == "a1"


def test_a_journal_moving_from_outside_or_onto_run_state_is_refused(place):
    run, outside = place
    for fields in ({"moved": [str(outside / "victim.txt")]}, {"moved": ["../../../outside/victim.txt"]},
                   {"removed": ["run.json"]}, {"removed": ["results"]}, {"moved": ["results/../../x"]}):
        plant_journal(run, "02_baselines", **fields)
        said, recorded = recover(run)
        assert recorded == [] and len(said) == 1 and "refused the publish journal" in said[0], (fields, said)
    assert (run / "run.json").read_text() == "{}" and (run / "results" / "a.json").is_file()
    assert snapshot(outside) == {"folder/inner.txt": b"keep me too", "victim.txt": b"keep me"}


def test_a_journal_through_a_linked_folder_is_refused(place):
    """``results/x.json`` looks inside, but ``results`` links outside: resolved, it is refused."""
    run, outside = place
    (run / "figures").symlink_to(outside / "folder", target_is_directory=True)
    plant_journal(run, "02_baselines", removed=["figures/inner.txt"])
    said, _ = recover(run)
    assert "refused the publish journal" in said[0] and (outside / "folder" / "inner.txt").is_file()


@pytest.mark.parametrize("entry, problem", [
    ({"status": "ok", "file": "02_baselines.ipynb", "wall_s": "soon"}, "wall_s is 'soon'"),
    (["ok"], "it is a list"),
    ({"status": "failed", "file": "02_baselines.ipynb"}, "a publish is journaled only for 02_baselines.ipynb"),
    ({"status": "ok", "file": "06_compare.ipynb"}, "a publish is journaled only for 02_baselines.ipynb"),
])
def test_a_journal_entry_is_checked_like_a_notebook_result(place, entry, problem):
    """Before: the entry was written into run.json as the notebook's result, whatever it held."""
    run, _ = place
    plant_journal(run, "02_baselines", entry=entry)
    said, recorded = recover(run)
    assert recorded == [] and problem in said[0], said


def test_a_journal_for_another_notebook_name_is_refused(place):
    run, _ = place
    plant_journal(run, "02_baselines", name="compare")
    said, recorded = recover(run)
    assert recorded == [] and "'compare' is not the registered notebook of 02_baselines.ipynb" in said[0]


def test_a_well_formed_journal_is_still_finished(place):
    run, _ = place
    stage = staging.open_stage(run, "02_baselines")
    io.write_text(stage.dir / "results" / "b.json", "b")
    plant_journal(run, "02_baselines", moved=["results/b.json"], removed=["results/a.json"])
    said, recorded = recover(run)
    assert recorded == [("baselines", GOOD_ENTRY)] and said[0].startswith("recovered: finished publishing")
    assert (run / "results" / "b.json").read_text() == "b" and not (run / "results" / "a.json").exists()


def test_a_linked_staging_folder_is_unlinked_not_emptied(place):
    """Before: a ``.staging`` linking to a folder had that folder's contents removed."""
    run, outside = place
    (run / ".staging").symlink_to(outside / "folder", target_is_directory=True)
    before = snapshot(outside)
    said, _ = recover(run)
    assert snapshot(outside) == before and not (run / ".staging").exists()
    assert len(said) == 1 and said[0].startswith(f"removed {run / '.staging'}, a symbolic link to")


def test_links_inside_staging_are_removed_not_followed(place):
    run, outside = place
    (run / ".staging").mkdir()
    (run / ".staging" / "02_baselines").symlink_to(outside / "folder", target_is_directory=True)
    (run / ".staging" / "03_transfer.publish.json").symlink_to(outside / "victim.txt")
    before = snapshot(outside)
    said, recorded = recover(run)
    assert snapshot(outside) == before and recorded == [] and len(said) == 2, said
    assert not (run / ".staging").exists()
    # and a new stage is made as a plain folder afterwards
    assert not staging.open_stage(run, "02_baselines").dir.is_symlink()


def test_a_linked_lock_is_replaced_by_a_plain_file_and_its_target_kept(place):
    """Before: the lock was opened through the link, truncating its target and writing the lock's JSON there."""
    run, outside = place
    victim = outside / "victim.txt"
    (run / ".lock").symlink_to(victim)
    said = []
    with runlock.hold(run, {"started": "now"}, said.append) as lock:
        assert not lock.is_symlink() and json.loads(lock.read_text())["pid"] == os.getpid()
    assert victim.read_text() == "keep me"
    assert said == [f"note: removed {run / '.lock'}, a symbolic link to {victim} (left as it was); the lock is a "
                    "plain file"]


def test_a_linked_run_json_is_refused_in_one_line(place):
    run, outside = place
    (run / "run.json").unlink()
    io.write_text(outside / "run.json", json.dumps({"notebooks": {}}))
    (run / "run.json").symlink_to(outside / "run.json")
    with pytest.raises(provenance.RunRecordError) as caught:
        provenance.read_run_info(run)
    line = str(caught.value)
    assert "\n" not in line and "is a symbolic link" in line and "delete the link" in line


def test_a_link_in_the_published_tree_stops_the_run_in_one_line(place):
    run, outside = place
    staging.check_tree(run)  # a plain tree passes
    (run / "figures").symlink_to(outside / "folder", target_is_directory=True)
    (run / "results" / "b.json").symlink_to(outside / "victim.txt")
    with pytest.raises(OrchestrationError) as caught:
        staging.check_tree(run)
    line = str(caught.value)
    assert "\n" not in line and line.startswith(f"{run / 'figures'} is a symbolic link") and "(and 1 more)" in line


@pytest.mark.parametrize("relative, inside", [
    ("results/a.json", True), ("results/new/x.json", True), ("../x", False), ("/etc/passwd", False),
    ("", False), (".", False), ("results/../../x", False), (3, False), (None, False), ("a\0b", False)])
def test_inside_keeps_a_state_path_within_its_folder(place, relative, inside):
    run, _ = place
    assert (paths.RunPaths(run).inside(relative) is not None) is inside
