"""LIME: which superpixels raise or lower the positive-class probability, seeded.

Unlike Grad-CAM it needs no gradients (it also explains dense networks) but depends on the seed, the
number of samples and the segmentation.
"""

from __future__ import annotations

import contextlib
import io as _io
import math
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from medclf.analysis.explain.layers import as_batch
from medclf.evaluation.scoring import predict_probabilities


def _to_rgb(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def segment(image: np.ndarray, n_segments: int = 50, compactness: float = 10.0) -> np.ndarray:
    """Superpixels for LIME: SLIC labels ``0..k-1`` of an ``(H, W, 3)`` image.

    SLIC merges everything into one region on flat or pure-noise images; then a regular grid of
    about ``n_segments`` cells is used, so LIME always has regions to switch off.
    """
    from skimage.segmentation import slic

    labels = slic(image, n_segments=n_segments, compactness=compactness, start_label=0)
    if len(np.unique(labels)) >= 2:
        return labels
    h, w = labels.shape
    side = max(1, round(math.sqrt(n_segments)))
    rows, cols = np.arange(h) * side // h, np.arange(w) * side // w
    return rows[:, None] * side + cols[None, :]


@dataclass
class LimeResult:
    """A LIME explanation of the positive class, with what the plots need.

    Attributes:
        explanation: the ``lime.lime_image.ImageExplanation``.
        image: the RGB uint8 image LIME perturbed (grey images repeated to three channels).
        label: the explained label (1, the positive class).
        weights: per-pixel weight of each pixel's superpixel (:func:`superpixel_weights`);
            positive = evidence for the positive class.
    """

    explanation: Any
    image: np.ndarray
    label: int
    weights: np.ndarray

    @property
    def segments(self) -> np.ndarray:
        """Superpixel label of each pixel."""
        return self.explanation.segments


def lime_classifier(model: keras.Model, batch_size: int = 128) -> Callable[[np.ndarray], np.ndarray]:
    """``classify(rgb_images) -> (N, 2)`` probabilities ``[1 - p, p]`` for LIME.

    LIME perturbs RGB images; a grayscale model gets their channel mean (the channels are
    copies of the grey image, so this is exact for unperturbed pixels).
    """
    channels = model.inputs[0].shape[-1]

    def classify(images: np.ndarray) -> np.ndarray:
        x = np.asarray(images, dtype=np.float32)
        if channels == 1:
            x = x.mean(axis=-1, keepdims=True)
        p = predict_probabilities(model, x, batch_size=batch_size)
        return np.column_stack([1 - p, p])

    return classify


def lime_explanation(model: keras.Model, image: np.ndarray, num_samples: int = 1000, seed: int = 0,
                     n_segments: int = 50, hide_color: int | None = None, batch_size: int = 128) -> LimeResult:
    """Seeded LIME explanation of the positive-class probability of one uint8 image ``(H, W, C)``.

    LIME switches random subsets of superpixels off (filled with their mean colour, or
    ``hide_color``), asks the model, and fits a weighted linear model of the probability on which
    superpixels were on. The weights depend on ``seed``, ``num_samples`` and the segmentation:
    the same arguments give the same result, other seeds a somewhat different one.

    Args:
        model: a Keras model (any family: LIME needs no gradients).
        image: one image as the model takes it (1 or 3 channels).
        num_samples: perturbed images to score.
        seed: seeds the sampling (``LimeImageExplainer(random_state=seed)``).
        n_segments: about how many SLIC superpixels (:func:`segment`).
        hide_color: fill of switched-off superpixels; None = each superpixel's mean colour.
        batch_size: images per model call.

    Returns:
        A :class:`LimeResult` for label 1.
    """
    with warnings.catch_warnings():  # lime imports tqdm.auto, which warns outside a widget-enabled Jupyter
        warnings.filterwarnings("ignore", message="IProgress not found")
        from lime import lime_image

    if num_samples < 2:
        raise ValueError(f"num_samples must be at least 2; got {num_samples}")
    rgb = _to_rgb(as_batch(image, model)[0]).astype(np.uint8)
    explainer = lime_image.LimeImageExplainer(random_state=seed)
    with contextlib.redirect_stderr(_io.StringIO()):  # LIME draws a tqdm bar per explanation
        explanation = explainer.explain_instance(
            rgb, lime_classifier(model, batch_size), labels=(1,), top_labels=None, hide_color=hide_color,
            num_samples=num_samples, batch_size=batch_size, random_seed=seed,
            segmentation_fn=lambda im: segment(im, n_segments))
    return LimeResult(explanation, rgb, 1, superpixel_weights(explanation, 1))


def superpixel_weights(explanation: Any, label: int = 1) -> np.ndarray:
    """Per-pixel map ``(H, W)`` of LIME's weight for the superpixel each pixel belongs to (0 if unweighted)."""
    segments = explanation.segments
    lut = np.zeros(int(segments.max()) + 1, dtype=np.float64)
    for index, weight in explanation.local_exp[label]:
        lut[index] = weight
    return lut[segments]


def top_superpixels(result: LimeResult, num_features: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """Boolean masks ``(for, against)``: the ``num_features`` superpixels with the largest positive
    weights and the ``num_features`` with the most negative ones."""
    ranked = sorted(result.explanation.local_exp[result.label], key=lambda kv: kv[1])
    against = [k for k, w in ranked[:num_features] if w < 0]
    favour = [k for k, w in ranked[::-1][:num_features] if w > 0]
    return np.isin(result.segments, favour), np.isin(result.segments, against)


def lime_comparison(subjects: Sequence[Any], files: Sequence[str], *, num_samples: int, seed: int,
                    n_segments: int) -> tuple[list[dict[str, LimeResult]], list[dict]]:
    """Every subject's LIME explanation of every file, with the same seed and samples for all.

    Args:
        subjects: loaded models (:class:`medclf.analysis.explain.subjects.LoadedModel`), e.g. the
            selection rule's :func:`~medclf.analysis.explain.subjects.comparison_pair`.
        files: test files (predictions' ``file``), each explained by every subject.
        num_samples, seed, n_segments: as :func:`lime_explanation`.

    Returns:
        Per file, ``{"<model_id> (p=<stored probability>)": LimeResult}`` in subject order; and one log
        row per (model, file): ``model_id, method="LIME", file, seconds``.
    """
    explained, log = [], []
    stored = {subject.model_id: subject.predictions.set_index("file")["probability"] for subject in subjects}
    for file in files:
        row = {}
        for subject in subjects:
            start = time.perf_counter()
            label = f"{subject.model_id} (p={stored[subject.model_id][file]:.3f})"
            row[label] = lime_explanation(subject.model, subject.images([file])[0], num_samples=num_samples,
                                          seed=seed, n_segments=n_segments)
            log.append({"model_id": subject.model_id, "method": "LIME", "file": file,
                        "seconds": time.perf_counter() - start})
        explained.append(row)
    return explained, log
