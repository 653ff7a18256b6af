"""Probabilities for these images: one way to score images with a Keras model or an sklearn pipeline, batched.

Every score the project stores or shows comes from here — the predictions a trained model is evaluated
on (:mod:`medclf.training.experiment`), ``python -m medclf predict``, LIME's perturbed images and the
check that a loaded model reproduces its stored predictions (:mod:`medclf.analysis.explain`):

* :func:`predict_outputs` — a Keras model's raw outputs in one ``predict`` call (also backbone features);
* :func:`predict_probabilities` — the probability of label 1 per image, float64: a Keras model's sigmoid
  output, or an SVM's decision function through a sigmoid (:func:`medclf.evaluation.metrics.sigmoid_scores`);
* :func:`scorer` — images → probabilities as evaluation made them: plain, or averaged over the test-time
  augmentation views a record kept (:mod:`medclf.evaluation.tta`).
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from medclf.core.progress import bars_wanted, task
from medclf.evaluation.metrics import sigmoid_scores
from medclf.evaluation import tta as tta_module

#: Images per batch when scoring (memory, not results: a batch's images do not affect each other).
BATCH_SIZE = 256


def predict_outputs(model: Any, images: np.ndarray, batch_size: int = 64, progress: bool = True,
                    desc: str | None = "predict", dtype: Any = "float32") -> np.ndarray:
    """``model(images)`` as ``dtype``, ``batch_size`` images at a time through one traced function per model
    (:func:`_forward`; uint8 passed as is).

    With ``desc`` the work is labelled for the progress status (:func:`medclf.core.progress.task`), and with
    ``progress`` a tqdm bar advances per batch (where bars are wanted, :func:`medclf.core.progress.bars_wanted`).
    """
    if len(images) == 0:
        return np.zeros((0,), dtype=dtype)
    images = np.asarray(images)
    forward = _forward(model, images)
    label = desc or "predict"
    with task(label) if desc is not None or progress else contextlib.nullcontext(), \
            tqdm(total=len(images), desc=label, disable=not (progress and bars_wanted()), leave=False,
                 unit="img") as bar:
        out = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            out.append(np.asarray(forward(batch), dtype=dtype))
            bar.update(len(batch))
    return np.concatenate(out)


#: One forward-pass function per Keras model and input kind (see :func:`_forward`); weak, so models still go.
_FORWARD: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


def _forward(model: Any, images: np.ndarray) -> Callable[[np.ndarray], Any]:
    """``model(batch, training=False)`` as one ``tf.function`` per model and input dtype/shape, traced once
    for any batch size.

    Why not ``model.predict``: its predict function is traced for the first batch shape, traced again for the
    next one, and TensorFlow counts the traces of every model's predict function together (they share one
    code object), so a notebook scoring a few models printed "triggered tf.function retracing" warnings.
    Here each model traces once, with an open batch dimension. XLA and eager running follow the model's own
    ``jit_compile`` / ``run_eagerly``, as ``predict`` would.
    """
    import tensorflow as tf

    if getattr(model, "run_eagerly", False):
        return lambda batch: model(batch, training=False)
    key = (images.dtype.str, images.shape[1:])
    functions = _FORWARD.setdefault(model, {})
    if key not in functions:
        ref = weakref.ref(model)  # the function must not keep its model alive through the cache

        def call(batch):
            return ref()(batch, training=False)

        functions[key] = tf.function(call, jit_compile=bool(getattr(model, "jit_compile", False)),
                                     input_signature=[tf.TensorSpec((None, *images.shape[1:]), images.dtype)])
    return functions[key]


def predict_probabilities(model: Any, images: np.ndarray, batch_size: int = BATCH_SIZE, progress: bool = False,
                          desc: str | None = None) -> np.ndarray:
    """Probability of label 1 per image, ``(N,)`` float64.

    A model with a ``decision_function`` (the SVM pipeline) gives its decision values through a sigmoid
    (monotonic, so ranking metrics are unchanged; 0 maps to 0.5); a Keras model its sigmoid output,
    ``batch_size`` images per step.
    """
    if hasattr(model, "decision_function"):
        return sigmoid_scores(model.decision_function(images))
    return predict_outputs(model, images, batch_size, progress=progress, desc=desc, dtype=np.float64).reshape(-1)


def scorer(model: Any, tta: Mapping[str, Any] | None = None,
           batch_size: int = BATCH_SIZE) -> Callable[..., np.ndarray]:
    """``score(images) -> probabilities`` as evaluation made them.

    Args:
        model: a Keras model or an sklearn pipeline.
        tta: ``None`` for plain scores, or test-time augmentation settings ``{"augmentation", "views",
            "seed"}`` (a record's ``evaluation.tta`` where ``used``): the mean over the image and ``views``
            augmented copies (:func:`medclf.evaluation.tta.tta_scores`; ``score(images, original=p)`` reuses
            plain scores ``p`` already made).
        batch_size: images per step of the model.
    """
    plain = partial(predict_probabilities, model, batch_size=batch_size)
    if tta is None:
        return plain
    return partial(tta_module.tta_scores, plain, augmentation=tta["augmentation"], views=tta["views"],
                   seed=tta["seed"])
