"""Test-time augmentation: averaged scores, seeded views, a choice made on validation only."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from medclf.config import paths
from medclf.training import experiment
from medclf.models import registry
from medclf.cli import predict
from medclf.evaluation import records, scoring
from medclf.evaluation import tta
from conftest import synthetic_params


def left_half_mean(images: np.ndarray) -> np.ndarray:
    """A 'model' that a horizontal flip changes: the mean of each image's left half, scaled to 0..1."""
    width = images.shape[2]
    return images[:, :, : width // 2].astype(np.float64).mean(axis=(1, 2, 3)) / 255.0


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(6, 8, 8, 1)).astype(np.uint8)


def test_scores_average_the_image_and_its_variants(images):
    whole_mean = images.astype(np.float64).mean(axis=(1, 2, 3)) / 255.0
    # the whole-image mean does not change under a flip: TTA leaves it as it is
    same = tta.tta_scores(lambda x: x.astype(np.float64).mean(axis=(1, 2, 3)) / 255.0, images,
                          {"flip": "horizontal"}, views=3, seed=1)
    np.testing.assert_allclose(same, whole_mean, atol=1e-6)
    # the left half does: every TTA score lies between the plain and the mirrored score
    plain, mirrored = left_half_mean(images), left_half_mean(images[:, :, ::-1])
    scores = tta.tta_scores(left_half_mean, images, {"flip": "horizontal"}, views=8, seed=1)
    low, high = np.minimum(plain, mirrored), np.maximum(plain, mirrored)
    assert np.all(scores >= low - 1e-9) and np.all(scores <= high + 1e-9)
    assert not np.allclose(scores, plain)


def test_same_seed_same_scores_other_seed_other_scores(images):
    augmentation = {"brightness": 0.3}
    first = tta.tta_scores(left_half_mean, images, augmentation, views=2, seed=5)
    np.testing.assert_array_equal(first, tta.tta_scores(left_half_mean, images, augmentation, views=2, seed=5))
    assert not np.allclose(first, tta.tta_scores(left_half_mean, images, augmentation, views=2, seed=6))


@pytest.mark.parametrize("views", [0, -1, 1.5, True])
def test_views_must_be_a_positive_integer(images, views):
    with pytest.raises(ValueError, match="positive integer"):
        tta.tta_scores(left_half_mean, images, {"flip": "horizontal"}, views=views, seed=0)


def test_no_transform_on_is_an_error(images):
    with pytest.raises(ValueError, match="at least one transform"):
        tta.tta_scores(left_half_mean, images, {"flip": None}, views=2, seed=0)


def test_choice_keeps_tta_only_when_validation_auc_rises():
    y = np.array([0, 0, 1, 1])
    plain = np.array([0.1, 0.6, 0.5, 0.9])       # AUC 0.75
    better = np.array([0.1, 0.4, 0.5, 0.9])      # AUC 1.0
    assert tta.choose_on_validation(y, plain, better, 4) == {"views": 4, "val_auc_plain": 0.75,
                                                             "val_auc_tta": 1.0, "used": True}
    assert not tta.choose_on_validation(y, better, plain, 4)["used"]
    assert not tta.choose_on_validation(y, plain, plain * 0.5, 4)["used"]  # same ranking: a tie keeps it plain


def test_spec_needs_an_augmentation_for_tta():
    spec = registry.get_spec("cnn_deeper")
    with pytest.raises(ValueError, match="tta_views"):
        dataclasses.replace(spec, tta_views=2)
    with pytest.raises(ValueError, match="tta_views"):
        dataclasses.replace(registry.get_spec("cnn_deeper_aug"), tta_views=-1)


@pytest.fixture(scope="module")
def tta_params(tmp_path_factory):
    return synthetic_params(tmp_path_factory.mktemp("tta"), model_overrides={"cnn_deeper_aug": {"tta_views": 2}})


@pytest.mark.parametrize("wins", [True, False])
def test_run_model_decides_on_validation_before_scoring_test(tta_params, monkeypatch, wins):
    """The choice sees validation labels and scores only; test images are scored once, after it,
    the chosen way; the record says what was decided and predict's card scores the same way."""
    calls = []
    decide = tta.choose_on_validation

    def spy_choice(y_val, p_plain, p_tta, views):
        calls.append(("choice", len(y_val)))
        return {**decide(y_val, p_plain, p_tta, views), "used": wins}

    real_scores = tta.tta_scores

    def spy_scores(score, images, original=None, **kwargs):
        calls.append(("tta", len(images)))
        return real_scores(score, images, original=original, **kwargs)

    monkeypatch.setattr(tta, "choose_on_validation", spy_choice)
    monkeypatch.setattr(tta, "tta_scores", spy_scores)
    run = experiment.run_model("cnn_deeper_aug", tta_params, model_id=f"tta_{wins}")
    n_val, n_test = len(run.y_val), len(run.y_test)
    assert n_val != n_test  # so the spy can tell the splits apart
    expected = [("tta", n_val), ("choice", n_val)] + ([("tta", n_test)] if wins else [])
    assert calls == expected
    record = run.record["evaluation"]["tta"]
    assert record["used"] is wins and record["views"] == 2 and record["augmentation"] == run.spec.augmentation
    x_test = experiment.DataCache(tta_params).get(32, run.spec.color_mode).arrays("test")[0]
    assert np.allclose(run.p_test, scoring.predict_probabilities(run.model, x_test)) is not wins
    card = predict.ModelCard.from_record(json.loads(records.record_path(
        paths.run_dir(tta_params), f"tta_{wins}").read_text()))
    assert (card.tta is not None) is wins
    assert ("→ kept" if wins else "→ not kept") in experiment.tta_line(run)
    np.testing.assert_allclose(card.score(run.model, x_test), run.p_test, atol=1e-6)


def test_run_without_augmentation_scores_plainly(tta_params):
    run = experiment.run_model("cnn_deeper_aug", tta_params, model_id="tta_noaug", augmentation=False)
    assert run.record["evaluation"]["tta"] is None and experiment.tta_line(run) is None
