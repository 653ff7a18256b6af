"""Counts on the real data sets (skipped when absent: ``conftest.real_data`` says where it looks)."""

from __future__ import annotations

import pytest

from conftest import real_data
from medclf.analysis import patients
from medclf.data import duplicate_groups, leaking_groups, load_dataset
from medclf.data.split import assign_splits
from medclf.config.params import load_params

pytestmark = pytest.mark.realdata


def load(name: str, tmp_path, **overrides):
    root = real_data(name)
    return load_dataset(load_params(name, data_root=str(root),
                                    overrides={"cache_dir": str(tmp_path / "cache"), "output_dir": str(tmp_path / "out"),
                                               "image_size": 32, **overrides}))


def counts(ds, column: str) -> dict:
    return ds.frame.groupby([column, "class_name"]).size().to_dict()


def test_chest_xray_official_counts_and_patient_split(tmp_path):
    ds = load("chest_xray", tmp_path)
    assert counts(ds, "source_split") == {
        ("train", "NORMAL"): 1341, ("train", "PNEUMONIA"): 3875, ("val", "NORMAL"): 8, ("val", "PNEUMONIA"): 8,
        ("test", "NORMAL"): 234, ("test", "PNEUMONIA"): 390}
    assert ds.skipped.empty
    assert (ds.frame.loc[ds.frame["split"] == "test", "source_split"] == "test").all()
    carved = ds.frame[ds.frame["split"] != "test"]
    normal = carved[carved["class_name"] == "NORMAL"]
    assert leaking_groups(normal).empty  # no normal patient in both train and the carved validation
    assert ds.split_by_image == ["PNEUMONIA"]  # pneumonia validation images carved one by one
    folders = ds.frame.assign(split=ds.frame["source_split"].replace({"val": "train"}))
    official = leaking_groups(folders)  # the official test shares 170 (pneumonia) patients with the train folder
    assert official["official"].all() and len(official) == 170
    seen = patients.patients_in_training(ds).set_index(["split", "class_name"])["share"]
    assert seen["test", "NORMAL"] == 0 and seen["val", "NORMAL"] == 0  # validation drawn as the test set:
    assert seen["test", "PNEUMONIA"] > 0.7 and abs(seen["val", "PNEUMONIA"] - seen["test", "PNEUMONIA"]) < 0.1
    numbers = patients.group_number_ranges(ds).set_index(["split", "class_name", "series"])
    test_normal = numbers.loc[("test", "NORMAL")]  # the 225 official test normal patients: the lowest numbers
    assert test_normal["groups"].sum() == 225 and (test_normal["below_train"] == test_normal["groups"]).all()
    assert numbers.loc[("test", "PNEUMONIA", "person"), "below_train"] == 0
    grouped = load("chest_xray", tmp_path, split_by_image=[])  # every class by patient
    assert leaking_groups(grouped.frame[grouped.frame["split"] != "test"]).empty
    assert duplicate_groups(ds)["dup_group"].nunique() == 30  # documented in the data README


@pytest.fixture(scope="module")
def malaria(tmp_path_factory):
    return load("malaria", tmp_path_factory.mktemp("malaria"), image_size=16)


# Decoding the 27,558 malaria cells takes about 20 s on 2 CPUs: these two run with --all only.
@pytest.mark.slow
def test_malaria_counts_and_patient_split(malaria):
    ds = malaria
    assert ds.frame["class_name"].value_counts().to_dict() == {"Parasitized": 13779, "Uninfected": 13779}
    assert ds.frame["group"].nunique() == 200
    assert leaking_groups(ds.frame).empty
    assert set(ds.frame["split"]) == {"train", "val", "test"}
    assert ds.positive_class == "Parasitized" and ds.class_names[1] == "Parasitized"


@pytest.mark.slow
def test_malaria_cell_split_is_available(malaria):
    frame = malaria.frame.copy()
    params = load_params("malaria", data_root=str(real_data("malaria")), overrides={"image_size": 16})
    frame["split"] = assign_splits(frame, {**params, "split_mode": "cell"})
    assert not leaking_groups(frame).empty


def test_pneumoniamnist_official_shapes(tmp_path):
    ds = load("pneumoniamnist", tmp_path, image_size=28)
    assert ds.images.shape == (5856, 28, 28, 1)
    assert ds.frame.groupby("split").size().to_dict() == {"train": 4708, "val": 524, "test": 624}
    assert counts(ds, "split") == {("train", "normal"): 1214, ("train", "pneumonia"): 3494,
                                   ("val", "normal"): 135, ("val", "pneumonia"): 389,
                                   ("test", "normal"): 234, ("test", "pneumonia"): 390}
