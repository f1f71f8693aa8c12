"""The instructor's pipeline, end to end, in a scratch course: generate_assignment, autograde
three submissions (full solution, untouched release, partly right), feedback and export."""

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
CHAPTER = "ch1_attention"
NOTEBOOK = f"{CHAPTER}.ipynb"
EXERCISES = registry.exercises(CHAPTER)
CORRECT_IN_PARTIAL = ["attention_scores", "apply_causal_mask", "attention_pattern"]
BUGGY_ATTENTION_OUTPUT = '''
def attention_output(z, W_O, b_O):
    return torch.einsum("bphd,hdm->bpm", z, W_O)  # forgot b_O
'''


def nbgrader(course, *args):
    result = subprocess.run([sys.executable, "-m", "nbgrader", *args], cwd=course,
                            env=tool_env(COURSE_MODEL="smollm2-135m"),
                            capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def fill(notebook, exercise_id, source):
    cell = next(c for c in notebook.cells
                if c.metadata.get("nbgrader", {}).get("grade_id") == f"{exercise_id}_solution")
    cell.source = source


def solution_source(exercise_id):
    return SOLUTION_MARKER.sub("", inspect.getsource(registry.find(exercise_id)[1].solution))


@pytest.fixture(scope="module")
def course(tmp_path_factory, smollm2):
    course = tmp_path_factory.mktemp("course")
    shutil.copy(ROOT / "exercises" / "nbgrader_config.py", course)
    shutil.copytree(ROOT / "exercises" / "source" / CHAPTER, course / "source" / CHAPTER)
    nbgrader(course, "generate_assignment", CHAPTER)
    release = nbformat.read(course / "release" / CHAPTER / NOTEBOOK, as_version=4)
    partial = nbformat.read(course / "release" / CHAPTER / NOTEBOOK, as_version=4)
    for exercise_id in CORRECT_IN_PARTIAL:
        fill(partial, exercise_id, solution_source(exercise_id))
    fill(partial, "attention_output", BUGGY_ATTENTION_OUTPUT)
    submissions = {"alice": nbformat.read(course / "source" / CHAPTER / NOTEBOOK, as_version=4),
                   "bob": release, "carol": partial}
    for student, notebook in submissions.items():
        nbgrader(course, "db", "student", "add", student)
        folder = course / "submitted" / student / CHAPTER
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / NOTEBOOK)
    nbgrader(course, "autograde", CHAPTER)
    nbgrader(course, "generate_feedback", CHAPTER)
    nbgrader(course, "export", "--to", str(course / "grades.csv"))
    return course


def test_release_has_stubs_and_no_hidden_tests(course):
    release = (course / "release" / CHAPTER / NOTEBOOK).read_text()
    assert "hidden=True" not in release and "BEGIN HIDDEN TESTS" not in release
    assert "BEGIN SOLUTION" not in release
    assert release.count("raise NotImplementedError()") == len(EXERCISES)
    committed = ROOT / "exercises" / "release" / CHAPTER / NOTEBOOK
    assert release == committed.read_text(), "committed release differs from nbgrader's output"


def scores(course):
    with open(course / "grades.csv") as handle:
        return {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(handle)}


def test_scores(course):
    points = {e.id: e.points for e in EXERCISES}
    assert scores(course) == {"alice": sum(points.values()), "bob": 0.0,
                              "carol": sum(points[e] for e in CORRECT_IN_PARTIAL)}


def test_feedback_explains_failures(course):
    feedback = course / "feedback"
    carol = (feedback / "carol" / CHAPTER / f"{CHAPTER}.html").read_text()
    assert "left out the output bias b_O" in carol
    bob = (feedback / "bob" / CHAPTER / f"{CHAPTER}.html").read_text()
    assert "not implemented yet" in bob
    assert (feedback / "alice" / CHAPTER / f"{CHAPTER}.html").is_file()


def test_model_cells_get_a_long_timeout():
    config = Config()
    exec((ROOT / "exercises" / "nbgrader_config.py").read_text(), {"get_config": lambda: config})
    assert config.Execute.timeout >= 300
