"""The instructor's pipeline, end to end, for every chapter, in a scratch course:
generate_assignment, hidden references with the instructor's seed, autograde through the real
nbgrader with the sealed grader, feedback and export. Three submissions per chapter: the full
solution, the untouched release, and one partly right with a known mistake."""

import csv
import html
import inspect
import shutil
import subprocess
import sys

import nbformat
import pytest
from traitlets.config import Config

from autograder.authoring import registry
from autograder.authoring.notebooks import SOLUTION_MARKER, tool_env

from .conftest import ROOT

pytestmark = pytest.mark.slow
N_CORRECT = 3  # carol solves the first three exercises and gets the fourth wrong
# Short limits, so that the hostile submissions' endless loops cost seconds.
LIMITS = "c.SealedGrading.check_timeout = 20\nc.SealedGrading.cell_timeout = 10\n"


def run(course, *args, module="nbgrader"):
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=course,
                            env=tool_env(COURSE_MODEL="smollm2-135m"),
                            capture_output=True, text=True, timeout=1800)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result


def answer_cells(notebook):
    """The release's exercise cells, in notebook order, by exercise id."""
    cells = {}
    for cell in notebook.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        if grade_id.endswith("_solution"):
            cells[grade_id.removesuffix("_solution")] = cell
    return cells


def solution_source(exercise_id):
    return SOLUTION_MARKER.sub("", inspect.getsource(registry.find(exercise_id)[1].solution))


def partly_right(notebook):
    """Fill the first exercises with their solutions and the next with a known mistake,
    written out as the student would (no import from the course's solutions)."""
    cells = answer_cells(notebook)
    order = list(cells)
    for exercise_id in order[:N_CORRECT]:
        cells[exercise_id].source = solution_source(exercise_id)
    wrong_id = order[N_CORRECT]
    mistake = registry.find(wrong_id)[1].mistakes[0]
    source = inspect.getsource(mistake.fn)
    cells[wrong_id].source = source.replace(f"def {mistake.fn.__name__}(", f"def {wrong_id}(", 1)
    return order[:N_CORRECT], mistake


def make_course(tmp_path_factory, chapter, hidden, submissions_for, limits=""):
    """A scratch nbgrader course for `chapter`: released, the hidden references (from the
    folder `hidden`, built by the instructor's command) in place, the notebooks from
    `submissions_for(source, release)` submitted, autograded, fed back, exported."""
    notebook_name = f"{chapter}.ipynb"
    course = tmp_path_factory.mktemp(f"course-{chapter}")
    config = (ROOT / "exercises" / "nbgrader_config.py").read_text() + limits
    (course / "nbgrader_config.py").write_text(config)
    shutil.copytree(ROOT / "exercises" / "source" / chapter, course / "source" / chapter)
    run(course, "generate_assignment", chapter)
    shutil.copytree(hidden, course / "hidden_references")
    source = nbformat.read(course / "source" / chapter / notebook_name, as_version=4)
    release = nbformat.read(course / "release" / chapter / notebook_name, as_version=4)
    submissions = submissions_for(source, release)
    (course / "students.csv").write_text("id\n" + "".join(f"{s}\n" for s in submissions))
    run(course, "db", "student", "import", "students.csv")
    for student, notebook in submissions.items():
        folder = course / "submitted" / student / chapter
        folder.mkdir(parents=True)
        nbformat.write(notebook, folder / notebook_name)
    graded = run(course, "autograde", chapter)
    run(course, "generate_feedback", chapter)
    run(course, "export", "--to", str(course / "grades.csv"))
    with open(course / "grades.csv") as handle:
        scores = {row["student_id"]: float(row["raw_score"]) for row in csv.DictReader(handle)}
    return {"root": course, "chapter": chapter, "scores": scores, "log": graded.stderr}


def feedback(course, student):
    chapter = course["chapter"]
    return (course["root"] / "feedback" / student / chapter / f"{chapter}.html").read_text()


@pytest.fixture(scope="module", params=registry.chapters())
def course(request, tmp_path_factory, hidden_references):
    chosen = {}

    def submissions(source, release):
        partial = nbformat.from_dict(release)
        chosen["correct"], chosen["mistake"] = partly_right(partial)
        return {"alice": source, "bob": release, "carol": partial}

    hidden = hidden_references(request.param)
    return {**make_course(tmp_path_factory, request.param, hidden, submissions), **chosen}


def test_release_has_stubs_and_no_hidden_tests(course):
    chapter = course["chapter"]
    release = (course["root"] / "release" / chapter / f"{chapter}.ipynb").read_text()
    assert "hidden=True" not in release and "BEGIN HIDDEN TESTS" not in release
    assert "BEGIN SOLUTION" not in release
    assert release.count("raise NotImplementedError()") == len(registry.exercises(chapter))
    committed = ROOT / "exercises" / "release" / chapter / f"{chapter}.ipynb"
    assert release == committed.read_text(), "committed release differs from nbgrader's output"


def test_scores(course):
    points = {e.id: e.points for e in registry.exercises(course["chapter"])}
    assert course["scores"] == {"alice": sum(points.values()), "bob": 0.0,
                                "carol": sum(points[e] for e in course["correct"])}


def test_feedback_explains_failures(course):
    carol = html.unescape(feedback(course, "carol"))  # apostrophes come escaped or not
    assert course["mistake"].message.split(":")[0] in carol
    assert "not implemented yet" in feedback(course, "bob")
    assert "graded by the sealed grader" in feedback(course, "alice")


def test_model_cells_get_a_long_timeout_and_grading_is_sealed():
    config = Config()
    exec((ROOT / "exercises" / "nbgrader_config.py").read_text(), {"get_config": lambda: config})
    assert config.Execute.timeout >= 300
    names = [p.__name__ for p in config.Autograde.autograde_preprocessors]
    assert "SealedGrading" in names and "Execute" not in names
