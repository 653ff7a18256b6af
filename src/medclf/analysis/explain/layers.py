"""Locating layers of a Keras model, also inside nested sub-models, and reading their activations.

Models as :mod:`medclf.models.builders` builds them: one ``image`` input of uint8-valued floats (rescaled
inside the model) and one sigmoid output, the probability of the positive class. Averaged ensembles
(:func:`medclf.models.builders.build_ensemble`) hold sub-models ``member1..n``; transfer models hold a
pretrained backbone as a nested sub-model. A layer is named ``"name"`` or ``"sub_model/name"``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np

#: Names :func:`medclf.models.builders.build_ensemble` gives its sub-models.
MEMBER_NAME = re.compile(r"^member\d+$")
#: Layer classes whose 4-D output is a feature map Grad-CAM may use (pooling and dropout are left
#: out: they only coarsen or copy the map before them).
_FEATURE_LAYER = re.compile(r"Conv|BatchNormalization|LayerNormalization|Activation|ReLU|ELU|Multiply|Add"
                            r"|Concatenate|Average|Maximum|Subtract")


def output_rank(layer: keras.layers.Layer) -> int | None:
    try:
        return len(layer.output.shape)
    except (AttributeError, ValueError):  # not built, or called more than once
        return None


def _is_feature_layer(layer: keras.layers.Layer) -> bool:
    kind = type(layer).__name__
    return (not isinstance(layer, keras.Model) and _FEATURE_LAYER.search(kind) is not None
            and "Pool" not in kind and output_rank(layer) == 4)


def is_conv(layer: keras.layers.Layer) -> bool:
    return "Conv" in type(layer).__name__ and output_rank(layer) == 4


def last_feature_path(model: keras.Model) -> list[keras.layers.Layer] | None:
    """``[sub-model, ..., layer]``: the last feature layer, looking into nested sub-models."""
    for layer in reversed(model.layers):
        if isinstance(layer, keras.Model):
            inner = last_feature_path(layer)
            if inner:
                return [layer, *inner]
        elif _is_feature_layer(layer):
            return [layer]
    return None


def find_path(model: keras.Model, name: str) -> list[keras.layers.Layer] | None:
    """Path to the layer called ``name`` (``"backbone/top_conv"`` or a bare name, searched depth-first)."""
    head, _, rest = name.partition("/")
    names = [layer.name for layer in model.layers]
    if rest:
        if head in names and isinstance(model.get_layer(head), keras.Model):
            inner = find_path(model.get_layer(head), rest)
            return [model.get_layer(head), *inner] if inner else None
        return None
    if name in names:
        return [model.get_layer(name)]
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            inner = find_path(layer, name)
            if inner:
                return [layer, *inner]
    return None


def qualified_name(path: Sequence[keras.layers.Layer]) -> str:
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


def activation_probe(model: keras.Model, parents: Sequence[keras.Model], targets: Sequence[keras.layers.Layer],
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
    inner = activation_probe(sub, parents[1:], targets, with_output)
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


def as_batch(images: np.ndarray, model: keras.Model) -> np.ndarray:
    """Images ``(H, W, C)`` or ``(N, H, W, C)`` as a float32 batch matching the model's input."""
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[None]
    expected = tuple(model.inputs[0].shape[1:])
    if x.ndim != 4 or any(e is not None and e != s for e, s in zip(expected, x.shape[1:])):
        raise ValueError(f"model {model.name!r} takes images of shape {expected}; got {np.asarray(images).shape}")
    return x.astype(np.float32)
