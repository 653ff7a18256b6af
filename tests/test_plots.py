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
