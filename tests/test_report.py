"""reports/index.html and rendered notebooks (no kernel)."""

from __future__ import annotations

import re

import nbformat
import pandas as pd

from medclf.reporting import pages as report
from medclf.core import versions


def run_info(dataset: str = "synthetic") -> dict:
    return {
        "dataset": dataset, "profile": "demo", "status": "failed", "params_hash": "abc123",
        "data_manifest_hash": "d1", "started": "2025-01-01T00:00:00", "ended": "2025-01-01T00:01:00",
        "git": {"commit": "deadbeef", "dirty": True},
        "versions": {"python": "3.11.7", "tensorflow": "2.21.0"},
        "params": {"dataset": dataset, "seed": 42},
        "notebooks": {
            "eda": {"file": "01_eda.ipynb", "status": "ok", "wall_s": 4.25, "params_hash": "abc123"},
            "baselines": {"file": "02_baselines.ipynb", "status": "failed", "wall_s": 1.0,
                          "error": "ValueError: <boom>", "params_hash": "abc123"},
            "compare": {"file": "06_compare.ipynb", "status": "skipped", "reason": "depends on failed baselines"},
        },
    }


def make_outputs(dataset_dir):
    for rel in ("reports/01_eda.html", "notebooks/01_eda.ipynb", "reports/02_baselines.html",
                "reports/02_baselines.failed.html", "notebooks/02_baselines.failed.ipynb"):
        path = dataset_dir / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")


def test_index_links_and_banner(tmp_path):
    make_outputs(tmp_path)
    path = report.write_index(tmp_path, run_info(), ["eda", "baselines", "transfer", "compare"])
    assert path == tmp_path / "reports" / "index.html"
    page = path.read_text()
    assert report.SYNTHETIC_BANNER in page and "SYNTHETIC DATA — demo only, not a medical result" in page
    assert "medclf report — synthetic (demo)" in page
    hrefs = re.findall(r'href="([^"]+)"', page)
    assert {"01_eda.html", "../notebooks/01_eda.ipynb", "02_baselines.failed.html",
            "../notebooks/02_baselines.failed.ipynb", "../run.json"} <= set(hrefs)
    for href in hrefs:  # every link is relative and points at an existing file
        assert not href.startswith(("http:", "https:", "/"))
        assert (path.parent / href).exists() or href == "../run.json", href
    assert "<script" not in page and "stylesheet" not in page
    assert "ValueError: &lt;boom&gt;" in page
    assert "4.2 s" in page or "4.3 s" in page
    assert "deadbeef (uncommitted changes)" in page and "2.21.0" in page
    assert page.index("eda") < page.index("baselines") < page.index("compare")


def test_no_banner_for_real_data():
    rows = []
    page = report.index_html(run_info("chest_xray"), rows)
    assert report.SYNTHETIC_BANNER not in page and "chest_xray" in page


def test_headline_csv_and_md(tmp_path):
    tables = tmp_path / "tables"
    assert report.headline_html(tables) is None
    tables.mkdir()
    frame = pd.DataFrame({"model": ["cnn", "resnet<&>"], "auc": [0.91234, 0.95]})
    (tables / "headline.md").write_text(frame.to_markdown(index=False) + "\n")
    md = report.headline_html(tables)
    assert "<table" in md and "resnet&lt;&amp;&gt;" in md and "<th>auc</th>" in md
    frame.to_csv(tables / "headline.csv", index=False)
    csv = report.headline_html(tables)
    assert "<table" in csv and "0.912" in csv and "0.9123" not in csv  # three decimals, as every table shows
    page = report.index_html(run_info(), [], csv)
    assert page.index("resnet") < page.index("<h2>Notebooks</h2>")


def small_notebook(path, code: str, output: str):
    """A two-cell notebook (title, one code cell with a stdout output) written to ``path``."""
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell(code)
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=output + "\n")]
    nb.cells = [nbformat.v4.new_markdown_cell("# Title"), cell]
    nbformat.write(nb, str(path))
    return path


def test_notebook_html_hides_code(tmp_path):
    path = small_notebook(tmp_path / "nb.ipynb", "secret_input_code = 1", "visible output")
    shown = report.notebook_html(path)
    hidden = report.notebook_html(path, hide_code=True)
    assert "secret_input_code" in shown and "visible output" in shown
    assert "secret_input_code" not in hidden and "visible output" in hidden


def test_versions(tmp_path):
    found = versions.package_versions()
    assert found["python"].count(".") == 2 and "tensorflow" in found and "scikit-learn" in found
    assert versions.git_info(tmp_path / "missing") == {"commit": None, "dirty": None}
    info = versions.git_info(tmp_path)
    assert info["commit"] is None


def test_headline_merges_intervals_and_marks_the_best(tmp_path):
    tables = tmp_path / "tables"
    tables.mkdir()
    pd.DataFrame({"family": ["svm", "cnn"], "model_id": ["svm_pixels", "cnn_deeper"],
                  "accuracy": [0.81891, 0.77884], "accuracy_ci_low": [0.787, 0.747],
                  "accuracy_ci_high": [0.848, 0.806], "roc_auc": [0.92, None], "roc_auc_ci_low": [0.9, None],
                  "roc_auc_ci_high": [0.94, None], "overall_best": [False, True]}).to_csv(tables / "headline.csv",
                                                                                           index=False)
    page = report.headline_html(tables)
    assert "<th>accuracy (95% CI)</th>" in page and "0.819<br><small>[0.787, 0.848]</small>" in page
    assert "ci low" not in page and "★ best on validation" in page and "<th>model id</th>" in page
    assert page.count("★") == 1


def test_index_shows_headline_figures_with_relative_paths(tmp_path):
    figures = tmp_path / "figures" / "06_compare"
    figures.mkdir(parents=True)
    (figures / "roc_overlay.png").write_bytes(b"png")
    path = report.write_index(tmp_path, run_info("chest_xray"), ["eda"])
    page = path.read_text()
    assert '<img src="../figures/06_compare/roc_overlay.png"' in page
    assert "accuracy_vs_time" not in page  # only figures that exist
    assert (path.parent / "../figures/06_compare/roc_overlay.png").is_file()
    assert page.index("roc_overlay") < page.index("<h2>Notebooks</h2>")


def test_notebook_html_is_self_contained_with_collapsible_code(tmp_path):
    path = small_notebook(tmp_path / "nb.ipynb", "shown_code = 1", "the output")
    page = report.notebook_html(path)
    assert "<script" not in page  # no CDN: readable offline
    details = page[page.index('<details class="medclf-code"'):]
    assert "shown_code" in details[: details.index("</details>")]  # the input sits in a <details>
    assert "the output" in page and "<h1" in page
    assert "<details" not in report.notebook_html(path, hide_code=True)


def test_injected_settings_are_folded_and_other_code_open(tmp_path):
    """papermill's injected settings (one long line of every parameter) start folded; the notebook's own code open."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell('settings = {"dataset": "synthetic", "seed": 42}',
                                          metadata={"tags": ["injected-parameters"]}),
                nbformat.v4.new_code_cell("own_code = 1")]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, str(path))
    page = report.notebook_html(path)
    blocks = re.findall(r"<details([^>]*)>(.*?)</details>", page, re.S)
    injected = [attrs for attrs, body in blocks if "synthetic" in body]
    own = [attrs for attrs, body in blocks if "own_code" in body]
    assert len(injected) == 1 and "open" not in injected[0] and "medclf-injected" in injected[0]
    assert len(own) == 1 and "open" in own[0]


def _show_note_flags() -> dict[str, set[str]]:
    """The registry flag (``when=``) of every ``artifacts.show_note`` call in notebooks 02-06, by notebook."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "notebooks"
    flags = {}
    for path in sorted(root.glob("0[2-6]_*.ipynb")):
        code = "\n".join(c.source for c in nbformat.read(str(path), as_version=4).cells if c.cell_type == "code")
        flags[path.name] = set(re.findall(r"\bwhen=\"(\w+)\"", code))  # show_note's only keyword of that name
    return flags


def test_text_about_the_real_chest_x_rays_never_shows_on_synthetic_data():
    """The demo's generated images stand in for chest X-rays (chest_like), but what is said about the real ones
    (their official test set, the class it fails on) must not be shown on them; on the real data it is."""
    from medclf.reporting import artifacts

    flags = _show_note_flags()
    used = set().union(*flags.values())
    assert used, flags  # the notebooks still say something about the real chest X-rays, conditionally
    for flag in used:
        assert not artifacts.applies({"dataset": "synthetic"}, flag), flag
        assert artifacts.applies({"dataset": "chest_xray"}, flag), flag


def test_no_study_reproduction_on_synthetic_data():
    """The studies' published real-data accuracies are never set beside numbers from generated images."""
    from medclf.reporting import artifacts

    assert not artifacts.applies({"dataset": "synthetic"}, "study_reproduction")
    note = artifacts.study_reproduction_skipped({"dataset": "synthetic"})
    assert note.startswith("_Not shown") and "06_compare" not in note  # the demo has no published results
    assert "06_compare" in artifacts.study_reproduction_skipped({"dataset": "pneumoniamnist"})


def test_tables_show_one_missing_symbol_and_three_decimals(tmp_path):
    """NaN, None and an empty cell once read three ways; thresholds read 0.4 / 0.242 / 0.4994."""
    from medclf.evaluation import tables

    frame = pd.DataFrame({"model_id": ["svm", None, "cnn"], "threshold": [0.4, 0.24219, 0.4994],
                          "roc_auc": [0.92, None, float("nan")], "roc_auc_ci_low": [0.9, None, None],
                          "roc_auc_ci_high": [0.94, None, None], "epochs_run": [None, 4.0, 12.0],
                          "p_value": [0.00002, 0.5, None]})
    shown = tables.readable(frame)
    assert shown["threshold"].tolist() == ["0.400", "0.242", "0.499"]
    assert shown["epochs run"].tolist() == [tables.MISSING, 4, 12]  # counts stay whole numbers
    assert shown["p value"].tolist() == ["<0.001", "0.500", tables.MISSING]
    assert shown["model id"].tolist() == ["svm", tables.MISSING, "cnn"]  # headers wrap at spaces
    text = shown.to_string()
    assert not re.search(r"\b(nan|NaN|None)\b", text), text
    page = report.readable_html(frame)
    cells = re.findall(r"<td>(.*?)</td>", page)
    assert not re.search(r"\b(nan|NaN|None)\b", page) and "<td></td>" not in page, page
    assert "0.920<br><small>[0.900, 0.940]</small>" in cells and cells.count(tables.MISSING) == 5
    assert "0.400" in cells and "0.4994" not in page
    by_threshold = tables.readable(frame.set_index(["model_id", "threshold"])[["roc_auc"]])  # numbers in the index too
    assert by_threshold.index.get_level_values("threshold").tolist() == ["0.400", "0.242", "0.499"]


def test_wide_tables_scroll_in_a_box_that_shows_its_scroll_bar(tmp_path):
    """A 29-column table in its scroll box, with an overlay scroll bar shown only on hover, read as a table cut
    off at the right edge of the page: both kinds of page keep the scroll bar of such a box in view."""
    page = report.notebook_html(small_notebook(tmp_path / "nb.ipynb", "x = 1", "out"))
    index = report.index_html(run_info(), [])
    assert ".jp-OutputArea-output::-webkit-scrollbar-thumb" in page and "scrollbar-color" in page
    assert "div.wide::-webkit-scrollbar-thumb" in index and "scrollbar-color" in index
    assert re.search(r"\.jp-RenderedHTMLCommon table \{[^}]*table-layout: auto", page)


def test_durations_are_shown_with_one_decimal_and_fractions_with_three():
    """A training time is not a metric: 62.720 s read as three significant decimals of a fraction."""
    from medclf.evaluation.tables import readable

    shown = readable(pd.DataFrame({"train_seconds": [5.39, 0.0213], "wall_s": [0.25, 1.0], "accuracy": [0.8141, 0.5]}))
    assert shown["train seconds"].tolist() == ["5.4", "0.02"]
    assert shown["wall s"].tolist() == ["0.2", "1.0"]
    assert shown["accuracy"].tolist() == ["0.814", "0.500"]
