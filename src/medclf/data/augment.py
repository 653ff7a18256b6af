"""Data augmentation from params, built from Keras preprocessing layers.

``params["augmentation"]`` is a mapping; every key is optional and a missing or zero value
switches that transform off:

=================  ==========================================================================
key                meaning (layer)
=================  ==========================================================================
flip               "horizontal", "vertical" or "horizontal_and_vertical" (RandomFlip)
rotation           fraction of a full turn, e.g. 0.05 = ±18° (as RandomRotation)
zoom               fraction, e.g. 0.1 = ±10%, both axes alike (as RandomZoom)
zoom_xy            fraction, drawn for width and height independently, so it also stretches the
                   aspect ratio (as ImageDataGenerator's zoom_range, the S1/S2/S4 studies' tool)
translation        fraction of height and width (as RandomTranslation)
shear              shear factor (as RandomShear, both axes)
brightness         fraction of the 0–255 range (RandomBrightness)
contrast           factor, e.g. 0.2 = ×0.8–1.2 (RandomContrast)
=================  ==========================================================================

The geometric transforms are drawn per image and applied as one affine resampling
(:class:`medclf.data.affine.RandomAffine`), as ImageDataGenerator does, instead of one Keras layer
each. Images stay in the 0–255 range the models expect (they rescale inside the model). Geometric
transforms fill new pixels from the nearest edge pixel (``fill_mode="nearest"``, the default of
the studies' ImageDataGenerator): black fill would teach the model that training images have black
borders, and shifted its scores on clean validation/test images (measured: validation-chosen
thresholds near 0.03 instead of about 0.5).

Each layer gets its own seed derived from ``seed`` (:func:`layer_seeds`): Keras layers given the
same seed draw the same uniform numbers, which would tie every transform to one random number
(the largest rotation always coming with the largest zoom, shift and brightness change).

:func:`augment_variants` draws a few augmented copies of given images, seeded, for previews.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

AUGMENTATION_KEYS = ("flip", "rotation", "zoom", "zoom_xy", "translation", "shear", "brightness", "contrast")
FLIP_MODES = ("horizontal", "vertical", "horizontal_and_vertical")
GEOMETRIC_KEYS = ("rotation", "zoom", "zoom_xy", "translation", "shear")  # composed into one resampling


def check_augmentation(config: Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate an augmentation mapping (``None`` is no augmentation); return it as a dict.

    Raises:
        ValueError: not a mapping, an unknown key (the message lists the valid ones) or a bad value.
    """
    if config is None:
        return {}
    if not isinstance(config, Mapping):
        raise ValueError(f"augmentation must be a mapping of {', '.join(AUGMENTATION_KEYS)} to values; "
                         f"got {type(config).__name__}")
    for key, value in config.items():
        if key not in AUGMENTATION_KEYS:
            raise ValueError(f"unknown augmentation '{key}'; valid: {', '.join(AUGMENTATION_KEYS)}")
        if key == "flip":
            if value not in (None, False, *FLIP_MODES):
                raise ValueError(f"augmentation flip must be one of {', '.join(FLIP_MODES)} or null; got {value!r}")
        elif value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
            raise ValueError(f"augmentation {key} must be a non-negative number; got {value!r}")
    return dict(config)


def layer_seeds(seed: int, n: int) -> list[int]:
    """``n`` independent seeds for the layers of one augmenter, derived from ``seed`` (same seed, same list)."""
    return [int(s) for s in np.random.SeedSequence(seed).generate_state(n) % (2**31 - 1)]


def build_augmenter(config: Mapping[str, Any] | None, seed: int = 0):
    """A ``keras.Sequential`` of the configured random transforms, or ``None`` when all are off.

    Layers apply in the order of :data:`AUGMENTATION_KEYS`: flip, then rotation, zoom, translation and
    shear as one :class:`medclf.data.affine.RandomAffine` (one resampling, not four), then brightness and
    contrast. Each layer is seeded independently (:func:`layer_seeds`), so a fresh augmenter built
    with the same seed repeats the same draws.

    Raises:
        ValueError: see :func:`check_augmentation`.
    """
    import keras
    from keras import layers

    from medclf.data.affine import RandomAffine

    config = check_augmentation(config)
    settings = {"flip": config.get("flip"),
                "geometric": {key: float(config[key]) for key in GEOMETRIC_KEYS if config.get(key)},
                "brightness": config.get("brightness"), "contrast": config.get("contrast")}
    makers = {
        "flip": lambda v, s: layers.RandomFlip(v, seed=s),
        "geometric": lambda v, s: RandomAffine(**v, seed=s, name="random_affine"),
        "brightness": lambda v, s: layers.RandomBrightness(v, value_range=(0, 255), seed=s),
        "contrast": lambda v, s: layers.RandomContrast(v, value_range=(0, 255), seed=s),
    }
    active = [key for key, value in settings.items() if value]
    if not active:
        return None
    pieces = [makers[key](settings[key], s) for key, s in zip(active, layer_seeds(seed, len(active)))]
    return keras.Sequential(pieces, name="augmentation")


def augment_variants(images: np.ndarray, config: Mapping[str, Any] | None, n: int, seed: int = 0) -> np.ndarray:
    """``n`` augmented copies of each image, as training would draw them (for previews).

    Args:
        images: ``(N, H, W, C)`` pixels in 0..255 (uint8 or float).
        config: an augmentation mapping (see the module docstring); empty or ``None`` gives copies.
        n: copies per image.
        seed: same seed, same copies.

    Returns:
        ``(N, n, H, W, C)`` with the dtype of ``images`` (uint8 results are rounded and clipped).

    Raises:
        ValueError: ``images`` not 4-D, ``n`` not a positive integer, or a bad ``config``.
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be (N, height, width, channels); got shape {images.shape}")
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n must be a positive integer; got {n!r}")
    augmenter = build_augmenter(config, seed=seed)
    if augmenter is None:
        return np.repeat(images[:, None], n, axis=1)
    batch = images.astype(np.float32)
    copies = np.stack([np.asarray(augmenter(batch, training=True), dtype=np.float32) for _ in range(n)], axis=1)
    if images.dtype == np.uint8:
        return np.clip(np.rint(copies), 0, 255).astype(np.uint8)
    return copies.astype(images.dtype)
