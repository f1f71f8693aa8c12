"""Which exercises exist, in which chapter, and what their answers depend on.

Read from ``references/index.json``, which `python -m autograder generate` writes from the
chapter list (solutions/chapters.json) and the exercise declarations. The runtime needs
nothing else to find an exercise: it never imports the solutions.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache

from .references import COMMITTED_DIR

INDEX = COMMITTED_DIR / "index.json"


@dataclass(frozen=True)
class ExerciseInfo:
    id: str
    chapter: str
    needs: tuple[str, ...]  # sources its answers depend on, e.g. ("model",); () for pure
    points: int


@cache
def _index() -> dict:
    return json.loads(INDEX.read_text())


def chapters() -> list[str]:
    return list(_index()["chapters"])


def setup_code(chapter: str) -> str:
    """The imports a chapter's answers may use (its notebook's set-up cell)."""
    return _index()["setup"][chapter]


def exercises(chapter: str | None = None) -> list[ExerciseInfo]:
    return [ExerciseInfo(i, e["chapter"], tuple(e["needs"]), e["points"])
            for i, e in _index()["exercises"].items() if chapter in (None, e["chapter"])]


def withheld(chapters=None) -> dict[str, str]:
    """The library functions that answer exercises of `chapters` (default: all), by dotted
    name, each with the exercise it answers."""
    return {name: e["chapter"] + "." + i for i, e in _index()["exercises"].items()
            if chapters is None or e["chapter"] in chapters for name in e["answered_by"]}


def find(exercise_id: str) -> ExerciseInfo:
    for exercise in exercises():
        if exercise.id == exercise_id:
            return exercise
    known = ", ".join(e.id for e in exercises())
    raise KeyError(f"There is no exercise called {exercise_id!r}. Exercises: {known}")
