"""How an exercise is declared: its solution, test cases, tolerance and known mistakes.

Each chapter module in `solutions/` declares its exercises one block at a time: the solution
function, its mistakes (wrong answers written as code), its case maker, then
``EXERCISES.append(Exercise(...))``. That module is the single source of truth: notebooks take
the solution's source code from it, and reference sets are computed from its solution and
mistake functions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import torch

# The grader's second models (gqa-test, gpt2-mini-test) have 4 layers: few enough for a case
# to sweep every layer, e.g. to grade a `layers=None` default that the big models make costly.
SMALL_MODEL_LAYERS = 4


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong answer, written as code, and what to tell a student who made it."""

    name: str
    message: str
    fn: Callable[..., Any]


@dataclass(frozen=True)
class CachedRun:
    """A case argument: the model's activation cache on `tokens`, made where the case runs
    (reference files store the tokens, not the cache).

    scales: multiply these cached activations (hook name -> factor) after the run. A hidden
    case can use it to make a cached output disagree with the inputs it is recomputed from, so
    that copying the cached answer fails.
    """

    tokens: torch.Tensor
    scales: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class TrainedRun:
    """A case argument: one of the course's committed training runs ("How induction heads
    form"; `readheads.formation.load_course_run`), loaded where the case runs, with only the
    checkpoints at these indices (all: None)."""

    name: str
    checkpoints: tuple[int, ...] | None = None


@dataclass(frozen=True)
class TrainedCheckpoint:
    """A case argument: the attention-only model of a committed run after `step` steps."""

    name: str
    step: int


@dataclass(frozen=True)
class Exercise:
    """One graded function.

    Attributes:
        solution: the reference implementation; the student defines a function of the same
            name (``solution.__name__``), which is what `check` looks up.
        output_dims: names of the output's dimensions, for shape messages. An exercise that
            returns several tensors gives a dict {output name: dims}, in the order of the
            tuple the function returns.
        make_cases: builds keyword arguments for each test case from a seeded
            ``torch.Generator`` (pure exercises: ``make_cases(generator)``) or from the model
            and a generator (``make_cases(model, generator)``). Arguments may be tensors,
            plain values (int, float, str, bool, lists of them), the model itself, a
            `CachedRun`, a `TrainedRun` or a `TrainedCheckpoint`. Case 0 is the visible check, the others are hidden tests; a grader
            with its own seed gets other hidden cases of the same kinds. Hidden cases should
            vary every argument and the batch size.
        inputs: a sentence describing the inputs, for the manifest.
        atol, rtol: tolerance (as in ``torch.isclose``) that holds across CPU/CUDA and
            equivalent formulations.
        mistakes: known wrong answers, recognised by comparison with their outputs.
        needs_model: whether references depend on the model (stored per weight fingerprint).
        points: what its nbgrader check cell is worth.
        answered_by: the course library's functions that compute this answer (dotted names,
            e.g. "readheads.ioi.ioi_prompts"): the sealed grader's worker has them removed
            while this exercise's chapter is graded (later chapters may use them).
        equivalent_mutants: mutants of the solution that no legal input tells apart from it,
            {mutated line as `python -m autograder mutants` prints it: why} (see
            authoring/mutants.py).
    """

    solution: Callable[..., Any]
    output_dims: tuple[str, ...] | dict[str, tuple[str, ...]]
    make_cases: Callable[..., list[dict[str, Any]]]
    inputs: str
    atol: float
    rtol: float
    mistakes: tuple[Mistake, ...] = ()
    needs_model: bool = False
    points: int = 1
    answered_by: tuple[str, ...] = ()
    equivalent_mutants: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.solution.__name__

    @property
    def outputs(self) -> dict[str, tuple[str, ...]]:
        """{output name: dims}; a single output is called "output"."""
        if isinstance(self.output_dims, dict):
            return dict(self.output_dims)
        return {"output": tuple(self.output_dims)}
