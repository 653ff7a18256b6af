"""The report as a person opens it: headless Chromium reads ``reports/index.html`` from disk.

The session's demo run (``conftest.demo_run``: ``python run_all.py`` into a tmp folder) writes the report,
and Chromium (Debian package ``chromium``) dumps the DOM of the index and of every page it links with
``file://``. No server is involved, so this is also the check that the report works opened straight from disk.

Skipped when Chromium is not installed, unless ``MEDCLF_REQUIRE_BROWSER=1`` (CI sets it), which
turns the skip into a failure.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from html import unescape
from pathlib import Path
from urllib.parse import unquote, urljoin, urlparse

import pytest

from test_compare import make_model  # realistic records: evaluate_model on generated predictions

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        message = ("chromium not found on PATH: install the Debian package 'chromium' "
                   "(apt-get install -y chromium) to run the browser test")
        if os.environ.get("MEDCLF_REQUIRE_BROWSER") == "1":
            pytest.fail(f"MEDCLF_REQUIRE_BROWSER=1 but {message}")
        pytest.skip(message)
    return path


@pytest.fixture(scope="module")
def report(demo_run) -> Path:
    """``reports/index.html`` of the session's demo run."""
    done, _, demo = demo_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return demo / "reports" / "index.html"


@pytest.fixture(scope="module")
def headline(report) -> dict[str, str]:
    """``{model_id: family}`` of the headline table the run wrote (``tables/headline.csv``)."""
    import pandas as pd

    table = pd.read_csv(report.parent.parent / "tables" / "headline.csv")
    return dict(zip(table["model_id"], table["family"]))


def dump_dom(chromium: str, url: str, profile: Path) -> str:
    """The DOM Chromium builds for ``url`` (headless, no sandbox, no GPU, a private profile)."""
    done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"chromium failed on {url}: {done.stderr[-2000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def index_dom(chromium, report, tmp_path_factory) -> str:
    return dump_dom(chromium, report.as_uri(), tmp_path_factory.mktemp("chromium-profile"))


def test_index_shows_headline_table_and_figures(index_dom, report, headline):
    dom = index_dom
    assert "SYNTHETIC DATA" in dom
    table = re.search(r'<table[^>]*class="[^"]*headline[^"]*".*?</table>', dom, re.S)
    assert table, "no headline table in the index page's DOM"
    assert len(set(headline.values())) == len(headline) >= 2  # one row per family: its best on validation
    for model_id in headline:
        assert f"<td>{model_id}</td>" in table.group(0)
    assert "accuracy (95% CI)" in table.group(0) and "★ best on validation" in table.group(0)
    images = re.findall(r'<img src="([^"]+)"', dom)
    assert {Path(src).name for src in images} == {"roc_overlay.png", "accuracy_vs_time.png"}
    for src in images:
        assert not urlparse(src).scheme, f"figure {src} is not a relative path"
        assert (report.parent / src).is_file(), f"figure {src} does not exist"


def test_every_linked_page_loads_with_its_content(chromium, report, index_dom, headline, tmp_path):
    base = report.as_uri()
    links = sorted(set(re.findall(r'<a href="([^"]+)"', index_dom)))
    assert links, "the index links nothing"
    expected = {".html": '<details class="medclf-code"', ".ipynb": '"cells"', ".json": '"params_hash"',
                ".png": "<img"}
    seen = set()
    for href in links:
        url = urljoin(base, unescape(href))
        assert url.startswith("file://"), f"link {href} leaves the report folder"
        path = Path(unquote(urlparse(url).path))
        assert path.is_file(), f"index.html links {href}, but {path} does not exist"
        page = dump_dom(chromium, url, tmp_path / "profile")
        assert expected[path.suffix] in page, f"{href} loaded without its expected content"
        seen.add(path.name)
        if path.suffix == ".html":  # the rendered notebook: outputs inline, code foldable
            assert "data:image/png;base64" in page, f"{href} shows no figure"
        if path.name == "06_compare.html":
            assert "Comparison of every trained model" in page and all(model_id in page for model_id in headline)
    notebooks = ("01_eda", "02_baselines", "03_transfer", "04_augmentation", "05_explain", "06_compare")
    assert {f"{n}.html" for n in notebooks} | {f"{n}.ipynb" for n in notebooks} | {"run.json"} <= seen


#: Injected only into the test's copy of a page (the report pages have no scripts): once everything has loaded,
#: write the page's width against the window's into the DOM, with the elements that stick out, for the message.
WIDTH_PROBE = """<script>
window.addEventListener('load', function () {
  var root = document.documentElement, limit = root.clientWidth, wide = [];
  document.querySelectorAll('body *').forEach(function (el) {
    for (var a = el.parentElement; a && a !== document.body; a = a.parentElement) {
      if (getComputedStyle(a).overflowX !== 'visible') return;  // scrolls inside its own box
    }
    var right = el.getBoundingClientRect().right;
    if (right > limit + 1 && wide.length < 5) wide.push(el.tagName.toLowerCase() + '.' + el.className + ' ' + right);
  });
  var out = document.createElement('pre');
  out.id = 'medclf-width-probe';
  out.textContent = JSON.stringify({page: root.scrollWidth, window: limit, wide: wide});
  document.body.appendChild(out);
});
</script>"""


def page_width(chromium: str, page: Path, profile: Path, window: int = 1400) -> dict:
    """``{"page": scrollWidth, "window": clientWidth, "wide": [...]}`` of ``page`` in a ``window``-px-wide
    Chromium, measured on a copy beside it (same relative links) with :data:`WIDTH_PROBE` added."""
    probe = page.with_name(f"{page.stem}.width-probe.html")
    probe.write_text(page.read_text().replace("</body>", WIDTH_PROBE + "</body>"))
    try:
        done = subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                               "--hide-scrollbars", f"--window-size={window},1000", "--virtual-time-budget=10000",
                               f"--user-data-dir={profile}", "--dump-dom", probe.as_uri()],
                              capture_output=True, text=True, timeout=120)
    finally:
        probe.unlink()
    found = re.search(r'<pre id="medclf-width-probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"chromium did not measure {page.name}: {done.stderr[-2000:]}"
    return json.loads(unescape(found.group(1)))


def report_pages(index: Path) -> list[Path]:
    """``index.html`` and every rendered notebook page it links."""
    links = re.findall(r'<a href="([^"]+\.html)"', index.read_text())
    return [index, *sorted({(index.parent / unescape(href)).resolve() for href in links})]


def test_width_probe_sees_a_page_wider_than_the_window(chromium, tmp_path):
    """The check below can fail: a 2000-px table with no scroll box of its own widens the page."""
    page = tmp_path / "wide.html"
    page.write_text('<!DOCTYPE html><html><body><table><tr><td style="min-width:2000px">x</td></tr></table></body></html>')
    width = page_width(chromium, page, tmp_path / "profile")
    assert width["page"] > width["window"] == 1400 and width["wide"]


def test_no_report_page_scrolls_sideways(chromium, report, tmp_path):
    """At a 1400-px window no page of the demo's report (index and the six notebooks) is wider than the
    window: wide tables and code scroll inside their own box, figures shrink to fit."""
    pages = report_pages(report)
    assert len(pages) == 7
    too_wide = {}
    for page in pages:
        width = page_width(chromium, page, tmp_path / "profile")
        if width["page"] > width["window"]:
            too_wide[f"{page.parent.parent.name}/{page.name}"] = width
    assert not too_wide, f"pages wider than the window: {too_wide}"


def test_the_published_results_section_fits_the_window(chromium, tmp_path):
    """The widest published table (PneumoniaMNIST: seven MedMNIST rows beside ours) stays inside a 1400-px window."""
    from medclf.analysis import compare
    from medclf.config import datasets
    from medclf.evaluation.records import load_records
    from medclf.reporting import pages

    out = tmp_path / "out" / "pneumoniamnist" / "full"
    for seed, (model_id, family) in enumerate(zip(("svm_a", "ann_a", "cnn_a", "transfer_a"),
                                                  ("svm", "ann", "cnn", "transfer"))):
        make_model(out, model_id, family, 0.4 + 0.1 * seed, 0.5, seed)
    records = load_records(out)
    table = compare.published_table(datasets.get("pneumoniamnist").published, records,
                                    compare.load_predictions_for(out, records)[0])
    (out / "tables").mkdir()
    table.to_csv(out / "tables" / "published.csv", index=False)
    page = pages.write_index(out, {"dataset": "pneumoniamnist", "profile": "full", "notebooks": {}})
    assert "Google AutoML Vision" in page.read_text()
    width = page_width(chromium, page, tmp_path / "profile")
    assert width["page"] <= width["window"] == 1400, width
