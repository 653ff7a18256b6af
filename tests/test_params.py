"""Parameter merging and validation."""

from __future__ import annotations

import pytest
import yaml

from medclf.config import datasets
from medclf.config import paths as config
from medclf.config.param_specs import SPECS
from medclf.config.params import ParamError, check_model_names, load_params, markdown_table, parse_override, read_yaml
from medclf.config.settings import Settings, grouped_keys
from medclf.pipeline.notebook import run_settings


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


def test_parameter_reference_is_current():
    reference = (config.PROJECT_ROOT / "docs" / "parameters.md").read_text(encoding="utf-8")
    assert markdown_table() in reference, "regenerate docs/parameters.md's table with: python -m medclf params --markdown"


# --------------------------------------------------------------------------- ranges and cross-key rules


@pytest.mark.parametrize("key, value", [
    ("image_size", 4), ("image_size", 4096), ("val_fraction", 0.0), ("val_fraction", 0.6), ("test_fraction", -0.1),
    ("target_sensitivity", 0.0), ("target_sensitivity", 1.0), ("patience", -1), ("bootstrap_replicates", -1),
    ("max_epochs", 0), ("max_image_size", 2), ("workers", 0), ("seed", -1), ("fine_tune_learning_rate", 0.0),
    ("lime_samples", 0), ("explain_per_class", 0)])
def test_values_out_of_range_are_one_line_errors_naming_the_key(key, value):
    with pytest.raises(ParamError) as info:
        load_params(overrides={key: value})
    message = str(info.value)
    assert f"parameter '{key}' is out of range" in message and "give a value with" in message
    assert "\n" not in message


@pytest.mark.parametrize("key, value", [("image_size", 8), ("image_size", 2048), ("val_fraction", 0.5),
                                        ("patience", 0), ("bootstrap_replicates", 0), ("target_sensitivity", 0.99)])
def test_values_at_the_edges_of_their_range_are_accepted(key, value):
    assert load_params(overrides={key: value})[key] == value


def test_a_misspelt_key_or_choice_suggests_the_closest():
    with pytest.raises(ParamError, match="unknown parameter 'image_sise'.*did you mean image_size"):
        load_params(overrides={"image_sise": 3})
    with pytest.raises(ParamError, match="did you mean chest_xray"):
        load_params("chest_xrays")


@pytest.mark.parametrize("overrides, match", [
    ({"val_fraction": 0.5, "test_fraction": 0.45}, "'val_fraction' \\+ 'test_fraction'"),
    ({"positive_class": "ILL"}, "'positive_class' names class 'ILL'"),
    ({"split_by_image": ["PNEUMONA"]}, "'split_by_image'.*did you mean PNEUMONIA"),
    ({"class_names": ["A"]}, "'class_names' must name two"),
    ({"group_pattern": "^(unclosed"}, "'group_pattern' is not a valid regular expression"),
    ({"group_pattern": "^person"}, "'group_pattern' needs a group"),
    ({"baselines": ["svm_pixels", 3]}, "'baselines' must be a list of strings"),
    ({"model_overrides": {"cnn_deeper": 10}}, "'model_overrides.cnn_deeper' must be a mapping"),
    ({"model_overrides": {"cnn_deeper": {"epoch": 3}}}, "'model_overrides.cnn_deeper.epoch'.*did you mean epochs"),
    ({"model_overrides": {"cnn_deeper": {"image_size": 4}}}, "'model_overrides.cnn_deeper.image_size' is out of range"),
])
def test_cross_key_rules(overrides, match):
    with pytest.raises(ParamError, match=match) as info:
        load_params("synthetic", overrides=overrides)
    assert "\n" not in str(info.value)


def test_model_names_are_checked_against_the_registry_with_the_closest_names():
    params = load_params(overrides={"model_overrides": {"cnn_deepr": {"epochs": 2}}})
    known = ["cnn_deeper", "cnn_deeper_aug", "svm_pixels", "ann_deep", "ann_deep_lr5e-4", "cnn_ours_chest", "mobilenet_v2_frozen",
             "mobilenet_v2_finetune"]
    with pytest.raises(ParamError, match="'model_overrides' names unknown model 'cnn_deepr' \\(did you mean cnn_deeper"):
        check_model_names(params, known)
    params = load_params(overrides={"baselines": ["svm_pixel"]})
    with pytest.raises(ParamError, match="'baselines' names unknown model 'svm_pixel' \\(did you mean svm_pixels"):
        check_model_names(params, known)
    with pytest.raises(ParamError, match="'augmentation_models' names 'cnn_ours_chest', which has no augmentation"):
        check_model_names(load_params(), known, augmentable=["cnn_deeper_aug"])
    check_model_names(load_params(), known, augmentable=["cnn_ours_chest"])


def test_the_runner_refuses_an_unknown_model_before_any_notebook(tmp_path, capsys):
    from medclf.cli import run_all

    code = run_all.main(["-p", f"output_dir={tmp_path}", "-p", "model_overrides={cnn_deepr: {epochs: 2}}"],
                        notebooks_dir=tmp_path)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert err.startswith("error: parameter 'model_overrides' names unknown model 'cnn_deepr' (did you mean cnn_deeper")
    assert not any(tmp_path.iterdir())


# --------------------------------------------------------------------------- typed settings, notebook boundary


def test_settings_group_every_key_and_round_trip():
    assert grouped_keys() == set(SPECS)
    for dataset, profile in (("synthetic", "demo"), ("chest_xray", "full"), ("malaria", "quick")):
        params = load_params(dataset, profile)
        settings = Settings.from_params(params)
        assert settings.as_params() == params
        assert settings.training.patience == params["patience"] and settings.data.image_size == params["image_size"]


def test_a_notebook_uses_the_runners_settings_as_given_and_merges_a_request_alone():
    merged = load_params("synthetic", "demo", overrides={"seed": 7, "max_epochs": 2})
    assert run_settings(merged).as_params() == merged  # complete: checked, nothing re-merged
    alone = run_settings({"dataset": "chest_xray", "profile": "quick", "seed": 3})
    assert alone.as_params() == load_params("chest_xray", "quick", overrides={"seed": 3})
    assert run_settings({"dataset": "synthetic"}).as_params() == load_params()
    with pytest.raises(ParamError, match="'image_size' is out of range"):
        run_settings({**merged, "image_size": 1})


# --------------------------------------------------------------------------- the dataset registry


def test_every_registered_dataset_has_a_parameter_file_and_back():
    files = {path.stem for path in (config.PARAMS_DIR / "datasets").glob("*.yaml")}
    assert files == set(datasets.names()) == set(SPECS["dataset"].choices)
    assert [name for name, info in datasets.DATASETS.items() if info.synthetic] == ["synthetic"]
    assert datasets.get("pneumoniamnist").layout == "npz" and datasets.get("malaria").archive is not None
    with pytest.raises(KeyError, match="did you mean malaria"):
        datasets.get("malria")
