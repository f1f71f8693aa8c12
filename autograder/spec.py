"""How an exercise is declared: its solution, inputs, tolerance and known mistakes.

Each chapter module in `solutions/` lists its exercises as `Exercise` objects. That module is
the single source of truth: notebooks take the solution's source code from it, and reference
tensors are computed from its solution and mistake functions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Mistake:
    """A plausible wrong answer, written as code, and what to tell a student who made it."""

    name: str
    message: str
    fn: Callable[..., Any]


@dataclass(frozen=True)
class Exercise:
    """One graded function.

    Attributes:
        solution: the reference implementation; the student defines a function of the same
            name (``solution.__name__``), which is what `check` looks up.
        output_dims: names of the output's dimensions, for shape messages.
        make_cases: builds keyword arguments for each test case. Pure exercises get a seeded
            ``torch.Generator`` and return tensors/ints; model exercises get the model and may
            return anything the function takes (the model, a cache...). Case 0 is the visible
            check, the others are hidden tests.
        inputs: a sentence describing the inputs, for the manifest.
        atol, rtol: tolerance (as in ``torch.isclose``) that holds across CPU/CUDA and
            equivalent formulations.
        mistakes: known wrong answers, recognised by comparison with their outputs.
        needs_model: whether references depend on the model (stored per weight fingerprint).
        points: what its nbgrader check cell is worth.
    """

    solution: Callable[..., Any]
    output_dims: tuple[str, ...]
    make_cases: Callable[[Any], list[dict[str, Any]]]
    inputs: str
    atol: float
    rtol: float
    mistakes: tuple[Mistake, ...] = ()
    needs_model: bool = False
    points: int = 1

    @property
    def id(self) -> str:
        return self.solution.__name__
