"""What a reader must never meet in a rendered report, checked over a finished run folder.

The checks read what a reader sees: the markdown cells and the outputs of each executed notebook
(``notebooks/0*.ipynb``, never its code), and the body of ``reports/index.html``. Each finding is one
line ``page: what — the text around it``. Used by ``tests/test_demo_reports.py`` on the demo run, and
usable by hand on any run folder: ``python tests/report_lint.py outputs/synthetic/demo``.
"""

from __future__ import annotations

import html
import json
import re
import sys
from pathlib import Path

#: Words that name the real chest X-ray data; on another data set they mean text that does not apply.
CHEST_ONLY = (r"chest X-rays?", r"official test set", r"Kermany", r"radiograph",
              r"pneumonia films", r"normal-class recall near")

#: A missing value spelled the way pandas or Python print it instead of the reports' one symbol.
MISSING_SPELLED = re.compile(r"(?<![\w.])(NaN|nan|None|<NA>|NaT)(?![\w(])")

#: The stderr stream of a cell, or a logging warning printed into an output.
WARNING_LINE = re.compile(r"^(WARNING|W\d{4} |E\d{4} )", re.M)


def _visible_text(fragment: str) -> str:
    """Text a browser shows for an HTML fragment (scripts, styles and tags dropped)."""
    fragment = re.sub(r"(?is)<(script|style)\b.*?</\1>", " ", fragment)
    fragment = re.sub(r"(?s)<!--.*?-->", " ", fragment)
    return html.unescape(re.sub(r"<[^>]+>", " ", fragment))


def _table_cells(fragment: str) -> list[str]:
    """The text of every ``<td>``/``<th>`` cell in an HTML fragment."""
    return [" ".join(_visible_text(cell).split())
            for cell in re.findall(r"(?is)<t[dh]\b[^>]*>(.*?)</t[dh]>", fragment)]


def _around(text: str, match: re.Match, width: int = 70) -> str:
    return " ".join(text[max(0, match.start() - width): match.end() + width].split())


def _notebook_parts(path: Path) -> list[tuple[str, str, str]]:
    """``(kind, text, html)`` of what a reader sees in one executed notebook: each markdown cell, each
    stream, each plain-text and HTML output (kind ``markdown``, ``stdout``, ``stderr``, ``text``, ``html``)."""
    node = json.loads(path.read_text())
    parts = []
    for cell in node["cells"]:
        source = "".join(cell.get("source", ""))
        if cell["cell_type"] == "markdown":
            parts.append(("markdown", source, ""))
            continue
        for output in cell.get("outputs", []):
            if output.get("output_type") == "stream":
                parts.append((output.get("name", "stdout"), "".join(output.get("text", "")), ""))
            data = output.get("data", {})
            if "text/html" in data:
                fragment = "".join(data["text/html"])
                parts.append(("html", _visible_text(fragment), fragment))
            elif "text/markdown" in data:
                parts.append(("markdown", "".join(data["text/markdown"]), ""))
            elif "text/plain" in data and "image/png" not in data:
                parts.append(("text", "".join(data["text/plain"]), ""))
    return parts


def lint_run(run_dir: Path, synthetic: bool, flagged: set[str], mark: str) -> list[str]:
    """Every finding in the reports of the run folder ``run_dir`` (``outputs/<dataset>/<profile>``).

    Args:
        synthetic: whether the run's data set is not the real chest X-rays (chest-only words are findings).
        flagged: model ids flagged for constant predictions; a table cell naming one without ``mark`` is a finding.
        mark: the text that marks a flagged model next to its name.
    """
    findings: list[str] = []
    pages: list[tuple[str, list[tuple[str, str, str]]]] = [
        (path.name, _notebook_parts(path)) for path in sorted((run_dir / "notebooks").glob("0*.ipynb"))
        if not path.name.endswith(".failed.ipynb")]
    index = run_dir / "reports" / "index.html"
    if index.is_file():
        body = index.read_text()
        pages.append(("index.html", [("html", _visible_text(body), body)]))
    for page, parts in pages:
        for kind, text, fragment in parts:
            if kind == "stderr" and text.strip():
                findings.append(f"{page}: a stderr block — {' '.join(text.split())[:140]}")
            for match in WARNING_LINE.finditer(text):
                findings.append(f"{page}: a warning line — {_around(text, match)}")
            for match in re.finditer(r"\.staging\b", text):
                findings.append(f"{page}: a path under .staging — {_around(text, match)}")
            if synthetic:
                for pattern in CHEST_ONLY:
                    for match in re.finditer(pattern, text, re.I):
                        findings.append(f"{page}: chest-only words on other data — {_around(text, match)}")
            if kind == "html" or kind == "text":
                cells = _table_cells(fragment) if fragment else []
                for cell in cells:
                    if MISSING_SPELLED.search(cell):
                        findings.append(f"{page}: a missing value spelled {cell!r} in a table")
                    name = cell.split()[0] if cell.split() else ""
                    if name in flagged and mark.strip() not in cell:
                        findings.append(f"{page}: flagged model {name} without its mark {mark!r} in a table")
                if kind == "text":
                    for match in MISSING_SPELLED.finditer(text):
                        findings.append(f"{page}: a missing value spelled {match.group(1)!r} — {_around(text, match)}")
    return findings


def flagged_models(run_dir: Path) -> set[str]:
    """Model ids whose record flags constant predictions (``evaluation.constant_predictions.flag``)."""
    flagged = set()
    for path in sorted((run_dir / "results").glob("*.json")):
        record = json.loads(path.read_text())
        if ((record.get("evaluation") or {}).get("constant_predictions") or {}).get("flag"):
            flagged.add(record["model_id"])
    return flagged


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    from medclf.evaluation.selection import FLAGGED_MARK  # noqa: E402 (the product's one mark)

    for line in lint_run(folder, synthetic="synthetic" in folder.parts, flagged=flagged_models(folder),
                         mark=FLAGGED_MARK):
        print(line)
