"""A card belongs to one model: every loader checks the file against the hash its card, record or cache entry
holds; numbers read from a card are bounded; an archive built to expand is refused before extraction."""

from __future__ import annotations

import json
import shutil
import zipfile

import pytest

from medclf.__main__ import main
from medclf.evaluation import records
from medclf.models import files
from test_predict import trained  # noqa: F401 - the module's shared fixture: a CNN and the SVM, trained once


def test_predict_refuses_a_card_written_for_another_model_in_one_line(trained, tmp_path, capsys):
    """Both are Keras files of the same input shape: before, the donor's threshold was used without a word."""
    source = trained["models"]["cnn_baseline_8"]
    other = tmp_path / "other"
    other.mkdir()
    twin = other / source.name
    shutil.copy(source, twin)
    card = json.loads(records.model_card_path(source).read_text())
    card["model_sha256"] = files.file_sha256(trained["models"]["svm_pixels"])  # the card of another file
    records.model_card_path(twin).write_text(json.dumps(card))
    code = main(["predict", "--model", str(twin), str(trained["root"] / "test"), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1, err
    assert "written for another model file" in err[0] and str(records.model_card_path(twin)) in err[0]
    assert str(twin) in err[0] and not (tmp_path / "p.csv").exists()


def test_a_card_without_a_model_hash_is_refused(trained, tmp_path, capsys):
    source = trained["models"]["svm_pixels"]
    (tmp_path / "m").mkdir()
    target = tmp_path / "m" / source.name
    shutil.copy(source, target)
    card = json.loads(records.model_card_path(source).read_text())
    del card["model_sha256"]
    records.model_card_path(target).write_text(json.dumps(card))
    code = main(["predict", "--model", str(target), str(trained["root"] / "test"), "--out", str(tmp_path / "p.csv")])
    assert code == 2 and "records no model_sha256" in capsys.readouterr().err


@pytest.mark.parametrize("views", [0, 65, 10**9])
def test_tta_views_out_of_bounds_are_refused(trained, tmp_path, capsys, views):
    """A card asking for 1e9 views hung predict; views are bounded by the tta_views parameter's range."""
    source = trained["models"]["cnn_baseline_8"]
    (tmp_path / "m").mkdir()
    target = tmp_path / "m" / source.name
    shutil.copy(source, target)
    card = json.loads(records.model_card_path(source).read_text())
    card["evaluation"]["tta"] = {"used": True, "views": views, "seed": 0, "augmentation": {"flip": "horizontal"}}
    records.model_card_path(target).write_text(json.dumps(card))
    code = main(["predict", "--model", str(target), str(trained["root"] / "test"), "--out", str(tmp_path / "p.csv")])
    err = capsys.readouterr().err
    assert code == 2 and "evaluation.tta views" in err and "from 1 to 64" in err


def test_an_archive_that_would_expand_far_beyond_its_size_is_refused_before_extraction(tmp_path):
    bomb = tmp_path / "bomb.keras"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("config.json", "{}")
        archive.writestr("model.weights.h5", b"\0" * (64 << 20))  # 64 MiB of zeros: a few tens of KiB zipped
    assert bomb.stat().st_size < 1 << 20
    with pytest.raises(files.ModelFileError, match="would expand to .* refused before extraction"):
        files.load_model(bomb)


def test_the_saved_models_expand_well_within_the_limit(trained):
    """The limit is far from what a real model file needs (it stays at most a little over its size)."""
    for path in trained["models"].values():
        with zipfile.ZipFile(path) as archive:
            expanded = sum(member.file_size for member in archive.infolist())
        assert expanded <= 2 * path.stat().st_size + files.EXPANSION_ALLOWANCE


def test_a_cache_entry_naming_a_file_outside_itself_is_retrained_not_read(trained, tmp_path, capsys):
    from medclf.training.model_cache import TRAINING_FILE, ModelCache

    cache = ModelCache(tmp_path / "cache")
    entry = cache.entry("k" * 20)
    entry.mkdir(parents=True)
    outside = tmp_path / "elsewhere.keras"
    shutil.copy(trained["models"]["cnn_baseline_8"], outside)
    (entry / TRAINING_FILE).write_text(json.dumps({"model_file": "../../elsewhere.keras",
                                                   "model_sha256": files.file_sha256(outside), "training": {}}))
    assert cache.get("k" * 20) is None
    assert "outside the entry" in capsys.readouterr().out
    assert outside.is_file(), "the file outside the entry must not be touched"


def test_a_cache_entry_whose_file_changed_is_retrained(trained, tmp_path, capsys):
    from medclf.training.model_cache import TRAINING_FILE, ModelCache

    cache = ModelCache(tmp_path / "cache")
    entry = cache.entry("j" * 20)
    entry.mkdir(parents=True)
    shutil.copy(trained["models"]["cnn_baseline_8"], entry / "model.keras")
    (entry / TRAINING_FILE).write_text(json.dumps({"model_file": "model.keras", "model_sha256": "1" * 64,
                                                   "training": {}}))
    assert cache.get("j" * 20) is None
    assert "written for another model file" in capsys.readouterr().out
