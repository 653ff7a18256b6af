"""HTML reports: rendered notebooks and the run's ``reports/index.html``.

``index.html`` is built by pure functions from the run record (``run.json``'s content) and a
list of rows; :func:`write_index` gathers those from disk and writes the page atomically. The
page is self-contained (inline CSS, no scripts) and links with relative paths, so it works
opened straight from disk or copied elsewhere together with its folder.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from medclf.config import datasets, paths
from medclf.core import io
from medclf.reporting.notices import SYNTHETIC_BANNER  # shown on every report made from generated data

#: Scroll boxes (a table wider than the page) show their scroll bar at all times: an overlay scroll bar that
#: appears only on hover made a wide table look cut off at the right edge.
_SCROLLBARS = """
.jp-OutputArea-output, div.wide { scrollbar-color: #aaa #f2f2f2; }
.jp-OutputArea-output::-webkit-scrollbar, div.wide::-webkit-scrollbar { height: 10px; }
.jp-OutputArea-output::-webkit-scrollbar-thumb, div.wide::-webkit-scrollbar-thumb { background: #aaa; border-radius: 5px; }
.jp-OutputArea-output::-webkit-scrollbar-track, div.wide::-webkit-scrollbar-track { background: #f2f2f2; }
"""

_CSS = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 88em; padding: 0 1.5em; color: #222; overflow-wrap: anywhere; }
h1 { font-size: 1.6em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; max-width: 100%; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
.banner { background: #b00020; color: #fff; font-weight: bold; font-size: 1.4em; padding: 0.8em 1em;
          border-radius: 4px; text-align: center; margin: 1em 0; }
.status-ok { color: #1b7f3b; font-weight: bold; }
.status-up-to-date { color: #1b7f3b; }
.status-failed { color: #b00020; font-weight: bold; }
.status-skipped, .status-not-run { color: #8a6d00; }
.error { font-family: monospace; font-size: 0.9em; color: #b00020; }
.meta td:first-child { font-weight: bold; }
.note { color: #666; font-size: 0.9em; }
div.wide { max-width: 100%; overflow-x: auto; margin: 0.5em 0 1.5em; }
""" + _SCROLLBARS + """
table.headline { font-size: 0.85em; margin: 0; }
table.headline th, table.headline td { overflow-wrap: normal; }
table.headline small { color: #555; white-space: nowrap; }
table.published td { min-width: 4.5em; }
div.figures { display: flex; flex-wrap: wrap; gap: 1.5em; align-items: flex-start; }
figure { margin: 0; max-width: 100%; }  /* each figure at its own size, shrunk only to fit the window */
figure img { display: block; max-width: 100%; height: auto; border: 1px solid #ddd; }
figcaption { color: #666; font-size: 0.85em; }
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _shown(value: Any) -> Any:
    """A value of the run and parameter tables as given (a setting such as ``5e-4`` keeps its digits), a
    missing one as the tables' one symbol (:data:`medclf.evaluation.tables.MISSING`)."""
    from medclf.evaluation import tables

    return tables.MISSING if value is None else value


def _link(href: str | None, text: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{_e(text)}</a>' if href else ""


def status_class(status: str | None) -> str:
    """CSS class of a notebook status (``ok``, ``failed``, ``skipped``, ``up to date``)."""
    return "status-" + (status or "not run").replace(" ", "-")


def notebook_rows(run_info: dict[str, Any], dataset_dir: str | Path,
                  order: list[str] | None = None) -> list[dict[str, Any]]:
    """One row per notebook of ``run_info["notebooks"]`` (in ``order`` first), with the links that exist.

    Each row: ``name``, ``file``, ``status``, ``wall_s``, ``error``, ``stale`` (made with other
    parameters than this run), and ``html`` / ``notebook`` / ``failed_html`` / ``failed_notebook``:
    paths relative to ``reports/`` of the files present on disk, else ``None``.
    """
    dataset_dir = Path(dataset_dir)
    entries = run_info.get("notebooks", {}) or {}
    names = [n for n in (order or []) if n in entries] + sorted(n for n in entries if n not in (order or []))
    rows = []
    for name in names:
        entry = entries[name]
        stem = Path(entry.get("file", name)).stem

        def rel(sub: str, filename: str) -> str | None:
            path = dataset_dir / sub / filename
            return (filename if sub == "reports" else f"../{sub}/{filename}") if path.is_file() else None

        wall = entry.get("wall_s")
        if wall is None and entry.get("status") == "up to date":
            wall = entry.get("ok_wall_s")
        rows.append({
            "name": name,
            "file": entry.get("file", f"{name}.ipynb"),
            "status": entry.get("status"),
            "reason": entry.get("reason"),
            "wall_s": wall,
            "error": entry.get("error"),
            "stale": bool(entry.get("params_hash") and run_info.get("params_hash")
                          and entry.get("params_hash") != run_info.get("params_hash")),
            "html": rel("reports", f"{stem}.html"),
            "notebook": rel("notebooks", f"{stem}.ipynb"),
            "failed_html": rel("reports", f"{stem}.failed.html"),
            "failed_notebook": rel("notebooks", f"{stem}.failed.ipynb"),
        })
    return rows


def markdown_table_to_frame(text: str):
    """Parse a simple pipe Markdown table (as ``DataFrame.to_markdown`` writes it) into a DataFrame."""
    import pandas as pd

    lines = [line.strip() for line in text.splitlines() if line.strip().startswith("|")]
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in lines]
    cells = [row for row in cells if not all(set(c) <= set(":- ") and c for c in row)]
    if len(cells) < 1 or any(len(row) != len(cells[0]) for row in cells):
        raise ValueError("not a pipe table")
    return pd.DataFrame(cells[1:], columns=cells[0])


def headline_notes_html(tables_dir: str | Path) -> str:
    """The notes under the headline (``tables/headline_notes.csv``, one ``note`` per row: models flagged for
    constant predictions, families without a row) as a list; ``""`` when there are none."""
    path = Path(tables_dir) / "headline_notes.csv"
    if not path.is_file():
        return ""
    import pandas as pd

    try:
        notes = pd.read_csv(path)["note"].dropna().astype(str).tolist()
    except Exception as exc:  # a broken table must not break the report
        return f'<p class="error">headline notes could not be read: {_e(exc)}</p>'
    items = "".join(f"<li>{_e(note)}</li>" for note in notes)
    return f'<ul class="note">{items}</ul>' if items else ""


def headline_html(tables_dir: str | Path) -> str | None:
    """The headline table (``tables/headline.csv``, else ``headline.md``) as HTML, then its notes
    (:func:`headline_notes_html`), or ``None``."""
    tables_dir = Path(tables_dir)
    csv_path, md_path = tables_dir / "headline.csv", tables_dir / "headline.md"
    try:
        if csv_path.is_file():
            import pandas as pd

            frame = pd.read_csv(csv_path)
        elif md_path.is_file():
            text = md_path.read_text()
            try:
                frame = markdown_table_to_frame(text)
            except ValueError:
                return f"<pre>{_e(text)}</pre>"
        else:
            return None
    except Exception as exc:  # a broken table must not break the report
        return f'<p class="error">headline table could not be read: {_e(exc)}</p>'
    return readable_html(frame) + headline_notes_html(tables_dir)


def readable_html(frame, classes: str = "headline") -> str:
    """``frame`` as :func:`readable_headline` HTML (one cell per value and its interval, numbers and missing
    values as :func:`medclf.evaluation.tables.readable` writes them), in a box that scrolls sideways rather
    than widen the page: the index page and 06_compare show tables this way."""
    from medclf.evaluation import tables

    table = tables.readable(readable_headline(frame)).to_html(index=False, border=0, classes=classes, escape=False)
    return f'<div class="wide" style="overflow-x: auto">{table}</div>'


def readable_headline(frame):
    """The headline table for people: each ``X, X_ci_low, X_ci_high`` triple as one cell
    ``0.819<br><small>[0.787, 0.848]</small>`` headed ``X (95% CI)``, and ``overall_best`` as a ★
    mark, with ``_`` in headers shown as spaces. Text cells are HTML-escaped here (the result is
    rendered with ``escape=False``).

    The CSV keeps the exact numbers; this only changes how they read (numbers and missing values as
    :func:`medclf.evaluation.tables.readable` shows them, :func:`readable_html` applies it).
    """
    import pandas as pd

    from medclf.evaluation import tables

    frame = frame.copy()
    for column in frame.columns:
        if frame[column].dtype == object or pd.api.types.is_string_dtype(frame[column]):
            frame[column] = frame[column].map(lambda v: v if pd.isna(v) else html.escape(str(v)))
    frame.columns = [html.escape(str(c)) for c in frame.columns]
    for low in [c for c in frame.columns if str(c).endswith("_ci_low")]:
        base = str(low)[: -len("_ci_low")]
        high = f"{base}_ci_high"
        if base not in frame.columns or high not in frame.columns:
            continue

        def cell(row, base=base, low=low, high=high):
            values = [pd.to_numeric(row[k], errors="coerce") for k in (base, low, high)]
            if pd.isna(values[0]):
                return tables.MISSING
            low_text, high_text, value_text = (tables.format_value(float(v)) for v in (values[1], values[2], values[0]))
            interval = ("" if pd.isna(values[1]) or pd.isna(values[2])
                        else f"<br><small>[{low_text}, {high_text}]</small>")
            return f"{value_text}{interval}"

        frame[base] = frame.apply(cell, axis=1) if len(frame) else frame[base]
        frame = frame.drop(columns=[low, high]).rename(columns={base: f"{base} (95% CI)"})
    if "overall_best" in frame.columns:
        marks = frame["overall_best"].astype(str).str.lower().isin(["true", "1"])
        frame["overall_best"] = marks.map({True: "★ best on validation", False: ""})
    frame.columns = [str(c).replace("_", " ") for c in frame.columns]  # headers may wrap
    return frame


#: The published-results table on the index page: ``tables/published.csv`` columns shown, and their short headers.
PUBLISHED_COLUMNS = {"reported_by": "reported by", "source": "source", "model": "model", "evaluation": "evaluation",
                     "roc_auc": "AUC", "accuracy_at_0.5": "acc @0.5", "accuracy_at_threshold": "acc @val. threshold",
                     "vs_our_best": "vs our best (95% CI)", "overall_best": "overall_best"}
#: The caveat printed under it.
PUBLISHED_CAVEAT = ("Published numbers are as reported by their authors, on their own protocol (cross-validation, "
                    "their test set, accuracy at 0.5); ours are on this run's test split with 95% bootstrap "
                    "intervals. Details and the rest of the columns: tables/published.csv and 06_compare.")


def published_html(tables_dir: str | Path) -> str | None:
    """The published results beside ours (``tables/published.csv``, written by 06_compare) with the
    :data:`PUBLISHED_COLUMNS`, intervals merged as in :func:`readable_headline`, then :data:`PUBLISHED_CAVEAT`;
    ``None`` when there is no such table or it has no rows (no published results apply to the data set)."""
    path = Path(tables_dir) / "published.csv"
    if not path.is_file():
        return None
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except Exception as exc:  # a broken table must not break the report
        return f'<p class="error">published results could not be read: {_e(exc)}</p>'
    if frame.empty:
        return None
    names = {f"{c}{end}": f"{PUBLISHED_COLUMNS[c]}{end}" for c in PUBLISHED_COLUMNS for end in ("", "_ci_low", "_ci_high")}
    keep = [c for c in frame.columns if c in names]
    return readable_html(frame[keep].rename(columns=names), "headline published") + \
        f'<p class="note">{_e(PUBLISHED_CAVEAT)}</p>'


#: Figures shown under the headline table: (notebook, file stem, caption), drawn by 06_compare.
HEADLINE_FIGURES = (
    ("06_compare", "roc_overlay", "Test ROC curves of the best model of each family (chosen on validation)"),
    ("06_compare", "accuracy_vs_time", "Test accuracy (95% CI) beside training time, every model"),
)


def headline_figures(dataset_dir: str | Path) -> list[tuple[str, str]]:
    """``(href relative to reports/, caption)`` of each :data:`HEADLINE_FIGURES` PNG that exists."""
    figures = paths.RunPaths(Path(dataset_dir)).figures()
    return [(f"../figures/{notebook}/{stem}.png", caption) for notebook, stem, caption in HEADLINE_FIGURES
            if (figures / notebook / f"{stem}.png").is_file()]


def index_html(run_info: dict[str, Any], rows: list[dict[str, Any]], headline: str | None = None,
               figures: list[tuple[str, str]] | None = None, published: str | None = None) -> str:
    """The full ``index.html`` page for one run (pure: builds a string from its arguments).

    ``figures`` are ``(relative href, caption)`` pairs shown under the headline table; ``published``
    (:func:`published_html`) is the "Published results" section under them, left out when ``None``.
    """
    dataset = run_info.get("dataset") or run_info.get("params", {}).get("dataset", "?")
    profile = run_info.get("profile") or run_info.get("params", {}).get("profile", "?")
    title = f"medclf report — {dataset} ({profile})"
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{_e(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
    ]
    if dataset in datasets.DATASETS and datasets.get(dataset).synthetic:
        parts.append(f'<div class="banner">{_e(SYNTHETIC_BANNER)}</div>')
    status = run_info.get("status")
    if status and status != "ok":
        parts.append(f'<p class="{status_class("failed")}">Last run: {_e(status)}</p>')

    parts.append("<h2>Headline results</h2>")
    parts.append(headline if headline else
                 '<p class="note">No headline table yet (tables/headline.csv or headline.md).</p>')
    if figures:
        parts.append('<div class="figures">')
        for href, caption in figures:
            parts.append(f'<figure><a href="{html.escape(href, quote=True)}"><img src="{html.escape(href, quote=True)}" '
                         f'alt="{_e(caption)}"></a><figcaption>{_e(caption)}</figcaption></figure>')
        parts.append("</div>")
    if published:
        parts.append("<h2>Published results, as reported by their authors, beside ours</h2>")
        parts.append(published)

    parts.append("<h2>Notebooks</h2>")
    parts.append("<table><tr><th>notebook</th><th>status</th><th>wall time</th><th>report</th>"
                 "<th>executed notebook</th><th>error</th></tr>")
    for row in rows:
        wall = f"{row['wall_s']:.1f} s" if isinstance(row.get("wall_s"), (int, float)) else ""
        report = _link(row.get("html"), "report")
        executed = _link(row.get("notebook"), Path(row.get("file", "")).name)
        error = f'<span class="error">{_e(row.get("error"))}</span>' if row.get("error") else ""
        if row.get("failed_html") or row.get("failed_notebook"):
            failed = " ".join(x for x in (_link(row.get("failed_html"), "failed report"),
                                          _link(row.get("failed_notebook"), "failed notebook")) if x)
            error = f"{error}<br>{failed}" if error else failed
        status_text = row.get("status") or "not run"
        if row.get("reason") and status_text == "skipped":
            status_text = f"skipped ({row['reason']})"
        stale = '<br><span class="note">made with other parameters</span>' if row.get("stale") else ""
        parts.append(f"<tr><td>{_e(row['name'])}</td>"
                     f'<td class="{status_class(row.get("status"))}">{_e(status_text)}{stale}</td>'
                     f"<td>{wall}</td><td>{report}</td><td>{executed}</td><td>{error}</td></tr>")
    parts.append("</table>")

    git = run_info.get("git") or {}
    commit = git.get("commit") or "unknown (no git)"
    if git.get("dirty"):
        commit += " (uncommitted changes)"
    meta = [("dataset", dataset), ("profile", profile), ("params hash", run_info.get("params_hash")),
            ("data manifest", run_info.get("data_manifest_hash")), ("git commit", commit),
            ("started", run_info.get("started")), ("ended", run_info.get("ended"))]
    meta += [(name, version or "not installed") for name, version in (run_info.get("versions") or {}).items()]
    parts.append("<h2>Run</h2><table class=\"meta\">")
    parts += [f"<tr><td>{_e(k)}</td><td>{_e(_shown(v))}</td></tr>" for k, v in meta]
    parts.append("</table>")
    params = run_info.get("params") or {}
    if params:
        parts.append("<h2>Parameters</h2><table><tr><th>parameter</th><th>value</th></tr>")
        parts += [f"<tr><td>{_e(k)}</td><td>{_e(_shown(v))}</td></tr>" for k, v in sorted(params.items())]
        parts.append("</table>")
    parts.append('<p class="note">Full record: <a href="../run.json">run.json</a></p>')
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_index(dataset_dir: str | Path, run_info: dict[str, Any], order: list[str] | None = None) -> Path:
    """Write ``<run_dir>/reports/index.html`` atomically for ``run_info``; return its path."""
    layout = paths.RunPaths(Path(dataset_dir))
    rows = notebook_rows(run_info, layout.root, order)
    page = index_html(run_info, rows, headline_html(layout.tables), headline_figures(layout.root),
                      published_html(layout.tables))
    return io.write_text(layout.reports / "index.html", page)


#: nbconvert template: JupyterLab's look, each code input in an open <details> (click to fold) except the
#: settings papermill injected (one long line of every parameter: folded, the notebook prints what it uses),
#: wide outputs scroll inside their own box with its scroll bar always shown (the page never scrolls sideways;
#: table headers wrap at the spaces :func:`medclf.evaluation.tables.readable` writes for ``_``), and no <script> tags
#: (require.js, MathJax, mermaid come from a CDN; pages must read offline).
_NOTEBOOK_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{% block html_head_js %}{% endblock html_head_js %}
{% block html_head_js_mathjax %}{% endblock html_head_js_mathjax %}
{% block html_head_js_mermaidjs %}{% endblock html_head_js_mermaidjs %}
{% block extra_css %}<style>
details.medclf-code > summary { cursor: pointer; color: #777; font-size: 0.8em; margin: 0.3em 0 0.1em 0.5em; }
.jp-OutputArea-output, .jp-InputArea-editor { max-width: 100%; overflow-x: auto; }
.jp-RenderedImage img { max-width: 100%; height: auto; }
.jp-RenderedHTMLCommon table { font-size: 0.9em; table-layout: auto; }
.jp-RenderedHTMLCommon th, .jp-RenderedHTMLCommon td { padding: 0.3em 0.4em; }
""" + _SCROLLBARS + """
</style>{% endblock extra_css %}
{% block input_group -%}
{%- if 'injected-parameters' in cell.metadata.get('tags', []) -%}
<details class="medclf-code medclf-injected"><summary>settings injected by run_all.py: every parameter of this run (click to show)</summary>
{{ super() }}
</details>
{%- else -%}
<details class="medclf-code" open><summary>code</summary>
{{ super() }}
</details>
{%- endif -%}
{%- endblock input_group %}
"""


def notebook_html(notebook: str | Path, hide_code: bool = False) -> str:
    """Render an executed notebook to a self-contained HTML page (nbconvert, no scripts).

    Code inputs are shown folded-open in ``<details>`` (a click collapses each one);
    ``hide_code`` drops them altogether.
    """
    import jinja2
    import nbformat
    from nbconvert import HTMLExporter

    node = nbformat.read(str(notebook), as_version=4)
    exporter = HTMLExporter(exclude_input=hide_code, exclude_input_prompt=hide_code,
                            extra_loaders=[jinja2.DictLoader({"medclf_notebook.html.j2": _NOTEBOOK_TEMPLATE})],
                            template_file="medclf_notebook.html.j2")
    body, _ = exporter.from_notebook_node(node)
    return body
