"""The demo's rendered reports hold nothing a reader should not meet (:mod:`report_lint`): no missing value
spelled NaN/None, no stderr or warning block, no path under ``.staging``, no words about the real chest
X-rays on synthetic data, no flagged model without its mark. The checker itself is tested on planted pages."""

from __future__ import annotations

import json

import nbformat
import pytest

from report_lint import flagged_models, lint_run


def _mark() -> str:
    from medclf.evaluation.selection import FLAGGED_MARK

    return FLAGGED_MARK


@pytest.mark.slow
def test_every_demo_report_reads_clean(demo_run):
    done, _, out = demo_run
    assert done.returncode == 0, done.stdout + done.stderr
    flagged = flagged_models(out)
    assert flagged, "the demo's random-weight transfer models are expected to be flagged; the mark check saw none"
    findings = lint_run(out, synthetic=True, flagged=flagged, mark=_mark())
    assert not findings, f"{len(findings)} findings:\n" + "\n".join(findings[:40])


def _plant(run_dir, cells, index_body="<p>ok</p>", flagged=()):
    (run_dir / "notebooks").mkdir(parents=True)
    (run_dir / "reports").mkdir()
    (run_dir / "results").mkdir()
    node = nbformat.v4.new_notebook()
    node.cells = cells
    nbformat.write(node, str(run_dir / "notebooks" / "02_baselines.ipynb"))
    (run_dir / "reports" / "index.html").write_text(f"<html><style>td {{}}</style><body>{index_body}</body></html>")
    for model_id in flagged:
        (run_dir / "results" / f"{model_id}.json").write_text(json.dumps(
            {"model_id": model_id, "evaluation": {"constant_predictions": {"flag": True}}}))


def _html_output(fragment):
    return nbformat.v4.new_output("display_data", data={"text/html": fragment, "text/plain": "table"})


@pytest.mark.parametrize("cell, finding", [
    (nbformat.v4.new_code_cell("t", outputs=[_html_output("<table><tr><td>0.5</td><td>NaN</td></tr></table>")]),
     "missing value spelled 'NaN'"),
    (nbformat.v4.new_code_cell("t", outputs=[nbformat.v4.new_output("stream", name="stderr", text="oops\n")]),
     "a stderr block"),
    (nbformat.v4.new_code_cell("t", outputs=[nbformat.v4.new_output(
        "stream", name="stdout", text="WARNING:tensorflow:5 out of the last 11 calls triggered retracing\n")]),
     "a warning line"),
    (nbformat.v4.new_code_cell("t", outputs=[nbformat.v4.new_output(
        "stream", name="stdout", text="saved /x/out/.staging/02_baselines/tables/a.csv\n")]), "under .staging"),
    (nbformat.v4.new_markdown_cell("On the chest X-rays the official test set is harder."), "chest-only words"),
    (nbformat.v4.new_code_cell("t", outputs=[_html_output("<table><tr><td>mobilenet_v2_frozen</td></tr></table>")]),
     "flagged model mobilenet_v2_frozen without its mark"),
])
def test_the_checker_finds_each_planted_fault(tmp_path, cell, finding):
    _plant(tmp_path / "run", [cell], flagged=["mobilenet_v2_frozen"])
    findings = lint_run(tmp_path / "run", synthetic=True, flagged=flagged_models(tmp_path / "run"), mark=_mark())
    assert any(finding in line for line in findings), findings


def test_the_checker_passes_clean_pages_and_reads_no_code(tmp_path):
    """Code is not what a reader is shown as text (a show_note call naming the chest X-rays is fine); a
    marked flagged model, a real missing-value symbol and chest words on chest data are fine too."""
    mark = _mark()
    cells = [nbformat.v4.new_code_cell('show_note(P, "On the chest X-rays ...", when="chest_xray") # None NaN'),
             nbformat.v4.new_code_cell("t", outputs=[_html_output(
                 f"<table><tr><td>mobilenet_v2_frozen{mark}</td><td>—</td><td>0.925</td></tr></table>")]),
             nbformat.v4.new_markdown_cell("On the chest X-rays the official test set is harder.")]
    _plant(tmp_path / "run", cells, index_body=f"<table><tr><td>mobilenet_v2_frozen{mark}</td></tr></table>",
           flagged=["mobilenet_v2_frozen"])
    assert lint_run(tmp_path / "run", synthetic=False, flagged={"mobilenet_v2_frozen"}, mark=mark) == []
