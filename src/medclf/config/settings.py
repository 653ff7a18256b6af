"""Typed settings: the merged parameter set split by concern into frozen dataclasses.

The runner merges and checks the parameters once (:func:`medclf.config.params.load_params`),
builds a :class:`Settings` and hands every notebook exactly that (``Settings.as_params()``);
a notebook rebuilds it with :meth:`Settings.from_params`, which checks it again and merges nothing.
A lower layer that needs one concern takes its group (``settings.training``) instead of the whole dict.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from medclf.config import params as params_module


class _Group:
    """A settings group; :meth:`of` picks its fields from an already checked parameter dict."""

    @classmethod
    def of(cls, params: dict[str, Any]):
        """This group's fields taken from ``params`` as they are (no checking: the runner and
        :meth:`Settings.from_params` check once; inner calls only pick).

        Raises:
            KeyError: a field of this group missing from ``params``.
        """
        return cls(**{f.name: params[f.name] for f in dataclasses.fields(cls)})


@dataclass(frozen=True)
class DataSettings(_Group):
    """Which data, how it is decoded, split and cached."""

    dataset: str
    data_root: str | None
    download: bool
    image_size: int
    color_mode: str
    resize: str
    seed: int
    split_mode: str
    split_by_image: list
    select_on: str
    source_val: str
    val_fraction: float
    test_fraction: float
    group_pattern: str | None
    class_names: list | None
    positive_class: str | None
    workers: int
    max_image_pixels: int
    min_image_size: int
    cache_dir: str
    synthetic_images_per_class: int
    synthetic_image_size: int


@dataclass(frozen=True)
class ModelSelection(_Group):
    """The models each training notebook trains, and per-model replacements of their study settings."""

    baselines: list
    transfer_models: list
    augmentation_models: list
    model_overrides: dict


@dataclass(frozen=True)
class TrainingSettings(_Group):
    """How every model is fitted."""

    seed: int
    class_weight: bool
    monitor: str
    patience: int
    max_epochs: int | None
    max_image_size: int | None
    accel: bool
    mixed_precision: str
    save_models: bool
    model_cache: bool | str = True  # True, False or "refresh"


@dataclass(frozen=True)
class TransferSettings(_Group):
    """Transfer models: starting weights, feature cache, fine-tuning stage."""

    weights: str
    feature_cache: bool
    fine_tune_epochs: int
    fine_tune_learning_rate: float


@dataclass(frozen=True)
class EvaluationSettings(_Group):
    """Threshold choice, the validation rows that choose, confidence intervals."""

    target_sensitivity: float
    bootstrap_replicates: int
    select_on: str
    seed: int


@dataclass(frozen=True)
class ExplainSettings(_Group):
    """Explanations (05): LIME, Grad-CAM examples, error galleries."""

    lime_samples: int
    lime_segments: int
    explain_per_class: int
    error_gallery_size: int
    seed: int


@dataclass(frozen=True)
class ReportSettings(_Group):
    """Where outputs go and how they are shown."""

    output_dir: str
    report_hide_code: bool
    eda_samples_per_class: int


@dataclass(frozen=True)
class RunnerSettings(_Group):
    """How run_all.py watches a notebook (not part of the parameters hash)."""

    cell_timeout_s: int | None
    stall_timeout_s: int | None


_GROUPS = {"data": DataSettings, "models": ModelSelection, "training": TrainingSettings,
           "transfer": TransferSettings, "evaluation": EvaluationSettings, "explain": ExplainSettings,
           "report": ReportSettings, "runner": RunnerSettings}


@dataclass(frozen=True)
class Settings:
    """One run's complete, checked settings, by concern."""

    dataset: str
    profile: str
    data: DataSettings
    models: ModelSelection
    training: TrainingSettings
    transfer: TransferSettings
    evaluation: EvaluationSettings
    explain: ExplainSettings
    report: ReportSettings
    runner: RunnerSettings

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Settings:
        """Check a complete parameter set (:func:`medclf.config.params.check_settings`) and group it.

        Raises:
            ParamError: a missing, unknown or invalid key.
        """
        checked = params_module.check_settings(dict(params))
        groups = {name: kind(**{f.name: checked[f.name] for f in dataclasses.fields(kind)})
                  for name, kind in _GROUPS.items()}
        return cls(dataset=checked["dataset"], profile=checked["profile"], **groups)

    def as_params(self) -> dict[str, Any]:
        """The flat parameter dict (every key of :data:`medclf.config.params.SPECS`), in SPECS order."""
        flat: dict[str, Any] = {"dataset": self.dataset, "profile": self.profile}
        for name in _GROUPS:
            flat.update(dataclasses.asdict(getattr(self, name)))
        return {key: flat[key] for key in params_module.SPECS}


def grouped_keys() -> set[str]:
    """Every parameter some group (or :class:`Settings` itself) carries; equals ``set(SPECS)``."""
    keys = {"dataset", "profile"}
    for kind in _GROUPS.values():
        keys |= {f.name for f in dataclasses.fields(kind)}
    return keys
