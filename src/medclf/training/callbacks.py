"""Keras callbacks: the epoch timer (progress and CPU time), the two-target stop, callbacks by name.

The callback classes are defined lazily (:func:`callback_classes`) so importing this module does not
import TensorFlow.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

import numpy as np

from medclf.core import progress


def _keras():
    import keras

    return keras


@functools.cache
def callback_classes():
    """``(EpochTimer, TwoTargetEarlyStopping)``, defined on first use."""
    keras = _keras()

    class EpochTimer(keras.callbacks.Callback):
        """Records every epoch's wall time in ``self.seconds`` and the CPU time this process used
        meanwhile (all threads) in ``self.cpu_seconds``: unlike wall time, CPU time does not grow
        when the host of a virtual machine takes the CPUs away (steal).

        Given ``epochs`` (the most this fit runs), it also reports each epoch to :mod:`medclf.core.progress`
        and, with ``bar``, advances a tqdm bar labelled with the current task."""

        def __init__(self, epochs: int | None = None, bar: bool = False):
            super().__init__()
            self.epochs, self.bar, self._bar = epochs, bar, None

        def on_train_begin(self, logs=None):
            self.seconds, self.cpu_seconds = [], []
            if self.epochs and self.bar:
                from tqdm.auto import tqdm

                self._bar = tqdm(total=self.epochs, desc=progress.current_task() or "training", unit="epoch",
                                 leave=False)

        def on_epoch_begin(self, epoch, logs=None):
            self._start, self._cpu_start = time.perf_counter(), time.process_time()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)
            self.cpu_seconds.append(time.process_time() - self._cpu_start)
            if self.epochs:
                fields = progress.epoch_fields(epoch + 1, self.epochs, self.seconds, logs)
                progress.report(**fields)
                if self._bar is not None:
                    self._bar.set_postfix(fields["val"], refresh=False)
                    self._bar.update(1)

        def on_train_end(self, logs=None):
            if self._bar is not None:
                self._bar.close()
                self._bar = None

    class TwoTargetEarlyStopping(keras.callbacks.Callback):
        """Stop once validation accuracy *and* validation recall have both passed their targets
        and neither has improved for ``patience`` epochs (the VGG19 study's rule); restores the
        weights of the best epoch among those that met both targets.
        """

        def __init__(self, accuracy_target=0.94, recall_target=0.95, patience=3,
                     accuracy_key="val_accuracy", recall_key="val_recall"):
            super().__init__()
            self.accuracy_target, self.recall_target, self.patience = accuracy_target, recall_target, patience
            self.accuracy_key, self.recall_key = accuracy_key, recall_key

        def on_train_begin(self, logs=None):
            self.best_accuracy = self.best_recall = -np.inf
            self.best_weights, self.best_epoch, self.wait = None, None, 0

        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            accuracy, recall = logs.get(self.accuracy_key), logs.get(self.recall_key)
            if accuracy is None or recall is None:
                raise KeyError(f"TwoTargetEarlyStopping needs '{self.accuracy_key}' and '{self.recall_key}' in the "
                               "logs: compile the model with accuracy and recall metrics and pass validation data")
            if accuracy < self.accuracy_target or recall < self.recall_target:
                return  # targets not reached yet: keep training
            improved = accuracy > self.best_accuracy or recall > self.best_recall
            if accuracy > self.best_accuracy:
                self.best_weights, self.best_epoch = self.model.get_weights(), epoch
            self.best_accuracy, self.best_recall = max(accuracy, self.best_accuracy), max(recall, self.best_recall)
            self.wait = 0 if improved else self.wait + 1
            if self.wait >= self.patience:
                self.model.stop_training = True

        def on_train_end(self, logs=None):
            if self.best_weights is not None:
                self.model.set_weights(self.best_weights)

    return EpochTimer, TwoTargetEarlyStopping


def step_decay(initial_rate: float, drop: float = 0.5, every: int = 10):
    """Learning-rate schedule multiplying the rate by ``drop`` every ``every`` epochs."""
    return lambda epoch, rate=None: float(initial_rate * drop ** (epoch // every))


def make_callbacks(names: tuple[str, ...], learning_rate: float, checkpoint_path: Path | None = None, *,
                   monitor: str, patience: int) -> list:
    """Keras callbacks by name: early_stopping, reduce_lr, step_decay, two_target_stop, checkpoint.

    All watch ``monitor`` (the ``monitor`` setting, default ``val_auc``) except the two-target rule;
    ``patience`` is the early-stopping patience (reduce_lr waits half of it).
    """
    keras = _keras()
    _, TwoTargetEarlyStopping = callback_classes()
    mode = "min" if monitor.endswith("loss") else "max"
    made = []
    for name in names:
        if name == "early_stopping":
            made.append(keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=patience,
                                                      restore_best_weights=True))
        elif name == "reduce_lr":
            made.append(keras.callbacks.ReduceLROnPlateau(monitor=monitor, mode=mode, factor=0.3,
                                                          patience=max(1, patience // 2), min_lr=1e-5))
        elif name == "step_decay":
            made.append(keras.callbacks.LearningRateScheduler(step_decay(learning_rate)))
        elif name == "two_target_stop":
            made.append(TwoTargetEarlyStopping(patience=patience))
        elif name == "checkpoint":
            if checkpoint_path is not None:
                made.append(keras.callbacks.ModelCheckpoint(str(checkpoint_path), monitor=monitor, mode=mode,
                                                            save_best_only=True))
        else:
            raise ValueError(f"unknown callback '{name}'; valid: early_stopping, reduce_lr, step_decay, "
                             "two_target_stop, checkpoint")
    return made
