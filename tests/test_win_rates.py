"""How sure the choice is: bootstrap win rates on the selection rows, in 06's tables, the headline notes
and ``results``; computed from validation predictions only."""

from __future__ import annotations

import numpy as np
import pytest

from medclf.analysis import compare
from medclf.evaluation import selection, statistics
from medclf.evaluation.predictions import load_predictions, save_predictions
from medclf.evaluation.records import load_records
from medclf.evaluation.predictions import predictions_path
from test_compare import CLASSES, VAL_FILES, Y_VAL, make_model, scores


def test_a_model_better_on_every_resample_wins_them_all_and_a_tie_goes_to_the_first():
    y = np.array([0, 1] * 50)
    perfect, noisy = y.astype(float), scores(y, 0.2, 1)
    assert statistics.win_rates(y, {"perfect": perfect, "noisy": noisy}) == {"perfect": 1.0, "noisy": 0.0}
    assert statistics.win_rates(y, {"a": noisy, "b": noisy.copy()}) == {"a": 1.0, "b": 0.0}  # the rule's order


def test_close_models_split_the_wins_and_the_rates_are_reproducible():
    y = np.array([0, 1] * 100)
    candidates = {"a": scores(y, 0.30, 1), "b": scores(y, 0.30, 2), "c": scores(y, 0.30, 3)}
    rates = statistics.win_rates(y, candidates, n_replicates=500, seed=7)
    assert rates == statistics.win_rates(y, candidates, n_replicates=500, seed=7)
    assert sum(rates.values()) == pytest.approx(1.0) and max(rates.values()) < 0.9
    assert all(rate > 0.02 for rate in rates.values()), rates  # every one of them wins some resamples


def run_folder(tmp_path, strengths: dict[str, float], selected=None):
    out = tmp_path / "out" / "chest_xray"
    for seed, (model_id, strength) in enumerate(strengths.items(), 1):
        make_model(out, model_id, model_id.split("_")[0], strength, strength, seed)
        save_predictions(out, model_id, VAL_FILES, Y_VAL, scores(Y_VAL, strength, seed), CLASSES, split="val",
                         selected=selected)
    return out


def test_win_rates_use_the_selection_rows_only(tmp_path):
    """Only the rows marked ``selected`` choose models: with none of the others resampled, a model that is
    perfect on the unselected rows alone gains nothing from them."""
    selected = np.arange(Y_VAL.size) < 40
    out = run_folder(tmp_path, {"cnn_a": 0.3, "cnn_b": 0.3}, selected)
    frames = {m: load_predictions(out, m, "val") for m in ("cnn_a", "cnn_b")}
    rates, n_rows = selection.win_rates(load_records(out), frames)
    assert n_rows == 40 and sum(rates.values()) == pytest.approx(1.0)
    flipped = {m: f.assign(probability=np.where(selected, f["probability"], f["true_label"])) if m == "cnn_b"
               else f for m, f in frames.items()}
    assert selection.win_rates(load_records(out), flipped)[0] == rates


def test_the_comparison_shows_win_rates_and_says_whether_validation_singles_out_the_best(tmp_path):
    clear = compare.load_comparison(run_folder(tmp_path / "clear", {"cnn_strong": 0.9, "ann_weak": 0.1}))
    assert clear.win_rates == {"cnn_strong": 1.0, "ann_weak": 0.0}
    assert list(clear.headline["val_win_rate"]) == [clear.win_rates[m] for m in clear.headline["model_id"]]
    assert set(clear.headline["family_win_rate"]) == {1.0}  # one model per family
    assert clear.certainty.startswith("cnn_strong is the best on validation in 1.00 of 1000 bootstrap resamples "
                                      "of the 60 validation images") and clear.notes[0] == clear.certainty

    close = compare.load_comparison(run_folder(tmp_path / "close", {"cnn_a": 0.3, "cnn_b": 0.3, "svm_c": 0.3}))
    best = close.best_id
    assert close.win_rates[best] < selection.WIN_RATE_LEVEL
    assert close.certainty.startswith(f"validation does not single out a best model: {best} wins only "
                                      f"{close.win_rates[best]:.2f} of 1000")
    assert "others: " in close.certainty and "whatever their test numbers" in close.certainty


def test_no_validation_predictions_means_no_rates_and_a_line_saying_so(tmp_path):
    out = tmp_path / "out" / "chest_xray"
    make_model(out, "cnn_a", "cnn", 0.5, 0.5, 1)
    predictions_path(out, "cnn_a", "val").unlink()
    comparison = compare.load_comparison(out)
    assert comparison.win_rates == {} and comparison.certainty is None
    assert comparison.headline["val_win_rate"].isna().all()
    assert any("left out of the win rates" in line for line in comparison.problems)
