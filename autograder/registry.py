"""Which chapters exist and where their exercises are declared."""

from __future__ import annotations

import importlib
from types import ModuleType

from .spec import Exercise

CHAPTERS = ("ch1_attention", "ch2_induction")


def chapter_module(chapter: str) -> ModuleType:
    if chapter not in CHAPTERS:
        raise KeyError(f"Unknown chapter {chapter!r}; chapters are {', '.join(CHAPTERS)}")
    return importlib.import_module(f"solutions.{chapter}")


def exercises(chapter: str) -> list[Exercise]:
    return list(chapter_module(chapter).EXERCISES)


def find(exercise_id: str) -> tuple[str, Exercise]:
    """The chapter and declaration of an exercise, by id (its function's name)."""
    for chapter in CHAPTERS:
        for exercise in exercises(chapter):
            if exercise.id == exercise_id:
                return chapter, exercise
    known = ", ".join(e.id for c in CHAPTERS for e in exercises(c))
    raise KeyError(f"There is no exercise called {exercise_id!r}. Exercises: {known}")
