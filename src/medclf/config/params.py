"""Parameter sets: load, merge and validate.

Merge order (later wins): ``params/default.yaml`` ← ``params/datasets/<dataset>.yaml`` ←
``params/profiles/<profile>.yaml`` (its top-level keys, then its ``per_dataset.<dataset>``
section) ← command-line overrides (``-p key=value``).

Every key is declared once in :data:`SPECS` with its type and meaning; ``default.yaml`` holds
the default values. An unknown key or a wrong type is a :class:`ParamError` naming the key.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from medclf.config import paths as config


class ParamError(ValueError):
    """A parameter file or override is invalid; the message names the key and the fix."""


@dataclass(frozen=True)
class Spec:
    """Declared type and meaning of one parameter."""

    type: type | tuple[type, ...]
    help: str
    choices: tuple[Any, ...] | None = None
    nullable: bool = False


DATASETS = ("synthetic", "chest_xray", "malaria", "pneumoniamnist", "folder")
PROFILES = ("demo", "quick", "full")

SPECS: dict[str, Spec] = {
    "dataset": Spec(str, "Data set to use.", choices=DATASETS),
    "profile": Spec(str, "Profile: demo (synthetic, minutes), quick (real data, few epochs), full (the study).",
                    choices=PROFILES),
    "data_root": Spec(str, "Folder (or .npz file for pneumoniamnist) holding the data; "
                           "relative paths are taken from the project root.", nullable=True),
    "download": Spec(bool, "Fetch the official archive into data_root when it is missing (needs network)."),
    "image_size": Spec(int, "Side in pixels of the square arrays images are decoded into."),
    "color_mode": Spec(str, "Channels of the decoded arrays.", choices=("grayscale", "rgb")),
    "resize": Spec(str, "stretch: resize to a square ignoring aspect (as the studies did); "
                        "pad: keep aspect and pad with black.", choices=("stretch", "pad")),
    "seed": Spec(int, "Seed for splits, sampling and training."),
    "split_mode": Spec(str, "patient: split grouped by patient/slide id so no patient is on both sides; "
                            "cell: random per-image split (only to compare with published cell-level numbers).",
                       choices=("patient", "cell")),
    "split_by_image": Spec(list, "Classes whose validation images are carved one by one, not by patient, so that "
                                 "validation shares patients with training as the official test set does for "
                                 "them (chest X-ray: PNEUMONIA); empty: every class by patient."),
    "select_on": Spec(str, "Validation images that choose epochs, test-time augmentation and the best model: all, or "
                           "new_patients (those whose patient has no training image; the threshold still uses all).",
                      choices=("all", "new_patients")),
    "source_val": Spec(str, "keep: an official val folder is the validation set; merge: it joins the training "
                            "pool and validation is carved from it (chest X-ray: its official val has 16 images).",
                       choices=("keep", "merge")),
    "val_fraction": Spec(float, "Share of the training pool carved out as validation."),
    "test_fraction": Spec(float, "Share held out as test when the data set has no official test split."),
    "group_pattern": Spec(str, "Regular expression whose first group extracts the patient/group id from a "
                               "file name; null means each file is its own group.", nullable=True),
    "class_names": Spec(list, "Class folder names in label order (label i = class_names[i]); "
                              "null means discovered and sorted.", nullable=True),
    "positive_class": Spec(str, "Name of the disease (positive, label 1) class; null means the last class.",
                           nullable=True),
    "workers": Spec(int, "Threads used to decode images."),
    "cache_dir": Spec(str, "Where decoded arrays are cached (relative to the project root)."),
    "output_dir": Spec(str, "Root of everything generated (relative to the project root)."),
    "synthetic_images_per_class": Spec(int, "Synthetic data set: images per class over all splits."),
    "synthetic_image_size": Spec(int, "Synthetic data set: side of the generated images in pixels."),
    "eda_samples_per_class": Spec(int, "EDA: images per class in the sample grid."),
    "report_hide_code": Spec(bool, "Rendered HTML reports hide code cells."),
    "baselines": Spec(list, "Models the baselines notebook trains (names from medclf.models.registry.MODELS)."),
    "transfer_models": Spec(list, "Models the transfer notebook trains (transfer-family names from medclf.models.registry.MODELS)."),
    "weights": Spec(str, "Transfer backbones' starting weights: imagenet (Keras' cache in $KERAS_HOME/models, or "
                         "downloaded), none (random), or the path of a weights file (include_top=False)."),
    "feature_cache": Spec(bool, "Transfer models: compute the frozen part's output once per image and train "
                                "only the layers above it (when no augmentation runs); with augmentation, run "
                                "the frozen part with its batch norm folded into the convolutions. false: the "
                                "whole model end to end, as the studies did."),
    "fine_tune_epochs": Spec(int, "Transfer models with fine_tune > 0: epochs of the second stage, the top "
                                  "layers unfrozen (0: head only)."),
    "fine_tune_learning_rate": Spec(float, "Learning rate of the fine-tuning stage."),
    "augmentation_models": Spec(list, "Models the augmentation notebook trains twice, with and without their "
                                      "augmentation, to compare on the same test images."),
    "max_epochs": Spec(int, "Cap on every model's epoch budget (the study's by default); null: no cap.",
                       nullable=True),
    "max_image_size": Spec(int, "Cap on every model's input size (the study's by default); null: no cap.",
                           nullable=True),
    "model_overrides": Spec(dict, "Per-model settings that replace the study's: {model: {image_size, epochs, "
                                  "batch_size, learning_rate, fine_tune, tta_views, ensemble}} (applied before the caps)."),
    "monitor": Spec(str, "Validation metric for early stopping, LR reduction and checkpoints.",
                    choices=("val_auc", "val_loss", "val_accuracy")),
    "patience": Spec(int, "Epochs without improvement of `monitor` before early stopping."),
    "class_weight": Spec(bool, "Weight the loss by inverse class frequency (balanced)."),
    "mixed_precision": Spec(str, "mixed_bfloat16 training: auto (native bf16 hardware and measured faster for the model), on, off.",
                            choices=("auto", "on", "off")),
    "target_sensitivity": Spec(float, "Decision threshold: chosen on validation as the highest one whose "
                                      "disease-class recall reaches this."),
    "bootstrap_replicates": Spec(int, "Bootstrap replicates for the 95% confidence intervals."),
    "save_models": Spec(bool, "Save every trained model under outputs/<dataset>/models/."),
    "lime_samples": Spec(int, "Explanations: perturbed images LIME scores per explained image (more: steadier weights)."),
    "lime_segments": Spec(int, "Explanations: about how many SLIC superpixels LIME switches on and off."),
    "explain_per_class": Spec(int, "Explanations: test images per class explained with LIME and Grad-CAM."),
    "error_gallery_size": Spec(int, "Explanations: most confident false negatives and false positives shown per model."),
}


def _check_type(key: str, value: Any) -> Any:
    spec = SPECS[key]
    if value is None:
        if spec.nullable:
            return None
        raise ParamError(f"parameter '{key}' must not be null: give a {_type_name(spec.type)}")
    expected = spec.type
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if expected is int and isinstance(value, bool) or not isinstance(value, expected):
        raise ParamError(f"parameter '{key}' must be {_type_name(expected)}, got {value!r} "
                         f"({type(value).__name__})")
    if spec.choices is not None and value not in spec.choices:
        raise ParamError(f"parameter '{key}' must be one of {', '.join(map(str, spec.choices))}; got {value!r}")
    return value


def _type_name(t: type | tuple[type, ...]) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false",
             list: "a list", dict: "a mapping"}
    return " or ".join(names.get(x, x.__name__) for x in (t if isinstance(t, tuple) else (t,)))


def validate(values: dict[str, Any], source: str = "parameters") -> dict[str, Any]:
    """Return a checked copy of ``values``; raise ParamError on an unknown key or wrong type."""
    unknown = sorted(set(values) - set(SPECS))
    if unknown:
        raise ParamError(f"unknown parameter '{unknown[0]}' in {source}; valid parameters: "
                         f"{', '.join(sorted(SPECS))}")
    return {key: _check_type(key, value) for key, value in values.items()}


def read_yaml(path: Path) -> dict[str, Any]:
    """Read one parameter file; a missing or malformed file is a ParamError naming it."""
    if not path.is_file():
        raise ParamError(f"parameter file {path} does not exist")
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ParamError(f"{path} is not valid YAML: {exc}".splitlines()[0]) from None
    if not isinstance(content, dict):
        raise ParamError(f"{path} must hold a mapping of parameter: value")
    return content


def parse_override(text: str) -> tuple[str, Any]:
    """Parse one ``key=value`` override; the value is read as YAML (``3``, ``true``, ``[a, b]``, ``null``)."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ParamError(f"override {text!r} must look like key=value")
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError:
        value = raw
    if key in SPECS and SPECS[key].type is str and value is not None and not isinstance(value, str):
        value = raw.strip()
    return key, value


def load_params(dataset: str | None = None, profile: str | None = None, data_root: str | None = None,
                overrides: dict[str, Any] | None = None, params_dir: Path | None = None) -> dict[str, Any]:
    """Merge and validate the parameter set for ``dataset`` and ``profile``.

    Args:
        dataset: data set name; ``None`` keeps the default (``synthetic``).
        profile: profile name; ``None`` means ``demo`` for synthetic data and ``quick`` otherwise.
        data_root: overrides ``data_root`` when given.
        overrides: final ``key: value`` overrides (e.g. parsed from ``-p key=value``).
        params_dir: folder holding ``default.yaml``, ``datasets/`` and ``profiles/``.

    Returns:
        The merged parameters; every key of :data:`SPECS` is present.

    Raises:
        ParamError: unknown key, wrong type, or an unknown data set or profile.
    """
    params_dir = Path(params_dir or config.PARAMS_DIR)
    overrides = validate(dict(overrides or {}), "command-line overrides")
    merged = validate(read_yaml(params_dir / "default.yaml"), str(params_dir / "default.yaml"))
    missing = sorted(set(SPECS) - set(merged))
    if missing:
        raise ParamError(f"{params_dir / 'default.yaml'} lacks parameter '{missing[0]}': add its default value")

    dataset = _check_type("dataset", dataset or overrides.get("dataset") or merged["dataset"])
    merged.update(_layer(params_dir / "datasets" / f"{dataset}.yaml"))
    profile = _check_type("profile", profile or overrides.get("profile")
                          or ("demo" if dataset == "synthetic" else "quick"))
    profile_values = read_yaml(params_dir / "profiles" / f"{profile}.yaml")
    per_dataset = profile_values.pop("per_dataset", {}) or {}
    merged.update(validate(profile_values, f"profiles/{profile}.yaml"))
    merged.update(validate(per_dataset.get(dataset, {}) or {}, f"profiles/{profile}.yaml per_dataset.{dataset}"))
    merged.update(overrides)
    merged["dataset"], merged["profile"] = dataset, profile
    if data_root is not None:
        merged["data_root"] = data_root
    return merged


def _layer(path: Path) -> dict[str, Any]:
    return validate(read_yaml(path), str(path)) if path.exists() else {}


def params_hash(params: dict[str, Any]) -> str:
    """Stable short hash of a parameter set (key order does not matter)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def markdown_table() -> str:
    """The parameter reference as a Markdown table (used in the README)."""
    defaults = read_yaml(config.PARAMS_DIR / "default.yaml")
    rows = ["| parameter | type | default | meaning |", "|---|---|---|---|"]
    for key, spec in SPECS.items():
        kind = _type_name(spec.type) + (" or null" if spec.nullable else "")
        if spec.choices:
            kind = " \\| ".join(map(str, spec.choices))
        rows.append(f"| `{key}` | {kind} | `{json.dumps(defaults.get(key))}` | {spec.help} |")
    return "\n".join(rows)
