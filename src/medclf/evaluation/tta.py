"""Test-time augmentation (TTA): an image's score is the mean probability over the image itself and
``views`` random variants drawn from the augmentation the model was trained with.

Why: a validation set carved from the training folder resembles the training images more than the
official chest X-ray test set does; averaging over the variants the model learned to be invariant to
makes each score less sensitive to small shifts of position, scale and exposure. Whether a model
keeps it is decided on **validation only** (:func:`choose_on_validation`); the test set is then
scored one way, the chosen one.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from medclf.data.augment import build_augmenter

#: Images augmented per call of the augmenter (bounds memory on large splits).
CHUNK = 256


def tta_scores(score: Callable[[np.ndarray], np.ndarray], images: np.ndarray, augmentation: Mapping[str, Any],
               views: int, seed: int, original: np.ndarray | None = None) -> np.ndarray:
    """Mean of ``score`` over ``images`` and ``views`` augmented copies of them.

    Args:
        score: images → probability of the positive class, one per image.
        images: ``(N, H, W, C)`` pixels in 0..255.
        augmentation: an augmentation mapping (:func:`medclf.data.augment.build_augmenter`).
        views: augmented copies per image (≥ 1).
        seed: same seed and images, same copies and scores.
        original: ``score(images)`` when the caller has it already (it is not computed again).

    Raises:
        ValueError: ``views`` < 1, or ``augmentation`` turns nothing on.
    """
    if isinstance(views, bool) or not isinstance(views, (int, np.integer)) or views < 1:
        raise ValueError(f"tta views must be a positive integer; got {views!r}")
    augmenter = build_augmenter(augmentation, seed=seed)
    if augmenter is None:
        raise ValueError("test-time augmentation needs an augmentation with at least one transform on")
    total = np.array(score(images) if original is None else original, dtype=np.float64)
    for _ in range(views):
        variant = np.concatenate([np.asarray(augmenter(images[i:i + CHUNK].astype(np.float32), training=True))
                                  for i in range(0, len(images), CHUNK)])
        total += np.asarray(score(variant), dtype=np.float64)
    return total / (views + 1)


def choose_on_validation(y_val: np.ndarray, p_plain: np.ndarray, p_tta: np.ndarray, views: int) -> dict:
    """Keep TTA only if it raises the validation ROC AUC (ties keep the plain scores: simpler, cheaper).

    Returns:
        ``{"views", "val_auc_plain", "val_auc_tta", "used"}`` for the results record.
    """
    from sklearn.metrics import roc_auc_score

    plain, augmented = float(roc_auc_score(y_val, p_plain)), float(roc_auc_score(y_val, p_tta))
    return {"views": int(views), "val_auc_plain": plain, "val_auc_tta": augmented, "used": augmented > plain}
