"""Fitting: seeds, class weights, compile, fit a network (or the SVM) and record time, history and best epoch.

Models are trained from the cached uint8 arrays through ``tf.data`` (:mod:`medclf.data.pipeline`),
never by decoding files each epoch, with plain Keras layers and optimizers.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from medclf.config.settings import TrainingSettings
from medclf.core import progress
from medclf.data.pipeline import make_dataset
from medclf.models.builders import make_optimizer
from medclf.training.callbacks import callback_classes, make_callbacks


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and TensorFlow (``keras.utils.set_random_seed``)."""
    import keras

    keras.utils.set_random_seed(seed)


def class_weights(labels: np.ndarray) -> dict[int, float]:
    """Balanced class weights (scikit-learn's ``compute_class_weight``)."""
    from sklearn.utils.class_weight import compute_class_weight

    classes = np.unique(labels)
    weights = compute_class_weight("balanced", classes=classes, y=labels)
    return {int(c): float(w) for c, w in zip(classes, weights)}


@dataclass
class TrainResult:
    """What a training run produced, for the results record."""

    seconds: float
    seconds_per_epoch: float
    epochs_run: int
    best_epoch: int | None
    precision: str
    history: dict[str, list[float]] = field(default_factory=dict)
    members: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compile_model(model, optimizer, metrics_for_two_target: bool = False) -> None:
    """Binary cross-entropy with AUC and accuracy (and recall for the two-target rule)."""
    import keras

    metrics = [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    if metrics_for_two_target:
        metrics.append(keras.metrics.Recall(name="recall"))
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=metrics)


def fit_keras(model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *,
              epochs: int, batch_size: int, callbacks: list, training: TrainingSettings, augmenter=None,
              verbose: int = 2) -> TrainResult:
    """Fit a compiled model on uint8 arrays; returns timing, history and the best epoch.

    ``training`` gives the shuffle seed, whether classes are weighted and the monitored metric."""
    import keras

    EpochTimer, _ = callback_classes()
    timer = EpochTimer(epochs, bar=verbose == 0 and progress.bars_wanted())  # verbose: Keras prints its own lines
    weights = class_weights(train[1]) if training.class_weight else None
    train_ds = make_dataset(*train, batch_size, shuffle=True, seed=training.seed, augmenter=augmenter)
    val_ds = make_dataset(*val, batch_size=max(batch_size, 64), shuffle=False, seed=training.seed)
    start = time.perf_counter()
    # shuffle=False: train_ds shuffles itself; Keras ignores (and warns about) shuffle=True with a tf.data.Dataset
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, class_weight=weights, shuffle=False,
                        callbacks=[timer, *callbacks], verbose=verbose)
    seconds = time.perf_counter() - start
    return TrainResult(
        seconds=round(seconds, 2),
        seconds_per_epoch=round(float(np.mean(timer.seconds)), 2) if timer.seconds else 0.0,
        epochs_run=len(timer.seconds),
        best_epoch=best_epoch(history.history, training.monitor),
        precision=keras.mixed_precision.global_policy().name,
        history={k: [float(v) for v in values] for k, values in history.history.items()},
    )


def fit_spec(model, spec, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *,
             training: TrainingSettings, learning_rate: float, epochs: int, augmenter=None,
             verbose: int = 0) -> TrainResult:
    """Compile ``model`` with ``spec``'s optimizer at ``learning_rate`` and fit it with ``spec``'s callbacks
    (a checkpoint, if asked for, lives in a temporary folder) and batch size."""
    compile_model(model, make_optimizer(spec.optimizer, learning_rate),
                  metrics_for_two_target="two_target_stop" in spec.callbacks)
    with tempfile.TemporaryDirectory() as tmp:
        callbacks = make_callbacks(spec.callbacks, learning_rate, Path(tmp) / "best.keras",
                                   monitor=training.monitor, patience=training.patience)
        return fit_keras(model, train, val, epochs=epochs, batch_size=spec.batch_size, callbacks=callbacks,
                         training=training, augmenter=augmenter, verbose=verbose)


def best_epoch(history: dict[str, list[float]], monitor: str) -> int | None:
    """1-based epoch with the best ``monitor`` value (min for losses, max otherwise)."""
    values = history.get(monitor)
    if not values:
        return None
    return int(np.argmin(values) if monitor.endswith("loss") else np.argmax(values)) + 1


def combine_results(results: Sequence[TrainResult]) -> TrainResult:
    """One result for an ensemble: total time, all epochs; curves and best epoch of the first member; one
    ``members`` row per member, or per member and stage when the members trained in stages (transfer models)."""
    first = results[0]
    epochs = sum(r.epochs_run for r in results)
    seconds = sum(r.seconds for r in results)
    return TrainResult(seconds=round(seconds, 2), seconds_per_epoch=round(seconds / max(epochs, 1), 2),
                       epochs_run=epochs, best_epoch=first.best_epoch, precision=first.precision,
                       history=first.history,
                       members=[{"member": i, **row} for i, r in enumerate(results, start=1) for row in _rows(r)])


def _rows(result: TrainResult) -> list[dict[str, Any]]:
    """A result's own ``members`` rows (the stages of a transfer model), else one row for its whole fit."""
    return result.members or [{"epochs_run": result.epochs_run, "best_epoch": result.best_epoch,
                               "seconds": result.seconds}]


def fit_svm(estimator, train: tuple[np.ndarray, np.ndarray]) -> TrainResult:
    """Fit a scikit-learn estimator on the training arrays; one 'epoch'."""
    start = time.perf_counter()
    estimator.fit(train[0], train[1])
    seconds = time.perf_counter() - start
    return TrainResult(seconds=round(seconds, 2), seconds_per_epoch=round(seconds, 2), epochs_run=1,
                       best_epoch=1, precision="float64")
