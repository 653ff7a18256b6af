"""Figures of the cross-model comparison (:mod:`medclf.analysis.compare`): draw only.

Each function draws on the axes it is given and returns the figure; nothing is saved or shown.
Families keep one colour in every figure (:func:`family_colors`), and the overall best model
(chosen on validation) is drawn with a star or a thicker line.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from medclf.plots.common import class_colors
from medclf.plots.evaluation import plot_roc


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
    ax.legend(loc="lower right", fontsize=8)
    return ax.figure


def plot_accuracy_vs_time(ax, table: pd.DataFrame):
    """Test accuracy (95% CI bars) against training seconds on a log axis, one point per model.

    Args:
        ax: target axes.
        table: :func:`medclf.analysis.compare.all_models_table` (``family``, ``model_id``, ``train_seconds``,
            ``accuracy``, ``accuracy_ci_low``, ``accuracy_ci_high``, ``overall_best``).

    Returns:
        The figure.
    """
    colors = family_colors(list(dict.fromkeys(table["family"])))
    seconds = table["train_seconds"].astype(float).clip(lower=0.01)  # an instant fit stays on a log axis
    for family, color in colors.items():
        rows = table["family"] == family
        err = [table.loc[rows, "accuracy"] - table.loc[rows, "accuracy_ci_low"],
               table.loc[rows, "accuracy_ci_high"] - table.loc[rows, "accuracy"]]
        ax.errorbar(seconds[rows], table.loc[rows, "accuracy"], yerr=err, fmt="o", color=color,
                    capsize=3, label=family)
    for x, (_, row) in zip(seconds, table.iterrows()):
        ax.annotate(row["model_id"], (x, row["accuracy"]), fontsize=7, xytext=(4, 3), textcoords="offset points")
    best = table[table["overall_best"].astype(bool)]
    if len(best):
        ax.scatter(seconds[best.index], best["accuracy"], marker="*", s=260, facecolor="none",
                   edgecolor="black", zorder=3, label="best on validation")
    ax.set_xscale("log")
    ax.set_xlabel("training time (seconds, log scale)")
    ax.set_ylabel("test accuracy at the validation-chosen threshold")
    ax.set_title("Accuracy vs training time")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return ax.figure


def plot_recall_bars(ax, recalls: pd.DataFrame, class_names: Sequence[str]):
    """Grouped bars of each class's test recall (95% CI) per model.

    Args:
        ax: target axes.
        recalls: :func:`medclf.analysis.compare.recall_frame` output.
        class_names: the classes in label order (their colours as in every other figure).

    Returns:
        The figure.
    """
    colors = class_colors(class_names)
    models = list(dict.fromkeys(recalls["model_id"]))
    x = np.arange(len(models))
    width = 0.8 / max(len(class_names), 1)
    for k, name in enumerate(class_names):
        rows = recalls[recalls["class"] == name].set_index("model_id").reindex(models)
        err = [rows["recall"] - rows["ci_low"], rows["ci_high"] - rows["recall"]]
        bars = ax.bar(x + (k - (len(class_names) - 1) / 2) * width, rows["recall"], width, yerr=err,
                      capsize=3, color=colors[name], label=f"{name} recall")
        ax.bar_label(bars, fmt="%.2f", fontsize=7, padding=2)
    ax.set_xticks(x, models, rotation=20, ha="right")
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("test recall at the validation-chosen threshold")
    ax.set_title("Per-class recall (95% CI)")
    ax.legend(loc="lower right", fontsize=8)
    return ax.figure


def plot_mcnemar(ax, table: pd.DataFrame, alpha: float = 0.05):
    """Evidence that each model's accuracy differs from the best's: −log10 of the McNemar p-value.

    Bars past the dashed ``alpha`` line differ at that level: green where the model got more test
    images right than the validation-chosen best, red where it got fewer; grey bars do not differ.

    Args:
        ax: target axes.
        table: :func:`medclf.analysis.compare.mcnemar_vs_best` output (rows without a p-value are skipped).
        alpha: significance level drawn as a dashed line.

    Returns:
        The figure.
    """
    rows = table.dropna(subset=["p_value"])
    y = np.arange(len(rows))
    evidence = -np.log10(rows["p_value"].astype(float).clip(lower=1e-300))
    better = rows["only_model_right"].to_numpy() > rows["only_best_right"].to_numpy()
    colors = ["#888888" if p >= alpha else ("#1b7f3b" if up else "#b00020")
              for p, up in zip(rows["p_value"], better)]
    ax.barh(y, evidence, color=colors)
    ax.set_yticks(y, rows["model_id"])
    ax.invert_yaxis()
    ax.axvline(-np.log10(alpha), color="black", linestyle="--", label=f"p = {alpha}")
    best = rows["best_model_id"].iloc[0] if len(rows) else "the best model"
    ax.set_xlabel(f"−log10 McNemar p-value vs {best}\n(green: more accurate, red: less accurate, "
                  f"grey: no difference at p < {alpha})")
    ax.set_title("Paired test on the same test images")
    ax.legend(fontsize=8, loc="lower right")
    return ax.figure
