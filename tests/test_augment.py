"""Augmentation from params (medclf.data.augment), its preview grid, and the paired with/without comparison."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from medclf.analysis import augmentation_study as study  # noqa: E402
from medclf.evaluation import metrics, records, statistics  # noqa: E402
from medclf.models import registry
from medclf.models.specs import DATASETS
from medclf.plots import training as plots
from medclf.evaluation.predictions import save_predictions  # noqa: E402
from medclf.data.augment import AUGMENTATION_KEYS, augment_variants, build_augmenter, layer_seeds  # noqa: E402


def gradient_images(n: int = 3, size: int = 24, channels: int = 1) -> np.ndarray:
    """Asymmetric uint8 images (a diagonal ramp plus a bright corner block), so every transform shows."""
    yy, xx = np.mgrid[0:size, 0:size]
    image = (40 + 6 * xx + 2 * yy).clip(0, 230).astype(np.uint8)
    image[:5, :5] = 250
    stack = np.repeat(image[None, ..., None], n, axis=0)
    return np.repeat(stack, channels, axis=-1)


# ------------------------------------------------------------------------------- the augmenter


def test_same_seed_same_draws_other_seed_other_draws():
    config = {"flip": "horizontal", "rotation": 0.1, "zoom": 0.1, "brightness": 0.1}
    images = gradient_images(4)
    first = augment_variants(images, config, 3, seed=7)
    assert np.array_equal(first, augment_variants(images, config, 3, seed=7))
    assert not np.array_equal(first, augment_variants(images, config, 3, seed=8))
    assert layer_seeds(7, 3) == layer_seeds(7, 3) and len(set(layer_seeds(7, 3))) == 3


def test_layers_draw_independently():
    """Same-seeded Keras layers draw the same numbers; each layer must get its own seed."""
    augmenter = build_augmenter({"rotation": 0.2, "zoom": 0.2, "brightness": 0.2}, seed=3)
    x = np.zeros((16, 8, 8, 1), np.float32)
    affine, brightness = augmenter.layers
    angles = np.asarray(affine.draw(16)["angle"]).ravel()
    shifts = np.asarray(brightness.get_random_transformation(x, training=True)["rgb_delta"]).ravel()
    assert abs(np.corrcoef(angles, shifts)[0, 1]) < 0.9


def test_geometric_keys_share_one_resampling_layer():
    augmenter = build_augmenter({"flip": "horizontal", "rotation": 0.1, "zoom": 0.1, "translation": 0.1,
                                 "shear": 0.1, "contrast": 0.2}, seed=0)
    assert [layer.name for layer in augmenter.layers][1] == "random_affine" and len(augmenter.layers) == 3
    affine = augmenter.layers[1]
    assert (affine.rotation, affine.zoom, affine.translation, affine.shear) == (0.1, 0.1, 0.1, 0.1)


@pytest.mark.parametrize("key, value", [("flip", "horizontal"), ("rotation", 0.1), ("zoom", 0.2), ("zoom_xy", 0.2),
                                        ("translation", 0.2), ("shear", 0.3), ("brightness", 0.2),
                                        ("contrast", 0.5)])
def test_each_key_changes_the_image_and_keeps_shape_and_range(key, value):
    images = gradient_images(2, channels=3)
    out = augment_variants(images, {key: value}, 6, seed=1)
    assert out.shape == (2, 6, *images.shape[1:]) and out.dtype == np.uint8
    changed = [not np.array_equal(copy, images[0]) for copy in out[0]]
    assert any(changed), f"{key} never changed the image"


def test_flip_mirrors_exactly():
    images = gradient_images(1)
    out = augment_variants(images, {"flip": "horizontal"}, 12, seed=0)[0]
    mirrored = images[0][:, ::-1]
    assert all(np.array_equal(c, images[0]) or np.array_equal(c, mirrored) for c in out)
    assert any(np.array_equal(c, mirrored) for c in out) and any(np.array_equal(c, images[0]) for c in out)
    vertical = augment_variants(images, {"flip": "vertical"}, 12, seed=0)[0]
    assert any(np.array_equal(c, images[0][::-1]) for c in vertical)


def test_brightness_shifts_every_pixel_by_one_amount():
    images = np.full((1, 16, 16, 1), 128, np.uint8)
    images[0, :8] = 100
    out = augment_variants(images, {"brightness": 0.1}, 8, seed=2)[0].astype(np.int64)
    shifts = out - images[0].astype(np.int64)
    for shift in shifts:
        assert np.ptp(shift) <= 1  # the whole image moves by one amount (± rounding)
        assert abs(shift.mean()) <= 0.1 * 255 + 1
    assert len({round(float(s.mean())) for s in shifts}) > 1  # and the amount is random


def test_contrast_keeps_the_mean_and_scales_the_spread():
    images = gradient_images(1)
    out = augment_variants(images, {"contrast": 0.3}, 8, seed=4)[0].astype(np.float64)
    base = images[0].astype(np.float64)
    for copy in out:
        assert abs(copy.mean() - base.mean()) < 3
        assert 0.65 <= copy.std() / base.std() <= 1.35


@pytest.mark.parametrize("key, value", [("rotation", 0.25), ("zoom", 0.4), ("zoom_xy", 0.4), ("translation", 0.3),
                                        ("shear", 0.5)])
def test_nearest_fill_leaves_no_black_borders(key, value):
    images = np.full((2, 20, 20, 1), 180, np.uint8)
    out = augment_variants(images, {key: value}, 5, seed=3)
    assert out.min() >= 179 and out.max() <= 181


def test_no_augmentation_gives_copies_and_none():
    images = gradient_images(2)
    assert build_augmenter({}) is None and build_augmenter(None) is None
    out = augment_variants(images, None, 3)
    assert out.shape == (2, 3, 24, 24, 1) and all(np.array_equal(c, images[0]) for c in out[0])


def test_unknown_key_is_one_line_naming_the_valid_keys():
    with pytest.raises(ValueError) as error:
        build_augmenter({"blur": 1})
    message = str(error.value)
    assert "\n" not in message and "'blur'" in message and all(key in message for key in AUGMENTATION_KEYS)
    with pytest.raises(ValueError, match="mapping"):
        build_augmenter(["flip"])


def test_variants_refuse_bad_input():
    with pytest.raises(ValueError, match="N, height, width, channels"):
        augment_variants(np.zeros((8, 8)), {"flip": "horizontal"}, 2)
    with pytest.raises(ValueError, match="positive integer"):
        augment_variants(gradient_images(1), {"flip": "horizontal"}, 0)


def test_float_images_keep_their_dtype():
    out = augment_variants(gradient_images(1).astype(np.float32), {"rotation": 0.1}, 2)
    assert out.dtype == np.float32 and out.shape == (1, 2, 24, 24, 1)


# ------------------------------------------------------------------------------- preview plot


def test_preview_plot_returns_the_figure():
    images = gradient_images(2, channels=3)
    variants = augment_variants(images, {"rotation": 0.1}, 3)
    fig, axes = plt.subplots(2, 4, squeeze=False)
    assert plots.plot_augmentation_preview(axes, images, variants, ["A", "B"], title="rotation 0.1") is fig
    assert axes[1, 0].get_ylabel() == "B" and axes[0, 0].get_title() == "original"
    with pytest.raises(ValueError, match="grid"):
        plots.plot_augmentation_preview(axes[:, :3], images, variants)
    with pytest.raises(ValueError, match="variants"):
        plots.plot_augmentation_preview(axes, images, variants[:1])
    plt.close(fig)


# ------------------------------------------------------------------------------- settings


def test_settings_per_dataset():
    chest = study.augmentation_settings("chest_xray")
    assert {"S0_cnn_bn5", "S1_cnn_deeper_aug", "S4_cnn_2conv_64", "ours_cnn_ours_chest"} <= set(chest)
    assert study.augmentation_settings("synthetic") == chest
    malaria = study.augmentation_settings("malaria")
    assert list(malaria) == ["ours_cnn_ours_malaria"]
    table = study.settings_table(chest)
    assert list(table.columns) == [*AUGMENTATION_KEYS, "in words"]
    assert table.loc["S4_cnn_2conv_64", "rotation"] == "—"
    assert table.loc["S4_cnn_2conv_64", "in words"] == "flip horizontal, zoom ±20% per axis, shear ±0.2°"


def test_describe_setting():
    assert study.describe_setting({"rotation": 40 / 360, "translation": 0.2, "contrast": 0.2, "brightness": 0.1}) == \
        "rotation ±40°, shift ±20%, brightness ±10%, contrast ×0.8–1.2"
    assert study.describe_setting(None) == "none"


def test_check_models():
    assert study.check_models(["cnn_ours_chest"]) == ["cnn_ours_chest"]
    with pytest.raises(ValueError, match="no augmentation setting"):
        study.check_models(["cnn_deeper"])
    with pytest.raises(ValueError, match="unknown model"):
        study.check_models(["nope"])
    assert study.arm_model_id("x", True) == "x__aug" and study.arm_model_id("x", False) == "x__noaug"


# ------------------------------------------------------------------------------- the pair table


def make_arm(out_dir, name: str, augmented: bool, y, p, y_val, p_val, files=None):
    """Write a record and predictions as run_model does, from hand-made validation and test scores."""
    classes = ["NORMAL", "PNEUMONIA"]
    evaluation = statistics.evaluate_model(y_val, p_val, y, p, classes, n_replicates=50, seed=0)
    model_id = study.arm_model_id(name, augmented)
    record = records.build_record(
        model_id=model_id, model=name, family="cnn", study=None, reported=None, params={"seed": 0},
        spec={"image_size_used": 16},
        data={"dataset": "synthetic", "manifest_hash": "abc", "class_names": classes, "split_counts": {}},
        training={"seconds": 1.0, "seconds_per_epoch": 0.5, "epochs_run": 2, "best_epoch": 2,
                  "mixed_precision": "float32", "history": {},
                  "augmentation": {"flip": "horizontal"} if augmented else None},
        params_count=10, evaluation=evaluation, versions={"python": "test"}, model_file=None)
    files = files if files is not None else [f"test/img{i}.png" for i in range(len(y))]
    save_predictions(out_dir, model_id, files, y, p, classes)
    records.save_record(out_dir, model_id, record)
    return record


@pytest.fixture
def pair(tmp_path):
    rng = np.random.default_rng(0)
    y = np.array([0] * 30 + [1] * 40)
    y_val = np.array([0] * 20 + [1] * 20)
    p_val = np.clip(y_val * 0.5 + rng.uniform(0, 0.5, y_val.size), 0, 1)
    p_no = np.clip(y * 0.3 + rng.uniform(0, 0.7, y.size), 0, 1)
    p_aug = np.clip(y * 0.5 + rng.uniform(0, 0.5, y.size), 0, 1)
    rec_no = make_arm(tmp_path, "m", False, y, p_no, y_val, p_val)
    rec_aug = make_arm(tmp_path, "m", True, y, p_aug, y_val, p_val * 0.9)
    return tmp_path, y, p_no, p_aug, rec_no, rec_aug


def test_pair_table_mcnemar_matches_evaluate(pair):
    out_dir, y, p_no, p_aug, rec_no, rec_aug = pair
    table = study.augmentation_table(out_dir, ["m"])
    assert list(table["arm"]) == ["no_aug", "aug", study.DELTA] and set(table["model"]) == {"m"}
    delta = table.iloc[2]
    expected = metrics.mcnemar(y, (p_aug >= rec_aug["evaluation"]["threshold"]).astype(int),
                                (p_no >= rec_no["evaluation"]["threshold"]).astype(int))
    assert delta["mcnemar_p"] == pytest.approx(expected["p_value"])
    assert delta["mcnemar_statistic"] == pytest.approx(expected["statistic"])
    assert (delta["only_aug_right"], delta["only_no_aug_right"], delta["mcnemar_method"]) == (
        expected["b"], expected["c"], expected["method"])
    acc = [r["evaluation"]["test"]["at_threshold"]["accuracy"] for r in (rec_no, rec_aug)]
    assert table["accuracy"].tolist()[:2] == pytest.approx(acc) and delta["accuracy"] == pytest.approx(acc[1] - acc[0])
    assert table.loc[1, "accuracy_ci_low"] == pytest.approx(rec_aug["evaluation"]["ci"]["accuracy"][0])
    assert delta["accuracy_ci_low"] <= delta["accuracy"] <= delta["accuracy_ci_high"]
    assert delta["roc_auc_ci_low"] <= delta["roc_auc"] <= delta["roc_auc_ci_high"]


def test_pair_aligns_rows_in_any_order(pair):
    out_dir, *_ = pair
    record, pred = study.load_arm(out_dir, "m__aug")
    record_no, pred_no = study.load_arm(out_dir, "m__noaug")
    shuffled = pred.sample(frac=1, random_state=0)
    pd.testing.assert_frame_equal(study.compare_pair(record_no, pred_no, record, shuffled),
                                  study.compare_pair(record_no, pred_no, record, pred))


def test_pair_refuses_misaligned_files(pair):
    out_dir, *_ = pair
    record, pred = study.load_arm(out_dir, "m__aug")
    record_no, pred_no = study.load_arm(out_dir, "m__noaug")
    renamed = pred.assign(file=pred["file"].str.replace("img1.png", "other.png", regex=False))
    with pytest.raises(ValueError, match=r"hold different test images \(1 only in m__aug, 1 only in m__noaug") as error:
        study.compare_pair(record_no, pred_no, record, renamed)
    assert "\n" not in str(error.value)
    relabelled = pred.copy()
    relabelled.loc[0, "true_label"] = 1 - relabelled.loc[0, "true_label"]
    with pytest.raises(ValueError, match="disagree on the true label of 'test/img0.png'"):
        study.compare_pair(record_no, pred_no, record, relabelled)
    with pytest.raises(ValueError, match="twice"):
        study.compare_pair(record_no, pred_no, record, pd.concat([pred.iloc[:-1], pred.iloc[:1]]))
    with pytest.raises(ValueError, match="69 rows but its record was scored on 70"):
        study.compare_pair(record_no, pred_no, record, pred.iloc[1:])
    with pytest.raises(ValueError, match="without augmentation, then the one with it"):
        study.compare_pair(record, pred, record_no, pred_no)
    other = {**record, "data": {**record["data"], "manifest_hash": "zzz"}}
    with pytest.raises(ValueError, match="different data"):
        study.compare_pair(record_no, pred_no, other, pred)
    quick = {**record, "params": {**record["params"], "profile": "quick"}}  # the other arm: no profile
    with pytest.raises(ValueError, match=r"another profile or split \(profile None vs 'quick'\)"):
        study.compare_pair(record_no, pred_no, quick, pred)
    with pytest.raises(FileNotFoundError, match="missing__noaug.json does not exist"):
        study.augmentation_table(out_dir, ["missing"])


def test_models_with_augmentation_exist_for_each_dataset():
    for dataset in DATASETS:
        assert any(registry.get_spec(n).augment for n in registry.model_names(dataset=dataset))


def test_summary_markdown_names_each_model(pair):
    out_dir, *_ = pair
    table = study.augmentation_table(out_dir, ["m"])
    text = study.summary_markdown(table)
    assert text.startswith("- `m`: test accuracy") and "McNemar p = " in text and text.count("\n") == 0
