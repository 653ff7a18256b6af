"""Counts on the real data sets (skipped when ../shared/data is absent; set MEDCLF_SHARED_DATA to move it)."""

from __future__ import annotations

import pytest

from conftest import real_data
from medclf.data import duplicate_groups, leaking_groups, load_dataset
from medclf.data.split import assign_splits
from medclf.params import load_params

pytestmark = pytest.mark.realdata


def load(name: str, relative: str, tmp_path, **overrides):
    root = real_data(relative)
    return load_dataset(load_params(name, data_root=str(root),
                                    overrides={"cache_dir": str(tmp_path / "cache"), "image_size": 32, **overrides}))


def counts(ds, column: str) -> dict:
    return ds.frame.groupby([column, "class_name"]).size().to_dict()


def test_chest_xray_official_counts_and_patient_split(tmp_path):
    ds = load("chest_xray", "chest_xray", tmp_path)
    assert counts(ds, "source_split") == {
        ("train", "NORMAL"): 1341, ("train", "PNEUMONIA"): 3875, ("val", "NORMAL"): 8, ("val", "PNEUMONIA"): 8,
        ("test", "NORMAL"): 234, ("test", "PNEUMONIA"): 390}
    assert ds.skipped.empty
    assert (ds.frame.loc[ds.frame["split"] == "test", "source_split"] == "test").all()
    carved = ds.frame[ds.frame["split"] != "test"]
    assert leaking_groups(carved).empty  # no patient in both train and the carved validation
    leaks = leaking_groups(ds.frame)  # the official test shares patients with the official train
    assert leaks["official"].all() and len(leaks) == 170
    assert duplicate_groups(ds)["dup_group"].nunique() == 30  # documented in the data README


@pytest.fixture(scope="module")
def malaria(tmp_path_factory):
    return load("malaria", "malaria/cell_images", tmp_path_factory.mktemp("malaria"), image_size=16)


def test_malaria_counts_and_patient_split(malaria):
    ds = malaria
    assert ds.frame["class_name"].value_counts().to_dict() == {"Parasitized": 13779, "Uninfected": 13779}
    assert ds.frame["group"].nunique() == 200
    assert leaking_groups(ds.frame).empty
    assert set(ds.frame["split"]) == {"train", "val", "test"}
    assert ds.positive_class == "Parasitized" and ds.class_names[1] == "Parasitized"


def test_malaria_cell_split_is_available(malaria):
    frame = malaria.frame.copy()
    frame["split"] = assign_splits(frame, {**malaria.params, "split_mode": "cell"})
    assert not leaking_groups(frame).empty


def test_pneumoniamnist_official_shapes(tmp_path):
    ds = load("pneumoniamnist", "medmnist/pneumoniamnist.npz", tmp_path, image_size=28)
    assert ds.images.shape == (5856, 28, 28, 1)
    assert ds.frame.groupby("split").size().to_dict() == {"train": 4708, "val": 524, "test": 624}
    assert counts(ds, "split") == {("train", "normal"): 1214, ("train", "pneumonia"): 3494,
                                   ("val", "normal"): 135, ("val", "pneumonia"): 389,
                                   ("test", "normal"): 234, ("test", "pneumonia"): 390}
