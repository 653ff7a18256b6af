"""What every plot shares: one colour per class and drawing one image without ticks.

Plot helpers (this package) draw on the axes they are given and return the figure. They never create
files, save or show: the caller makes the axes (``plt.subplots``), and a notebook saves the figure
with :func:`medclf.reporting.artifacts.publish_figure`.

Classes keep one colour everywhere (in label order: the first class blue, the second orange,
...), and single-channel images are drawn with the ``gray`` colour map on a fixed 0..255 scale.

Every figure is read in a report at most :data:`SHOWN_WIDTH_PX` wide, so a figure wider than that is
shrunk and its text with it: :func:`shown_font_pt` is the size text reads at there, kept at
:data:`MIN_SHOWN_PT` or more by :data:`STYLE` (applied on import) and :func:`panel_grid` (panels wrap into
rows instead of one long strip).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import matplotlib as mpl
import matplotlib.pyplot as plt
import numpy as np

#: Widest a figure is shown in a report (a 1400 px wide window); wider PNGs are shrunk to it.
SHOWN_WIDTH_PX = 1400
#: Resolution figures are saved at (:func:`medclf.reporting.artifacts.save_figure`).
SAVE_DPI = 110
#: Smallest text, in points as shown at :data:`SHOWN_WIDTH_PX`, of any figure.
MIN_SHOWN_PT = 9
#: Font size of small print in figures (legends, bar labels, panel titles of image grids).
SMALL_PT = 9

#: The plot style of every figure: no axis offsets (``1e-5+6.931e-1`` reads as nothing; tick labels carry the
#: values themselves) and no text under :data:`MIN_SHOWN_PT`.
STYLE = {"axes.formatter.useoffset": False, "font.size": 10, "legend.fontsize": SMALL_PT,
         "legend.title_fontsize": SMALL_PT + 1, "xtick.labelsize": SMALL_PT, "ytick.labelsize": SMALL_PT,
         "axes.titlesize": 10, "axes.labelsize": 10, "figure.titlesize": 12}
mpl.rcParams.update(STYLE)


def shown_font_pt(size_pt: float, fig_width_in: float, dpi: float = SAVE_DPI,
                  shown_px: float = SHOWN_WIDTH_PX) -> float:
    """The size ``size_pt`` text reads at in a figure ``fig_width_in`` inches wide saved at ``dpi`` and shown
    at most ``shown_px`` wide: ``size · min(1, shown_px / (width · dpi))``."""
    return size_pt * min(1.0, shown_px / (fig_width_in * dpi))


def smallest_shown_text(fig, dpi: float = SAVE_DPI) -> tuple[float, str]:
    """``(size as shown, text)`` of the smallest visible text of ``fig`` (:func:`shown_font_pt`), measured on
    the drawn figure; ``(inf, "")`` for a figure without text."""
    fig.canvas.draw()  # tick labels exist only once drawn
    box = fig.get_tightbbox(fig.canvas.get_renderer())  # what bbox_inches="tight" saves
    width = max(box.width, 1e-6)
    texts = [t for t in fig.findobj(mpl.text.Text) if t.get_visible() and t.get_text().strip()
             and (t.axes is None or t.axes.get_visible())]
    sizes = [(shown_font_pt(t.get_fontsize(), width, dpi), t.get_text()) for t in texts]
    return min(sizes, default=(math.inf, ""))


def panel_grid(n: int, panel_size: tuple[float, float] = (4.2, 3.6), max_width_in: float | None = None, **kwargs):
    """A figure of ``n`` panels wrapped into rows no wider than the report shows without shrinking.

    Args:
        n: panels wanted.
        panel_size: ``(width, height)`` of one panel, inches.
        max_width_in: widest figure, inches; default :data:`SHOWN_WIDTH_PX` at :data:`SAVE_DPI`.
        **kwargs: passed to ``plt.subplots`` (default ``layout="constrained"``).

    Returns:
        ``(fig, axes)``: ``axes`` the ``n`` panels in reading order (a list); grid cells beyond ``n`` are hidden.
    """
    if n < 1:
        raise ValueError(f"panel_grid needs at least one panel; got {n}")
    max_width_in = max_width_in or SHOWN_WIDTH_PX / SAVE_DPI
    cols = max(1, min(n, int(max_width_in // panel_size[0])))
    rows = math.ceil(n / cols)
    kwargs.setdefault("layout", "constrained")
    fig, grid = plt.subplots(rows, cols, figsize=(panel_size[0] * cols, panel_size[1] * rows), squeeze=False,
                             **kwargs)
    cells = list(grid.flat)
    for ax in cells[n:]:
        ax.set_visible(False)
    return fig, cells[:n]


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
        ax.set_title(title, fontsize=SMALL_PT)
    return ax.figure
