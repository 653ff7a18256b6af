"""Framing probe: centre crops and the per-class table, on images whose crops are known exactly."""

from __future__ import annotations

import numpy as np
import pytest

from medclf.evaluation import framing


def framed(n: int, size: int = 20, border: int = 5) -> np.ndarray:
    """Images with a dark border ``border`` pixels wide around a bright centre (0 / 200)."""
    images = np.zeros((n, size, size, 1), np.uint8)
    images[:, border:size - border, border:size - border] = 200
    return images


def test_centre_crop_keeps_shape_and_dtype_and_zooms_in():
    images = framed(3)
    same = framing.centre_crop(images, 1.0)
    assert same is images
    cropped = framing.centre_crop(images, 0.5)  # the central 10×10: all bright
    assert cropped.shape == images.shape and cropped.dtype == np.uint8
    assert (cropped == 200).all()
    looser = framing.centre_crop(images, 0.9)  # keeps part of the border: still dark at the corners
    assert looser[0, 0, 0, 0] == 0 and looser[0, 10, 10, 0] == 200
    floats = framing.centre_crop(images.astype(np.float32) / 255, 0.5)
    assert floats.dtype == np.float32 and np.allclose(floats, 200 / 255)


@pytest.mark.parametrize("keep", [0.0, -0.1, 1.2])
def test_centre_crop_rejects_bad_keep(keep):
    with pytest.raises(ValueError, match="crop keep"):
        framing.centre_crop(framed(1), keep)


def test_centre_crop_rejects_non_batched_images():
    with pytest.raises(ValueError, match="height, width, channels"):
        framing.centre_crop(framed(1)[0], 0.5)


def test_framing_table_counts_calls_per_crop_and_class():
    images = np.concatenate([framed(4), framed(2, border=1)])  # 4 loosely framed, 2 tightly framed
    labels = np.array([0, 0, 0, 1, 1, 1])

    def brightness(x):  # a "model" that reads framing only: the share of bright pixels
        return (x[..., 0] > 100).mean(axis=(1, 2))

    table = framing.framing_table(brightness, images, labels, threshold=0.6, class_names=["NORMAL", "PNEUMONIA"],
                                  crops=(1.0, 0.5)).set_index(["crop", "class_name"])
    # uncropped: loose images have 100/400 = 0.25 bright, tight ones 324/400 = 0.81
    assert table.loc[(1.0, "NORMAL"), ["n", "called_positive", "change"]].tolist() == [3, 0.0, 0.0]
    assert table.loc[(1.0, "PNEUMONIA"), "called_positive"] == pytest.approx(2 / 3)
    assert table.loc[(1.0, "NORMAL"), "mean_probability"] == pytest.approx(0.25)
    # cropped to the centre every image is all bright: every normal image is now called positive
    assert table.loc[(0.5, "NORMAL"), ["called_positive", "change"]].tolist() == [1.0, 1.0]
    assert table.loc[(0.5, "PNEUMONIA"), "change"] == pytest.approx(1 / 3)


def test_framing_table_without_the_uncropped_reference():
    table = framing.framing_table(lambda x: np.full(len(x), 0.9), framed(2), np.array([0, 1]), 0.5,
                                  ["a", "b"], crops=(0.8,))
    assert table["called_positive"].tolist() == [1.0, 1.0] and table["change"].isna().all()


def test_framing_table_uses_given_uncropped_scores():
    calls = []

    def score(x):
        calls.append(len(x))
        return np.full(len(x), 0.9)

    table = framing.framing_table(score, framed(2), np.array([0, 1]), 0.5, ["a", "b"], crops=(1.0, 0.8),
                                  reference=np.array([0.1, 0.2]))
    assert calls == [2]  # only the crop was scored
    assert table["called_positive"].tolist() == [0.0, 0.0, 1.0, 1.0] and table["change"].tolist() == [0, 0, 1, 1]
