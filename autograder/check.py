"""The student-facing check: ``check("attention_scores")`` after writing that function.

It finds the student's function by name in the notebook, runs it on the cases stored in the
chapter's reference set (on the model, for model exercises), compares with the stored answers
and either prints a one-line "passed" or raises `CheckFailed` with what is wrong. Raising is
what makes an nbgrader test cell lose its points; in Jupyter the error shows as the message
alone. Everything comes from the reference files: the solutions are never imported here.
"""

from __future__ import annotations

import importlib.util
import inspect
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from tqdm.auto import tqdm

from . import catalog
from .compare import judge
from .references import (PURE_KEY, REFERENCES_ENV_VAR, ReferenceSet, locate, rebuild_command,
                         reference_key)
from .running import run_case

BUILD_PROGRESS = "progress:"  # how `autograder build --progress-lines` reports (done, total, exercise)
_loaded: dict[tuple[str, str], ReferenceSet] = {}
_caches: dict = {}  # activation caches of model cases, reused between checks


class CheckFailed(AssertionError):
    """A check did not pass. IPython shows only the message, not a traceback."""

    def _render_traceback_(self):
        return [f"\x1b[31m✘ {self}\x1b[0m"]


@dataclass
class CheckResult:
    exercise_id: str
    passed: bool
    message: str


def check(exercise_id: str, *, hidden: bool = False, function=None, **sources) -> None:
    """Check the function named `exercise_id` that you defined in this notebook.

    Args:
        exercise_id: the exercise, which is also the name of the function to check.
        hidden: run the hidden test cases instead of the visible one (nbgrader does this).
        function: check this callable instead of looking the name up in the notebook.
        sources: what the exercise runs on, e.g. ``model=model``.

    Prints a "passed" line, or raises CheckFailed saying what is wrong.
    """
    print(verify(exercise_id, hidden=hidden, function=function, **sources))


def verify(exercise_id: str, *, hidden: bool = False, function=None, **sources) -> str:
    """`check` without printing: returns the "passed" line, raises CheckFailed."""
    result = evaluate(exercise_id, hidden=hidden, function=function, **sources)
    if not result.passed:
        raise CheckFailed(result.message)
    return result.message


def evaluate(exercise_id: str, *, hidden: bool = False, function=None, **sources) -> CheckResult:
    """Run the check and say how it went (raises only for calls that cannot be checked)."""
    info = catalog.find(exercise_id)
    missing = [name for name in info.needs if sources.get(name) is None]
    if missing:
        arguments = ", ".join(f"{name}={name}" for name in info.needs)
        raise CheckFailed(f"{exercise_id}: this exercise runs on the {' and the '.join(missing)}:"
                          f' call check("{exercise_id}", {arguments})')
    needed = {name: sources[name] for name in info.needs}
    references = load_references(info.chapter, needed)
    exercise = references.exercises.get(exercise_id)
    if exercise is None:
        raise CheckFailed(f"{exercise_id}: {references.path} has no references for this "
                          f"exercise; rebuild them with: {rebuild_command(references.key)}")
    function = function or _find_function(exercise_id)
    model = needed.get("model")
    device = model.cfg.device if model is not None else "cpu"
    indices = range(1, len(exercise.cases)) if hidden else range(1)
    for index in indices:
        case = exercise.cases[index]
        outcome = run_case(function, case, model, _caches)
        where = device if any(a.kind == "model" for a in case.arguments.values()) else "cpu"
        problem = judge(outcome, exercise, case, where)
        if problem:
            which = "hidden test" if hidden else "check"
            return CheckResult(exercise_id, False, f"{exercise_id} failed the {which}: {problem}")
    cases = (f"{len(indices)} hidden case{'s' * (len(indices) != 1)}" if hidden
             else "visible case")
    return CheckResult(exercise_id, True, f"✔ {exercise_id} passed ({cases}; references: "
                                          f"{references.describe()}; {tolerance_text(exercise)})")


def tolerance_text(exercise) -> str:
    """How close an answer must be: also what a bug smaller than that gets away with."""
    if exercise.atol == exercise.rtol == 0:
        return "exact answers"
    return f"within atol={exercise.atol:g}, rtol={exercise.rtol:g}"


def load_references(chapter: str, sources: dict) -> ReferenceSet:
    """The reference set of `chapter` for these sources; for a model without stored ones,
    built once by the course's builder in a separate process (this kernel never loads the
    solutions)."""
    key = reference_key(sources)
    if (chapter, key) not in _loaded:
        path = locate(chapter, key)
        if path is None and key != PURE_KEY and set(sources) == {"model"}:
            if importlib.util.find_spec("solutions") is None:  # the edition without solutions
                raise FileNotFoundError(
                    f"This copy of the course has no references of {chapter} for "
                    f"{sources['model'].course_info.display_name} [{key}], and no solutions to "
                    "build them from (your instructor's edition). Load the model your course "
                    "uses (e.g. load_model('smollm2-135m')), or ask your instructor for these "
                    f"references and put them in ${REFERENCES_ENV_VAR}.")
            path = _build_in_subprocess(chapter, sources["model"], key)
        if path is None:
            raise FileNotFoundError(f"No references {chapter}/{key}. Build them with: "
                                    f"{rebuild_command(key)}")
        _loaded[(chapter, key)] = ReferenceSet.load(path)
    return _loaded[(chapter, key)]


def _build_in_subprocess(chapter: str, model, key: str):
    """Build the chapter's references for `model` with the course's builder, showing its
    progress (runs of a solution or mistake on a case) and tqdm's estimate of the time left."""
    info = model.course_info
    print(f"No stored references of {chapter} for {info.display_name} [{key}]: building them once "
          "from the course solutions (every case, on this model)...", flush=True)
    command = [sys.executable, "-m", "autograder", "build", "--model", info.name,
               "--chapter", chapter, "--progress-lines"]
    with tempfile.TemporaryFile("w+") as errors, tqdm(desc="building references", unit="run") as bar:
        with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors, text=True) as process:
            for line in process.stdout:
                if line.startswith(BUILD_PROGRESS):
                    done, total, *exercise = line.split()[1:]
                    advance(bar, int(done), int(total), " ".join(exercise))
                else:
                    bar.write(line.rstrip())
        if process.returncode:
            errors.seek(0)
            raise RuntimeError(f"Building the references of {chapter} for {info.name} failed:\n"
                               + errors.read()[-3000:])
    path = locate(chapter, key)
    if path is None:
        raise FileNotFoundError(f"Built references for {info.name}, but not for this model's "
                                f"weights [{key}]: was it loaded with load_model({info.name!r})?")
    return path


def advance(bar, done: int, total: int, exercise_id: str) -> None:
    """Move a tqdm bar to `done` of `total` runs, naming the exercise being built."""
    bar.total = total
    bar.update(done - bar.n)
    bar.set_postfix_str(exercise_id)


def _find_function(name: str):
    """The student's function: looked up where `check` was called from (the notebook)."""
    frame = inspect.currentframe()
    while frame is not None and frame.f_globals.get("__name__") == __name__:
        frame = frame.f_back
    function = frame.f_globals.get(name) if frame is not None else None
    if function is None:
        raise CheckFailed(f"{name}: no function called `{name}` is defined yet. Run the cell "
                          "that defines it first (and keep its name).")
    if not callable(function):
        raise CheckFailed(f"{name}: `{name}` is a {type(function).__name__}, not a function.")
    return function
