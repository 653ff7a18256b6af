"""Train a spec, one network or an ensemble of seeded copies, or reuse what the model cache holds.

Each network is its own cache entry (:mod:`medclf.training.model_cache`), so an ensemble's member with seed
``s`` and the single model trained with seed ``s`` are trained once between them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from medclf.config.settings import TrainingSettings, TransferSettings
from medclf.core import progress
from medclf.data import Dataset
from medclf.data.augment import build_augmenter
from medclf.models import builders, registry
from medclf.models.specs import ModelSpec
from medclf.training import fit, model_cache
from medclf.training.transfer_fit import fit_transfer


@dataclass(frozen=True)
class FitSettings:
    """What fitting one model needs, taken from the parameters once per :func:`medclf.training.experiment.run_model` call."""

    epochs: int
    training: TrainingSettings
    transfer: TransferSettings
    feature_dir: Path

    def with_seed(self, seed: int) -> FitSettings:
        return dataclasses.replace(self, training=dataclasses.replace(self.training, seed=seed))


def _fit_member(spec: ModelSpec, input_shape: tuple, data: Dataset, settings: FitSettings,
                augmentation: dict | None, verbose: int) -> tuple[Any, fit.TrainResult]:
    """Build and fit one Keras model seeded with ``settings.training.seed`` on the training split, validating
    on the validation rows that choose epochs (:meth:`Dataset.selection_mask`): a transfer model in its stages
    (head, then fine-tuning), any other network in one fit."""
    training = settings.training
    if spec.family == "transfer":
        return fit_transfer(spec, input_shape, data, augmentation, settings.epochs, training=training,
                            transfer=settings.transfer, feature_dir=settings.feature_dir, verbose=verbose)
    fit.seed_everything(training.seed)
    model = registry.build_model(spec, input_shape)
    result = fit.fit_spec(model, spec, data.arrays("train"), data.selection_arrays(), training=training,
                          learning_rate=spec.learning_rate, epochs=settings.epochs,
                          augmenter=build_augmenter(augmentation, seed=training.seed), verbose=verbose)
    return model, result


def _fit_one(spec: ModelSpec, input_shape: tuple, data: Dataset, settings: FitSettings, augmentation: dict | None,
             verbose: int) -> tuple[Any, fit.TrainResult]:
    """Fit the SVM or one network seeded with ``settings.training.seed``."""
    if spec.family == "svm":
        model = registry.build_model(spec, input_shape)
        return model, fit.fit_svm(model, data.arrays("train"))
    return _fit_member(spec, input_shape, data, settings, augmentation, verbose)


def _fit_one_or_reuse(spec: ModelSpec, input_shape: tuple, data: Dataset, settings: FitSettings,
                      augmentation: dict | None, verbose: int, *, policy: str, cache_dir: Path
                      ) -> tuple[Any, fit.TrainResult, dict]:
    """:func:`_fit_one`, or the model the cache holds for exactly these inputs (:mod:`medclf.training.model_cache`)."""
    if not settings.training.model_cache:
        return (*_fit_one(spec, input_shape, data, settings, augmentation, verbose), {"key": None, "reused": False})
    key = model_cache.model_key(
        spec=spec, input_shape=input_shape, epochs=settings.epochs, training=settings.training,
        transfer=settings.transfer if spec.family == "transfer" else None, augmentation=augmentation,
        arrays=[*data.arrays("train"), *data.selection_arrays()], precision=policy)
    cache = model_cache.ModelCache(cache_dir)
    hit = None if settings.training.model_cache == "refresh" else cache.get(key)
    if hit is not None:
        with progress.task("reused from the model cache"):
            return (*hit, {"key": key, "reused": True})
    model, training = _fit_one(spec, input_shape, data, settings, augmentation, verbose)
    cache.put(key, model, training)
    return model, training, {"key": key, "reused": False}


def fit_or_reuse(spec: ModelSpec, input_shape: tuple, data: Dataset, settings: FitSettings,
                  augmentation: dict | None, verbose: int, *, policy: str, cache_dir: Path
                  ) -> tuple[Any, fit.TrainResult, dict]:
    """Train ``spec`` (or reuse it from the model cache): one model, or an ensemble of ``spec.ensemble``
    networks (seeds seed, seed+1, ...) averaged into one model. Each network is its own cache entry, so an
    ensemble's member with seed ``s`` and the single model with seed ``s`` are trained once between them.

    Returns:
        ``(model, training result, {"key", "reused"})``; the training result of a reused model is the
        one recorded when it was trained (its seconds included). An ensemble's ``key`` lists its members'
        keys and ``reused`` is true when every member was. With ``model_cache`` off: key ``None``;
        ``refresh`` (``run_all.py --force``) trains and replaces the entries.
    """
    if spec.family == "svm" or spec.ensemble == 1:
        model, training, info = _fit_one_or_reuse(spec, input_shape, data, settings, augmentation, verbose,
                                                  policy=policy, cache_dir=cache_dir)
        if spec.family != "svm":
            model.name = spec.name  # an entry first trained as an ensemble member carries the ensemble's name
        return model, training, info
    fitted = []
    for i in range(spec.ensemble):
        with progress.task(f"member {i + 1}/{spec.ensemble}"):
            fitted.append(_fit_one_or_reuse(spec, input_shape, data, settings.with_seed(settings.training.seed + i),
                                            augmentation, verbose, policy=policy, cache_dir=cache_dir))
    members, member_results, infos = zip(*fitted)
    keys = [info["key"] for info in infos]
    info = {"key": keys if all(keys) else None, "reused": all(info["reused"] for info in infos)}
    return builders.build_ensemble(members, name=spec.name), fit.combine_results(member_results), info
