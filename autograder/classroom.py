"""Grade a whole class with the sealed grader: many notebooks, several workers side by side,
one gradebook; and Gradescope's entry point (`python -m autograder.classroom gradescope`).

Submissions are laid out as nbgrader lays them out: ``<submitted>/<student>/<assignment>/*.ipynb``.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import nbformat

from . import catalog
from .check import CheckResult
from .sealed import SECOND_MODELS, course_files, grade_answers, graded_models, hidden_references, notebook_cells


def grade_notebook(path: Path, *, hidden_dir: Path, model: str, **options) -> dict[str, CheckResult]:
    """The sealed grader's result for each exercise of one notebook."""
    notebook = nbformat.read(path, as_version=4)
    cells, exercise_ids = notebook_cells(notebook)
    return grade_answers(cells, exercise_ids, model_name=model, hidden_dir=hidden_dir, **options)


def grade_class(notebooks: dict[str, Path], chapter: str, *, jobs: int = 1, log=print,
                **options) -> dict[str, dict[str, CheckResult]]:
    """Grade each student's notebook of `chapter`, `jobs` at a time, the CPU cores split
    between them."""
    files = course_files(options["hidden_dir"])
    for changed in files.restore():
        log(f"restored {changed}")
    models = graded_models(options["model"], options.get("second_models", SECOND_MODELS))
    hidden_references(chapter, models, options["hidden_dir"])  # before any submission runs
    threads = max(1, (os.cpu_count() or 1) // jobs)

    def one(item):
        student, path = item
        start = time.perf_counter()
        results = grade_notebook(path, threads=threads, **options)
        passed = sum(r.passed for r in results.values())
        log(f"{student}: {passed}/{len(results)} passed in {time.perf_counter() - start:.1f} s")
        return student, results

    with ThreadPoolExecutor(max_workers=jobs) as pool:
        grades = dict(pool.map(one, sorted(notebooks.items())))
    for changed in files.restore():
        log(f"restored {changed} (changed by a submission)")
    return grades


def write_gradebook(grades: dict[str, dict[str, CheckResult]], path: Path) -> None:
    """One row per student: each exercise's points and the total."""
    exercise_ids = [e.id for e in catalog.exercises() if any(e.id in r for r in grades.values())]
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["student", *exercise_ids, "total", "max"])
        for student, results in sorted(grades.items()):
            points = [catalog.find(i).points * results[i].passed if i in results else 0
                      for i in exercise_ids]
            writer.writerow([student, *points, sum(points),
                             sum(catalog.find(i).points for i in exercise_ids)])


def submitted_notebooks(submitted: Path, assignment: str) -> dict[str, Path]:
    """{student: notebook} from nbgrader's submitted/<student>/<assignment>/ folders."""
    found = {}
    for folder in sorted(submitted.glob(f"*/{assignment}")):
        notebooks = sorted(folder.glob("*.ipynb"))
        if notebooks:
            found[folder.parent.name] = notebooks[0]
    return found


def gradescope_results(results: dict[str, CheckResult], seconds: float) -> dict:
    """Gradescope's results.json for one submission."""
    tests = [{"name": i, "score": catalog.find(i).points * r.passed,
              "max_score": catalog.find(i).points, "output": r.message, "visibility": "visible"}
             for i, r in results.items()]
    return {"score": sum(t["score"] for t in tests), "execution_time": round(seconds),
            "tests": tests}


def gradescope(root: Path, model: str, second_models=SECOND_MODELS, allow_unisolated: bool = False) -> int:
    """Gradescope's run_autograder: grade the notebook in <root>/submission against the
    hidden references shipped in <root>/source, write <root>/results/results.json."""
    start = time.perf_counter()
    notebooks = sorted((root / "submission").rglob("*.ipynb"))
    results_path = root / "results" / "results.json"
    results_path.parent.mkdir(parents=True, exist_ok=True)
    if not notebooks:
        results_path.write_text(json.dumps({"score": 0, "output": "No .ipynb notebook was "
                                            "submitted: upload the exercise notebook.", "tests": []}))
        return 0
    results = grade_notebook(notebooks[0], hidden_dir=root / "source" / "hidden_references",
                             model=model, second_models=second_models,
                             allow_unisolated=allow_unisolated)
    results_path.write_text(json.dumps(gradescope_results(results, time.perf_counter() - start),
                                       indent=1))
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.classroom")
    parser.add_argument("command", choices=["gradescope"])
    parser.add_argument("--root", type=Path, default=Path("/autograder"))
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--second-models", nargs="*", default=list(SECOND_MODELS))
    parser.add_argument("--allow-unisolated", action="store_true")
    args = parser.parse_args(argv)
    return gradescope(args.root, args.model, args.second_models, args.allow_unisolated)


if __name__ == "__main__":
    sys.exit(main())
