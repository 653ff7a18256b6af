"""Staged training of transfer models: cached backbone features, head then fine-tuning.

A transfer model (:mod:`medclf.models.transfer`) is one flat graph, so it can be cut below the first
layer that trains (:func:`medclf.models.transfer.split_at_static`) and trained in two ways that give the
same model (the sub-model above the cut shares its layers with the full model):

* **cached features** — everything below the cut is deterministic, so its output is computed once per
  image, kept on disk under ``<cache_dir>/features/`` (keyed by backbone, weights, input size, stem, cut
  layer and the data manifest, :func:`feature_key`), and only the part above the cut is trained. With
  the backbone frozen the cut is the head's input; when fine-tuning the top ``N`` layers it moves down
  to just below them.
* **end to end** — with augmentation (or a trainable stem) every image changes every epoch, so the
  whole model runs each step, as the studies did.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from pathlib import Path

import keras
import numpy as np

from medclf.config.settings import TrainingSettings, TransferSettings
from medclf.core.io import atomic_path
from medclf.core.progress import task
from medclf.data.augment import build_augmenter
from medclf.evaluation.scoring import predict_outputs
from medclf.models import registry
from medclf.models.transfer import has_static_base, split_at, split_at_static, unfreeze_top, weights_file
from medclf.accel.precision import current_policy
from medclf.training import fit


# --------------------------------------------------------------------------------------------
# The feature cache
# --------------------------------------------------------------------------------------------

def feature_key(*, backbone: str, weights: str | None, image_shape: Sequence[int], gray_mode: str, cut: str,
                manifest_hash: str, precision: str, seed: int | None = None) -> str:
    """Cache key of one feature set; a weights file enters by its content hash, random weights by the seed.
    (ImageNet weights that came from another input size's file count as that file: :func:`weights_file`.)"""
    weights = weights_file(backbone, image_shape, weights)
    weights_id = weights or f"random-seed{seed}"
    if weights and weights != "imagenet":
        weights_id = hashlib.sha256(Path(weights).read_bytes()).hexdigest()[:16]
    payload = json.dumps([backbone, weights_id, list(image_shape), gray_mode, cut, manifest_hash, precision])
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def cached_features(extractor, images: np.ndarray, path: Path, batch_size: int = 64,
                    progress: bool = True) -> np.ndarray:
    """``extractor(images)`` from ``path`` when present (shape checked), else computed and saved atomically
    (float32)."""
    path = Path(path)
    if path.is_file():
        try:
            features = np.load(path, allow_pickle=False)
            if len(features) == len(images):
                return features
        except (OSError, ValueError):
            pass  # unreadable: recompute and overwrite
    split = path.stem.rsplit("_", 1)[-1]
    features = predict_outputs(extractor, images, batch_size, progress, desc=f"backbone features, {split}")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            np.save(handle, features)
    return features


# --------------------------------------------------------------------------------------------
# Training: head on (cached) features, then optional fine-tuning of the top layers
# --------------------------------------------------------------------------------------------

def _stage_arrays(model, ds, augmentation: dict | None, spec, cut: str | None, progress: bool, *,
                  seed: int, transfer: TransferSettings, feature_dir: Path):
    """``(target, train, val, augmenter)`` for one stage: the model above the cut fed cached features
    (files under ``feature_dir``); or the whole model fed images, with augmentation or when nothing below
    the trained layers is static (or the cache is off). ``cut`` fixes the cut (a static layer's name); by
    default it is just below the first trained layer."""
    lower = None
    if transfer.feature_cache and has_static_base(model):
        if cut is None:
            lower, upper, cut = split_at_static(model)
        else:
            lower, upper = split_at(model, cut)
    if lower is None or augmentation:
        return model, ds.arrays("train"), ds.selection_arrays(), build_augmenter(augmentation, seed=seed)
    key = feature_key(backbone=spec.backbone, weights=transfer.weights, image_shape=model.input_shape[1:],
                      gray_mode=spec.gray_mode, cut=cut, manifest_hash=ds.manifest_hash,
                      precision=current_policy(), seed=seed)
    folder = Path(feature_dir)
    arrays = {}
    for split in ("train", "val"):
        images, labels = ds.arrays(split)
        features = cached_features(lower, images, folder / f"{key}_{split}.npy", progress=progress)
        arrays[split] = (features, labels)
    features, labels = arrays["val"]
    selection = ds.selection_mask()
    return upper, arrays["train"], (features[selection], labels[selection]), None


def fit_stage(model, spec, ds, augmentation: dict | None, *, training: TrainingSettings,
              transfer: TransferSettings, feature_dir: Path, learning_rate: float, epochs: int,
              cut: str | None = None, progress: bool = True, verbose: int = 0):
    """Fit the trainable part of ``model`` (features cached under ``feature_dir`` where possible); returns
    a TrainResult whose ``feature_seconds`` is the time spent computing features."""
    start = time.perf_counter()
    target, train_arrays, val_arrays, augmenter = _stage_arrays(model, ds, augmentation, spec, cut, progress,
                                                                seed=training.seed, transfer=transfer,
                                                                feature_dir=feature_dir)
    feature_seconds = time.perf_counter() - start  # ~0 when the cache is warm or nothing is cached
    result = fit.fit_spec(target, spec, train_arrays, val_arrays, training=training, learning_rate=learning_rate,
                          epochs=epochs, augmenter=augmenter, verbose=verbose)
    result.feature_seconds = round(feature_seconds, 2)
    return result


def fit_transfer(spec, input_shape, ds, augmentation: dict | None, epochs: int, *, training: TrainingSettings,
                 transfer: TransferSettings, feature_dir: Path, verbose: int = 0):
    """Train a transfer model seeded with ``training.seed``: the head with the backbone frozen, then
    (``spec.fine_tune`` > 0 and ``transfer.fine_tune_epochs`` > 0) the top ``spec.fine_tune`` backbone
    layers at ``transfer.fine_tune_learning_rate``. Cached features live under ``feature_dir``
    (:func:`medclf.config.paths.feature_cache_dir`).

    With fine-tuning, ``augmentation`` applies to the fine-tuning stage only: the head is a warm
    start trained on cached features (one feature pass instead of an end-to-end pass every epoch).
    Without fine-tuning (the studies' frozen models) it applies to the head stage.

    Returns:
        ``(model, TrainResult)``; the result's ``members`` hold one entry per stage.
    """
    fit.seed_everything(training.seed)
    model = registry.build_model(spec, input_shape, weights=transfer.weights)
    fine_tune = spec.fine_tune if transfer.fine_tune_epochs else 0
    # max_epochs caps every training stage, the fine-tuning stage too
    fine_tune_epochs = min(transfer.fine_tune_epochs, training.max_epochs or transfer.fine_tune_epochs)
    settings = {"training": training, "transfer": transfer, "feature_dir": feature_dir}
    cut = None
    if fine_tune and not augmentation:  # both stages start from the fine-tuning cut: one feature pass, not two
        unfreeze_top(model, fine_tune)
        cut = split_at_static(model)[2]
        unfreeze_top(model, 0)
    head_augmentation = None if fine_tune else augmentation
    with task("head"):
        stages = [fit_stage(model, spec, ds, head_augmentation, **settings, learning_rate=spec.learning_rate,
                            epochs=epochs, cut=cut, verbose=verbose)]
    if fine_tune:
        unfreeze_top(model, fine_tune)
        with task(f"fine-tuning top {fine_tune} layers"):
            stages.append(fit_stage(model, spec, ds, augmentation, **settings,
                                    learning_rate=transfer.fine_tune_learning_rate, epochs=fine_tune_epochs,
                                    cut=cut, verbose=verbose))
    return model, combine_stages(stages)


def combine_stages(stages):
    """One TrainResult for consecutive stages: times (feature extraction included) and epochs added,
    histories joined end to end, the best epoch counted from the start of the first stage; one
    ``members`` entry per stage."""
    keys = set.intersection(*(set(s.history) for s in stages))
    history = {key: [v for s in stages for v in s.history[key]] for key in sorted(keys)}
    offset = sum(s.epochs_run for s in stages[:-1])
    last = stages[-1]
    features = [getattr(s, "feature_seconds", 0.0) for s in stages]
    seconds, epochs = sum(s.seconds for s in stages) + sum(features), sum(s.epochs_run for s in stages)
    fitting = sum(s.seconds for s in stages)
    return fit.TrainResult(seconds=round(seconds, 2), seconds_per_epoch=round(fitting / max(epochs, 1), 2),
                           epochs_run=epochs, best_epoch=None if last.best_epoch is None else offset + last.best_epoch,
                           precision=last.precision, history=history,
                           members=[{"stage": name, "epochs_run": s.epochs_run, "best_epoch": s.best_epoch,
                                     "seconds": s.seconds, "feature_seconds": f}
                                    for name, s, f in zip(("head", "fine_tune"), stages, features)])
