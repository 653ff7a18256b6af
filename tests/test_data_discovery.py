"""Discovery and validation: bad files are skipped and reported; bad layouts are clear errors."""

from __future__ import annotations

import io
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


def test_links_that_cannot_be_read_and_bombs_are_skipped_and_listed(make_tree, folder_params):
    """A dangling or looping link, a link to a folder and a decompression-bomb GIF stop nothing: each is a
    skipped file with its reason (they used to vanish, or abort the whole data set)."""
    root = make_tree({"": {"A": 12, "B": 12}})
    (root / "A" / "gone.png").symlink_to("missing.png")
    (root / "A" / "loop.png").symlink_to("loop.png")
    (root / "B" / "folder").symlink_to(root / "A", target_is_directory=True)
    buffer = io.BytesIO()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(buffer, "GIF")
    data = bytearray(buffer.getvalue())
    data[6:10] = b"\xff\xff\xff\xff"
    (root / "B" / "bomb.gif").write_bytes(bytes(data))
    (root / "B" / "linked.png").symlink_to(sorted((root / "A").glob("*.png"))[0])  # a link to a file is an image
    ds = load_dataset(folder_params(root, test_fraction=0.2, val_fraction=0.2))
    reasons = dict(zip(ds.skipped["relpath"], ds.skipped["reason"]))
    assert set(reasons) == {"A/gone.png", "A/loop.png", "B/folder", "B/bomb.gif"}
    assert reasons["A/gone.png"].startswith("broken symbolic link")
    assert "loop" in reasons["A/loop.png"] and "link to a folder" in reasons["B/folder"]
    assert "decompression bomb" in reasons["B/bomb.gif"]
    assert len(ds.frame) == 25 and "B/linked.png" in set(ds.frame["relpath"])


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


# --------------------------------------------------------------------------- bad input (issue 23)


def test_broken_and_looping_links_are_skipped_with_their_reason(make_tree, folder_params, tmp_path):
    root = make_tree({"": {"A": 12, "B": 12}})
    (root / "A" / "dangling.png").symlink_to(tmp_path / "gone.png")
    (root / "B" / "loop.png").symlink_to("loop.png")
    (root / "B" / "elsewhere").symlink_to(tmp_path, target_is_directory=True)
    good = next((root / "A").glob("a0_*.png"))
    (root / "B" / "alias.png").symlink_to(good)  # a link to an image is an image
    ds = load_dataset(folder_params(root, test_fraction=0.2, val_fraction=0.2))
    reasons = dict(zip(ds.skipped["relpath"], ds.skipped["reason"]))
    assert reasons["A/dangling.png"].startswith("broken symbolic link")
    assert reasons["B/loop.png"] == "symbolic link loop"
    assert reasons["B/elsewhere"] == "symbolic link to a folder (not followed)"
    assert "B/alias.png" in set(ds.frame["relpath"]) and len(ds.frame) == 25
    from medclf.data.discover import listing_signature

    assert {"A/dangling.png", "B/loop.png"} <= {rel for rel, _, _ in listing_signature(root)}


@pytest.mark.parametrize("spec, match", [
    ({"": {"A": 4}}, "only one class folder \\(A\\)"),
    ({"": {"A": 4, "B": 4, "C": 4}}, "3 class folders \\(A, B, C\\)"),
    ({"train": {"A": 4, "B": 4}, "test": {"A": 2, "C": 2}}, "split folders .* name 3 classes"),
])
def test_a_classifier_needs_exactly_two_class_folders(make_tree, spec, match):
    with pytest.raises(DataError, match=match) as info:
        discover(make_tree(spec))
    assert "\n" not in str(info.value)


def test_an_empty_root_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="is empty: put the images in one folder per class"):
        detect_layout(tmp_path / "empty")


def test_decoded_arrays_that_would_not_fit_in_memory_are_refused(make_tree, folder_params, monkeypatch):
    from medclf.data import preflight as check

    root = make_tree({"": {"A": 12, "B": 12}})
    params = folder_params(root, image_size=512, color_mode="rgb", val_fraction=0.2, test_fraction=0.2)
    monkeypatch.setattr(check, "total_memory", lambda: 24 * 512 * 512 * 3)  # exactly the arrays: over half
    with pytest.raises(DataError, match="'image_size' = 512: decoding the 24 images .* give -p image_size=3\\d\\d") as info:
        check.check_folder(root, params)
    assert "\n" not in str(info.value)
    monkeypatch.setattr(check, "total_memory", lambda: 3 * 24 * 512 * 512 * 3)
    summary = check.check_folder(root, params)
    assert summary.classes == {"A": 12, "B": 12} and sum(summary.splits.values()) == 24
