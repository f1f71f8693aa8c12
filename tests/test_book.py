"""The book builds offline with Jupyter Book 1, executing the chapters on the offline model,
says which model produced the outputs, and fails when a notebook errors. Then a real browser
(Debian's Chromium, driven by Playwright) opens every built page: no console errors and no
request to another site, figures with alt text, the model banner, the interactive attention
views drawn, formulas typeset, launch buttons, navigation and search. Screenshots of every page
go to test-artifacts/screenshots/."""

import functools
import http.server
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import pytest

from autograder.authoring import notebooks, registry

from .conftest import ROOT, TIMINGS

pytestmark = pytest.mark.slow
# The book is built as a published copy would be, so its launch buttons and badges exist.
REPOSITORY = "https://github.com/example-org/attention-course"
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"
# Smaller sizes for the CI build (set after each chapter's parameters cell, as papermill
# does): the same code runs, on less data. A published build uses the masters' values.
CI_PARAMETERS = {"ch2_induction": {"ABLATION_ROWS": 1, "SEQ_LEN": 25}, "ch3_circuits": {"N_PROMPTS": 4},
                 "ch4_saes": {"N_ROWS": 16, "TOY_EPOCHS": 20},
                 "ch5_discovery": {"N_PROMPTS": 4, "THRESHOLDS": [0.01, 0.02, 0.04], "PRUNE_LAST_LAYERS": 4,
                                   "EDGE_HEADS": 5},
                 "ch6_safety": {"SEEDS": 3, "STEER_SCALES": [2, 8], "STEER_LAYER_STEP": 6, "STEER_ITEMS": 60,
                                "CONTEXT_EXAMPLES": 2, "LOGISTIC_STEPS": 100}}


def build(book: Path, model: str = "smollm2-135m") -> subprocess.CompletedProcess:
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    return subprocess.run([str(jupyter_book), "build", str(book), "--warningiserror"],
                          env={**os.environ, "COURSE_MODEL": model}, capture_output=True,
                          text=True, timeout=1800)


def copy_book(root: Path) -> Path:
    book = root / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build"))
    return book


def publish(root: Path) -> None:
    """Regenerate the copied book's pages and config as if the course were published."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(notebooks, "publishing", lambda: {"install": "", "repository": REPOSITORY})
        for chapter in registry.chapters():
            page = with_parameters(notebooks.render(ROOT, chapter, "book"), CI_PARAMETERS.get(chapter, {}))
            nbformat.write(page, root / "book" / f"{chapter}.ipynb")
        for path, text in notebooks.book_index(root).items():
            path.write_text(text)


def with_parameters(notebook, values: dict):
    """The notebook with a cell setting `values` right after its parameters cell."""
    if values:
        index = next(i for i, cell in enumerate(notebook.cells)
                     if "parameters" in cell.metadata.get("tags", []))
        source = "# Smaller sizes for the CI build (tests/test_book.py)\n" + "".join(
            f"{name} = {value!r}\n" for name, value in values.items())
        cell = nbformat.v4.new_code_cell(source, metadata={"tags": ["injected-parameters"]})
        notebook.cells.insert(index + 1, cell)
    return notebook


@pytest.fixture(scope="module")
def site(tmp_path_factory, smollm2) -> Path:
    """The built book's HTML folder (one build per test run)."""
    root = tmp_path_factory.mktemp("published")
    book = copy_book(root)
    publish(root)
    started = time.monotonic()
    result = build(book)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    html = book / "_build" / "html"
    TIMINGS.append(f"book build: {time.monotonic() - started:.0f} s, of which chapters executing:")
    TIMINGS.extend(f"  {chapter}: {seconds} s" for chapter, seconds in execution_times(html))
    return html


def execution_times(html: Path) -> list[tuple[str, str]]:
    """(chapter, seconds) from the build's execution table (the timings page)."""
    page = (html / "timings.html").read_text()
    table = page[page.index("<tbody>"):]
    return re.findall(r'href="(\w+)\.html".*?</td>\s*<td><p>[^<]*</p></td>\s*<td><p>\w+</p></td>'
                      r'\s*<td><p>([\d.]+)</p></td>', table, re.DOTALL)


def test_book_builds_with_figures_and_names_its_model(site):
    for chapter in registry.chapters():
        page = (site / f"{chapter}.html").read_text()
        assert "Outputs on this page come from: SmolLM2-135M-Instruct" in page
        assert "The course text is written for <b>GPT-2 small</b>" in page
        assert page.count("<img") >= 4
        assert page.count("passed (visible case") == len(registry.exercises(chapter))
    timings = (site / "timings.html").read_text()  # the build's record of each chapter's run
    for chapter in registry.chapters():
        assert f'href="{chapter}.html"' in timings
    assert "✅" in timings and "❌" not in timings


def test_book_build_fails_when_a_notebook_errors(tmp_path):
    book = copy_book(tmp_path)
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Broken"),
                                             nbformat.v4.new_code_cell("raise RuntimeError('boom')")])
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(broken, book / "broken.ipynb")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: broken\n")
    result = build(book)
    assert result.returncode != 0
    assert "boom" in (book / "_build" / "html" / "reports" / "broken.err.log").read_text()


@pytest.fixture(scope="module")
def browser(site):
    """(open_page, base_url): open_page(path) loads a page of the built book in headless
    Chromium and returns it with the problems seen while loading it."""
    if CHROMIUM is None:
        if os.environ.get("CI") == "true":
            pytest.fail("Chromium is missing: .ci/run installs it (apt-get install chromium) as root")
        pytest.skip("no Chromium here: install Debian's chromium package to run the browser test")
    from playwright.sync_api import sync_playwright

    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}/"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        context = chromium.new_context(viewport={"width": 1280, "height": 900})

        def open_page(path: str):
            page = context.new_page()
            problems = []

            def console(message):
                if message.type == "error":
                    problems.append(f"console: {message.text}")

            def only_this_site(route):
                if route.request.url.startswith(base):
                    route.continue_()
                else:
                    problems.append(f"request to another site: {route.request.url}")
                    route.abort()

            page.on("console", console)
            page.on("pageerror", lambda error: problems.append(f"page error: {error}"))
            page.route("**/*", only_this_site)
            page.goto(base + path, wait_until="networkidle")
            return page, problems

        yield open_page, base
        chromium.close()
    server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


PAGES = ["intro", *registry.chapters(), *notebooks.CLOSING_PAGES]


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_offline_with_alt_text_and_its_views(browser, name):
    open_page, _ = browser
    page, problems = open_page(f"{name}.html")
    page.wait_for_timeout(500)  # the views and MathJax draw after load
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    assert problems == []
    images = page.locator("main img").evaluate_all(
        "imgs => imgs.map(i => ({src: i.getAttribute('src'), alt: i.alt, width: i.naturalWidth}))")
    for image in images:
        assert image["width"] > 0, f"{image['src']} did not load"
        alt = image["alt"].strip()
        assert alt and not alt.endswith((".png", ".svg")), f"{image['src']} has no alt text: {alt!r}"
    if name == "intro" or name in notebooks.CLOSING_PAGES:
        return
    assert len(images) >= 4
    assert page.get_by_text("Outputs on this page come from").first.is_visible()
    if name == "ch4_saes":  # feature dashboards (HTML with an SVG histogram), not attention views
        assert page.locator("main svg[aria-label^='histogram']").count() >= 2, "no feature dashboard"
    else:
        views = page.locator("main [id^='circuits-vis-']")
        assert views.count() >= 1, "no interactive attention view"
        for index in range(views.count()):
            assert views.nth(index).locator("canvas").count() >= 1, "an attention view did not draw"
    if name == "ch1_attention":
        assert page.locator("main mjx-container").count() >= 1, "formulas were not typeset"


@pytest.mark.parametrize("chapter", registry.chapters())
def test_chapters_have_launch_buttons_and_a_colab_badge(browser, chapter):
    open_page, _ = browser
    page, _ = open_page(f"{chapter}.html")
    slug = REPOSITORY.removeprefix("https://github.com/")
    colab = f"https://colab.research.google.com/github/{slug}/blob/main/book/{chapter}.ipynb"
    assert page.locator(f"a[href='{colab}']").count() == 1, "no Colab launch button"
    assert page.locator("a[href^='https://mybinder.org/v2/gh/']").count() == 1, "no Binder button"
    badge = page.locator("main a:has(img[alt='Open in Colab'])")
    release = f"https://colab.research.google.com/github/{slug}/blob/main/exercises/release/{chapter}"
    assert badge.get_attribute("href").startswith(release)


def test_navigation_and_search_work(browser):
    open_page, base = browser
    page, _ = open_page("intro.html")
    for chapter in registry.chapters():
        assert page.locator(f"nav a[href='{chapter}.html']").count() >= 1
    page.locator("a.right-next").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url == base + f"{registry.chapters()[0]}.html"
    page, problems = open_page("search.html?q=induction")
    results = page.locator("#search-results li")
    results.first.wait_for(timeout=15_000)
    assert any("Induction" in text for text in results.all_inner_texts())
    page.screenshot(path=str(SCREENSHOTS / "search.png"))
    assert problems == []
