"""``python -m medclf predict``: saved model + its card → the same scores as training; bad files skipped."""

from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from medclf.config import paths
from medclf.training import experiment
from medclf.cli import predict
from medclf.evaluation import records, scoring
from medclf.__main__ import main
from conftest import synthetic_params


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A one-epoch CNN and the SVM on the synthetic set; images are 40 px, models take 32 px (resized)."""
    params = synthetic_params(tmp_path_factory.mktemp("predict"), synthetic_image_size=40)
    data = experiment.DataCache(params)
    runs = {name: experiment.run_model(name, params, data) for name in ("cnn_baseline_8", "svm_pixels")}
    out = paths.run_dir(params)
    models = {name: out / run.record["model_file"] for name, run in runs.items()}
    return {"params": params, "runs": runs, "models": models, "data": data, "root": Path(params["data_root"])}


def predict_cli(capsys, *args) -> tuple[int, str, str]:
    code = main(["predict", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def copy_model(model: Path, folder: Path, **card_changes) -> Path:
    """Copy a saved model and its card into ``folder``, changing card sections (e.g. evaluation)."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / model.name
    shutil.copy(model, target)
    record = json.loads(records.model_card_path(model).read_text())
    for section, values in card_changes.items():
        record[section] = {**record[section], **values}
    records.model_card_path(target).write_text(json.dumps(record))
    return target


@pytest.mark.parametrize("name", ["cnn_baseline_8", "svm_pixels"])
def test_probabilities_equal_the_models_predictions_on_the_data_layer_arrays(trained, name, tmp_path, capsys):
    run = trained["runs"][name]
    out = tmp_path / "p.csv"
    code, stdout, _ = predict_cli(capsys, "--model", trained["models"][name], trained["root"] / "test", "--out", out)
    assert code == 0 and "images scored" in stdout
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["file", "probability", "label", "threshold"]
    relpaths = [Path(f).relative_to(trained["root"]).as_posix() for f in frame["file"]]
    assert sorted(relpaths) == sorted(run.files_test)
    expected = pd.Series(run.p_test, index=run.files_test)[relpaths].to_numpy()
    np.testing.assert_allclose(frame["probability"], expected, rtol=0, atol=1e-6)
    # and the reloaded model on the data layer's cached arrays agrees too
    ds = trained["data"].get(run.record["spec"]["image_size_used"], run.spec.color_mode)
    reloaded = scoring.predict_probabilities(predict.load_model(trained["models"][name]), ds.arrays("test")[0])
    np.testing.assert_allclose(pd.Series(reloaded, index=run.files_test)[relpaths], frame["probability"], atol=1e-6)
    assert (frame["threshold"] == run.threshold).all()


def test_card_threshold_decides_the_labels(trained, tmp_path, capsys):
    run = trained["runs"]["cnn_baseline_8"]
    cut = float(np.median(run.p_test))
    model = copy_model(trained["models"]["cnn_baseline_8"], tmp_path / "m", evaluation={"threshold": cut})
    code, _, _ = predict_cli(capsys, "--model", model, trained["root"] / "test", "--out", tmp_path / "a.csv")
    frame = pd.read_csv(tmp_path / "a.csv")
    assert code == 0 and (frame["threshold"] == cut).all()
    expected = np.where(frame["probability"] >= cut, "PNEUMONIA", "NORMAL")
    assert (frame["label"] == expected).all() and set(frame["label"]) == {"NORMAL", "PNEUMONIA"}
    code, _, _ = predict_cli(capsys, "--model", model, trained["root"] / "test", "--out", tmp_path / "b.csv",
                             "--threshold", "0")
    assert code == 0 and (pd.read_csv(tmp_path / "b.csv")["label"] == "PNEUMONIA").all()


def test_bad_files_are_reported_and_skipped(trained, tmp_path, capsys):
    folder = tmp_path / "mixed" / "sub"  # walked recursively: one good image on top, the rest below
    folder.mkdir(parents=True)
    good = sorted((trained["root"] / "test" / "NORMAL").glob("*.jpeg"))[:3]
    for path, target in zip(good, [folder.parent, folder, folder]):
        shutil.copy(path, target / path.name)
    (folder / "corrupt.jpeg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (folder / "truncated.jpeg").write_bytes(good[0].read_bytes()[: good[0].stat().st_size // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    code, _, err = predict_cli(capsys, "--model", trained["models"]["cnn_baseline_8"], folder.parent,
                               tmp_path / "missing.png", "--out", tmp_path / "p.csv")
    assert code == 0
    frame = pd.read_csv(tmp_path / "p.csv")
    assert sorted(Path(f).name for f in frame["file"]) == sorted(p.name for p in good)
    lines = [line for line in err.splitlines() if line.startswith("skipped ")]
    reasons = {"corrupt.jpeg": ("truncated", "not a readable image", "cannot decode"),
               "truncated.jpeg": ("truncated",), "empty.png": ("empty file",), "notes.txt": ("not an image file",),
               "missing.png": ("no such file",)}
    for name, accepted in reasons.items():
        assert sum(name in line and any(r in line for r in accepted) for line in lines) == 1, (name, err)
    assert len(lines) == 5


def test_nothing_scorable_exits_1(trained, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("x")
    code, _, err = predict_cli(capsys, "--model", trained["models"]["svm_pixels"], tmp_path / "notes.txt",
                               "--out", tmp_path / "p.csv")
    assert code == 1 and "no image could be scored" in err and not (tmp_path / "p.csv").exists()


def test_missing_card_or_model_is_one_line_and_exit_2(trained, tmp_path, capsys):
    model = copy_model(trained["models"]["cnn_baseline_8"], tmp_path / "m")
    records.model_card_path(model).unlink()
    code, _, err = predict_cli(capsys, "--model", model, trained["root"] / "test")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert str(records.model_card_path(model)) in err and "save_models" in err
    code, _, err = predict_cli(capsys, "--model", tmp_path / "nope.keras", trained["root"] / "test")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "nope.keras does not exist" in err
    code, _, err = predict_cli(capsys, "--model", tmp_path / "model.h5", trained["root"] / "test")
    assert code == 2 and "not a .keras or .skops" in err


def test_wrong_card_or_threshold_is_a_usage_error(trained, tmp_path, capsys):
    model = copy_model(trained["models"]["cnn_baseline_8"], tmp_path / "m", spec={"image_size_used": 64})
    code, _, err = predict_cli(capsys, "--model", model, trained["root"] / "test")
    assert code == 2 and "belongs to another model" in err
    model = copy_model(trained["models"]["cnn_baseline_8"], tmp_path / "n", data={"positive_class": "NORMAL"})
    code, _, err = predict_cli(capsys, "--model", model, trained["root"] / "test")
    assert code == 2 and "is not label 1" in err
    code, _, err = predict_cli(capsys, "--model", trained["models"]["svm_pixels"], trained["root"] / "test",
                               "--threshold", "1.5")
    assert code == 2 and "outside 0..1" in err


def test_csv_is_written_atomically(trained, tmp_path, capsys, monkeypatch):
    out = tmp_path / "p.csv"
    out.write_text("previous results\n")

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("medclf.core.io.os.replace", failing_replace)
    code, _, err = predict_cli(capsys, "--model", trained["models"]["svm_pixels"], trained["root"] / "test",
                               "--out", out)
    assert code == 1 and "disk full" in err and "scored but not saved" in err  # one line, no traceback
    assert out.read_text() == "previous results\n" and [p.name for p in tmp_path.iterdir()] == ["p.csv"]
    monkeypatch.undo()
    assert predict_cli(capsys, "--model", trained["models"]["svm_pixels"], trained["root"] / "test",
                       "--out", out)[0] == 0
    assert out.read_text().startswith("file,probability,label,threshold") and len(list(tmp_path.iterdir())) == 1


def test_gradcam_is_skipped_for_svm(trained, tmp_path, capsys):
    code, _, err = predict_cli(capsys, "--model", trained["models"]["svm_pixels"], trained["root"] / "test",
                               "--out", tmp_path / "p.csv", "--gradcam", tmp_path / "cams")
    assert code == 0 and "Grad-CAM needs a Keras model" in err and not (tmp_path / "cams").exists()


def _has_gradcam() -> bool:
    """medclf.analysis.explain (gradcams, supports_gradcam) and medclf.plots.explain_plots are another helper's modules."""
    if None in (importlib.util.find_spec("medclf.analysis.explain"), importlib.util.find_spec("medclf.plots.explain_plots")):
        return False
    explain = importlib.import_module("medclf.analysis.explain")
    return hasattr(explain, "gradcams") and hasattr(explain, "supports_gradcam")


@pytest.mark.skipif(not _has_gradcam(), reason="medclf.analysis.explain.gradcams / explain_plots.plot_gradcam not there yet (another helper owns them)")
def test_gradcam_writes_one_png_per_image(trained, tmp_path, capsys):
    code, _, err = predict_cli(capsys, "--model", trained["models"]["cnn_baseline_8"], trained["root"] / "test",
                               "--out", tmp_path / "p.csv", "--gradcam", tmp_path / "cams")
    assert code == 0, err
    frame = pd.read_csv(tmp_path / "p.csv")
    pngs = sorted((tmp_path / "cams").rglob("*.png"))
    assert len(pngs) == len(frame)
    assert {p.relative_to(tmp_path / "cams").parts[0] for p in pngs} == {"NORMAL", "PNEUMONIA"}
    # <name>.png, not <name>.<suffix>.png
    assert sorted(p.relative_to(tmp_path / "cams").as_posix() for p in pngs) == sorted(
        Path(f).with_suffix(".png").as_posix() for f in frame["file"].map(lambda f: Path(f).relative_to(
            Path(f).parents[1]).as_posix()))
    assert not any(p.name.count(".") > 1 for p in pngs)
    from PIL import Image

    width, height = Image.open(pngs[0]).size
    assert width > height  # the square overlay (titled: taller than wide) plus its colour bar


def test_gradcam_paths_drop_the_image_suffix_unless_two_inputs_would_share_one(tmp_path):
    root, out, taken = tmp_path / "in", tmp_path / "cams", set()
    (root / "NORMAL").mkdir(parents=True)
    for name in ("IM-1.jpeg", "IM-1.png", "IM-2.jpeg"):
        (root / "NORMAL" / name).touch()
    paths_ = [predict.gradcam_path(out, root / "NORMAL" / name, root.resolve(), taken)
              for name in ("IM-1.jpeg", "IM-1.png", "IM-2.jpeg")]
    assert [p.relative_to(out).as_posix() for p in paths_] == ["NORMAL/IM-1.png", "NORMAL/IM-1.png.png",
                                                               "NORMAL/IM-2.png"]


def test_plot_gradcam_can_draw_its_colour_bar():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from medclf.plots.explain_plots import plot_gradcam

    image, cam = np.zeros((8, 8, 1), np.uint8), np.linspace(0, 1, 64).reshape(8, 8)
    fig, ax = plt.subplots()
    assert len(plot_gradcam(ax, image, cam, "plain").axes) == 1
    fig, ax = plt.subplots()
    with_bar = plot_gradcam(ax, image, cam, "with bar", colorbar=True)
    assert len(with_bar.axes) == 2 and "Grad-CAM" in with_bar.axes[1].get_ylabel()
    plt.close("all")


def test_a_model_flagged_for_constant_predictions_warns_in_one_stderr_line(trained, tmp_path, capsys):
    """The flag travels in the model card (evaluation.constant_predictions); predict still scores, but says so."""
    source = trained["models"]["cnn_baseline_8"]
    flagged = copy_model(source, tmp_path / "flagged", evaluation={
        "constant_predictions": {"flag": True, "spread": 1e-5, "tolerance": 1e-3}})
    code, _, err = predict_cli(capsys, "--model", flagged, trained["root"] / "test", "--out", tmp_path / "a.csv")
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert code == 0 and len(warnings) == 1 and "flagged for constant predictions" in warnings[0]
    assert "under 0.001" in warnings[0]
    clean = copy_model(source, tmp_path / "clean", evaluation={
        "constant_predictions": {"flag": False, "spread": 0.4, "tolerance": 1e-3}})
    code, _, err = predict_cli(capsys, "--model", clean, trained["root"] / "test", "--out", tmp_path / "b.csv")
    assert code == 0 and "constant predictions" not in err
    damaged = copy_model(source, tmp_path / "damaged", evaluation={"constant_predictions": "yes"})
    code, _, err = predict_cli(capsys, "--model", damaged, trained["root"] / "test", "--out", tmp_path / "c.csv")
    assert code == 2 and "evaluation.constant_predictions" in err and len(err.strip().splitlines()) == 1
