"""Drop-in replacements swapped in for training only: the fused Adam and the fused batch normalisation.

Models are built from plain Keras layers and optimizers (:mod:`medclf.models.builders`), and the files
saved from them stay plain Keras. When the ``accel`` setting is on, the training layer asks this module
for the faster equivalents of what it is about to fit:

* :func:`faster_optimizer` — a plain ``keras.optimizers.Adam`` becomes
  :class:`~medclf.accel.fused_adam.FusedAdam` with the same config (other optimizers are kept);
* :func:`training_copy` — a model whose trainable, 4-D channels-last batch norms are
  :class:`~medclf.accel.fused_bn.FusedBatchNormalization` copies, every other layer shared with the
  plain model; :func:`copy_back` then returns the trained batch-norm weights to the plain layers.

Sharing the other layers (rather than cloning them) keeps everything else exactly as it was: the same
weights train in place and no layer is re-created, so no extra random seeds are drawn (a cloned
``Dropout`` would draw a new one and change the run).
"""

from __future__ import annotations

from typing import Any

import keras

from medclf.accel.fused_adam import FusedAdam
from medclf.accel.fused_bn import FusedBatchNormalization


def faster_optimizer(optimizer: keras.optimizers.Optimizer) -> keras.optimizers.Optimizer:
    """:class:`FusedAdam` of ``optimizer``'s config when it is exactly ``keras.optimizers.Adam``, else ``optimizer``."""
    if type(optimizer) is keras.optimizers.Adam:
        return FusedAdam.from_config(optimizer.get_config())
    return optimizer


def _fusable(layer: Any) -> bool:
    """A plain batch norm that would take the fused kernel when training (see ``FusedBatchNormalization``):
    trainable, over the channels of a 4-D channels-last tensor, with both scale and offset."""
    if type(layer) is not keras.layers.BatchNormalization or not layer.trainable:
        return False
    try:
        rank = len(layer.output.shape)
    except (AttributeError, ValueError):  # not built, or called more than once
        return False
    return rank == 4 and layer.axis in (-1, 3) and layer.center and layer.scale and not layer.renorm


def training_copy(model: keras.Model) -> keras.Model:
    """``model`` for fitting with its fusable batch norms (:func:`_fusable`) replaced by
    :class:`FusedBatchNormalization` layers of the same config and weights; every other layer is shared.

    Returns ``model`` itself when there is nothing to replace (dense networks, transfer models, whose
    backbone batch norms are frozen) or ``model`` is not a functional model."""
    if not isinstance(getattr(model, "layers", None), list) or not any(_fusable(layer) for layer in model.layers):
        return model
    if isinstance(model, keras.Sequential) or not hasattr(model, "inputs"):
        return model

    def clone(layer):
        if not _fusable(layer):
            return layer  # shared: trains in place
        fused = FusedBatchNormalization.from_config(layer.get_config())
        fused.build(layer.input.shape)
        fused.set_weights(layer.get_weights())
        return fused

    return keras.models.clone_model(model, clone_function=clone)


def copy_back(copy: keras.Model, model: keras.Model) -> None:
    """Give ``model``'s batch norms the weights their fused stand-ins in ``copy`` trained to (nothing when
    ``copy`` is ``model``). The layers are matched by name; every other layer is shared already."""
    if copy is model:
        return
    for layer in copy.layers:
        if isinstance(layer, FusedBatchNormalization):
            model.get_layer(layer.name).set_weights(layer.get_weights())
