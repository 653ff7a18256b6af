"""What a named model is: :class:`ModelSpec` and the vocabularies its fields are checked against.

A spec holds the architecture (a builder), the study's training recipe and the study's reported result;
the named specs themselves are in :mod:`medclf.models.registry`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from medclf.config import datasets
from medclf.models.builders import OPTIMIZERS

FAMILIES = ("svm", "ann", "cnn", "transfer")
COLOR_MODES = ("grayscale", "rgb")
#: Callback names the train module understands.
CALLBACKS = ("early_stopping", "reduce_lr", "step_decay", "two_target_stop", "checkpoint")
#: Data sets that models are designed for: the ``models_for`` targets of :mod:`medclf.config.datasets`.
DATASETS = tuple(dict.fromkeys(info.models_for for info in datasets.DATASETS.values() if info.models_for))
STUDIES = ("S0", "S1", "S2", "S3", "S4")


@dataclass(frozen=True)
class ModelSpec:
    """One named model: architecture, the study's training recipe and its reported result.

    Attributes:
        name: registry key; says what the model is.
        family: ``"svm"``, ``"ann"`` or ``"cnn"``.
        description: one line, the architecture as built here.
        image_size: input side the study used (the default; params may override it).
        color_mode: ``"grayscale"`` or ``"rgb"``.
        optimizer: ``"adam"``, ``"sgd"``, ``"rmsprop"`` or ``"adamax"`` (see :func:`medclf.models.builders.make_optimizer`).
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
            probabilities (:func:`medclf.models.builders.build_ensemble`).
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
