"""Feature maps: what the convolution layers ``conv1, conv2, ...`` of a model respond to, for one image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import keras
import numpy as np

from medclf.analysis.explain.layers import activation_probe, as_batch, find_path, is_conv


def conv_layer_names(model: keras.Model) -> list[str]:
    """Convolution layers in graph order (``conv1, conv2, ...`` for our CNNs).

    A model without top-level convolutions (an ensemble, a transfer model) gives those of its
    first sub-model that has some, as ``"member1/conv1"``.
    """
    names = [layer.name for layer in model.layers if is_conv(layer)]
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
    paths = [find_path(model, name) for name in names]
    for name, path in zip(names, paths):
        if not path:
            raise ValueError(f"model {model.name!r} has no layer {name!r}; its convolution layers: "
                             f"{', '.join(conv_layer_names(model)) or 'none'}")
    parents = paths[0][:-1]
    if any(path[:-1] != parents for path in paths):
        raise ValueError("feature_maps: all layers must sit in the same (sub-)model; got " + ", ".join(names))
    acts, _ = activation_probe(model, parents, [path[-1] for path in paths], with_output=False)(as_batch(image, model)[:1])
    return {name: np.asarray(keras.ops.convert_to_numpy(a), dtype=np.float32)[0] for name, a in zip(names, acts)}


def active_channel(maps: Mapping[str, np.ndarray]) -> int:
    """A channel index alive in every layer: the one whose weakest mean activation over the layers is largest
    (channel 0 is often a dead ReLU in some layer, which makes a blank panel)."""
    channels = min(m.shape[-1] for m in maps.values())
    strength = np.min([np.abs(m[..., :channels]).mean(axis=(0, 1)) for m in maps.values()], axis=0)
    return int(np.argmax(strength))
