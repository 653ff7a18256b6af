"""Plot helpers draw and return figures without writing files; artifacts saves them under output_dir."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from medclf.reporting import artifacts
from medclf.analysis import eda
from medclf.plots import common  # noqa: E402
from medclf.plots import eda as plots  # noqa: E402
from medclf.data.dataset import FRAME_COLUMNS, Dataset  # noqa: E402

CLASSES = ["Uninfected", "Parasitized"]


def make_dataset(channels: int) -> Dataset:
    """Ten random images, 5 per class, spread over the three splits."""
    rng = np.random.default_rng(0)
    splits = ["train"] * 6 + ["val"] * 2 + ["test"] * 2
    frame = pd.DataFrame({
        "relpath": [f"f{i}.png" for i in range(10)], "class_name": [CLASSES[i % 2] for i in range(10)],
        "label": [i % 2 for i in range(10)], "source_split": "", "split": splits,
        "group": [f"g{i // 2}" for i in range(10)], "sha256": [f"{i:064x}" for i in range(10)],
        "file_bytes": 100, "orig_width": rng.integers(50, 150, 10), "orig_height": rng.integers(50, 150, 10),
        "orig_mode": "RGB"}, columns=list(FRAME_COLUMNS))
    images = rng.integers(0, 256, (10, 8, 8, channels), dtype=np.uint8)
    return Dataset("malaria", frame, images, CLASSES, "Parasitized", pd.DataFrame(columns=["relpath", "reason"]),
                   "0" * 16, seed=1)


@pytest.fixture(autouse=True)
def _in_empty_dir(tmp_path, monkeypatch):
    """Run each test in an empty folder and check afterwards that plotting wrote nothing there."""
    monkeypatch.chdir(tmp_path)
    yield
    plt.close("all")


def _assert_nothing_written(path):
    assert list(path.iterdir()) == []


@pytest.mark.parametrize("channels", [1, 3])
def test_plot_helpers_return_figures(channels, tmp_path):
    ds = make_dataset(channels)
    counts = eda.class_counts(ds)
    figures = []

    _, ax = plt.subplots()
    figures.append(plots.plot_counts_bar(ax, counts))
    _, ax = plt.subplots()
    figures.append(plots.plot_class_pie(ax, counts, "val"))
    samples = eda.sample_indices(ds, n=3)
    _, axes = plt.subplots(2, 3, squeeze=False)
    figures.append(plots.plot_sample_grid(axes, ds.images, samples, titles=ds.frame["relpath"].tolist()))
    _, ax = plt.subplots()
    figures.append(plots.plot_intensity_histograms(ax, eda.pixel_histograms(ds)))
    _, ax = plt.subplots()
    figures.append(plots.plot_image_mean_hist(ax, eda.image_stats(ds), ds.class_names))
    _, ax = plt.subplots()
    figures.append(plots.plot_image_sizes(ax, ds.frame, ds.class_names))
    _, axes = plt.subplots(1, 2)
    figures.append(plots.plot_mean_images(axes, eda.mean_images(ds)))
    _, axes = plt.subplots(1, 2)
    figures.append(plots.plot_blur(axes, ds.images[0], eda.gaussian_blur(ds.images[0])))
    if channels == 3:
        _, axes = plt.subplots(1, 4)
        figures.append(plots.plot_hsv(axes, ds.images[0], eda.hsv_channels(ds.images[0])))

    assert all(isinstance(fig, Figure) for fig in figures)
    _assert_nothing_written(tmp_path)


def test_grayscale_uses_gray_colormap():
    _, ax = plt.subplots()
    common.show_image(ax, np.zeros((4, 4, 1), np.uint8))
    assert ax.images[0].get_cmap().name == "gray"
    assert ax.images[0].get_clim() == (0, 255)


def test_sample_grid_fills_rows_per_class():
    ds = make_dataset(1)
    samples = {"Uninfected": np.array([0, 2]), "Parasitized": np.array([1])}
    _, axes = plt.subplots(2, 2, squeeze=False)
    plots.plot_sample_grid(axes, ds.images, samples)
    assert axes[0, 0].get_ylabel() == "Uninfected" and axes[1, 0].get_ylabel() == "Parasitized"
    assert len(axes[0, 1].images) == 1 and not axes[1, 1].axison


def test_empty_split_pie_does_not_fail():
    counts = pd.DataFrame({"split": ["val", "val"], "class_name": CLASSES, "count": [0, 0]})
    _, ax = plt.subplots()
    assert isinstance(plots.plot_class_pie(ax, counts, "val"), Figure)


# --------------------------------------------------------------------------- artifacts


def _params(tmp_path, dataset):
    return {"dataset": dataset, "profile": "quick", "output_dir": str(tmp_path / "out")}


def _stamped(fig) -> bool:
    return any(t.get_text() == artifacts.SYNTHETIC_LABEL for t in fig.texts)


def test_save_figure_real_data_not_stamped(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1])
    path = artifacts.save_figure(fig, _params(tmp_path, "malaria"), "01_eda", "line")
    assert path == tmp_path / "out" / "malaria" / "quick" / "figures" / "01_eda" / "line.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not _stamped(fig)
    assert [p.name for p in path.parent.iterdir()] == ["line.png"]  # no temporary file left


def test_save_figure_synthetic_is_stamped_once(tmp_path):
    fig, _ = plt.subplots()
    params = _params(tmp_path, "synthetic")
    artifacts.save_figure(fig, params, "01_eda", "a")
    artifacts.save_figure(fig, params, "01_eda", "b")
    stamps = [t for t in fig.texts if t.get_text() == artifacts.SYNTHETIC_LABEL]
    assert len(stamps) == 1 and stamps[0].get_color() == "red"
    assert (tmp_path / "out" / "synthetic" / "quick" / "figures" / "01_eda" / "b.png").is_file()


def test_publish_figure_saves_and_closes(tmp_path):
    fig, _ = plt.subplots()
    path = artifacts.publish_figure(fig, _params(tmp_path, "chest_xray"), "01_eda", "x")
    assert path.is_file() and not plt.fignum_exists(fig.number)


def test_save_table(tmp_path):
    frame = pd.DataFrame({"NORMAL": [1, 2]}, index=pd.Index(["train", "test"], name="split"))
    csv, md = artifacts.save_table(frame, _params(tmp_path, "chest_xray"), "counts")
    assert csv == tmp_path / "out" / "chest_xray" / "quick" / "tables" / "counts.csv"
    assert pd.read_csv(csv).to_dict("list") == {"split": ["train", "test"], "NORMAL": [1, 2]}
    assert md.read_text().startswith("| split")
    assert "SYNTHETIC" not in md.read_text()


def test_save_table_synthetic_marks_markdown(tmp_path):
    csv, md = artifacts.save_table(pd.DataFrame({"a": [1]}), _params(tmp_path, "synthetic"), "t")
    first_line = md.read_text().splitlines()[0]
    assert "SYNTHETIC DATA" in first_line
    assert pd.read_csv(csv).to_dict("list") == {"a": [1]}


# --------------------------------------------------------------------------- seaborn, layout, stamps

import seaborn as sns  # noqa: E402
from matplotlib.container import BarContainer  # noqa: E402
from types import SimpleNamespace  # noqa: E402

from medclf.plots import compare_plots, evaluation  # noqa: E402

CHEST = ["NORMAL", "PNEUMONIA"]


def _recalls() -> pd.DataFrame:
    rows = [(m, f, c, r) for m, f, pair in (("svm_a", "svm", (0.4, 1.0)), ("cnn_long_model_name", "cnn", (0.9, 0.97)))
            for c, r in zip(CHEST, pair)]
    frame = pd.DataFrame(rows, columns=["model_id", "family", "class", "recall"])
    return frame.assign(ci_low=frame["recall"] - 0.1, ci_high=(frame["recall"] + 0.05).clip(upper=1))


def _mcnemar() -> pd.DataFrame:
    return pd.DataFrame({"model_id": ["a", "b", "c"], "best_model_id": "best", "p_value": [0.001, 0.5, 0.01],
                         "only_model_right": [1, 3, 9], "only_best_right": [12, 4, 2]})


def _all_models() -> pd.DataFrame:
    return pd.DataFrame({"family": ["svm", "cnn", "cnn", "transfer"], "model_id": ["svm_a", "cnn_a", "cnn_b", "tl_a"],
                         "train_seconds": [0.0, 2.5, 2.6, 300.0], "accuracy": [0.7, 0.52, 0.52, 0.52],
                         "accuracy_ci_low": [0.6, 0.4, 0.4, 0.4], "accuracy_ci_high": [0.8, 0.62, 0.62, 0.62],
                         "overall_best": [True, False, False, False]})


def _per_image() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"class_name": CHEST * 20, "mean": rng.uniform(50, 200, 40)})


def _histograms() -> pd.DataFrame:
    return pd.DataFrame({"NORMAL": np.full(256, 1 / 256), "PNEUMONIA": np.linspace(0, 2 / 256, 256)},
                        index=pd.RangeIndex(256, name="value"))


#: One call per kind of figure seaborn draws: (name, function drawing on fresh axes).
SEABORN_FIGURES = {
    "confusion heat map": lambda: evaluation.plot_confusion(plt.subplots()[1], [[40, 10], [5, 45]], CHEST, True),
    "per-class recall bars": lambda: compare_plots.plot_recall_bars(plt.subplots()[1], _recalls(), CHEST),
    "McNemar bars": lambda: compare_plots.plot_mcnemar(plt.subplots()[1], _mcnemar()),
    "accuracy and training time": lambda: compare_plots.plot_accuracy_vs_time(plt.subplots(1, 2, sharey=True)[1],
                                                                             _all_models()),
    "EDA pixel-value distributions": lambda: plots.plot_intensity_histograms(plt.subplots()[1], _histograms()),
    "EDA per-image brightness": lambda: plots.plot_image_mean_hist(plt.subplots()[1], _per_image(), CHEST),
}


@pytest.mark.parametrize("kind", list(SEABORN_FIGURES))
def test_seaborn_draws_the_statistical_figures(kind, monkeypatch, tmp_path):
    """Each of these figures is drawn by a seaborn function (spied on), returned, and nothing is written."""
    called = []
    for name in ("heatmap", "barplot", "histplot", "lineplot", "scatterplot", "pointplot"):
        original = getattr(sns, name)
        monkeypatch.setattr(sns, name, lambda *a, _f=original, _n=name, **k: (called.append(_n), _f(*a, **k))[1])
    fig = SEABORN_FIGURES[kind]()
    assert isinstance(fig, Figure)
    assert called, f"{kind}: no seaborn function drew it"
    _assert_nothing_written(tmp_path)


def _overlaps(a, b) -> bool:
    return a.x0 < b.x1 and b.x0 < a.x1 and a.y0 < b.y1 and b.y0 < a.y1


@pytest.mark.parametrize("draw", [
    lambda ax: compare_plots.plot_recall_bars(ax, _recalls(), CHEST),
    lambda ax: compare_plots.plot_mcnemar(ax, _mcnemar()),
    lambda ax: plots.plot_counts_bar(ax, pd.DataFrame({"split": ["train"] * 2 + ["test"] * 2, "class_name": CHEST * 2,
                                                       "count": [100, 300, 50, 150]})),
], ids=["recall bars", "mcnemar", "class counts"])
def test_legends_sit_off_the_bars(draw):
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    draw(ax)
    fig.canvas.draw()
    legend = ax.get_legend().get_window_extent()
    bars = [bar.get_window_extent() for c in ax.containers if isinstance(c, BarContainer) for bar in c]
    assert bars and not any(_overlaps(legend, bar) for bar in bars)


def _run(history: dict) -> SimpleNamespace:
    rng = np.random.default_rng(0)
    y = np.array([0, 1] * 20)
    p = np.clip(y * 0.4 + rng.uniform(0, 0.6, y.size), 0, 1)
    return SimpleNamespace(model_id="m", class_names=CHEST, threshold=0.5, y_val=y, p_val=p, y_test=y, p_test=p,
                           training=SimpleNamespace(history=history, best_epoch=2 if history else None),
                           record={"evaluation": {"test": {"at_threshold": {"confusion_matrix": [[15, 5], [3, 17]]}}}})


@pytest.mark.parametrize("history", [{}, {"loss": [0.7, 0.5], "val_loss": [0.7, 0.6], "auc": [0.6, 0.8],
                                          "val_auc": [0.6, 0.7]}], ids=["one-step fit", "epochs"])
def test_model_summary_has_no_empty_panel(history):
    run = _run(history)
    n = evaluation.summary_panels(run)
    assert n == (5 if history else 3)
    fig, axes = plt.subplots(1, n)
    evaluation.plot_model_summary(axes, run)
    for ax in axes:  # every panel draws data: lines, an image or cells, never just a sentence
        assert ax.axison and (ax.lines or ax.images or ax.collections or ax.patches), ax.get_title()
    with pytest.raises(ValueError, match="summary_panels"):
        evaluation.plot_model_summary(plt.subplots(1, n + 1)[1], run)


def test_synthetic_stamp_sits_above_every_title(tmp_path):
    fig, axes = plt.subplots(2, 3, figsize=(6, 4))
    fig.subplots_adjust(top=0.95)  # no layout engine: the titles reach above the figure's top edge
    for ax in axes.flat:
        ax.imshow(np.zeros((4, 4)))
        ax.set_title("model\nfile.jpeg\np=0.5 (t=0.4)", fontsize=9)
    fig.suptitle("most confident errors")
    artifacts.save_figure(fig, _params(tmp_path, "synthetic"), "05_explain", "gallery")
    renderer = fig.canvas.get_renderer()
    stamp = next(t for t in fig.texts if t.get_text() == artifacts.SYNTHETIC_LABEL)
    stamp_box = stamp.get_bbox_patch().get_window_extent(renderer)
    others = [fig._suptitle, *(ax.title for ax in axes.flat)]
    assert all(stamp_box.y0 >= other.get_window_extent(renderer).y1 for other in others)


def test_notes_follow_the_dataset_registry():
    assert artifacts.applies({"dataset": "chest_xray"}, "chest_like")
    assert artifacts.applies({"dataset": "synthetic"}, "chest_like")
    assert not artifacts.applies({"dataset": "malaria"}, "chest_like")
    with pytest.raises(ValueError, match="chest_like"):
        artifacts.applies({"dataset": "malaria"}, "lungs")


@pytest.mark.parametrize("seconds", [[4.9, 16.0, 55.0, 31.0], [0.0, 2.5, 2.6, 300.0], [0.02, 30.0, 2000.0, 300.0]],
                         ids=["under a decade", "four decades", "five decades"])
def test_training_time_axis_labels_never_overlap(seconds):
    """Less than a decade of range once drew every minor tick's label on top of the next."""
    fig, axes = plt.subplots(1, 2, sharey=True, figsize=(10, 3), layout="constrained")
    compare_plots.plot_accuracy_vs_time(axes, _all_models().assign(train_seconds=seconds))
    fig.canvas.draw()
    ax_time = axes[1]
    labels = [t for t in [*ax_time.get_xticklabels(), *ax_time.get_xticklabels(minor=True)]
              if t.get_visible() and t.get_text() and ax_time.get_xlim()[0] <= t.get_position()[0] <= ax_time.get_xlim()[1]]
    boxes = sorted((t.get_window_extent() for t in labels), key=lambda box: box.x0)
    assert len(boxes) >= 2
    assert not any(_overlaps(a, b) for a, b in zip(boxes, boxes[1:])), [t.get_text() for t in labels]


def test_recall_values_sit_above_their_intervals():
    fig, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    recalls = _recalls()
    compare_plots.plot_recall_bars(ax, recalls, CHEST)
    fig.canvas.draw()
    texts = [t for t in ax.texts if t.get_text()]
    assert sorted(t.get_text() for t in texts) == sorted(f"{r:.2f}" for r in recalls["recall"])
    for text in texts:
        row = recalls.iloc[[f"{r:.2f}" for r in recalls["recall"]].index(text.get_text())]
        cap = ax.transData.transform((0, row["ci_high"]))[1]
        assert text.get_window_extent().y0 >= cap, text.get_text()


def test_a_flat_loss_curve_has_no_axis_offset():
    """A loss stuck at ln 2 once read ``1e-5+6.931e-1`` above its axis: the ticks carry the values."""
    from medclf.plots import training

    fig, axes = plt.subplots(1, 2)
    training.plot_training_curves(axes, {"loss": [0.693147, 0.693152, 0.693149], "auc": [0.5, 0.5, 0.5]}, 2)
    fig.canvas.draw()
    for ax in axes:
        assert ax.yaxis.get_offset_text().get_text() == "", ax.get_title()
        labels = [t.get_text() for t in ax.get_yticklabels() if t.get_text()]
        assert labels and all(len(label.lstrip("−-")) <= 5 for label in labels), labels
    _, ax = plt.subplots()  # every figure: the style turns offsets off
    ax.plot([1e5, 1e5 + 1], [0.69314, 0.69315])
    ax.figure.canvas.draw()
    assert ax.xaxis.get_offset_text().get_text() == "" and ax.yaxis.get_offset_text().get_text() == ""


def test_shown_font_follows_the_width_it_is_shown_at():
    assert common.shown_font_pt(10, 12, dpi=100) == 10  # 1200 px: shown as saved
    assert common.shown_font_pt(10, 28, dpi=100) == pytest.approx(5)  # 2800 px shrunk to 1400


def _gallery():
    images = np.full((8, 16, 16, 1), 120, np.uint8)
    errors = pd.DataFrame({"file": [f"person{i}_virus_{i}.jpeg" for i in range(8)], "true_class": "NORMAL",
                           "probability": 0.9, "error": "false positive"})
    return images, errors, np.random.default_rng(0).uniform(0, 1, (8, 16, 16))


def _summary(history):
    run = _run(history)
    fig, axes = evaluation.summary_grid(run)
    return evaluation.plot_model_summary(axes, run)


def _error_gallery():
    from medclf.plots import explain_plots

    images, errors, cams = _gallery()
    rows, cols = explain_plots.gallery_shape(len(errors), True)
    fig, axes = plt.subplots(rows, cols, figsize=(2.6 * cols, 3.3 * rows), squeeze=False, layout="constrained")
    return explain_plots.plot_error_gallery(axes, images, errors, cams)


def _counts_bar():
    counts = pd.DataFrame({"split": ["train"] * 2 + ["test"] * 2, "class_name": CHEST * 2, "count": [100, 300, 50, 150]})
    fig, axes = plt.subplots(1, 2, figsize=(12, 4), layout="constrained")  # as 01_eda draws it
    plots.plot_counts_bar(axes[0], counts)
    return plots.plot_counts_bar(axes[1], counts)


#: Multi-panel figures as the notebooks make them: (name, function returning the drawn figure).
REPORT_FIGURES = {
    "model summary, 5 panels": lambda: _summary({"loss": [0.7, 0.5], "val_loss": [0.7, 0.6], "auc": [0.6, 0.8],
                                                  "val_auc": [0.6, 0.7]}),
    "model summary, one-step fit": lambda: _summary({}),
    "error gallery with Grad-CAM": _error_gallery,
    "class counts": _counts_bar,
    "recall bars": lambda: compare_plots.plot_recall_bars(plt.subplots(figsize=(9, 4.5), layout="constrained")[1],
                                                          _recalls(), CHEST),
}


@pytest.mark.parametrize("kind", list(REPORT_FIGURES))
def test_figures_read_at_report_width(kind):
    """No text under 9 pt once a figure is shown at most 1400 px wide (5 panels in a row once read at 6 px)."""
    fig = REPORT_FIGURES[kind]()
    size, text = common.smallest_shown_text(fig)
    assert size >= common.MIN_SHOWN_PT, f"{kind}: {text!r} reads at {size:.1f} pt"


def test_summary_grid_wraps_panels_into_rows():
    fig, axes = evaluation.summary_grid(_run({"loss": [0.7], "auc": [0.6]}))
    assert len(axes) == 5 and fig.get_size_inches()[0] * common.SAVE_DPI <= common.SHOWN_WIDTH_PX
    assert sum(ax.get_visible() for ax in fig.axes) == 5
    with pytest.raises(ValueError, match="at least one panel"):
        common.panel_grid(0)


def test_one_image_size_is_a_sentence_not_a_plot():
    ds = make_dataset(1)
    assert plots.image_sizes_note(ds.frame) is None  # sizes differ: the scatter has something to show
    same = ds.frame.assign(orig_width=64, orig_height=48)
    assert plots.image_sizes_note(same) == "All 10 images are 64×48 (width × height) before resizing."


def test_the_readability_rule_uses_the_resolution_figures_are_saved_at():
    import inspect

    assert inspect.signature(artifacts.save_figure).parameters["dpi"].default == common.SAVE_DPI


def test_a_flagged_models_summary_figure_carries_the_mark():
    from medclf.evaluation.selection import FLAGGED_MARK

    run = _run({})
    run.record["evaluation"]["constant_predictions"] = {"flag": True, "spread": 0.0, "tolerance": 1e-3}
    fig, axes = plt.subplots(1, evaluation.summary_panels(run))
    assert evaluation.plot_model_summary(axes, run)._suptitle.get_text().startswith(f"m{FLAGGED_MARK} (fitted")
    fig, axes = plt.subplots(1, evaluation.summary_panels(run))
    assert FLAGGED_MARK not in evaluation.plot_model_summary(axes, _run({}))._suptitle.get_text()
    plt.close("all")
