"""``predict`` never writes over what it reads: the CSV and the Grad-CAM overlays are compared with every input
image, the model and its card by resolved path and inode, and a refusal is one line, exit 2, nothing touched."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from badinput import predict
from medclf.__main__ import main
from medclf.evaluation import records
from test_predict import _has_gradcam, copy_model, trained  # noqa: F401 - trained: the module's shared fixture


@pytest.fixture
def case(trained, tmp_path):
    """Inputs ``in/NORMAL/{a.jpeg, b.png}``, ``in/PNEUMONIA/c.jpeg`` (a PNG, so an overlay could share its
    name) and copies of the CNN and its card in ``m/`` (an old ``predict`` overwrote what it was given)."""
    test = trained["root"] / "test"
    inputs = tmp_path / "in"
    for name in ("NORMAL", "PNEUMONIA"):
        (inputs / name).mkdir(parents=True)
    normal = sorted((test / "NORMAL").glob("*.jpeg"))
    shutil.copy(normal[0], inputs / "NORMAL" / "a.jpeg")
    Image.open(normal[1]).save(inputs / "NORMAL" / "b.png")
    shutil.copy(sorted((test / "PNEUMONIA").glob("*.jpeg"))[0], inputs / "PNEUMONIA" / "c.jpeg")
    model = copy_model(trained["models"]["cnn_baseline_8"], tmp_path / "m")
    return {"tmp": tmp_path, "in": inputs, "png": inputs / "NORMAL" / "b.png", "model": model,
            "card": records.model_card_path(model)}


def snapshot(root: Path) -> dict[str, tuple]:
    """Every entry under ``root``: kind, mtime (ns) and bytes (files) or target (links); stricter than
    :func:`badinput.snapshot` (contents only), since a refusal must not even touch a file."""
    entries = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            st = os.lstat(path)
            if path.is_symlink():
                entries[str(path)] = ("link", os.readlink(path))
            elif path.is_dir():
                entries[str(path)] = ("dir", st.st_mtime_ns)
            else:
                entries[str(path)] = ("file", st.st_mtime_ns, path.read_bytes())
    return entries


def refused(capsys, case, *args) -> str:
    """Run predict with ``args``; it must exit 2 with one stderr line and leave every file as it was."""
    before = snapshot(case["tmp"])
    code = main(["predict", "--model", str(case["model"]), *map(str, args)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert snapshot(case["tmp"]) == before
    return err[0]


@pytest.mark.parametrize("given", ["file", "folder"])
def test_out_an_input_image_is_refused(case, capsys, given):
    """``given``: the image itself is an input, or it is found inside an input folder."""
    line = refused(capsys, case, case["png"] if given == "file" else case["in"], "--out", case["png"])
    assert f"--out {case['png']} is the input image {case['png']}" in line and "give --out" in line


@pytest.mark.parametrize("target", ["model", "card"])
def test_out_the_model_or_its_card_is_refused(case, capsys, target):
    line = refused(capsys, case, case["in"], "--out", case[target])
    role = "the model" if target == "model" else "the model's card"
    assert f"--out {case[target]} is {role} {case[target]}" in line


@pytest.mark.parametrize("kind", ["hard", "symbolic"])
def test_out_a_link_to_an_input_is_refused(case, capsys, kind):
    link = case["tmp"] / "elsewhere" / "out.csv"
    link.parent.mkdir()
    (os.link if kind == "hard" else os.symlink)(case["png"], link)
    line = refused(capsys, case, case["in"], "--out", link)
    assert f"--out {link} is the input image {case['png']} (the same file by another path or a link)" in line


@pytest.mark.parametrize("name", ["view/b.png", "view/../NORMAL/b.png"])
def test_out_through_a_linked_folder_is_refused(case, capsys, name):
    """``view/`` is a symbolic link to ``in/NORMAL``: ``view/b.png`` is the input ``b.png``, and so is
    ``view/../NORMAL/b.png`` (the link is followed before ``..``, as the system writes it)."""
    (case["tmp"] / "view").symlink_to(case["in"] / "NORMAL", target_is_directory=True)
    line = refused(capsys, case, case["in"], "--out", f"{case['tmp']}/{name}")
    assert f"is the input image {case['png']}" in line


@pytest.mark.parametrize("where", ["the folder", "inside"])
def test_gradcam_the_input_folder_or_inside_it_is_refused(case, capsys, where):
    """Overlays inside an input tree would be scored as images by the next run over it."""
    cams = case["in"] if where == "the folder" else case["in"] / "cams"
    line = refused(capsys, case, case["in"], "--out", case["tmp"] / "p.csv", "--gradcam", cams)
    expected = "is the input folder" if where == "the folder" else "is inside the input folder"
    assert f"--gradcam {cams} {expected} {case['in']}" in line and "give --gradcam a folder outside" in line


def test_gradcam_inside_an_input_folder_through_a_link_and_dotdot_is_refused(case, capsys):
    """``view/../cams`` with ``view`` → ``in/NORMAL`` is the new folder ``in/cams``, not ``cams`` beside ``view``."""
    (case["tmp"] / "view").symlink_to(case["in"] / "NORMAL", target_is_directory=True)
    cams = f"{case['tmp']}/view/../cams"
    line = refused(capsys, case, case["in"], "--out", case["tmp"] / "p.csv", "--gradcam", cams)
    assert f"--gradcam {cams} is inside the input folder {case['in']}" in line


def test_gradcam_a_parent_of_an_input_is_refused(case, capsys):
    line = refused(capsys, case, case["png"], "--out", case["tmp"] / "p.csv", "--gradcam", case["in"])
    assert f"--gradcam {case['in']} holds the input {case['png']}" in line


def test_gradcam_holding_the_model_is_refused_when_an_overlay_would_replace_it(case, capsys):
    """A hard link in the overlay folder at an overlay's name is the model file by inode."""
    cams = case["tmp"] / "cams" / "NORMAL"
    cams.mkdir(parents=True)
    os.link(case["model"], cams / "a.png")
    line = refused(capsys, case, case["in"], "--out", case["tmp"] / "p.csv", "--gradcam", cams.parent)
    assert f"the overlay {cams / 'a.png'} would replace the model {case['model']}" in line


@pytest.mark.parametrize("linked, said", [
    # cams/NORMAL links to in/NORMAL: the overlay cams/NORMAL/b.png is the input image b.png
    ("NORMAL", "--gradcam {cams}: the overlay {cams}/NORMAL/b.png would replace the input image"),
    # cams/PNEUMONIA links to in/PNEUMONIA: the overlay of c.jpeg would be added beside the inputs
    ("PNEUMONIA", "the overlay {cams}/PNEUMONIA/c.png would land inside the input folder {inputs}"),
])
def test_an_overlay_reaching_an_input_folder_through_a_link_is_refused(case, capsys, linked, said):
    cams = case["tmp"] / "cams"
    cams.mkdir()
    (cams / linked).symlink_to(case["in"] / linked, target_is_directory=True)
    line = refused(capsys, case, case["in"], "--out", case["tmp"] / "p.csv", "--gradcam", cams)
    assert said.format(cams=cams, inputs=case["in"]) in line


def test_out_an_overlay_path_is_refused(case, capsys):
    cams = case["tmp"] / "cams"
    line = refused(capsys, case, case["in"], "--out", cams / "NORMAL" / "a.png", "--gradcam", cams)
    assert f"--out {cams / 'NORMAL' / 'a.png'} is also the path of the overlay" in line


@pytest.mark.skipif(not _has_gradcam(), reason="medclf.analysis.explain.gradcams not there")
def test_outputs_elsewhere_still_work_and_inputs_stay_as_they_were(case, capsys):
    out, cams = case["tmp"] / "results" / "p.csv", case["tmp"] / "cams"
    # an earlier CSV inside the inputs is not an image: it may be replaced, and is not scored
    (case["in"] / "predictions.csv").write_text("old\n")
    before = snapshot(case["in"])
    code = main(["predict", "--model", str(case["model"]), str(case["in"]), "--out", str(out), "--gradcam", str(cams)])
    assert code == 0, capsys.readouterr().err
    assert len(pd.read_csv(out)) == 3 and len(list(cams.rglob("*.png"))) == 3
    assert snapshot(case["in"]) == before
    again = ["predict", "--model", str(case["model"]), str(case["in"]), "--out", str(case["in"] / "predictions.csv")]
    code = main(again)
    assert code == 0 and len(pd.read_csv(case["in"] / "predictions.csv")) == 3


def test_a_user_running_predict_is_refused_before_anything_is_written(case):
    """As a user runs it, in a fresh interpreter: ``--out`` names an input image."""
    before = snapshot(case["tmp"])
    done = predict("--model", str(case["model"]), str(case["in"]), "--out", str(case["png"]), cwd=case["tmp"])
    err = done.stderr.strip().splitlines()
    assert done.returncode == 2 and len(err) == 1, done.stderr
    assert err[0].startswith(f"error: --out {case['png']} is the input image") and done.stdout == ""
    assert snapshot(case["tmp"]) == before
