"""A copied run folder with planted state: journals aiming outside it (relative and absolute), a symlinked
``.lock``, ``run.json`` and ``.staging``, and a swapped model card. ``run_all.py`` and ``predict`` run on it as
a user runs them (fresh processes); every file outside the folder stays byte-identical and each plant is
reported. Works on a copy of the shared demo run."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import user_env
from medclf.config import paths as config

pytestmark = pytest.mark.slow


def fingerprints(*folders: Path, leave_out: Path | None = None) -> dict[str, str]:
    """sha256 of every file under ``folders`` (links not followed), leaving out the tree ``leave_out``."""
    found = {}
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            if leave_out is not None and Path(dirpath).resolve().is_relative_to(leave_out.resolve()):
                continue
            for name in filenames:
                path = Path(dirpath, name)
                found[str(path)] = ("link " + os.readlink(path) if path.is_symlink()
                                    else hashlib.sha256(path.read_bytes()).hexdigest())
    return found


def medclf_run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(config.PROJECT_ROOT / "run_all.py"), *args], capture_output=True,
                          text=True, timeout=600, cwd=config.PROJECT_ROOT, env=user_env())


def predict(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "medclf", "predict", *args], capture_output=True, text=True,
                          timeout=600, cwd=config.PROJECT_ROOT, env=user_env())


def journal(run: Path, stem: str, name: str, **fields) -> None:
    entry = {"status": "ok", "file": f"{stem}.ipynb", "wall_s": 1.0}
    (run / ".staging").mkdir(exist_ok=True)
    (run / ".staging" / f"{stem}.publish.json").write_text(json.dumps(
        {"notebook": stem, "name": name, "entry": entry, "moved": [], "removed": [], **fields}))


def test_a_planted_run_folder_changes_nothing_outside_it_and_each_plant_is_reported(demo_run, tmp_path):
    first, overrides, out = demo_run
    assert first.returncode == 0, first.stdout + first.stderr
    received = tmp_path / "received"
    run = received / "synthetic" / "demo"
    shutil.copytree(out, run)
    # output_dir is in the parameters' hash, so the copy reruns its notebooks: one is enough here
    moved = [*overrides, "-p", f"output_dir={received}", "--only", "eda"]
    outside = tmp_path / "outside"
    for name in ("victim_rel.txt", "victim_abs.txt", "moved_from.txt", "lock_target.txt", "folder/inner.txt"):
        (outside / name).parent.mkdir(parents=True, exist_ok=True)
        (outside / name).write_text(f"{name}: keep me\n")
    shutil.copy(run / "run.json", outside / "run.json")
    journal(run, "02_baselines", "baselines", removed=[os.path.relpath(outside / "victim_rel.txt", run)])
    journal(run, "03_transfer", "transfer", removed=[str(outside / "victim_abs.txt")],
            moved=[str(outside / "moved_from.txt")])
    journal(run, "06_compare", "compare", entry={"status": "ok", "file": "06_compare.ipynb", "wall_s": "never"})
    (run / ".lock").symlink_to(outside / "lock_target.txt")
    (run / "run.json").unlink()
    (run / "run.json").symlink_to(outside / "run.json")
    keras_models = sorted((run / "models").glob("*.keras"))
    assert len(keras_models) >= 2, keras_models
    model, donor = keras_models[:2]
    shutil.copy(donor.with_suffix(".json"), model.with_suffix(".json"))  # the card of another model
    demo_root = out.parents[1]
    before = fingerprints(outside, demo_root, leave_out=out) | fingerprints(tmp_path, leave_out=received)

    refused = medclf_run(*moved)
    err = refused.stderr.strip().splitlines()
    assert refused.returncode == 2 and len(err) == 1, refused.stdout + refused.stderr
    assert err[0].startswith(f"error: {run / 'run.json'} is a symbolic link (to {outside / 'run.json'})"), err

    (run / "run.json").unlink()  # what the line says to do; a real record in its place
    shutil.copy(outside / "run.json", run / "run.json")
    done = medclf_run(*moved)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    notes = [line for line in done.stdout.splitlines() if line.startswith("note: ")]
    assert any(f"removed {run / '.lock'}, a symbolic link to {outside / 'lock_target.txt'}" in n for n in notes), notes
    for stem, why in (("02_baselines", "its removed names"), ("03_transfer", "its moved names"),
                      ("06_compare", "wall_s is 'never'")):
        assert any(f"refused the publish journal {run / '.staging' / stem}.publish.json" in n and why in n
                   for n in notes), (stem, notes)
    assert json.loads((run / "run.json").read_text())["notebooks"]["compare"].get("wall_s") != "never"

    (run / ".staging").symlink_to(outside / "folder", target_is_directory=True)
    again = medclf_run(*moved)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"note: removed {run / '.staging'}, a symbolic link to {outside / 'folder'}" in again.stdout

    test_images = demo_root / "synthetic_data" / "test"
    swapped = predict("--model", str(model), str(test_images), "--out", str(run / "p.csv"))
    err = swapped.stderr.strip().splitlines()
    assert swapped.returncode == 2 and len(err) == 1, swapped.stdout + swapped.stderr
    assert str(model) in err[0] and str(model.with_suffix(".json")) in err[0] and not (run / "p.csv").exists()
    assert "was written for another model file" in err[0]

    assert fingerprints(outside, demo_root, leave_out=out) | fingerprints(tmp_path, leave_out=received) == before
