"""Saved models are portable: every kind the demo trains reloads with plain Keras (no medclf) and scores as recorded.

A ``.keras`` file is the network alone (plain Keras classes, no optimizer), so a process that never imports
medclf loads it with ``keras.saving.load_model(path)`` and reproduces the stored test probabilities; the
``.skops`` SVM and every ``.keras`` model also score as recorded through ``python -m medclf predict``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from conftest import synthetic_params  # noqa: E402
from medclf.evaluation import tta  # noqa: E402
from medclf.models import files  # noqa: E402
from medclf.training import experiment  # noqa: E402

#: One model of each kind the demo trains: SVM, ANN, CNN (with batch norm), CNN ensemble with test-time
#: augmentation, transfer, transfer fine-tuned with test-time augmentation.
MODELS = ("svm_pixels", "ann_deep", "cnn_bn5", "cnn_ours_chest_ensemble", "mobilenet_v2_frozen",
          "mobilenet_v2_finetune_aug")
TOLERANCE = 1e-5
#: The subprocess: plain Keras only. Reads the manifest, loads each model, scores the images (and, for a
#: model that kept test-time augmentation, the recorded augmented views: the mean over image and views).
NO_MEDCLF_SCRIPT = textwrap.dedent("""
    import json, sys, zipfile
    import numpy as np
    import keras

    manifest = json.load(open(sys.argv[1]))
    out = {}
    for item in manifest:
        model = keras.saving.load_model(item["path"])
        config = zipfile.ZipFile(item["path"]).read("config.json").decode()
        scores = [model.predict(np.load(item["images"]), verbose=0).astype("float64").reshape(-1)]
        if item["views"]:
            scores += [model.predict(view, verbose=0).astype("float64").reshape(-1) for view in np.load(item["views"])]
        out[item["id"]] = {"p": (sum(scores) / len(scores)).tolist(), "compiled": bool(model.compiled),
                           "medclf_in_config": "medclf" in config}
    out["medclf_imported"] = any(name == "medclf" or name.startswith("medclf.") for name in sys.modules)
    print("RESULT " + json.dumps(out))
""")


def _env() -> dict:
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}


def _one(root: Path, pattern: str) -> Path:
    found = [p for p in root.rglob(pattern) if p.parent.name != "val"]
    assert len(found) == 1, (pattern, found)
    return found[0]


def _force_tta(monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep test-time augmentation whatever the validation AUCs say, so the TTA path is always exercised."""
    choose = tta.choose_on_validation
    monkeypatch.setattr(tta, "choose_on_validation", lambda *args, **kwargs: {**choose(*args, **kwargs), "used": True})


def fused_model(tmp_path: Path, batch_norm=keras.layers.BatchNormalization) -> keras.Model:
    """A tiny CNN with batch normalisation, compiled with Adam and trained one epoch."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((16, 16, 1), name="image")
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv1")(inputs)
    x = batch_norm(name="bn1")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid", name="output")(x), name="fused")
    model.compile(keras.optimizers.Adam(1e-2), "binary_crossentropy")
    x = np.random.default_rng(0).integers(0, 256, (8, 16, 16, 1)).astype("float32")
    model.fit(x, np.arange(8) % 2, batch_size=4, epochs=1, verbose=0)
    return model


def test_a_trained_model_saves_as_plain_uncompiled_keras(tmp_path):
    model = fused_model(tmp_path)
    saved = files.save_model(model, tmp_path / "fused")
    assert saved.path == tmp_path / "fused.keras" and saved.sha256 == hashlib.sha256(saved.path.read_bytes()).hexdigest()
    config = zipfile.ZipFile(saved.path).read("config.json").decode()
    assert "medclf" not in config and "optimizer" not in config
    loaded = files.load_model(saved.path)
    assert type(loaded.get_layer("bn1")) is keras.layers.BatchNormalization and not loaded.compiled
    x = np.random.default_rng(1).integers(0, 256, (5, 16, 16, 1)).astype("float32")
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    assert model.compiled  # the trained model itself is untouched
    assert [p.name for p in tmp_path.iterdir()] == ["fused.keras"]  # written atomically: no temporary left


class _OwnNorm(keras.layers.BatchNormalization):
    """A layer class outside Keras: a file holding it would not load without the code defining it."""


def test_a_model_with_a_class_outside_keras_is_refused_by_name(tmp_path):
    with pytest.raises(ValueError, match=r"bn1 \(.*_OwnNorm\)"):
        files.save_model(fused_model(tmp_path, batch_norm=_OwnNorm), tmp_path / "own")
    assert not list(tmp_path.iterdir())


def test_model_files_reject_the_wrong_suffix(tmp_path):
    for suffix in (".joblib", ".skops"):
        with pytest.raises(ValueError, match=suffix):
            files.save_model(fused_model(tmp_path), tmp_path / f"m{suffix}")
    with pytest.raises(files.ModelFileError, match="not a .keras or .skops"):
        files.load_model(tmp_path / "m.h5")
    with pytest.raises(files.PickleRefusedError, match="--allow-pickle"):
        files.load_model(tmp_path / "m.joblib")


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """The MODELS trained one epoch on tiny synthetic data (32 px) and saved; ensemble of 2, fine-tuning 10 layers."""
    root = tmp_path_factory.mktemp("portable")
    params = synthetic_params(root, save_models=True, weights="none", mixed_precision="float32", fine_tune_epochs=1,
                              model_overrides={"cnn_ours_chest_ensemble": {"ensemble": 2},
                                               "mobilenet_v2_finetune_aug": {"fine_tune": 10}})
    data = experiment.DataCache(params)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _force_tta(monkeypatch)
        runs = {name: experiment.run_model(name, params, data) for name in MODELS}
    out = Path(params["output_dir"])
    entries = {}
    for name, run in runs.items():
        path = _one(out, Path(run.record["model_file"]).name)
        stored = pd.read_csv(_one(out, f"predictions/{name}.csv"))
        images = data.get(run.record["spec"]["image_size_used"], run.spec.color_mode).arrays("test")[0]
        entries[name] = {"run": run, "path": path, "stored": stored, "images": images}
    fused = files.save_model(fused_model(root), root / "fused").path
    return {"params": params, "entries": entries, "root": root, "fused": fused}


@pytest.mark.slow
def test_every_saved_kind_is_recorded_with_its_hash(saved):
    kinds = {name: e["path"].suffix for name, e in saved["entries"].items()}
    assert kinds == {name: ".skops" if name == "svm_pixels" else ".keras" for name in MODELS}
    for name, entry in saved["entries"].items():
        record = entry["run"].record
        sha = hashlib.sha256(entry["path"].read_bytes()).hexdigest()
        card = json.loads(entry["path"].with_suffix(".json").read_text())
        assert record["model_sha256"] == card["model_sha256"] == sha, name
        np.testing.assert_allclose(entry["stored"]["probability"], entry["run"].p_test, rtol=0, atol=1e-12)
    used = {name for name, e in saved["entries"].items() if (e["run"].record["evaluation"].get("tta") or {}).get("used")}
    assert used == {"cnn_ours_chest_ensemble", "mobilenet_v2_finetune_aug"}


@pytest.mark.slow
def test_plain_keras_without_medclf_reproduces_the_stored_probabilities(saved, tmp_path):
    manifest = []
    for name, entry in saved["entries"].items():
        if entry["path"].suffix != ".keras":
            continue
        images = tmp_path / f"{name}_images.npy"
        np.save(images, entry["images"])
        views = None
        choice = entry["run"].record["evaluation"].get("tta")
        if choice and choice["used"]:
            # The views evaluation scored: tta_scores draws them from the record's augmentation and seed; the
            # network's outputs on them are what the subprocess recomputes with the loaded file.
            drawn = []
            recomputed = tta.tta_scores(lambda x: drawn.append(x) or experiment_scores(entry["run"].model, x),
                                        entry["images"], augmentation=choice["augmentation"], views=choice["views"],
                                        seed=choice["seed"])
            np.testing.assert_allclose(recomputed, entry["stored"]["probability"], rtol=0, atol=TOLERANCE)
            views = tmp_path / f"{name}_views.npy"
            np.save(views, np.stack(drawn[1:]))  # drawn[0] is the image itself
        manifest.append({"id": name, "path": str(entry["path"]), "images": str(images),
                         "views": views and str(views)})
    fused_images = np.random.default_rng(2).integers(0, 256, (4, 16, 16, 1)).astype("float32")
    np.save(tmp_path / "fused_images.npy", fused_images)
    manifest.append({"id": "fused", "path": str(saved["fused"]), "images": str(tmp_path / "fused_images.npy"),
                     "views": None})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    script = tmp_path / "load_plain.py"
    script.write_text(NO_MEDCLF_SCRIPT)
    done = subprocess.run([sys.executable, str(script), str(tmp_path / "manifest.json")], cwd=tmp_path, env=_env(),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("RESULT "))[7:])
    assert result.pop("medclf_imported") is False
    for name, entry in saved["entries"].items():
        if entry["path"].suffix == ".keras":
            got = result[name]
            assert not got["medclf_in_config"] and not got["compiled"], name
            np.testing.assert_allclose(got["p"], entry["stored"]["probability"], rtol=0, atol=TOLERANCE, err_msg=name)
    expected = files.load_model(saved["fused"]).predict(fused_images, verbose=0).reshape(-1)
    np.testing.assert_allclose(result["fused"]["p"], expected, rtol=0, atol=TOLERANCE)


def experiment_scores(model, images: np.ndarray) -> np.ndarray:
    """The network's probabilities as float64, one per image (what evaluation averages)."""
    return np.asarray(model.predict(images, verbose=0), dtype=np.float64).reshape(-1)


@pytest.mark.slow
def test_predict_cli_scores_every_saved_model_as_recorded(saved, tmp_path):
    data_root = Path(saved["params"]["data_root"]).resolve()
    jobs = {}
    for name, entry in saved["entries"].items():
        # the stored order: with test-time augmentation, the views depend on each image's place in the chunk
        inputs = [str(data_root / f) for f in entry["run"].files_test]
        out = tmp_path / f"{name}.csv"
        jobs[name] = (out, subprocess.Popen([sys.executable, "-m", "medclf", "predict", "--model", str(entry["path"]),
                                             "--out", str(out), *inputs], cwd=tmp_path, env=_env(),
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for name, (out, process) in jobs.items():
        stdout, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, (name, stderr[-3000:])
        frame = pd.read_csv(out)
        stored = saved["entries"][name]["stored"]
        assert [Path(f).relative_to(data_root).as_posix() for f in frame["file"]] == list(stored["file"]), name
        np.testing.assert_allclose(frame["probability"], stored["probability"], rtol=0, atol=TOLERANCE, err_msg=name)
