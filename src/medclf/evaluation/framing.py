"""Framing probe: does a model's score follow how tightly an image is framed?

In the chest X-ray training images, pneumonia films are more often framed tightly (the lungs fill the
picture) and normal films loosely (neck and shoulders in view). A model can learn that framing as a
shortcut for the label. The probe shows that on validation images alone, without any test label:
each image is cropped about its centre to a share of its side (``0.85`` keeps the central 85%) and
scaled back to its size, i.e. framed more tightly, and the share of each class called positive at
the model's threshold is compared with the uncropped images. A model that reads the lungs should
call about as many cropped normal images positive as uncropped ones.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd

#: Crops the notebooks probe: the image itself, the central 85% and the central 70% of each side.
DEFAULT_CROPS = (1.0, 0.85, 0.7)


def centre_crop(images: np.ndarray, keep: float) -> np.ndarray:
    """Crop ``(n, h, w, c)`` images about their centre to ``keep`` of each side and resize them back to
    ``(h, w)`` (bilinear), in the input's dtype; ``keep == 1`` returns the images unchanged.

    Raises:
        ValueError: ``keep`` outside (0, 1] or images that are not 4-D.
    """
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"crop keep must be in (0, 1]; got {keep!r}")
    if images.ndim != 4:
        raise ValueError(f"images must be (n, height, width, channels); got shape {images.shape}")
    if keep == 1.0:
        return images
    import tensorflow as tf

    height, width = images.shape[1:3]
    crop_h, crop_w = max(1, round(height * keep)), max(1, round(width * keep))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    cropped = images[:, top:top + crop_h, left:left + crop_w]
    resized = tf.image.resize(tf.cast(cropped, tf.float32), (height, width), method="bilinear").numpy()
    if np.issubdtype(images.dtype, np.integer):
        info = np.iinfo(images.dtype)
        resized = np.clip(np.rint(resized), info.min, info.max)
    return resized.astype(images.dtype)


def framing_table(score: Callable[[np.ndarray], np.ndarray], images: np.ndarray, labels: np.ndarray,
                  threshold: float, class_names: Sequence[str], crops: Sequence[float] = DEFAULT_CROPS,
                  reference: np.ndarray | None = None) -> pd.DataFrame:
    """Scores of ``images`` at each centre crop, per class.

    Args:
        score: images → probability of class 1 (e.g. a Keras model's predict).
        images, labels: validation images and their 0/1 labels (never test: this is a diagnostic that
            may inform choices).
        threshold: the model's decision threshold.
        class_names: names of classes 0 and 1.
        crops: shares of each side kept (1.0 = the image itself).
        reference: ``score(images)`` when the caller has it already (used for crop 1.0, not recomputed).

    Returns:
        One row per (crop, class): ``crop, class_name, n, mean_probability, called_positive`` (share
        with probability ≥ threshold) and ``change`` (``called_positive`` minus that of the uncropped
        images; NaN when 1.0 is not among ``crops``).
    """
    labels = np.asarray(labels).reshape(-1)
    rows = []
    for keep in crops:
        scores = reference if keep == 1.0 and reference is not None else score(centre_crop(images, keep))
        probabilities = np.asarray(scores, dtype=np.float64).reshape(-1)
        for label, name in enumerate(class_names):
            of_class = probabilities[labels == label]
            rows.append({"crop": keep, "class_name": name, "n": len(of_class),
                         "mean_probability": float(of_class.mean()) if len(of_class) else np.nan,
                         "called_positive": float((of_class >= threshold).mean()) if len(of_class) else np.nan})
    table = pd.DataFrame(rows)
    reference = table[table["crop"] == 1.0].set_index("class_name")["called_positive"]
    table["change"] = table["called_positive"] - table["class_name"].map(reference)
    return table
