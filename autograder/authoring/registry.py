"""The chapters (from solutions/chapters.json) and the exercises their modules declare."""

from __future__ import annotations

import importlib
import importlib.util
import json
from functools import cache
from pathlib import Path
from types import ModuleType

from .spec import Exercise

CHAPTER_LIST = Path(importlib.util.find_spec("solutions").origin).parent / "chapters.json"


@cache
def chapter_list() -> tuple[dict, ...]:
    """Each chapter's id, number, title and summary, in course order."""
    return tuple(json.loads(CHAPTER_LIST.read_text())["chapters"])


def chapters() -> tuple[str, ...]:
    return tuple(chapter["id"] for chapter in chapter_list())


def chapter_number(chapter: str) -> str:
    """What the course calls a chapter: "Chapter 2b" has number "2b"."""
    return next(c["number"] for c in chapter_list() if c["id"] == chapter)


def chapter_module(chapter: str) -> ModuleType:
    if chapter not in chapters():
        raise KeyError(f"Unknown chapter {chapter!r}; chapters are {', '.join(chapters())}")
    return importlib.import_module(f"solutions.{chapter}")


def exercises(chapter: str) -> list[Exercise]:
    return list(chapter_module(chapter).EXERCISES)


def find(exercise_id: str) -> tuple[str, Exercise]:
    """The chapter and declaration of an exercise, by id (its function's name)."""
    for chapter in chapters():
        for exercise in exercises(chapter):
            if exercise.id == exercise_id:
                return chapter, exercise
    known = ", ".join(e.id for c in chapters() for e in exercises(c))
    raise KeyError(f"There is no exercise called {exercise_id!r}. Exercises: {known}")


def setup_code(chapter: str) -> str:
    """The chapter's set-up cell (tag "setup" in its master notebook): the imports every
    answer may use, which the sealed grader runs before a student's code."""
    import jupytext

    master = Path(__file__).resolve().parents[2] / "exercises" / "master" / f"{chapter}.py"
    cells = [c.source for c in jupytext.read(master).cells if "setup" in c.metadata.get("tags", [])]
    return "\n\n".join(cells)


def index() -> dict:
    """The exercise index the runtime reads (autograder/references/index.json)."""
    return {"chapters": list(chapters()),
            "setup": {c: setup_code(c) for c in chapters()},
            "exercises": {e.id: {"chapter": c, "needs": ["model"] if e.needs_model else [],
                                 "points": e.points, "answered_by": list(e.answered_by)}
                          for c in chapters() for e in exercises(c)}}
