"""medclf.core.progress: task labels, the status file, its one-line description and the runner's watcher."""

from __future__ import annotations

import json
import os
import time

import pytest

from medclf.core import progress


@pytest.fixture
def status_file(tmp_path, monkeypatch):
    path = tmp_path / "status.json"
    monkeypatch.setenv(progress.ENV_VAR, str(path))
    return path


def test_task_labels_nest_and_unwind_on_errors():
    assert progress.current_task() == ""
    with progress.task("cnn_ours_chest_ensemble"):
        with progress.task("member 2/3"):
            assert progress.current_task() == "cnn_ours_chest_ensemble · member 2/3"
        with pytest.raises(RuntimeError), progress.task("scoring"):
            raise RuntimeError("boom")
        assert progress.current_task() == "cnn_ours_chest_ensemble"
    assert progress.current_task() == ""


def test_report_writes_the_task_and_fields_only_when_asked(status_file, monkeypatch):
    with progress.task("svm_pixels"):
        assert json.loads(status_file.read_text()) == {"task": "svm_pixels"}  # the start of a task is reported
        progress.report(epoch=1, epochs=1)
    assert json.loads(status_file.read_text()) == {"task": "svm_pixels", "epoch": 1, "epochs": 1}
    monkeypatch.delenv(progress.ENV_VAR)
    with progress.task("other"):
        progress.report(epoch=3)
    assert json.loads(status_file.read_text())["task"] == "svm_pixels"


def test_an_unwritable_status_file_does_not_stop_the_work(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, str(tmp_path / "missing" / "dir" / "x.json"))
    (tmp_path / "missing").write_text("a file where a folder should be")
    progress.report(epoch=1)  # no exception


def test_epoch_fields_keep_validation_metrics_and_the_mean_epoch_time():
    logs = {"loss": 0.3, "auc": 0.9, "val_loss": 0.21234, "val_auc": 0.96251, "learning_rate": 1e-3}
    fields = progress.epoch_fields(4, 10, [60.0, 70.0], logs)
    assert fields == {"epoch": 4, "epochs": 10, "seconds_per_epoch": 65.0, "val": {"loss": 0.2123, "auc": 0.9625}}
    assert progress.epoch_fields(1, 2, [], None) == {"epoch": 1, "epochs": 2, "seconds_per_epoch": None, "val": {}}


def test_describe():
    state = {"task": "cnn_deeper", "epoch": 4, "epochs": 10, "seconds_per_epoch": 64.6,
             "val": {"loss": 0.21, "auc": 0.9625}}
    assert progress.describe(state) == "cnn_deeper · epoch 4/10 · 65 s/epoch, ≤ 7 min left · val auc 0.963, loss 0.210"
    # 6 epochs × 64.6 s = 387.6 s: rounded up to whole minutes; nothing left on the last epoch
    assert progress.describe({**state, "epoch": 10, "val": {}}) == "cnn_deeper · epoch 10/10 · 65 s/epoch"
    assert progress.describe({**state, "epoch": 9, "val": {}}) == "cnn_deeper · epoch 9/10 · 65 s/epoch, ≤ 2 min left"
    assert progress.describe({"task": "x", "epoch": 2, "seconds_per_epoch": 5.0}) == "x · epoch 2/? · 5 s/epoch"
    assert progress.describe({"task": "svm_pixels"}) == "svm_pixels"
    assert progress.describe({"task": ""}) == "preparing"


def test_read_state_tolerates_missing_and_partial_files(tmp_path):
    assert progress.read_state(tmp_path / "none.json") is None
    (tmp_path / "bad.json").write_text('{"task": ')
    assert progress.read_state(tmp_path / "bad.json") is None
    (tmp_path / "list.json").write_text("[1, 2]")
    assert progress.read_state(tmp_path / "list.json") is None


def test_watch_emits_each_new_status_once_then_cleans_up(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV_VAR, "outer.json")
    path, lines = tmp_path / "run" / "status.json", []
    path.parent.mkdir()
    with progress.watch(path, lines.append, interval=0.02):
        assert os.environ[progress.ENV_VAR] == str(path)
        for epoch in (1, 1, 2):
            progress.report(epoch=epoch, epochs=2)
            time.sleep(0.15)
    assert [line.split(" ", 1)[1] for line in lines] == ["preparing · epoch 1/2", "preparing · epoch 2/2"]
    assert all(line.startswith("0:00 ") for line in lines)
    assert os.environ[progress.ENV_VAR] == "outer.json" and not path.exists()


def test_no_bars_in_a_kernel_the_runner_watches(monkeypatch):
    monkeypatch.delenv(progress.ENV_VAR, raising=False)
    assert progress.bars_wanted()
    monkeypatch.setenv(progress.ENV_VAR, "/tmp/status.json")
    assert not progress.bars_wanted()
