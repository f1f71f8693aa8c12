"""How long the sealed grader takes per chapter, now and at an earlier commit, in one run:

    python benchmarks/sealed_grading.py --baseline ff3bbd3 ch1_attention ch3_circuits

For each chapter it builds hidden references (seed 7, the offline model and the second models) once,
then grades the chapter's solutions, written out as a student's notebook, with the grader of
the baseline commit (a git worktree, in a subprocess) and with this one, alternating, and
prints each time and the ratio. Both graders grade on the same models (the baseline's second
model, gqa-test), so the ratio is what isolation costs; a last column grades with this
grader's second models (gpt2-mini-test too) and gives its ratio to the baseline. Every grading
run starts a fresh process, so each includes starting the models' zygote, as grading one
chapter with nbgrader does. Run it alone.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GRADE = """
import sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from autograder.classroom import grade_notebook
start = time.perf_counter()
results = grade_notebook(Path(sys.argv[2]), hidden_dir=Path(sys.argv[3]), model="smollm2-135m",
                         second_models=tuple(sys.argv[4].split(",")))
print(f"{time.perf_counter() - start:.2f} {sum(r.passed for r in results.values())} {len(results)}")
"""


def solution_notebook(chapter: str, path: Path) -> Path:
    """The release notebook with every answer cell holding the solution's source."""
    import nbformat

    sys.path.insert(0, str(ROOT))
    from tests.test_nbgrader import answer_cells, solution_source

    notebook = nbformat.read(ROOT / "exercises" / "release" / chapter / f"{chapter}.ipynb", 4)
    for exercise_id, cell in answer_cells(notebook).items():
        cell.source = solution_source(exercise_id)
    nbformat.write(notebook, path)
    return path


BASELINE_SECOND_MODELS = ("gqa-test",)


def grade(code_root: Path, notebook: Path, hidden: Path,
          second_models=BASELINE_SECOND_MODELS) -> tuple[float, str]:
    run = subprocess.run([sys.executable, "-c", GRADE, str(code_root), str(notebook), str(hidden),
                          ",".join(second_models)],
                         capture_output=True, text=True, timeout=1800, cwd=code_root)
    if run.returncode != 0:
        raise SystemExit(run.stderr[-3000:])
    seconds, passed, total = run.stdout.split()[-3:]
    return float(seconds), f"{passed}/{total}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("chapters", nargs="+")
    parser.add_argument("--baseline", required=True, help="the commit to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        baseline = scratch / "baseline"
        subprocess.run(["git", "worktree", "add", "--detach", str(baseline), args.baseline],
                       cwd=ROOT, check=True, capture_output=True)
        try:
            second_models = _second_models()
            print(f"{'chapter':15} {'baseline s':>11} {'now s':>8} {'ratio':>6}"
                  f" {'+' + ','.join(second_models[1:]) + ' s':>22} {'ratio':>6}  passed")
            for chapter in args.chapters:
                hidden = scratch / "hidden"
                models = [option for name in ("smollm2-135m", *second_models) for option in ("--model", name)]
                subprocess.run([sys.executable, "-m", "autograder", "build", *models, "--chapter", chapter,
                                "--seed", "7", "--out", str(hidden)], cwd=ROOT, check=True, capture_output=True)
                notebook = solution_notebook(chapter, scratch / f"{chapter}.ipynb")
                before, now, now_all = [], [], []
                for _ in range(args.repeats):
                    before.append(grade(baseline, notebook, hidden))
                    now.append(grade(ROOT, notebook, hidden))
                    now_all.append(grade(ROOT, notebook, hidden, second_models))
                old, new, new_all = (min(t for t, _ in runs) for runs in (before, now, now_all))
                print(f"{chapter:15} {old:11.1f} {new:8.1f} {new / old:6.2f} {new_all:22.1f} "
                      f"{new_all / old:6.2f}  {before[0][1]} -> {now[0][1]}, {now_all[0][1]}", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(baseline)], cwd=ROOT,
                           capture_output=True)
    print(f"(fastest of {args.repeats} runs each, {time.strftime('%Y-%m-%d')}; "
          f"{'isolated' if _isolated() else 'NOT isolated'} now)")


def _second_models() -> tuple[str, ...]:
    sys.path.insert(0, str(ROOT))
    from autograder.sealed import SECOND_MODELS

    return SECOND_MODELS


def _isolated() -> bool:
    sys.path.insert(0, str(ROOT))
    from autograder import isolation

    return isolation.problem() is None


if __name__ == "__main__":
    main()
