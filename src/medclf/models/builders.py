"""Model builders: plain Keras ANNs, CNNs, compact CNNs and ensembles, the S4 SVM pipeline, optimizers, sizes.

The architectures are declared, not written out: CNNs are lists of :class:`~medclf.models.blocks.ConvBlock`
handed to :func:`build_cnn`, ANNs are hidden-unit tuples handed to :func:`build_ann`, and both share the
pieces of :mod:`medclf.models.blocks`. Every builder returns a fresh, uncompiled model of plain Keras
layers; :func:`make_optimizer` gives plain Keras optimizers (faster drop-in replacements are the training
layer's business, not the model's).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any

import keras
import numpy as np
from keras import layers
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.svm import SVC

from medclf.models.blocks import ConvBlock, conv_block, dense_stack, input_stem, sigmoid_head, squeeze_excite

#: Optimizer names a spec may use, and the Keras class each stands for (see :func:`make_optimizer`).
OPTIMIZER_CLASSES: dict[str, type] = {"adam": keras.optimizers.Adam, "sgd": keras.optimizers.SGD,
                                      "rmsprop": keras.optimizers.RMSprop, "adamax": keras.optimizers.Adamax}
OPTIMIZERS = tuple(OPTIMIZER_CLASSES)


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
    """The flatten step of SVM pipelines pickled (``.joblib``) before models were saved with skops: kept so
    such a file still loads with ``predict --allow-pickle``; :func:`build_svm` no longer uses it."""
    x = np.asarray(x)
    if x.shape[1:] != tuple(input_shape):
        raise ValueError(f"SVM pipeline built for images of shape {tuple(input_shape)}; got {x.shape[1:]}")
    return x.reshape(len(x), -1).astype(np.float32) / 255.0


def build_svm(input_shape: Sequence[int]) -> Pipeline:
    """S4's SVM: a pipeline ``flatten`` (reshape to rows) → ``scale`` (×1/255, float32) → ``svc`` (``SVC()``
    defaults, RBF kernel).

    Its steps are numpy functions in scikit-learn transformers, nothing of medclf's, so the model file
    (skops, :mod:`medclf.models.files`) loads without medclf and holds only types skops can trust. It
    expects images of ``input_shape``: another size fails to reshape, unless its pixel count is a multiple
    of this one's, so callers check the shape first (``predict`` checks the card against ``n_features_in_``).
    It has no probability output: it scores with ``decision_function`` (signed distance to the
    margin, > 0 for the positive class); the train module maps that score to a probability-like
    value in 0..1 with a sigmoid, so thresholds and ROC curves treat it like the networks.
    """
    features = int(np.prod([int(s) for s in input_shape]))
    flatten = FunctionTransformer(np.reshape, kw_args={"shape": (-1, features)})
    scale = FunctionTransformer(partial(np.multiply, np.float32(1 / 255)))
    return Pipeline([("flatten", flatten), ("scale", scale), ("svc", SVC())])


def make_optimizer(name: str, learning_rate: float) -> keras.optimizers.Optimizer:
    """A fresh plain Keras optimizer: ``adam``, ``sgd`` (plain, no momentum), ``rmsprop`` or ``adamax``.

    Raises:
        ValueError: unknown name; the message lists the valid ones.
    """
    if name not in OPTIMIZER_CLASSES:
        raise ValueError(f"unknown optimizer {name!r}; valid: {', '.join(OPTIMIZERS)}")
    return OPTIMIZER_CLASSES[name](learning_rate=learning_rate)


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
