"""Training plots: loss and metric curves per epoch with the best epoch marked, augmentation previews.
Each helper draws on the given axes and returns the figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from medclf.plots.common import show_image


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
        _readable_span(ax)
    return axes[0].figure


#: Least y range of a training curve: a curve that barely moves (a loss stuck at ln 2 = 0.6931) is drawn
#: flat on a few round ticks instead of ticks that differ in the sixth decimal.
MIN_CURVE_SPAN = 0.01


def _readable_span(ax) -> None:
    """Widen the y range to :data:`MIN_CURVE_SPAN` about its middle, and write the ticks without an offset."""
    low, high = ax.get_ylim()
    if high - low < MIN_CURVE_SPAN:
        middle = (low + high) / 2
        ax.set_ylim(middle - MIN_CURVE_SPAN / 2, middle + MIN_CURVE_SPAN / 2)
    ax.ticklabel_format(axis="y", useOffset=False)


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
