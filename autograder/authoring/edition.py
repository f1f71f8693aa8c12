"""The course as it is handed out: wheels with or without solutions, and the book without them.

- `copy_course`: what `pip install` needs of the course; without solutions, only the runtime
  and the library (`autograder`, `readheads`) with the committed references, no `solutions`
  and none of these authoring tools (also what the Gradescope bundle installs);
- `course_wheel`: that copy as a wheel (`make dist`, `make dist-student`), with reference sets
  built for other models added (GPT-2 small's, built where the Hub is reachable), so that
  students' checks never build them (which needs the solutions, and minutes on a CPU);
- `student_book`: the book with each exercise shown as students get it (the release
  notebook's stub); its solution still runs, unseen (`remove-cell`), so every later cell and
  figure of the page is computed as in the open book.

The open edition (`make dist`, `make book`) stays the default, for self-study; the edition
without solutions is for courses graded for credit.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import nbformat

from ..references import ReferenceSet
from . import notebooks, registry

ROOT = Path(__file__).resolve().parents[2]
SKIP = ["skip-execution"]  # nbclient does not run the cell (the book shows it)
HIDE = ["remove-cell"]  # the book leaves the cell out (it still runs)
OPEN_BOOK_SAYS = "Each chapter page here shows the worked solutions."
STUDENT_BOOK_SAYS = ("Each chapter page here shows the exercises as you get them, without "
                     "their solutions.")


def copy_course(target: Path, *, solutions: bool = False) -> Path:
    """Copy what `pip install` needs of the course into `target`."""
    packages = ("autograder", "readheads") + (("solutions",) if solutions else ())
    skipped = ("__pycache__",) if solutions else ("__pycache__", "authoring")
    for package in packages:
        shutil.copytree(ROOT / package, target / package, ignore=shutil.ignore_patterns(*skipped))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, target / name)
    return target


def course_wheel(out: Path, reference_dirs: list[Path] = (), *, solutions: bool = True) -> Path:
    """Build the wheel into `out`, adding each reference set found in `reference_dirs`
    (<dir>/<chapter>/<key>.safetensors and .json, as `autograder build --out` writes them)."""
    with tempfile.TemporaryDirectory(prefix="course-wheel-") as scratch:
        course = copy_course(Path(scratch) / "course", solutions=solutions)
        committed = course / "autograder" / "references"
        for directory in reference_dirs:
            for path in _reference_sets(Path(directory)):
                for file in (path, path.with_suffix(".json")):
                    shutil.copy(file, committed / path.parent.name / file.name)
                print(f"added {path.parent.name}/{path.name}")
        wheels = Path(scratch) / "wheels"
        subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--wheel-dir",
                        str(wheels), str(course)], check=True)
        [built] = wheels.glob("*.whl")
        out.mkdir(parents=True, exist_ok=True)
        return Path(shutil.move(built, out / built.name))


def _reference_sets(directory: Path) -> list[Path]:
    """The model reference sets in `directory`, each checked to load; an error that says what
    to build where there are none."""
    found = sorted(p for p in directory.glob("*/*.safetensors") if p.stem != "pure")
    if not found:
        raise SystemExit(f"No model reference sets in {directory} (expected <chapter>/<key>."
                         "safetensors): build them with `python -m autograder build --model "
                         f"gpt2-small --out {directory}`")
    for path in found:
        if path.parent.name not in registry.chapters():
            raise SystemExit(f"{path}: {path.parent.name} is not a chapter of this course")
        ReferenceSet.load(path)  # raises, naming the file, if it is not a reference set
    return found


def student_page(chapter: str) -> nbformat.NotebookNode:
    """The chapter's book page with each solution cell preceded by the release notebook's
    stub (shown, never run) and hidden itself."""
    page = notebooks.render(ROOT, chapter, "book")
    release = nbformat.read(notebooks.outputs(ROOT, chapter)["release"], as_version=4)
    stubs = {cell.id: cell.source for cell in release.cells  # the same ids as the page's
             if cell.metadata.get("nbgrader", {}).get("solution")}
    cells = []
    for cell in page.cells:
        if cell.id in stubs:
            stub = nbformat.v4.new_code_cell(stubs[cell.id], metadata={"tags": SKIP})
            stub.id = f"{cell.id}-stub"
            cell.metadata["tags"] = HIDE
            cells.append(stub)
        cells.append(cell)
    page.cells = cells
    return page


def student_book(out: Path) -> Path:
    """A copy of the book in `out` whose chapter pages are `student_page`s (build it with
    `jupyter-book build out`)."""
    shutil.copytree(ROOT / "book", out, ignore=shutil.ignore_patterns("_build"), dirs_exist_ok=True)
    for chapter in registry.chapters():
        nbformat.write(student_page(chapter), out / f"{chapter}.ipynb")
    intro = (out / "intro.md").read_text()
    if OPEN_BOOK_SAYS not in intro:
        raise ValueError(f"book/intro.md no longer says {OPEN_BOOK_SAYS!r}: update OPEN_BOOK_SAYS "
                         "and STUDENT_BOOK_SAYS in autograder/authoring/edition.py")
    (out / "intro.md").write_text(intro.replace(OPEN_BOOK_SAYS, STUDENT_BOOK_SAYS))
    return out
