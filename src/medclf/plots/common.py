"""What every plot shares: one colour per class and drawing one image without ticks.

Plot helpers (this package) draw on the axes they are given and return the figure. They never create
files, save or show: the caller makes the axes (``plt.subplots``), and a notebook saves the figure
with :func:`medclf.reporting.artifacts.publish_figure`.

Classes keep one colour everywhere (in label order: the first class blue, the second orange,
...), and single-channel images are drawn with the ``gray`` colour map on a fixed 0..255 scale.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np


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
