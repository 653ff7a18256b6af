"""One model, end to end: data at the model's input size → build → train → score → record.

A notebook calls :func:`run_model` once per model name and shows what it returns; every number
it shows is also in ``results/<model_id>.json`` and ``predictions/<model_id>.csv``.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from medclf.config import datasets, paths as config
from medclf.config.param_specs import MODEL_OVERRIDES
from medclf.config.settings import EvaluationSettings, TrainingSettings, TransferSettings
from medclf.evaluation import metrics, records, scoring, statistics
from medclf.evaluation.predictions import save_predictions
from medclf.evaluation import framing
from medclf.models import builders, registry
from medclf.models.files import save_model
from medclf.models.transfer import weights_file
from medclf.models.specs import ModelSpec
from medclf.core import progress
from medclf.accel import hardware, precision
from medclf.training import fit, train_or_reuse
from medclf.evaluation import tta
from medclf.evaluation import selection
from medclf.data import Dataset, load_dataset


class DataCache:
    """Loaded data sets by (image size, colour mode), so several models share one decode."""

    def __init__(self, params: dict):
        self.params = params
        self._loaded: dict[tuple[int, str], Dataset] = {}

    def get(self, image_size: int, color_mode: str) -> Dataset:
        key = (image_size, color_mode)
        if key not in self._loaded:
            self._loaded[key] = load_dataset({**self.params, "image_size": image_size, "color_mode": color_mode})
        return self._loaded[key]


@dataclass
class ModelRun:
    """A trained and scored model, with what the notebook shows."""

    model_id: str
    spec: ModelSpec
    model: Any
    record: dict
    training: fit.TrainResult
    y_val: np.ndarray
    p_val: np.ndarray
    y_test: np.ndarray
    p_test: np.ndarray
    class_names: list[str]
    files_test: list[str] = field(default_factory=list)

    @property
    def threshold(self) -> float:
        return self.record["evaluation"]["threshold"]


#: ``model_overrides`` keys that are not spec fields: a model's own dtype policy
#: (:func:`medclf.accel.precision.declared_precision` reads it).
NOT_SPEC_OVERRIDES = ("mixed_precision",)
#: Spec fields ``model_overrides`` may replace (declared, with their ranges, in :mod:`medclf.config.params`).
OVERRIDABLE = tuple(key for key in MODEL_OVERRIDES if key not in NOT_SPEC_OVERRIDES)


def resolve_spec(name: str, params: dict) -> ModelSpec:
    """The registered spec with ``params["model_overrides"][name]`` applied.

    Raises:
        ValueError: an override key outside :data:`OVERRIDABLE`.
    """
    spec = registry.get_spec(name)
    changes = {key: value for key, value in ((params.get("model_overrides") or {}).get(name) or {}).items()
               if key not in NOT_SPEC_OVERRIDES}
    unknown = sorted(set(changes) - set(OVERRIDABLE))
    if unknown:
        raise ValueError(f"model_overrides.{name}.{unknown[0]} is not overridable; valid: {', '.join(OVERRIDABLE)}")
    return dataclasses.replace(spec, **changes) if changes else spec


def input_size(spec: ModelSpec, params: dict) -> int:
    """The spec's input size, capped by ``params["max_image_size"]`` when set."""
    cap = params["max_image_size"]
    return min(spec.image_size, cap) if cap else spec.image_size


def epochs_for(spec: ModelSpec, params: dict) -> int:
    """The spec's epoch budget, capped by ``params["max_epochs"]`` when set."""
    cap = params["max_epochs"]
    return min(spec.epochs, cap) if cap else spec.epochs


def run_model(name: str, params: dict, data: DataCache | None = None, *, model_id: str | None = None,
              augmentation: dict | None | bool = True, verbose: int = 0) -> ModelRun:
    """Train and score one registered model on ``params``' data set and write its records.

    Args:
        name: a key of :data:`medclf.models.registry.MODELS`.
        params: merged parameters.
        data: a shared :class:`DataCache` (a fresh one is made when omitted).
        model_id: file name of the records; defaults to ``name``.
        augmentation: ``True`` uses the spec's own augmentation (if the study used one), ``False``/
            ``None`` trains without, a mapping overrides it.
        verbose: Keras fit verbosity.

    Returns:
        The :class:`ModelRun` (the model trained, or reused from the model cache when nothing that
        determines its weights changed: ``training.model_cache`` in the record); ``results/<model_id>.json``, ``predictions/<model_id>.csv`` (test),
        ``predictions/val/<model_id>.csv`` (validation, with the ``selected`` rows) and
        (when ``params["save_models"]``) ``models/<model_id>.keras`` (or ``.skops``) are written; the
        record and the model card beside the file hold its SHA-256 as ``model_sha256``.
    """
    spec = resolve_spec(name, params)
    model_id = model_id or name
    data = data or DataCache(params)
    size = input_size(spec, params)
    ds = data.get(size, spec.color_mode)
    if augmentation is True:
        augmentation = spec.augmentation
    shape = (size, size, spec.channels)
    train_settings, scoring_settings = TrainingSettings.of(params), EvaluationSettings.of(params)
    fit_settings = train_or_reuse.FitSettings(epochs=epochs_for(spec, params), training=train_settings,
                                transfer=TransferSettings.of(params),
                                feature_dir=config.feature_cache_dir(params, ds.name))
    with progress.task(model_id):
        declared = precision.declared_precision(name, params)  # declared, never measured: same on every machine
        policy = precision.SKLEARN_POLICY if spec.family == "svm" else precision.set_precision(declared.policy)
        model, training, cache_info = train_or_reuse.fit_or_reuse(spec, shape, ds, fit_settings, augmentation or None, verbose,
                                                    policy=policy, cache_dir=config.model_cache_dir(params))
        with progress.task("scoring"):
            (x_val, y_val), (x_test, y_test) = ds.arrays("val"), ds.arrays("test")
            selection = ds.selection_mask()
            seed, target = scoring_settings.seed, scoring_settings.target_sensitivity
            replicates = scoring_settings.bootstrap_replicates
            score, p_val, tta_choice = _choose_scorer(model, spec, augmentation, x_val, y_val, seed, selection)
            p_test = score(x_test)
            evaluation = statistics.evaluate_model(y_val, p_val, y_test, p_test, ds.class_names,
                                                   target_sensitivity=target, n_replicates=replicates, seed=seed)
            evaluation["tta"] = tta_choice
            evaluation["framing"] = _framing_probe(model, x_val, y_val, ds.class_names, target)
            evaluation["selection"] = statistics.selection_summary(y_val, p_val, selection, scoring_settings.select_on,
                                                                   n_replicates=replicates, seed=seed)
    files_test = ds.relpaths("test")
    out_dir = config.run_dir(params)
    model_file, model_sha256 = _save_model(model, out_dir, model_id) if train_settings.save_models else (None, None)
    record = records.build_record(
        model_id=model_id, model=name, family=spec.family, study=spec.study, reported=spec.reported,
        params=params, spec=_spec_dict(spec, size, augmentation), data=_data_summary(ds),
        training={**training.to_dict(), "mixed_precision": policy,
                  "mixed_precision_declared_in": "scikit-learn" if spec.family == "svm" else declared.declared_in,
                  "onednn": hardware.onednn_enabled(),
                  "augmentation": augmentation or None, "model_cache": cache_info,
                  "weights_file": (weights_file(spec.backbone, shape, fit_settings.transfer.weights)
                                   if spec.family == "transfer" else None)},
        params_count=builders.count_params(model), evaluation=evaluation, model_file=model_file,
        model_sha256=model_sha256)
    save_predictions(out_dir, model_id, files_test, y_test, p_test, ds.class_names)
    save_predictions(out_dir, model_id, ds.relpaths("val"), y_val, p_val, ds.class_names, split="val",
                     selected=selection)
    records.save_record(out_dir, model_id, record)
    if record["model_file"]:
        records.save_model_card(out_dir / record["model_file"], record)
    return ModelRun(model_id, spec, model, record, training, y_val, p_val, y_test, p_test, ds.class_names,
                    files_test)


def _choose_scorer(model: Any, spec: ModelSpec, augmentation: dict | None, x_val: np.ndarray,
                   y_val: np.ndarray, seed: int, selection: np.ndarray) -> tuple[Callable, np.ndarray, dict | None]:
    """How images are scored: plain, or with test-time augmentation when the spec asks for it, the model
    was trained with augmentation, and TTA raises the AUC of the validation rows in ``selection`` —
    decided on validation only.

    Returns:
        The scoring function (images → probabilities), the validation scores it gives, and the TTA
        decision for the record (``None``: TTA not considered).
    """
    plain = scoring.scorer(model)
    if not (spec.tta_views and augmentation):
        return plain, plain(x_val), None
    augmented = scoring.scorer(model, {"augmentation": augmentation, "views": spec.tta_views, "seed": seed})
    p_plain = plain(x_val)
    p_tta = augmented(x_val, original=p_plain)
    choice = tta.choose_on_validation(y_val[selection], p_plain[selection], p_tta[selection], spec.tta_views)
    if choice["used"]:
        return augmented, p_tta, {**choice, "augmentation": augmentation, "seed": seed}
    return plain, p_plain, {**choice, "augmentation": augmentation, "seed": seed}


def _framing_probe(model: Any, x_val: np.ndarray, y_val: np.ndarray, class_names: list[str],
                   target_sensitivity: float) -> list[dict]:
    """The framing probe (:mod:`medclf.evaluation.framing`) of the network itself, on validation: plain scores (test-time
    augmentation would multiply its cost by the views) at the threshold chosen on those plain scores."""
    score = scoring.scorer(model)
    p_val = score(x_val)
    threshold = metrics.choose_threshold(y_val, p_val, target_sensitivity)
    return framing.framing_table(score, x_val, y_val, threshold, class_names, reference=p_val).to_dict("records")


def _spec_dict(spec: ModelSpec, size: int, augmentation: dict | None) -> dict:
    fields = {f.name: getattr(spec, f.name) for f in dataclasses.fields(spec) if f.name != "build"}
    return {**fields, "image_size_used": size, "augmentation_used": augmentation or None}


def _data_summary(ds: Dataset) -> dict:
    counts = ds.frame.groupby(["split", "class_name"]).size()
    return {"dataset": ds.name, "manifest_hash": ds.manifest_hash, "class_names": ds.class_names,
            "positive_class": ds.positive_class, "image_size": int(ds.images.shape[1]),
            "channels": int(ds.images.shape[-1]),
            "split_counts": {f"{s}/{c}": int(n) for (s, c), n in counts.items()}}


def _save_model(model: Any, out_dir: Path, model_id: str) -> tuple[str, str]:
    """Save the model as ``models/<model_id>.keras`` or ``.skops`` (:func:`medclf.models.files.save_model`);
    returns its path relative to ``out_dir`` and its SHA-256."""
    saved = save_model(model, config.RunPaths(out_dir).models / model_id)
    return str(saved.path.relative_to(out_dir)), saved.sha256


def plan_table(names: list[str], params: dict) -> "pd.DataFrame":
    """What each model will be trained with under ``params`` (sizes and epochs after the caps), and the study's
    reported accuracy where the studies' numbers apply to the data set (``DatasetInfo.study_reproduction``)."""
    import pandas as pd

    studies_apply, rows = datasets.get(params["dataset"]).study_reproduction, []
    for name in names:
        spec = resolve_spec(name, params)
        rows.append({"model": name, "family": spec.family, "study": spec.study or "ours",
                     "input": f"{input_size(spec, params)}² {spec.color_mode}", "optimizer": spec.optimizer,
                     "learning_rate": spec.learning_rate, "epochs": epochs_for(spec, params) if spec.epochs else "—",
                     "batch": spec.batch_size or "—", "callbacks": ", ".join(spec.callbacks) or "—",
                     "augmentation": ", ".join(f"{k} {v}" for k, v in (spec.augmentation or {}).items()) or "—",
                     "reported_accuracy": (spec.reported or {}).get("accuracy") if studies_apply else None})
    return pd.DataFrame(rows)


def tta_line(run: ModelRun) -> str | None:
    """One line on the test-time augmentation decision, or ``None`` when it was not considered."""
    choice = run.record["evaluation"].get("tta")
    if not choice:
        return None
    verdict = "kept" if choice["used"] else "not kept"
    return (f"Test-time augmentation ({choice['views']} views): validation ROC AUC {choice['val_auc_plain']:.4f} "
            f"plain vs {choice['val_auc_tta']:.4f} averaged → {verdict} (kept only when averaging raises it); "
            "test scored that way.")


#: The framing probe's verdict (:func:`framing_line`): the shares of negative images called positive count as
#: near-equal when no crop moves the share by more than this (an absolute share: 0.10 = ten images in a hundred).
FRAMING_TOLERANCE = 0.10


def framing_line(run: ModelRun) -> str | None:
    """One line on the framing probe (:mod:`medclf.evaluation.framing`) for the negative class, or ``None`` without
    one. Its verdict is chosen from the shares with :data:`FRAMING_TOLERANCE`, quoted in the line; a model with
    constant predictions gets none (its shares cannot move, whatever it reads)."""
    rows = run.record["evaluation"].get("framing") or []
    negative, positive = run.class_names[0], run.class_names[-1]
    called = {r["crop"]: r["called_positive"] for r in rows if r["class_name"] == negative
              and r["called_positive"] is not None and math.isfinite(r["called_positive"])}
    if 1.0 not in called or len(called) < 2:
        return None
    crops = ", ".join(f"{crop:.0%} → {share:.3f}" for crop, share in sorted(called.items(), reverse=True)
                      if crop != 1.0)
    shares = (f"Framing probe (validation): {negative} images called {positive} at the threshold: {called[1.0]:.3f} "
              f"as they are; cropped to the central {crops}.")
    if selection.has_constant_predictions(run.record):
        return f"{shares} The model's predictions are constant, so the probe cannot show whether it reads framing."
    crop, share = max(((c, s) for c, s in called.items() if c != 1.0), key=lambda item: abs(item[1] - called[1.0]))
    move = share - called[1.0]
    if abs(move) <= FRAMING_TOLERANCE:
        return (f"{shares} Near-equal shares (no crop moves it by more than {FRAMING_TOLERANCE:.2f}): these calls do "
                "not follow how tightly the image is framed.")
    return (f"{shares} The {crop:.0%} crop moves the share by {move:+.3f} (more than {FRAMING_TOLERANCE:.2f}): the "
            "calls follow how tightly the image is framed, a possible shortcut (see the probe in "
            "medclf.evaluation.framing).")


def threshold_line(run: ModelRun) -> str | None:
    """One line on how far the validation-chosen threshold moves over resamples of validation, and the
    test intervals with it re-chosen on each resample; ``None`` for records written without them."""
    evaluation = run.record["evaluation"]
    low, high = evaluation.get("threshold_ci") or (None, None)
    resampled = evaluation.get("ci_threshold_resampled")
    if low is None or not resampled:
        return None

    def interval(key: str) -> str:
        lo, hi = resampled[key]
        return "n/a" if lo is None else f"[{lo:.3f}, {hi:.3f}]"

    recalls = ", ".join(f"{name} recall {interval(f'recall_{name}')}" for name in run.class_names)
    return (f"Threshold {evaluation['threshold']:.3f}: over validation resamples it falls in [{low:.3f}, {high:.3f}] "
            f"(95%). Test, with the threshold re-chosen on each validation resample: accuracy "
            f"{interval('accuracy')}, {recalls}.")


def gap_line(gaps: "pd.DataFrame", records: Sequence[Mapping] = ()) -> str | None:
    """Which class's validation recall ran furthest from its test recall, averaged over the models of a
    :func:`medclf.evaluation.tables.gap_table` (a positive gap: validation overstated test), leaving out the models
    ``records`` flag for constant predictions (their recalls are 0 or 1 on both splits); ``None`` without rows."""
    if gaps.empty:
        return None
    flagged = {r["model_id"] for r in records if selection.has_constant_predictions(r)} & set(gaps["model_id"])
    usable = gaps[~gaps["model_id"].isin(flagged)]
    left_out = f" ({len(flagged)} flagged for constant predictions left out)" if flagged else ""
    mean = usable.groupby("class", sort=False)["gap"].mean().dropna()
    if mean.empty:
        return "No gap to average: every model here is flagged for constant predictions." if flagged else None
    per_class = ", ".join(f"{name} {gap:+.3f}" for name, gap in mean.items())
    count = usable["model_id"].nunique()
    line = (f"Mean gap (validation recall − test recall) over {count} model{'s' if count != 1 else ''}{left_out}: "
            f"{per_class}")
    name = mean.abs().idxmax()
    if mean[name] == 0:
        return f"{line}: validation and test recall agree."
    side = "overstated" if mean[name] > 0 else "understated"
    return f"{line}; the largest is the {name} class's (validation {side} its test recall)."


def constant_line(run: ModelRun) -> str | None:
    """One line when the model is flagged for constant predictions (:func:`medclf.evaluation.selection.flagged_note`,
    under :data:`medclf.evaluation.selection.FLAGGED_MARK`), else ``None``."""
    note = selection.flagged_note(run.record)
    return f"**{selection.FLAGGED_MARK.strip()}** {note}." if note else None


def description(run: ModelRun) -> str:
    """The model's description for this run, its backbone's starting weights included
    (:func:`medclf.models.registry.describe`)."""
    return registry.describe(run.spec, (run.record.get("params") or {}).get("weights"))


def heading(run: ModelRun, text: str | None = None) -> str:
    """The Markdown heading of one model's block: its id, marked when flagged
    (:func:`medclf.evaluation.selection.marked`), and ``text`` (default :func:`description`)."""
    name = selection.marked(f"`{run.model_id}`", selection.has_constant_predictions(run.record))
    return f"### {name} — {text or description(run)}"


def notes(run: ModelRun) -> str:
    """The per-model notes a notebook shows under the metrics: constant predictions, test-time augmentation,
    framing probe and threshold lines (those that apply), as Markdown paragraphs."""
    lines = (constant_line(run), tta_line(run), framing_line(run), threshold_line(run))
    return "\n\n".join(line for line in lines if line)


def summary_frame(run: ModelRun) -> "pd.DataFrame":
    """One model's validation and test metrics at 0.5 and at the validation-chosen threshold."""
    import pandas as pd

    evaluation, rows = run.record["evaluation"], []
    for split in ("val", "test"):
        for point in ("at_0.5", "at_threshold"):
            metrics = evaluation[split][point]
            row = {"split": split, "threshold": metrics["threshold"], "accuracy": metrics["accuracy"],
                   "roc_auc": metrics["roc_auc"]}
            row.update({f"recall_{c}": metrics["per_class"][c]["recall"] for c in run.class_names})
            rows.append(row)
    training = run.record["training"]
    frame = pd.DataFrame(rows).round(4)
    frame.attrs["training"] = (f"{training['epochs_run']} epochs, {training['seconds']:.0f} s "
                               f"({training['seconds_per_epoch']:.1f} s/epoch, {training['mixed_precision']})")
    return frame.set_index(["split", "threshold"])
