"""Training: Keras callbacks, class weights, seeds, mixed precision and timing.

Models are trained from the cached uint8 arrays through ``tf.data`` (never by decoding files
each epoch). ``mixed_bfloat16`` is switched on automatically where the hardware has native
bf16 (CPUs with AMX or AVX512-BF16, GPUs of compute capability 8.0 or newer); the
``mixed_precision`` parameter forces it ``on`` or ``off``.
"""

from __future__ import annotations

import functools
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from medclf.core import progress

#: CPU flags (``/proc/cpuinfo``) that mean native bf16 matrix arithmetic.
BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16")


def _cpuinfo(cpuinfo: str | None) -> str:
    """``cpuinfo`` as given, else ``/proc/cpuinfo`` ("" where it cannot be read)."""
    if cpuinfo is not None:
        return cpuinfo
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def cpu_bf16_flags(cpuinfo: str | None = None) -> list[str]:
    """Which of :data:`BF16_CPU_FLAGS` the CPU advertises (empty where unknown). AMX and AVX512-BF16 are
    both native bf16 but not equally fast: oneDNN's AMX kernels are several times faster than its
    AVX512-BF16 ones, notably for convolution weight gradients, so timings are read with this."""
    flags = {flag for line in _cpuinfo(cpuinfo).splitlines() if line.startswith("flags") for flag in line.split()}
    return [flag for flag in BF16_CPU_FLAGS if flag in flags]


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU advertises native bf16 (AMX or AVX512-BF16); False where unknown."""
    return bool(cpu_bf16_flags(cpuinfo))


def cpu_model(cpuinfo: str | None = None) -> str:
    """The CPU's model name (``/proc/cpuinfo``); ``"cpu"`` where unknown."""
    for line in _cpuinfo(cpuinfo).splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "cpu"


def gpu_has_bf16() -> bool:
    """True when a visible GPU has compute capability 8.0 or newer (Ampere and later)."""
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        if tuple(capability) >= (8, 0):
            return True
    return False


def precision_policy(mode: str, probe: Callable[[str], float] | None = None) -> str:
    """Keras dtype policy for ``mode`` in auto/on/off: ``"mixed_bfloat16"`` or ``"float32"``.

    ``auto`` needs native bf16 hardware and, when a ``probe`` is given (seconds of one training step
    under a policy, see :func:`step_seconds`), bf16 must also be measured faster for that model: it is
    not for every model (MobileNetV2's depthwise convolutions run ~1.5x slower in bf16 on an AMX CPU,
    while VGG16 runs 3x faster).
    """
    if mode not in ("auto", "on", "off"):
        raise ValueError(f"mixed_precision must be auto, on or off; got {mode!r}")
    if mode == "off" or (mode == "auto" and not (gpu_has_bf16() or cpu_has_bf16())):
        return "float32"
    if mode == "on" or probe is None:
        return "mixed_bfloat16"
    return "mixed_bfloat16" if probe("mixed_bfloat16") < probe("float32") else "float32"


def set_precision(mode: str, probe: Callable[[str], float] | None = None) -> str:
    """Set the global Keras dtype policy (before building a model) and return its name."""
    import keras

    policy = precision_policy(mode, probe)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def current_policy() -> str:
    """Name of the global Keras dtype policy in effect."""
    import keras

    return keras.mixed_precision.global_policy().name


def step_seconds(build: Callable[[], Any], input_shape: Sequence[int], policy: str, batch_size: int = 16,
                 repeats: int = 3) -> float:
    """Fastest of ``repeats`` timed training steps of ``build()`` under ``policy`` on a random batch.

    The first step (graph tracing) is not timed; the global policy is restored afterwards.
    """
    import keras

    previous = current_policy()
    keras.mixed_precision.set_global_policy(policy)
    try:
        model = build()
        model.compile(optimizer=keras.optimizers.SGD(1e-6), loss="binary_crossentropy")
        rng = np.random.default_rng(0)
        x = rng.uniform(0, 255, (batch_size, *input_shape)).astype("float32")
        y = rng.integers(0, 2, (batch_size, 1)).astype("float32")
        model.train_on_batch(x, y)
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model.train_on_batch(x, y)
            times.append(time.perf_counter() - start)
        return min(times)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def cached_probe(probe: Callable[[str], float], store: str | Path, key: str) -> Callable[[str], float]:
    """``probe`` memoised in the JSON file ``store`` under ``key`` and the policy, so a model's
    precision is measured once per machine (``key`` should name the model, input shape and device)."""
    from medclf.core.io import write_json

    def measured(policy: str) -> float:
        path = Path(store)
        try:
            known = json.loads(path.read_text())
        except (OSError, ValueError):
            known = {}
        entry = f"{key}|{policy}"
        if entry not in known:
            known[entry] = probe(policy)
            write_json(path, known)
        return float(known[entry])

    return measured


def onednn_enabled() -> bool | None:
    """Whether TensorFlow runs its CPU ops through oneDNN in this process (``TF_ENABLE_ONEDNN_OPTS``, read
    when TensorFlow starts; see ``medclf/__init__.py``); ``None`` where TensorFlow cannot say."""
    try:
        from tensorflow.python.util import _pywrap_util_port
    except ImportError:
        return None
    probe = getattr(_pywrap_util_port, "IsMklEnabled", None)
    return bool(probe()) if probe else None


def device_id() -> str:
    """A short name of the compute device for probe keys: GPU names, else the CPU model with its native
    bf16 flags and whether oneDNN is on (one model name can cover CPUs of very different speed)."""
    import tensorflow as tf

    gpus = [tf.config.experimental.get_device_details(g).get("device_name", "gpu")
            for g in tf.config.list_physical_devices("GPU")]
    if gpus:
        return "+".join(gpus)
    return "|".join([cpu_model(), *cpu_bf16_flags(), "onednn" if onednn_enabled() else "eigen"])


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


# --------------------------------------------------------------------------- callbacks


def _keras():
    import keras

    return keras


@functools.cache
def _callback_classes():
    """Callback classes are defined lazily so importing this module does not import TensorFlow."""
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


def make_callbacks(names: tuple[str, ...], params: dict, learning_rate: float,
                   checkpoint_path: Path | None = None) -> list:
    """Keras callbacks by name: early_stopping, reduce_lr, step_decay, two_target_stop, checkpoint.

    All monitor ``params["monitor"]`` (default ``val_auc``) except the two-target rule.
    """
    keras = _keras()
    _, TwoTargetEarlyStopping = _callback_classes()
    monitor, patience = params["monitor"], params["patience"]
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


# --------------------------------------------------------------------------- fitting


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


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int, augmenter=None):
    """``tf.data`` pipeline over in-memory uint8 arrays: shuffle, batch, augment, prefetch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("float32")))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augmenter is not None:
        # One map call at a time: the random layers share a seed state, and parallel calls would
        # draw from it in a thread-dependent order (the same seed would not give the same run).
        ds = ds.map(lambda images, labels: (augmenter(tf.cast(images, "float32"), training=True), labels))
    return ds.prefetch(tf.data.AUTOTUNE)


def compile_model(model, optimizer, metrics_for_two_target: bool = False) -> None:
    """Binary cross-entropy with AUC and accuracy (and recall for the two-target rule)."""
    keras = _keras()
    metrics = [keras.metrics.BinaryAccuracy(name="accuracy"), keras.metrics.AUC(name="auc")]
    if metrics_for_two_target:
        metrics.append(keras.metrics.Recall(name="recall"))
    model.compile(optimizer=optimizer, loss="binary_crossentropy", metrics=metrics)


def fit_keras(model, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *,
              epochs: int, batch_size: int, callbacks: list, params: dict, augmenter=None,
              verbose: int = 2) -> TrainResult:
    """Fit a compiled model on uint8 arrays; returns timing, history and the best epoch."""
    keras = _keras()
    EpochTimer, _ = _callback_classes()
    timer = EpochTimer(epochs, bar=verbose == 0 and progress.bars_wanted())  # verbose: Keras prints its own lines
    weights = class_weights(train[1]) if params["class_weight"] else None
    train_ds = make_dataset(*train, batch_size, shuffle=True, seed=params["seed"], augmenter=augmenter)
    val_ds = make_dataset(*val, batch_size=max(batch_size, 64), shuffle=False, seed=params["seed"])
    start = time.perf_counter()
    history = model.fit(train_ds, validation_data=val_ds, epochs=epochs, class_weight=weights,
                        callbacks=[timer, *callbacks], verbose=verbose)
    seconds = time.perf_counter() - start
    return TrainResult(
        seconds=round(seconds, 2),
        seconds_per_epoch=round(float(np.mean(timer.seconds)), 2) if timer.seconds else 0.0,
        epochs_run=len(timer.seconds),
        best_epoch=best_epoch(history.history, params["monitor"]),
        precision=keras.mixed_precision.global_policy().name,
        history={k: [float(v) for v in values] for k, values in history.history.items()},
    )


def fit_spec(model, spec, train: tuple[np.ndarray, np.ndarray], val: tuple[np.ndarray, np.ndarray], *,
             params: dict, learning_rate: float, epochs: int, augmenter=None, verbose: int = 0) -> TrainResult:
    """Compile ``model`` with ``spec``'s optimizer at ``learning_rate`` and fit it with ``spec``'s callbacks
    (a checkpoint, if asked for, lives in a temporary folder) and batch size."""
    import tempfile

    from medclf.models.registry import make_optimizer

    compile_model(model, make_optimizer(spec.optimizer, learning_rate),
                  metrics_for_two_target="two_target_stop" in spec.callbacks)
    with tempfile.TemporaryDirectory() as tmp:
        callbacks = make_callbacks(spec.callbacks, params, learning_rate, Path(tmp) / "best.keras")
        return fit_keras(model, train, val, epochs=epochs, batch_size=spec.batch_size, callbacks=callbacks,
                         params=params, augmenter=augmenter, verbose=verbose)


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
