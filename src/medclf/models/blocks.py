"""Layer blocks shared by every Keras builder: input stem, convolution block, dense stack, squeeze-excite, sigmoid head.

Every Keras model of this workspace

* takes **uint8-valued pixels as float** (``keras.Input(shape=input_shape)``; the data arrives as
  uint8 0..255) and rescales them inside the model with ``Rescaling(1/255)`` (:func:`input_stem`), so a
  saved model carries its own preprocessing;
* ends in ``Dense(1, activation="sigmoid", dtype="float32")`` (:func:`sigmoid_head`): one probability
  of the positive (disease) class; ``float32`` keeps the output sane under ``mixed_bfloat16``;
* names its layers readably (``rescale``, ``conv1``, ``bn1``, ``act1``, ``drop1``, ``pool1``, ...,
  ``flatten`` / ``gap``, ``dense1``, ``dense_drop1``, ..., ``output``), so feature maps can be
  shown layer by layer.

Convolutions are 3×3 with ``"same"`` padding, pooling is 2×2 max with ``"same"`` padding (the
same shapes as the studies' ``"valid"`` pooling on their power-of-two inputs, and no collapse to
zero on small or odd ones). The layers are plain Keras layers, so a saved model loads with plain Keras.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import keras
from keras import layers

#: Negative slope of every LeakyReLU (S3: "LeakyReLU .1").
LEAKY_SLOPE = 0.1


@dataclass(frozen=True)
class ConvBlock:
    """One convolution block: conv 3×3 'same' → [BN] → activation → [dropout] → [BN] → [pool] → [dropout].

    Attributes:
        filters: number of convolution filters.
        activation: ``"relu"``, ``"swish"``, ``"leaky_relu"`` (slope :data:`LEAKY_SLOPE`) or any
            Keras activation name.
        batch_norm: ``None``; ``"before_activation"`` (conv → BN → act, S3); or
            ``"after_activation"`` (conv → act → [dropout] → BN, S0).
        dropout: dropout rate (0 = none).
        dropout_at: ``"after_activation"`` (S0: before the BN) or ``"after_pool"`` (S1).
        pool: end with 2×2 max pooling.
    """

    filters: int
    activation: str = "relu"
    batch_norm: str | None = None
    dropout: float = 0.0
    dropout_at: str = "after_pool"
    pool: bool = True

    def __post_init__(self) -> None:
        if self.batch_norm not in (None, "before_activation", "after_activation"):
            raise ValueError(f"batch_norm must be None, 'before_activation' or 'after_activation'; "
                             f"got {self.batch_norm!r}")
        if self.dropout_at not in ("after_activation", "after_pool"):
            raise ValueError(f"dropout_at must be 'after_activation' or 'after_pool'; got {self.dropout_at!r}")
        if self.dropout_at == "after_pool" and self.dropout and not self.pool:
            raise ValueError("dropout_at='after_pool' needs pool=True")


def activation_layer(kind: str, name: str) -> layers.Layer:
    """A standalone activation layer: ``LeakyReLU(LEAKY_SLOPE)`` for ``"leaky_relu"``, else ``Activation(kind)``."""
    if kind == "leaky_relu":
        return layers.LeakyReLU(negative_slope=LEAKY_SLOPE, name=name)
    return layers.Activation(kind, name=name)


def input_stem(input_shape: Sequence[int], flatten: bool = False) -> tuple[keras.KerasTensor, keras.KerasTensor]:
    """``(inputs, x)``: an ``image`` input of uint8-valued floats, rescaled to 0..1 [and flattened]."""
    inputs = keras.Input(shape=tuple(input_shape), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if flatten:
        x = layers.Flatten(name="flatten")(x)
    return inputs, x


def conv_block(x: keras.KerasTensor, block: ConvBlock, index: int) -> keras.KerasTensor:
    """Apply one :class:`ConvBlock`; its layers are named ``conv{i}``, ``bn{i}``, ``act{i}``, ``drop{i}``, ``pool{i}``.

    A plain activation (no BN before it, not LeakyReLU) is fused into the convolution as the
    studies wrote it, so ``conv{i}`` shows the activated feature maps.
    """
    fused = block.batch_norm != "before_activation" and block.activation != "leaky_relu"
    x = layers.Conv2D(block.filters, 3, padding="same", activation=block.activation if fused else None,
                      name=f"conv{index}")(x)
    if block.batch_norm == "before_activation":
        x = layers.BatchNormalization(name=f"bn{index}")(x)
    if not fused:
        x = activation_layer(block.activation, f"act{index}")(x)
    if block.dropout and block.dropout_at == "after_activation":
        x = layers.Dropout(block.dropout, name=f"drop{index}")(x)
    if block.batch_norm == "after_activation":
        x = layers.BatchNormalization(name=f"bn{index}")(x)
    if block.pool:
        x = layers.MaxPooling2D(2, padding="same", name=f"pool{index}")(x)
    if block.dropout and block.dropout_at == "after_pool":
        x = layers.Dropout(block.dropout, name=f"drop{index}")(x)
    return x


def dense_stack(x: keras.KerasTensor, units: Sequence[int], dropout: float = 0.0, l2: float = 0.0,
                activation: str = "relu") -> keras.KerasTensor:
    """Hidden dense layers ``dense1..n`` (each followed by ``dense_drop{i}`` when ``dropout``; L2 on kernels when ``l2``)."""
    regularizer = keras.regularizers.L2(l2) if l2 else None
    for i, n in enumerate(units, start=1):
        x = layers.Dense(n, activation=activation, kernel_regularizer=regularizer, name=f"dense{i}")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"dense_drop{i}")(x)
    return x


def squeeze_excite(x: keras.KerasTensor, ratio: int = 8) -> keras.KerasTensor:
    """Squeeze-and-excitation: channel weights from GAP → dense C/ratio relu → dense C sigmoid, multiplied in."""
    channels = x.shape[-1]
    s = layers.GlobalAveragePooling2D(keepdims=True, name="se_squeeze")(x)
    s = layers.Dense(max(channels // ratio, 1), activation="relu", name="se_reduce")(s)
    s = layers.Dense(channels, activation="sigmoid", name="se_expand")(s)
    return layers.Multiply(name="se_scale")([x, s])


def sigmoid_head(x: keras.KerasTensor) -> keras.KerasTensor:
    """The single float32 sigmoid output ``output``: probability of the positive class."""
    return layers.Dense(1, activation="sigmoid", dtype="float32", name="output")(x)
