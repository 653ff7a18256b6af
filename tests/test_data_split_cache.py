"""Splitting (no patient on both sides), caching, duplicates, synthetic data and npz loading."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest

import medclf.data as data
from medclf.data import duplicate_groups, leaking_groups, load_dataset
from medclf.data.split import assign_splits
from medclf.config.params import load_params


def toy_frame(n_patients: int = 60, per_patient: int = 3, with_test: bool = False) -> pd.DataFrame:
    rows = []
    for p in range(n_patients):
        for k in range(per_patient):
            source = "test" if with_test and p % 5 == 0 else "train"
            rows.append({"relpath": f"p{p}_{k}.png", "label": p % 2, "group": f"p{p}", "source_split": source})
    return pd.DataFrame(rows)


BASE = {"seed": 3, "split_mode": "patient", "val_fraction": 0.2, "test_fraction": 0.2, "source_val": "keep"}


def test_grouped_split_puts_no_patient_on_both_sides():
    frame = toy_frame()
    frame["split"] = assign_splits(frame, BASE)
    assert leaking_groups(frame).empty
    assert set(frame["split"]) == {"train", "val", "test"}
    shares = frame["split"].value_counts(normalize=True)
    assert 0.1 < shares["test"] < 0.3 and 0.1 < shares["val"] < 0.3


def test_official_test_is_kept_and_val_carved_from_train():
    frame = toy_frame(with_test=True)
    split = assign_splits(frame, BASE)
    assert (split[frame["source_split"] == "test"] == "test").all()
    assert (split[frame["source_split"] == "train"] != "test").all()
    assert (split == "val").any()


def test_split_is_seeded():
    frame = toy_frame()
    first, again = assign_splits(frame, BASE), assign_splits(frame, BASE)
    other = assign_splits(frame, {**BASE, "seed": 4})
    assert first.equals(again) and not first.equals(other)


def test_cell_mode_splits_patients_across_sides():
    frame = toy_frame(n_patients=30, per_patient=10)
    frame["split"] = assign_splits(frame, {**BASE, "split_mode": "cell"})
    leaks = leaking_groups(frame)
    assert not leaks.empty and not leaks["official"].any()  # the named cell-level option really is per image


def test_split_by_image_carves_that_class_one_by_one_and_the_other_by_patient():
    frame = toy_frame(n_patients=40, per_patient=5, with_test=True)
    frame["class_name"] = np.where(frame["label"] == 1, "PNEUMONIA", "NORMAL")
    frame["split"] = assign_splits(frame, {**BASE, "split_by_image": ["PNEUMONIA"]})
    leaks = leaking_groups(frame[frame["split"] != "test"])
    assert not leaks.empty
    assert set(leaks["group"]) <= set(frame.loc[frame["class_name"] == "PNEUMONIA", "group"])
    assert frame[frame["class_name"] == "NORMAL"].groupby("group")["split"].nunique().max() == 1
    assert 0.1 < (frame.loc[frame["split"] != "test", "split"] == "val").mean() < 0.3


def test_split_by_image_of_an_unknown_class_is_a_clear_error():
    frame = toy_frame()
    frame["class_name"] = np.where(frame["label"] == 1, "PNEUMONIA", "NORMAL")
    with pytest.raises(data.DataError, match="split_by_image names TUMOUR, not classes"):
        assign_splits(frame, {**BASE, "split_by_image": ["TUMOUR"]})


def test_merge_folds_official_val_into_training_pool():
    frame = toy_frame()
    frame.loc[:5, "source_split"] = "val"
    kept = assign_splits(frame, BASE)
    merged = assign_splits(frame, {**BASE, "source_val": "merge"})
    assert (kept[frame["source_split"] == "val"] == "val").all()
    assert (merged == "val").sum() > 6


def test_too_few_groups_is_a_clear_error():
    with pytest.raises(data.DataError, match="patient groups"):
        assign_splits(toy_frame(n_patients=3), BASE)


def test_second_load_reuses_the_cache(make_tree, folder_params, monkeypatch):
    root = make_tree({"": {"A": 10, "B": 10}})
    params = folder_params(root, val_fraction=0.2, test_fraction=0.2)
    first = load_dataset(params)

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(data, "decode_files", no_decoding)
    second = load_dataset(params)
    np.testing.assert_array_equal(first.images, second.images)
    pd.testing.assert_frame_equal(first.frame, second.frame)


def test_cache_is_keyed_by_size_mode_and_files(make_tree, folder_params, tmp_path):
    root = make_tree({"": {"A": 10, "B": 10}})
    params = folder_params(root, val_fraction=0.2, test_fraction=0.2)
    load_dataset(params)
    load_dataset({**params, "image_size": 8})
    assert load_dataset({**params, "color_mode": "rgb"}).images.shape[-1] == 3
    victim = next((root / "A").iterdir())
    os.utime(victim, ns=(1, 1))
    load_dataset(params)
    assert len(list((tmp_path / "cache" / "folder").glob("*.npz"))) == 4


def test_duplicates_are_found_within_and_across_splits(make_tree, folder_params):
    root = make_tree({"train": {"A": 6, "B": 6}, "test": {"A": 3, "B": 3}})
    copy = root / "test" / "B" / "copy_of_train.png"
    copy.write_bytes((root / "train" / "B" / "b1_img1.png").read_bytes())
    ds = load_dataset(folder_params(root, val_fraction=0.3))
    dups = duplicate_groups(ds)
    # every generated "B" image is the same constant picture, so all B files form one group
    assert dups["dup_group"].nunique() == 2
    assert set(dups["split"]) >= {"train", "test"}


def test_synthetic_data_is_seeded_and_learnable(tmp_path):
    from sklearn.linear_model import LogisticRegression

    params = load_params(overrides={"data_root": str(tmp_path / "syn"), "cache_dir": str(tmp_path / "cache")})
    ds = load_dataset(params)
    again = data.synthetic.generate(tmp_path / "syn2", params["synthetic_images_per_class"],
                                    params["synthetic_image_size"], params["seed"])
    first_file = sorted((tmp_path / "syn").rglob("*.jpeg"))[0]
    assert first_file.read_bytes() == (again / first_file.relative_to(tmp_path / "syn")).read_bytes()
    assert leaking_groups(ds.frame).empty
    x_train, y_train = ds.arrays("train")
    x_test, y_test = ds.arrays("test")
    model = LogisticRegression(max_iter=2000).fit(x_train.reshape(len(x_train), -1) / 255.0, y_train)
    assert model.score(x_test.reshape(len(x_test), -1) / 255.0, y_test) > 0.8


def test_synthetic_refuses_to_overwrite_foreign_folder(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "precious.txt").write_text("keep me")
    with pytest.raises(data.DataError, match="not a synthetic data set"):
        data.synthetic.generate(tmp_path / "mine", 10, 32, 0)
    assert (tmp_path / "mine" / "precious.txt").exists()


def test_npz_official_splits(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in {"train": 20, "val": 6, "test": 8}.items():
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 2).reshape(-1, 1).astype(np.uint8)
    np.savez(tmp_path / "mini.npz", **arrays)
    params = load_params("pneumoniamnist", overrides={"data_root": str(tmp_path / "mini.npz"), "image_size": 32,
                                                      "color_mode": "rgb", "cache_dir": str(tmp_path / "cache"),
                                                      "output_dir": str(tmp_path / "out")})
    ds = load_dataset(params)
    assert ds.images.shape == (34, 32, 32, 3)
    assert ds.frame.groupby("split").size().to_dict() == {"test": 8, "train": 20, "val": 6}
    assert ds.positive_class == "pneumonia" and ds.frame["label"].sum() == 17


def test_tf_dataset_feeds_uint8_batches_from_memory(make_tree, folder_params):
    root = make_tree({"": {"A": 10, "B": 10}})
    ds = load_dataset(folder_params(root, val_fraction=0.2, test_fraction=0.2))
    images, labels = next(iter(ds.tf_dataset("train", batch_size=4, shuffle=True)))
    assert tuple(images.shape) == (4, 16, 16, 1) and images.dtype.name == "uint8"
    assert set(labels.numpy().tolist()) <= {0.0, 1.0}


def test_selection_mask_keeps_validation_images_of_new_patients():
    from medclf.data.dataset import Dataset

    def dataset(frame: pd.DataFrame, rule: str) -> Dataset:
        return Dataset("t", frame, np.zeros((len(frame), 2, 2, 1), np.uint8), ["N", "P"], "P", pd.DataFrame(), "h",
                       select_on=rule)

    frame = pd.DataFrame({"group": ["a", "a", "b", "c", "c", "d"], "split": ["train", "val", "train", "val", "val", "val"],
                          "class_name": ["P", "P", "N", "P", "N", "N"], "label": [1, 1, 0, 1, 0, 0]})
    assert dataset(frame, "all").selection_mask().tolist() == [True, True, True, True]
    assert dataset(frame, "new_patients").selection_mask().tolist() == [False, True, True, True]  # "a" is in training
    assert len(dataset(frame, "new_patients").selection_arrays()[1]) == 3
    only_seen_positive = frame.assign(group=["a", "a", "b", "a", "c", "d"])
    with pytest.raises(data.DataError, match="select_on=new_patients: no validation image of P comes from a patient "
                                             "outside training"):
        dataset(only_seen_positive, "new_patients").selection_mask()


# --------------------------------------------------------------------------- bad input (issue 23)


@pytest.mark.parametrize("fraction, share", [(0.1, (1, 10)), (0.2, (1, 5)), (0.3, (1, 3)), (0.4, (2, 5)),
                                             (0.5, (1, 2))])
def test_grouped_hold_out_share_is_near_the_fraction(fraction, share):
    assert data.split.fold_share(fraction) == share
    m, k = share
    assert abs(m / k - fraction) <= 0.15 * fraction


def test_a_grouped_40_percent_validation_is_not_silently_50_percent():
    frame = toy_frame(n_patients=100)
    split = assign_splits(frame, {**BASE, "val_fraction": 0.4, "test_fraction": 0.1})
    pool = (split != "test").sum()
    assert 0.35 < (split == "val").sum() / pool < 0.45  # one fold of round(1 / 0.4) = 2 folds gave 0.5


def test_too_few_images_for_a_stratified_cell_split_is_a_clear_error():
    frame = toy_frame(n_patients=4, per_patient=1)
    with pytest.raises(data.DataError, match="too few images \\(4\\)") as info:
        assign_splits(frame, {**BASE, "split_mode": "cell"})
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("damage", ["truncated", "wrong keys", "rows of another listing", "not a zip"])
def test_a_damaged_cache_file_is_rebuilt_with_one_line(make_tree, folder_params, tmp_path, capsys, damage):
    root = make_tree({"": {"A": 10, "B": 10}})
    params = folder_params(root, val_fraction=0.2, test_fraction=0.2)
    first = load_dataset(params)
    (entry,) = (tmp_path / "cache" / "folder").glob("*.npz")
    whole = entry.read_bytes()
    if damage == "truncated":
        entry.write_bytes(whole[: len(whole) // 2])
    elif damage == "wrong keys":
        np.savez(entry.with_suffix(""), pictures=np.zeros(3))
    elif damage == "rows of another listing":
        with np.load(entry) as old:
            arrays = dict(old)
        arrays["relpath"] = arrays["relpath"][::-1]
        np.savez(entry.with_suffix(""), **arrays)
    else:
        entry.write_text("<html>not a cache</html>")
    capsys.readouterr()
    again = load_dataset(params)
    err = capsys.readouterr().err
    notes = [line for line in err.splitlines() if "cache file" in line]
    assert len(notes) == 1 and str(entry) in notes[0] and "decoding the images again" in notes[0]
    np.testing.assert_array_equal(first.images, again.images)
    assert data.cache.problem(entry) is None and entry.read_bytes() != b""  # rewritten whole
    assert data.cache.load(entry) is not None


def test_a_damaged_marker_of_a_generated_folder_regenerates_it_with_one_line(tmp_path, capsys):
    root = data.synthetic.generate(tmp_path / "syn", 10, 16, 0)
    files = sorted(p.relative_to(root) for p in root.rglob("*.jpeg"))
    (root / ".synthetic.json").write_bytes(b"\x00\xffgarbage")
    assert data.synthetic.state(root, 10, 16, 0) == "damaged"
    data.synthetic.generate(root, 10, 16, 0)
    assert "is unreadable" in capsys.readouterr().err
    assert data.synthetic.state(root, 10, 16, 0) == "ready"
    assert sorted(p.relative_to(root) for p in root.rglob("*.jpeg")) == files


def test_a_damaged_marker_beside_foreign_files_deletes_nothing(tmp_path):
    root = data.synthetic.generate(tmp_path / "syn", 10, 16, 0)
    (root / ".synthetic.json").write_text("{")
    (root / "train" / "NORMAL" / "my_scan.dcm").write_bytes(b"DICM")
    before = sorted(root.rglob("*"))
    with pytest.raises(data.DataError, match="unreadable .* holds files the generator does not write"):
        data.synthetic.generate(root, 10, 16, 0)
    assert sorted(root.rglob("*")) == before
