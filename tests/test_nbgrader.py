"""The instructor's pipeline, end to end, for every chapter, in one scratch course:
generate_assignment, hidden references with the instructor's seed, autograde through the real
nbgrader with the sealed grader, feedback and export, each step one command for all chapters.
Four submissions per chapter: the full solution, the untouched release, one partly right
with a known mistake, and one that attacks the grader (tests/attacks.py)."""

import csv
import html
import inspect
import shutil
import socket
import subprocess
import sys
import time

import nbformat
import pytest
from traitlets.config import Config

from autograder.authoring import registry
from autograder.authoring.notebooks import SOLUTION_MARKER, tool_env

from .attacks import HOME_FILE, eve, lost
from .conftest import ROOT, TIMINGS, isolated

pytestmark = pytest.mark.slow
MODEL = "gpt2-test"  # the course model's architecture, random weights: see `course`
N_CORRECT = 3  # carol solves the first three exercises and gets the fourth wrong
# Short limits, so that the hostile submissions' endless loops cost seconds.
LIMITS = "c.SealedGrading.check_timeout = 10\nc.SealedGrading.cell_timeout = 5\n"


def run(course, model, *args, module="nbgrader"):
    result = subprocess.run([sys.executable, "-m", module, *args], cwd=course,
                            env=tool_env(COURSE_MODEL=model),
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


def make_course(tmp_path_factory, chapters, hidden, submissions_for, model, limits=""):
    """A scratch nbgrader course for `chapters`, graded in one pass: released, the hidden
    references (the folder `hidden`, built by the instructor's command) in place, the
    notebooks from `submissions_for(chapter, source, release)` ({student: notebook})
    submitted, autograded on `model`, fed back, exported. One nbgrader command per step for
    all chapters (`"*"`), as an instructor grading several assignments at once would run it."""
    course = tmp_path_factory.mktemp("course")
    config = (ROOT / "exercises" / "nbgrader_config.py").read_text() + limits
    (course / "nbgrader_config.py").write_text(config)
    for chapter in chapters:
        shutil.copytree(ROOT / "exercises" / "source" / chapter, course / "source" / chapter)
    started = time.monotonic()
    run(course, model, "generate_assignment", "*")
    shutil.copytree(hidden, course / "hidden_references")
    students = set()
    for chapter in chapters:
        name = f"{chapter}.ipynb"
        source = nbformat.read(course / "source" / chapter / name, as_version=4)
        release = nbformat.read(course / "release" / chapter / name, as_version=4)
        for student, notebook in submissions_for(chapter, source, release).items():
            students.add(student)
            (course / "submitted" / student / chapter).mkdir(parents=True)
            nbformat.write(notebook, course / "submitted" / student / chapter / name)
    (course / "students.csv").write_text("id\n" + "".join(f"{s}\n" for s in sorted(students)))
    run(course, model, "db", "student", "import", "students.csv")
    graded = run(course, model, "autograde", "*")
    run(course, model, "generate_feedback", "*")
    run(course, model, "export", "--to", str(course / "grades.csv"))
    with open(course / "grades.csv") as handle:
        scores = {(row["assignment"], row["student_id"]): float(row["raw_score"])
                  for row in csv.DictReader(handle)}
    TIMINGS.append(f"nbgrader course of {len(chapters)} chapter(s), {len(students)} students: "
                   f"{time.monotonic() - started:.0f} s")
    return {"root": course, "scores": scores, "log": graded.stderr}


def feedback(course, student, chapter):
    return (course["root"] / "feedback" / student / chapter / f"{chapter}.html").read_text()


@pytest.fixture(scope="module")
def course(tmp_path_factory, hidden_references):
    """Every chapter, four students: alice (the solution), bob (the release untouched),
    carol (partly right, then a known mistake) and eve (the solution, but for the exercises
    her answers attack: tests/attacks.py). A TCP server on this machine waits for eve.
    Graded on MODEL, GPT-2's architecture and tokenizer (the course model's), and the second
    model gqa-test (SmolLM2's tokenizer, grouped-query attention); SmolLM2 itself is graded
    in tests/test_sealed.py and tests/test_classroom.py."""
    chosen = {}
    with socket.create_server(("127.0.0.1", 0)) as server:
        attacks = eve(server.getsockname()[1])

        def submissions(chapter, source, release):
            partial = nbformat.from_dict(release)
            chosen[chapter] = partly_right(partial)
            attacking = nbformat.from_dict(release)
            for exercise_id, cell in answer_cells(attacking).items():
                cell.source = attacks[chapter].get(exercise_id) or solution_source(exercise_id)
            return {"alice": source, "bob": release, "carol": partial, "eve": attacking}

        HOME_FILE.write_text("the grader's own")
        try:
            graded = make_course(tmp_path_factory, registry.chapters(), hidden_references(MODEL),
                                 submissions, MODEL)
        finally:
            HOME_FILE.unlink()
    alice = {c: (graded["root"] / "submitted" / "alice" / c / f"{c}.ipynb").read_bytes()
             for c in registry.chapters()}
    return {**graded, "chosen": chosen, "attacks": attacks, "alice_after": alice}


@pytest.mark.parametrize("chapter", registry.chapters())
def test_release_has_stubs_and_no_hidden_tests(course, chapter):
    release = (course["root"] / "release" / chapter / f"{chapter}.ipynb").read_text()
    assert "hidden=True" not in release and "BEGIN HIDDEN TESTS" not in release
    assert "BEGIN SOLUTION" not in release
    assert release.count("raise NotImplementedError()") == len(registry.exercises(chapter))
    committed = ROOT / "exercises" / "release" / chapter / f"{chapter}.ipynb"
    assert release == committed.read_text(), "committed release differs from nbgrader's output"


@pytest.mark.parametrize("chapter", registry.chapters())
def test_scores(course, chapter):
    points = {e.id: e.points for e in registry.exercises(chapter)}
    correct, _ = course["chosen"][chapter]
    scores = {student: course["scores"][chapter, student] for student in ("alice", "bob", "carol")}
    assert scores == {"alice": sum(points.values()), "bob": 0.0,
                      "carol": sum(points[e] for e in correct)}


@pytest.mark.parametrize("chapter", registry.chapters())
def test_every_attack_scores_0_and_changes_nothing_else(course, chapter):
    """Reading the hidden references (through /proc/<pid>/cwd and by absolute path), the
    solutions (exec by path; import with the blocker removed), another student's submission,
    the gradebook or the grader's home, a library function that computes the answer, the
    network: each earns its exercise only if it works. The sealed worker's sandbox stops them
    all (README: graded mode); alice's submission is as she submitted it."""
    isolated()
    points = {e.id: e.points for e in registry.exercises(chapter)}
    attacked = course["attacks"][chapter]
    assert course["scores"][chapter, "eve"] == sum(points.values()) - sum(points[e] for e in lost(chapter, attacked))
    page = html.unescape(feedback(course, "eve", chapter))
    for exercise_id in attacked:
        assert f"{exercise_id} failed the hidden test" in page, exercise_id
    source = nbformat.read(ROOT / "exercises" / "source" / chapter / f"{chapter}.ipynb", as_version=4)
    assert nbformat.reads(course["alice_after"][chapter].decode(), as_version=4).cells == source.cells


@pytest.mark.parametrize("chapter", registry.chapters())
def test_feedback_explains_failures(course, chapter):
    _, mistake = course["chosen"][chapter]
    carol = html.unescape(feedback(course, "carol", chapter))  # apostrophes come escaped or not
    assert mistake.message.split(":")[0] in carol
    assert "not implemented yet" in feedback(course, "bob", chapter)
    assert "graded by the sealed grader" in feedback(course, "alice", chapter)


def test_model_cells_get_a_long_timeout_and_grading_is_sealed():
    config = Config()
    exec((ROOT / "exercises" / "nbgrader_config.py").read_text(), {"get_config": lambda: config})
    assert config.Execute.timeout >= 300
    names = [p.__name__ for p in config.Autograde.autograde_preprocessors]
    assert "SealedGrading" in names and "Execute" not in names
