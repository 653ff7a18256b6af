"""The training dtype policy: float32 or mixed_bfloat16, chosen from the hardware and a timed probe.

``mixed_bfloat16`` pays off only where the hardware has native bf16 (CPUs with AMX or AVX512-BF16,
GPUs of compute capability 8.0 or newer) and, even there, not for every model; ``auto`` therefore
asks the hardware (:mod:`medclf.accel.hardware`) and times one training step under each policy
(:func:`step_seconds`, remembered per machine by :func:`cached_probe`). With the ``accel`` setting
off there is no detection and no probe: ``auto`` means float32, ``on``/``off`` are taken as they are.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from medclf.accel import hardware
from medclf.core.io import write_json

MODES = ("auto", "on", "off")

#: ``auto`` picks bf16 only where its training step is measured at least this much faster than float32.
#: Within that margin the choice would follow timing noise, and the two precisions train to different
#: weights: on one 2-vCPU AVX512-BF16 machine two fresh clones probed ``ann_deep`` at 96 px as 11%
#: faster and 0.2% slower in bf16, and its chest X-ray quick runs ended at validation AUC 0.956 (bf16)
#: and 0.500 (float32, constant predictions). The models bf16 pays off for gain 25-45%.
BF16_MIN_SPEEDUP = 0.15


def precision_policy(mode: str, probe: Callable[[str], float] | None = None, accel: bool = True) -> str:
    """Keras dtype policy for ``mode`` in auto/on/off: ``"mixed_bfloat16"`` or ``"float32"``.

    ``auto`` needs native bf16 hardware and, when a ``probe`` is given (seconds of one training step
    under a policy, see :func:`step_seconds`), bf16 must also be measured faster for that model, by at
    least :data:`BF16_MIN_SPEEDUP` (so that timing noise does not decide a model's precision): it is
    not for every model (MobileNetV2's depthwise convolutions run ~1.5x slower in bf16 on an AMX CPU,
    while VGG16 runs 3x faster). With ``accel`` false, ``auto`` is float32 (nothing detected or probed).
    """
    if mode not in MODES:
        raise ValueError(f"mixed_precision must be auto, on or off; got {mode!r}")
    if mode == "off" or (mode == "auto" and not accel):
        return "float32"
    if mode == "auto" and not (hardware.gpu_has_bf16() or hardware.cpu_has_bf16()):
        return "float32"
    if mode == "on" or probe is None:
        return "mixed_bfloat16"
    faster = probe("mixed_bfloat16") <= (1 - BF16_MIN_SPEEDUP) * probe("float32")
    return "mixed_bfloat16" if faster else "float32"


def set_precision(mode: str, probe: Callable[[str], float] | None = None, accel: bool = True) -> str:
    """Set the global Keras dtype policy (before building a model) and return its name
    (:func:`precision_policy`)."""
    import keras

    policy = precision_policy(mode, probe, accel)
    keras.mixed_precision.set_global_policy(policy)
    return policy


def current_policy() -> str:
    """Name of the global Keras dtype policy in effect."""
    import keras

    return keras.mixed_precision.global_policy().name


def step_seconds(build: Callable[[], Any], input_shape: Sequence[int], policy: str, batch_size: int = 16,
                 repeats: int = 5) -> float:
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
