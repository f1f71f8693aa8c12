"""Prove the committed reference tensors are what the solutions produce today."""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from . import references, registry


def _differences(chapter: str, model, key: str) -> list[str]:
    path = references.COMMITTED_DIR / chapter / f"{key}.safetensors"
    if not path.is_file():
        return [f"{path} is missing"]
    committed = load_file(str(path))
    fresh, manifest = references.build(chapter, model)
    problems = []
    if set(committed) != set(fresh):
        problems.append(f"{path}: tensor names differ ({sorted(set(committed) ^ set(fresh))[:5]})")
    entries = manifest["exercises"]
    for name in sorted(set(committed) & set(fresh)):
        exercise = entries[name.split("/")[0]]
        # Inputs are seeded: they must match exactly. Outputs may differ by rounding across
        # CPUs, far less than the exercise's tolerance.
        exact = "/input/" in name
        atol, rtol = (0.0, 0.0) if exact else (exercise["atol"] / 10, exercise["rtol"] / 10)
        a, b = committed[name], fresh[name]
        if a.shape != b.shape or not torch.allclose(a, b, atol=atol, rtol=rtol):
            problems.append(f"{path}: {name} is not reproduced by the solutions")
    return problems


def references_out_of_sync(model_names) -> list[str]:
    from readheads import load_model

    problems = []
    keys = {references.PURE_KEY}
    for chapter in registry.CHAPTERS:
        problems += _differences(chapter, None, references.PURE_KEY)
    for name in model_names:
        model = load_model(name, device="cpu", quiet=True)
        keys.add(model.course_info.key)
        for chapter in registry.CHAPTERS:
            problems += _differences(chapter, model, model.course_info.key)
    for path in sorted(references.COMMITTED_DIR.glob("*/*.safetensors")):
        if path.stem not in keys or path.parent.name not in registry.CHAPTERS:
            problems.append(f"{path} is stale: no current model or chapter produces it")
    return problems
