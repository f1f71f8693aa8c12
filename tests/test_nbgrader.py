"""The instructor's pipeline, end to end, for every chapter, in a scratch course:
generate_assignment, autograde three submissions (full solution, untouched release, partly
right with one known mistake), feedback and export."""

import csv
import inspect
import shutil
import subprocess
import sys

import nbformat
import pytest
from traitlets.config import Config

from autograder import registry
from autograder.notebooks import SOLUTION_MARKER, tool_env

from .conftest import ROOT

pytestmark = pytest.mark.slow
N_CORRECT = 3  # carol solves the first three exercises and gets the fourth wrong


def nbgrader(course, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            env=tool_env(COURSE_MODEL="smollm2-135m"),
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def solution_cells(notebook):
    """The release's exercise cells, in notebook order, by exercise id."""
    cells = {}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id.endswith("_solution"):
            cells[grade_id.removesuffix("_solution")] = cell
    return cells


def partly_right(chapter, notebook):
    """Fill the first exercises with their solutions and the next with a known mistake."""
    cells = solution_cells(notebook)
    order = list(cells)
    for exercise_id in order[:N_CORRECT]:
        solution = registry.find(exercise_id)[1].solution
        cells[exercise_id].source = SOLUTION_MARKER.sub("", inspect.getsource(solution))
    wrong_id = order[N_CORRECT]
    mistake = registry.find(wrong_id)[1].mistakes[0]
    cells[wrong_id].source = (f"from solutions.{chapter} import {mistake.fn.__name__} as buggy\n\n\n"
                              f"def {wrong_id}(*args, **kwargs):\n    return buggy(*args, **kwargs)\n")
    return order[:N_CORRECT], mistake


@pytest.fixture(scope="module", params=registry.CHAPTERS)
def course(request, tmp_path_factory, smollm2):
    chapter = request.param
    notebook_name = f"{chapter}.ipynb"
    course = tmp_path_factory.mktemp(f"course-{chapter}")
    shutil.copy(ROOT / "exercises" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "exercises" / "source" / chapter, course / "source" / chapter)
    nbgrader(course, "generate_assignment", chapter)
    release_path = course / "release" / chapter / notebook_name
    partial = nbformat.read(release_path, as_version=4)
    correct, mistake = partly_right(chapter, partial)
    submissions = {"alice": nbformat.read(course / "source" / chapter / notebook_name, as_version=4),
                   "bob": nbformat.read(release_path, as_version=4), "carol": partial}
    for student, notebook in submissions.items():
        nbgrader(course, "db", "student", "add", student)
        folder = course / "submitted" / student / chapter
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / notebook_name)
    nbgrader(course, "autograde", chapter)
    nbgrader(course, "generate_feedback", chapter)
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    return {"root": course, "chapter": chapter, "correct": correct, "mistake": mistake}


def test_release_has_stubs_and_no_hidden_tests(course):
    chapter = course["chapter"]
    release = (course["root"] / "release" / chapter / f"{chapter}.ipynb").read_text()
    assert "hidden=True" not in release and "BEGIN HIDDEN TESTS" not in release
    assert "BEGIN SOLUTION" not in release
    assert release.count("raise NotImplementedError()") == len(registry.exercises(chapter))
    committed = ROOT / "exercises" / "release" / chapter / f"{chapter}.ipynb"
    assert release == committed.read_text(), "committed release differs from nbgrader's output"


def test_scores(course):
    with open(course["root"] / "grades.csv") as handle:
        scores = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(handle)}
    points = {e.id: e.points for e in registry.exercises(course["chapter"])}
    assert scores == {"alice": sum(points.values()), "bob": 0.0,
                      "carol": sum(points[e] for e in course["correct"])}


def test_feedback_explains_failures(course):
    chapter = course["chapter"]
    feedback = course["root"] / "feedback"
    carol = (feedback / "carol" / chapter / f"{chapter}.html").read_text()
    assert course["mistake"].message.split(":")[0].replace("'", "&#39;") in carol
    bob = (feedback / "bob" / chapter / f"{chapter}.html").read_text()
    assert "not implemented yet" in bob
    assert (feedback / "alice" / chapter / f"{chapter}.html").is_file()


def test_model_cells_get_a_long_timeout():
    config = Config()
    exec((ROOT / "exercises" / "nbgrader_config.py").read_text(), {"get_config": lambda: config})
    assert config.Execute.timeout >= 300
