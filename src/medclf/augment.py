"""Data augmentation from params, built from Keras preprocessing layers.

``params["augmentation"]`` is a mapping; every key is optional and a missing or zero value
switches that transform off:

=================  ==========================================================================
key                meaning (Keras layer)
=================  ==========================================================================
flip               "horizontal", "vertical" or "horizontal_and_vertical" (RandomFlip)
rotation           fraction of a full turn, e.g. 0.05 = ±18° (RandomRotation)
zoom               fraction, e.g. 0.1 = ±10% (RandomZoom)
translation        fraction of height and width (RandomTranslation)
shear              shear factor (RandomShear, both axes)
brightness         fraction of the 0–255 range (RandomBrightness)
contrast           factor, e.g. 0.2 = ×0.8–1.2 (RandomContrast)
=================  ==========================================================================

Images stay in the 0–255 range the models expect (they rescale inside the model). Geometric
transforms fill new pixels from the nearest edge pixel (``fill_mode="nearest"``, the default of
the studies' ImageDataGenerator): black fill would teach the model that training images have black
borders, and shifted its scores on clean validation/test images (measured: validation-chosen
thresholds near 0.03 instead of about 0.5).
"""

from __future__ import annotations

from typing import Any

AUGMENTATION_KEYS = ("flip", "rotation", "zoom", "translation", "shear", "brightness", "contrast")
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")


def check_augmentation(config: dict[str, Any]) -> dict[str, Any]:
    """Validate an augmentation mapping; raise ValueError naming a bad key or value."""
    for key, value in config.items():
        if key not in AUGMENTATION_KEYS:
            raise ValueError(f"unknown augmentation '{key}'; valid: {', '.join(AUGMENTATION_KEYS)}")
        if key == "flip":
            if value not in (None, False, *FLIP_MODES):
                raise ValueError(f"augmentation flip must be one of {', '.join(FLIP_MODES)} or null; got {value!r}")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"augmentation {key} must be a non-negative number; got {value!r}")
    return config


def build_augmenter(config: dict[str, Any], seed: int = 0):
    """A ``keras.Sequential`` of the configured random transforms, or ``None`` when all are off."""
    import keras
    from keras import layers

    check_augmentation(config)
    pieces = []
    if config.get("flip"):
        pieces.append(layers.RandomFlip(config["flip"], seed=seed))
    if config.get("rotation"):
        pieces.append(layers.RandomRotation(config["rotation"], fill_mode="nearest", seed=seed))
    if config.get("zoom"):
        pieces.append(layers.RandomZoom(config["zoom"], fill_mode="nearest", seed=seed))
    if config.get("translation"):
        pieces.append(layers.RandomTranslation(config["translation"], config["translation"], fill_mode="nearest",
                                               seed=seed))
    if config.get("shear"):
        pieces.append(layers.RandomShear(x_factor=config["shear"], y_factor=config["shear"], fill_mode="nearest",
                                         seed=seed))
    if config.get("brightness"):
        pieces.append(layers.RandomBrightness(config["brightness"], value_range=(0, 255), seed=seed))
    if config.get("contrast"):
        pieces.append(layers.RandomContrast(config["contrast"], value_range=(0, 255), seed=seed))
    return keras.Sequential(pieces, name="augmentation") if pieces else None
