"""Build reference sets from the solutions: run each exercise's solution and mistakes on its
cases and keep everything a check needs (see autograder/references.py for the format)."""

from __future__ import annotations

import time
import zlib
from importlib.metadata import version

import torch

from ..compare import distinguishability
from ..references import Argument, Case, ExerciseReferences, ReferenceSet, reference_key
from ..running import RECORD_TYPES, materialize
from ..timing import probe_seconds
from . import registry
from .digest import reference_digest
from .spec import CachedRun, Exercise, TrainedCheckpoint, TrainedRun

PLAIN = (int, float, str, bool, type(None))


def case_seed(chapter: str, exercise: Exercise, seed: int | None) -> int:
    """The seed of an exercise's cases: fixed per exercise for the published references;
    a grader's own `seed` gives other hidden cases."""
    name = f"{chapter}/{exercise.id}" + ("" if seed is None else f"/{seed}")
    return zlib.crc32(name.encode())


def build(chapter: str, model=None, *, seed: int | None = None,
          stored: ReferenceSet | None = None, progress=None, only=None,
          mistakes: bool = True) -> ReferenceSet:
    """Run the solutions (and mistakes) of one chapter: pure exercises if model is None.

    seed: draw other cases than the published ones (an instructor's hidden references).
    stored: recompute the outputs on this reference set's own cases instead of drawing them.
    progress: called as progress(runs done, runs in all, exercise id) before each exercise
        and at the end; a run is one call of a solution or a mistake on one case.
    only: build these exercise ids only; mistakes=False: the expected outputs only (both for
        mutation testing, which needs neither the rest nor the diagnoses).
    """
    chosen = [e for e in registry.exercises(chapter) if e.needs_model == (model is not None)
              and (only is None or e.id in only)]
    drawn = {e.id: [c.arguments for c in stored.exercises[e.id].cases] if stored is not None
             else draw_cases(chapter, e, model, seed) for e in chosen}
    total, done = sum(len(drawn[e.id]) * (1 + len(e.mistakes) * mistakes) for e in chosen), 0
    exercises = {}
    for exercise in chosen:
        if progress:
            progress(done, total, exercise.id)
        exercises[exercise.id] = ExerciseReferences(
            exercise.id, exercise.inputs, {n: list(d) for n, d in exercise.outputs.items()},
            exercise.atol, exercise.rtol, {}, [], exercise.points)
        for case_arguments in drawn[exercise.id]:
            exercises[exercise.id].cases.append(build_case(exercise, case_arguments, model,
                                                      exercises[exercise.id].mistake_messages, mistakes))
            done += 1 + len(exercise.mistakes) * mistakes
    if progress:
        progress(done, total, "")
    sources = {"model": _model_entry(model)} if model is not None else {}
    versions = {p: version(p) for p in ("torch", "transformers", "transformer_lens")}
    key = reference_key({"model": model} if model is not None else {})
    return ReferenceSet(chapter, key, sources, versions, exercises,
                        digest=reference_digest(chapter, key), probe_seconds=probe_seconds())


def draw_cases(chapter: str, exercise: Exercise, model=None, seed: int | None = None
               ) -> list[dict[str, Argument]]:
    """The arguments of an exercise's cases (case 0 visible, the others hidden)."""
    generator = torch.Generator().manual_seed(case_seed(chapter, exercise, seed))
    raw = exercise.make_cases(generator) if model is None else exercise.make_cases(model, generator)
    return [describe(exercise, kwargs, model) for kwargs in raw]


def build_case(exercise: Exercise, arguments: dict[str, Argument], model, messages: dict,
               mistakes: bool = True) -> Case:
    caches = {}
    with torch.no_grad():
        kwargs = materialize(arguments, model, caches)
        started = time.perf_counter()
        expected = outputs_of(exercise, exercise.solution(**kwargs))
        case = Case(arguments, expected, seconds=time.perf_counter() - started)
        seen = [expected]
        for mistake in exercise.mistakes if mistakes else ():
            wrong = outputs_of(exercise, mistake.fn(**materialize(arguments, model, caches)))
            # A mistake that gives the right answer here (e.g. "forgot the bias" on a model
            # without biases), or the same answer as an earlier mistake, cannot be diagnosed
            # on this case: leave it out.
            if separation(exercise, wrong, seen) > 1:
                seen.append(wrong)
                case.mistakes[mistake.name] = wrong
                messages.setdefault(mistake.name, mistake.message)
    return case


def outputs_of(exercise: Exercise, result) -> dict[str, torch.Tensor]:
    """A solution's result as {output name: CPU tensor}."""
    names = list(exercise.outputs)
    parts = [result] if len(names) == 1 else list(result)
    if len(parts) != len(names) or not all(isinstance(p, torch.Tensor) for p in parts):
        raise TypeError(f"{exercise.id}: expected {len(names)} tensor(s) {names}, got {type(result)}")
    return {name: part.detach().cpu() for name, part in zip(names, parts)}


def separation(exercise: Exercise, outputs: dict, others: list[dict]) -> float:
    """How far a set of outputs is from the nearest of `others`, in tolerances (any output
    that differs tells them apart)."""
    nearest = float("inf")
    for other in others:
        gap = max(distinguishability(outputs[n], [other[n]], exercise.atol, exercise.rtol)
                  for n in outputs)
        nearest = min(nearest, gap)
    return nearest


def describe(exercise: Exercise, kwargs: dict, model) -> dict[str, Argument]:
    """A case's keyword arguments as storable `Argument`s."""
    arguments = {}
    for name, value in kwargs.items():
        if model is not None and value is model:
            arguments[name] = Argument("model")
        elif isinstance(value, CachedRun):
            arguments[name] = Argument("cache", value.tokens.cpu(), dict(value.scales))
        elif isinstance(value, TrainedRun):
            checkpoints = None if value.checkpoints is None else list(value.checkpoints)
            arguments[name] = Argument("run", {"name": value.name, "checkpoints": checkpoints})
        elif isinstance(value, TrainedCheckpoint):
            arguments[name] = Argument("checkpoint", {"name": value.name, "step": value.step})
        elif isinstance(value, torch.Tensor):
            arguments[name] = Argument("tensor", value.detach().cpu())
        elif type(value).__name__ in RECORD_TYPES:
            arguments[name] = Argument("record", {"type": type(value).__name__, "fields": {
                f: t.detach().cpu() for f, t in zip(value._fields, value)}})
        elif _plain(value):
            arguments[name] = Argument("value", _as_json(value))
        else:
            raise TypeError(f"{exercise.id}: case argument {name!r} is a {type(value).__name__}; "
                            "use a tensor, a plain value, the model, a CachedRun, a TrainedRun, a "
                            "TrainedCheckpoint or a record "
                            f"({', '.join(RECORD_TYPES)})")
    return arguments


def _plain(value) -> bool:
    """A plain value, or a list or tuple of them (nested: [layer, head] pairs)."""
    return isinstance(value, PLAIN) or (isinstance(value, (list, tuple)) and all(map(_plain, value)))


def _as_json(value):
    """Tuples as lists, as JSON stores them."""
    return [_as_json(v) for v in value] if isinstance(value, (list, tuple)) else value


def _model_entry(model) -> dict:
    info = model.course_info
    return {"name": info.name, "display_name": info.display_name,
            "fingerprint": info.fingerprint, "source": info.source}
