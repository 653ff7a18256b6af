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
    """``model(images)`` as ``dtype`` in one Keras ``predict`` call (one predict loop, uint8 passed as is).

    With ``desc`` the work is labelled for the progress status (:func:`medclf.core.progress.task`), and with
    ``progress`` a tqdm bar advances per batch (where bars are wanted, :func:`medclf.core.progress.bars_wanted`).
    """
    if len(images) == 0:
        return np.zeros((0,), dtype=dtype)
    import keras

    if desc is None and not progress:
        return np.asarray(model.predict(images, batch_size=batch_size, verbose=0), dtype=dtype)

    label = desc or "predict"
    with task(label), tqdm(total=len(images), desc=label, disable=not (progress and bars_wanted()), leave=False,
                           unit="img") as bar:
        advance = keras.callbacks.LambdaCallback(
            on_predict_batch_end=lambda batch, logs: bar.update(min(batch_size, len(images) - bar.n)))
        out = model.predict(images, batch_size=batch_size, verbose=0, callbacks=[advance])
    return np.asarray(out, dtype=dtype)


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
