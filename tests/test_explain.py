"""Explanations on tiny models: Grad-CAM, feature maps, LIME, error cases, model choice, plots."""

from __future__ import annotations

import copy

import matplotlib

matplotlib.use("Agg")

import keras  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from keras import layers  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from medclf.models.files import ModelFileError, file_sha256  # noqa: E402

from medclf.analysis import explain
from medclf.evaluation import scoring, selection  # noqa: E402
from medclf.plots import explain_plots
from medclf.models import builders, registry  # noqa: E402

SIZE = 32


def smooth_image(channels: int, seed: int = 0) -> np.ndarray:
    """A uint8 image with a few soft blobs (SLIC finds several superpixels in it)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:SIZE, :SIZE]
    image = np.zeros((SIZE, SIZE), np.float64)
    for _ in range(4):
        cy, cx = rng.uniform(4, SIZE - 4, 2)
        image += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 30.0)
    image = (255 * image / image.max()).astype(np.uint8)
    return np.repeat(image[..., None], channels, axis=-1)


def tiny_cnn(channels: int = 1, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    return registry.build_model("cnn_deeper", (SIZE, SIZE, channels))


def nested_model(seed: int = 0) -> tuple[keras.Model, keras.Model]:
    """A grey-input model whose conv layers sit in a nested RGB ``backbone`` (like a transfer model),
    and a flat copy with the same weights."""
    keras.utils.set_random_seed(seed)
    inner_in = keras.Input((SIZE, SIZE, 3))
    x = layers.Conv2D(8, 3, padding="same", activation="relu", name="b_conv1")(inner_in)
    x = layers.MaxPooling2D(2, name="b_pool1")(x)
    x = layers.Conv2D(16, 3, padding="same", activation="relu", name="b_conv2")(x)
    backbone = keras.Model(inner_in, x, name="backbone")

    def outer(body):
        image = keras.Input((SIZE, SIZE, 1), name="image")
        y = layers.Rescaling(1 / 255, name="rescale")(image)
        y = layers.Concatenate(name="to_rgb")([y, y, y])
        y = body(y)
        y = layers.GlobalAveragePooling2D(name="gap")(y)
        return keras.Model(image, layers.Dense(1, activation="sigmoid", name="output")(y))

    nested = outer(backbone)
    flat_layers = [layers.Conv2D(8, 3, padding="same", activation="relu", name="b_conv1"),
                   layers.MaxPooling2D(2, name="b_pool1"),
                   layers.Conv2D(16, 3, padding="same", activation="relu", name="b_conv2")]

    def body(y):
        for layer in flat_layers:
            y = layer(y)
        return y

    flat = outer(body)
    for name in ("b_conv1", "b_conv2"):
        flat.get_layer(name).set_weights(backbone.get_layer(name).get_weights())
    flat.get_layer("output").set_weights(nested.get_layer("output").get_weights())
    return nested, flat


# --------------------------------------------------------------------------- Grad-CAM


def test_gradcam_shape_range_and_pure():
    model = tiny_cnn()
    image = smooth_image(1)
    before = [w.copy() for w in model.get_weights()]
    cam = explain.gradcam(model, image)
    assert cam.shape == (SIZE, SIZE) and cam.dtype == np.float32
    assert 0.0 <= cam.min() and cam.max() <= 1.0
    np.testing.assert_array_equal(cam, explain.gradcam(model, image))
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))
    assert plt.get_fignums() == []  # computing draws nothing
    assert explain.gradcam_layer(model) == "conv3"  # the last conv, not the pooling after it


def test_gradcams_batch_matches_single_images():
    model = tiny_cnn(channels=3)
    images = np.stack([smooth_image(3, seed) for seed in range(3)])
    batch = explain.gradcams(model, images)
    assert batch.shape == (3, SIZE, SIZE)
    np.testing.assert_allclose(batch[1], explain.gradcam(model, images[1]), atol=1e-5)


def test_gradcam_on_an_ensemble_averages_the_members():
    members = [tiny_cnn(seed=s) for s in (1, 2)]
    image = smooth_image(1)
    each = [explain.gradcam(m, image) for m in members]
    ensemble = builders.build_ensemble(members)
    cam = explain.gradcam(ensemble, image)
    mean = np.mean(each, axis=0)
    np.testing.assert_allclose(cam, mean / mean.max(), atol=1e-5)
    assert explain.ensemble_members(ensemble) == members


def test_gradcam_inside_a_nested_sub_model_matches_the_flat_model():
    nested, flat = nested_model()
    image = smooth_image(1)
    np.testing.assert_allclose(nested.predict(image[None], verbose=0), flat.predict(image[None], verbose=0), atol=1e-6)
    assert explain.gradcam_layer(nested) == "backbone/b_conv2"
    cam = explain.gradcam(nested, image)
    assert cam.shape == (SIZE, SIZE) and cam.max() == pytest.approx(1.0)
    np.testing.assert_allclose(cam, explain.gradcam(flat, image), atol=1e-4)
    np.testing.assert_allclose(explain.gradcam(nested, image, "b_conv1"), explain.gradcam(flat, image, "b_conv1"),
                               atol=1e-4)


def test_gradcam_refuses_dense_networks_and_bad_input():
    ann = registry.build_model("ann_deep", (SIZE, SIZE, 1))
    assert not explain.supports_gradcam(ann)
    with pytest.raises(ValueError, match="use LIME"):
        explain.gradcam(ann, smooth_image(1))
    with pytest.raises(ValueError, match="takes images of shape"):
        explain.gradcam(tiny_cnn(), smooth_image(3))
    with pytest.raises(ValueError, match="no layer 'nope'"):
        explain.gradcam(tiny_cnn(), smooth_image(1), "nope")


# --------------------------------------------------------------------------- feature maps


def test_feature_maps_are_the_conv_layers_in_order():
    model = registry.build_model("cnn_bn5", (SIZE, SIZE, 1))
    maps = explain.feature_maps(model, smooth_image(1))
    assert list(maps) == ["conv1", "conv2", "conv3", "conv4", "conv5"]
    assert [m.shape for m in maps.values()] == [(32, 32, 32), (16, 16, 64), (8, 8, 64), (4, 4, 128), (2, 2, 256)]
    picked = explain.feature_maps(model, smooth_image(1), ["conv2"])
    np.testing.assert_array_equal(picked["conv2"], maps["conv2"])


def test_feature_maps_of_nested_models_and_ensembles():
    nested, _ = nested_model()
    maps = explain.feature_maps(nested, smooth_image(1))
    assert {k: v.shape for k, v in maps.items()} == {"backbone/b_conv1": (32, 32, 8), "backbone/b_conv2": (16, 16, 16)}
    ensemble = builders.build_ensemble([tiny_cnn(seed=1), tiny_cnn(seed=2)])
    assert list(explain.feature_maps(ensemble, smooth_image(1))) == ["member1/conv1", "member1/conv2", "member1/conv3"]
    with pytest.raises(ValueError, match="no convolution layer"):
        explain.feature_maps(registry.build_model("ann_10_adam", (SIZE, SIZE, 1)), smooth_image(1))


# --------------------------------------------------------------------------- LIME


@pytest.mark.parametrize("channels", [1, 3])
def test_lime_is_reproducible_with_a_seed(channels):
    model = tiny_cnn(channels)
    image = smooth_image(channels)
    first = explain.lime_explanation(model, image, num_samples=60, seed=3, n_segments=12)
    again = explain.lime_explanation(model, image, num_samples=60, seed=3, n_segments=12)
    assert first.image.shape == (SIZE, SIZE, 3) and first.label == 1
    assert first.weights.shape == (SIZE, SIZE)
    np.testing.assert_array_equal(first.weights, again.weights)
    assert len(np.unique(first.segments)) >= 2
    vmax = np.abs(first.weights).max()
    assert np.isfinite(vmax) and vmax > 0  # a symmetric colour scale -vmax..vmax exists
    np.testing.assert_array_equal(first.weights, explain.superpixel_weights(first.explanation, 1))


def test_lime_classifier_returns_two_columns_for_grey_models():
    model = tiny_cnn(1)
    probs = explain.lime_classifier(model)(np.repeat(smooth_image(1)[None], 3, axis=-1).repeat(2, axis=0))
    assert probs.shape == (2, 2)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0)
    np.testing.assert_allclose(probs[:, 1], scoring.predict_probabilities(model, smooth_image(1)[None])[0], atol=1e-6)


def test_segment_falls_back_to_a_grid_on_flat_images():
    labels = explain.segment(np.full((SIZE, SIZE, 3), 100, np.uint8), n_segments=16)
    assert labels.min() == 0 and len(np.unique(labels)) == 16


def test_top_superpixels_split_by_sign():
    result = explain.lime_explanation(tiny_cnn(1), smooth_image(1), num_samples=40, seed=0, n_segments=12)
    favour, against = explain.top_superpixels(result, num_features=3)
    assert not (favour & against).any()
    assert (result.weights[favour] > 0).all() and (result.weights[against] < 0).all()


# --------------------------------------------------------------------------- errors and model choice


def test_error_cases_are_exactly_the_fn_and_fp_most_confident_first():
    frame = pd.DataFrame({"file": [f"f{i}" for i in range(8)], "true_label": [1, 1, 1, 0, 0, 0, 1, 0],
                          "true_class": ["P", "P", "P", "N", "N", "N", "P", "N"],
                          "probability": [0.10, 0.29, 0.30, 0.31, 0.90, 0.05, 0.01, 0.30]})
    errors = explain.error_cases(frame, threshold=0.30)
    assert errors["file"].tolist() == ["f6", "f0", "f1", "f4", "f3", "f7"]
    assert errors["error"].tolist() == ["false negative"] * 3 + ["false positive"] * 3
    np.testing.assert_allclose(errors["wrong_confidence"], [0.99, 0.90, 0.71, 0.90, 0.31, 0.30])
    assert explain.error_cases(frame, threshold=0.0)["error"].eq("false positive").all()
    with pytest.raises(ValueError, match="probability"):
        explain.error_cases(frame.drop(columns="probability"), 0.5)


def make_record(model_id: str, family: str, val_auc: float, test_auc: float, model_file: str | None = None) -> dict:
    at = lambda auc: {"at_threshold": {"roc_auc": auc}, "at_0.5": {"roc_auc": auc}}  # noqa: E731
    return {"model_id": model_id, "family": family, "model_file": model_file or f"models/{model_id}.keras",
            "spec": {"image_size_used": 32, "color_mode": "grayscale"},
            "evaluation": {"threshold": 0.5, "val": at(val_auc), "test": at(test_auc)}}


def test_models_to_explain_are_chosen_on_validation_never_test():
    records = [make_record("cnn_a", "cnn", val_auc=0.90, test_auc=0.99),
               make_record("cnn_b", "cnn", val_auc=0.95, test_auc=0.70),
               make_record("ann_a", "ann", val_auc=0.80, test_auc=0.60),
               make_record("ann_b", "ann", val_auc=0.70, test_auc=0.95),
               make_record("svm", "svm", val_auc=0.99, test_auc=0.99, model_file="models/svm.joblib")]
    best = selection.family_bests(explain.explainable(records))
    assert {family: r["model_id"] for family, r in best.items()} == {"cnn": "cnn_b", "ann": "ann_a"}
    # changing test numbers changes nothing
    shuffled = copy.deepcopy(records)
    for r in shuffled:
        r["evaluation"]["test"]["at_threshold"]["roc_auc"] = 1 - r["evaluation"]["test"]["at_threshold"]["roc_auc"]
    assert [r["model_id"] for r in selection.family_bests(explain.explainable(shuffled)).values()] == ["ann_a", "cnn_b"]
    table = explain.selection_table(records)
    assert "test" not in " ".join(table.columns)
    assert table.set_index("model_id")["selection"].to_dict()["svm"] == "no saved Keras model"


def test_comparison_pair_prefers_two_families_by_validation():
    records = [make_record("cnn_a", "cnn", 0.90, 0.5), make_record("cnn_b", "cnn", 0.95, 0.5),
               make_record("ann_a", "ann", 0.80, 0.99)]
    assert [r["model_id"] for r in explain.comparison_pair(records)] == ["cnn_b", "ann_a"]
    assert [r["model_id"] for r in explain.comparison_pair(records[:2])] == ["cnn_b", "cnn_a"]


def test_pick_examples_and_images_for(tmp_path):
    frame = pd.DataFrame({"file": [f"f{i}" for i in range(6)], "true_label": [0, 1] * 3,
                          "true_class": ["N", "P"] * 3, "probability": np.linspace(0, 1, 6)})
    picked = explain.pick_examples(frame, per_class=2, seed=0)
    assert picked["true_label"].tolist() == [0, 0, 1, 1]
    assert picked.equals(explain.pick_examples(frame, per_class=2, seed=0))

    class FakeDataset:
        frame = pd.DataFrame({"relpath": ["f2", "f0", "f1"]})
        images = np.arange(3).reshape(3, 1, 1, 1)

    assert explain.images_for(FakeDataset, ["f0", "f2"]).ravel().tolist() == [1, 0]
    with pytest.raises(ValueError, match="not in the loaded data set"):
        explain.images_for(FakeDataset, ["f9"])


def test_load_model_round_trip_and_missing_file(tmp_path):
    model = tiny_cnn()
    (tmp_path / "models").mkdir()
    model.save(tmp_path / "models" / "m.keras")
    record = make_record("m", "cnn", 0.9, 0.9)
    with pytest.raises(ModelFileError, match="records no model_sha256"):
        explain.load_model(record, tmp_path)
    record["model_sha256"] = "0" * 64  # the record of another model file
    with pytest.raises(ModelFileError, match="written for another model file"):
        explain.load_model(record, tmp_path)
    record["model_sha256"] = file_sha256(tmp_path / "models" / "m.keras")
    loaded = explain.load_model(record, tmp_path)
    np.testing.assert_allclose(explain.gradcam(loaded, smooth_image(1)), explain.gradcam(model, smooth_image(1)),
                               atol=1e-5)
    assert explain.input_spec(record) == (32, "grayscale")
    with pytest.raises(FileNotFoundError, match="save_models=true"):
        explain.load_model(make_record("gone", "cnn", 0.9, 0.9), tmp_path)


# --------------------------------------------------------------------------- plots


def test_plot_helpers_return_figures_and_write_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = tiny_cnn(1)
    image = smooth_image(1)
    maps = explain.feature_maps(model, image)
    cam = explain.gradcam(model, image)
    lime = explain.lime_explanation(model, image, num_samples=40, seed=0, n_segments=12)
    errors = pd.DataFrame({"file": ["a/b.png", "c.png"], "true_class": ["P", "N"], "probability": [0.1, 0.9],
                           "error": ["false negative", "false positive"]})
    figures = []
    _, axes = plt.subplots(2, 4)
    figures.append(explain_plots.plot_channel_grid(axes, maps["conv1"], "conv1"))
    _, axes = plt.subplots(1, 4)
    figures.append(explain_plots.plot_channel_through_layers(axes, maps, channel=1, image=image))
    _, ax = plt.subplots()
    figures.append(explain_plots.plot_lime_boundaries(ax, lime, 3, "lime"))
    fig, ax = plt.subplots()
    figures.append(explain_plots.plot_superpixel_weights(ax, lime.weights, "weights"))
    image_artist = ax.get_images()[0]
    assert image_artist.get_clim()[0] == -image_artist.get_clim()[1]  # symmetric about zero
    assert len(fig.axes) == 2  # the colour bar
    _, ax = plt.subplots()
    figures.append(explain_plots.plot_gradcam(ax, image, cam, "cam"))
    rows, cols = explain_plots.gallery_shape(2, with_cams=True)
    _, axes = plt.subplots(rows, cols, squeeze=False)
    figures.append(explain_plots.plot_error_gallery(axes, np.stack([image, image]), errors, np.stack([cam, cam])))
    _, axes = plt.subplots(1, 3, squeeze=False)
    figures.append(explain_plots.plot_error_gallery(axes, np.stack([image, image]), errors))
    _, axes = plt.subplots(1, 5)
    figures.append(explain_plots.plot_lime_comparison(axes, image, {"a": lime, "b": lime}))
    assert all(isinstance(f, Figure) for f in figures)
    assert list(tmp_path.iterdir()) == []
    plt.close("all")


def test_active_channel_avoids_dead_channels():
    maps = {"conv1": np.ones((4, 4, 3)), "conv2": np.ones((2, 2, 5))}
    maps["conv2"][..., 0] = 0
    maps["conv1"][..., 2] = 5
    maps["conv2"][..., 2] = 3
    assert explain.active_channel(maps) == 2
    maps["conv2"][..., 2] = 0
    assert explain.active_channel(maps) == 1


# --------------------------------------------------------------------------- what notebook 05 calls


class _Images:
    """Stands in for a loaded data set: one image per file."""

    def __init__(self, files: list[str], images: np.ndarray):
        self.frame, self.images = pd.DataFrame({"relpath": files}), images


def loaded_model(model_id: str, model: keras.Model, threshold: float = 0.5) -> explain.LoadedModel:
    """A LoadedModel over four smooth images whose stored probabilities are the model's own."""
    files = [f"img{i}.png" for i in range(4)]
    images = np.stack([smooth_image(1, seed=i) for i in range(4)])
    p = scoring.predict_probabilities(model, images)
    predictions = pd.DataFrame({"file": files, "true_label": [0, 1, 0, 1], "true_class": ["N", "P", "N", "P"],
                                "probability": p})
    record = {"model_id": model_id, "evaluation": {"threshold": threshold}}
    return explain.LoadedModel(record, model, predictions, _Images(files, images))


def test_lime_comparison_explains_every_file_with_every_model_alike():
    a, b = loaded_model("a", tiny_cnn(1, seed=0)), loaded_model("b", tiny_cnn(1, seed=1))
    files = ["img1.png", "img2.png"]
    explained, log = explain.lime_comparison([a, b], files, num_samples=30, seed=2, n_segments=8)
    assert len(explained) == 2 and [len(row) for row in explained] == [2, 2]
    label = next(iter(explained[0]))
    assert label == f"a (p={a.predictions.set_index('file').loc['img1.png', 'probability']:.3f})"
    single = explain.lime_explanation(a.model, a.images(["img1.png"])[0], num_samples=30, seed=2, n_segments=8)
    np.testing.assert_array_equal(explained[0][label].weights, single.weights)
    assert [(row["model_id"], row["method"], row["file"]) for row in log] == [
        ("a", "LIME", "img1.png"), ("b", "LIME", "img1.png"), ("a", "LIME", "img2.png"), ("b", "LIME", "img2.png")]


def test_gradcam_table_checks_the_stored_probabilities():
    subject = loaded_model("a", tiny_cnn(1))
    images, cams, log = explain.gradcam_table(subject, ["img3.png", "img0.png"])
    assert images.shape == (2, SIZE, SIZE, 1) and cams.shape == (2, SIZE, SIZE)
    assert [row["file"] for row in log] == ["img3.png", "img0.png"]
    np.testing.assert_allclose([r["probability"] for r in log], [r["probability_recomputed"] for r in log], atol=1e-6)


def test_error_galleries_count_and_show_the_most_confident_errors():
    subject = loaded_model("a", tiny_cnn(1))
    subject.predictions["probability"] = [0.9, 0.1, 0.6, 0.2]  # 2 false positives, 2 false negatives at 0.5
    counts, galleries = explain.error_galleries([subject], per_kind=1)
    assert counts.to_dict("records") == [{"model_id": "a", "threshold": 0.5, "false negative": 2,
                                          "false positive": 2, "test_images": 4}]
    gallery = galleries[0]
    assert gallery.shown["file"].tolist() == ["img1.png", "img0.png"]  # most confident of each kind
    assert gallery.images.shape == (2, SIZE, SIZE, 1) and gallery.cams.shape == (2, SIZE, SIZE)
    assert [row["method"] for row in explain.gallery_log(gallery)] == ["error gallery (false negative)",
                                                                       "error gallery (false positive)"]
    subject.predictions["probability"] = [0.1, 0.9, 0.2, 0.8]  # no errors
    counts, galleries = explain.error_galleries([subject], per_kind=3)
    assert galleries[0].shown.empty and galleries[0].images is None and counts["false negative"].tolist() == [0]


def test_explained_table_joins_the_stored_predictions_and_the_feature_map_choice():
    cnn = loaded_model("cnn_a", tiny_cnn(1))
    log = [{"model_id": "cnn_a", "method": "LIME", "file": "img1.png", "seconds": 0.5}]
    table = explain.explained_table(log, {"cnn_a": cnn})
    assert list(table.columns) == list(explain.EXPLAINED_COLUMNS)
    assert table.loc[0, "true_class"] == "P" and table.loc[0, "probability"] == cnn.predictions.loc[1, "probability"]
    examples = cnn.predictions.iloc[[0, 3]]
    assert explain.feature_map_subject({"cnn": cnn}, examples) == (cnn, "img3.png")  # first disease example
    dense = loaded_model("ann", registry.build_model("ann_10_adam", (SIZE, SIZE, 1)))
    assert explain.feature_map_subject({"ann": dense}, examples) is None


@pytest.mark.parametrize("size, grid", [(64, 16), (128, 32)])
def test_gradcam_grid_is_the_read_layers_own_resolution(size, grid):
    """05 states each model's heat-map resolution from the model itself: cnn_deeper reads conv3 after two
    poolings, so its grid is a quarter of the input side (16×16 at the demo's 64 px, 32×32 at 128)."""
    model = registry.build_model("cnn_deeper", (size, size, 3))
    assert explain.gradcam_grid(model) == ("conv3", grid, grid)
    assert explain.gradcam_grid(registry.build_model("ann_deep", (size, size, 1))) is None
