"""Plot helpers: each draws on the axes it is given and returns the figure.

They never create files, save or show: the caller makes the axes (``plt.subplots``), and a
notebook saves the figure with :func:`medclf.reporting.artifacts.save_figure`. The numbers come from
:mod:`medclf.analysis.eda`; nothing is computed here beyond what drawing needs.

Classes keep one colour everywhere (in label order: the first class blue, the second orange,
...), and single-channel images are drawn with the ``gray`` colour map on a fixed 0..255 scale.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd


def class_colors(class_names: Sequence[str]) -> dict[str, str]:
    """One colour per class, in label order (``tab10``)."""
    palette = plt.get_cmap("tab10").colors
    return {name: palette[i % len(palette)] for i, name in enumerate(class_names)}


def show_image(ax, image: np.ndarray, title: str | None = None, vmin: float = 0, vmax: float = 255,
               cmap: str = "gray"):
    """Draw one image without ticks; grayscale (``(S, S)`` or ``(S, S, 1)``) uses ``cmap`` (gray).

    Args:
        ax: target axes.
        image: uint8 or float array, ``(S, S)``, ``(S, S, 1)`` or ``(S, S, 3)``.
        title: optional axes title.
        vmin, vmax: value range of the image (0..255 for pixels, 0..1 for HSV channels).
        cmap: colour map of single-channel images (a cyclic map such as ``"hsv"`` suits hue).

    Returns:
        The figure.
    """
    image = np.asarray(image)
    if image.ndim == 3 and image.shape[-1] == 1:
        image = image[..., 0]
    if image.ndim == 2:
        ax.imshow(image, cmap=cmap, vmin=vmin, vmax=vmax)
    else:
        scaled = (image.astype(np.float64) - vmin) / (vmax - vmin)
        ax.imshow(np.clip(scaled, 0, 1))
    ax.set_xticks([])
    ax.set_yticks([])
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


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
        ax.bar_label(bars, fontsize=8, padding=1)
    ax.set_xticks(x, splits)
    ax.set_ylabel("images")
    ax.set_title(title or f"Images per {by.replace('_', ' ')} and class")
    ax.legend(title="class")
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
               counterclock=False, textprops={"fontsize": 8})
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
    """Pixel-value distribution per class as overlaid step lines.

    Args:
        ax: target axes.
        histograms: output of :func:`medclf.analysis.eda.pixel_histograms` (index value, column per class).

    Returns:
        The figure.
    """
    colors = class_colors(list(histograms.columns))
    for name in histograms.columns:
        ax.step(histograms.index, histograms[name], where="mid", label=name, color=colors[name])
    ax.set_xlim(0, 255)
    ax.set_xlabel("pixel value")
    ax.set_ylabel("share of pixels")
    ax.set_title("Pixel-value distribution per class")
    ax.legend(title="class")
    return ax.figure


def plot_image_mean_hist(ax, per_image: pd.DataFrame, class_names: Sequence[str], bins: int = 40):
    """Distribution of per-image mean brightness per class (overlaid histograms).

    Args:
        ax: target axes.
        per_image: output of :func:`medclf.analysis.eda.image_stats` (columns ``class_name``, ``mean``).
        class_names: classes in label order.
        bins: number of histogram bins spanning the observed range of means.

    Returns:
        The figure.
    """
    colors = class_colors(class_names)
    low, high = (per_image["mean"].min(), per_image["mean"].max()) if len(per_image) else (0, 255)
    edges = np.linspace(low, max(high, low + 1), bins + 1)
    for name in class_names:
        values = per_image.loc[per_image["class_name"] == name, "mean"]
        ax.hist(values, bins=edges, alpha=0.5, label=f"{name} (n={len(values)})", color=colors[name])
    ax.set_xlabel("mean pixel value of an image")
    ax.set_ylabel("images")
    ax.set_title("Per-image mean brightness")
    ax.legend(title="class")
    return ax.figure


def plot_image_sizes(ax, frame: pd.DataFrame, class_names: Sequence[str]):
    """Scatter of original width vs height per class (before resizing).

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


# ---------------------------------------------------------------------------------------------
# Evaluation plots (numbers from :mod:`medclf.evaluation.evaluate`; drawing with scikit-learn's Displays)
# ---------------------------------------------------------------------------------------------

def plot_confusion(ax, cm, class_names: Sequence[str], normalize: bool = False):
    """Confusion matrix (rows true class, columns predicted) with the value in each cell.

    Args:
        ax: target axes.
        cm: 2×2 (or k×k) matrix of counts, e.g. ``metrics["confusion_matrix"]``.
        class_names: class names in label order.
        normalize: divide each row by its total (so the diagonal shows each class's recall).

    Returns:
        The figure.
    """
    from sklearn.metrics import ConfusionMatrixDisplay

    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f"cm must be a square matrix with one row per class ({len(class_names)}); "
                         f"got shape {cm.shape}")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
        values_format = ".2f"
    else:
        cm = cm.round().astype(np.int64)
        values_format = "d"
    display = ConfusionMatrixDisplay(confusion_matrix=cm, display_labels=list(class_names))
    display.plot(ax=ax, colorbar=False, cmap="Blues", values_format=values_format,
                 im_kw={"vmin": 0, "vmax": 1} if normalize else None)
    ax.set_title("Confusion matrix (rows: share of each true class)" if normalize else "Confusion matrix (counts)")
    return ax.figure


def _draw_curve(display_class, ax, y, p, label: str):
    """Draw one sklearn curve Display from predictions, adding the chance level only once per axes."""
    draw_chance = not any(line.get_gid() == "medclf-chance" for line in ax.lines)
    display_class.from_predictions(y, p, name=label, ax=ax, plot_chance_level=draw_chance,
                                   chance_level_kw={"gid": "medclf-chance"} if draw_chance else None)
    return ax.figure


def plot_roc(ax, y, p, label: str):
    """ROC curve of one model (with its AUC in the legend) and the chance diagonal.

    Args:
        ax: target axes; call again on the same axes to overlay models.
        y: labels, 0/1 (1 = disease).
        p: predicted probabilities (or scores) of class 1.
        label: curve name in the legend.

    Returns:
        The figure.
    """
    from sklearn.metrics import RocCurveDisplay

    _draw_curve(RocCurveDisplay, ax, y, p, label)
    ax.set_xlabel("false positive rate (1 − specificity)")
    ax.set_ylabel("true positive rate (sensitivity)")
    ax.set_title("ROC curve")
    return ax.figure


def plot_pr(ax, y, p, label: str):
    """Precision-recall curve of class 1 (average precision in the legend) and the chance level.

    Arguments and return value as :func:`plot_roc`.
    """
    from sklearn.metrics import PrecisionRecallDisplay

    _draw_curve(PrecisionRecallDisplay, ax, y, p, label)
    ax.set_title("Precision-recall curve (disease class)")
    return ax.figure


def plot_training_curves(axes, history: Mapping[str, Sequence[float]], best_epoch: int | None,
                         metric: str = "auc"):
    """Loss and one metric per epoch, training vs validation, with the best epoch marked.

    Args:
        axes: two axes (loss, metric).
        history: Keras ``History.history``-style dict: ``loss``, ``val_loss``, ``<metric>``,
            ``val_<metric>`` lists, one value per epoch (validation keys optional).
        best_epoch: 1-based epoch whose weights were kept (a dashed vertical line); ``None`` for none.
        metric: the metric key to draw beside the loss.

    Returns:
        The figure.

    Raises:
        ValueError: ``loss`` or ``metric`` is not in ``history`` (the message lists its keys).
    """
    axes = np.ravel(axes)
    for key in ("loss", metric):
        if key not in history:
            raise ValueError(f"history has no {key!r}; its keys are {sorted(history)}")
    for ax, key in zip(axes, ("loss", metric)):
        for prefix, style, name in (("", "-", "train"), ("val_", "--", "validation")):
            values = history.get(prefix + key)
            if values is not None and len(values):
                ax.plot(np.arange(1, len(values) + 1), values, style, marker="o", markersize=3, label=name)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="gray", linestyle=":", label=f"best epoch ({best_epoch})")
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.set_title(key.replace("_", " "))
        ax.legend()
    return axes[0].figure


def plot_threshold_recalls(ax, y_val, p_val, threshold: float, class_names: Sequence[str]):
    """Each class's validation recall as a function of the decision threshold, chosen one marked.

    Class 1 (disease) recall is the share of its images with ``p >= t``; class 0 recall the share
    of its images with ``p < t``.

    Args:
        ax: target axes.
        y_val: validation labels, 0/1.
        p_val: validation probabilities of class 1.
        threshold: the chosen threshold (from :func:`medclf.evaluation.evaluate.choose_threshold`).
        class_names: names of label 0 and label 1.

    Returns:
        The figure.
    """
    y = np.asarray(y_val).reshape(-1).astype(np.int64)
    p = np.asarray(p_val, dtype=np.float64).reshape(-1)
    if y.size != p.size:
        raise ValueError(f"y_val has {y.size} values but p_val has {p.size}")
    colors = class_colors(class_names)
    low, high = min(0.0, p.min(initial=0.0)), max(1.0, p.max(initial=1.0))
    grid = np.union1d(np.linspace(low, high, 501), [threshold])
    negatives, positives = np.sort(p[y == 0]), np.sort(p[y == 1])

    def recalls(t):
        r0 = np.searchsorted(negatives, t, side="left") / max(negatives.size, 1)
        r1 = 1 - np.searchsorted(positives, t, side="left") / max(positives.size, 1)
        return r0, r1

    curves = recalls(grid)
    at = recalls(np.asarray([threshold]))
    for k, name in enumerate(class_names):
        ax.plot(grid, curves[k], color=colors[name], label=f"{name} recall ({float(at[k][0]):.3f} at threshold)")
    ax.axvline(threshold, color="black", linestyle="--", label=f"chosen threshold {threshold:.3f}")
    ax.set_xlim(low, high)
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("decision threshold (probability of the disease class)")
    ax.set_ylabel("recall on validation")
    ax.set_title("Per-class recall vs threshold (validation)")
    ax.legend(loc="lower left", fontsize=8)
    return ax.figure


def plot_model_summary(axes, run):
    """Five panels for one trained model (an :class:`medclf.training.experiment.ModelRun`): loss curves,
    metric curves, validation recall vs threshold, test confusion matrix at the chosen threshold
    (row-normalised), and validation/test ROC curves. Returns the figure."""
    history = run.training.history
    if history:
        plot_training_curves(axes[:2], history, run.training.best_epoch, metric="auc")
    else:
        for ax in axes[:2]:
            ax.text(0.5, 0.5, "fitted in one step\n(no epochs)", ha="center", va="center")
            ax.set_axis_off()
    plot_threshold_recalls(axes[2], run.y_val, run.p_val, run.threshold, run.class_names)
    cm = run.record["evaluation"]["test"]["at_threshold"]["confusion_matrix"]
    plot_confusion(axes[3], cm, run.class_names, normalize=True)
    axes[3].set_title(f"test, threshold {run.threshold:.3f}")
    plot_roc(axes[4], run.y_val, run.p_val, "validation")
    plot_roc(axes[4], run.y_test, run.p_test, "test")
    axes[0].figure.suptitle(run.model_id)
    return axes[0].figure


def plot_metric_intervals(ax, table, metric: str = "accuracy"):
    """Horizontal dots with 95% interval bars of ``metric`` per model (``records_table`` output)."""
    order = table.sort_values(metric)
    y = np.arange(len(order))
    low = order[metric] - order[f"{metric}_ci_low"]
    high = order[f"{metric}_ci_high"] - order[metric]
    ax.errorbar(order[metric], y, xerr=[low, high], fmt="o", capsize=3)
    ax.set_yticks(y, order["model_id"])
    ax.set_xlabel(f"test {metric} at the validation-chosen threshold (95% CI)")
    ax.grid(axis="x", alpha=0.3)
    return ax.figure


def plot_augmentation_preview(axes, images: np.ndarray, variants: np.ndarray,
                              row_labels: Sequence[str] | None = None, title: str | None = None):
    """Each image next to augmented copies of it: one row per image, the original first.

    Args:
        axes: 2-D array of axes, ``(images, 1 + copies)`` (``plt.subplots(..., squeeze=False)``).
        images: ``(N, H, W, C)`` originals.
        variants: ``(N, n, H, W, C)`` copies, from :func:`medclf.data.augment.augment_variants`.
        row_labels: optional label per image (e.g. its class), written left of each row.
        title: optional figure title (e.g. the augmentation setting).

    Returns:
        The figure.

    Raises:
        ValueError: ``variants`` does not hold copies of ``images``, or the axes grid does not fit.
    """
    images, variants = np.asarray(images), np.asarray(variants)
    if variants.ndim != images.ndim + 1 or variants.shape[0] != images.shape[0] \
            or variants.shape[2:] != images.shape[1:]:
        raise ValueError(f"variants must be (N, n, *image shape) for images of shape {images.shape}; "
                         f"got {variants.shape}")
    axes = np.asarray(axes)
    if axes.shape != (images.shape[0], variants.shape[1] + 1):
        raise ValueError(f"axes must be a ({images.shape[0]}, {variants.shape[1] + 1}) grid; got {axes.shape}")
    for row, (image, copies) in enumerate(zip(images, variants)):
        show_image(axes[row, 0], image, "original" if row == 0 else None)
        for col, copy in enumerate(copies, start=1):
            show_image(axes[row, col], copy, f"augmented {col}" if row == 0 else None)
        if row_labels is not None:
            axes[row, 0].set_ylabel(row_labels[row], fontsize=11)
    if title:
        axes[0, 0].figure.suptitle(title)
    return axes[0, 0].figure
