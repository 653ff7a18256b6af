"""Grad-CAM: where the evidence for the positive (disease) class sits, as a heat map in 0..1 at the input size.

Its real resolution is the chosen layer's (by default the last convolution-like layer, before any
pooling), so a 128-pixel input with four 2× poolings before it gives a 16×16 map, smoothed up to 128
by bilinear resizing. Averaged ensembles get the mean of their members' maps.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from medclf.analysis.explain.layers import (activation_probe, as_batch, ensemble_members, find_path,
                                            last_feature_path, output_rank, qualified_name)
from medclf.evaluation.scoring import predict_probabilities


def gradcam_layer(model: keras.Model) -> str | None:
    """The layer Grad-CAM uses by default, as ``"name"`` or ``"sub_model/name"``; None when there is none.

    It is the last layer with a 4-D output that computes features (a convolution, normalisation,
    activation or merge such as squeeze-excite's multiply), looking into nested sub-models such as
    a transfer backbone. Pooling after it is skipped on purpose: it halves the map's resolution and
    adds nothing. Dense networks have no such layer. For an ensemble, the first member's layer.
    """
    members = ensemble_members(model)
    path = last_feature_path(members[0] if members else model)
    return qualified_name(path) if path else None


def gradcam_grid(model: keras.Model) -> tuple[str, int, int] | None:
    """``(layer, height, width)``: the layer Grad-CAM reads by default (:func:`gradcam_layer`) and the size of its
    map, the heat map's real resolution before it is smoothed up to the input size; None without such a layer."""
    members = ensemble_members(model)
    path = last_feature_path(members[0] if members else model)
    if not path:
        return None
    height, width = path[-1].output.shape[1:3]
    return qualified_name(path), int(height), int(width)


def supports_gradcam(model: keras.Model) -> bool:
    """True when the model has a spatial feature layer (every CNN; not a dense ANN)."""
    return gradcam_layer(model) is not None


def gradcams(model: keras.Model, images: np.ndarray, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heat maps of the positive-class probability for a batch of images.

    For each image: the gradient of the sigmoid output with respect to the layer's activations,
    averaged over space, weights that layer's channels; the weighted sum, through a ReLU, is
    scaled to a maximum of 1 (all zeros where nothing speaks for the positive class) and resized
    bilinearly to the input size.

    An averaged ensemble (sub-models ``member1..n``) gets the mean of its members' maps, each
    computed for that member's own probability and scaled to 0..1 first, so every member counts
    equally; the mean is scaled to a maximum of 1 again.

    Args:
        model: a Keras model with one image input and one sigmoid output.
        images: uint8 images ``(N, H, W, C)`` (or one ``(H, W, C)``), as the model takes them.
        layer_name: the layer to explain (``"conv3"``, or ``"backbone/top_conv"`` inside a nested
            sub-model; a bare name is also searched inside sub-models); default
            :func:`gradcam_layer`. For an ensemble it names a layer of each member.

    Returns:
        float32 array ``(N, H, W)`` in 0..1.

    Raises:
        ValueError: no usable layer (a dense network: use LIME), an unknown ``layer_name``, or
            images of the wrong shape.
    """
    import tensorflow as tf

    x = as_batch(images, model)
    members = ensemble_members(model)
    if members:
        cams = np.mean([gradcams(member, x, layer_name) for member in members], axis=0)
        return _scale_to_unit(cams)
    path = find_path(model, layer_name) if layer_name else last_feature_path(model)
    if not path:
        raise ValueError(f"model {model.name!r}: " + (
            f"no layer {layer_name!r}; layers: {', '.join(l.name for l in model.layers)}" if layer_name else
            "no convolutional layer with a spatial (4-D) output, so no Grad-CAM (a dense network: use LIME)"))
    if output_rank(path[-1]) != 4:
        raise ValueError(f"model {model.name!r}: layer {qualified_name(path)!r} has no 4-D (spatial) output")
    run = activation_probe(model, path[:-1], path[-1:])
    with tf.GradientTape() as tape:
        acts, out = run(tf.convert_to_tensor(x))
        score = out[:, 0]
    grads = tape.gradient(score, acts[0])
    acts, grads = tf.cast(acts[0], tf.float32), tf.cast(grads, tf.float32)
    weights = tf.reduce_mean(grads, axis=(1, 2), keepdims=True)
    cams = tf.nn.relu(tf.reduce_sum(weights * acts, axis=-1, keepdims=True))
    cams = tf.image.resize(cams, x.shape[1:3], method="bilinear")[..., 0]
    return _scale_to_unit(cams.numpy())


def _scale_to_unit(maps: np.ndarray) -> np.ndarray:
    """Each map divided by its maximum (maps with no positive value become zeros), clipped to 0..1."""
    maps = np.maximum(np.asarray(maps, dtype=np.float32), 0)
    peak = maps.reshape(len(maps), -1).max(axis=1).reshape(-1, 1, 1)
    return np.clip(np.divide(maps, peak, out=np.zeros_like(maps), where=peak > 0), 0, 1)


def gradcam(model: keras.Model, image: np.ndarray, layer_name: str | None = None) -> np.ndarray:
    """Grad-CAM heat map ``(H, W)`` in 0..1 of one uint8 image ``(H, W, C)``; see :func:`gradcams`."""
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"gradcam takes one image (H, W, C); got shape {image.shape} (use gradcams for a batch)")
    return gradcams(model, image, layer_name)[0]


def gradcam_table(subject: Any, files: Sequence[str]) -> tuple[np.ndarray, np.ndarray, list[dict[str, Any]]]:
    """Grad-CAM maps of one loaded model (:class:`medclf.analysis.explain.subjects.LoadedModel`) on ``files``.

    Returns:
        ``(images, cams, log)``: the model's input images, their maps (:func:`gradcams`, one batch), and one
        log row per file: ``model_id, method="Grad-CAM", file``, the stored ``probability``,
        ``probability_recomputed`` by the loaded model (equal when the model file matches its
        predictions) and ``seconds`` (the batch's time per image).
    """
    files = list(files)
    images = subject.images(files)
    start = time.perf_counter()
    cams = gradcams(subject.model, images)
    seconds = (time.perf_counter() - start) / max(len(files), 1)
    stored = subject.predictions.set_index("file").loc[files, "probability"].to_numpy()
    recomputed = predict_probabilities(subject.model, images)
    log = [{"model_id": subject.model_id, "method": "Grad-CAM", "file": file, "probability": float(p),
            "probability_recomputed": float(q), "seconds": seconds} for file, p, q in zip(files, stored, recomputed)]
    return images, cams, log
