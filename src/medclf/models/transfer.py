"""Transfer models: ImageNet backbones with the studies' heads, built as one flat graph, and where it can be cut.

A transfer model is built as **one flat functional graph** — ``image`` (uint8-valued floats) →
grayscale stem (channels repeated, or a learned 1→3 convolution) → the backbone's own
preprocessing (as layers, so a saved model carries it) → the backbone's layers → the head → one
float32 sigmoid. Being flat, any internal tensor can serve as the input of a sub-model
(:func:`split_at`, :func:`split_at_static`): every layer below the first one that trains (and below
any dropout) is static, so the training layer (:mod:`medclf.training.transfer_fit`) can compute
its output once per image and cache it, and train only the part above
the cut; the sub-model above the cut shares its layers with the full model. Batch normalisation
layers of the backbone stay frozen (:func:`unfreeze_top`), which in Keras 3 also means inference
mode (moving statistics, not batch statistics).

ImageNet weights come from Keras' cache (``$KERAS_HOME/models``, default ``~/.keras/models``) or
its download. A backbone whose ImageNet file depends on the input size (MobileNetV2: 96, 128, 160,
192, 224 px) falls back, when its own file can be neither found nor downloaded, to the 224-px file
in the cache: the convolution weights do not depend on the input size, so they load into any size
(one printed line says so, and :func:`weights_file` tells the record). When nothing works
:class:`WeightsUnavailable` names the file Keras expects and where to put it. There is no silent
fallback to random weights.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import keras
import numpy as np
from keras import layers

from medclf.models.blocks import ConvBlock, conv_block, dense_stack, sigmoid_head


@dataclass(frozen=True)
class Backbone:
    """A Keras application: its constructor (in ``keras.applications``) and its input preprocessing."""

    constructor: str
    preprocessing: str  # "tf" (-1..1), "caffe" (BGR minus ImageNet mean), "torch" (ImageNet z-score), "none"


BACKBONES: dict[str, Backbone] = {
    "vgg16": Backbone("VGG16", "caffe"),
    "vgg19": Backbone("VGG19", "caffe"),
    "xception": Backbone("Xception", "tf"),
    "resnet101": Backbone("ResNet101", "caffe"),
    "mobilenet_v2": Backbone("MobileNetV2", "tf"),
    "efficientnet_b0": Backbone("EfficientNetB0", "none"),  # rescales and normalises inside
    "densenet121": Backbone("DenseNet121", "torch"),
}
HEADS = ("gap", "flatten", "vgg19_conv")
GRAY_MODES = ("repeat", "conv")
_IMAGENET_MEAN_RGB = (123.68, 116.779, 103.939)
_IMAGENET_STD_RGB = (0.229, 0.224, 0.225)
_TORCH_MEAN_RGB = (0.485, 0.456, 0.406)


class WeightsUnavailable(RuntimeError):
    """ImageNet weights were asked for and neither Keras' cache nor its download could provide them."""


def keras_cache_dir() -> Path:
    """Where Keras looks for downloaded weights: ``$KERAS_HOME/models`` (default ``~/.keras/models``)."""
    return Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras") / "models"


def _check_choice(key: str, value: Any, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise ValueError(f"{key} must be one of {', '.join(allowed)}; got {value!r}")


# --------------------------------------------------------------------------------------------
# Building
# --------------------------------------------------------------------------------------------

def weights_argument(weights: str | None) -> str | None:
    """The ``weights`` param as Keras wants it: ``"imagenet"``, ``None`` (random) or an existing file path.

    Raises:
        ValueError: a path that does not exist.
    """
    if weights in (None, "none", "None", ""):
        return None
    if weights == "imagenet":
        return "imagenet"
    path = Path(weights).expanduser()
    if not path.is_file():
        raise ValueError(f"weights file {path} does not exist; set weights to imagenet, none, or the path of "
                         "a Keras weights file for this backbone (include_top=False)")
    return str(path)


#: ImageNet weights a backbone was built with in this process when they were not Keras' own file for
#: its size: ``{(backbone, (h, w)): path of the substitute}`` (see :func:`load_backbone`).
_SUBSTITUTES: dict[tuple[str, tuple[int, int]], str] = {}

#: The input size whose ImageNet file substitutes for a missing size-specific one.
SUBSTITUTE_SIZE = 224


def _substitute_file(file_name: str, input_shape: Sequence[int]) -> Path | None:
    """The cached ``SUBSTITUTE_SIZE``-px version of a size-specific ImageNet file Keras wants, if present.

    Keras names a size-specific file by its input size (``…_1.0_96_no_top.h5``); the same name with
    ``224`` is the same network's weights for 224-px input."""
    size_part = f"_{input_shape[0]}_no_top.h5"
    if input_shape[0] == SUBSTITUTE_SIZE or not file_name.endswith(size_part):
        return None
    candidate = keras_cache_dir() / (file_name[: -len(size_part)] + f"_{SUBSTITUTE_SIZE}_no_top.h5")
    return candidate if candidate.is_file() else None


def weights_file(name: str, input_shape: Sequence[int], weights: str | None) -> str | None:
    """The weights a backbone built by :func:`load_backbone` in this process started from, for the record:
    ``None`` (random), ``"imagenet"`` (Keras' own file for this input size), or a file path (the
    ``weights`` path given, or the 224-px ImageNet file that substituted for a missing size-specific one)."""
    weights = weights_argument(weights)
    if weights != "imagenet":
        return weights
    return _SUBSTITUTES.get((name, tuple(input_shape)[:2]), "imagenet")


def load_backbone(name: str, input_shape: Sequence[int], weights: str | None = "imagenet"):
    """``keras.applications.<Backbone>(include_top=False)`` on ``(h, w, 3)`` with ``weights``.

    With ``weights="imagenet"``, when Keras' file for this input size is neither cached nor
    downloadable but its 224-px file is cached, that file's weights are loaded (one line printed,
    :func:`weights_file` records it).

    Raises:
        WeightsUnavailable: ImageNet weights not in Keras' cache and not downloadable; the message
            names the file and the folder it belongs in.
    """
    _check_choice("backbone", name, list(BACKBONES))
    constructor = getattr(keras.applications, BACKBONES[name].constructor)
    weights = weights_argument(weights)
    size = tuple(input_shape)[:2]
    substitute = _SUBSTITUTES.get((name, size)) if weights == "imagenet" else None
    if substitute:  # decided before in this process: no second failed download
        return constructor(include_top=False, weights=substitute, input_shape=tuple(input_shape))
    try:
        return constructor(include_top=False, weights=weights, input_shape=tuple(input_shape))
    except Exception as exc:  # Keras raises a bare Exception("URL fetch failure on <url> ...") offline
        url = re.search(r"https?://\S+?\.h5", str(exc))
        if weights != "imagenet" or url is None:
            raise
        file_name = url.group(0).rsplit("/", 1)[-1]
        substitute_path = _substitute_file(file_name, input_shape)
        if substitute_path is not None:
            _SUBSTITUTES[(name, size)] = str(substitute_path)
            print(f"{name}: no ImageNet file for {size[0]}×{size[1]} px ({file_name} neither cached nor "
                  f"downloadable); using the {SUBSTITUTE_SIZE}-px file {substitute_path} (convolution weights "
                  "do not depend on the input size)", flush=True)
            return constructor(include_top=False, weights=str(substitute_path), input_shape=tuple(input_shape))
        raise WeightsUnavailable(
            f"ImageNet weights for {name} ({input_shape[0]}×{input_shape[1]}) are not available: Keras expects "
            f"{keras_cache_dir() / file_name} — download {url.group(0)} into {keras_cache_dir()} (or point "
            f"KERAS_HOME at a folder whose models/ holds it), or set weights=none or weights=<path>") from None


def _preprocess(x, mode: str):
    """The backbone's input preprocessing as layers (saved with the model)."""
    if mode == "tf":
        return layers.Rescaling(1 / 127.5, offset=-1, name="preprocess")(x)
    if mode == "torch":
        x = layers.Rescaling(1 / 255, name="preprocess_scale")(x)
        return layers.Normalization(mean=list(_TORCH_MEAN_RGB), variance=[s * s for s in _IMAGENET_STD_RGB],
                                    name="preprocess")(x)
    if mode == "caffe":
        # RGB → BGR and minus the ImageNet mean, as one fixed 1×1 convolution.
        kernel = np.zeros((1, 1, 3, 3), dtype="float32")
        for rgb in range(3):
            kernel[0, 0, rgb, 2 - rgb] = 1.0
        bias = -np.asarray(_IMAGENET_MEAN_RGB[::-1], dtype="float32")
        conv = layers.Conv2D(3, 1, name="preprocess", trainable=False,
                             kernel_initializer=keras.initializers.Constant(kernel),
                             bias_initializer=keras.initializers.Constant(bias))
        return conv(x)
    return x


def _stem(inputs, gray_mode: str):
    """Three channels from the input: as is (RGB), repeated (gray ``repeat``) or a learned 1→3 conv (``conv``).

    The learned convolution starts as the repeat (weights 1, bias 0), so training begins from the
    backbone's ImageNet behaviour.
    """
    if inputs.shape[-1] == 3:
        return inputs
    if gray_mode == "repeat":
        return layers.Concatenate(name="gray_to_rgb")([inputs, inputs, inputs])
    return layers.Conv2D(3, 1, kernel_initializer="ones", name="gray_to_rgb")(inputs)


def _head(x, head: str, dense: Sequence[int], dropout: float, head_dropout: float, batch_norm: bool):
    """The studies' heads on the backbone output, ending in the float32 sigmoid."""
    if batch_norm:  # S0: batch normalisation on the frozen backbone's output
        x = layers.BatchNormalization(name="head_bn")(x)
    if head == "vgg19_conv":  # S2: conv124-BN-pool ×2, conv64, conv64, conv32, flatten
        blocks = [ConvBlock(124, batch_norm="after_activation"), ConvBlock(124, batch_norm="after_activation"),
                  ConvBlock(64, pool=False), ConvBlock(64, pool=False), ConvBlock(32, pool=False)]
        for i, block in enumerate(blocks, start=1):
            x = conv_block(x, block, i)
        x = layers.Flatten(name="flatten")(x)
    elif head == "flatten":
        x = layers.Flatten(name="flatten")(x)
    else:
        x = layers.GlobalAveragePooling2D(name="gap")(x)
    if head_dropout:
        x = layers.Dropout(head_dropout, name="head_drop")(x)
    x = dense_stack(x, dense, dropout=dropout)
    return sigmoid_head(x)


def build_transfer(input_shape: Sequence[int], backbone: str, head: str = "gap", dense: Sequence[int] = (),
                   dropout: float = 0.0, head_dropout: float = 0.0, head_batch_norm: bool = False,
                   gray_mode: str = "repeat", weights: str | None = "imagenet", name: str = "transfer"):
    """A flat transfer model: image → stem → preprocessing → frozen ``backbone`` → head → sigmoid.

    Args:
        input_shape: ``(h, w, 1 or 3)`` of uint8-valued pixels.
        backbone: a key of :data:`BACKBONES`.
        head: ``"gap"`` (global average pooling), ``"flatten"``, or ``"vgg19_conv"`` (S2's conv head).
        dense: hidden dense units after the head (each followed by ``dropout``).
        dropout: dropout after each hidden dense layer.
        head_dropout: dropout right after GAP/flatten.
        head_batch_norm: batch normalisation on the backbone output (S0).
        gray_mode: for 1-channel input, ``"repeat"`` the channel or learn a 1×1 ``"conv"`` to 3.
        weights: ``"imagenet"``, ``"none"``/``None`` or a weights file path.
        name: model name.

    Returns:
        An uncompiled ``keras.Model`` whose backbone layers are frozen (``trainable=False``).
    """
    _check_choice("head", head, HEADS)
    _check_choice("gray_mode", gray_mode, GRAY_MODES)
    shape3 = (*tuple(input_shape)[:2], 3)
    reference = load_backbone(backbone, shape3, weights)
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = _preprocess(_stem(inputs, gray_mode), BACKBONES[backbone].preprocessing)
    application = getattr(keras.applications, BACKBONES[backbone].constructor)
    flat = application(include_top=False, weights=None, input_tensor=x)
    # The same constructor lays the layers out in the same order; unnamed layers get other
    # automatic names, so the loaded weights are copied by position.
    backbone = flat.layers[len(flat.layers) - (len(reference.layers) - 1):]
    for loaded, layer in zip(reference.layers[1:], backbone):
        layer.set_weights(loaded.get_weights())
        layer.trainable = False
    outputs = _head(flat.output, head, dense, dropout, head_dropout, head_batch_norm)
    model = keras.Model(inputs, outputs, name=name)
    model.backbone_layers = [layer.name for layer in backbone]
    return model


def backbone_layers(model) -> list:
    """The backbone's layers inside a model built by :func:`build_transfer` (also after loading it from disk)."""
    names = getattr(model, "backbone_layers", None)
    if names is None:  # a loaded model: everything between the preprocessing and the head
        head_start = next(i for i, layer in enumerate(model.layers) if layer.name in ("head_bn", "gap", "flatten", "conv1"))
        stem_end = max(i for i, layer in enumerate(model.layers)
                       if layer.name in ("image", "gray_to_rgb", "preprocess", "preprocess_scale"))
        return model.layers[stem_end + 1:head_start]
    return [model.get_layer(name) for name in names]


def unfreeze_top(model, n_layers: int) -> int:
    """Make the top ``n_layers`` backbone layers trainable; batch normalisation stays frozen (inference mode).

    Returns:
        The number of layers with weights that became trainable.
    """
    backbone = backbone_layers(model)
    count = 0
    for i, layer in enumerate(backbone):
        train_it = i >= len(backbone) - n_layers and not isinstance(layer, keras.layers.BatchNormalization)
        layer.trainable = train_it
        count += bool(train_it and layer.weights)
    return count


# --------------------------------------------------------------------------------------------
# The cut: where the static (cacheable) part of a model ends
# --------------------------------------------------------------------------------------------

def _is_static(layer) -> bool:
    """A layer whose output for an image is the same in every training step (no trainable weights, no noise)."""
    stochastic = (keras.layers.Dropout, keras.layers.SpatialDropout2D, keras.layers.GaussianNoise,
                  keras.layers.GaussianDropout)
    return not layer.trainable_weights and not isinstance(layer, stochastic)


def split_at_static(model):
    """``(lower, upper, cut_name)``: ``lower`` maps images to the last static tensor, ``upper`` maps it to the output.

    The cut is the output of the latest layer before the first non-static one (in the model's
    topological order) that separates the graph — i.e. ``keras.Model(cut, model.output)`` needs no
    other input (residual connections rule out cuts inside a block). ``upper`` shares its layers
    with ``model``: training it trains ``model``. ``lower`` is ``None`` when nothing is static.
    """
    first_dynamic = next((i for i, layer in enumerate(model.layers) if not _is_static(layer)), len(model.layers))
    for layer in reversed(model.layers[1:first_dynamic]):
        try:
            return (*split_at(model, layer.name), layer.name)
        except ValueError:
            continue
    return None, model, None


def split_at(model, cut: str):
    """``(lower, upper)`` sub-models meeting at the output of layer ``cut`` (sharing ``model``'s layers).

    Raises:
        ValueError: the graph above ``cut`` needs another tensor from below it (e.g. a residual).
    """
    output = model.get_layer(cut).output
    upper = keras.Model(output, model.output, name=f"{model.name}_above_{cut}")
    return keras.Model(model.input, output, name=f"{model.name}_to_{cut}"), upper


def has_static_base(model) -> bool:
    """Whether the layers right after the input are static (a cut below the trained part exists)."""
    return _is_static(model.layers[1])
