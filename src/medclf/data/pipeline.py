"""The ``tf.data`` input pipeline over in-memory uint8 arrays: shuffle, batch, augment, prefetch."""

from __future__ import annotations

import numpy as np


def make_dataset(x: np.ndarray, y: np.ndarray, batch_size: int, shuffle: bool, seed: int, augmenter=None):
    """``tf.data`` pipeline over in-memory uint8 arrays: shuffle, batch, augment, prefetch.

    Models train from these cached arrays, never by decoding files each epoch."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices((x, y.astype("float32")))
    if shuffle:
        ds = ds.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)
    if augmenter is not None:
        # One map call at a time: the random layers share a seed state, and parallel calls would
        # draw from it in a thread-dependent order (the same seed would not give the same run).
        ds = ds.map(lambda images, labels: (augmenter(tf.cast(images, "float32"), training=True), labels))
    return ds.prefetch(tf.data.AUTOTUNE)
