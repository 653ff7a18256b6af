"""Saving a notebook's figures and tables under ``outputs/<dataset>/<profile>/``.

Figures go to ``outputs/<dataset>/<profile>/figures/<notebook>/<name>.png`` and tables to
``outputs/<dataset>/<profile>/tables/<name>.csv`` and ``.md``, each written atomically. Anything made from
the synthetic demo data is marked as such (a red label on figures, a first line in Markdown
tables), so a demo result can never be mistaken for a real one.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from medclf.config import datasets
from medclf.config import paths as config
from medclf.core import io
from medclf.reporting.notices import SYNTHETIC_LABEL, SYNTHETIC_TABLE_NOTE, notebook_notice

_STAMP_GID = "medclf-synthetic-stamp"


def is_synthetic(params: dict) -> bool:
    """True when the parameters select the generated demo data set."""
    return datasets.get(params["dataset"]).synthetic


def show_synthetic_notice(params: dict, subject: str = "numbers") -> None:
    """In a running notebook, show the synthetic-data warning (:func:`medclf.reporting.notices.notebook_notice`)
    when ``params`` select generated data; nothing otherwise (or outside IPython)."""
    if not is_synthetic(params):
        return
    text = notebook_notice(subject)
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Markdown(text))


def applies(params: dict, when: str) -> bool:
    """Whether the data set of ``params`` has the registry flag ``when`` (a boolean field of
    :class:`medclf.config.datasets.DatasetInfo`, e.g. ``"kermany_test"``)."""
    info = datasets.get(params["dataset"])
    flag = getattr(info, when, None)
    if not isinstance(flag, bool):
        raise ValueError("when must name a yes/no field of the data-set registry (e.g. 'kermany_test', "
                         f"'chest_like'); got {when!r}")
    return flag


def study_reproduction_skipped(params: dict) -> str:
    """The Markdown line a notebook shows instead of a study-reproduction table on a data set whose registry entry
    says the studies' numbers do not apply (``study_reproduction`` false), pointing at 06_compare's published
    results only where the data set has some."""
    info = datasets.get(params["dataset"])
    if info.synthetic:
        why = "this data set is generated, and no study measured anything on it"
    else:
        why = "the studies measured their numbers on other images than this data set's"
    where = "; the published results beside ours (06_compare) are its comparison" if info.published else ""
    return f"_Not shown: {why}{where}._"


def show_note(params: dict, text: str, when: str) -> None:
    """In a running notebook, show the Markdown ``text`` only for data sets with the registry flag ``when``
    (:func:`applies`), so that text about one kind of data appears only on that kind: text about the real chest
    X-rays uses ``when="kermany_test"``, which the synthetic images standing in for them do not set."""
    if not applies(params, when):
        return
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        return
    if get_ipython() is not None:
        display(Markdown(text))


def stamp_synthetic(fig) -> None:
    """Add the red :data:`medclf.reporting.notices.SYNTHETIC_LABEL` above everything the figure draws (once;
    repeated calls do nothing).

    The label goes above the top of the figure's drawn content (titles, a suptitle, colour bars, as the
    figure's layout places them), so it never covers a title; saving with ``bbox_inches="tight"`` keeps it.
    """
    if any(text.get_gid() == _STAMP_GID for text in fig.texts):
        return
    fig.draw_without_rendering()  # runs the layout engine, so the extent below is the final one
    top = fig.get_tightbbox().y1  # inches from the figure's bottom
    y = max(1.0, (top + 8 / 72) / fig.get_figheight())  # 8 points above the highest title
    fig.text(0.5, y, SYNTHETIC_LABEL, ha="center", va="bottom", color="red", fontsize=13,
             fontweight="bold", gid=_STAMP_GID,
             bbox={"facecolor": "white", "edgecolor": "red", "boxstyle": "round,pad=0.3"})


def save_figure(fig, params: dict, notebook: str, name: str, dpi: int = 110) -> Path:
    """Save ``fig`` as ``outputs/<dataset>/<profile>/figures/<notebook>/<name>.png`` (atomic write).

    Synthetic-data figures are stamped first (see :func:`stamp_synthetic`), so the figure as shown
    in the notebook carries the label too.

    Args:
        fig: a matplotlib figure.
        params: the parameter set (``dataset``, ``output_dir``).
        notebook: notebook name without suffix, e.g. ``"01_eda"``.
        name: file name without suffix.
        dpi: resolution.

    Returns:
        Path of the written PNG.
    """
    if is_synthetic(params):
        stamp_synthetic(fig)
    return io.save_figure(fig, config.figures_dir(params, notebook) / f"{name}.png", dpi=dpi)


def publish_figure(fig, params: dict, notebook: str, name: str) -> Path:
    """Save ``fig`` (:func:`save_figure`), display it in the running notebook, then close it.

    Closing keeps memory flat in long notebooks; outside IPython nothing is displayed.

    Returns:
        Path of the written PNG.
    """
    import matplotlib.pyplot as plt

    path = save_figure(fig, params, notebook, name)
    try:
        from IPython import get_ipython
        from IPython.display import display

        if get_ipython() is not None:
            display(fig)
    finally:
        plt.close(fig)
    return path


def _flat(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy whose index is a column (unless it is the default 0..n-1), with string column names."""
    if not isinstance(frame.index, pd.RangeIndex) or frame.index.name is not None:
        frame = frame.reset_index()
    frame = frame.copy()
    frame.columns = [" ".join(map(str, c)).strip() if isinstance(c, tuple) else str(c) for c in frame.columns]
    return frame


def save_table(frame: pd.DataFrame, params: dict, name: str) -> tuple[Path, Path]:
    """Save a table as ``outputs/<dataset>/<profile>/tables/<name>.csv`` and ``.md`` (atomic writes).

    A meaningful index (a pivot table's rows) is written as the first column. For synthetic data
    the Markdown file starts with a line saying so.

    Args:
        frame: the table.
        params: the parameter set (``dataset``, ``output_dir``).
        name: file name without suffix.

    Returns:
        ``(csv_path, md_path)``.
    """
    flat = _flat(frame)
    csv_path, md_path = io.save_table(flat, config.tables_dir(params) / name)
    if is_synthetic(params):
        io.write_text(md_path, f"{SYNTHETIC_TABLE_NOTE}\n\n{md_path.read_text()}")
    return csv_path, md_path
