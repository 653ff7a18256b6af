"""Figures of the cross-model comparison (:mod:`medclf.analysis.compare`): draw only.

Each function draws on the axes it is given and returns the figure; nothing is saved or shown.
Families keep one colour in every figure (:func:`family_colors`), and the overall best model
(chosen on validation) is drawn with a star or a thicker line.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import matplotlib.ticker as ticker
import numpy as np
import pandas as pd
import seaborn as sns

from medclf.evaluation.selection import marked
from medclf.plots.common import SMALL_PT, class_colors
from medclf.plots.evaluation import plot_roc


def _labels(table: pd.DataFrame) -> list[str]:
    """The table's model ids as figure labels: a model flagged for constant predictions (the table's
    ``constant_predictions`` column, where it has one) carries the one mark,
    :data:`medclf.evaluation.selection.FLAGGED_MARK`."""
    flags = table["constant_predictions"] if "constant_predictions" in table else [False] * len(table)
    return [marked(model_id, bool(flag)) for model_id, flag in zip(table["model_id"], flags)]


def family_colors(families: Sequence[str]) -> dict[str, tuple]:
    """One colour per family, in the given order (``Dark2``, distinct from the class colours)."""
    palette = plt.get_cmap("Dark2").colors
    return {family: palette[i % len(palette)] for i, family in enumerate(families)}


def plot_roc_overlay(ax, curves: Sequence[tuple[str, np.ndarray, np.ndarray]]):
    """Test ROC curves of several models on one axes (AUC in the legend).

    Args:
        ax: target axes.
        curves: ``(label, y_true, probability)`` per model, as :func:`medclf.analysis.compare.roc_inputs` gives.

    Returns:
        The figure.
    """
    for label, y, p in curves:
        plot_roc(ax, y, p, label)
        if label.endswith("(best)"):
            ax.lines[-1].set_linewidth(2.8)
    ax.set_title("Test ROC: best model of each family (chosen on validation)")
    ax.legend(loc="lower right", fontsize=SMALL_PT)
    return ax.figure


def plot_accuracy_vs_time(axes, table: pd.DataFrame):
    """Every model on one row: test accuracy (95% CI) on the left, training seconds (log) on the right.

    One row per model (model ids as row labels, so no label ever overlaps another however close the
    numbers are), grouped by family in the table's order; families keep their colours, the
    validation-chosen best model is starred and a model flagged for constant predictions is marked
    (:func:`_labels`). Size the figure ``(10, 0.35 * rows + 1.6)``.

    Args:
        axes: two axes sharing the y axis (``plt.subplots(1, 2, sharey=True)``): accuracy, time.
        table: :func:`medclf.analysis.compare.all_models_table` (``family``, ``model_id``, ``train_seconds``,
            ``accuracy``, ``accuracy_ci_low``, ``accuracy_ci_high``, ``overall_best``, ``constant_predictions``).

    Returns:
        The figure.
    """
    ax_acc, ax_time = np.ravel(axes)
    colors = family_colors(list(dict.fromkeys(table["family"])))
    frame = table.reset_index(drop=True).assign(
        # instant fits stay on a log axis
        train_seconds=table["train_seconds"].astype(float).clip(lower=0.01).to_numpy(), label=_labels(table))
    y = np.arange(len(frame))
    for family, color in colors.items():
        rows = frame[frame["family"] == family]
        ax_acc.errorbar(rows["accuracy"], y[rows.index], fmt="o", color=color, capsize=3, label=family,
                        xerr=[rows["accuracy"] - rows["accuracy_ci_low"], rows["accuracy_ci_high"] - rows["accuracy"]])
    best = frame[frame["overall_best"].astype(bool)]
    if len(best):
        ax_acc.scatter(best["accuracy"], y[best.index], marker="*", s=260, facecolor="none", edgecolor="black",
                       zorder=3, label="best on validation")
    sns.barplot(frame, x="train_seconds", y="label", hue="family", palette=colors, dodge=False, legend=False,
                orient="h", ax=ax_time, order=list(frame["label"]), native_scale=False)
    ax_time.set_xscale("log")
    # Under a decade of range matplotlib labels the minor ticks too, and they pile up: label 1-2-5 per
    # decade when the times span at most two decades, else the decades only.
    decades = np.log10(frame["train_seconds"].max() / frame["train_seconds"].min())
    ax_time.xaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0) if decades <= 2 else (1.0,)))
    ax_time.xaxis.set_major_formatter(ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    ax_time.xaxis.set_minor_formatter(ticker.NullFormatter())
    for container in ax_time.containers:
        ax_time.bar_label(container, fmt=_seconds, fontsize=SMALL_PT, padding=2)
    ax_acc.set_yticks(y, frame["label"])
    ax_acc.set_ylim(len(frame) - 0.5, -0.5)
    ax_acc.set_ylabel("")
    ax_time.set_ylabel("")
    ax_acc.set_xlabel("test accuracy at the validation-chosen threshold (95% CI)")
    ax_time.set_xlabel("training time (seconds, log scale)")
    ax_acc.grid(axis="x", alpha=0.3)
    ax_time.grid(axis="x", alpha=0.3)
    ax_time.margins(x=0.15)
    ax_acc.set_title("Test accuracy")
    ax_time.set_title("Training time")
    handles, labels = ax_acc.get_legend_handles_labels()
    ax_time.legend(handles, labels, fontsize=SMALL_PT, loc="upper left", bbox_to_anchor=(1.02, 1), borderaxespad=0)
    return ax_acc.figure


def _seconds(value: float) -> str:
    """A training time for a bar label: ``0.02 s``, ``3.4 s``, ``250 s``, ``12 min``."""
    if value >= 600:
        return f"{value / 60:.0f} min"
    return f"{value:.2g} s" if value < 10 else f"{value:.0f} s"


def plot_recall_bars(ax, recalls: pd.DataFrame, class_names: Sequence[str]):
    """Grouped bars of each class's test recall (95% CI) per model; the legend sits beside the axes.

    Args:
        ax: target axes.
        recalls: :func:`medclf.analysis.compare.recall_frame` output.
        class_names: the classes in label order (their colours as in every other figure).

    Returns:
        The figure.
    """
    colors = class_colors(class_names)
    models = list(dict.fromkeys(recalls["model_id"]))
    frame = recalls.assign(recall=recalls["recall"].astype(float))
    sns.barplot(frame, x="model_id", y="recall", hue="class", order=models, hue_order=list(class_names),
                palette=colors, errorbar=None, ax=ax)
    for name, bars in zip(class_names, ax.containers):  # one container per class, bars in model order
        rows = frame[frame["class"] == name].set_index("model_id").reindex(models)
        centers = [bar.get_x() + bar.get_width() / 2 for bar in bars]
        ax.errorbar(centers, rows["recall"], yerr=[rows["recall"] - rows["ci_low"], rows["ci_high"] - rows["recall"]],
                    fmt="none", ecolor="black", capsize=3, linewidth=1)
        for center, value, top in zip(centers, rows["recall"], rows["ci_high"]):  # above the interval's cap
            if not np.isfinite(value):
                continue
            top = top if np.isfinite(top) else value
            ax.annotate(f"{value:.2f}", (center, top), xytext=(0, 2), textcoords="offset points",
                        ha="center", va="bottom", fontsize=SMALL_PT)
    ax.set_xticks(range(len(models)), models, rotation=20, ha="right")
    ax.set_xlabel("")
    ax.set_ylim(0, 1.12)
    ax.set_ylabel("test recall at the validation-chosen threshold")
    ax.set_title("Per-class recall (95% CI)")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1.01, 1), title="recall of", fontsize=SMALL_PT, borderaxespad=0)
    return ax.figure


#: McNemar verdicts and their colours: more accurate than the best, less accurate (both at p < alpha), and no
#: evidence of a difference (p ≥ alpha: not evidence of equal accuracy).
_VERDICT_COLORS = {"more accurate": "#1b7f3b", "less accurate": "#b00020", "no evidence of a difference": "#888888"}


def plot_mcnemar(ax, table: pd.DataFrame, alpha: float = 0.05):
    """Evidence that each model's accuracy differs from the best's: −log10 of the McNemar p-value.

    Bars past the dashed ``alpha`` line differ at that level: green where the model got more test
    images right than the validation-chosen best, red where it got fewer; grey bars show no evidence of a
    difference at that level.
    A model flagged for constant predictions is marked (:func:`_labels`). The legend sits beside the axes.

    Args:
        ax: target axes.
        table: :func:`medclf.analysis.compare.mcnemar_vs_best` output (rows without a p-value are skipped).
        alpha: significance level drawn as a dashed line.

    Returns:
        The figure.
    """
    rows = table.dropna(subset=["p_value"]).reset_index(drop=True)
    p = rows["p_value"].astype(float)
    better = rows["only_model_right"].to_numpy() > rows["only_best_right"].to_numpy()
    verdict = ["no evidence of a difference" if value >= alpha else ("more accurate" if up else "less accurate")
               for value, up in zip(p, better)]
    frame = pd.DataFrame({"model_id": _labels(rows), "verdict": verdict,
                          "evidence": -np.log10(p.clip(lower=1e-300))})
    sns.barplot(frame, x="evidence", y="model_id", hue="verdict", palette=_VERDICT_COLORS, dodge=False,
                hue_order=[v for v in _VERDICT_COLORS if v in set(verdict)], orient="h", ax=ax)
    ax.axvline(-np.log10(alpha), color="black", linestyle="--", label=f"p = {alpha}")
    best = rows["best_model_id"].iloc[0] if len(rows) else "the best model"
    ax.set_ylabel("")
    ax.set_xlabel(f"−log10 McNemar p-value vs {best} (right of the dashed line: p < {alpha})")
    ax.set_title(f"Paired test on the same test images: accuracy vs {best}")
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1), title="vs the best", fontsize=SMALL_PT,
              borderaxespad=0)
    return ax.figure
