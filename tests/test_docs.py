"""The README stays a short map, and it and the pages in docs/ stay true: links that reach their
files and headings, chapter lists generated from solutions/chapters.json, no chapter that
exists called "in preparation", pinned versions and stated counts that match the course.
Text only: no model, no build."""

import re
from pathlib import Path

import pytest

from autograder import references
from autograder.authoring import notebooks, registry

from .conftest import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
# Every hand-written page that may say what the course contains.
STATUS_PAGES = [*PAGES, *sorted((ROOT / "book").glob("*.md"))]
README_LIMIT = 10_000  # bytes
NUMBERS = {word: n for n, word in enumerate(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty".split())}
UNFINISHED = re.compile(r"\b(in preparation|coming soon|forthcoming|not yet written|to be written|"
                        r"work in progress|planned|to come)\b")
# The paragraph the introduction carried after Chapter 6 existed.
STALE_INTRO = """A last chapter (in preparation) covers the safety case and how interpretability claims fail:
probes for a truth direction, steering along them, a toy deception test, and the antipatterns
(cherry-picking one circuit, mistaking a description for a cause, ignoring scale, and treating
sparse-autoencoder features as ground truth) as measurements."""


def prose(text: str) -> str:
    """Markdown without its fenced code blocks and inline code spans."""
    return re.sub(r"`[^`\n]*`", "", re.sub(r"```.*?```", "", text, flags=re.DOTALL))


def slug(heading: str) -> str:
    """The anchor GitHub gives a Markdown heading."""
    text = re.sub(r"`|\*\*|__", "", heading.strip().lower())
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {slug(heading) for heading in re.findall(r"^#{1,6} (.+)$", prose(path.read_text()), re.MULTILINE)}


def relative_links(text: str) -> list[str]:
    targets = re.findall(r"\]\(([^)\s]+)\)", prose(text))
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t)]  # not http:, mailto:, ...


def flat(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def unfinished_chapters(text: str) -> list[str]:
    """Paragraphs that call an existing chapter unfinished ("in preparation", "coming soon"...):
    they name it by its title or as "Chapter N". Words in quotation marks are quoted, not said."""
    found = []
    for paragraph in re.split(r"\n\s*\n", text):
        words = flat(paragraph)
        if not UNFINISHED.search(flat(re.sub(r'"[^"]*"|“[^”]*”', "", paragraph))):
            continue
        for chapter in registry.chapter_list():
            if flat(chapter["title"]) in words or re.search(rf"\bchapter {chapter['number']}\b", words):
                found.append(f"Chapter {chapter['number']} ({chapter['title']}): {paragraph.strip()[:100]}")
    return found


def test_readme_is_a_short_map_to_every_docs_page():
    size = len(README.read_bytes())
    assert size < README_LIMIT, f"README.md is {size:,} bytes: move the details into docs/"
    targets = relative_links(README.read_text())
    linked = {(README.parent / target.split("#")[0]).resolve() for target in targets}
    assert DOCS and all(page.resolve() in linked for page in DOCS), "a docs/ page the README does not link"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_relative_links_reach_a_file_and_its_heading(page):
    for target in relative_links(page.read_text()):
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        assert linked.exists(), f"{page.name} links to {target}: no such file"
        if anchor and linked.suffix == ".md":
            assert anchor in anchors(linked), f"{page.name} links to {target}: no such heading"


def test_chapter_lists_are_the_ones_the_chapter_manifest_generates():
    # The book's table of contents and introduction, and the README (`make generate` writes them).
    assert notebooks.book_index_out_of_sync(ROOT) == [], "run `make generate`"
    titles = [chapter["title"] for chapter in registry.chapter_list()]
    for page in (ROOT / "book" / "intro.md", README):
        text = page.read_text()
        listing = text[text.index(notebooks.CHAPTERS_START):text.index(notebooks.CHAPTERS_END)]
        listed = re.findall(r"^- (?:\*\*)?Chapter \w+: (.+?)(?:\*\*)?(?: — .*)?$", listing, re.MULTILINE)
        assert listed == titles, page.name
        counts = [NUMBERS[word] for word in re.findall(r"\b(\w+) chapters\b", prose(text).lower())
                  if word in NUMBERS]
        assert all(count == len(titles) for count in counts), f"{page.name} miscounts the chapters"


@pytest.mark.parametrize("page", STATUS_PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_no_page_calls_a_chapter_that_exists_unfinished(page):
    assert unfinished_chapters(page.read_text()) == []


def test_an_in_preparation_line_for_an_existing_chapter_is_caught():
    assert len(unfinished_chapters(STALE_INTRO)) == 1
    assert unfinished_chapters("A chapter on model editing is in preparation.") == []
    assert unfinished_chapters("Chapter 3 is coming soon.") != []
    assert unfinished_chapters('The test fails when Chapter 3 is called "in preparation".') == []


def pins(text: str) -> dict[str, str]:
    return {name.lower().replace("_", "-"): version
            for name, version in re.findall(r"\b([A-Za-z][\w.-]*)==(\d[\w.]*\d)", text)}


def test_pinned_versions_are_the_ones_make_install_uses():
    installed = {}
    for source in ("Makefile", "constraints.txt", "pyproject.toml"):
        installed |= pins((ROOT / source).read_text())
    for page in PAGES:
        for name, version in pins(page.read_text()).items():
            assert installed.get(name) == version, (
                f"{page.name} pins {name}=={version}; make install: {installed.get(name)}")


def test_stated_counts_match_the_course():
    # "Its fourteen graded exercises" in a chapter's section of docs/chapters.md.
    chapters = registry.chapters()
    text = (ROOT / "docs" / "chapters.md").read_text()
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        number = re.search(r"\(Chapter (\w+)\)", section.splitlines()[0])
        for word in re.findall(r"\b(\w+) graded exercises", section):
            assert number, f"a count of graded exercises outside a chapter's section: {word}"
            chapter = next(c for c in chapters if registry.chapter_number(c) == number.group(1))
            assert NUMBERS[word.lower()] == len(registry.exercises(chapter)), f"{chapter}: {word}"
    # "`make verify-all` recomputes all 18" (reference sets).
    committed = len(list(references.COMMITTED_DIR.glob("*/*.safetensors")))
    for page in PAGES:
        for count in re.findall(r"recomputes all (\d+)", page.read_text()):
            assert int(count) == committed, f"{page.name}: all {count}; committed reference sets: {committed}"
