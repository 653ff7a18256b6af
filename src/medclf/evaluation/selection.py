"""The one "best on validation" rule: which model of a family, and of all, the notebooks and the report pick.

Every choice of a model — the headline and McNemar reference of the comparison, the models the
explanations show, any default model — goes through :func:`rank_on_validation`, so two notebooks given
the same records pick the same models. The rule looks at **validation** only; test numbers are
reported, never used to choose:

1. the validation ROC AUC of the rows that choose models (:func:`selection_auc`), highest first;
2. then the validation accuracy at the record's validation-chosen threshold, highest first;
3. then ``model_id`` alphabetically, so a tie is broken the same way everywhere.

A missing value counts as −inf (ranked last). How sure the choice is: :func:`win_rates`, the share of
bootstrap resamples of the selection rows in which each candidate would be chosen; below
:data:`WIN_RATE_LEVEL` the report says that validation does not single out the best model. A model flagged for (near-)constant predictions
(:func:`has_constant_predictions`) is never chosen: it is ranked after every other model and is no
family's or overall best, so it is never headlined, explained or offered as a default; wherever a report
still names it, the name carries :data:`FLAGGED_MARK` (:func:`marked`). Callers narrow
the candidates first (e.g. only records with a saved Keras model can be explained), never the rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

from medclf.evaluation import statistics
from medclf.evaluation.predictions import align_predictions
from medclf.models.specs import FAMILIES


def selection_auc(record: Mapping) -> float | None:
    """Validation ROC AUC of the rows that choose models (``evaluation.selection``: with ``select_on:
    new_patients`` only the images of patients outside training); all validation rows for records
    written before it existed."""
    evaluation = record["evaluation"]
    chosen = evaluation.get("selection")
    return chosen["roc_auc"] if chosen else evaluation["val"]["at_threshold"].get("roc_auc")


def selection_auc_ci(record: Mapping) -> tuple[float | None, float | None]:
    """95% bootstrap interval of :func:`selection_auc`; ``(None, None)`` for records written without one."""
    chosen = record["evaluation"].get("selection") or {}
    low, high = chosen.get("roc_auc_ci") or (None, None)
    return low, high


def has_constant_predictions(record: Mapping) -> bool:
    """Whether the record's model gave (near-)constant probabilities
    (``evaluation.constant_predictions.flag``, :func:`medclf.evaluation.metrics.constant_predictions`)."""
    return bool((record["evaluation"].get("constant_predictions") or {}).get("flag", False))


#: What follows the name of a model flagged for constant predictions wherever a report names it (table cells,
#: figure labels, headings): the one mark, so that a flagged model is never shown as if it were usable.
FLAGGED_MARK = "  ⚠ constant"


def marked(model_id: str, flagged: bool) -> str:
    """``model_id`` followed by :data:`FLAGGED_MARK` when ``flagged``; an id already marked is returned as is."""
    model_id = str(model_id)
    return f"{model_id}{FLAGGED_MARK}" if flagged and not model_id.endswith(FLAGGED_MARK) else model_id


def marked_ids(model_ids: Iterable[str], records: Sequence[Mapping]) -> list[str]:
    """``model_ids`` with :data:`FLAGGED_MARK` after each whose record in ``records`` is flagged."""
    flagged = {r["model_id"] for r in records if has_constant_predictions(r)}
    return [marked(model_id, model_id in flagged) for model_id in model_ids]


def mark_frame(frame, records: Sequence[Mapping], columns: Sequence[str] = ("model_id", "model")):
    """A copy of the table ``frame`` to show, with the model names in each of its ``columns`` (those it has)
    marked (:func:`marked_ids`). The saved CSVs keep the bare ids (they are keys of ``results/`` and
    ``predictions/``)."""
    return frame.assign(**{column: marked_ids(frame[column], records) for column in columns if column in frame})


def choosable(records: Sequence[Mapping]) -> list[Mapping]:
    """The records the rule may choose: all but those flagged for constant predictions."""
    return [r for r in records if not has_constant_predictions(r)]


def _finite(value) -> float:
    return float(value) if value is not None and math.isfinite(value) else -math.inf


def validation_scores(record: Mapping) -> tuple[float, float]:
    """``(selection ROC AUC, val accuracy at the record's threshold)``; a missing value counts as −inf."""
    return _finite(selection_auc(record)), _finite(record["evaluation"]["val"]["at_threshold"].get("accuracy"))


def rank_on_validation(records: Sequence[Mapping]) -> list[Mapping]:
    """Records best first: validation AUC, then validation accuracy (descending), then ``model_id``;
    records flagged for constant predictions after all others (in the same order among themselves)."""
    return sorted(records, key=lambda r: (has_constant_predictions(r), *(-s for s in validation_scores(r)),
                                          r["model_id"]))


def family_order(records: Sequence[Mapping]) -> list[str]:
    """The families present: those of :data:`medclf.models.specs.FAMILIES` in that order, then any other, sorted."""
    present = {str(r.get("family")) for r in records}
    return [f for f in FAMILIES if f in present] + sorted(present - set(FAMILIES))


def family_bests(records: Sequence[Mapping]) -> dict[str, Mapping]:
    """The validation-best record of each family, in :func:`family_order`; a family whose every model is
    flagged for constant predictions has none (:func:`unchoosable_families`)."""
    ranked = rank_on_validation(choosable(records))
    return {family: next(r for r in ranked if str(r.get("family")) == family) for family in family_order(ranked)}


def unchoosable_families(records: Sequence[Mapping]) -> list[str]:
    """Families present in ``records`` whose every model is flagged for constant predictions."""
    usable = {str(r.get("family")) for r in choosable(records)}
    return [family for family in family_order(records) if family not in usable]


def overall_best(records: Sequence[Mapping]) -> Mapping | None:
    """The validation-best record of all (``None`` when no record can be chosen)."""
    ranked = rank_on_validation(choosable(records))
    return ranked[0] if ranked else None


def flagged_note(record: Mapping) -> str | None:
    """Why a record is flagged for (near-)constant predictions and what to do, in one line; ``None`` when it is
    not flagged. The cut-off quoted is the record's own (``evaluation.constant_predictions.tolerance``)."""
    if not has_constant_predictions(record):
        return None
    info = record["evaluation"]["constant_predictions"]
    random_backbone = record.get("family") == "transfer" and "weights_file" in (record.get("training") or {}) \
        and record["training"]["weights_file"] is None
    # what to do, not a promise about this data set: that ImageNet weights help was measured on other runs
    hint = (" — its backbone had random weights (weights=none): give it ImageNet weights (weights=imagenet, the "
            "file in Keras' cache; see docs/methods.md, Constant predictions)" if random_backbone else "")
    return (f"{record['model_id']}: constant predictions (its probabilities span {info['spread']:.1e}, "
            f"under {info['tolerance']:g}); flagged, never chosen{hint}")


#: A validation-best model that wins fewer than this share of bootstrap resamples of the selection rows
#: is not known to be the best: the reports say so (docs/methods.md, How sure is the choice).
WIN_RATE_LEVEL = 0.9
#: Bootstrap replicates of :func:`win_rates`, and their seed: fixed, so the same predictions give the same rates.
WIN_RATE_REPLICATES, WIN_RATE_SEED = 1000, 0


def win_rates(records: Sequence[Mapping], val_predictions: Mapping) -> tuple[dict[str, float], int]:
    """Each choosable record's share of :data:`WIN_RATE_REPLICATES` bootstrap resamples of the selection rows
    (``selected`` in ``predictions/val/``; all rows for files written without it) in which it has the highest
    validation ROC AUC among ``records``, a tie going to the model the rule ranks first; and the number of
    selection rows. Records without validation predictions are left out (no rate)."""
    ranked = [r["model_id"] for r in rank_on_validation(choosable(records)) if r["model_id"] in val_predictions]
    if not ranked:
        return {}, 0
    _, y, probabilities = align_predictions({m: val_predictions[m] for m in ranked}, ranked[0])
    reference = val_predictions[ranked[0]]
    mask = (reference["selected"].astype(str).str.lower().isin(["true", "1"]).to_numpy()
            if "selected" in reference.columns else None)
    if mask is not None:  # align_predictions keeps the reference's row order
        y, probabilities = y[mask], {m: p[mask] for m, p in probabilities.items()}
    rates = statistics.win_rates(y, probabilities, WIN_RATE_REPLICATES, WIN_RATE_SEED)
    return rates, int(y.size)


def family_win_rates(records: Sequence[Mapping], val_predictions: Mapping) -> dict[str, float]:
    """:func:`win_rates` within each family: each choosable record's share of resamples won among its family."""
    rates: dict[str, float] = {}
    for family in family_order(records):
        rates.update(win_rates([r for r in records if str(r.get("family")) == family], val_predictions)[0])
    return rates


def certainty_note(records: Sequence[Mapping], rates: Mapping[str, float], n_rows: int) -> str | None:
    """One line saying whether validation singles out the overall best model (its win rate against
    :data:`WIN_RATE_LEVEL`), naming the closest runners-up; ``None`` without rates."""
    best = overall_best(records)
    if best is None or rates.get(best["model_id"]) is None or not math.isfinite(rates[best["model_id"]]):
        return None
    rate = rates[best["model_id"]]
    others = sorted(((r, m) for m, r in rates.items() if m != best["model_id"] and r > 0), reverse=True)[:3]
    rivals = ", ".join(f"{m} {r:.2f}" for r, m in others)
    where = f"of {WIN_RATE_REPLICATES} bootstrap resamples of the {n_rows} validation images that choose models"
    if rate >= WIN_RATE_LEVEL:
        return (f"{best['model_id']} is the best on validation in {rate:.2f} {where} (level {WIN_RATE_LEVEL}): "
                "validation singles it out")
    return (f"validation does not single out a best model: {best['model_id']} wins only {rate:.2f} {where}, "
            f"under the level {WIN_RATE_LEVEL}" + (f" (others: {rivals})" if rivals else "")
            + "; models this close are interchangeable on this evidence, whatever their test numbers")
