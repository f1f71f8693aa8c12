"""Grading a class without nbgrader's database: `python -m autograder grade` (workers side by
side, one gradebook) and a Gradescope bundle run as Gradescope runs it."""

import csv
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.authoring import registry
from autograder.authoring.notebooks import tool_env

from .attacks import stealing
from .conftest import ROOT, isolated
from .test_cli import committed_digest
from .test_nbgrader import N_CORRECT, answer_cells, partly_right

pytestmark = pytest.mark.slow
CHAPTER = "ch1_attention"
SOURCE = ROOT / "exercises" / "source" / CHAPTER / f"{CHAPTER}.ipynb"
RELEASE = ROOT / "exercises" / "release" / CHAPTER / f"{CHAPTER}.ipynb"
TOTAL = sum(e.points for e in registry.exercises(CHAPTER))


def autograder(*args, cwd=ROOT):
    result = subprocess.run([sys.executable, "-m", "autograder", *args], cwd=cwd,
                            env=tool_env(), capture_output=True, text=True, timeout=1200)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def hidden(hidden_references):
    return hidden_references("smollm2-135m", (CHAPTER,))


def test_grade_a_class_in_parallel_into_one_gradebook(hidden, tmp_path):
    submitted = tmp_path / "submitted"
    partial = nbformat.read(RELEASE, as_version=4)
    correct, _ = partly_right(partial)
    notebooks = {"alice": nbformat.read(SOURCE, as_version=4),
                 "bob": nbformat.read(RELEASE, as_version=4), "carol": partial}
    for student, notebook in notebooks.items():
        (submitted / student / CHAPTER).mkdir(parents=True)
        nbformat.write(notebook, submitted / student / CHAPTER / f"{CHAPTER}.ipynb")
    before = committed_digest()
    autograder("grade", str(submitted), "--assignment", CHAPTER, "--hidden", str(hidden),
               "--jobs", "2", "--out", str(tmp_path / "grades.csv"))
    assert committed_digest() == before
    with open(tmp_path / "grades.csv") as handle:
        rows = {row["student"]: row for row in csv.DictReader(handle)}
    assert {s: float(r["total"]) for s, r in rows.items()} == {"alice": TOTAL, "bob": 0.0,
                                                               "carol": float(len(correct))}
    assert all(float(r["max"]) == TOTAL for r in rows.values())
    assert [rows["carol"][e] for e in correct] == ["1"] * len(correct)


def test_gradescope_bundle_grades_a_submission_as_gradescope_runs_it(hidden, tmp_path):
    bundle = tmp_path / "autograder.zip"
    before = committed_digest()
    autograder("gradescope", "--assignment", CHAPTER, "--hidden", str(hidden), "--out", str(bundle))
    assert committed_digest() == before
    root = tmp_path / "autograder"  # Gradescope's /autograder
    with zipfile.ZipFile(bundle) as archive:
        names = archive.namelist()
        archive.extractall(root / "source")
    assert {"setup.sh", "run_autograder"} <= set(names)
    setup = (root / "source" / "setup.sh").read_text()  # CPU torch, and the sandbox
    assert "download.pytorch.org/whl/cpu" in setup and "bubblewrap" in setup
    assert not any(n.startswith(("course/solutions", "course/autograder/authoring")) for n in names)
    assert any(n.startswith(f"hidden_references/{CHAPTER}/") for n in names)
    partial = nbformat.read(RELEASE, as_version=4)
    correct, mistake = partly_right(partial)
    # An answer that reads the hidden references shipped in the bundle (Gradescope's
    # /autograder/source): it scores only if the submission's process can open them.
    isolated()
    stealer = next(e for e in list(answer_cells(partial))[N_CORRECT + 1:] if not registry.find(e)[1].needs_model)
    answer_cells(partial)[stealer].source = stealing(CHAPTER, stealer, "gradescope")
    (root / "submission").mkdir()
    nbformat.write(partial, root / "submission" / "my_work.ipynb")
    (root / "results").mkdir()
    environment = {**tool_env(), "AUTOGRADER_ROOT": str(root),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    run = subprocess.run(["bash", str(root / "source" / "run_autograder")], env=environment,
                         capture_output=True, text=True, timeout=1200)
    assert run.returncode == 0, run.stderr[-3000:]
    results = json.loads((root / "results" / "results.json").read_text())
    assert results["score"] == len(correct)
    tests = {t["name"]: t for t in results["tests"]}
    assert set(tests) == {e.id for e in registry.exercises(CHAPTER)}
    assert all(t["max_score"] == 1 and t["visibility"] == "visible" for t in tests.values())
    assert [tests[e]["score"] for e in correct] == [1] * len(correct)
    wrong = [t for t in tests.values() if t["score"] == 0]
    assert any(mistake.message.split(":")[0] in t["output"] for t in wrong)
    assert "no hidden references found" in tests[stealer]["output"]
