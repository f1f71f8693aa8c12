"""The edition without solutions (`make dist-student`): its book pages show every exercise as
the release notebook's stub and still compute what follows it; its wheel carries no
solutions and no authoring tools, carries the references an instructor adds, and a
student's checks work from it (and say what to do for a model it has no references for)."""

import json
import subprocess
import sys
import textwrap
import zipfile

import nbformat
import pytest
from nbclient import NotebookClient

from autograder import catalog
from autograder.authoring import edition, notebooks, registry
from autograder.authoring.cli import build_references, main

from .conftest import ROOT
from .test_book import CI_PARAMETERS, with_parameters
from .test_nbgrader import solution_source


def solution_lines(exercise) -> list[str]:
    """The lines between the solution markers (what the release leaves out), stripped."""
    import inspect

    source = inspect.getsource(exercise.solution)
    body = source.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]
    return [line.strip() for line in body.splitlines() if len(line.strip()) > 12]


@pytest.mark.parametrize("chapter", registry.chapters())
def test_student_pages_show_stubs_and_hide_the_solutions(chapter):
    page = edition.student_page(chapter)
    release = nbformat.read(notebooks.outputs(ROOT, chapter)["release"], as_version=4)
    stubs = [c.source for c in release.cells if c.metadata.get("nbgrader", {}).get("solution")]
    shown = [c for c in page.cells if "remove-cell" not in c.metadata.get("tags", [])]
    hidden = [c for c in page.cells if "remove-cell" in c.metadata.get("tags", [])]
    for exercise in registry.exercises(chapter):
        lines = solution_lines(exercise)
        assert lines, exercise.id
        # (single lines may recur in the page's own code: a demo that computes the same way)
        assert not [c.id for c in shown if all(line in c.source for line in lines)], exercise.id
        assert sum(all(line in c.source for line in lines) for c in hidden) == 1, exercise.id
    assert [c.source for c in shown if "skip-execution" in c.metadata.get("tags", [])] == stubs
    assert len(hidden) == len(stubs) == len(registry.exercises(chapter))


def test_the_student_book_is_the_book_with_student_pages(tmp_path):
    book = edition.student_book(tmp_path / "book")
    assert (book / "_toc.yml").read_text() == (ROOT / "book" / "_toc.yml").read_text()
    intro = (book / "intro.md").read_text()
    assert edition.STUDENT_BOOK_SAYS in intro and "worked solutions" not in intro
    page = nbformat.read(book / "ch3_circuits.ipynb", as_version=4)
    assert page.cells == edition.student_page("ch3_circuits").cells


@pytest.mark.slow
def test_a_student_page_runs_with_its_stubs_skipped(smollm2, monkeypatch):
    """Chapter 1's page executes as the book build does: stubs not run, checks pass."""
    chapter = "ch1_attention"
    page = with_parameters(edition.student_page(chapter), CI_PARAMETERS.get(chapter, {}))
    monkeypatch.setenv("COURSE_MODEL", "smollm2-135m")
    NotebookClient(page, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT / "book")}}).execute()
    stubs = [c for c in page.cells if "skip-execution" in c.metadata.get("tags", [])]
    assert stubs and not any(c.get("outputs") for c in stubs)
    printed = "".join(o.get("text", "") for c in page.cells if c.cell_type == "code" for o in c.outputs)
    assert printed.count("passed") == len(registry.exercises(chapter))


STUDENT = """
import sys, json
sys.path.insert(0, {target!r})
# The course is installed editable here: take it out, as a student's runtime never has it.
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in str(getattr(f, "__module__", f))]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in str(getattr(h, "__module__", h))]
report = {{}}
try:
    import solutions
    report["solutions"] = solutions.__file__
except ModuleNotFoundError:
    report["solutions"] = None
import autograder
from autograder import check
from readheads import load_model
report["autograder"] = autograder.__file__
namespace = {{}}
exec({answers!r}, namespace)  # the student's answers (here: Chapter 1's solutions)
check("attention_scores", function=namespace["attention_scores"])
model = load_model("gqa-test", quiet=True)
check("layer_attention_output", function=namespace["layer_attention_output"], model=model)
try:
    check("per_token_loss", function=lambda **kwargs: None, model=model)
except FileNotFoundError as error:
    report["missing"] = str(error)
print(json.dumps(report))
"""


@pytest.mark.slow
def test_the_student_wheel_has_no_solutions_and_checks_without_them(tmp_path, smollm2):
    """An instructor's references (here gqa-test's, for Chapter 1) go into the wheel; a
    student's checks find them; a chapter they do not cover says what to do."""
    added = tmp_path / "instructor"
    build_references(["gqa-test"], added, ["ch1_attention"])
    assert main(["wheel", "--without-solutions", "--references", str(added), "--out",
                 str(tmp_path / "wheel")]) == 0  # what `make dist-student REFERENCES=...` runs
    [wheel] = (tmp_path / "wheel").glob("*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.startswith(("solutions/", "autograder/authoring/"))]
    key = next(added.glob("ch1_attention/gqa-test-*.safetensors")).name
    assert f"autograder/references/ch1_attention/{key}" in names
    assert "autograder/references/index.json" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True)
    answers = catalog.setup_code("ch1_attention") + "\n" + "\n".join(
        solution_source(e.id) for e in registry.exercises("ch1_attention"))
    script = textwrap.dedent(STUDENT).format(target=str(target), answers=answers)
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["solutions"] is None
    assert report["autograder"].startswith(str(target))
    assert "passed" in result.stdout
    assert "no solutions to build them from" in report["missing"]
