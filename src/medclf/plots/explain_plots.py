"""Drawing explanations: feature maps, LIME superpixels, Grad-CAM overlays, error galleries.

Each helper draws on the axes it is given and returns the figure; nothing is computed beyond what
drawing needs (the arrays come from :mod:`medclf.analysis.explain`) and nothing is saved or shown.
Colours: LIME superpixels *for* the positive class are green, those *against* it magenta; weight
maps use a diverging map centred on zero (``vmin = -vmax``); Grad-CAM uses ``jet`` on 0..1.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from medclf.plots.common import SMALL_PT, show_image

FOR_COLOR = (0.0, 0.8, 0.0)
AGAINST_COLOR = (0.9, 0.0, 0.9)


def _off(ax) -> None:
    ax.set_xticks([])
    ax.set_yticks([])


def plot_channel_grid(axes, maps: np.ndarray, title: str | None = None, cmap: str = "viridis"):
    """One layer's feature maps, one channel per axes (the first ``axes.size`` channels).

    Args:
        axes: a grid of axes (``plt.subplots(rows, cols)``); axes beyond the channels are hidden.
        maps: activations ``(h, w, channels)`` (:func:`medclf.analysis.explain.feature_maps`).
        title: figure title (e.g. the layer name).
        cmap: colour map; each channel is scaled to its own range.

    Returns:
        The figure.
    """
    flat = np.asarray(axes).ravel()
    for i, ax in enumerate(flat):
        _off(ax)
        if i < maps.shape[-1]:
            ax.imshow(maps[..., i], cmap=cmap)
            ax.set_title(f"ch {i}", fontsize=SMALL_PT)
        else:
            ax.set_visible(False)
    fig = flat[0].figure
    if title:
        fig.suptitle(title)
    return fig


def plot_channel_through_layers(axes, maps: Mapping[str, np.ndarray], channel: int = 0, image: np.ndarray | None = None,
                                cmap: str = "viridis"):
    """One channel index followed through every layer (``[image,] conv1[c], conv2[c], ...``).

    Channel ``c`` of one layer is a different filter from channel ``c`` of the next; the row
    shows how the map shrinks and abstracts with depth. Layers with fewer channels are skipped.

    Args:
        axes: a row of axes, one per layer (plus one first when ``image`` is given).
        maps: ``{layer: (h, w, channels)}`` in layer order.
        channel: the channel index.
        image: the input image, drawn first when given.
        cmap: colour map of the feature maps.

    Returns:
        The figure.
    """
    flat = list(np.asarray(axes).ravel())
    if image is not None:
        show_image(flat.pop(0), image, "input")
    for ax, (name, values) in zip(flat, maps.items()):
        _off(ax)
        if channel < values.shape[-1]:
            ax.imshow(values[..., channel], cmap=cmap)
            ax.set_title(f"{name}[{channel}] {values.shape[0]}×{values.shape[1]}", fontsize=SMALL_PT)
        else:
            ax.set_title(f"{name}: {values.shape[-1]} channels", fontsize=SMALL_PT)
    return flat[0].figure


def plot_lime_boundaries(ax, result, num_features: int = 5, title: str | None = None):
    """The image with the outlines of LIME's top superpixels: green for, magenta against the positive class.

    Args:
        ax: target axes.
        result: a :class:`medclf.analysis.explain.LimeResult`.
        num_features: superpixels outlined on each side (:func:`medclf.analysis.explain.top_superpixels`).
        title: axes title.

    Returns:
        The figure.
    """
    from skimage.segmentation import mark_boundaries

    from medclf.analysis.explain import top_superpixels

    favour, against = top_superpixels(result, num_features)
    drawn = mark_boundaries(result.image.astype(np.float64) / 255.0, favour.astype(int), color=FOR_COLOR)
    drawn = mark_boundaries(drawn, against.astype(int), color=AGAINST_COLOR)
    ax.imshow(drawn)
    _off(ax)
    if title:
        ax.set_title(title, fontsize=SMALL_PT)
    return ax.figure


def plot_superpixel_weights(ax, weights: np.ndarray, title: str | None = None, cmap: str = "RdBu_r",
                            colorbar: bool = True):
    """LIME's per-pixel superpixel weights on a colour scale symmetric about zero, with a colour bar.

    Red: the superpixel raises the positive-class probability; blue: lowers it.

    Args:
        ax: target axes.
        weights: ``(H, W)`` map (:func:`medclf.analysis.explain.superpixel_weights`).
        title: axes title.
        cmap: a diverging colour map.
        colorbar: add a colour bar beside the axes.

    Returns:
        The figure.
    """
    weights = np.asarray(weights, dtype=np.float64)
    vmax = float(np.max(np.abs(weights))) or 1e-12
    image = ax.imshow(weights, cmap=cmap, vmin=-vmax, vmax=vmax)
    _off(ax)
    if title:
        ax.set_title(title, fontsize=SMALL_PT)
    if colorbar:
        ax.figure.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    return ax.figure


def plot_gradcam(ax, image: np.ndarray, cam: np.ndarray, title: str | None = None, alpha: float = 0.4,
                 cmap: str = "jet", colorbar: bool = False):
    """The image with its Grad-CAM heat map (0..1) laid over it.

    Args:
        ax: target axes.
        image: the uint8 input ``(H, W, C)``.
        cam: ``(H, W)`` in 0..1 (:func:`medclf.analysis.explain.gradcam`).
        title: axes title.
        alpha: opacity of the heat map.
        cmap: colour map of the heat map.
        colorbar: draw a colour bar beside the axes saying what the colours mean (one overlay per
            figure, as ``predict --gradcam`` writes; grids leave it off).

    Returns:
        The figure.
    """
    show_image(ax, image, title)
    heat = ax.imshow(cam, cmap=cmap, vmin=0, vmax=1, alpha=alpha)
    if colorbar:
        bar = ax.figure.colorbar(heat, ax=ax, fraction=0.046, pad=0.04)
        bar.solids.set_alpha(1)  # the scale in full colour, not at the overlay's opacity
        bar.set_label("Grad-CAM: weight of the region for the prediction (0-1)", fontsize=SMALL_PT)
        bar.ax.tick_params(labelsize=8)
    return ax.figure


def plot_error_gallery(axes, images: np.ndarray, errors: pd.DataFrame, cams: np.ndarray | None = None,
                       alpha: float = 0.4):
    """Misclassified images in pairs of columns: the image, then its Grad-CAM overlay.

    Each image is titled with its file, true class, probability and error kind. Without ``cams``
    (a dense network has no Grad-CAM) each image takes one axes.

    Args:
        axes: a grid of axes: two per image with ``cams``, one without; spare axes are hidden.
        images: uint8 images ``(N, H, W, C)`` in the rows' order.
        errors: rows of :func:`medclf.analysis.explain.error_cases` (``file, true_class, probability, error``).
        cams: Grad-CAM maps ``(N, H, W)`` or None.
        alpha: opacity of the heat map.

    Returns:
        The figure.
    """
    flat = list(np.asarray(axes).ravel())
    per_image = 1 if cams is None else 2
    for i, row in enumerate(errors.itertuples(index=False)):
        if (i + 1) * per_image > len(flat):
            break
        title = f"{_short(row.file)}\ntrue {row.true_class}, p={row.probability:.3f}\n{row.error}"
        show_image(flat[i * per_image], images[i], title)
        if cams is not None:
            plot_gradcam(flat[i * per_image + 1], images[i], cams[i], "Grad-CAM", alpha=alpha)
    for ax in flat[len(errors) * per_image:]:
        ax.set_visible(False)
    return flat[0].figure


def _short(path: str, limit: int = 28) -> str:
    """The file name, shortened from the left to ``limit`` characters."""
    name = str(path).rsplit("/", 1)[-1]
    return name if len(name) <= limit else "…" + name[-(limit - 1):]


def plot_lime_comparison(axes, image: np.ndarray, results: Mapping[str, object], num_features: int = 5,
                         title: str | None = None):
    """One image explained by several models: the image, then per model its LIME outlines and weights.

    Args:
        axes: a row of ``1 + 2 * len(results)`` axes.
        image: the input as one model took it (for the first panel).
        results: ``{model label: LimeResult}``.
        num_features: superpixels outlined on each side.
        title: first panel's title.

    Returns:
        The figure.
    """
    flat = list(np.asarray(axes).ravel())
    show_image(flat[0], image, title)
    for k, (label, result) in enumerate(results.items()):
        # two lines: a model label and the panel's kind do not fit one line of a 2.4-inch panel
        plot_lime_boundaries(flat[1 + 2 * k], result, num_features, f"{label}\nfor / against")
        plot_superpixel_weights(flat[2 + 2 * k], result.weights, f"{label}\nweights")
    return flat[0].figure


def gallery_shape(n_images: int, with_cams: bool, columns: int = 4) -> tuple[int, int]:
    """``(rows, cols)`` of an axes grid for :func:`plot_error_gallery` (at least 1×1); ``columns`` (even: an
    image beside its Grad-CAM) keeps a gallery of 2.6-inch panels readable at a report's width."""
    panels = max(1, n_images * (2 if with_cams else 1))
    cols = min(columns, panels)
    return -(-panels // cols), cols

