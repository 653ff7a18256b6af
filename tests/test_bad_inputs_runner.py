"""Bad input to ``run_all.py``, as a user types it: every case is one line on stderr, exit 2, no traceback,
before any kernel starts, and the outputs already on disk stay byte-identical.

Categories: data roots (checked by :mod:`medclf.data.preflight` before the model registry, hence before
TensorFlow), parameters (type, range, names), filesystem faults (folders that cannot be written,
damaged cache, marker and download files). Cases that need permission bits run with the
DAC-override capabilities dropped when the tests run as root (``setpriv``), since root ignores them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import badinput
from badinput import assert_one_line_error, snapshot

#: Run ``run_all.main`` in a fresh process and report on stdout whether TensorFlow or Keras was imported.
RUN_AND_REPORT_IMPORTS = ("import sys; from medclf.cli.run_all import main; code = main(sys.argv[1:]); "
                          "print('heavy imports:', sorted(m for m in ('tensorflow', 'keras') if m in sys.modules)); "
                          "sys.exit(code)")


def _png(path: Path, value: int = 0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((8, 8), value, np.uint8)).save(path)


def _classes(root: Path, counts: dict[str, int]) -> Path:
    for name, n in counts.items():
        for i in range(n):
            _png(root / name / f"{name.lower()}{i}_x.png", 40 if name == "A" else 200)
    return root


@pytest.fixture
def work(tmp_path):
    """``tmp_path`` with a previous run's outputs and a cache entry in place (to prove they stay untouched)."""
    run = tmp_path / "out" / "folder" / "quick"
    for rel, text in (("run.json", '{"status": "ok"}\n'), ("reports/index.html", "<html>old report</html>\n"),
                      ("notebooks/01_eda.ipynb", '{"cells": []}\n'), ("tables/summary.csv", "model,auc\nsvm,0.9\n")):
        (run / rel).parent.mkdir(parents=True, exist_ok=True)
        (run / rel).write_text(text)
    (tmp_path / "cache" / "folder").mkdir(parents=True)
    (tmp_path / "cache" / "folder" / "older.npz").write_bytes(b"kept as it is")
    return tmp_path


def _args(tmp: Path, *args: str) -> list[str]:
    """This test's output and cache folders, then ``args`` (which win: later ``-p`` overrides earlier)."""
    return ["-p", f"output_dir={tmp / 'out'}", "-p", f"cache_dir={tmp / 'cache'}", *args]


def _unprivileged() -> list[str]:
    """A command prefix under which permission bits apply: nothing for a normal user; for root, setpriv
    without the capabilities that override file permissions (skips the test when that is not possible)."""
    if os.geteuid() != 0:
        return []
    if not shutil.which("setpriv"):
        pytest.skip("running as root without setpriv: permission bits cannot be tested")
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search"]


def _run(tmp: Path, *args: str, prefix: list[str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python run_all.py <args>`` with this test's output and cache folders, in a fresh process (the
    timeout stops a check that let a real run through)."""
    if not prefix:
        return badinput.run_all(*_args(tmp, *args), timeout=timeout)
    return subprocess.run([*prefix, sys.executable, badinput.RUN_ALL, *_args(tmp, *args)], cwd=badinput.paths.PROJECT_ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _chmod(path: Path, mode: int, request) -> None:
    path.chmod(mode)
    request.addfinalizer(lambda: path.chmod(0o755))


# --------------------------------------------------------------------------- data roots


def _a_file(tmp):
    (tmp / "passwd").write_text("root:x:0:0\n")
    return tmp / "passwd"


def _empty(tmp):
    (tmp / "empty").mkdir()
    return tmp / "empty"


def _flat(tmp):
    for i in range(6):
        _png(tmp / "flat" / f"img{i}.png")
    return tmp / "flat"


def _one_class(tmp):
    return _classes(tmp / "one", {"A": 12})


@pytest.mark.parametrize("make, needles", [
    (_a_file, ("passwd", "is a file, not a folder", "--data-root")),
    (_empty, ("empty", "is empty", "one folder per class")),
    (_flat, ("flat", "6 images", "no class folders")),
    (_one_class, ("one", "only one class folder (A)", "two")),
], ids=["a-file", "empty-folder", "flat-images", "one-class"])
def test_an_unusable_data_root_is_one_line_in_seconds_before_any_kernel(work, make, needles):
    root, before = make(work), snapshot(work / "out")
    folders = sorted(p for p in work.rglob("*") if p.is_dir())
    started = time.monotonic()
    proc = badinput.run(["-c", RUN_AND_REPORT_IMPORTS, *_args(work, "--dataset", "folder", "--data-root", str(root))])
    took = time.monotonic() - started
    print(f"{root.name}: exit {proc.returncode} in {took:.2f} s")
    assert_one_line_error(proc, str(root), *needles)
    assert took < 10, f"took {took:.1f} s"
    assert "heavy imports: []" in proc.stdout  # answered before the model registry (Keras, TensorFlow) loads
    assert snapshot(work / "out") == before
    assert sorted(p for p in work.rglob("*") if p.is_dir()) == folders  # no notebooks/ or run folder made


def _missing(tmp):
    return tmp / "nowhere"


def _too_few(tmp):
    return _classes(tmp / "few", {"A": 2, "B": 2})


def _class_is_a_file(tmp):
    root = _classes(tmp / "cls", {"A": 12})
    (root / "B").write_text("not a folder")
    return root


def _three_classes(tmp):
    return _classes(tmp / "three", {"A": 12, "B": 12, "C": 12})


def _test_split_lacks_a_class(tmp):
    root = _classes(tmp / "split" / "train", {"A": 12, "B": 12}).parent
    _classes(root / "test", {"A": 4})
    return root


def _dangling_root(tmp):
    (tmp / "gone").symlink_to(tmp / "was-here")
    return tmp / "gone"


@pytest.mark.parametrize("make, extra, needles", [
    (_missing, [], ("nowhere", "does not exist", "--data-root")),
    (_too_few, [], ("few", "only 4 patient groups", "split_mode=cell")),
    (_too_few, ["-p", "split_mode=cell"], ("few", "too few images (4)", "add images")),
    (_class_is_a_file, ["-p", "class_names=[A, B]"], ("cls/B", "not a folder")),
    (_class_is_a_file, [], ("only one class folder (A)", "1 files beside them are ignored")),
    (_three_classes, [], ("3 class folders (A, B, C)", "class_names")),
    (_test_split_lacks_a_class, [], ("split/test", "only one class folder (A)")),
    (_dangling_root, [], ("gone", "broken symbolic link")),
], ids=["missing", "too-few-images", "too-few-images-cell", "class-folder-is-a-file-named",
        "class-folder-is-a-file-found", "three-classes", "official-test-lacks-a-class", "dangling-root-link"])
def test_a_data_root_that_cannot_be_used_is_one_line(work, make, extra, needles):
    root, before = make(work), snapshot(work)
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), *extra)
    assert_one_line_error(proc, *needles)
    assert snapshot(work) == before


def test_an_unreadable_data_root_is_one_line(work, request):
    root = _classes(work / "locked", {"A": 12, "B": 12})
    _chmod(root, 0o000, request)
    before = snapshot(work / "out")
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), "--list", prefix=_unprivileged())
    assert_one_line_error(proc, str(root), "permission denied", "chmod")
    assert snapshot(work / "out") == before


def test_broken_and_looping_links_and_an_unreadable_subfolder_are_listed_as_skipped(work, request):
    root = _classes(work / "links", {"A": 12, "B": 12})
    (root / "A" / "dangling.png").symlink_to(work / "no-such-image.png")
    (root / "B" / "loop.png").symlink_to("loop.png")
    (root / "B" / "private").mkdir()
    _chmod(root / "B" / "private", 0o000, request)
    before = snapshot(work)
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), "--list", prefix=_unprivileged())
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and proc.stderr == ""
    skipped = next(line for line in proc.stdout.splitlines() if "files skipped" in line)
    assert "3 files skipped" in skipped
    assert "A/dangling.png (broken symbolic link" in skipped and "B/loop.png (symbolic link loop)" in skipped
    assert "B/private/ (unreadable folder" in skipped
    assert "data: 24 images" in proc.stdout and "01_eda" in proc.stdout
    assert snapshot(work) == before


# --------------------------------------------------------------------------- parameters


@pytest.mark.parametrize("params, needles", [
    (["image_size=big"], ("'image_size' must be an integer", "'big'")),
    (["image_size=20000"], ("'image_size' is out of range", "20000", "2048")),
    (["image_size=4"], ("'image_size' is out of range", "8")),
    (["val_fraction=0.7"], ("'val_fraction' is out of range", "0.7", "0.5")),
    (["test_fraction=0"], ("'test_fraction' is out of range",)),
    (["val_fraction=0.5", "test_fraction=0.45"], ("'val_fraction' + 'test_fraction'", "0.9")),
    (["target_sensitivity=1.0"], ("'target_sensitivity' is out of range",)),
    (["bootstrap_replicates=-1"], ("'bootstrap_replicates' is out of range",)),
    (["bootstrap_replicates=1000000000"], ("'bootstrap_replicates' is out of range", "100000")),
    (["patience=-1"], ("'patience' is out of range",)),
    (["max_epochs=0"], ("'max_epochs' is out of range",)),
    (["seed=-3"], ("'seed' is out of range",)),
    (["split_mode=patients"], ("'split_mode' must be one of", "did you mean patient")),
    (["image_sise=64"], ("unknown parameter 'image_sise'", "did you mean image_size")),
    (["baselines=[svm_pixel]"], ("'baselines' names unknown model 'svm_pixel'", "did you mean svm_pixels")),
    (["model_overrides={cnn_deepr: {epochs: 2}}"], ("'model_overrides' names unknown model 'cnn_deepr'",)),
    (["model_overrides={cnn_deeper: {epochs: 0}}"], ("'model_overrides.cnn_deeper.epochs' is out of range",)),
    (["baselines=[svm_pixels,"], ("'baselines' must be a list",)),
    (["output_dir="], ("'output_dir' must not be null",)),
    (["weights=backbone.h5"], ("'weights'", "relative path")),
    (["weights=/no/such/backbone.h5"], ("'weights'", "no such file")),
    (["no_equals_sign"], ("override 'no_equals_sign' must look like key=value",)),
], ids=lambda v: " ".join(v) if isinstance(v, list) else "")
def test_a_bad_parameter_is_one_line_naming_the_key(work, params, needles):
    root = _classes(work / "data", {"A": 12, "B": 12})
    before = snapshot(work)
    overrides = [arg for p in params for arg in ("-p", p)]
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), *overrides)
    assert_one_line_error(proc, *needles)
    assert snapshot(work) == before


@pytest.mark.parametrize("args, needles", [
    (["--profile", "quik"], ("'profile' must be one of", "did you mean quick")),
    (["--dataset", "chest_xrays"], ("'dataset' must be one of", "did you mean chest_xray")),
    (["--only", "edaa"], ("unknown notebook 'edaa'",)),
], ids=["unknown-profile", "unknown-dataset", "unknown-notebook"])
def test_an_unknown_name_on_the_command_line_is_one_line(work, args, needles):
    before = snapshot(work)
    proc = _run(work, *args)
    assert_one_line_error(proc, *needles)
    assert snapshot(work) == before


def test_images_too_big_for_memory_are_refused_before_decoding(work):
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    per_class = int(have / (2048 * 2048 * 3 * 2 * 2)) + 10  # 2 classes of rgb 2048-px arrays > half of memory
    root = work / "many"
    png = (_classes(work / "one-image", {"A": 1}) / "A" / "a0_x.png").read_bytes()
    for name in ("A", "B"):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            (root / name / f"{name}{i}.png").write_bytes(png)
    before = snapshot(work / "out")
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), "-p", "image_size=2048", "-p", "color_mode=rgb")
    assert_one_line_error(proc, "'image_size' = 2048", "GiB of memory", "give -p image_size=")
    assert snapshot(work / "out") == before


# --------------------------------------------------------------------------- filesystem faults


def test_a_read_only_output_folder_is_one_line_before_any_kernel(work, request):
    root = _classes(work / "data", {"A": 12, "B": 12})
    _chmod(work / "out" / "folder" / "quick" / "reports", 0o555, request)
    before = snapshot(work)
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), prefix=_unprivileged())
    assert_one_line_error(proc, "'output_dir'", "reports is not writable", "-p output_dir=")
    assert snapshot(work) == before


def test_a_read_only_parent_of_a_new_output_folder_is_one_line(work, request):
    root = _classes(work / "data", {"A": 12, "B": 12})
    (work / "shared").mkdir()
    _chmod(work / "shared", 0o555, request)
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), "-p", f"output_dir={work / 'shared' / 'out'}",
                prefix=_unprivileged())
    assert_one_line_error(proc, "'output_dir'", f"{work / 'shared'} is not writable", "cannot be created")
    assert list((work / "shared").iterdir()) == []


@pytest.mark.parametrize("key", ["output_dir", "cache_dir"])
def test_an_output_or_cache_folder_that_is_a_file_is_one_line(work, key):
    root = _classes(work / "data", {"A": 12, "B": 12})
    (work / "a-file").write_text("precious")
    before = snapshot(work)
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), "--list", "-p", f"{key}={work / 'a-file'}")
    assert_one_line_error(proc, f"'{key}'", "a-file is a file, not a folder")
    assert snapshot(work) == before


def test_a_damaged_cache_file_is_reported_by_list_and_left_for_the_run_to_rebuild(work):
    from medclf.config.params import load_params
    from medclf.data.preflight import check_folder

    root = _classes(work / "data", {"A": 12, "B": 12})
    params = load_params("folder", "quick", str(root), {"output_dir": str(work / "out"), "cache_dir": str(work / "cache")})
    entry = check_folder(root, params).cache_file
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_bytes(b"PK\x03\x04 cut short")
    before = snapshot(work)
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), "--list")
    assert proc.returncode == 0 and proc.stderr == "", proc.stdout + proc.stderr
    assert f"cache file {entry} is unusable (not a readable .npz archive" in proc.stdout
    assert "a run deletes it and decodes again" in proc.stdout
    assert snapshot(work) == before


def test_a_damaged_synthetic_marker_beside_foreign_files_is_one_line_and_deletes_nothing(work):
    root = work / "syn"
    _classes(root / "train", {"NORMAL": 3, "PNEUMONIA": 3})
    (root / ".synthetic.json").write_text("{not json")
    (root / "my-notes.txt").write_text("keep me")
    before = snapshot(work)
    proc = _run(work, "--data-root", str(root), "--list")
    assert_one_line_error(proc, ".synthetic.json is unreadable", "delete the folder yourself")
    assert snapshot(work) == before


def test_an_html_page_saved_as_the_download_archive_is_one_line(work):
    staged = work / ".download-chest_xray" / "ChestXRay2017.zip"
    staged.parent.mkdir()
    staged.write_text("<!DOCTYPE html><html><body>Please log in</body></html>")
    before = snapshot(work)
    proc = _run(work, "--dataset", "chest_xray", "--data-root", str(work / "chest"), "--download")
    assert_one_line_error(proc, str(staged), "an HTML page", "rerun with --download")
    assert snapshot(work) == before and not (work / "chest").exists()


def test_an_html_page_saved_as_the_npz_file_is_one_line(work):
    page = work / "pneumoniamnist.npz"
    page.write_text("<html>404 Not Found</html>")
    before = snapshot(work)
    proc = _run(work, "--dataset", "pneumoniamnist", "--data-root", str(page), "--list")
    assert_one_line_error(proc, str(page), "not a readable .npz file", "MedMNIST")
    assert snapshot(work) == before


# --------------------------------------------------------------------------- a real run (kernel)


@pytest.mark.slow
def test_a_run_lists_broken_links_as_skipped_and_rebuilds_a_damaged_cache(work):
    from medclf.config.params import load_params
    from medclf.data.preflight import check_folder

    root = _classes(work / "data", {"A": 12, "B": 12})
    (root / "A" / "dangling.png").symlink_to(work / "no-such-image.png")
    (root / "B" / "loop.png").symlink_to("loop.png")
    params = load_params("folder", "quick", str(root), {"output_dir": str(work / "out"), "cache_dir": str(work / "cache")})
    entry = check_folder(root, params).cache_file
    entry.parent.mkdir(parents=True, exist_ok=True)
    entry.write_bytes(b"PK\x03\x04 cut short")
    proc = _run(work, "--dataset", "folder", "--data-root", str(root), "--only", "eda", timeout=900)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert "Traceback" not in output
    assert "A/dangling.png (broken symbolic link" in output and "B/loop.png (symbolic link loop)" in output
    assert f"cache file {entry} is unusable" in output
    with np.load(entry) as rebuilt:
        assert rebuilt["images"].shape[0] == 24  # a whole cache again, of the 24 usable images
    report = (work / "out" / "folder" / "quick" / "reports" / "01_eda.html").read_text()
    assert "dangling.png" in report and "loop.png" in report
