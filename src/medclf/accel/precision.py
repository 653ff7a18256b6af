"""The training dtype policy: declared in the settings, never measured into a decision.

A model trains in the policy its settings declare: ``model_overrides.<model>.mixed_precision`` where
that is set, else ``mixed_precision`` (default ``float32``; a profile or the user may declare
``mixed_bfloat16``). Nothing here asks how fast the hardware is or reads a clock, so one declaration
trains the same model on every machine. A timing probe once chose per model and machine, and the two
precisions train to different weights: two clones on one machine trained ``cnn_deeper`` (chest X-ray
quick) in float32 and in bf16 (test accuracy 0.779 and 0.771), and ``ann_deep`` ended at validation
AUC 0.956 and 0.500. What each policy costs is a benchmark (``benchmarks/bench_accel.py --probe``).

``mixed_bfloat16`` runs everywhere; without native bf16 (AMX, AVX512-BF16, a GPU of compute
capability 8.0 or newer) it is emulated and slower than float32, but still the declared model.
``mixed_float16`` is for GPUs: a CPU has no fast float16 kernels, so it is refused there.
"""

from __future__ import annotations

from dataclasses import dataclass

from medclf.accel import hardware
from medclf.config.param_specs import PRECISIONS
from medclf.config.params import declared_in

#: The policy of a scikit-learn model (the SVM): it has no Keras dtype policy.
SKLEARN_POLICY = "float64"


@dataclass(frozen=True)
class Declared:
    """A model's dtype policy and where it was declared (``default``, ``profile quick``, ``model_overrides
    (profile quick per_dataset.chest_xray)``, ``user -p/overrides``), as the record states them."""

    policy: str
    declared_in: str


def declared_precision(name: str, params: dict) -> Declared:
    """The policy ``params`` declare for model ``name``: its ``model_overrides`` entry, else ``mixed_precision``."""
    own = ((params.get("model_overrides") or {}).get(name) or {}).get("mixed_precision")
    if own is not None:
        return Declared(own, f"model_overrides ({declared_in('model_overrides', params)})")
    return Declared(params["mixed_precision"], declared_in("mixed_precision", params))


def check_policy(policy: str) -> str:
    """``policy`` if it can run here: one of :data:`PRECISIONS`, ``mixed_float16`` only with a GPU.

    Raises:
        ValueError: one line saying what to declare instead.
    """
    if policy not in PRECISIONS:
        raise ValueError(f"mixed_precision must be one of {', '.join(PRECISIONS)}; got {policy!r}")
    if policy == "mixed_float16" and not hardware.has_gpu():
        raise ValueError("mixed_precision mixed_float16 needs a GPU and none is visible: declare float32 or "
                         "mixed_bfloat16 for a CPU run")
    return policy


def set_precision(policy: str) -> str:
    """Set the global Keras dtype policy to the declared ``policy`` (before building a model); return it."""
    import keras

    keras.mixed_precision.set_global_policy(check_policy(policy))
    return policy


def current_policy() -> str:
    """Name of the global Keras dtype policy in effect."""
    import keras

    return keras.mixed_precision.global_policy().name
