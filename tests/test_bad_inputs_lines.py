"""Inputs that used to end in a Python traceback: each is now one line naming the file or key, what is wrong
and what to do, exit code 2, and nothing half-written. Where the user's path is the command line
(``run_all.py``, ``python -m medclf predict`` / ``results``), the case runs in a fresh process kept cheap
(``--list``, or a refusal before the model registry loads); parameter files and the decode cache run in
this process, which is their real path.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import badinput
from badinput import assert_one_line_error, snapshot
from medclf.config import params as params_module, paths
from medclf.config.params import ParamError, load_params, read_yaml

#: A name one byte per character longer than any Linux file system takes (NAME_MAX is 255).
LONG = "n" * 300


def _args(tmp: Path, *args: str) -> list[str]:
    """``--list`` with this test's data, output and cache folders, then ``args`` (later ``-p`` wins)."""
    return ["--list", "-p", f"output_dir={tmp / 'out'}", "-p", f"cache_dir={tmp / 'cache'}",
            "-p", f"data_root={tmp / 'syn'}", *args]


def _params_copy(tmp: Path) -> Path:
    folder = tmp / "params"
    shutil.copytree(paths.PARAMS_DIR, folder)
    return folder


# --------------------------------------------------------------------------- parameter files


def test_a_parameter_file_that_is_not_utf8_is_one_line(tmp_path):
    folder = _params_copy(tmp_path)
    default = folder / "default.yaml"
    default.write_bytes(default.read_bytes() + b"# \xff\n")
    for call in (lambda: read_yaml(default), lambda: load_params(params_dir=folder)):
        with pytest.raises(ParamError) as info:
            call()
        message = str(info.value)
        assert "\n" not in message and str(default) in message and "UTF-8" in message and "0xff" in message


@pytest.mark.parametrize("section", ["per_dataset:\n  - synthetic\n", "per_dataset:\n  synthetic: [seed]\n"])
def test_a_per_dataset_section_that_is_not_a_mapping_is_one_line(tmp_path, section):
    folder = _params_copy(tmp_path)
    profile = folder / "profiles" / "demo.yaml"
    text = profile.read_text()
    assert "per_dataset" not in text  # the demo profile has none: the appended one is the only one
    profile.write_text(text + section)
    with pytest.raises(ParamError) as info:
        load_params("synthetic", "demo", params_dir=folder)
    message = str(info.value)
    assert "\n" not in message and str(profile) in message and "per_dataset" in message and "mapping" in message


def test_an_empty_baselines_list_is_refused_in_one_line():
    from medclf.pipeline.plan import registered_models

    known, augmentable = registered_models()
    with pytest.raises(ParamError, match=r"parameter 'baselines' is empty: .* --only") as info:
        params_module.check_model_names({**load_params(), "baselines": []}, known, augmentable)
    assert "\n" not in str(info.value)


def test_an_empty_transfer_list_is_refused_before_any_notebook(tmp_path):
    proc = badinput.run_all(*_args(tmp_path, "-p", "transfer_models=[]"))
    assert_one_line_error(proc, "parameter 'transfer_models' is empty", "--only")
    assert snapshot(tmp_path / "out") == {}


# --------------------------------------------------------------------------- run.json


BAD_RUN_RECORDS = {
    "a list": ("[1, 2]", "holds a list"),
    "a string": ('"ok"', "holds a str"),
    "notebooks as a list": ('{"notebooks": []}', "notebooks is []"),
    "an entry as a string": ('{"notebooks": {"eda": "ok"}}', "notebooks.eda is a str"),
    "a wall time as text": ('{"notebooks": {"eda": {"status": "ok", "ok_wall_s": "12"}}}', "notebooks.eda.ok_wall_s"),
    "machine as a string": ('{"machine": "EPYC", "notebooks": {}}', "machine is 'EPYC'"),
    "deps as a list": ('{"notebooks": {"compare": {"ok_inputs": {"deps": ["eda"]}}}}', "ok_inputs.deps"),
    "not JSON": ('{"notebooks": ', "not JSON"),
}


@pytest.mark.parametrize("case", list(BAD_RUN_RECORDS))
def test_a_run_json_of_the_wrong_shape_is_one_line_for_the_runner(tmp_path, case):
    content, needle = BAD_RUN_RECORDS[case]
    record = tmp_path / "out" / "synthetic" / "demo" / "run.json"
    record.parent.mkdir(parents=True)
    record.write_text(content)
    before = snapshot(tmp_path / "out")
    proc = badinput.run_all(*_args(tmp_path))
    assert_one_line_error(proc, str(record), needle, "delete it")
    assert snapshot(tmp_path / "out") == before and not (tmp_path / "syn").exists()


@pytest.mark.parametrize("case", ["notebooks as a list", "a wall time as text", "machine as a string"])
def test_a_run_json_of_the_wrong_shape_is_one_line_for_results(tmp_path, case):
    content, needle = BAD_RUN_RECORDS[case]
    run = tmp_path / "out" / "folder" / "quick"
    (run / "tables").mkdir(parents=True)
    (run / "run.json").write_text(content)
    (run / "tables" / "headline.csv").write_text("family,model_id\nsvm,svm_pixels\n")
    proc = badinput.run(["-m", "medclf", "results", str(tmp_path / "out")])
    assert_one_line_error(proc, str(run / "run.json"), needle)


# --------------------------------------------------------------------------- environment


def test_another_keras_backend_is_one_line_at_start_up(tmp_path):
    proc = badinput.run_all(*_args(tmp_path), env={"KERAS_BACKEND": "jax"})
    assert_one_line_error(proc, "KERAS_BACKEND=jax", "TensorFlow backend", "KERAS_BACKEND=tensorflow")
    proc = badinput.predict("--model", str(tmp_path / "model.keras"), str(tmp_path), env={"KERAS_BACKEND": "jax"})
    assert_one_line_error(proc, "KERAS_BACKEND=jax", "TensorFlow backend")


def test_another_keras_backend_in_keras_json_is_one_line(tmp_path):
    home = tmp_path / "keras_home"
    home.mkdir()
    (home / "keras.json").write_text(json.dumps({"backend": "jax", "floatx": "float32"}))
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    proc = subprocess.run([sys.executable, badinput.RUN_ALL, *_args(tmp_path)], capture_output=True, text=True,
                          env={**env, "KERAS_HOME": str(home)}, cwd=paths.PROJECT_ROOT, timeout=300)
    assert_one_line_error(proc, str(home / "keras.json"), '"backend": "jax"', "TensorFlow backend")


def _closed_stderr(args: list[str]) -> subprocess.CompletedProcess:
    """``python <args> 2>&-``: the child starts with file descriptor 2 closed."""
    return subprocess.run([sys.executable, *args], stdout=subprocess.PIPE, text=True, cwd=paths.PROJECT_ROOT,
                          preexec_fn=lambda: os.close(2), timeout=300)


def test_a_closed_stderr_keeps_the_runners_exit_code(tmp_path):
    listed = _closed_stderr([badinput.RUN_ALL, *_args(tmp_path)])
    assert listed.returncode == 0 and "would run" in listed.stdout and "Traceback" not in listed.stdout
    refused = _closed_stderr([badinput.RUN_ALL, *_args(tmp_path, "-p", "seed=x")])
    assert refused.returncode == 2 and "Traceback" not in refused.stdout


def test_a_closed_stderr_keeps_predicts_exit_code(tmp_path):
    from conftest import synthetic_params
    from medclf.training import experiment

    params = synthetic_params(tmp_path, save_models=True)
    run = experiment.run_model("svm_pixels", params, experiment.DataCache(params))
    model = paths.run_dir(params) / run.record["model_file"]
    image = sorted((Path(params["data_root"]) / "test").rglob("*.jpeg"))[0]
    scored = _closed_stderr(["-m", "medclf", "predict", "--model", str(model), str(image),
                             "--out", str(tmp_path / "p.csv")])
    assert scored.returncode == 0 and (tmp_path / "p.csv").is_file() and "Traceback" not in scored.stdout


# --------------------------------------------------------------------------- file names too long


@pytest.mark.parametrize("key", ["output_dir", "cache_dir", "data_root", "weights"])
def test_a_path_parameter_with_a_name_too_long_is_one_line(tmp_path, key):
    proc = badinput.run_all(*_args(tmp_path, "-p", f"{key}={tmp_path / LONG / 'x'}"))
    assert_one_line_error(proc, f"parameter '{key}'", "300 bytes", "shorter path")
    assert not (tmp_path / "out").exists() and not (tmp_path / "cache").exists()


def test_a_predict_path_too_long_is_one_line(tmp_path):
    proc = badinput.predict("--model", str(tmp_path / "m.keras"), str(tmp_path), "--out", str(tmp_path / f"{LONG}.csv"))
    assert_one_line_error(proc, "--out", "304 bytes", "shorter path")


def test_a_results_page_name_too_long_is_one_line(tmp_path):
    (tmp_path / "out").mkdir()
    proc = badinput.run(["-m", "medclf", "results", str(tmp_path / "out"), "--update", str(tmp_path / f"{LONG}.md")])
    assert_one_line_error(proc, "File name too long", "give another path")


# --------------------------------------------------------------------------- decode cache on a full disk


def test_a_full_disk_while_caching_drops_the_entry_and_goes_on(make_tree, folder_params, tmp_path, capsys,
                                                              monkeypatch):
    import medclf.data as data

    root = make_tree({"": {"A": 10, "B": 10}})
    params = folder_params(root, val_fraction=0.2, test_fraction=0.2)
    real_savez = np.savez

    def savez_then_full(handle, **arrays):
        handle.write(b"PK\x03\x04 half an archive")  # what a write cut short leaves
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(data.cache.np, "savez", savez_then_full)
    capsys.readouterr()
    loaded = data.load_dataset(params)
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "cache file" in line]
    assert len(notes) == 1 and "could not be written" in notes[0] and os.strerror(errno.ENOSPC) in notes[0]
    assert "Traceback" not in err
    cache_folder = tmp_path / "cache" / "folder"
    assert not cache_folder.exists() or list(cache_folder.iterdir()) == []  # no partial or temporary file
    monkeypatch.setattr(data.cache.np, "savez", real_savez)
    again = data.load_dataset(params)  # decoded again, now cached
    np.testing.assert_array_equal(loaded.images, again.images)
    assert len(list(cache_folder.glob("*.npz"))) == 1
