"""Where the real-data tests find the data sets: the shared folder first, then the project's own defaults."""

from __future__ import annotations

import pytest

import conftest
from medclf.config import paths


@pytest.fixture
def places(tmp_path, monkeypatch):
    """An empty shared folder and an empty project root: ``(shared, project)``."""
    shared, project = tmp_path / "shared", tmp_path / "project"
    monkeypatch.setattr(conftest, "SHARED_DATA", shared)
    monkeypatch.setattr(paths, "PROJECT_ROOT", project)
    return shared, project


@pytest.mark.parametrize("dataset, where", [("chest_xray", "data/chest_xray"),
                                            ("malaria", "data/malaria/cell_images"),
                                            ("pneumoniamnist", "data/medmnist/pneumoniamnist.npz")])
def test_the_readmes_default_place_in_the_project_is_found(places, dataset, where):
    _, project = places
    (project / where).mkdir(parents=True)
    assert conftest.real_data(dataset) == project / where


def test_the_shared_folder_comes_first_and_mirrors_the_data_folder(places):
    shared, project = places
    (shared / "malaria" / "cell_images").mkdir(parents=True)
    (project / "data" / "malaria" / "cell_images").mkdir(parents=True)
    assert conftest.real_data("malaria") == shared / "malaria" / "cell_images"


def test_an_absent_data_set_skips_and_names_every_place_looked_in(places):
    shared, project = places
    with pytest.raises(pytest.skip.Exception) as skipped:
        conftest.real_data("chest_xray")
    assert str(shared / "chest_xray") in str(skipped.value) and str(project / "data" / "chest_xray") in str(skipped.value)
