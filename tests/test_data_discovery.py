"""Discovery and validation: bad files are skipped and reported; bad layouts are clear errors."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from medclf.data import DataError, load_dataset
from medclf.data.discover import detect_layout, discover


def add_bad_files(folder):
    """The four kinds of bad file the data report must list."""
    (folder / ".DS_Store").write_bytes(b"\x00\x00\x00\x01Bud1")
    (folder / "notes.txt").write_text("not an image")
    (folder / "empty.jpeg").write_bytes(b"")
    good = np.random.default_rng(1).integers(0, 255, (64, 64), dtype=np.uint8)
    Image.fromarray(good).save(folder / "whole.jpeg", quality=95)
    data = (folder / "whole.jpeg").read_bytes()
    (folder / "cut.jpeg").write_bytes(data[: len(data) // 2])
    (folder / "whole.jpeg").unlink()
    return {".DS_Store", "notes.txt", "empty.jpeg", "cut.jpeg"}


def test_bad_files_are_skipped_and_listed(make_tree, folder_params):
    root = make_tree({"": {"A": 12, "B": 12}})
    expected = add_bad_files(root / "A")
    (root / "B" / "Thumbs.db").write_bytes(b"\xd0\xcf\x11\xe0")
    (root / "B" / "garbage.png").write_bytes(b"this is not a png at all")
    ds = load_dataset(folder_params(root, test_fraction=0.2, val_fraction=0.2))
    reasons = dict(zip(ds.skipped["relpath"], ds.skipped["reason"]))
    assert set(reasons) == {f"A/{n}" for n in expected} | {"B/Thumbs.db", "B/garbage.png"}
    assert reasons["A/empty.jpeg"].startswith("empty file")
    assert reasons["A/cut.jpeg"].startswith("truncated image")
    assert reasons["A/notes.txt"].startswith("not an image file")
    assert reasons["B/garbage.png"].startswith("not a readable image")
    assert len(ds.frame) == 24 and ds.images.shape == (24, 16, 16, 1)


def test_split_layout_is_detected(make_tree):
    root = make_tree({"train": {"A": 3, "B": 3}, "test": {"A": 2, "B": 2}})
    assert detect_layout(root) == "split"
    candidates, skipped = discover(root)
    assert sorted(candidates["source_split"].unique()) == ["test", "train"]
    assert skipped.empty


def test_missing_root_names_the_path(tmp_path, folder_params):
    with pytest.raises(DataError, match=str(tmp_path / "nowhere")):
        load_dataset(folder_params(tmp_path / "nowhere"))


def test_loose_images_without_class_folders_is_an_error(tmp_path):
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat" / "x.png").write_bytes(b"")
    with pytest.raises(DataError, match="holds 1 files \\(1 images\\) but no class folders"):
        detect_layout(tmp_path / "flat")


def test_mixed_split_and_class_folders_is_an_error(make_tree):
    root = make_tree({"train": {"A": 1}, "": {"A": 1}})
    with pytest.raises(DataError, match="mixes split folders"):
        detect_layout(root)


def test_missing_class_folder_is_an_error(make_tree, folder_params):
    root = make_tree({"": {"A": 4, "B": 4}})
    with pytest.raises(DataError, match="class folder .*C is missing"):
        load_dataset(folder_params(root, class_names=["A", "C"]))


def test_empty_class_is_an_error(make_tree, folder_params):
    root = make_tree({"": {"A": 4, "B": 1}})
    shutil.rmtree(root / "B")
    (root / "B").mkdir()
    (root / "B" / "readme.txt").write_text("x")
    with pytest.raises(DataError, match="class 'B' has no image files"):
        load_dataset(folder_params(root, class_names=["A", "B"]))


def test_class_whose_every_file_is_broken_is_an_error(make_tree, folder_params):
    root = make_tree({"": {"A": 10, "B": 1}})
    for path in (root / "B").iterdir():
        path.write_bytes(b"broken")
    with pytest.raises(DataError, match="class 'B' has no readable images"):
        load_dataset(folder_params(root, class_names=["A", "B"]))
