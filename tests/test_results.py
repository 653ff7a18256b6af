"""Result records and prediction files: round trips, atomic writes, comparison tables; the
evaluation plots return figures and write nothing."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from medclf.core import io
from medclf.plots import evaluation as plots
from medclf.plots import training as training_plots
from medclf.evaluation.metrics import choose_threshold, metrics_at  # noqa: E402
from medclf.evaluation.predictions import load_predictions, save_predictions  # noqa: E402
from medclf.evaluation.records import (  # noqa: E402
    RecordError,
    build_record,
    load_records,
    save_record,
    validate_record,
)
from medclf.evaluation.statistics import evaluate_model  # noqa: E402
from medclf.evaluation.tables import records_table, study_reproduction_table  # noqa: E402

CLASSES = ["NORMAL", "PNEUMONIA"]


def hand_evaluation(acc_t, acc_half, recalls_t, recalls_half, auc, threshold, ci):
    """A minimal evaluate_model-shaped dict with chosen numbers."""

    def block(acc, recalls, t):
        return {"threshold": t, "n": 624, "accuracy": acc, "roc_auc": auc,
                "per_class": {name: {"precision": 0.9, "recall": r, "f1": 0.9, "support": 100}
                              for name, r in zip(CLASSES, recalls)}}

    split = {"at_0.5": block(acc_half, recalls_half, 0.5), "at_threshold": block(acc_t, recalls_t, threshold)}
    return {"threshold": threshold, "class_names": CLASSES, "val": split, "test": split, "ci": ci}


def hand_record(model_id, *, study, reported, evaluation, image_size, params_count, seconds, epochs, best):
    return build_record(
        model_id=model_id, model=model_id.split("-")[0], family="cnn", study=study, reported=reported,
        params={"dataset": "chest_xray", "image_size": image_size, "seed": 0},
        spec={"layers": [32, 64]},
        data={"dataset": "chest_xray", "manifest_hash": "abc123", "split_counts": {"train": 10, "val": 2, "test": 4}},
        training={"seconds": seconds, "seconds_per_epoch": seconds / epochs, "epochs_run": epochs,
                  "best_epoch": best, "mixed_precision": False,
                  "history": {"loss": [0.6, 0.4], "val_loss": [0.7, 0.5]}},
        params_count=params_count, evaluation=evaluation, versions={"python": "3.11"})


@pytest.fixture
def two_records():
    a = hand_record(
        "cnn_s1-seed0", study="S1",
        reported={"accuracy": 0.9071, "normal_recall": 0.76, "pneumonia_recall": 0.99},  # models.py format
        evaluation=hand_evaluation(0.85, 0.88, (0.70, 0.96), (0.80, 0.93), 0.94, 0.31,
                                   {"accuracy": (0.82, 0.88), "recall_NORMAL": (0.64, 0.76),
                                    "recall_PNEUMONIA": (0.94, 0.98), "roc_auc": (0.92, 0.96)}),
        image_size=128, params_count=1234, seconds=100.0, epochs=20, best=14)
    b = hand_record(
        "svm-seed0", study=None, reported=None,
        evaluation=hand_evaluation(0.75, 0.78, (0.40, 0.97), (0.45, 0.95), 0.88, 0.12,
                                   {"accuracy": (0.71, 0.79), "recall_NORMAL": (0.34, 0.46),
                                    "recall_PNEUMONIA": (0.95, 0.99), "roc_auc": (0.85, 0.91)}),
        image_size=50, params_count=0, seconds=8.0, epochs=1, best=1)
    a["evaluation"]["framing"] = [  # as medclf.evaluation.framing.framing_table(...).to_dict("records") writes it
        {"crop": crop, "class_name": name, "n": 10, "mean_probability": 0.5, "called_positive": called,
         "change": change}
        for crop, name, called, change in [(1.0, "NORMAL", 0.1, 0.0), (1.0, "PNEUMONIA", 0.95, 0.0),
                                           (0.85, "NORMAL", 0.4, 0.3), (0.85, "PNEUMONIA", 1.0, 0.05),
                                           (0.7, "NORMAL", 0.9, 0.8), (0.7, "PNEUMONIA", 1.0, 0.05)]]
    a["evaluation"]["threshold_ci"] = [0.08, 0.77]  # b, like records written before it, has none
    return a, b


def leftovers(folder):
    return [p for p in folder.rglob("*") if p.name.startswith(".") or ".tmp" in p.name]


# ---------------------------------------------------------------------------------------------
# records
# ---------------------------------------------------------------------------------------------

def test_record_round_trip(tmp_path, two_records):
    for record in two_records:
        path = save_record(tmp_path, record["model_id"], record)
        assert path == tmp_path / "results" / f"{record['model_id']}.json"
    loaded = load_records(tmp_path)
    assert [r["model_id"] for r in loaded] == ["cnn_s1-seed0", "svm-seed0"]  # sorted by file name
    original = json.loads(json.dumps(two_records[0]))  # tuples become lists in JSON
    assert loaded[0] == original
    assert leftovers(tmp_path) == []


def test_record_with_real_evaluation_and_numpy_values_round_trips(tmp_path, two_records):
    rng = np.random.default_rng(0)
    y_val, y_test = rng.integers(0, 2, 80), rng.integers(0, 2, 120)
    p_val, p_test = rng.random(80).astype("float32"), rng.random(120).astype("float32")
    evaluation = evaluate_model(y_val, p_val, y_test, p_test, CLASSES, 0.95, 50, 0)
    record = {**two_records[1], "evaluation": evaluation, "params_count": np.int64(7),
              "training": {**two_records[1]["training"], "seconds": np.float32(1.5),
                           "history": {"loss": np.array([0.5, float("nan")])}}}
    save_record(tmp_path, "svm-seed0", record)
    (back,) = load_records(tmp_path)
    assert back["params_count"] == 7 and back["training"]["seconds"] == 1.5
    assert back["training"]["history"]["loss"] == [0.5, None]  # NaN is stored as null, valid JSON
    assert back["evaluation"]["threshold"] == evaluation["threshold"]
    assert back["evaluation"]["ci"]["accuracy"] == list(evaluation["ci"]["accuracy"])
    assert records_table([back])["threshold"].iloc[0] == evaluation["threshold"]


def test_build_record_sets_created_and_versions(two_records):
    record = two_records[0]
    assert record["created"].endswith("+00:00")
    pd.Timestamp(record["created"])  # parses as ISO time
    assert record["versions"] == {"python": "3.11"}


def test_build_record_names_the_git_commit_of_the_code_imported(two_records):
    import subprocess

    from medclf.config import paths as config
    from medclf.evaluation.records import CODE_GIT

    assert two_records[0]["git"] == CODE_GIT
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=config.PROJECT_ROOT, capture_output=True, text=True)
    if head.returncode != 0:
        pytest.skip("the project is not a git checkout here")
    assert CODE_GIT["commit"] == head.stdout.strip() and isinstance(CODE_GIT["dirty"], bool)


def test_validate_record_names_missing_keys(two_records):
    broken = {**two_records[0], "training": {k: v for k, v in two_records[0]["training"].items() if k != "history"}}
    del broken["versions"]
    with pytest.raises(RecordError, match=r"'cnn_s1-seed0' is missing versions, training\.history"):
        validate_record(broken)
    with pytest.raises(RecordError, match="reported must be a dict or None"):
        validate_record({**two_records[0], "reported": 0.9})
    with pytest.raises(RecordError, match="model_id must be a file-name-safe string"):
        validate_record({**two_records[0], "model_id": "../escape"})


def test_save_record_checks_id_and_writes_nothing_when_invalid(tmp_path, two_records):
    with pytest.raises(RecordError, match="saved as 'other'"):
        save_record(tmp_path, "other", two_records[0])
    with pytest.raises(RecordError, match="missing evaluation"):
        save_record(tmp_path, "x", {k: v for k, v in two_records[0].items() if k != "evaluation"} | {"model_id": "x"})
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())


def test_load_records_names_a_bad_file(tmp_path, two_records):
    assert load_records(tmp_path) == []
    save_record(tmp_path, "svm-seed0", two_records[1])
    (tmp_path / "results" / "broken.json").write_text("{not json")
    with pytest.raises(RecordError, match="broken.json"):
        load_records(tmp_path)


def test_load_records_ignores_files_being_written(tmp_path, two_records):
    save_record(tmp_path, "svm-seed0", two_records[1])
    (tmp_path / "results" / ".cnn.json.abc.tmp.json").write_text("{half")
    assert [r["model_id"] for r in load_records(tmp_path)] == ["svm-seed0"]


def test_interrupted_write_keeps_old_file_and_leaves_no_temp(tmp_path, two_records, monkeypatch):
    record = two_records[1]
    path = save_record(tmp_path, "svm-seed0", record)
    before = path.read_text()

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(io.os, "replace", fail)
    with pytest.raises(OSError, match="disk full"):
        save_record(tmp_path, "svm-seed0", {**record, "params_count": 99})
    with pytest.raises(OSError, match="disk full"):
        save_predictions(tmp_path, "svm-seed0", ["a.png"], [0], [0.2], CLASSES)
    assert path.read_text() == before
    assert not (tmp_path / "predictions" / "svm-seed0.csv").exists()
    assert leftovers(tmp_path) == []


# ---------------------------------------------------------------------------------------------
# predictions
# ---------------------------------------------------------------------------------------------

def test_predictions_csv_one_row_per_test_image(tmp_path):
    files = [f"test/{c}/img{i}.jpeg" for i, c in enumerate(["NORMAL"] * 3 + ["PNEUMONIA"] * 4)]
    y = np.array([0, 0, 0, 1, 1, 1, 1])
    p = np.array([0.1, 0.2, 0.7, 0.9, 0.6, 0.4, 0.99], dtype="float32")
    path = save_predictions(tmp_path, "cnn-seed0", files, y, p, CLASSES)
    assert path == tmp_path / "predictions" / "cnn-seed0.csv"
    frame = pd.read_csv(path)
    assert list(frame.columns) == ["file", "true_label", "true_class", "probability"]
    assert len(frame) == 7 and frame["file"].tolist() == files
    assert frame["true_label"].tolist() == y.tolist()
    assert frame["true_class"].tolist() == ["NORMAL"] * 3 + ["PNEUMONIA"] * 4
    np.testing.assert_array_equal(frame["probability"].to_numpy().astype("float32"), p)  # exact
    # the file is enough to re-check a reported number
    t = choose_threshold(frame["true_label"], frame["probability"], 0.75)
    assert metrics_at(frame["true_label"], frame["probability"], t, CLASSES)["accuracy"] == pytest.approx(5 / 7)
    assert load_predictions(tmp_path, "cnn-seed0").equals(frame)
    assert leftovers(tmp_path) == []


def test_predictions_checks_inputs(tmp_path):
    with pytest.raises(ValueError, match="relpaths has 2, y_true 3 and p 3"):
        save_predictions(tmp_path, "m", ["a", "b"], [0, 1, 1], [0.1, 0.2, 0.3], CLASSES)
    with pytest.raises(ValueError, match=r"labels \[2\] that are not indices"):
        save_predictions(tmp_path, "m", ["a"], [2], [0.1], CLASSES)
    with pytest.raises(ValueError, match="model_id must be a file-name-safe"):
        save_predictions(tmp_path, "a/b", ["a"], [0], [0.1], CLASSES)


# ---------------------------------------------------------------------------------------------
# tables
# ---------------------------------------------------------------------------------------------

def test_records_table(two_records):
    table = records_table(two_records)
    assert list(table.columns) == [
        "model_id", "model", "family", "study", "image_size",
        "accuracy", "accuracy_ci_low", "accuracy_ci_high", "accuracy_at_0.5",
        "recall_NORMAL", "recall_NORMAL_ci_low", "recall_NORMAL_ci_high",
        "recall_PNEUMONIA", "recall_PNEUMONIA_ci_low", "recall_PNEUMONIA_ci_high",
        "roc_auc", "roc_auc_ci_low", "roc_auc_ci_high", "threshold", "threshold_ci_low", "threshold_ci_high",
        "framing_shift", "params_count", "train_seconds", "seconds_per_epoch", "epochs_run", "best_epoch"]
    first, second = table.iloc[0], table.iloc[1]
    assert first["model_id"] == "cnn_s1-seed0" and first["model"] == "cnn_s1" and first["study"] == "S1"
    assert (first["image_size"], first["accuracy"], first["accuracy_at_0.5"]) == (128, 0.85, 0.88)
    assert (first["accuracy_ci_low"], first["accuracy_ci_high"]) == (0.82, 0.88)
    assert (first["recall_NORMAL"], first["recall_NORMAL_ci_low"], first["recall_NORMAL_ci_high"]) == (0.70, 0.64, 0.76)
    assert (first["recall_PNEUMONIA"], first["roc_auc"], first["roc_auc_ci_high"]) == (0.96, 0.94, 0.96)
    assert (first["threshold"], first["params_count"], first["train_seconds"]) == (0.31, 1234, 100.0)
    assert (first["seconds_per_epoch"], first["epochs_run"], first["best_epoch"]) == (5.0, 20, 14)
    assert pd.isna(second["study"]) and second["recall_NORMAL"] == 0.40 and second["threshold"] == 0.12
    assert first["framing_shift"] == 0.3 and pd.isna(second["framing_shift"])  # NORMAL at the 85% crop; none in b
    assert (first["threshold_ci_low"], first["threshold_ci_high"]) == (0.08, 0.77)
    assert pd.isna(second["threshold_ci_low"]) and pd.isna(second["threshold_ci_high"])
    assert list(records_table([]).columns)[:3] == ["model_id", "model", "family"]


def test_study_reproduction_table(two_records):
    table = study_reproduction_table(two_records)
    assert len(table) == 1  # only the record with reported numbers
    assert list(table.columns) == [
        "study", "model", "model_id", "reported_accuracy", "accuracy_at_0.5", "accuracy_at_threshold",
        "reported_recall_NORMAL", "recall_NORMAL_at_0.5", "recall_NORMAL_at_threshold",
        "reported_recall_PNEUMONIA", "recall_PNEUMONIA_at_0.5", "recall_PNEUMONIA_at_threshold",
        "roc_auc", "threshold"]
    row = table.iloc[0]
    assert (row["study"], row["model"], row["reported_accuracy"]) == ("S1", "cnn_s1", 0.9071)
    assert (row["accuracy_at_0.5"], row["accuracy_at_threshold"]) == (0.88, 0.85)
    assert (row["reported_recall_NORMAL"], row["recall_NORMAL_at_0.5"], row["recall_NORMAL_at_threshold"]) == (
        0.76, 0.80, 0.70)
    assert (row["reported_recall_PNEUMONIA"], row["recall_PNEUMONIA_at_threshold"]) == (0.99, 0.96)
    assert (row["roc_auc"], row["threshold"]) == (0.94, 0.31)


@pytest.mark.parametrize("reported, normal, pneumonia", [
    ({"accuracy": 0.86, "recall": 0.9859}, None, 0.9859),  # a single recall is the disease class's
    ({"accuracy": 0.86, "recall": {"normal": 0.7, "PNEUMONIA": 0.9}}, 0.7, 0.9),
    ({"accuracy": 0.86, "recall_NORMAL": 0.7}, 0.7, None),
    ({"accuracy": 0.86}, None, None),
])
def test_study_table_reads_recalls_in_several_shapes(two_records, reported, normal, pneumonia):
    row = study_reproduction_table([{**two_records[0], "reported": reported}]).iloc[0]
    for column, expected in (("reported_recall_NORMAL", normal), ("reported_recall_PNEUMONIA", pneumonia)):
        assert pd.isna(row[column]) if expected is None else row[column] == expected


def test_study_table_optional_columns(two_records):
    record = {**two_records[0], "reported": {"accuracy": 0.9846, "test_errors": 40, "roc_auc": 0.95}}
    row = study_reproduction_table([record, two_records[1]]).iloc[0]
    assert row["reported_roc_auc"] == 0.95
    assert row["reported_test_errors"] == 40
    assert row["test_errors_at_0.5"] == round(624 * (1 - 0.88))  # 75
    assert row["test_errors_at_threshold"] == round(624 * (1 - 0.85))  # 94
    assert study_reproduction_table([two_records[1]]).empty


# ---------------------------------------------------------------------------------------------
# plots
# ---------------------------------------------------------------------------------------------

@pytest.fixture
def in_empty_dir(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    yield tmp_path
    assert list(tmp_path.iterdir()) == []  # drawing wrote nothing
    plt.close("all")


def test_evaluation_plots_return_figures_and_write_nothing(in_empty_dir):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 100)
    p = np.clip(0.3 * y + rng.random(100) * 0.7, 0, 1)
    t = choose_threshold(y, p, 0.9)
    m = metrics_at(y, p, t, CLASSES)

    fig, axes = plt.subplots(1, 2)
    assert plots.plot_confusion(axes[0], m["confusion_matrix"], CLASSES) is fig
    assert plots.plot_confusion(axes[1], m["confusion_matrix"], CLASSES, normalize=True) is fig
    texts = [t.get_text() for t in axes[1].texts]
    assert f"{m['per_class']['NORMAL']['recall']:.3f}" in texts

    fig, ax = plt.subplots()
    assert plots.plot_roc(ax, y, p, "model A") is fig
    assert plots.plot_roc(ax, y, 1 - p, "model B") is fig  # overlay: one chance line only
    assert sum(line.get_gid() == "medclf-chance" for line in ax.lines) == 1
    assert isinstance(plots.plot_pr(plt.subplots()[1], y, p, "model A"), Figure)

    fig, axes = plt.subplots(1, 2)
    history = {"loss": [0.7, 0.5, 0.4], "val_loss": [0.8, 0.6, 0.65], "auc": [0.6, 0.8, 0.9],
               "val_auc": [0.55, 0.75, 0.7]}
    assert training_plots.plot_training_curves(axes, history, best_epoch=2) is fig
    assert any(list(line.get_xdata()) == [2, 2] for line in axes[1].lines)  # best epoch marked
    with pytest.raises(ValueError, match=r"history has no 'accuracy'; its keys are"):
        training_plots.plot_training_curves(axes, history, 2, metric="accuracy")

    fig, ax = plt.subplots()
    assert plots.plot_threshold_recalls(ax, y, p, t, CLASSES) is fig
    assert any(list(line.get_xdata()) == [t, t] for line in ax.lines)
