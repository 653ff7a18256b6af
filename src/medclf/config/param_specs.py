"""The declared parameters: every key's type, allowed values or range, and meaning (values live in params/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from medclf.config import datasets


@dataclass(frozen=True)
class Spec:
    """Declared type, allowed values and meaning of one parameter.

    ``low`` / ``high`` bound a number (inclusive unless ``open_low`` / ``open_high``); ``items`` is
    the type of a list's elements.
    """

    type: type | tuple[type, ...]
    help: str
    choices: tuple[Any, ...] | None = None
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    open_low: bool = False
    open_high: bool = False
    items: type | None = None
    #: Values this parameter once took, each with the line saying what to write instead.
    retired: dict[Any, str] | None = None

    def range_text(self) -> str:
        """``"8 ≤ x ≤ 2048"``, ``"0 < x ≤ 0.5"``, ``"x ≥ 0"`` or ``""``."""
        if self.low is not None and self.high is not None:
            return f"{self.low} {'<' if self.open_low else '≤'} x {'<' if self.open_high else '≤'} {self.high}"
        if self.low is not None:
            return f"x {'>' if self.open_low else '≥'} {self.low}"
        if self.high is not None:
            return f"x {'<' if self.open_high else '≤'} {self.high}"
        return ""


PROFILES = ("demo", "quick", "full")

#: Keras dtype policies a model may be declared to train in (medclf.accel.precision applies them).
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")
#: The values of the timing-probe era (``auto`` measured a step to choose): refused with what to write.
_RETIRED_PRECISION = {
    "auto": "auto timed a training step to choose, so machines trained different models; declare the policy: "
            "float32 (the default) or mixed_bfloat16",
    "on": "write mixed_bfloat16", True: "write mixed_bfloat16",
    "off": "write float32", False: "write float32",
}
PRECISION_HELP = ("Dtype policy every model trains in unless model_overrides.<model>.mixed_precision declares "
                  "its own: float32, mixed_bfloat16 (emulated, slow, without native bf16) or mixed_float16 "
                  "(GPU only). Declared, never measured: the same on every machine.")

SPECS: dict[str, Spec] = {
    "dataset": Spec(str, "Data set to use (medclf.config.datasets).", choices=datasets.names()),
    "profile": Spec(str, "Profile: demo (synthetic, minutes), quick (real data, few epochs), full (the study).",
                    choices=PROFILES),
    "data_root": Spec(str, "Folder (or .npz file for pneumoniamnist) holding the data; "
                           "relative paths are taken from the project root.", nullable=True),
    "download": Spec(bool, "Fetch the official archive into data_root when it is missing (needs network)."),
    "image_size": Spec(int, "Side in pixels of the square arrays images are decoded into (at most 2048, above any "
                            "model's input; the runner also checks that the decoded arrays fit in memory).",
                       low=8, high=2048),
    "color_mode": Spec(str, "Channels of the decoded arrays.", choices=("grayscale", "rgb")),
    "resize": Spec(str, "stretch: resize to a square ignoring aspect (as the studies did); "
                        "pad: keep aspect and pad with black.", choices=("stretch", "pad")),
    "seed": Spec(int, "Seed for splits, sampling and training.", low=0, high=2**32 - 1),
    "split_mode": Spec(str, "patient: split grouped by patient/slide id so no patient is on both sides; "
                            "cell: random per-image split (only to compare with published cell-level numbers).",
                       choices=("patient", "cell")),
    "split_by_image": Spec(list, "Classes whose validation images are carved one by one, not by patient, so that "
                                 "validation shares patients with training as the official test set does for "
                                 "them (chest X-ray: PNEUMONIA); empty: every class by patient.",
                           items=str),
    "select_on": Spec(str, "Validation images that choose epochs, test-time augmentation and the best model: all, or "
                           "new_patients (those whose patient has no training image; the threshold still uses all).",
                      choices=("all", "new_patients")),
    "source_val": Spec(str, "keep: an official val folder is the validation set; merge: it joins the training "
                            "pool and validation is carved from it (chest X-ray: its official val has 16 images).",
                       choices=("keep", "merge")),
    "val_fraction": Spec(float, "Share of the training pool carved out as validation (split_mode=patient: whole "
                                "patient folds, m of k with m/k within 15% of it: 0.3 → 1 of 3, 0.4 → 2 of 5).",
                         low=0.0, high=0.5, open_low=True),
    "test_fraction": Spec(float, "Share held out as test when the data set has no official test split.",
                          low=0.0, high=0.5, open_low=True),
    "group_pattern": Spec(str, "Regular expression whose first group extracts the patient/group id from a "
                               "file name; null means each file is its own group.", nullable=True),
    "class_names": Spec(list, "Class folder names in label order (label i = class_names[i]); "
                              "null means discovered and sorted.", nullable=True, items=str),
    "positive_class": Spec(str, "Name of the disease (positive, label 1) class; null means the last class.",
                           nullable=True),
    "workers": Spec(int, "Threads used to decode images.", low=1, high=256),
    "max_image_pixels": Spec(int, "Largest image (width × height) decoded; a larger file is skipped as a possible "
                                  "decompression bomb (PIL's limit; predict --max-image-pixels).", low=1, high=2**32),
    "min_image_size": Spec(int, "Smallest side (pixels) of an image that is decoded; a smaller file (a thumbnail, a "
                                "placeholder) is skipped and listed.", low=1, high=4096),
    "cache_dir": Spec(str, "Where decoded arrays, transfer models' frozen-part outputs and trained models are "
                           "cached (relative to the project root; outputs/README.md)."),
    "output_dir": Spec(str, "Root of everything generated (relative to the project root); a run writes into "
                           "<output_dir>/<dataset>/<profile>/."),
    "synthetic_images_per_class": Spec(int, "Synthetic data set: images per class over all splits (at least 20: "
                                            "fewer cannot be split by patient at the default fractions).",
                                       low=20, high=100_000),
    "synthetic_image_size": Spec(int, "Synthetic data set: side of the generated images in pixels.",
                                 low=8, high=512),
    "eda_samples_per_class": Spec(int, "EDA: images per class in the sample grid.", low=1, high=100),
    "report_hide_code": Spec(bool, "Rendered HTML reports hide code cells."),
    "cell_timeout_s": Spec(int, "run_all.py: a notebook cell running longer fails its notebook (papermill's "
                                "execution_timeout); null: no limit.", nullable=True, low=1),
    "stall_timeout_s": Spec(int, "run_all.py: a kernel with no progress (no CPU use, no progress report, no "
                                 "finished cell) for this long is stopped and its notebook fails; null: never.", nullable=True, low=1),
    "baselines": Spec(list, "Models the baselines notebook trains (names from medclf.models.registry.MODELS).",
                      items=str),
    "transfer_models": Spec(list, "Models the transfer notebook trains (transfer-family names from medclf.models.registry.MODELS).",
                            items=str),
    "weights": Spec(str, "Transfer backbones' starting weights: imagenet (Keras' cache in $KERAS_HOME/models, or "
                         "downloaded), none (random), or the path of a weights file (include_top=False)."),
    "feature_cache": Spec(bool, "Transfer models: compute the frozen part's output once per image and train "
                                "only the layers above it (when no augmentation runs). false: the whole model "
                                "end to end, as the studies did."),
    "fine_tune_epochs": Spec(int, "Transfer models with fine_tune > 0: epochs of the second stage, the top "
                                  "layers unfrozen (0: head only).", low=0, high=1000),
    "fine_tune_learning_rate": Spec(float, "Learning rate of the fine-tuning stage.",
                                    low=0.0, high=1.0, open_low=True),
    "augmentation_models": Spec(list, "Models the augmentation notebook trains twice, with and without their "
                                      "augmentation, to compare on the same test images.", items=str),
    "max_epochs": Spec(int, "Cap on every model's epoch budget (the study's by default); null: no cap.",
                       nullable=True, low=1, high=1000),
    "max_image_size": Spec(int, "Cap on every model's input size (the study's by default); null: no cap.",
                           nullable=True, low=8, high=2048),
    "model_overrides": Spec(dict, "Per-model settings that replace the study's: {model: {image_size, epochs, "
                                  "batch_size, learning_rate, fine_tune, tta_views, ensemble, mixed_precision}} "
                                  "(applied before the caps)."),
    "monitor": Spec(str, "Validation metric for early stopping, LR reduction and checkpoints.",
                    choices=("val_auc", "val_loss", "val_accuracy")),
    "patience": Spec(int, "Epochs without improvement of `monitor` before early stopping.", low=0, high=1000),
    "class_weight": Spec(bool, "Weight the loss by inverse class frequency (balanced)."),
    "accel": Spec(bool, "Optional accounting (medclf.accel): the CPU time the hypervisor took (steal) recorded "
                        "beside the timings. It does not touch precision (mixed_precision declares that)."),
    "mixed_precision": Spec(str, PRECISION_HELP, choices=PRECISIONS, retired=_RETIRED_PRECISION),
    "target_sensitivity": Spec(float, "Decision threshold: chosen on validation as the highest one whose "
                                      "disease-class recall reaches this.",
                               low=0.0, high=1.0, open_low=True, open_high=True),
    "bootstrap_replicates": Spec(int, "Bootstrap replicates for the 95% confidence intervals.", low=0, high=100_000),
    "save_models": Spec(bool, "Save every trained model under outputs/<dataset>/<profile>/models/."),
    "model_cache": Spec((bool, str), "Reuse a trained model (<cache_dir>/models/; an ensemble member by member) when all "
                                     "that sets its weights is unchanged (spec, settings, arrays, seed, precision, code, "
                                     "versions). false: train "
                                     "every model, store none; refresh: train every model and store it (run_all --force).",
                        choices=(True, False, "refresh")),
    "lime_samples": Spec(int, "Explanations: perturbed images LIME scores per explained image (more: steadier weights).",
                         low=1, high=100_000),
    "lime_segments": Spec(int, "Explanations: about how many SLIC superpixels LIME switches on and off.",
                          low=2, high=1000),
    "explain_per_class": Spec(int, "Explanations: test images per class explained with LIME and Grad-CAM.",
                              low=1, high=100),
    "error_gallery_size": Spec(int, "Explanations: most confident false negatives and false positives shown per model.",
                               low=0, high=100),
}

#: What a ``model_overrides.<model>`` entry may set, each checked like a parameter.
MODEL_OVERRIDES: dict[str, Spec] = {
    "image_size": Spec(int, "input side in pixels", low=8, high=2048),
    "epochs": Spec(int, "epoch budget", low=1, high=1000),
    "batch_size": Spec(int, "batch size (0: the whole training set, the SVM)", low=0, high=65536),
    "learning_rate": Spec(float, "learning rate", low=0.0, high=1.0, open_low=True),
    "fine_tune": Spec(int, "top backbone layers unfrozen after the head", low=0, high=1000),
    "tta_views": Spec(int, "test-time augmentation views", low=0, high=64),
    "ensemble": Spec(int, "members averaged", low=1, high=20),
    "mixed_precision": Spec(str, "dtype policy (replaces mixed_precision for this model)", choices=PRECISIONS,
                            retired=_RETIRED_PRECISION),
}

#: Parameters that name registered models (checked by :func:`medclf.config.params.check_model_names`).
MODEL_LIST_KEYS = ("baselines", "transfer_models", "augmentation_models")

#: How a run is watched or whether trained models are reused, not what it computes: left out of
#: :func:`medclf.config.params.params_hash` (changing them reruns nothing).
RUN_CONTROL_KEYS = ("cell_timeout_s", "stall_timeout_s", "model_cache")
