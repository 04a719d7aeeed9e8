"""The built book in a real browser: headless Chromium opens every page from file://.

The book is built from the repository (render only, never executing a notebook) into a temporary folder
with the strict command, then every page is checked: no console errors (except sphinx-book-theme's own
"Got invalid theme mode" message), no request that leaves the built site, every image loaded, math typeset
on the methods page, the claims table with one row per claim, every local link pointing at a file that
exists (and at an anchor that exists). A screenshot of each page is saved under _build/screenshots/.

Skipped only when /usr/bin/chromium (or the playwright client) is absent and CI is not "true".
"""
from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from vqstudy import book

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
THEME_NOISE = "Got invalid theme mode"         # sphinx-book-theme on a fresh profile; not an error of ours
LOCAL_SCHEMES = ("file", "data", "blob", "about")
SCREENSHOTS = ROOT / "_build" / "screenshots"


def _require_browser():
    in_ci = os.environ.get("CI", "").lower() == "true"
    problem = None
    if not CHROMIUM.exists():
        problem = f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    else:
        try:
            import playwright.sync_api  # noqa: F401
        except ImportError:
            problem = "the playwright client is not installed (pip install -r requirements.txt)"
    if problem:
        if in_ci:
            pytest.fail(f"browser test cannot run in CI: {problem}")
        pytest.skip(problem)


@dataclass
class PageReport:
    path: str
    console_errors: list[str] = field(default_factory=list)
    external: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    images: list[dict] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    math_elements: int = 0
    table_rows: list[str] | None = None


@dataclass
class Site:
    html: Path
    build_s: float
    browse_s: float
    pages: dict[str, PageReport]


def _pages(html: Path) -> list[Path]:
    skip = ("_static", "_sources", "_images", "_sphinx_design_static")
    return sorted(p for p in html.rglob("*.html") if not p.relative_to(html).parts[0] in skip)


def _visit(page, url: str, report: PageReport, shot: Path) -> None:
    page.goto(url, wait_until="load")
    page.wait_for_load_state("networkidle")
    page.evaluate("""async () => {
        if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
        await Promise.all(Array.from(document.images).map(img => img.decode().catch(() => null)));
    }""")
    page.screenshot(path=str(shot), full_page=True)
    report.images = page.evaluate("""() => Array.from(document.images).map(img => (
        {src: img.currentSrc || img.src, complete: img.complete, width: img.naturalWidth}))""")
    report.links = page.evaluate("() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)")
    report.math_elements = page.evaluate("() => document.querySelectorAll('mjx-container').length")
    if page.query_selector("table#claims-table"):
        report.table_rows = page.evaluate("""() => Array.from(
            document.querySelectorAll('table#claims-table tbody tr')).map(tr => tr.cells[0].innerText.trim())""")


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Site:
    _require_browser()
    from playwright.sync_api import sync_playwright

    out = tmp_path_factory.mktemp("book")
    try:
        index, build_s = book.build_book(ROOT, output=out, quiet=True)
    except book.BookError as exc:
        pytest.fail(str(exc))
    html = index.parent
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    reports: dict[str, PageReport] = {}
    started = time.perf_counter()
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        current: dict[str, PageReport] = {}

        def route(r):
            if urlparse(r.request.url).scheme in LOCAL_SCHEMES:
                r.continue_()
            else:
                current["report"].external.append(r.request.url)
                r.abort()

        context.route("**/*", route)
        for path in _pages(html):
            rel = path.relative_to(html).as_posix()
            report = current["report"] = reports[rel] = PageReport(rel)
            page = context.new_page()
            page.on("console", lambda m, r=report: r.console_errors.append(m.text)
                    if m.type == "error" and THEME_NOISE not in m.text else None)
            page.on("pageerror", lambda e, r=report: r.console_errors.append(f"uncaught: {e}"))
            page.on("requestfailed", lambda q, r=report: r.failed.append(f"{q.url} ({q.failure})")
                    if urlparse(q.url).scheme in LOCAL_SCHEMES else None)
            _visit(page, path.as_uri(), report, SCREENSHOTS / (rel.replace("/", "__")[:-5] + ".png"))
            page.close()
        browser.close()
    browse_s = time.perf_counter() - started
    print(f"\nbook: strict build {build_s:.1f} s, {len(reports)} pages in Chromium {browse_s:.1f} s; "
          f"screenshots in {SCREENSHOTS}")
    return Site(html, build_s, browse_s, reports)


def _failures(site: Site, attr: str) -> dict[str, list]:
    return {k: getattr(r, attr) for k, r in site.pages.items() if getattr(r, attr)}


def test_every_page_was_opened(site: Site):
    names = set(site.pages)
    for required in ("book/intro.html", "book/methods.html", "book/claims.html", "book/conclusions.html",
                     "book/reproducibility.html", "book/references.html"):
        assert required in names
    for nb in book.toc_chapters(ROOT):
        assert f"notebooks/{nb.stem}.html" in names


def test_no_console_errors(site: Site):
    assert _failures(site, "console_errors") == {}


def test_no_external_or_failed_requests(site: Site):
    assert _failures(site, "external") == {}, "a page requested something outside the built site"
    assert _failures(site, "failed") == {}


def test_every_image_loaded(site: Site):
    broken = {k: [i["src"] for i in r.images if not (i["complete"] and i["width"] > 0)]
              for k, r in site.pages.items()}
    assert {k: v for k, v in broken.items() if v} == {}
    assert site.pages["book/intro.html"].images, "the intro's figure is missing"
    for nb in book.toc_chapters(ROOT):
        report = site.pages[f"notebooks/{nb.stem}.html"]
        if book.has_outputs(book._read_notebook(nb)) and '"image/png"' in nb.read_text():
            assert report.images, f"{nb.name} stores figures but its page shows none"


def test_math_is_typeset(site: Site):
    assert site.pages["book/methods.html"].math_elements >= 10


def test_claims_table_has_one_row_per_claim(site: Site):
    rows = site.pages["book/claims.html"].table_rows
    assert rows == [f"C{i}" for i in range(1, 10)]


_ID = re.compile(r'\sid="([^"]+)"')


def test_local_links_resolve(site: Site):
    ids: dict[Path, set[str]] = {}
    broken = []
    for name, report in site.pages.items():
        for href in report.links:
            url = urlparse(href)
            if url.scheme != "file":
                continue
            target = Path(unquote(url.path))
            if target.is_dir():
                target = target / "index.html"
            if not target.is_file():
                broken.append(f"{name}: {href}")
                continue
            if url.fragment and target.suffix == ".html":
                if target not in ids:
                    ids[target] = set(_ID.findall(target.read_text(errors="replace")))
                if unquote(url.fragment) not in ids[target]:
                    broken.append(f"{name}: {href} (no such anchor)")
    assert broken == []
