"""The model card ``predict`` reads beside a saved model: every field it uses checked, one line per problem.

A card is the results record written beside the model (``models/<id>.json``, see
:func:`medclf.evaluation.records.save_model_card`). It holds everything needed to score an image the way
the model was trained and evaluated: input size, colour mode, resize mode, class names, the threshold
chosen on validation, when the model kept it, its test-time augmentation, and whether its evaluation flagged
it for constant predictions (``evaluation.constant_predictions``: ``predict`` then warns). A card edited by hand or
damaged in transit is refused with a :class:`PredictError` naming the file, the field, what it holds and
what was expected — never a traceback.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from medclf.config.param_specs import MODEL_OVERRIDES, SPECS
from medclf.data.augment import check_augmentation
from medclf.data.decode import CHANNELS
from medclf.evaluation import scoring
from medclf.evaluation.records import model_card_path

#: The data layer's resize modes (medclf.data.decode.resize_square).
RESIZE_MODES = ("stretch", "pad")
#: Where each field sits in a results record.
FIELDS = {"image_size": ("spec", "image_size_used"), "color_mode": ("spec", "color_mode"),
          "resize": ("params", "resize"), "class_names": ("data", "class_names"),
          "threshold": ("evaluation", "threshold")}
_RESAVE = "retrain, or re-save it with medclf.evaluation.records.save_model_card"


class PredictError(ValueError):
    """A usage problem (missing or unreadable model, missing or damaged card, bad flag); one line, exit code 2."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@dataclass(frozen=True)
class ModelCard:
    """What ``predict`` needs from a model's record: preprocessing, class names, threshold."""

    model_id: str
    image_size: int
    color_mode: str
    resize: str
    class_names: tuple[str, str]
    threshold: float
    tta: dict | None = None
    #: ``evaluation.constant_predictions`` when it flags the model (its scores barely vary: one label for
    #: every image), else ``None``.
    flagged: dict | None = None
    #: SHA-256 of the model file this card was written for (``model_sha256``): the loaders refuse another file.
    model_sha256: str | None = None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return (self.image_size, self.image_size, CHANNELS[self.color_mode])

    def labels(self, probabilities: np.ndarray, threshold: float | None = None) -> list[str]:
        """Class names at ``threshold`` (default: the card's): ``p >= threshold`` is label 1, as in evaluation."""
        cut = self.threshold if threshold is None else threshold
        return [self.class_names[int(p >= cut)] for p in probabilities]

    @classmethod
    def from_record(cls, record: Any, source: str | os.PathLike = "record") -> ModelCard:
        """Read and check the card's fields from a results record.

        Raises:
            PredictError: the record is not a mapping, a field is missing, or has a type or value the data
                layer cannot use (one line naming the field).
        """
        if not isinstance(record, dict):
            raise PredictError(f"model card {source} holds a JSON {type(record).__name__}, not a results record "
                               f"(a mapping): {_RESAVE}")
        values = {}
        for name, (section, key) in FIELDS.items():
            part = record.get(section)
            if not isinstance(part, dict) or key not in part:
                raise PredictError(f"model card {source} lacks {section}.{key}: it is not a complete results "
                                   f"record ({_RESAVE})")
            values[name] = part[key]

        def bad(name: str, expected: str) -> PredictError:
            section, key = FIELDS.get(name, (None, name))
            where = f"{section}.{key}" if section else key
            return PredictError(f"model card {source}: {where} is {values.get(name, record.get(name))!r}, expected "
                                f"{expected}: the card is damaged or belongs to another program ({_RESAVE})")

        size_spec = SPECS["image_size"]
        if not _is_int(values["image_size"]) or not size_spec.low <= values["image_size"] <= size_spec.high:
            raise bad("image_size", f"an integer from {size_spec.low:g} to {size_spec.high:g}")
        if not isinstance(values["color_mode"], str) or values["color_mode"] not in CHANNELS:
            raise bad("color_mode", f"one of {', '.join(CHANNELS)}")
        if not isinstance(values["resize"], str) or values["resize"] not in RESIZE_MODES:
            raise bad("resize", f"one of {', '.join(RESIZE_MODES)}")
        names = values["class_names"]
        if (not isinstance(names, list) or len(names) != 2 or not all(isinstance(n, str) and n.strip() for n in names)
                or names[0] == names[1]):
            raise bad("class_names", "two distinct class names (negative, positive)")
        if not _is_number(values["threshold"]) or not 0.0 <= values["threshold"] <= 1.0:
            raise bad("threshold", "a number from 0 to 1")
        positive = (record.get("data") or {}).get("positive_class")
        if positive not in (None, names[1]):
            raise PredictError(f"model card {source}: positive_class {positive!r} is not label 1 "
                               f"({names[1]!r}); scores are probabilities of label 1")
        model_id = record.get("model_id", Path(source).stem)
        if not isinstance(model_id, str):
            values["model_id"] = model_id
            raise bad("model_id", "a string")
        return cls(model_id=model_id, image_size=values["image_size"], color_mode=values["color_mode"],
                   resize=values["resize"], class_names=(names[0], names[1]), threshold=float(values["threshold"]),
                   tta=_tta(record["evaluation"].get("tta"), source),
                   flagged=_flagged(record["evaluation"].get("constant_predictions"), source),
                   model_sha256=record.get("model_sha256") if isinstance(record.get("model_sha256"), str) else None)

    def score(self, model: Any, images: np.ndarray) -> np.ndarray:
        """Probabilities of label 1 as evaluation made them: plain, or averaged over the card's TTA views."""
        return scoring.scorer(model, self.tta)(images)


def _tta(tta: Any, source: str | os.PathLike) -> dict | None:
    """The card's test-time augmentation when it was used, checked; None when it was not."""
    if tta is None or (isinstance(tta, dict) and not tta.get("used")):
        return None
    problem = None
    if not isinstance(tta, dict):
        problem = f"is {tta!r}, expected a mapping"
    elif not _is_int(tta.get("views")) or not 1 <= tta["views"] <= MODEL_OVERRIDES["tta_views"].high:
        problem = f"views is {tta.get('views')!r}, expected an integer from 1 to {MODEL_OVERRIDES['tta_views'].high:g}"
    elif not _is_int(tta.get("seed")) or tta["seed"] < 0:
        problem = f"seed is {tta.get('seed')!r}, expected a non-negative integer"
    else:
        try:
            if not any(check_augmentation(tta.get("augmentation")).values()):
                problem = f"augmentation is {tta.get('augmentation')!r}, which turns no transform on"
        except (ValueError, TypeError) as exc:
            problem = f"augmentation is unusable ({exc})"
    if problem:
        raise PredictError(f"model card {source}: evaluation.tta {problem}: {_RESAVE}")
    return tta


def _flagged(info: Any, source: str | os.PathLike) -> dict | None:
    """The card's constant-predictions entry when it flags the model, checked; None when it does not (or a card
    written before the flag existed)."""
    if info is None:
        return None
    if not isinstance(info, dict) or not isinstance(info.get("flag"), bool):
        raise PredictError(f"model card {source}: evaluation.constant_predictions is {info!r}, expected a mapping "
                           f"with a true/false flag: {_RESAVE}")
    return info if info["flag"] else None


def load_card(model_path: str | os.PathLike) -> ModelCard:
    """The card saved beside ``model_path`` (``models/<id>.keras`` → ``models/<id>.json``).

    Raises:
        PredictError: the card is missing, not JSON, or damaged (the message says which field and how it is made).
    """
    path = model_card_path(model_path)
    if not path.is_file():
        raise PredictError(f"model card {path} is missing: predict reads the input size, colour mode, class names "
                           "and threshold from it; it is written beside the model when a notebook or "
                           "medclf.training.experiment.run_model trains with save_models=true")
    try:
        record = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise PredictError(f"model card {path} is not readable JSON ({first}): {_RESAVE}") from None
    return ModelCard.from_record(record, path)
