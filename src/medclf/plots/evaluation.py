"""Evaluation plots: confusion matrix, ROC and precision-recall curves, recall against the threshold,
metric intervals, and the panels summarising one trained model. Numbers come from
:mod:`medclf.evaluation.metrics`; curves are drawn with scikit-learn's Displays, the confusion matrix
with seaborn. Each helper draws on
the given axes and returns the figure."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import seaborn as sns

from medclf.evaluation.selection import has_constant_predictions, marked
from medclf.evaluation.tables import DECIMALS, format_value
from medclf.plots.common import SMALL_PT, class_colors, panel_grid
from medclf.plots.training import plot_training_curves


def plot_confusion(ax, cm, class_names: Sequence[str], normalize: bool = False):
    """Confusion matrix heat map (rows true class, columns predicted) with the value in each cell.

    Args:
        ax: target axes.
        cm: 2×2 (or k×k) matrix of counts, e.g. ``metrics["confusion_matrix"]``.
        class_names: class names in label order.
        normalize: divide each row by its total (so the diagonal shows each class's recall, on 0..1).

    Returns:
        The figure.
    """
    cm = np.asarray(cm, dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] != len(class_names):
        raise ValueError(f"cm must be a square matrix with one row per class ({len(class_names)}); "
                         f"got shape {cm.shape}")
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, totals, out=np.zeros_like(cm), where=totals > 0)
        fmt, limits = f".{DECIMALS}f", {"vmin": 0, "vmax": 1}
    else:
        cm = cm.round().astype(np.int64)
        fmt, limits = "d", {}
    sns.heatmap(cm, annot=True, fmt=fmt, cmap="Blues", cbar=False, square=True, linewidths=0.5, linecolor="white",
                xticklabels=list(class_names), yticklabels=list(class_names), ax=ax, **limits)
    ax.tick_params(axis="y", rotation=0)
    ax.set_xlabel("predicted class")
    ax.set_ylabel("true class")
    ax.set_title("Confusion matrix (rows: share of each true class)" if normalize else "Confusion matrix (counts)")
    return ax.figure


def _draw_curve(display_class, ax, y, p, label: str):
    """Draw one sklearn curve Display from predictions, adding the chance level only once per axes."""
    draw_chance = not any(line.get_gid() == "medclf-chance" for line in ax.lines)
    shown = display_class.from_predictions(y, p, name=label, ax=ax, plot_chance_level=draw_chance,
                                           chance_level_kw={"gid": "medclf-chance"} if draw_chance else None)
    # the legend's number with the decimals of every metric shown (scikit-learn writes two)
    area, short = (shown.roc_auc, "AUC") if hasattr(shown, "roc_auc") else (shown.average_precision, "AP")
    shown.line_.set_label(f"{label} ({short} = {format_value(float(area))})")
    ax.legend(loc="lower right" if short == "AUC" else "lower left")  # where scikit-learn puts it
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


def plot_threshold_recalls(ax, y_val, p_val, threshold: float, class_names: Sequence[str]):
    """Each class's validation recall as a function of the decision threshold, chosen one marked.

    Class 1 (disease) recall is the share of its images with ``p >= t``; class 0 recall the share
    of its images with ``p < t``.

    Args:
        ax: target axes.
        y_val: validation labels, 0/1.
        p_val: validation probabilities of class 1.
        threshold: the chosen threshold (from :func:`medclf.evaluation.metrics.choose_threshold`).
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
    ax.legend(loc="lower left", fontsize=SMALL_PT)
    return ax.figure


def summary_panels(run) -> int:
    """How many axes :func:`plot_model_summary` draws for ``run``: 5, or 3 for a model fitted in one step
    (no epochs, so no training curves)."""
    return 5 if run.training.history else 3


def summary_grid(run):
    """``(fig, axes)`` for :func:`plot_model_summary`: its :func:`summary_panels` wrapped into rows
    (:func:`medclf.plots.common.panel_grid`), so the panels stay readable in a report."""
    return panel_grid(summary_panels(run))


def plot_model_summary(axes, run):
    """The panels of one trained model (an :class:`medclf.training.experiment.ModelRun`): loss and metric
    curves (only for a model trained in epochs), validation recall vs threshold, test confusion matrix at
    the chosen threshold (row-normalised), and validation/test ROC curves.

    Args:
        axes: :func:`summary_panels` axes in reading order (:func:`summary_grid`).
        run: the trained model.

    Returns:
        The figure.
    """
    axes = list(np.ravel(axes))
    if len(axes) != summary_panels(run):
        raise ValueError(f"{run.model_id} needs {summary_panels(run)} axes (summary_panels); got {len(axes)}")
    history = run.training.history
    if history:
        plot_training_curves(axes[:2], history, run.training.best_epoch, metric="auc")
        axes = axes[2:]
    plot_threshold_recalls(axes[0], run.y_val, run.p_val, run.threshold, run.class_names)
    cm = run.record["evaluation"]["test"]["at_threshold"]["confusion_matrix"]
    plot_confusion(axes[1], cm, run.class_names, normalize=True)
    axes[1].set_title(f"test, threshold {run.threshold:.3f}\n(rows: share of each true class)")
    plot_roc(axes[2], run.y_val, run.p_val, "validation")
    plot_roc(axes[2], run.y_test, run.p_test, "test")
    name = marked(run.model_id, has_constant_predictions(run.record))  # a flagged model carries the one mark
    axes[0].figure.suptitle(name if history else f"{name} (fitted in one step: no training curves)")
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
