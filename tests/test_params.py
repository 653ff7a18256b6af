"""Parameter merging and validation."""

from __future__ import annotations

import pytest
import yaml

from medclf.config import paths as config
from medclf.config.params import SPECS, ParamError, load_params, markdown_table, parse_override, read_yaml


def test_defaults_declare_every_spec_and_nothing_else():
    assert set(read_yaml(config.PARAMS_DIR / "default.yaml")) == set(SPECS)


@pytest.mark.parametrize("dataset", ["synthetic", "chest_xray", "malaria", "pneumoniamnist", "folder"])
@pytest.mark.parametrize("profile", ["demo", "quick", "full"])
def test_every_dataset_and_profile_merges(dataset, profile):
    params = load_params(dataset, profile)
    assert params["dataset"] == dataset and params["profile"] == profile and set(params) == set(SPECS)


def test_merge_order_default_dataset_profile_override(tmp_path):
    (tmp_path / "datasets").mkdir()
    (tmp_path / "profiles").mkdir()
    defaults = read_yaml(config.PARAMS_DIR / "default.yaml")
    (tmp_path / "default.yaml").write_text(yaml.safe_dump({**defaults, "seed": 1, "image_size": 10, "workers": 1}))
    (tmp_path / "datasets" / "malaria.yaml").write_text("seed: 2\nimage_size: 20\n")
    (tmp_path / "profiles" / "quick.yaml").write_text("seed: 3\nper_dataset:\n  malaria:\n    image_size: 30\n")
    params = load_params("malaria", "quick", overrides={"seed": 4}, params_dir=tmp_path)
    assert (params["seed"], params["image_size"], params["workers"]) == (4, 30, 1)


def test_unknown_key_names_it_and_lists_valid_ones():
    with pytest.raises(ParamError, match="unknown parameter 'epochz'.*valid parameters: .*image_size"):
        load_params(overrides={"epochz": 3})


@pytest.mark.parametrize("key, value", [("seed", "one"), ("val_fraction", "big"), ("download", 1),
                                        ("color_mode", "cmyk"), ("image_size", None), ("seed", True)])
def test_wrong_types_and_choices_are_errors(key, value):
    with pytest.raises(ParamError, match=f"'{key}'"):
        load_params(overrides={key: value})


def test_unknown_key_in_a_file_names_the_file(tmp_path):
    (tmp_path / "profiles").mkdir()
    defaults = read_yaml(config.PARAMS_DIR / "default.yaml")
    (tmp_path / "default.yaml").write_text(yaml.safe_dump(defaults))
    (tmp_path / "profiles" / "demo.yaml").write_text("imagesize: 3\n")
    with pytest.raises(ParamError, match="imagesize.*profiles/demo.yaml"):
        load_params(params_dir=tmp_path)


def test_overrides_are_parsed_as_yaml():
    assert parse_override("seed=7") == ("seed", 7)
    assert parse_override("class_names=[a, b]") == ("class_names", ["a", "b"])
    assert parse_override("data_root=null") == ("data_root", None)
    assert parse_override("group_pattern=123") == ("group_pattern", "123")
    with pytest.raises(ParamError, match="key=value"):
        parse_override("seed")


def test_profile_defaults_to_demo_for_synthetic_and_quick_for_real_data():
    assert load_params()["profile"] == "demo"
    assert load_params("chest_xray")["profile"] == "quick"


def test_readme_parameter_table_is_current():
    readme = (config.PROJECT_ROOT / "README.md").read_text()
    assert markdown_table() in readme, "regenerate with: python -m medclf params --markdown"
