"""The book builds offline with Jupyter Book 1, executing the chapters on the offline model,
says which model produced the outputs, and fails when a notebook errors. Then a real browser
(Debian's Chromium, driven by Playwright) opens every built page at 1280x900: no console errors
and no request to another site, figures with alt text, code cells that show whole lines, no
character drawn as a missing-glyph box, the model banner, the interactive attention views
drawn, formulas typeset, launch buttons, the page-contents drawer, an introduction that lists
every chapter, navigation and search. Screenshots of every page go to
test-artifacts/screenshots/."""

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
CI_PARAMETERS = {"ch2_induction": {"ABLATION_ROWS": 1, "SEQ_LEN": 25}, "ch2b_formation": {"HELD_OUT": 32},
                 "ch3_circuits": {"N_PROMPTS": 4},
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


def execution_rows(html: Path) -> dict[str, list[str]]:
    """The build's execution table (the timings page): each notebook's cells as text
    (document, modified, method, run time in seconds, status)."""
    page = (html / "timings.html").read_text()
    body = page[page.index("<tbody>"):page.index("</tbody>")]
    rows = {}
    for row in body.split("</tr>"):
        name = re.search(r'href="(\w+)\.html"', row)
        if name:
            rows[name.group(1)] = [re.sub(r"<[^>]+>", "", cell).strip()
                                   for cell in re.findall(r"<td>(.*?)</td>", row, re.DOTALL)]
    return rows


def execution_times(html: Path) -> list[tuple[str, str]]:
    """(chapter, seconds) from the build's execution table (the timings page)."""
    return [(chapter, cells[3]) for chapter, cells in execution_rows(html).items()]


def test_book_builds_with_figures_and_names_its_model(site):
    for chapter in registry.chapters():
        page = (site / f"{chapter}.html").read_text()
        assert "Outputs on this page come from: " in page
        if any(exercise.needs_model for exercise in registry.exercises(chapter)):  # not Chapter 2b
            assert "Outputs on this page come from: SmolLM2-135M-Instruct" in page
            assert "The course text is written for <b>GPT-2 small</b>" in page
        assert page.count("<img") >= 4
        assert page.count("passed (visible case") == len(registry.exercises(chapter))
    rows = execution_rows(site)  # the build's record of each chapter's run (the timings page)
    for chapter in registry.chapters():
        assert rows[chapter][-1] == "ok", f"{chapter}: status {rows[chapter][-1]!r}"
    timings = (site / "timings.html").read_text()
    assert "✅" not in timings and "❌" not in timings  # in words (book/_ext/course_pages.py)


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
# Code boxes (cell input and output, highlighted blocks) whose content is wider than the box:
# lines cut off behind a scroll bar (book/_ext/static/course_pages.css wraps them).
OVERFLOWING_CODE = """() => Array.from(document.querySelectorAll(
    'main div.highlight pre, main div.cell_input, main div.cell_output, main div.output'))
  .filter(box => box.getClientRects().length && box.scrollWidth > box.clientWidth + 1)
  .map(box => `${box.scrollWidth} px in ${box.clientWidth} px: ${box.textContent.trim().slice(0, 80)}`)"""
# Visible characters drawn as a missing-glyph box: a character is drawn (on a canvas, in its
# element's fonts) exactly as an unassigned code point is, i.e. no font on the page or the
# system has it. Emoji (Emoji_Presentation) count as missing even where this machine has an
# emoji font: the book serves none, so a reader without one sees a box. In cell outputs only
# symbols are checked: outputs also print model tokens, in any script (Chapter 4 prints a
# Chinese token that Debian's Chromium without a CJK font draws as a box).
MISSING_GLYPHS = r"""() => {
  const canvas = document.createElement('canvas');
  canvas.width = 48; canvas.height = 48;
  const context = canvas.getContext('2d', {willReadFrequently: true});
  const draw = (text, family) => {
    context.clearRect(0, 0, 48, 48);
    context.font = `32px ${family}`;
    context.fillText(text, 4, 36);
    return context.getImageData(0, 0, 48, 48).data.join();
  };
  const nothing = {}, missing = new Map(), found = new Set();
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const element = node.parentElement;
    if (!element || element.closest('script, style, noscript, template')
        || !element.getClientRects().length || getComputedStyle(element).visibility !== 'visible') continue;
    const family = getComputedStyle(element).fontFamily;
    const output = element.closest('div.cell_output, div.output') !== null;
    for (const character of node.data) {
      if (character.codePointAt(0) < 0x80 || /[\s\p{M}\p{C}]/u.test(character)
          || (output && !/\p{S}/u.test(character))) continue;
      const key = `${character} ${family}`;
      if (!missing.has(key)) {
        nothing[family] ??= draw('\u0378', family);  // unassigned: no font has it
        missing.set(key, /\p{Emoji_Presentation}/u.test(character)
                         || draw(character, family) === nothing[family]);
      }
      if (missing.get(key)) {
        const code = character.codePointAt(0).toString(16).toUpperCase().padStart(4, '0');
        const where = element.tagName.toLowerCase();
        found.add(`U+${code} ${character} in <${where}>: ${node.data.trim().slice(0, 60)}`);
      }
    }
  }
  return [...found];
}"""


@pytest.mark.parametrize("name", PAGES)
def test_every_page_renders_offline_with_alt_text_and_its_views(browser, name):
    open_page, _ = browser
    page, problems = open_page(f"{name}.html")
    page.wait_for_timeout(500)  # the views and MathJax draw after load
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    assert problems == []
    assert page.evaluate(OVERFLOWING_CODE) == [], "code cut off at 1280 px"
    assert page.evaluate(MISSING_GLYPHS) == [], "characters drawn as a missing-glyph box"
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


def test_chapter_pages_give_cells_the_width_and_keep_their_contents_a_click_away(browser):
    open_page, _ = browser
    chapter = registry.chapters()[0]
    page, problems = open_page(f"{chapter}.html")
    code = page.locator("main div.cell div.highlight pre").first.bounding_box()
    assert code["width"] > 900, f"code cells {code['width']:.0f} px wide at 1280 px"
    assert not page.locator("#pst-secondary-sidebar").is_visible()  # its contents are in the drawer
    page.locator(".bd-header-article .secondary-toggle").click()
    drawer = page.locator("#pst-secondary-sidebar-modal")
    drawer.locator("nav a").first.wait_for(state="visible", timeout=5_000)
    sections = page.locator("main section h2").count()
    assert drawer.locator("nav a").count() >= sections > 0
    drawer.locator("nav a").nth(1).click()
    page.wait_for_timeout(300)
    assert not page.evaluate("document.getElementById('pst-secondary-sidebar-modal').open")
    assert "#" in page.url
    page.screenshot(path=str(SCREENSHOTS / "contents-drawer.png"))
    assert problems == []


def test_navigation_and_search_work(browser):
    open_page, base = browser
    page, _ = open_page("intro.html")
    for chapter in registry.chapters():
        assert page.locator(f"nav a[href='{chapter}.html']").count() >= 1
    # The introduction lists every chapter of the manifest, in order, and none as to come.
    listed = page.locator("main section#chapters ul > li").all_inner_texts()
    titles = [f"Chapter {chapter['number']}: {chapter['title']}" for chapter in registry.chapter_list()]
    assert [text.split(" — ")[0] for text in listed] == titles
    assert "in preparation" not in page.locator("main").inner_text().lower()
    page.locator("a.right-next").first.click()
    page.wait_for_load_state("networkidle")
    assert page.url == base + f"{registry.chapters()[0]}.html"
    page, problems = open_page("search.html?q=induction")
    results = page.locator("#search-results li")
    results.first.wait_for(timeout=15_000)
    assert any("Induction" in text for text in results.all_inner_texts())
    page.screenshot(path=str(SCREENSHOTS / "search.png"))
    assert problems == []
