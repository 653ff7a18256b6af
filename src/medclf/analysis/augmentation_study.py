"""The augmentation study: one model trained twice, with and without augmentation, compared on the same test images.

Each model in ``params["augmentation_models"]`` is trained twice by
:func:`medclf.training.experiment.run_model` with everything else equal (same spec, data, seed, epochs):
``<name>__aug`` with the spec's augmentation and ``<name>__noaug`` without (:func:`run_pair`).
The comparison then reads only what those runs wrote, ``results/<id>.json`` and
``predictions/<id>.csv``, so every number in the table can be re-checked from the files:

* per arm: test accuracy, per-class recall and ROC AUC at that arm's own validation-chosen
  threshold, with the bootstrap intervals already in its record;
* the difference (augmented − not augmented), with a *paired* bootstrap interval: the same
  resampled test images score both arms, so the interval reflects only how the two models differ;
* McNemar's test (:func:`medclf.evaluation.metrics.mcnemar`) on the two arms' decisions at their own
  thresholds: only the images exactly one of the two models gets right carry information.

Nothing here chooses anything on the test set; thresholds come from the records.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from medclf.config import datasets
from medclf.evaluation import records, tables
from medclf.evaluation.metrics import mcnemar
from medclf.evaluation.predictions import align_predictions, decisions, load_predictions, predictions_path
from medclf.evaluation.statistics import paired_bootstrap_delta
from medclf.models import registry
from medclf.data.augment import AUGMENTATION_KEYS, check_augmentation
from medclf.training import experiment

#: The two arms, in table order: the reference first.
ARMS = ("no_aug", "aug")
DELTA = "delta (aug − no_aug)"


def arm_model_id(name: str, augmented: bool) -> str:
    """Record name of one arm: ``<name>__aug`` or ``<name>__noaug``."""
    return f"{name}__{'aug' if augmented else 'noaug'}"


def check_models(names: Sequence[str]) -> list[str]:
    """The names, checked: registered, each with an augmentation setting to switch on and off.

    Raises:
        ValueError: an unknown name (listing the valid ones) or a model without augmentation.
    """
    if isinstance(names, str) or not isinstance(names, Sequence) or not names:
        raise ValueError(f"augmentation_models must be a non-empty list of model names; got {names!r}")
    for name in names:
        spec = registry.get_spec(name)
        if not spec.augment:
            usable = ", ".join(n for n, s in registry.MODELS.items() if s.augment)
            raise ValueError(f"model {name!r} has no augmentation setting, so both arms would be the same; "
                             f"models with one: {usable}")
    return list(names)


def augmentation_settings(dataset: str) -> dict[str, dict]:
    """The distinct augmentation settings of the registered models that suit ``dataset``.

    Keyed ``<study or "ours">_<first model using it>`` (a label and a file name), in registry
    order. A data set gets the settings of the models registered for its ``models_for`` data set
    (:mod:`medclf.config.datasets`: chest-like ones those of the chest X-ray models); a data
    set no model is registered for gets every setting.
    """
    target = datasets.get(dataset).models_for
    names = registry.model_names(dataset=target) if target else list(registry.MODELS)
    settings: dict[str, dict] = {}
    for name in names:
        spec = registry.get_spec(name)
        if spec.augment and spec.augmentation not in settings.values():
            settings[f"{spec.study or 'ours'}_{name}"] = dict(spec.augmentation)
    return settings


def describe_setting(config: Mapping[str, Any] | None) -> str:
    """A setting in words, e.g. ``"flip horizontal, rotation ±40°, zoom ±10%, contrast ×0.8–1.2"``."""
    words = {
        "flip": lambda v: f"flip {v}",
        "rotation": lambda v: f"rotation ±{v * 360:.0f}°",
        "zoom": lambda v: f"zoom ±{v:.0%}",
        "zoom_xy": lambda v: f"zoom ±{v:.0%} per axis",
        "translation": lambda v: f"shift ±{v:.0%}",
        "shear": lambda v: f"shear ±{math.degrees(math.atan(v)):.3g}°",
        "brightness": lambda v: f"brightness ±{v:.0%}",
        "contrast": lambda v: f"contrast ×{max(1 - v, 0):g}–{1 + v:g}",
    }
    config = check_augmentation(config)
    return ", ".join(words[key](config[key]) for key in AUGMENTATION_KEYS if config.get(key)) or "none"


def settings_table(settings: Mapping[str, Mapping]) -> pd.DataFrame:
    """One row per setting: each transform's factor (``—`` where it is off) and the setting in words."""
    rows = {label: {**{key: check_augmentation(config).get(key) or "—" for key in AUGMENTATION_KEYS},
                    "in words": describe_setting(config)}
            for label, config in settings.items()}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("setting")


def run_pair(name: str, params: dict, data=None, verbose: int = 0) -> dict[str, Any]:
    """Train ``name`` without and with its augmentation; ``{"no_aug": ModelRun, "aug": ModelRun}``.

    Both runs write their records and predictions (:func:`medclf.training.experiment.run_model`).
    """
    data = data or experiment.DataCache(params)
    return {arm: experiment.run_model(name, params, data, model_id=arm_model_id(name, arm == "aug"),
                                      augmentation=arm == "aug", verbose=verbose)
            for arm in ARMS}


# ---------------------------------------------------------------------------------------------
# pairing (images matched by file: medclf.evaluation.predictions.align_predictions)
# ---------------------------------------------------------------------------------------------

def _check_arms(record_no: Mapping, record_aug: Mapping) -> None:
    """The two records are the same model on the same data, profile and split, the first without, the second
    with augmentation."""
    ids = f"{record_no['model_id']!r} and {record_aug['model_id']!r}"
    if record_no.get("model") != record_aug.get("model"):
        raise ValueError(f"records {ids} are different models ({record_no.get('model')} vs {record_aug.get('model')})")
    if record_no["data"].get("manifest_hash") != record_aug["data"].get("manifest_hash"):
        raise ValueError(f"records {ids} were trained on different data (manifest hashes differ); retrain both arms")
    settings_no, settings_aug = records.comparable_settings(record_no), records.comparable_settings(record_aug)
    if settings_no != settings_aug:
        differ = ", ".join(f"{key} {settings_no[key]!r} vs {settings_aug[key]!r}"
                           for key in records.COMPARABLE_PARAMS if settings_no[key] != settings_aug[key])
        raise ValueError(f"records {ids} were made with another profile or split ({differ}); retrain both arms "
                         "with the same settings")
    if record_no["training"].get("augmentation") or not record_aug["training"].get("augmentation"):
        raise ValueError(f"records {ids} must be the arm without augmentation, then the one with it; "
                         "check the order and the training.augmentation of each record")


def compare_pair(record_no: Mapping, pred_no: pd.DataFrame, record_aug: Mapping, pred_aug: pd.DataFrame) -> pd.DataFrame:
    """Three rows for one model: without augmentation, with it, and the difference with McNemar's test.

    Arm rows hold the records' test numbers at each arm's validation-chosen threshold, with the
    records' bootstrap intervals (columns as :func:`medclf.evaluation.tables.records_table`). The delta row
    holds aug − no_aug with paired bootstrap intervals, and McNemar's test on the two arms'
    decisions: ``only_aug_right`` (b) and ``only_no_aug_right`` (c) images, ``mcnemar_statistic``,
    ``mcnemar_method`` and ``mcnemar_p``.

    Raises:
        ValueError: the records are not the two arms of one model on the same data, profile and split,
            or the predictions are not on the same test images
            (:func:`medclf.evaluation.predictions.align_predictions`) or do not match their records'
            test-set size.
    """
    _check_arms(record_no, record_aug)
    for record, pred in ((record_no, pred_no), (record_aug, pred_aug)):
        n = record["evaluation"]["test"]["at_threshold"]["n"]
        if len(pred) != n:
            raise ValueError(f"predictions of {record['model_id']!r} have {len(pred)} rows but its record was "
                             f"scored on {n} test images; the files are from different runs")
    id_no, id_aug = record_no["model_id"], record_aug["model_id"]
    _, y, probability = align_predictions({id_no: pred_no, id_aug: pred_aug}, reference=id_no)
    p_no, p_aug = probability[id_no], probability[id_aug]
    test = mcnemar(y, decisions(record_aug, p_aug), decisions(record_no, p_no))

    arms = tables.records_table([record_no, record_aug])
    class_names = list(record_aug["evaluation"]["class_names"])
    metrics = ["accuracy", *(f"recall_{c}" for c in class_names), "roc_auc"]
    columns = ["model_id", "image_size"]
    for metric in metrics:
        columns += [metric, f"{metric}_ci_low", f"{metric}_ci_high"]
    columns += ["accuracy_at_0.5", "threshold", "epochs_run", "train_seconds"]
    arms = arms[columns].assign(arm=list(ARMS))

    bootstrap = record_aug["evaluation"].get("bootstrap") or {}
    intervals = paired_bootstrap_delta(y, p_aug, record_aug["evaluation"]["threshold"],
                                       p_no, record_no["evaluation"]["threshold"],
                                       class_names, n_replicates=bootstrap.get("n_replicates", 1000),
                                       seed=bootstrap.get("seed", 0))
    delta: dict[str, Any] = {"arm": DELTA, "model_id": "", "image_size": arms["image_size"].iloc[1]}
    for metric in [*metrics, "accuracy_at_0.5"]:
        delta[metric] = arms[metric].iloc[1] - arms[metric].iloc[0]
    for metric in metrics:
        low, high = intervals[metric]
        delta[f"{metric}_ci_low"] = np.nan if low is None else low
        delta[f"{metric}_ci_high"] = np.nan if high is None else high
    delta.update({"only_aug_right": test["b"], "only_no_aug_right": test["c"],
                  "mcnemar_statistic": test["statistic"], "mcnemar_method": test["method"],
                  "mcnemar_p": test["p_value"]})
    table = pd.concat([arms, pd.DataFrame([delta])], ignore_index=True)
    table.insert(0, "model", record_aug.get("model"))
    return table[["model", "arm", *[c for c in table.columns if c not in ("model", "arm")]]]


def load_arm(out_dir: str | os.PathLike, model_id: str) -> tuple[dict, pd.DataFrame]:
    """``(record, predictions)`` of one arm from ``out_dir``.

    Raises:
        FileNotFoundError: either file is missing (the message says which and how to make it).
        medclf.evaluation.records.RecordError: the record is not valid JSON or not a valid record (a ``ValueError``).
    """
    for path in (records.record_path(out_dir, model_id), predictions_path(out_dir, model_id)):
        if not Path(path).is_file():
            raise FileNotFoundError(f"{path} does not exist: train the pair first "
                                    f"(augmentation_study.run_pair, or run the augmentation notebook)")
    return records.read_record(records.record_path(out_dir, model_id)), load_predictions(out_dir, model_id)


def augmentation_table(out_dir: str | os.PathLike, names: Sequence[str]) -> pd.DataFrame:
    """:func:`compare_pair` for every model in ``names``, read from ``out_dir``, stacked."""
    frames = []
    for name in names:
        record_no, pred_no = load_arm(out_dir, arm_model_id(name, False))
        record_aug, pred_aug = load_arm(out_dir, arm_model_id(name, True))
        frames.append(compare_pair(record_no, pred_no, record_aug, pred_aug))
    return pd.concat(frames, ignore_index=True)


def summary_markdown(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """One Markdown bullet per model of an :func:`augmentation_table`: the accuracy change, its paired
    interval, McNemar's counts and p-value, and whether p < ``alpha``."""
    lines = []
    for model, rows in table.groupby("model", sort=False):
        no, aug, delta = (rows[rows["arm"] == arm].iloc[0] for arm in (*ARMS, DELTA))
        verdict = "a difference" if delta["mcnemar_p"] < alpha else "no evidence of a difference"
        lines.append(f"- `{model}`: test accuracy {no['accuracy']:.3f} → {aug['accuracy']:.3f} with augmentation "
                     f"({delta['accuracy']:+.3f}, paired 95% CI {delta['accuracy_ci_low']:+.3f} to "
                     f"{delta['accuracy_ci_high']:+.3f}); {int(delta['only_aug_right'])} images only the augmented "
                     f"model gets right, {int(delta['only_no_aug_right'])} only the other; McNemar p = "
                     f"{delta['mcnemar_p']:.3g} ({verdict} at α = {alpha}).")
    return "\n".join(lines)
