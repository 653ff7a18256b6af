"""Documentation: the README stays a short guide, and every pointer into docs/ leads to a file that exists."""

from __future__ import annotations

import json
import re
from pathlib import Path

from medclf.config import paths
from medclf.config.paths import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
#: In bytes, which also bounds the characters (the README's dashes and arrows take two or three bytes each).
README_MAX_BYTES = 12_000

#: ``[text](target)``: a Markdown link; the target up to the first space or ``)``.
_MD_LINK = re.compile(r"\]\(([^)\s]+)\)")
#: A bare mention such as ``docs/STUDIES.md`` (backticked, in a docstring or prose), read from the project root.
_DOCS_MENTION = re.compile(r"(?<![\w/.-])docs/[\w./-]*\w")


def _slug(heading: str) -> str:
    """GitHub's anchor for a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    return {_slug(line.lstrip("#")) for line in path.read_text(encoding="utf-8").splitlines()
            if line.startswith("#")}


def broken_links(text: str, base: Path, root: Path, markdown: bool = True) -> list[str]:
    """Pointers in ``text`` that lead nowhere, each once: relative Markdown links (resolved from ``base``, the
    folder of the file holding them; an ``#anchor`` must name a heading of a Markdown target) and bare
    ``docs/…`` mentions (resolved from ``root``). In code (``markdown=False``) only links to ``.md`` files
    count, since ``table[key](value)`` reads like a link."""
    broken = []
    for target in _MD_LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue  # a URL (http:, mailto:, …) or an anchor in the same file
        file_part, _, anchor = target.partition("#")
        if not markdown and not file_part.endswith(".md"):
            continue
        path = (base / file_part).resolve()
        if not path.exists():
            broken.append(target)
        elif anchor and path.suffix == ".md" and anchor not in _anchors(path):
            broken.append(target)
    for mention in _DOCS_MENTION.findall(text):
        if not (root / mention).exists() and mention not in broken:
            broken.append(mention)
    return broken


def _documents() -> list[tuple[str, str, Path, bool]]:
    """``(name, text, folder, is Markdown)`` for the README, every docs/ page, every notebook cell and every
    source file."""
    docs = [(str(p.relative_to(PROJECT_ROOT)), p.read_text(encoding="utf-8"), p.parent, True)
            for p in [README, *sorted((PROJECT_ROOT / "docs").glob("*.md"))]]
    for nb_path in sorted((PROJECT_ROOT / "notebooks").glob("*.ipynb")):
        cells = json.loads(nb_path.read_text(encoding="utf-8"))["cells"]
        for i, cell in enumerate(cells):
            source = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            docs.append((f"{nb_path.name} cell {i}", source, nb_path.parent, cell["cell_type"] == "markdown"))
    for py in sorted((PROJECT_ROOT / "src").rglob("*.py")):
        docs.append((str(py.relative_to(PROJECT_ROOT)), py.read_text(encoding="utf-8"), py.parent, False))
    return docs


def test_readme_is_a_short_guide():
    size = len(README.read_bytes())
    assert size <= README_MAX_BYTES, f"README.md has {size} bytes (at most {README_MAX_BYTES}); move detail into docs/"


def test_the_docs_the_project_points_to_exist():
    for name in ("STUDIES.md", "methods.md", "results.md", "benchmarks.md", "parameters.md"):
        assert (PROJECT_ROOT / "docs" / name).is_file(), f"docs/{name} is missing"


def test_every_docs_link_resolves():
    """README, docs/, notebooks (markdown and code cells) and src: every ``docs/…`` pointer resolves."""
    documents = _documents()
    assert any(name.endswith(".ipynb cell 0") for name, *_ in documents), "no notebook was read"
    broken = {name: found for name, text, base, markdown in documents
              if (found := broken_links(text, base, PROJECT_ROOT, markdown))}
    assert not broken, f"links to files or headings that do not exist: {broken}"


def test_the_link_checker_catches_what_it_should(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "methods.md").write_text("# Methods\n\n## Splits, and why\n", encoding="utf-8")
    good = "[m](docs/methods.md) [s](docs/methods.md#splits-and-why) `docs/methods.md` [w](https://x.org/a.md)"
    assert broken_links(good, tmp_path, tmp_path) == []
    bad = "[m](docs/missing.md) [s](docs/methods.md#nowhere) see ``docs/STUDIES.md``"
    assert broken_links(bad, tmp_path, tmp_path) == ["docs/missing.md", "docs/methods.md#nowhere", "docs/STUDIES.md"]
    assert broken_links("words[key](value) [m](docs/gone.md)", tmp_path, tmp_path, markdown=False) == ["docs/gone.md"]
    notebook_dir = tmp_path / "notebooks"
    notebook_dir.mkdir()
    assert broken_links("[m](../docs/methods.md)", notebook_dir, tmp_path) == []


def test_outputs_readme_shows_every_path_the_code_writes(tmp_path):
    """outputs/README.md's tree names each path :mod:`medclf.config.paths` builds, under the run folder and the
    cache (it once said ``.joblib`` for the SVM, which is ``.skops``, and left out the model cache)."""
    from medclf.evaluation.predictions import predictions_path
    from medclf.evaluation.records import model_card_path

    params = {"output_dir": str(tmp_path), "cache_dir": str(tmp_path / "cache"), "dataset": "<dataset>",
              "profile": "<profile>"}
    run = paths.RunPaths(paths.published_run_dir(params))
    model = "svm_pixels"  # a valid model id, shown as <model_id>
    in_run = [run.run_info, run.lock, run.staging("NN_name"), run.publish_journal("NN_name"), run.tables,
              run.figures("NN_name"), run.reports / "index.html", *run.notebook_outputs("NN_name").values(),
              run.record(model), predictions_path(run.root, model), predictions_path(run.root, model, "val"),
              *(run.model_file(model, suffix) for suffix in paths.MODEL_SUFFIXES),
              model_card_path(run.model_file(model))]
    in_cache = [paths.array_cache_file(params, "<key>"), paths.feature_cache_dir(params, "<dataset>"),
                paths.model_cache_dir(params) / "<key>", paths.precision_probe_file(params)]
    text = (PROJECT_ROOT / "outputs" / "README.md").read_text(encoding="utf-8")
    shown = {p.relative_to(run.root).as_posix().replace(model, "<model_id>") for p in in_run}
    shown |= {p.relative_to(paths.cache_root(params)).as_posix() for p in in_cache}
    assert not [name for name in sorted(shown) if name not in text], "outputs/README.md lacks these paths"
    assert not [suffix for suffix in paths.PICKLE_SUFFIXES if suffix in text], "medclf never writes a pickle"
