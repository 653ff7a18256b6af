"""The composed random affine layer (medclf.data.affine): geometry of its matrix, ranges, seeding."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from medclf.data.affine import RandomAffine  # noqa: E402


def ramp(size: int = 9) -> np.ndarray:
    """One asymmetric float image, ``(1, size, size, 1)``: every pixel has its own value."""
    return np.arange(size * size, dtype=np.float32).reshape(1, size, size, 1)


def apply(params: dict[str, float], images: np.ndarray) -> np.ndarray:
    """Resample ``images`` with fixed parameters (the rest at identity) through the layer's matrix."""
    layer = RandomAffine()
    full = {"angle": 0.0, "zoom_x": 1.0, "zoom_y": 1.0, "shift_x": 0.0, "shift_y": 0.0, "shear_x": 0.0, "shear_y": 0.0, **params}
    batch = {key: np.full((len(images),), value, np.float32) for key, value in full.items()}
    transform = layer.matrix(batch, images.shape[1], images.shape[2])
    return np.asarray(keras.ops.image.affine_transform(images, transform, interpolation="bilinear",
                                                       fill_mode="nearest"))


def test_identity_parameters_give_the_image_back():
    np.testing.assert_allclose(apply({}, ramp()), ramp(), atol=1e-4)


def test_quarter_turn_is_a_rot90_about_the_centre():
    image = ramp()
    turned = apply({"angle": math.pi / 2}, image)
    np.testing.assert_allclose(turned[0, ..., 0], np.rot90(image[0, ..., 0]), atol=1e-3)


def test_shift_moves_the_content_by_the_fraction():
    image = ramp(10)
    shifted = apply({"shift_x": 0.2}, image)  # each output pixel samples 2 columns to its right
    np.testing.assert_allclose(shifted[0, :, :8, 0], image[0, :, 2:, 0], atol=1e-3)
    np.testing.assert_allclose(shifted[0, :, 8:, 0], np.repeat(image[0, :, 9:, 0], 2, axis=1), atol=1e-3)


def test_zoom_out_keeps_the_centre_and_fills_from_the_edge():
    image = ramp(9)
    zoomed = apply({"zoom_x": 2.0, "zoom_y": 2.0}, image)  # samples twice as far from the centre
    assert zoomed[0, 4, 4, 0] == pytest.approx(image[0, 4, 4, 0])
    assert zoomed[0, 4, 5, 0] == pytest.approx(image[0, 4, 6, 0])
    assert zoomed[0, 0, 0, 0] == pytest.approx(image[0, 0, 0, 0])  # beyond the corner: the corner pixel


def test_width_zoom_alone_stretches_rows_and_leaves_columns():
    image = ramp(9)
    stretched = apply({"zoom_x": 2.0}, image)  # only x samples twice as far from the centre
    np.testing.assert_allclose(stretched[0, :, 5, 0], image[0, :, 6, 0], atol=1e-3)
    np.testing.assert_allclose(stretched[0, :, 4, 0], image[0, :, 4, 0], atol=1e-3)


def test_shear_moves_rows_in_proportion_to_their_offset():
    image = ramp(9)
    sheared = apply({"shear_x": 0.5}, image)  # input x = x + 0.5 (y - centre)
    np.testing.assert_allclose(sheared[0, 6, 1:5, 0], image[0, 6, 2:6, 0], atol=1e-3)
    np.testing.assert_allclose(sheared[0, 4], image[0, 4], atol=1e-3)


def test_draws_stay_in_range_and_are_independent():
    layer = RandomAffine(rotation=0.1, zoom_xy=0.2, translation=0.05, shear=0.3, seed=1)
    drawn = {key: np.asarray(value) for key, value in layer.draw(2000).items()}
    assert np.abs(drawn["angle"]).max() <= 0.1 * 2 * math.pi and np.abs(drawn["angle"]).max() > 0.5
    assert 0.8 <= drawn["zoom_x"].min() and drawn["zoom_y"].max() <= 1.2 and drawn["zoom_x"].max() > 1.15
    assert np.abs(drawn["shift_x"]).max() <= 0.05 and np.abs(drawn["shear_y"]).max() <= 0.3
    values = np.stack(list(drawn.values()))
    correlation = np.corrcoef(values) - np.eye(len(values))
    assert np.abs(correlation).max() < 0.1


def test_zoom_scales_both_axes_alike_and_zoom_xy_each_on_its_own():
    together = {k: np.asarray(v) for k, v in RandomAffine(zoom=0.2, seed=2).draw(500).items()}
    np.testing.assert_array_equal(together["zoom_x"], together["zoom_y"])
    assert 0.8 <= together["zoom_x"].min() and together["zoom_x"].max() <= 1.2
    both = {k: np.asarray(v) for k, v in RandomAffine(zoom=0.1, zoom_xy=0.1, seed=2).draw(2000).items()}
    ratio = both["zoom_x"] / both["zoom_y"]
    assert ratio.min() < 0.85 and ratio.max() > 1.15 and ratio.min() >= 0.9 / 1.1 - 1e-6
    assert 0.81 - 1e-6 <= both["zoom_x"].min() and both["zoom_x"].max() <= 1.21 + 1e-6


def test_same_seed_same_images_and_inference_is_untouched():
    images = np.repeat(ramp(12), 4, axis=0)
    first = np.asarray(RandomAffine(rotation=0.1, zoom=0.1, seed=5)(images, training=True))
    again = np.asarray(RandomAffine(rotation=0.1, zoom=0.1, seed=5)(images, training=True))
    other = np.asarray(RandomAffine(rotation=0.1, zoom=0.1, seed=6)(images, training=True))
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    assert not np.allclose(first[0], first[1])  # each image draws its own transform
    np.testing.assert_array_equal(np.asarray(RandomAffine(rotation=0.1)(images, training=False)), images)


def test_config_round_trips():
    layer = RandomAffine(rotation=0.1, zoom=0.2, translation=0.3, shear=0.4, zoom_xy=0.5, seed=9)
    clone = RandomAffine.from_config(layer.get_config())
    assert (clone.rotation, clone.zoom, clone.translation, clone.shear, clone.zoom_xy, clone.seed) == \
        (0.1, 0.2, 0.3, 0.4, 0.5, 9)
