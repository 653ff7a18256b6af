"""Fold inference-mode batch normalisation into the convolution before it, for frozen sub-models.

A frozen backbone's batch norm is a fixed per-channel affine map, ``gamma * (y - mean) / sqrt(var + eps)
+ beta``, applied to the output ``y`` of the convolution right before it. Folded into that
convolution's kernel and bias it costs nothing: the graph loses two element-wise passes (multiply,
add) over every activation map, and the convolution can fuse with its bias and activation. The
cached-feature pass of a frozen MobileNetV2 gets markedly cheaper (``docs/benchmarks.md``). The result
equals the original up to float rounding.

Only used where nothing below the cut trains: the cached-feature pass and the frozen lower part of
an augmented fine-tuning stage (see :mod:`medclf.training.transfer_fit`). Saved models keep the original layers.
"""

from __future__ import annotations

import numpy as np


def _foldable_pairs(model) -> dict[str, str]:
    """``{batch_norm_name: conv_name}`` for each batch norm (last axis, not training) fed only by a
    ``Conv2D`` or ``DepthwiseConv2D`` without activation whose output nothing else reads.

    Reads the graph through Keras' node bookkeeping (``_inbound_nodes``, ``_outbound_nodes``,
    ``_keras_history``): Keras 3 has no public API for a layer's consumers."""
    import keras

    convs = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)
    pairs = {}
    for layer in model.layers:
        if not isinstance(layer, keras.layers.BatchNormalization) or layer.trainable or len(layer._inbound_nodes) != 1:
            continue
        if layer.axis not in (-1, len(layer.input.shape) - 1):
            continue
        source = layer.input._keras_history.operation
        if (type(source) in convs and source.get_config()["activation"] == "linear"
                and len(source._inbound_nodes) == 1 and len(source._outbound_nodes) == 1):
            pairs[layer.name] = source.name
    return pairs


def _folded_weights(conv, bn) -> list[np.ndarray]:
    """``[kernel, bias]`` of ``conv`` followed by ``bn`` (inference mode) as one convolution."""
    import keras

    kernel = conv.kernel.numpy()
    mean, variance = bn.moving_mean.numpy(), bn.moving_variance.numpy()
    bias = conv.bias.numpy() if conv.use_bias else np.zeros_like(mean)  # one per output channel
    gamma = bn.gamma.numpy() if bn.scale else np.ones_like(mean)
    beta = bn.beta.numpy() if bn.center else np.zeros_like(mean)
    scale = gamma / np.sqrt(variance + bn.epsilon)
    # DepthwiseConv2D kernels are (h, w, channels, multiplier): output channel c * multiplier + m.
    kernel = kernel * scale.reshape(kernel.shape[-2:] if isinstance(conv, keras.layers.DepthwiseConv2D) else (-1,))
    return [kernel.astype(conv.kernel.dtype), ((bias - mean) * scale + beta).astype(conv.kernel.dtype)]


def fold_batch_norm(model):
    """A new functional model computing what ``model`` computes in inference mode, with every
    foldable batch norm merged into its convolution (the others copied as they are).

    ``model`` must be functional and is left unchanged; the copy shares no weights with it, so use
    it only where those weights do not train. Returns ``model`` itself when nothing folds.
    """
    import keras

    pairs = _foldable_pairs(model)
    if not pairs:
        return model
    bn_of_conv = {conv: bn for bn, conv in pairs.items()}

    def clone(layer):
        if layer.name in pairs:
            return layer  # never called: see ``call``
        config = layer.get_config()
        if layer.name in bn_of_conv:
            config["use_bias"] = True
        return layer.__class__.from_config(config)

    def call(layer, inputs, *args, **kwargs):
        return inputs if layer.name in pairs else layer(inputs, *args, **kwargs)  # a folded batch norm: gone

    copy = keras.models.clone_model(model, clone_function=clone, call_function=call)
    for layer in model.layers[1:]:
        if layer.name in pairs or not layer.weights:
            continue
        target = copy.get_layer(layer.name)
        if layer.name in bn_of_conv:
            target.set_weights(_folded_weights(layer, model.get_layer(bn_of_conv[layer.name])))
        else:
            target.set_weights(layer.get_weights())
    copy.trainable = False
    return copy
