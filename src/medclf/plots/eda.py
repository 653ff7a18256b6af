"""Exploratory plots of a data set: class counts and shares, sample grids, sizes, intensities, mean images,
HSV and blur views. The numbers come from :mod:`medclf.analysis.eda`; nothing is computed here beyond
what drawing needs. Each helper draws on the given axes and returns the figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import seaborn as sns

from medclf.plots.common import SMALL_PT, class_colors, show_image


def plot_counts_bar(ax, counts: pd.DataFrame, title: str | None = None):
    """Grouped bars: one group per split, one bar per class, with the count written on each bar.

    Args:
        ax: target axes.
        counts: tidy counts from :func:`medclf.analysis.eda.class_counts` (first column the split).
        title: axes title; defaults to "Images per <split column> and class".

    Returns:
        The figure.
    """
    by = counts.columns[0]
    splits = list(pd.unique(counts[by]))
    classes = list(pd.unique(counts["class_name"]))
    colors = class_colors(classes)
    width = 0.8 / max(len(classes), 1)
    x = np.arange(len(splits))
    for i, name in enumerate(classes):
        values = counts[counts["class_name"] == name].set_index(by)["count"].reindex(splits, fill_value=0)
        bars = ax.bar(x + (i - (len(classes) - 1) / 2) * width, values.to_numpy(), width,
                      label=name, color=colors[name])
        ax.bar_label(bars, fontsize=SMALL_PT, padding=1)
    ax.set_xticks(x, splits)
    ax.set_ylabel("images")
    ax.set_title(title or f"Images per {by.replace('_', ' ')} and class")
    ax.legend(title="class", loc="upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # off the bars
    ax.margins(y=0.12)
    return ax.figure


def plot_class_pie(ax, counts: pd.DataFrame, split: str):
    """Pie of the class shares within one split.

    Args:
        ax: target axes.
        counts: tidy counts from :func:`medclf.analysis.eda.class_counts`.
        split: value of the first column to draw.

    Returns:
        The figure.
    """
    by = counts.columns[0]
    part = counts[counts[by] == split]
    colors = class_colors(list(pd.unique(counts["class_name"])))
    total = int(part["count"].sum())
    if total == 0:
        ax.text(0.5, 0.5, "no images", ha="center", va="center", transform=ax.transAxes)
        ax.set_axis_off()
    else:
        ax.pie(part["count"], labels=part["class_name"], colors=[colors[c] for c in part["class_name"]],
               autopct=lambda pct: f"{pct:.1f}%\n({round(pct * total / 100)})", startangle=90,
               counterclock=False, textprops={"fontsize": SMALL_PT})
        ax.set_aspect("equal")
    ax.set_title(f"{split} (n={total})")
    return ax.figure


def plot_sample_grid(axes, images: np.ndarray, samples: Mapping[str, np.ndarray],
                     titles: Sequence[str] | None = None):
    """Grid of sample images: one row per class, one column per sample.

    Args:
        axes: 2-D array of axes, ``(classes, samples per class)`` (``plt.subplots(..., squeeze=False)``).
        images: the image stack (``ds.images``).
        samples: ``{class_name: row indices}`` from :func:`medclf.analysis.eda.sample_indices`.
        titles: optional title per row index, e.g. file names (indexed by row index).

    Returns:
        The figure.
    """
    axes = np.asarray(axes).reshape(len(samples), -1)
    for row, (name, indices) in enumerate(samples.items()):
        for col, ax in enumerate(axes[row]):
            if col < len(indices):
                title = titles[indices[col]] if titles is not None else None
                show_image(ax, images[indices[col]], title)
            else:
                ax.set_axis_off()
        axes[row, 0].set_ylabel(name, fontsize=11)
    return axes.flat[0].figure


def plot_intensity_histograms(ax, histograms: pd.DataFrame):
    """Pixel-value distribution per class as overlaid step lines (seaborn).

    Args:
        ax: target axes.
        histograms: output of :func:`medclf.analysis.eda.pixel_histograms` (index value, column per class).

    Returns:
        The figure.
    """
    classes = [str(name) for name in histograms.columns]
    long = (histograms.rename(columns=str).rename_axis("value").reset_index()
            .melt(id_vars="value", var_name="class", value_name="share"))
    sns.lineplot(long, x="value", y="share", hue="class", hue_order=classes, palette=class_colors(classes),
                 drawstyle="steps-mid", ax=ax)
    ax.set_xlim(0, 255)
    ax.set_xlabel("pixel value")
    ax.set_ylabel("share of pixels")
    ax.set_title("Pixel-value distribution per class")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # off the curves
    return ax.figure


def plot_image_mean_hist(ax, per_image: pd.DataFrame, class_names: Sequence[str], bins: int = 40):
    """Distribution of per-image mean brightness per class (overlaid step histograms, seaborn).

    Args:
        ax: target axes.
        per_image: output of :func:`medclf.analysis.eda.image_stats` (columns ``class_name``, ``mean``).
        class_names: classes in label order.
        bins: number of histogram bins spanning the observed range of means.

    Returns:
        The figure.
    """
    low, high = (per_image["mean"].min(), per_image["mean"].max()) if len(per_image) else (0, 255)
    edges = np.linspace(low, max(high, low + 1), bins + 1)
    sizes = per_image["class_name"].value_counts()
    labels = {name: f"{name} (n={int(sizes.get(name, 0))})" for name in class_names}
    colors = class_colors(class_names)
    frame = per_image.assign(**{"class": per_image["class_name"].map(labels)})
    sns.histplot(frame, x="mean", hue="class", hue_order=list(labels.values()), bins=edges, element="step",
                 palette={labels[name]: colors[name] for name in class_names}, alpha=0.35, ax=ax)
    ax.set_xlabel("mean pixel value of an image")
    ax.set_ylabel("images")
    ax.set_title("Per-image mean brightness")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), borderaxespad=0)  # off the bars
    return ax.figure


def image_sizes_note(frame: pd.DataFrame) -> str | None:
    """The one sentence that replaces :func:`plot_image_sizes` when every image has the same original size
    (its scatter would be one dot), e.g. ``"All 300 images are 64×64 (width × height) before resizing."``;
    ``None`` when the sizes differ and the plot has something to show."""
    sizes = frame[["orig_width", "orig_height"]].drop_duplicates()
    if len(frame) == 0 or len(sizes) != 1:
        return None
    width, height = sizes.iloc[0]
    return f"All {len(frame)} images are {int(width)}×{int(height)} (width × height) before resizing."


def plot_image_sizes(ax, frame: pd.DataFrame, class_names: Sequence[str]):
    """Scatter of original width vs height per class (before resizing); :func:`image_sizes_note` says in one
    sentence when there is only one size to show.

    Args:
        ax: target axes.
        frame: ``ds.frame`` (columns ``class_name, orig_width, orig_height``).
        class_names: classes in label order.

    Returns:
        The figure.
    """
    colors = class_colors(class_names)
    for name in class_names:
        part = frame[frame["class_name"] == name]
        ax.scatter(part["orig_width"], part["orig_height"], s=6, alpha=0.4, color=colors[name],
                   label=f"{name} (n={len(part)})", edgecolors="none")
    ax.set_xlabel("original width (px)")
    ax.set_ylabel("original height (px)")
    ax.set_title("Original image sizes")
    ax.legend(title="class", markerscale=3)
    return ax.figure


def plot_mean_images(axes, means: Mapping[str, np.ndarray]):
    """The mean image of each class side by side.

    Args:
        axes: sequence of axes, one per class.
        means: ``{class_name: float image}`` from :func:`medclf.analysis.eda.mean_images`.

    Returns:
        The figure.
    """
    axes = np.ravel(axes)
    for ax, (name, image) in zip(axes, means.items()):
        show_image(ax, image, f"mean {name}")
    return axes[0].figure


def plot_hsv(axes, image: np.ndarray, hsv: np.ndarray, title: str | None = None):
    """An RGB image next to its hue (cyclic ``hsv`` colour map), saturation and value (gray) channels.

    Args:
        axes: four axes.
        image: uint8 ``(S, S, 3)``.
        hsv: its channels from :func:`medclf.analysis.eda.hsv_channels` (floats in 0..1).
        title: optional label for the original image (e.g. the class).

    Returns:
        The figure.
    """
    axes = np.ravel(axes)
    show_image(axes[0], image, title or "RGB")
    for ax, channel, name in zip(axes[1:], range(3), ("hue", "saturation", "value")):
        show_image(ax, hsv[..., channel], name, vmin=0, vmax=1, cmap="hsv" if name == "hue" else "gray")
    return axes[0].figure


def plot_blur(axes, image: np.ndarray, blurred: np.ndarray, title: str | None = None):
    """An image next to its Gaussian-blurred version.

    Args:
        axes: two axes.
        image: the original (uint8).
        blurred: from :func:`medclf.analysis.eda.gaussian_blur`.
        title: optional label for the original image.

    Returns:
        The figure.
    """
    axes = np.ravel(axes)
    show_image(axes[0], image, title or "original")
    show_image(axes[1], blurred, "Gaussian blur (5x5, σ=1)")
    return axes[0].figure
