"""Named model builders and the one registry of the models this workspace trains.

Each entry of :data:`MODELS` is a :class:`ModelSpec`: what the model is, how the study trained it
(input size, colour mode, optimizer, epochs, batch size, callbacks, augmentation) and what the
study reported (copied from ``docs/STUDIES.md``). ``spec.build(input_shape)`` returns a fresh,
uncompiled model; :func:`build_model` does the same from a spec or a name.

Every Keras model here

* takes **uint8-valued pixels as float** (``keras.Input(shape=input_shape)``; the data arrives as
  uint8 0..255) and rescales them inside the model with ``Rescaling(1/255)``, so a saved model
  carries its own preprocessing;
* ends in ``Dense(1, activation="sigmoid", dtype="float32")``: one probability of the positive
  (disease) class; ``float32`` keeps the output sane under ``mixed_bfloat16``. Where a study used
  two softmax outputs or logits (S3, S4) the single sigmoid is the equivalent binary head;
* names its layers readably (``rescale``, ``conv1``, ``bn1``, ``act1``, ``drop1``, ``pool1``, ...,
  ``flatten`` / ``gap``, ``dense1``, ``dense_drop1``, ..., ``output``), so feature maps can be
  shown layer by layer.

Convolutions are 3×3 with ``"same"`` padding, pooling is 2×2 max with ``"same"`` padding (the
same shapes as the studies' ``"valid"`` pooling on their power-of-two inputs, and no collapse to
zero on small or odd ones).

The architectures are declared, not written out: CNNs are lists of :class:`ConvBlock` handed to
:func:`build_cnn`, ANNs are hidden-unit tuples handed to :func:`build_ann`, and both share the
pieces :func:`input_stem`, :func:`dense_stack` and :func:`sigmoid_head`.

Example::

    spec = get_spec("cnn_deeper")
    model = build_model(spec, spec.input_shape())          # (128, 128, 3)
    model.compile(make_optimizer(spec.optimizer, spec.learning_rate), "binary_crossentropy")
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import keras
import numpy as np
from keras import layers
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC

from medclf.accel.fused_adam import FusedAdam
from medclf.accel.fused_bn import FusedBatchNormalization

FAMILIES = ("svm", "ann", "cnn", "transfer")
COLOR_MODES = ("grayscale", "rgb")
OPTIMIZERS = ("adam", "sgd", "rmsprop", "adamax")
#: Callback names the train module understands.
CALLBACKS = ("early_stopping", "reduce_lr", "step_decay", "two_target_stop", "checkpoint")
DATASETS = ("chest_xray", "malaria")
STUDIES = ("S0", "S1", "S2", "S3", "S4")
#: Negative slope of every LeakyReLU (S3: "LeakyReLU .1").
LEAKY_SLOPE = 0.1


# --------------------------------------------------------------------------------------------
# The registry entry
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """One named model: architecture, the study's training recipe and its reported result.

    Attributes:
        name: registry key; says what the model is.
        family: ``"svm"``, ``"ann"`` or ``"cnn"``.
        description: one line, the architecture as built here.
        image_size: input side the study used (the default; params may override it).
        color_mode: ``"grayscale"`` or ``"rgb"``.
        optimizer: ``"adam"``, ``"sgd"``, ``"rmsprop"`` or ``"adamax"`` (see :func:`make_optimizer`).
        learning_rate: initial learning rate.
        epochs: the study's epoch budget (early stopping may stop sooner); 0 for the SVM (one fit).
        batch_size: training batch size; 0 for the SVM (fits on all data at once).
        callbacks: names from :data:`CALLBACKS`, built by the train module.
        augmentation: the random transforms the study trained with, as a mapping for
            :func:`medclf.data.augment.build_augmenter` (``None``: no augmentation). ImageDataGenerator
            settings are translated to Keras layer factors (rotation degrees / 360).
        study: ``"S0"`` .. ``"S4"``, or ``None`` for our own models.
        reported: the study's reported test numbers, exactly as in ``docs/STUDIES.md``
            (``accuracy``, and where given ``normal_recall``, ``pneumonia_recall``, ``test_errors``);
            ``None`` for our own models.
        dataset: ``"chest_xray"``, ``"malaria"``, or ``None`` (suits either).
        ensemble: train this many copies (seeds ``seed``, ``seed + 1``, ...) and average their
            probabilities (:func:`build_ensemble`).
        backbone: transfer models: the Keras application (a key of ``medclf.models.transfer.BACKBONES``).
        gray_mode: transfer models on grayscale input: ``"repeat"`` the channel or learn a 1→3 ``"conv"``.
        fine_tune: transfer models: after training the head, unfreeze this many top backbone layers
            (0: the backbone stays frozen).
        tta_views: test-time augmentation: also score this many random variants of each image, drawn
            from ``augmentation``, and average (0: off). Kept only if it raises the validation ROC AUC
            (:mod:`medclf.evaluation.tta`); a run trained without augmentation scores plainly.
        build: ``build(input_shape) -> keras.Model`` (uncompiled); for the SVM it returns an unfitted
            sklearn estimator.

    Raises:
        ValueError: a field outside its allowed values (checked on construction).
    """

    name: str
    family: str
    description: str
    image_size: int
    color_mode: str
    optimizer: str
    learning_rate: float
    epochs: int
    batch_size: int
    callbacks: tuple[str, ...]
    augmentation: dict | None = None
    study: str | None = None
    reported: dict | None = None
    dataset: str | None = None
    ensemble: int = 1
    backbone: str | None = None
    gray_mode: str = "repeat"
    fine_tune: int = 0
    tta_views: int = 0
    build: Callable[..., Any] = field(repr=False, compare=False, kw_only=True)

    def __post_init__(self) -> None:
        checks = [("family", self.family, FAMILIES), ("color_mode", self.color_mode, COLOR_MODES),
                  ("optimizer", self.optimizer, OPTIMIZERS), ("study", self.study, STUDIES + (None,)),
                  ("dataset", self.dataset, DATASETS + (None,))]
        checks += [("callbacks", name, CALLBACKS) for name in self.callbacks]
        for key, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"model {self.name!r}: {key} must be one of "
                                 f"{', '.join(map(str, allowed))}; got {value!r}")
        if self.image_size <= 0 or self.learning_rate <= 0:
            raise ValueError(f"model {self.name!r}: image_size and learning_rate must be positive")
        if self.tta_views < 0 or (self.tta_views and not self.augmentation):
            raise ValueError(f"model {self.name!r}: tta_views must be 0, or positive with an augmentation to draw from")
        if (self.study is None) != (self.reported is None):
            raise ValueError(f"model {self.name!r}: study models carry reported numbers, ours do not")

    @property
    def augment(self) -> bool:
        """The model is trained with augmentation."""
        return bool(self.augmentation)

    @property
    def channels(self) -> int:
        """1 for grayscale, 3 for rgb."""
        return 1 if self.color_mode == "grayscale" else 3

    def input_shape(self, image_size: int | None = None) -> tuple[int, int, int]:
        """``(size, size, channels)``, with the study's size unless ``image_size`` is given."""
        size = self.image_size if image_size is None else int(image_size)
        return (size, size, self.channels)


# --------------------------------------------------------------------------------------------
# Shared building pieces
# --------------------------------------------------------------------------------------------

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
        x = FusedBatchNormalization(name=f"bn{index}")(x)
    if not fused:
        x = activation_layer(block.activation, f"act{index}")(x)
    if block.dropout and block.dropout_at == "after_activation":
        x = layers.Dropout(block.dropout, name=f"drop{index}")(x)
    if block.batch_norm == "after_activation":
        x = FusedBatchNormalization(name=f"bn{index}")(x)
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


# --------------------------------------------------------------------------------------------
# Builders
# --------------------------------------------------------------------------------------------

def build_ann(input_shape: Sequence[int], hidden: Sequence[int], dropout: float = 0.0, l2: float = 0.0,
              name: str = "ann") -> keras.Model:
    """Fully connected net on the flattened, rescaled image: ``hidden`` relu layers, then the sigmoid."""
    inputs, x = input_stem(input_shape, flatten=True)
    x = dense_stack(x, hidden, dropout=dropout, l2=l2)
    return keras.Model(inputs, sigmoid_head(x), name=name)


def build_cnn(input_shape: Sequence[int], blocks: Sequence[ConvBlock], head: str = "flatten",
              dense: Sequence[int] = (), dense_dropout: float = 0.0, se_ratio: int | None = None,
              head_dropout: float = 0.0, name: str = "cnn") -> keras.Model:
    """Convolution blocks → [squeeze-excite] → flatten or GAP → [``head_drop``] → dense stack → sigmoid.

    Args:
        input_shape: ``(height, width, channels)``.
        blocks: the convolution blocks, in order.
        head: ``"flatten"`` or ``"gap"`` (global average pooling).
        dense: hidden dense units after the head.
        dense_dropout: dropout after each hidden dense layer.
        se_ratio: add a squeeze-excite block after the last convolution block with this ratio.
        head_dropout: dropout right after flatten/GAP.
        name: model name.

    Returns:
        An uncompiled ``keras.Model``.

    Raises:
        ValueError: unknown ``head`` or no blocks.
    """
    if head not in ("flatten", "gap"):
        raise ValueError(f"head must be 'flatten' or 'gap'; got {head!r}")
    if not blocks:
        raise ValueError("a CNN needs at least one ConvBlock")
    inputs, x = input_stem(input_shape)
    for i, block in enumerate(blocks, start=1):
        x = conv_block(x, block, i)
    if se_ratio:
        x = squeeze_excite(x, se_ratio)
    x = layers.Flatten(name="flatten")(x) if head == "flatten" else layers.GlobalAveragePooling2D(name="gap")(x)
    if head_dropout:
        x = layers.Dropout(head_dropout, name="head_drop")(x)
    x = dense_stack(x, dense, dropout=dense_dropout)
    return keras.Model(inputs, sigmoid_head(x), name=name)


def build_compact_cnn(input_shape: Sequence[int], filters: Sequence[int] = (16, 32, 64, 128, 256),
                      dropout: float = 0.3, dense: Sequence[int] = (), batch_norm: str | None = None,
                      name: str = "compact_cnn") -> keras.Model:
    """Our own CNN: one conv-relu-pool block per entry of ``filters``, GAP, dropout, [dense], sigmoid.

    Small on purpose and cheap per image: pooling after every conv keeps the cost of each block
    about equal. No batch normalisation by default: on this CPU a (then unfused) Keras BatchNormalization layer
    costs more than the convolutions around it (measured: 16-32-64-128 at 128² trains at 1.5
    ms/image without BN, 10.6 with it, in mixed_bfloat16), and five blocks train well without it.
    """
    blocks = [ConvBlock(f, batch_norm=batch_norm) for f in filters]
    return build_cnn(input_shape, blocks, head="gap", head_dropout=dropout, dense=dense,
                     dense_dropout=dropout, name=name)


def build_ensemble(members: Sequence[keras.Model], name: str = "ensemble") -> keras.Model:
    """One model averaging the probabilities of ``members`` (same input shape), saved as one file."""
    inputs = keras.Input(shape=members[0].input_shape[1:], name="image")
    for i, member in enumerate(members, start=1):
        member.name = f"member{i}"  # sub-models need unique names inside one model
    outputs = [member(inputs) for member in members]
    averaged = layers.Average(name="mean_probability", dtype="float32")(outputs)
    return keras.Model(inputs, averaged, name=name)


def _flatten_scaled(x: Any, input_shape: tuple[int, ...]) -> np.ndarray:
    """Images ``(N, *input_shape)`` (uint8 0..255) → float32 rows ``(N, prod(input_shape))`` in 0..1."""
    x = np.asarray(x)
    if x.shape[1:] != tuple(input_shape):
        raise ValueError(f"SVM pipeline built for images of shape {tuple(input_shape)}; got {x.shape[1:]}")
    return x.reshape(len(x), -1).astype(np.float32) / 255.0


def build_svm(input_shape: Sequence[int]) -> Pipeline:
    """S4's SVM: a pipeline ``flatten`` (reshape to rows, /255) → ``svc`` (``SVC()`` defaults, RBF kernel).

    It has no probability output: it scores with ``decision_function`` (signed distance to the
    margin, > 0 for the positive class); the train module maps that score to a probability-like
    value in 0..1 with a sigmoid, so thresholds and ROC curves treat it like the networks.
    """
    flatten = FunctionTransformer(_flatten_scaled, kw_args={"input_shape": tuple(int(s) for s in input_shape)})
    return Pipeline([("flatten", flatten), ("svc", SVC())])


# --------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------

_CHEST = "chest_xray"
_MALARIA = "malaria"


def _spec(name: str, family: str, description: str, build: Callable[..., Any], **fields: Any) -> ModelSpec:
    """A ModelSpec whose Keras builder is named after the registry key."""
    if family != "svm":
        build = partial(build, name=name)
    return ModelSpec(name=name, family=family, description=description, build=build, **fields)


# S1: 128×128 RGB, flattened for the ANNs; Adam 1e-3, batch 44; early stopping for the deep ones.
_S1 = dict(image_size=128, color_mode="rgb", optimizer="adam", learning_rate=1e-3, epochs=100,
           batch_size=44, study="S1", dataset=_CHEST)
_S1_DEEP = (256, 128, 64, 32, 10)
_S1_DEEPER_CNN = [ConvBlock(32), ConvBlock(64), ConvBlock(128)]
# S3: 64×64 RGB malaria cells; Adam, ≤20 epochs, batch 100, early stop + checkpoint.
_S3 = dict(image_size=64, color_mode="rgb", optimizer="adam", learning_rate=1e-3, epochs=20, batch_size=100,
           callbacks=("early_stopping", "checkpoint"), study="S3", dataset=_MALARIA)
_S3_MODEL2 = [ConvBlock(32, "leaky_relu"), ConvBlock(64, "swish"), ConvBlock(128, "leaky_relu", pool=False)]
_S3_MODEL3 = [dataclasses.replace(b, batch_norm="before_activation") for b in _S3_MODEL2] + [
    ConvBlock(128, "leaky_relu", batch_norm="before_activation", pool=False)]
# Ours: early stopping + LR on plateau, augmentation; someone tunes these (see build_compact_cnn).
_OURS = dict(optimizer="adam", learning_rate=1e-3, epochs=30, batch_size=32,
             callbacks=("early_stopping", "reduce_lr"))
# Augmentation as the studies set it (ImageDataGenerator degrees → Keras fractions of a turn).
# ImageDataGenerator's shear_range is an angle in degrees; Keras' RandomShear takes the shear factor
# tan(angle): S4's 0.2 and S1's 0.3 are tiny shears (kept faithful, not "fixed"). Its zoom_range
# draws width and height zooms independently (zoom_xy); S0's Keras RandomZoom keeps the aspect (zoom).
_S4_AUG = {"shear": round(math.tan(math.radians(0.2)), 5), "zoom_xy": 0.2, "flip": "horizontal"}
_S0_AUG = {"flip": "horizontal", "rotation": 0.3, "zoom": 0.2, "translation": 0.1}
_S1_AUG = {"rotation": 40 / 360, "translation": 0.2, "shear": round(math.tan(math.radians(0.3)), 5), "zoom_xy": 0.1}
# Ours, chest X-ray: the images were squashed to 224×224 upstream (aspect ratio lost; see the data
# README), so the squash is a nuisance tied to each source image's shape, not to anatomy: ±15% zoom
# per axis (aspect 0.74–1.35, covering the originals' ~1.25–1.64 around their mean) keeps a model from
# relying on it. Fixed a priori from the data's documented history, not chosen on any score.
# Plus ±35% zoom of both axes alike: in the training images pneumonia films are framed more tightly than
# normal ones, and models read that framing (medclf.evaluation.framing; validation only, cnn_ours_chest seed 0, 2026-11-23):
# cropping validation images to their central 85% raised the normal images called pneumonia from 0.059 to
# 0.437 (+0.378) without this zoom, +0.096 with ±20%, +0.007 with ±35% (validation AUC of the selection rows
# 0.9838 / 0.9796 / 0.9787, inside one another's intervals). Chosen on those validation numbers alone.
_CHEST_AUG = {"rotation": 0.03, "zoom": 0.35, "zoom_xy": 0.15, "translation": 0.05, "brightness": 0.1,
              "contrast": 0.2}
_MALARIA_AUG = {"flip": "horizontal_and_vertical", "rotation": 0.5, "brightness": 0.1, "contrast": 0.2}

_SPECS = [
    # ---- S4: SVM on raw pixels, and a two-conv CNN --------------------------------------------
    _spec("svm_pixels", "svm", "flatten 50×50 gray pixels /255 → SVC() defaults (RBF); scored by decision_function",
          build_svm, image_size=50, color_mode="grayscale", optimizer="adam", learning_rate=1e-3, epochs=0,
          batch_size=0, callbacks=(), study="S4", dataset=_CHEST,
          reported={"accuracy": 0.7644, "normal_recall": 0.39, "pneumonia_recall": 0.99}),
    _spec("cnn_2conv_64", "cnn", "conv32-pool-conv64-pool-flatten-dense64 → sigmoid (the study: 10 logits)",
          partial(build_cnn, blocks=[ConvBlock(32), ConvBlock(64)], dense=(64,)),
          image_size=64, color_mode="rgb", optimizer="adam", learning_rate=1e-3, epochs=25, batch_size=32,
          callbacks=(), augmentation=_S4_AUG, study="S4", dataset=_CHEST, reported={"accuracy": 0.9263}),
    # ---- S1: ANNs on flattened 128×128×3 -----------------------------------------------------
    _spec("ann_10_adam", "ann", "flatten-dense10 → sigmoid; Adam",
          partial(build_ann, hidden=(10,)), callbacks=(), **_S1,
          reported={"accuracy": 0.814, "normal_recall": 0.52}),
    # optimizer="sgd" in Keras means SGD(learning_rate=0.01).
    _spec("ann_10_sgd", "ann", "flatten-dense10 → sigmoid; SGD",
          partial(build_ann, hidden=(10,)), callbacks=(), **{**_S1, "optimizer": "sgd", "learning_rate": 1e-2},
          reported={"accuracy": 0.7885}),
    _spec("ann_deep", "ann", "flatten-dense256-128-64-32-10 (relu) → sigmoid",
          partial(build_ann, hidden=_S1_DEEP), callbacks=("early_stopping",), **_S1,
          reported={"accuracy": 0.891, "normal_recall": 0.80, "pneumonia_recall": 0.95}),
    # "all pneumonia": every test image predicted pneumonia (390 / 624 = 0.625).
    _spec("ann_deep_dropout", "ann", "flatten-dense256-128-64-32-10 (relu), dropout 0.3 after each → sigmoid",
          partial(build_ann, hidden=_S1_DEEP, dropout=0.3), callbacks=("early_stopping",), **_S1,
          reported={"accuracy": 0.625, "normal_recall": 0.0, "pneumonia_recall": 1.0}),
    _spec("ann_deep_l2", "ann", "flatten-dense256-128-64-32-10 (relu), L2 0.005 on each → sigmoid",
          partial(build_ann, hidden=_S1_DEEP, l2=0.005), callbacks=("early_stopping",), **_S1,
          reported={"accuracy": 0.8606}),
    _spec("ann_deep_lr5e-4", "ann", "flatten-dense256-128-64-32-10 (relu) → sigmoid; Adam lr 5e-4",
          partial(build_ann, hidden=_S1_DEEP), callbacks=("early_stopping",), **{**_S1, "learning_rate": 5e-4},
          reported={"accuracy": 0.851}),
    # ---- S1: CNNs; the study's best (0.9071) is the deeper CNN trained with augmentation ------
    _spec("cnn_baseline_8", "cnn", "conv8-pool-flatten-dense8 → sigmoid",
          partial(build_cnn, blocks=[ConvBlock(8)], dense=(8,)), callbacks=("early_stopping",), **_S1,
          reported={"accuracy": 0.625, "normal_recall": 0.0, "pneumonia_recall": 1.0}),
    _spec("cnn_deeper", "cnn", "conv32-pool-conv64-pool-conv128-pool-flatten-dense128-dense64 → sigmoid",
          partial(build_cnn, blocks=_S1_DEEPER_CNN, dense=(128, 64)), callbacks=("early_stopping",), **_S1,
          reported={"accuracy": 0.8446, "normal_recall": 0.60, "pneumonia_recall": 0.99}),
    _spec("cnn_deeper_aug", "cnn", "cnn_deeper trained with augmentation (rotation 40°, shift .2, shear .3, zoom .1)",
          partial(build_cnn, blocks=_S1_DEEPER_CNN, dense=(128, 64)), callbacks=("early_stopping",),
          augmentation=_S1_AUG, **_S1, reported={"accuracy": 0.9071, "normal_recall": 0.76, "pneumonia_recall": 0.99}),
    _spec("cnn_deeper_dropout", "cnn",
          "conv32-pool-drop.3-conv64-pool-drop.3-conv128-pool-drop.3-flatten-dense128-drop.1-dense64-drop.1 → sigmoid",
          partial(build_cnn, blocks=[dataclasses.replace(b, dropout=0.3) for b in _S1_DEEPER_CNN],
                  dense=(128, 64), dense_dropout=0.1),
          callbacks=("early_stopping",), **_S1, reported={"accuracy": 0.8413}),
    # ---- S0: five conv-BN blocks on 224 grayscale -------------------------------------------
    _spec("cnn_bn5", "cnn", "conv32-BN-pool, conv64-drop.1-BN-pool, conv64-BN-pool, conv128-drop.2-BN-pool, "
                            "conv256-drop.2-BN-pool, flatten, dense128-drop.2 → sigmoid",
          partial(build_cnn, blocks=[ConvBlock(f, batch_norm="after_activation", dropout=d, dropout_at="after_activation")
                                     for f, d in [(32, 0.0), (64, 0.1), (64, 0.0), (128, 0.2), (256, 0.2)]],
                  dense=(128,), dense_dropout=0.2),
          image_size=224, color_mode="grayscale", optimizer="rmsprop", learning_rate=1e-3, epochs=50,
          batch_size=32, callbacks=("reduce_lr", "early_stopping"), augmentation=_S0_AUG, study="S0", dataset=_CHEST,
          reported={"accuracy": 0.8910, "normal_recall": 0.74, "pneumonia_recall": 0.98}),
    # ---- S3: malaria cells (the study's softmax2 heads become one sigmoid) --------------------
    _spec("malaria_cnn_base", "cnn", "conv32-pool-conv64-pool-conv64-flatten-dense64 → sigmoid",
          partial(build_cnn, blocks=[ConvBlock(32), ConvBlock(64), ConvBlock(64, pool=False)], dense=(64,)),
          **_S3, reported={"accuracy": 0.9808, "test_errors": 50}),
    _spec("malaria_cnn_leaky_gap", "cnn",
          "conv32-leaky.1-pool, conv64-swish-pool, conv128-leaky.1, GAP, dense128-drop.5 → sigmoid",
          partial(build_cnn, blocks=_S3_MODEL2, head="gap", dense=(128,), dense_dropout=0.5),
          **_S3, reported={"accuracy": 0.9765}),
    _spec("malaria_cnn_se", "cnn",
          "conv32-BN-leaky.1-pool, conv64-BN-swish-pool, conv128-BN-leaky.1, conv128-BN-leaky.1, "
          "squeeze-excite /8, GAP, dense128-drop.5-dense64-drop.5 → sigmoid",
          partial(build_cnn, blocks=_S3_MODEL3, head="gap", se_ratio=8, dense=(128, 64), dense_dropout=0.5),
          **_S3, reported={"accuracy": 0.9846, "test_errors": 40}),
    # ---- Ours: a working default, to be tuned (keep build_compact_cnn parameterised) ----------
    _spec("cnn_ours_chest", "cnn", "OURS: 5× conv-relu-pool (16-32-64-128-256), GAP, drop.3 → sigmoid; "
          "augmentation, class weights", build_compact_cnn, image_size=128, color_mode="grayscale", dataset=_CHEST,
          augmentation=_CHEST_AUG, **_OURS),
    _spec("cnn_ours_chest_ensemble", "cnn", "OURS: mean of 3 cnn_ours_chest trained with seeds seed..seed+2; "
          "4-view test-time augmentation if it helps on validation",
          build_compact_cnn, image_size=128, color_mode="grayscale", dataset=_CHEST, augmentation=_CHEST_AUG,
          ensemble=3, tta_views=4, **_OURS),
    _spec("cnn_ours_malaria", "cnn", "OURS: 4× conv-relu-pool (32-64-128-256), GAP, drop.3 → sigmoid; "
          "augmentation, class weights", partial(build_compact_cnn, filters=(32, 64, 128, 256)), image_size=64,
          color_mode="rgb", dataset=_MALARIA, augmentation=_MALARIA_AUG, **_OURS),
]


def _build_transfer(input_shape: Sequence[int], **kwargs: Any) -> keras.Model:
    """Deferred import: the transfer module builds on this one."""
    from medclf.models.transfer import build_transfer

    return build_transfer(input_shape, **kwargs)


def _transfer(name: str, description: str, backbone: str, *, head: str = "gap", dense: Sequence[int] = (),
              dropout: float = 0.0, head_dropout: float = 0.0, head_batch_norm: bool = False,
              gray_mode: str = "repeat", **fields: Any) -> ModelSpec:
    """A transfer ModelSpec: the builder gets the head settings, the spec records backbone and stem."""
    build = partial(_build_transfer, backbone=backbone, head=head, dense=tuple(dense), dropout=dropout,
                    head_dropout=head_dropout, head_batch_norm=head_batch_norm, gray_mode=gray_mode)
    return _spec(name, "transfer", description, build, backbone=backbone, gray_mode=gray_mode, **fields)


# S1: 128×128 RGB Keras applications, frozen; Adam; the deeper head dense128-drop.4-dense64-drop.4.
_S1_TRANSFER = dict(image_size=128, color_mode="rgb", optimizer="adam", learning_rate=1e-3, epochs=30,
                    batch_size=44, callbacks=("early_stopping",), study="S1", dataset=_CHEST)
_S1_HEAD = dict(dense=(128, 64), dropout=0.4)
_S2_AUG = {"rotation": 30 / 360, "zoom_xy": 0.2, "translation": 0.1, "flip": "horizontal"}
# Ours: MobileNetV2 (the ImageNet backbone available offline here), head then top layers fine-tuned.
_OURS_TRANSFER = dict(optimizer="adam", learning_rate=1e-3, epochs=15, batch_size=32,
                      callbacks=("early_stopping", "reduce_lr"))

_CHEST_FINETUNE_AUG = dict(backbone="mobilenet_v2", head_dropout=0.2, fine_tune=80, image_size=224,
                           color_mode="grayscale", dataset=_CHEST, augmentation=_CHEST_AUG, tta_views=4,
                           **_OURS_TRANSFER)

_SPECS += [
    _transfer("xception_frozen", "S1: frozen Xception (ImageNet), GAP → sigmoid", "xception",
              reported={"accuracy": 0.8702}, **_S1_TRANSFER),
    _transfer("xception_head", "S1: frozen Xception, GAP, dense128-drop.4-dense64-drop.4 → sigmoid", "xception",
              reported={"accuracy": 0.8558}, **_S1_HEAD, **_S1_TRANSFER),
    _transfer("resnet101_frozen", "S1: frozen ResNet101 (ImageNet), GAP → sigmoid", "resnet101",
              reported={"accuracy": 0.8333}, **_S1_TRANSFER),
    _transfer("xception_aug", "S1: frozen Xception, GAP → sigmoid; augmentation", "xception",
              augmentation=_S1_AUG, reported={"accuracy": 0.8622}, **_S1_TRANSFER),
    _transfer("xception_head_aug", "S1: frozen Xception + deeper head; augmentation", "xception",
              augmentation=_S1_AUG, reported={"accuracy": 0.9022, "normal_recall": 0.81, "pneumonia_recall": 0.96},
              **_S1_HEAD, **_S1_TRANSFER),
    _transfer("vgg19_s0", "S0: learned conv 1→3, frozen VGG19, BN, flatten, drop.45, dense800-130 (drop.25) → "
              "sigmoid; augmentation", "vgg19", head="flatten", head_batch_norm=True, head_dropout=0.45,
              dense=(800, 130), dropout=0.25, gray_mode="conv", image_size=224, color_mode="grayscale",
              optimizer="adamax", learning_rate=1e-3, epochs=50, batch_size=32,
              callbacks=("early_stopping", "reduce_lr"), augmentation=_S0_AUG, study="S0", dataset=_CHEST,
              reported={"accuracy": 0.8846, "normal_recall": 0.88, "pneumonia_recall": 0.89}),
    _transfer("vgg19_conv_head", "S2: frozen VGG19 300², conv124-BN-pool ×2, conv64-64-32, flatten, "
              "dense1024×3, drop.5 → sigmoid; two-target stop; augmentation", "vgg19", head="vgg19_conv",
              dense=(1024, 1024, 1024), head_dropout=0.0, dropout=0.0, image_size=300, color_mode="rgb",
              optimizer="adam", learning_rate=2e-3, epochs=30, batch_size=32,
              callbacks=("two_target_stop", "step_decay"), augmentation=_S2_AUG, study="S2", dataset=_CHEST,
              reported={"accuracy": 0.8659, "pneumonia_recall": 0.9859}),
    _transfer("vgg16_frozen", "S3: frozen VGG16 64², GAP, dense128, drop.5 → sigmoid", "vgg16", dense=(128,),
              dropout=0.5, image_size=64, color_mode="rgb", optimizer="adam", learning_rate=1e-3, epochs=20,
              batch_size=100, callbacks=("early_stopping", "checkpoint"), study="S3", dataset=_MALARIA,
              reported={"accuracy": 0.9523}),
    _transfer("mobilenet_v2_frozen", "OURS: frozen MobileNetV2 (ImageNet), GAP, drop.2 → sigmoid (head only)",
              "mobilenet_v2", head_dropout=0.2, image_size=224, color_mode="grayscale", dataset=_CHEST,
              **_OURS_TRANSFER),
    _transfer("mobilenet_v2_finetune", "OURS: MobileNetV2 (ImageNet), GAP, drop.2 → sigmoid; head, then the top "
              "layers fine-tuned (BN frozen)", "mobilenet_v2", head_dropout=0.2, fine_tune=40, image_size=224,
              color_mode="grayscale", dataset=_CHEST, **_OURS_TRANSFER),
    _transfer("mobilenet_v2_finetune_aug", "OURS: MobileNetV2 (ImageNet), GAP, drop.2 → sigmoid; head on cached "
              "features, then the top 80 layers fine-tuned end to end with augmentation (BN frozen); "
              "4-view test-time augmentation if it helps on validation", **_CHEST_FINETUNE_AUG),
    _transfer("mobilenet_v2_finetune_aug_ensemble", "OURS: mean of 3 mobilenet_v2_finetune_aug trained with seeds "
              "seed..seed+2; 4-view test-time augmentation if it helps on validation", ensemble=3,
              **_CHEST_FINETUNE_AUG),
    _transfer("mobilenet_v2_malaria", "OURS: MobileNetV2 (ImageNet) on RGB cells, GAP, drop.2 → sigmoid; top "
              "layers fine-tuned", "mobilenet_v2", head_dropout=0.2, fine_tune=40, image_size=112,
              color_mode="rgb", dataset=_MALARIA, **_OURS_TRANSFER),
    _transfer("mobilenet_v2_malaria_aug", "OURS: MobileNetV2 (ImageNet) on RGB cells, GAP, drop.2 → sigmoid; head on "
              "cached features, then the top 80 layers fine-tuned end to end with flips/rotation/colour augmentation; 4-view "
              "test-time augmentation if it helps on validation",
              "mobilenet_v2", head_dropout=0.2, fine_tune=80, image_size=112, color_mode="rgb", dataset=_MALARIA,
              augmentation=_MALARIA_AUG, tta_views=4, **_OURS_TRANSFER),
    _transfer("efficientnet_b0_frozen", "frozen EfficientNetB0 (ImageNet), GAP, drop.2 → sigmoid", "efficientnet_b0",
              head_dropout=0.2, image_size=224, color_mode="rgb", **_OURS_TRANSFER),
    _transfer("densenet121_frozen", "frozen DenseNet121 (ImageNet), GAP, drop.2 → sigmoid", "densenet121",
              head_dropout=0.2, image_size=224, color_mode="rgb", **_OURS_TRANSFER),
]

#: Every named model, by name.
MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in _SPECS}


# --------------------------------------------------------------------------------------------
# Public helpers
# --------------------------------------------------------------------------------------------

def get_spec(name: str) -> ModelSpec:
    """The registered spec called ``name``.

    Raises:
        ValueError: unknown name; the message lists the valid names.
    """
    try:
        return MODELS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; valid names: {', '.join(MODELS)}") from None


def model_names(family: str | None = None, dataset: str | None = None, study: str | None = ...) -> list[str]:
    """Registered names in registry order, optionally filtered.

    Args:
        family: keep this family only.
        dataset: keep models for this data set (models with ``dataset=None`` suit every data set).
        study: keep this study only (``None`` keeps our own models; leave out to keep all).
    """
    return [s.name for s in MODELS.values()
            if (family is None or s.family == family)
            and (dataset is None or s.dataset in (None, dataset))
            and (study is ... or s.study == study)]


def build_model(spec: ModelSpec | str, input_shape: Sequence[int], **options: Any) -> Any:
    """A fresh, uncompiled model for ``spec`` (a :class:`ModelSpec` or a registered name).

    Args:
        spec: the spec or its name.
        input_shape: ``(height, width, channels)`` of the uint8 images it will see
            (``spec.input_shape(image_size)`` gives the study's).
        options: passed to the builder; transfer models take ``weights`` (``"imagenet"``, ``"none"``
            or a file path; default ``"imagenet"``).

    Returns:
        A ``keras.Model`` (sigmoid output, shape ``(n, 1)``), or an unfitted sklearn ``Pipeline``
        for the SVM.

    Raises:
        ValueError: unknown name, or ``input_shape`` not three positive integers.
    """
    if isinstance(spec, str):
        spec = get_spec(spec)
    shape = tuple(input_shape)
    if len(shape) != 3 or not all(isinstance(s, int | np.integer) and s > 0 for s in shape):
        raise ValueError(f"input_shape must be (height, width, channels) of positive integers; got {input_shape!r}")
    return spec.build(tuple(int(s) for s in shape), **options)


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh Keras optimizer: ``adam`` (:class:`~medclf.accel.fused_adam.FusedAdam`, Keras' Adam in one
    fused update), ``sgd`` (plain, no momentum), ``rmsprop`` or ``adamax``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    classes = {"adam": FusedAdam, "sgd": keras.optimizers.SGD,
               "rmsprop": keras.optimizers.RMSprop, "adamax": keras.optimizers.Adamax}
    if name not in classes:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(classes)}")
    return classes[name](learning_rate=learning_rate)


def count_params(model: Any) -> int:
    """Number of parameters, for comparison tables.

    For a Keras model: ``model.count_params()`` (trainable and non-trainable). For the SVM (a
    fitted ``SVC`` or a pipeline ending in one): the stored support vectors, i.e. number of
    support vectors × number of features; the dual coefficients and intercept are left out.

    Raises:
        ValueError: an SVM that is not fitted yet, or an object that is neither.
    """
    if isinstance(model, keras.Model):
        return int(model.count_params())
    svc = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if isinstance(svc, SVC):
        if not hasattr(svc, "support_vectors_"):
            raise ValueError("count_params: the SVM is not fitted yet (its size is its support vectors)")
        return int(svc.support_vectors_.size)
    raise ValueError(f"count_params: expected a keras.Model or an SVC pipeline; got {type(model).__name__}")
