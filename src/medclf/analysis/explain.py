"""Explanations of trained Keras models: Grad-CAM, feature maps, LIME, and the errors worth a look.

Everything here computes and returns arrays or tables; drawing is in :mod:`medclf.plots.explain_plots`.

* :func:`gradcam` — where the evidence for the positive (disease) class sits, as a heat map in
  0..1 at the input size. Its real resolution is the chosen layer's (by default the last
  convolution-like layer, before any pooling), so a 128-pixel input with four 2× poolings before
  it gives a 16×16 map, smoothed up to 128 by bilinear resizing.
* :func:`feature_maps` — what the convolution layers ``conv1, conv2, ...`` respond to.
* :func:`lime_explanation` — a seeded LIME explanation on superpixels; unlike Grad-CAM it needs no
  gradients (it also explains dense networks) but depends on the seed, the number of samples and
  the segmentation.
* :func:`error_cases` — false negatives and false positives at a record's stored threshold,
  most confident first.
* :func:`best_per_family` — which trained model of each family to explain, chosen on
  **validation** ROC AUC only.

Models as :mod:`medclf.models.registry` builds them: one ``image`` input of uint8-valued floats (rescaled
inside the model) and one sigmoid output, the probability of the positive class. Averaged
ensembles (:func:`medclf.models.registry.build_ensemble`) hold sub-models ``member1..n``; transfer models
hold a pretrained backbone as a nested sub-model. Both are handled (see :func:`gradcam`).

Example::

    cam = gradcam(model, image)                       # (H, W) in 0..1
    maps = feature_maps(model, image)                 # {"conv1": (H, W, 32), ...}
    lime = lime_explanation(model, image, num_samples=1000, seed=42)
    lime.weights                                      # (H, W) superpixel weights, + for disease
"""

from __future__ import annotations

import contextlib
import io as _io
import math
import re
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
import pandas as pd

from medclf.evaluation import results

#: Names :func:`medclf.models.registry.build_ensemble` gives its sub-models.
MEMBER_NAME = re.compile(r"^member\d+$")
#: Layer classes whose 4-D output is a feature map Grad-CAM may use (pooling and dropout are left
#: out: they only coarsen or copy the map before them).
_FEATURE_LAYER = re.compile(r"Conv|BatchNormalization|LayerNormalization|Activation|ReLU|ELU|Multiply|Add"
                            r"|Concatenate|Average|Maximum|Subtract")
#: Columns a predictions CSV has (:func:`medclf.evaluation.results.save_predictions`).
PREDICTION_COLUMNS = ("file", "true_label", "true_class", "probability")
ERROR_KINDS = ("false negative", "false positive")


# ---------------------------------------------------------------------------------------------
# locating layers, also inside nested sub-models
# ---------------------------------------------------------------------------------------------

def _rank(layer: keras.layers.Layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # not built, or called more than once
        return None


def _is_feature_layer(layer: keras.layers.Layer) -> bool:
    kind = type(layer).__name__
    return (not isinstance(layer, keras.Model) and _FEATURE_LAYER.search(kind) is not None
            and "Pool" not in kind and _rank(layer) == 4)


def _is_conv(layer: keras.layers.Layer) -> bool:
    return "Conv" in type(layer).__name__ and _rank(layer) == 4


def _last_feature_path(model: keras.Model) -> list[keras.layers.Layer] | None:
    """``[sub-model, ..., layer]``: the last feature layer, looking into nested sub-models."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.Model):
            inner = _last_feature_path(layer)
            if inner:
                return [layer, *inner]
        elif _is_feature_layer(layer):
            return [layer]
    return None


def _find_path(model: keras.Model, name: str) -> list[keras.layers.Layer] | None:
    """Path to the layer called ``name`` (``"backbone/top_conv"`` or a bare name, searched depth-first)."""
    head, _, rest = name.partition("/")
    names = [layer.name for layer in model.layers]
    if rest:
        if head in names and isinstance(model.get_layer(head), keras.Model):
            inner = _find_path(model.get_layer(head), rest)
            return [model.get_layer(head), *inner] if inner else None
        return None
    if name in names:
        return [model.get_layer(name)]
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = _find_path(layer, name)
            if inner:
                return [layer, *inner]
    return None


def _qualified(path: Sequence[keras.layers.Layer]) -> str:
    return "/".join(layer.name for layer in path)


def ensemble_members(model: keras.Model) -> list[keras.Model]:
    """The sub-models ``member1..n`` of an averaged ensemble; empty for any other model."""
    subs = [layer for layer in model.layers if isinstance(layer, keras.Model)]
    if subs and all(MEMBER_NAME.match(sub.name) for sub in subs):
        return subs
    return []


def _outer_call(model: keras.Model, sub: keras.Model) -> tuple[Any, Any]:
    """The tensors going into and out of ``sub`` where ``model``'s graph calls it.

    Keras has no public accessor for this: a nested model's ``input``/``output`` are its own
    internal tensors, so the call node is read from ``_inbound_nodes``.
    """
    nodes = sub._inbound_nodes
    if len(nodes) != 1 or len(nodes[0].input_tensors) != 1 or len(nodes[0].output_tensors) != 1:
        raise ValueError(f"sub-model {sub.name!r} of {model.name!r} must be called exactly once with one input "
                         f"and one output to be explained; it has {len(nodes)} calls")
    return nodes[0].input_tensors[0], nodes[0].output_tensors[0]


def _probe(model: keras.Model, parents: Sequence[keras.Model], targets: Sequence[keras.layers.Layer],
           with_output: bool = True) -> Callable[[Any], tuple[list[Any], Any]]:
    """``run(x) -> (activations of targets, model output or None)`` in one forward pass (gradients flow).

    ``targets`` live in the innermost of ``parents`` (or in ``model`` when there are none). For a
    nested target the outer graph is cut in three: the part before the sub-model, the sub-model
    (probed recursively) and, when ``with_output``, the part after it.
    """
    image = model.inputs[0]
    if not parents:
        outputs = [t.output for t in targets] + ([model.outputs[0]] if with_output else [])
        probe = keras.Model(image, outputs)

        def run(x):
            values = probe(x, training=False)
            values = list(values) if isinstance(values, (list, tuple)) else [values]
            return (values[:-1], values[-1]) if with_output else (values, None)

        return run
    sub = parents[0]
    inner = _probe(sub, parents[1:], targets, with_output)
    sub_in, sub_out = _outer_call(model, sub)
    before = None if sub_in is image else keras.Model(image, sub_in)
    after = None
    if with_output and sub_out is not model.outputs[0]:
        try:
            after = keras.Model(sub_out, model.outputs[0])
        except ValueError:
            raise ValueError(f"the output of {model.name!r} does not depend on its sub-model {sub.name!r} "
                             "alone, so the sub-model's layers cannot be explained through it") from None

    def run(x):
        acts, s = inner(before(x, training=False) if before is not None else x)
        return acts, (after(s, training=False) if after is not None else s) if with_output else None

    return run


def _batch(images: np.ndarray, model: keras.Model) -> np.ndarray:
    """Images ``(H, W, C)`` or ``(N, H, W, C)`` as a float32 batch matching the model's input."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    expected = tuple(model.inputs[0].shape[1:])
    if x.ndim != 4 or any(e is not None and e != s for e, s in zip(expected, x.shape[1:])):
        raise ValueError(f"model {model.name!r} takes images of shape {expected}; got {np.asarray(images).shape}")
    return x.astype(np.float32)


# ---------------------------------------------------------------------------------------------
# Grad-CAM
# ---------------------------------------------------------------------------------------------

def gradcam_layer(model: keras.Model) -> str | None:
    """The layer Grad-CAM uses by default, as ``"name"`` or ``"sub_model/name"``; None when there is none.

    It is the last layer with a 4-D output that computes features (a convolution, normalisation,
    activation or merge such as squeeze-excite's multiply), looking into nested sub-models such as
    a transfer backbone. Pooling after it is skipped on purpose: it halves the map's resolution and
    adds nothing. Dense networks have no such layer. For an ensemble, the first member's layer.
    """
    members = ensemble_members(model)
    path = _last_feature_path(members[0] if members else model)
    return _qualified(path) if path else None


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

    x = _batch(images, model)
    members = ensemble_members(model)
    if members:
        cams = np.mean([gradcams(member, x, layer_name) for member in members], axis=0)
        return _scale_to_unit(cams)
    path = _find_path(model, layer_name) if layer_name else _last_feature_path(model)
    if not path:
        raise ValueError(f"model {model.name!r}: " + (
            f"no layer {layer_name!r}; layers: {', '.join(l.name for l in model.layers)}" if layer_name else
            "no convolutional layer with a spatial (4-D) output, so no Grad-CAM (a dense network: use LIME)"))
    if _rank(path[-1]) != 4:
        raise ValueError(f"model {model.name!r}: layer {_qualified(path)!r} has no 4-D (spatial) output")
    run = _probe(model, path[:-1], path[-1:])
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


# ---------------------------------------------------------------------------------------------
# feature maps
# ---------------------------------------------------------------------------------------------

def conv_layer_names(model: keras.Model) -> list[str]:
    """Convolution layers in graph order (``conv1, conv2, ...`` for our CNNs).

    A model without top-level convolutions (an ensemble, a transfer model) gives those of its
    first sub-model that has some, as ``"member1/conv1"``.
    """
    names = [layer.name for layer in model.layers if _is_conv(layer)]
    if names:
        return names
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = conv_layer_names(layer)
            if inner:
                return [f"{layer.name}/{name}" for name in inner]
    return []


def feature_maps(model: keras.Model, image: np.ndarray, layer_names: Sequence[str] | None = None) -> dict[str, np.ndarray]:
    """Activations of convolution layers for one uint8 image ``(H, W, C)``.

    Args:
        model: a Keras model.
        image: one image as the model takes it.
        layer_names: layers to read (names as in :func:`conv_layer_names`; all of one sub-model);
            default every convolution layer, in order.

    Returns:
        ``{name: float32 array (h, w, channels)}`` in the order of ``layer_names``.

    Raises:
        ValueError: no convolution layer, an unknown name, or names in different sub-models.
    """
    names = list(layer_names) if layer_names is not None else conv_layer_names(model)
    if not names:
        raise ValueError(f"model {model.name!r} has no convolution layer (a dense network has no feature maps)")
    paths = [_find_path(model, name) for name in names]
    for name, path in zip(names, paths):
        if not path:
            raise ValueError(f"model {model.name!r} has no layer {name!r}; its convolution layers: "
                             f"{', '.join(conv_layer_names(model)) or 'none'}")
    parents = paths[0][:-1]
    if any(path[:-1] != parents for path in paths):
        raise ValueError("feature_maps: all layers must sit in the same (sub-)model; got " + ", ".join(names))
    acts, _ = _probe(model, parents, [path[-1] for path in paths], with_output=False)(_batch(image, model)[:1])
    return {name: np.asarray(keras.ops.convert_to_numpy(a), dtype=np.float32)[0] for name, a in zip(names, acts)}


def active_channel(maps: Mapping[str, np.ndarray]) -> int:
    """A channel index alive in every layer: the one whose weakest mean activation over the layers is largest
    (channel 0 is often a dead ReLU in some layer, which makes a blank panel)."""
    channels = min(m.shape[-1] for m in maps.values())
    strength = np.min([np.abs(m[..., :channels]).mean(axis=(0, 1)) for m in maps.values()], axis=0)
    return int(np.argmax(strength))


# ---------------------------------------------------------------------------------------------
# LIME
# ---------------------------------------------------------------------------------------------

def predict_probabilities(model: keras.Model, images: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """Positive-class probabilities ``(N,)`` (float64), in batches, without Keras' predict loop."""
    x = np.asarray(images, dtype=np.float32)
    out = [keras.ops.convert_to_numpy(model(x[i:i + batch_size], training=False))
           for i in range(0, len(x), batch_size)]
    return np.concatenate(out).astype(np.float64).reshape(-1)


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
        p = predict_probabilities(model, x, batch_size)
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
    rgb = _to_rgb(_batch(image, model)[0]).astype(np.uint8)
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


# ---------------------------------------------------------------------------------------------
# errors and the models to explain
# ---------------------------------------------------------------------------------------------

def error_cases(predictions: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """False negatives and false positives at ``threshold``, most confident errors first.

    An image is called positive (label 1) when ``probability >= threshold`` (as in
    :mod:`medclf.evaluation.evaluate`). Confidence in the wrong answer is ``1 - probability`` for a false
    negative and ``probability`` for a false positive.

    Args:
        predictions: a predictions CSV (:func:`medclf.evaluation.results.load_predictions`).
        threshold: the record's validation-chosen threshold (``record["evaluation"]["threshold"]``).

    Returns:
        The misclassified rows with columns ``file, true_label, true_class, probability, error``
        (``"false negative"`` / ``"false positive"``) and ``wrong_confidence``: false negatives
        first, each kind sorted by ``wrong_confidence`` descending.

    Raises:
        ValueError: missing columns or a non-finite threshold.
    """
    missing = [c for c in PREDICTION_COLUMNS if c not in predictions.columns]
    if missing:
        raise ValueError(f"predictions lack column(s) {', '.join(missing)}; expected {', '.join(PREDICTION_COLUMNS)}")
    if not np.isfinite(threshold):
        raise ValueError(f"threshold must be a finite number; got {threshold!r}")
    frame = predictions[list(PREDICTION_COLUMNS)].copy()
    called = frame["probability"].to_numpy() >= threshold
    truth = frame["true_label"].to_numpy() == 1
    frame["error"] = np.where(truth & ~called, ERROR_KINDS[0], np.where(~truth & called, ERROR_KINDS[1], ""))
    frame = frame[frame["error"] != ""].copy()
    frame["wrong_confidence"] = np.where(frame["error"] == ERROR_KINDS[0], 1 - frame["probability"],
                                         frame["probability"])
    frame["kind_order"] = (frame["error"] == ERROR_KINDS[1]).astype(int)
    frame = frame.sort_values(["kind_order", "wrong_confidence", "file"], ascending=[True, False, True], kind="stable")
    return frame.drop(columns="kind_order").reset_index(drop=True)


def validation_auc(record: Mapping) -> float:
    """The record's validation ROC AUC on the rows that choose models (:func:`medclf.evaluation.results.selection_auc`;
    NaN when absent)."""
    value = results.selection_auc(record)
    return float("nan") if value is None else float(value)


def is_explainable(record: Mapping) -> bool:
    """A saved Keras model (``.keras``): the SVM and unsaved models are left out."""
    return str(record.get("model_file") or "").endswith(".keras")


def best_per_family(records: Sequence[Mapping]) -> dict[str, Mapping]:
    """Per family, the saved Keras model with the highest **validation** ROC AUC.

    Test metrics are never looked at: choosing what to show by test numbers would be choosing
    on the test set. Records without a ``.keras`` file (the SVM, ``save_models=false``) or
    without a validation AUC are skipped; ties keep the first record.

    Returns:
        ``{family: record}`` in order of first appearance.
    """
    best: dict[str, Mapping] = {}
    for record in records:
        auc = validation_auc(record)
        if not is_explainable(record) or math.isnan(auc):
            continue
        family = record["family"]
        if family not in best or auc > validation_auc(best[family]):
            best[family] = record
    return best


def comparison_pair(records: Sequence[Mapping]) -> list[Mapping]:
    """Two models to explain side by side, by validation AUC: the best of the two best families, or,
    with one family only, its two best models (fewer when there are fewer)."""
    champions = sorted(best_per_family(records).values(), key=validation_auc, reverse=True)
    if len(champions) >= 2:
        return champions[:2]
    ranked = sorted((r for r in records if is_explainable(r) and not math.isnan(validation_auc(r))),
                    key=validation_auc, reverse=True)
    return ranked[:2]


def selection_table(records: Sequence[Mapping]) -> pd.DataFrame:
    """Every record with its validation AUC and whether :func:`best_per_family` chose it (or why not)."""
    chosen = {r["model_id"] for r in best_per_family(records).values()}
    rows = []
    for record in records:
        reason = ("chosen" if record["model_id"] in chosen else
                  "no saved Keras model" if not is_explainable(record) else "lower validation AUC")
        rows.append({"family": record["family"], "model_id": record["model_id"],
                     "val_roc_auc": validation_auc(record), "threshold": record["evaluation"]["threshold"],
                     "image_size": record["spec"].get("image_size_used"),
                     "color_mode": record["spec"].get("color_mode"), "selection": reason})
    columns = ["family", "model_id", "val_roc_auc", "threshold", "image_size", "color_mode", "selection"]
    return pd.DataFrame(rows, columns=columns).sort_values(["family", "val_roc_auc"], ascending=[True, False],
                                                           ignore_index=True)


def load_model(record: Mapping, out_dir: str | Path) -> keras.Model:
    """The record's saved Keras model (``out_dir / record["model_file"]``), uncompiled.

    Raises:
        FileNotFoundError: the file is missing (the message says how to get it back).
        ValueError: the record has no Keras model file.
    """
    if not is_explainable(record):
        raise ValueError(f"record {record['model_id']!r} has no saved Keras model (model_file="
                         f"{record.get('model_file')!r}); only Keras models can be explained")
    path = Path(out_dir) / record["model_file"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: model file of record {record['model_id']!r} is missing; re-run the "
                                "notebook that trained it with save_models=true")
    return keras.models.load_model(path, compile=False)


def input_spec(record: Mapping) -> tuple[int, str]:
    """``(image_size, color_mode)`` the record's model takes (for :class:`medclf.training.experiment.DataCache`)."""
    return int(record["spec"]["image_size_used"]), str(record["spec"]["color_mode"])


def images_for(ds: Any, files: Sequence[str]) -> np.ndarray:
    """The decoded images of ``files`` (predictions' ``file`` = ``ds.frame["relpath"]``), in that order.

    Raises:
        ValueError: a file is not in the data set (the predictions come from other data).
    """
    index = pd.Series(np.arange(len(ds.frame)), index=ds.frame["relpath"].to_numpy())
    files = [str(f) for f in files]
    missing = [f for f in files if f not in index.index]
    if missing:
        raise ValueError(f"{len(missing)} predicted file(s) not in the loaded data set, e.g. {missing[0]!r}: the "
                         "records come from other data; re-run the notebook that wrote them")
    return ds.images[index.loc[files].to_numpy()]


@dataclass
class LoadedModel:
    """A trained model ready to explain: its record, the Keras model, its test predictions and the
    data set decoded at the model's input size and colour mode."""

    record: Mapping
    model: keras.Model
    predictions: pd.DataFrame
    dataset: Any

    @property
    def model_id(self) -> str:
        return self.record["model_id"]

    @property
    def threshold(self) -> float:
        """The decision threshold chosen on validation when the model was scored."""
        return float(self.record["evaluation"]["threshold"])

    def images(self, files: Sequence[str]) -> np.ndarray:
        """Input images of ``files`` as this model takes them."""
        return images_for(self.dataset, files)


def load_for_explanation(record: Mapping, params: dict, data: Any = None) -> LoadedModel:
    """Load a record's model, predictions and input images (from ``config.dataset_output_dir(params)``).

    Args:
        record: a result record with a ``.keras`` model file.
        params: the parameter set (``output_dir``, ``dataset`` and the data settings).
        data: a :class:`medclf.training.experiment.DataCache` shared between models (one decode per input size).
    """
    from medclf.config import paths as config
    from medclf.evaluation import results
    from medclf.training.experiment import DataCache

    out_dir = config.dataset_output_dir(params)
    data = data or DataCache(params)
    return LoadedModel(record, load_model(record, out_dir), results.load_predictions(out_dir, record["model_id"]),
                       data.get(*input_spec(record)))


def pick_examples(predictions: pd.DataFrame, per_class: int, seed: int) -> pd.DataFrame:
    """``per_class`` test images of each true class, drawn with ``seed`` (same files for every model).

    Returns:
        Rows of ``predictions`` (file, true_label, true_class, probability), by class then file.
    """
    picked = [group.sample(min(per_class, len(group)), random_state=seed)
              for _, group in predictions.groupby("true_label", sort=True)]
    if not picked:
        return predictions.iloc[:0]
    return pd.concat(picked).sort_values(["true_label", "file"], ignore_index=True)
