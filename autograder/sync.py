"""Prove the committed reference tensors are what the solutions produce today, on any CPU.

Floating-point kernels (seeded normal draws, softmax, matmul) round differently on different
CPU vector paths (AVX-512, AVX2, plain), so nothing here demands bit-exact equality:

- stored inputs must be regenerated within `INPUT_TOLERANCE`: seeded normal draws differ by up
  to ~1.4e-6 between torch's vector paths (measured: AVX-512 vs "default"), while any real
  change to how inputs are drawn changes them by the order of their scale (~1);
- outputs (expected and mistakes) are recomputed on the *committed* inputs, so input rounding
  is not amplified, and must agree within a tenth of the exercise's tolerance;
- a mistake that is kept in one build and dropped in the other is only reported when the
  keep/drop decision was clear on both sides (see `BORDERLINE`).
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file

from . import references, registry
from .compare import distinguishability

INPUT_TOLERANCE = dict(atol=1e-5, rtol=1e-5)
# A mistake whose distinguishability (see compare.distinguishability) lies in this range sits
# so close to the keep/drop threshold (1) that rounding may decide it.
BORDERLINE = (0.5, 2.0)


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    return (a.shape == b.shape and a.dtype == b.dtype
            and torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


def _differences(chapter: str, model, key: str) -> list[str]:
    path = references.COMMITTED_DIR / chapter / f"{key}.safetensors"
    if not path.is_file():
        return [f"{path} is missing"]
    committed = load_file(str(path))
    fresh, manifest = references.build(chapter, model)
    problems = []
    for name in sorted(set(committed) & set(fresh)):
        if "/input/" in name and not _close(committed[name], fresh[name], **INPUT_TOLERANCE):
            problems.append(f"{path}: {name} is not reproduced by the solutions")
    # Outputs: recompute on the committed inputs, so input rounding is not amplified.
    if model is None:
        stored = (committed, references.read_manifest(path))
        fresh, manifest = references.build(chapter, None, stored=stored)
    exercises = {e.id: e for e in registry.exercises(chapter)}
    for name in sorted(set(committed) | set(fresh)):
        if "/input/" in name:
            continue
        entry = manifest["exercises"][name.split("/")[0]]
        if name in committed and name in fresh:
            atol, rtol = entry["atol"] / 10, entry["rtol"] / 10
            if not _close(committed[name], fresh[name], atol, rtol):
                problems.append(f"{path}: {name} is not reproduced by the solutions")
        elif not _borderline_mistake(name, exercises[name.split("/")[0]], manifest, committed, model):
            side = "committed only" if name in committed else "missing from the committed file"
            problems.append(f"{path}: {name} is {side} (tensor names differ)")
    return problems


def _borderline_mistake(name: str, exercise, manifest: dict, committed: dict, model) -> bool:
    """Whether a mistake present in only one build was kept or dropped by a hair (the same
    decision as `references.build`, with its margin)."""
    _, index, kind, *rest = name.split("/")
    if kind != "mistake":
        return False
    if model is None:
        kwargs = references.stored_case(committed, manifest["exercises"][exercise.id],
                                        exercise.id, int(index))
    else:
        kwargs = exercise.make_cases(model)[int(index)]
    seen = [exercise.solution(**kwargs)]
    for mistake in exercise.mistakes:
        wrong = mistake.fn(**kwargs)
        margin = distinguishability(wrong, seen, exercise.atol, exercise.rtol)
        if mistake.name == rest[0]:
            return BORDERLINE[0] < margin < BORDERLINE[1]
        if margin > 1:
            seen.append(wrong)
    return False


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
