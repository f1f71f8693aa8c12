"""The student-facing check: ``check("attention_scores")`` after writing that function.

It finds the student's function by name in the notebook, runs it on the stored inputs (or on
the model, for model exercises), compares with the stored references and either prints a
one-line "passed" or raises `CheckFailed` with what is wrong. Raising is what makes an
nbgrader test cell lose its points; in Jupyter the error shows as the message alone.
"""

from __future__ import annotations

import inspect
import traceback

import torch

from . import references, registry
from .compare import diagnose

_model_cases: dict[tuple[int, str], list[dict]] = {}


class CheckFailed(AssertionError):
    """A check did not pass. IPython shows only the message, not a traceback."""

    def _render_traceback_(self):
        return [f"\x1b[31m✘ {self}\x1b[0m"]


def check(exercise_id: str, *, model=None, hidden: bool = False, function=None) -> None:
    """Check the function named `exercise_id` that you defined in this notebook.

    Args:
        exercise_id: the exercise, which is also the name of the function to check.
        model: the loaded model, for exercises that run on it.
        hidden: run the hidden test cases instead of the visible one (nbgrader does this).
        function: check this callable instead of looking the name up in the notebook.

    Prints a "passed" line, or raises CheckFailed saying what is wrong.
    """
    print(verify(exercise_id, model=model, hidden=hidden, function=function))


def verify(exercise_id: str, *, model=None, hidden: bool = False, function=None) -> str:
    """`check` without printing: returns the "passed" line."""
    chapter, exercise = registry.find(exercise_id)
    if function is None:
        function = _find_function(exercise.id)
    if exercise.needs_model and model is None:
        raise CheckFailed(f"{exercise.id}: this exercise runs on the model: call "
                          f'check("{exercise.id}", model=model)')
    refs = references.load(chapter, model if exercise.needs_model else None)
    entry = refs.manifest["exercises"].get(exercise.id)
    if entry is None:
        raise CheckFailed(f"{exercise.id}: {refs.path} has no references for this exercise; "
                          f"rebuild them with: {references.rebuild_command(refs.key)}")
    indices = range(1, entry["cases"]) if hidden else range(1)
    all_cases = _cases_for(exercise, model) if exercise.needs_model else None
    for index in indices:
        if all_cases:
            kwargs = all_cases[index]
        else:
            kwargs = references.stored_case(refs.tensors, entry, exercise.id, index)
        problem = _run_case(function, kwargs, refs, entry, exercise.id, index, model)
        if problem:
            which = "hidden test" if hidden else "check"
            raise CheckFailed(f"{exercise.id} failed the {which}: {problem}")
    cases = f"{len(indices)} hidden case{'s' * (len(indices) != 1)}" if hidden else "visible case"
    return f"✔ {exercise.id} passed ({cases}; references: {refs.describe()})"


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


def _cases_for(exercise, model) -> list[dict]:
    """Model exercises: inputs made from the model (cached per model for this session)."""
    key = (id(model), exercise.id)
    if key not in _model_cases:
        with torch.no_grad():
            _model_cases[key] = exercise.make_cases(model)
    return _model_cases[key]


def _run_case(function, kwargs, refs, entry, exercise_id, index, model) -> str | None:
    try:
        answer = function(**kwargs)
    except NotImplementedError:
        return "not implemented yet: replace `raise NotImplementedError()` with your code."
    except Exception as error:  # the student's code: report, never crash the notebook
        return f"your function raised {type(error).__name__}: {error}{_where(error)}"
    prefix = f"{exercise_id}/{index}"
    mistakes = {name: (entry["mistakes"][name], refs.tensors[f"{prefix}/mistake/{name}"])
                for name in entry["mistakes"] if f"{prefix}/mistake/{name}" in refs.tensors}
    device = model.cfg.device if model is not None and "model" in kwargs else "cpu"
    return diagnose(answer, refs.tensors[f"{prefix}/expected"], dims=entry["output_dims"],
                    atol=entry["atol"], rtol=entry["rtol"], device=device, mistakes=mistakes)


def _where(error: Exception) -> str:
    """' (line N of your code: ...)' for the innermost frame of the student's code."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(str(references.COMMITTED_DIR.parent))]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (line {frame.lineno}: {frame.line})" if frame.line else f" (line {frame.lineno})"
