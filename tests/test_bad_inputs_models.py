"""Bad model files, model cards and ``predict`` inputs: each is one clear line (no traceback), the right exit
code, and the outputs already on disk stay byte-identical; no model file runs code unless the user allows it.

Every case runs ``python -m medclf predict``: by its entry point in the test process in the default run
(:func:`badinput.predict_in_process`), and with ``--all`` also in a fresh process, as a user would (one
model-file case always does). A module fixture trains the
SVM and a small CNN on the synthetic set (outputs tree: models, cards, predictions) and scores once into
``scores.csv`` in that tree; bad cases write to that same ``--out``, which must be left untouched.
Exit codes (docs/predict.md): 2 a usage problem, nothing scored; 0 some images scored, each bad image one
``skipped <path>: <reason>`` line; 1 nothing could be scored.
"""

from __future__ import annotations

import builtins
import io
import json
import os
import pickle
import re
import shutil
import zipfile
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from badinput import assert_one_line_error, predict, predict_in_process, snapshot
from conftest import synthetic_params
from medclf.config import paths
from medclf.evaluation import records
from medclf.training import experiment
from medclf.models.files import file_sha256

#: A progress bar line of tqdm (decoding), drawn on stderr: not a message.
BAR = re.compile(r"\|.*\| *\d+/\d+ \[")


def messages(proc) -> list[str]:
    """The non-empty stderr lines of ``proc`` that are not progress bars."""
    return [line for line in proc.stderr.splitlines() if line.strip() and not BAR.search(line)]


class _Crafted:
    """An object whose unpickling calls ``open(marker, "w")``: any loader that runs pickle code creates it."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return builtins.open, (self.marker, "w")


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """Trained SVM (``.skops``) and CNN (``.keras``) with their cards and predictions, plus one predict CSV."""
    root = tmp_path_factory.mktemp("bad_models")
    params = synthetic_params(root, save_models=True)
    data = experiment.DataCache(params)
    runs = {name: experiment.run_model(name, params, data) for name in ("svm_pixels", "cnn_baseline_8")}
    out = paths.run_dir(params)
    models = {name: out / run.record["model_file"] for name, run in runs.items()}
    image = sorted((Path(params["data_root"]) / "test").rglob("*.jpeg"))[0]
    first = predict("--model", str(models["svm_pixels"]), str(image), "--out", str(out / "scores.csv"))
    assert first.returncode == 0, first.stderr[-2000:]
    return {"out": out, "models": models, "runs": runs, "data_root": Path(params["data_root"]), "image": image}


def _copy_model(tree: dict, name: str, folder: Path, card=None) -> Path:
    """The model ``name`` and its card copied into ``folder``; ``card(record)`` edits the card (returns it)."""
    folder.mkdir(parents=True, exist_ok=True)
    source = tree["models"][name]
    target = folder / source.name
    shutil.copy(source, target)
    record = json.loads(records.model_card_path(source).read_text())
    records.model_card_path(target).write_text(json.dumps(card(record) if card else record))
    return target


def _with_card_of(tree: dict, model: Path, name: str = "svm_pixels") -> Path:
    """A card for the bad ``model`` file: the real one of ``name``, so only the file is wrong."""
    shutil.copy(records.model_card_path(tree["models"][name]), records.model_card_path(model))
    return model


def _bind_card(model: Path) -> Path:
    """Make the card beside ``model`` record that file's hash (as a card written with it would)."""
    card = records.model_card_path(model)
    record = json.loads(card.read_text())
    record["model_sha256"] = file_sha256(model)
    card.write_text(json.dumps(record))
    return model


def _set(section: str, key: str, value):
    def edit(record):
        record[section][key] = value
        return record
    return edit


def _drop(section: str, key: str):
    def edit(record):
        del record[section][key]
        return record
    return edit


@pytest.fixture(params=["in_process", pytest.param("fresh_process", marks=pytest.mark.slow)])
def run_predict(request, capfd):
    """How a table case runs ``predict``: in this process, and (``--all``) in a fresh one as well."""
    if request.param == "fresh_process":
        return predict
    return lambda *args: predict_in_process(capfd, *args)


# ---------------------------------------------------------------------------------------------
# model files: (build(tree, folder) -> model path, needles in the one line)
# ---------------------------------------------------------------------------------------------

def _pickle_file(tree, folder):
    path = folder / "crafted.pkl"
    path.write_bytes(pickle.dumps(_Crafted(folder / "MARKER")))
    return _with_card_of(tree, path)


def _joblib_file(tree, folder):
    path = folder / "crafted.joblib"
    joblib.dump(_Crafted(folder / "MARKER"), path)
    # dumping does not run it; only loading would
    assert not (folder / "MARKER").exists()
    return _with_card_of(tree, path)


def _garbage_keras(tree, folder):
    path = folder / "garbage.keras"
    path.write_bytes(b"this is not a Keras model\n" * 20)
    return _with_card_of(tree, path, "cnn_baseline_8")


def _truncated_keras(tree, folder):
    data = tree["models"]["cnn_baseline_8"].read_bytes()
    path = folder / "truncated.keras"
    path.write_bytes(data[: len(data) // 2])
    return _with_card_of(tree, path, "cnn_baseline_8")


def _empty_keras(tree, folder):
    path = folder / "empty.keras"
    path.write_bytes(b"")
    return _with_card_of(tree, path, "cnn_baseline_8")


def _zip_without_config(tree, folder):
    path = folder / "other.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("notes.txt", "a zip, but not a Keras model")
    return _with_card_of(tree, path, "cnn_baseline_8")


def _wrong_suffix(tree, folder):
    path = folder / "model.h5"
    shutil.copy(tree["models"]["cnn_baseline_8"], path)
    return _with_card_of(tree, path, "cnn_baseline_8")


def _directory(tree, folder):
    path = folder / "model.keras"
    path.mkdir()
    return path


def _missing(tree, folder):
    return folder / "nope.keras"


def _untrusted_skops(tree, folder):
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    path = folder / "untrusted.skops"
    skops.io.dump(Pipeline([("run", FunctionTransformer(os.system))]), path)
    return _with_card_of(tree, path)


def _medclf_function_skops(tree, folder):
    """An SVM pipeline built around a medclf function (as before skops): refused, medclf is not trusted code."""
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from medclf.models.builders import _flatten_scaled

    path = folder / "old.skops"
    skops.io.dump(Pipeline([("flatten", FunctionTransformer(_flatten_scaled))]), path)
    return _with_card_of(tree, path)


def _garbage_skops(tree, folder):
    path = folder / "garbage.skops"
    path.write_bytes(b"\x00\x01 not a skops archive")
    return _with_card_of(tree, path)


MODEL_CASES = {
    "crafted_pickle": (_pickle_file, ("crafted.pkl", "pickle", "--allow-pickle")),
    "crafted_joblib": (_joblib_file, ("crafted.joblib", "pickle", "--allow-pickle")),
    "garbage_keras": (_garbage_keras, ("garbage.keras", "not a Keras archive")),
    "truncated_keras": (_truncated_keras, ("truncated.keras", "not a Keras archive")),
    "empty_keras": (_empty_keras, ("empty.keras", "not a Keras archive")),
    "zip_not_keras": (_zip_without_config, ("other.keras", "not a loadable Keras model")),
    "wrong_suffix": (_wrong_suffix, ("model.h5", "not a .keras or .skops")),
    "directory_as_model": (_directory, ("model.keras", "is a folder")),
    "missing_model": (_missing, ("nope.keras", "does not exist")),
    "skops_untrusted_type": (_untrusted_skops, ("untrusted.skops", "system", "does not load")),
    "skops_medclf_function": (_medclf_function_skops, ("old.skops", "_flatten_scaled", "does not load")),
    "garbage_skops": (_garbage_skops, ("garbage.skops", "not a skops archive")),
}


@pytest.mark.parametrize("case", MODEL_CASES)
def test_a_bad_model_file_is_one_line_and_runs_nothing(tree, tmp_path, case, run_predict):
    build, needles = MODEL_CASES[case]
    model = build(tree, tmp_path)
    before = snapshot(tree["out"])
    proc = run_predict("--model", str(model), str(tree["image"]), "--out", str(tree["out"] / "scores.csv"))
    assert_one_line_error(proc, *needles, code=2)
    assert not (tmp_path / "MARKER").exists(), "loading the model file ran code from it"
    assert snapshot(tree["out"]) == before


def test_a_crafted_pickle_in_a_fresh_process_is_one_line_and_runs_nothing(tree, tmp_path):
    """One case as a user runs it, in the default run too: nothing at start-up adds a line or runs the file."""
    test_a_bad_model_file_is_one_line_and_runs_nothing(tree, tmp_path, "crafted_pickle", predict)


@pytest.mark.slow
def test_allow_pickle_is_needed_and_its_help_names_the_risk(tree, tmp_path):
    """With --allow-pickle a pickle runs only when its card records its hash: a crafted file beside another
    model's card is refused before it runs; beside a card naming it, it is loaded (so the flag and the card
    are the only gates), and a pickled SVM scores like its .skops file."""
    help_text = predict("--help").stdout
    assert "--allow-pickle" in help_text and "runs any code" in " ".join(help_text.split())
    model = _pickle_file(tree, tmp_path)
    proc = predict("--model", str(model), str(tree["image"]), "--out", str(tmp_path / "p.csv"), "--allow-pickle")
    assert proc.returncode == 2 and "written for another model file" in proc.stderr
    assert not (tmp_path / "MARKER").exists(), "the pickle ran although its card names another file"
    _bind_card(model)
    proc = predict("--model", str(model), str(tree["image"]), "--out", str(tmp_path / "p.csv"), "--allow-pickle")
    assert proc.returncode == 2 and (tmp_path / "MARKER").exists()
    pickled = tmp_path / "svm.joblib"
    joblib.dump(tree["runs"]["svm_pixels"].model, pickled)
    _bind_card(_with_card_of(tree, pickled))
    test_dir = str(tree["data_root"] / "test")
    done = predict("--model", str(pickled), test_dir, "--out", str(tmp_path / "a.csv"), "--allow-pickle")
    safe = predict("--model", str(tree["models"]["svm_pixels"]), test_dir, "--out", str(tmp_path / "b.csv"))
    assert done.returncode == safe.returncode == 0, done.stderr[-2000:] + safe.stderr[-2000:]
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "a.csv"), pd.read_csv(tmp_path / "b.csv"))


@pytest.mark.slow
def test_the_svm_round_trips_through_predict_with_identical_probabilities(tree, tmp_path):
    """Saved the way the notebooks save it (run_model, save_models): a .skops file without medclf types, and a
    fresh ``python -m medclf predict`` reproduces predictions/<id>.csv exactly."""
    import skops.io

    model = tree["models"]["svm_pixels"]
    assert model.suffix == ".skops"
    assert all(not name.startswith("medclf") for name in skops.io.get_untrusted_types(file=model))
    stored = pd.read_csv(tree["out"] / "predictions" / "svm_pixels.csv")
    inputs = [str(tree["data_root"] / f) for f in stored["file"]]
    proc = predict("--model", str(model), *inputs, "--out", str(tmp_path / "p.csv"))
    assert proc.returncode == 0, proc.stderr[-2000:]
    frame = pd.read_csv(tmp_path / "p.csv")
    assert [Path(f).relative_to(tree["data_root"]).as_posix() for f in frame["file"]] == list(stored["file"])
    np.testing.assert_allclose(frame["probability"], stored["probability"], rtol=0, atol=1e-12)
    np.testing.assert_allclose(frame["probability"], tree["runs"]["svm_pixels"].p_test, rtol=0, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# model cards
# ---------------------------------------------------------------------------------------------

def _card_text(text: str | bytes):
    def build(tree, folder):
        model = _copy_model(tree, "svm_pixels", folder)
        records.model_card_path(model).write_bytes(text if isinstance(text, bytes) else text.encode())
        return model
    return build


def _card_edit(edit, name: str = "svm_pixels"):
    return lambda tree, folder: _copy_model(tree, name, folder, edit)


def _no_card(tree, folder):
    model = _copy_model(tree, "svm_pixels", folder)
    records.model_card_path(model).unlink()
    return model


CARD_CASES = {
    "missing_card": (_no_card, ("svm_pixels.json", "is missing", "save_models")),
    "card_not_json": (_card_text("{not json"), ("svm_pixels.json", "not readable JSON")),
    "card_a_list": (_card_text("[1, 2]"), ("svm_pixels.json", "not a results record")),
    "card_binary": (_card_text(b"\xff\xfe\x00 binary"), ("svm_pixels.json", "not readable JSON")),
    "image_size_string": (_card_edit(_set("spec", "image_size_used", "50")), ("image_size_used", "'50'")),
    "image_size_zero": (_card_edit(_set("spec", "image_size_used", 0)), ("image_size_used", "from 8 to 2048")),
    "image_size_negative": (_card_edit(_set("spec", "image_size_used", -5)), ("image_size_used", "-5")),
    "image_size_huge": (_card_edit(_set("spec", "image_size_used", 10**9)), ("image_size_used", "from 8 to 2048")),
    "image_size_bool": (_card_edit(_set("spec", "image_size_used", True)), ("image_size_used", "integer")),
    "missing_threshold": (_card_edit(_drop("evaluation", "threshold")), ("lacks evaluation.threshold",)),
    "missing_section": (_card_edit(lambda r: {k: v for k, v in r.items() if k != "spec"}), ("lacks spec.",)),
    "section_wrong_type": (_card_edit(lambda r: {**r, "params": [1, 2]}), ("lacks params.resize",)),
    "threshold_text": (_card_edit(_set("evaluation", "threshold", "high")), ("evaluation.threshold", "0 to 1")),
    "threshold_above_one": (_card_edit(_set("evaluation", "threshold", 3)), ("evaluation.threshold", "0 to 1")),
    "color_mode_unknown": (_card_edit(_set("spec", "color_mode", "cmyk")), ("spec.color_mode", "grayscale")),
    "resize_unknown": (_card_edit(_set("params", "resize", 7)), ("params.resize", "stretch")),
    "one_class_name": (_card_edit(_set("data", "class_names", ["NORMAL"])), ("class_names", "two distinct")),
    "class_names_numbers": (_card_edit(_set("data", "class_names", [0, 1])), ("class_names", "two distinct")),
    "class_names_same": (_card_edit(_set("data", "class_names", ["A", "A"])), ("class_names", "two distinct")),
    "positive_class_unknown": (_card_edit(_set("data", "positive_class", "TUMOUR")), ("TUMOUR", "not label 1")),
    "tta_bad_views": (_card_edit(_set("evaluation", "tta", {"used": True, "views": "x", "seed": 0,
                                                            "augmentation": {"flip": "horizontal"}})),
                      ("evaluation.tta", "views")),
    "card_of_another_svm": (_card_edit(_set("spec", "image_size_used", 64)), ("belongs to another model",)),
    "card_of_another_cnn": (_card_edit(_set("spec", "image_size_used", 64), "cnn_baseline_8"),
                            ("belongs to another model",)),
}


@pytest.mark.parametrize("case", CARD_CASES)
def test_a_bad_model_card_is_one_line(tree, tmp_path, case, run_predict):
    build, needles = CARD_CASES[case]
    model = build(tree, tmp_path / "m")
    before = snapshot(tree["out"])
    proc = run_predict("--model", str(model), str(tree["image"]), "--out", str(tree["out"] / "scores.csv"))
    assert_one_line_error(proc, *needles, code=2)
    assert snapshot(tree["out"]) == before


# ---------------------------------------------------------------------------------------------
# predict inputs: bad images beside a good one are skipped one line each; bad flags stop before scoring
# ---------------------------------------------------------------------------------------------

def _png(size: int = 16) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size), dtype=np.uint8)).save(buffer, "PNG")
    return buffer.getvalue()


def bomb_gif() -> bytes:
    """A valid 8×8 GIF whose header claims 65535×65535 pixels (four bytes changed): PIL's decompression bomb."""
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = b"\xff\xff\xff\xff"  # logical screen width and height, little-endian
    return bytes(data)


def _truncated_jpeg() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (64, 64), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()[:300]


def _file(name: str, data: bytes):
    def build(folder: Path) -> Path:
        (folder / name).write_bytes(data)
        return folder / name
    return build


def _link(name: str, target: str):
    def build(folder: Path) -> Path:
        (folder / name).symlink_to(target)
        return folder / name
    return build


def _dir_link(folder: Path) -> Path:
    (folder.parent / "elsewhere").mkdir(exist_ok=True)
    (folder / "linked").symlink_to(folder.parent / "elsewhere", target_is_directory=True)
    return folder / "linked"


BAD_IMAGES = {
    "decompression_bomb_gif": (_file("bomb.gif", bomb_gif()), "decompression bomb"),
    "truncated_jpeg": (_file("cut.jpeg", _truncated_jpeg()), "truncated"),
    "zero_byte_file": (_file("zero.png", b""), "empty file"),
    "text_named_png": (_file("notes.png", b"just some text, not a PNG\n"), "not a readable image"),
    "text_file": (_file("notes.txt", b"hello\n"), "not an image file"),
    "dangling_symlink": (_link("gone.png", "does-not-exist.png"), "broken symbolic link"),
    "looping_symlink": (_link("loop.png", "loop.png"), "symbolic link loop"),
    "symlink_to_folder": (_dir_link, "link to a folder"),
}


@pytest.mark.slow
@pytest.mark.parametrize("case", BAD_IMAGES)
def test_a_bad_image_beside_a_good_one_is_one_skipped_line(tree, tmp_path, case):
    build, reason = BAD_IMAGES[case]
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "good.png").write_bytes(_png())
    bad = build(folder)
    before = snapshot(tree["out"])
    out = tmp_path / "p.csv"
    proc = predict("--model", str(tree["models"]["svm_pixels"]), str(folder), "--out", str(out))
    assert proc.returncode == 0 and "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    assert len(messages(proc)) == 1, proc.stderr
    line = messages(proc)[0]
    assert line.startswith(f"skipped {bad}: ") and reason in line, line
    assert list(pd.read_csv(out)["file"]) == [str(folder / "good.png")]
    assert snapshot(tree["out"]) == before


@pytest.mark.slow
def test_a_batch_writes_the_good_images_and_lists_every_bad_one(tree, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    good = []
    for i in range(3):
        (folder / f"good{i}.png").write_bytes(_png(12 + i))
        good.append(str(folder / f"good{i}.png"))
    bad = [build(folder) for build, _ in BAD_IMAGES.values()]
    out = tmp_path / "p.csv"
    proc = predict("--model", str(tree["models"]["cnn_baseline_8"]), str(folder), str(tmp_path / "missing.png"),
                   "--out", str(out))
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert sorted(pd.read_csv(out)["file"]) == good
    lines = messages(proc)
    assert len(lines) == len(bad) + 1 and all(line.startswith("skipped ") for line in lines)
    for path, (_, reason) in zip(bad, BAD_IMAGES.values()):
        assert sum(f"skipped {path}:" in line and reason in line for line in lines) == 1, (path, proc.stderr)
    assert "3 images scored" in proc.stdout and f"{len(bad) + 1} files skipped" in proc.stdout


def _unwritable_dir(tmp_path: Path) -> Path:
    """A folder this process cannot create files in: ``/proc`` (root ignores permission bits)."""
    return Path("/proc") / "medclf-test" / "p.csv"


FLAG_CASES = {
    "out_is_a_folder": (lambda t, tmp: ["--out", str(t["out"] / "predictions")], ("--out", "is a folder")),
    "file_in_the_way": (lambda t, tmp: ["--out", str(t["out"] / "scores.csv" / "p.csv")],
                        ("--out", "is a file, not a folder")),
    "out_unwritable": (lambda t, tmp: ["--out", str(_unwritable_dir(tmp))], ("--out", "cannot be written")),
    "gradcam_is_a_file": (lambda t, tmp: ["--out", str(tmp / "p.csv"), "--gradcam", str(t["out"] / "scores.csv")],
                          ("--gradcam", "is a file")),
    "max_pixels_zero": (lambda t, tmp: ["--out", str(tmp / "p.csv"), "--max-image-pixels", "0"],
                        ("--max-image-pixels", "out of range")),
    "threshold_outside": (lambda t, tmp: ["--out", str(tmp / "p.csv"), "--threshold", "2"], ("--threshold", "0..1")),
}


@pytest.mark.parametrize("case", FLAG_CASES)
def test_a_bad_flag_is_one_line_before_anything_is_scored(tree, tmp_path, case, run_predict):
    flags, needles = FLAG_CASES[case]
    before = snapshot(tree["out"])
    proc = run_predict("--model", str(tree["models"]["svm_pixels"]), str(tree["image"]), *flags(tree, tmp_path))
    assert_one_line_error(proc, *needles, code=2)
    assert "images scored" not in proc.stdout
    assert snapshot(tree["out"]) == before


def test_an_empty_folder_is_one_line_and_exit_1(tree, tmp_path, run_predict):
    (tmp_path / "empty").mkdir()
    before = snapshot(tree["out"])
    proc = run_predict("--model", str(tree["models"]["svm_pixels"]), str(tmp_path / "empty"),
                       "--out", str(tree["out"] / "scores.csv"))
    assert_one_line_error(proc, "no image could be scored", "no files", code=1)
    assert snapshot(tree["out"]) == before


def test_a_tiny_pixel_limit_skips_every_larger_image(tree, tmp_path, run_predict):
    """--max-image-pixels is the limit: a 16×16 image is skipped under 100 pixels (between one and two times
    the limit, where PIL itself only warns) and scored under the default."""
    image = _file("good.png", _png(16))(tmp_path)
    proc = run_predict("--model", str(tree["models"]["svm_pixels"]), str(image), "--out", str(tmp_path / "p.csv"),
                       "--max-image-pixels", "200")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert "16×16 = 256 pixels, over max_image_pixels 200" in proc.stderr and not (tmp_path / "p.csv").exists()
    scored = run_predict("--model", str(tree["models"]["svm_pixels"]), str(image), "--out", str(tmp_path / "q.csv"))
    assert scored.returncode == 0 and list(pd.read_csv(tmp_path / "q.csv")["file"]) == [str(image)], scored.stderr
