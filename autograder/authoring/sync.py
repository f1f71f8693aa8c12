"""Prove the committed reference sets are what the solutions produce today, on any CPU.

Floating-point kernels (seeded normal draws, softmax, matmul) round differently on different
CPU vector paths (AVX-512, AVX2, plain), so nothing here demands bit-exact equality:

- stored tensor arguments must be regenerated within `INPUT_TOLERANCE`, the absolute part
  scaled by the tensor's largest magnitude where that is over 1: seeded normal draws differ by
  up to ~1.4e-6 between torch's vector paths (measured: AVX-512 vs "default"), and arguments
  computed from a model's activations (e.g. an SAE's b_dec, a mean of residual streams with
  norms in the thousands) by a few 1e-7 of their scale, while any real change to how inputs
  are drawn changes them by the order of their scale; plain arguments must be equal;
- outputs (expected and mistakes) are recomputed on the *committed* arguments, so input
  rounding is not amplified; expected outputs must agree within a tenth of the exercise's
  tolerance, mistakes (which only name a wrong answer) within the tolerance itself: some
  amplify rounding far beyond the solution's (Chapter 5's unmasked edge attribution reaches
  116 where the solution stays under 4, and one of its values moved by 3e-4 between builds);
- a mistake that is kept in one build and dropped in the other is only reported when the
  keep/drop decision was clear on both sides (see `BORDERLINE`).
"""

from __future__ import annotations

import json
import random

import torch

from .. import references
from ..references import ReferenceSet
from ..running import materialize
from . import registry
from .build import build, draw_cases, outputs_of, separation
from .digest import reference_digest

INPUT_TOLERANCE = dict(atol=1e-5, rtol=1e-5)
# A mistake whose separation from earlier outputs (in tolerances) lies in this range sits so
# close to the keep/drop threshold (1) that rounding may decide it.
BORDERLINE = (0.5, 2.0)


def _close(a: torch.Tensor, b: torch.Tensor, atol: float, rtol: float) -> bool:
    return (a.shape == b.shape and a.dtype == b.dtype
            and torch.allclose(a, b, atol=atol, rtol=rtol, equal_nan=True))


def differences(committed: ReferenceSet, model) -> list[str]:
    """How `committed` differs from what the solutions give now."""
    path, problems = committed.path, []
    declared = {e.id: e for e in registry.exercises(committed.chapter)
                if e.needs_model == (model is not None)}
    if set(declared) != set(committed.exercises):
        return [f"{path}: exercises differ: {sorted(set(declared) ^ set(committed.exercises))}"]
    for exercise_id, exercise in declared.items():
        old, drawn = committed.exercises[exercise_id], draw_cases(committed.chapter, exercise, model)
        if len(drawn) != len(old.cases):
            problems.append(f"{path}: {exercise_id} has {len(old.cases)} cases, not {len(drawn)}")
            continue
        for index, (case, arguments) in enumerate(zip(old.cases, drawn)):
            problems += [f"{path}: {exercise_id}/{index}/argument/{name} is not reproduced by "
                         "the solutions" for name in _argument_differences(case.arguments, arguments)]
        declaration = (exercise.inputs, {n: list(d) for n, d in exercise.outputs.items()},
                       exercise.atol, exercise.rtol, exercise.points)
        if (old.description, old.outputs, old.atol, old.rtol, old.points) != declaration:
            problems.append(f"{path}: {exercise_id}: description, outputs, tolerance or points "
                            "differ from the declaration")
    if problems:
        return problems
    # Outputs: recompute on the committed arguments, so input rounding is not amplified.
    recomputed = build(committed.chapter, model, stored=committed)
    for exercise_id, fresh in recomputed.exercises.items():
        old = committed.exercises[exercise_id]
        atol, rtol = old.atol / 10, old.rtol / 10
        for index, (a, b) in enumerate(zip(old.cases, fresh.cases)):
            prefix = f"{path}: {exercise_id}/{index}"
            for name in a.expected:
                if not _close(a.expected[name], b.expected[name], atol, rtol):
                    problems.append(f"{prefix}/expected/{name} is not reproduced by the solutions")
            for mistake in sorted(set(a.mistakes) | set(b.mistakes)):
                if mistake in a.mistakes and mistake in b.mistakes:
                    if not all(_close(a.mistakes[mistake][n], b.mistakes[mistake][n], old.atol, old.rtol)
                               for n in a.mistakes[mistake]):
                        problems.append(f"{prefix}/mistake/{mistake} is not reproduced by the "
                                        "solutions")
                elif not _borderline(declared[exercise_id], mistake, a.arguments, model):
                    side = "committed only" if mistake in a.mistakes else "missing from the committed file"
                    problems.append(f"{prefix}/mistake/{mistake} is {side} (mistakes differ)")
    return problems


def record_digest(path, digest: dict) -> None:
    """Store `digest` in the manifest of the reference set at `path` (tensors untouched)."""
    manifest_path = path.with_suffix(".json")
    manifest = json.loads(manifest_path.read_text())
    manifest["digest"] = digest
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


def _close_input(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Whether a regenerated input matches the stored one (see the module's docstring)."""
    scale = float(a.abs().max()) if a.is_floating_point() and a.numel() else 1.0
    return _close(a, b, atol=INPUT_TOLERANCE["atol"] * max(1.0, scale), rtol=INPUT_TOLERANCE["rtol"])


def _argument_differences(old: dict, new: dict) -> list[str]:
    if set(old) != set(new):
        return sorted(set(old) ^ set(new))
    different = []
    for name in old:
        a, b = old[name], new[name]
        same = a.kind == b.kind and a.scales == b.scales
        if same and a.kind in ("tensor", "cache"):
            same = _close_input(a.value, b.value)
        elif same and a.kind == "record":
            old_fields, new_fields = a.value["fields"], b.value["fields"]
            same = (a.value["type"] == b.value["type"] and list(old_fields) == list(new_fields)
                    and all(_close_input(old_fields[f], new_fields[f]) for f in old_fields))
        elif same:
            same = a.value == b.value
        if not same:
            different.append(name)
    return different


def _borderline(exercise, mistake_name: str, arguments: dict, model) -> bool:
    """Whether a mistake present in only one build was kept or dropped by a hair (the same
    decision as `build`, with its margin)."""
    caches = {}
    seen = [outputs_of(exercise, exercise.solution(**materialize(arguments, model, caches)))]
    for mistake in exercise.mistakes:
        wrong = outputs_of(exercise, mistake.fn(**materialize(arguments, model, caches)))
        margin = separation(exercise, wrong, seen)
        if mistake.name == mistake_name:
            return BORDERLINE[0] < margin < BORDERLINE[1]
        if margin > 1:
            seen.append(wrong)
    return False


def references_out_of_sync(model_names, *, everything: bool = True, sample: int = 2,
                           seed: int | None = None, record: bool = False, log=None) -> list[str]:
    """Every difference between the committed reference sets (and exercise index) and what
    the solutions give now, for the pure exercises and each named model.

    everything: recompute every set. Otherwise recompute the sets whose stored digest differs
    from today's (`digest.reference_digest`: a change to anything their tensors depend on)
    and `sample` of the others, drawn with `seed` (random when None; `log` is told it), so a
    dependency the digest misses is still caught by some run.
    record: store today's digest in the manifest of each recomputed set found in sync (its
    tensors are left as they are).
    """
    from readheads import load_model

    problems, keys, unchanged, stored = [], {references.PURE_KEY}, [], []
    models = [None] + [load_model(name, device="cpu", quiet=True) for name in model_names]
    for model in models:
        key = references.reference_key({"model": model} if model is not None else {})
        keys.add(key)
        for chapter in registry.chapters():
            path = references.COMMITTED_DIR / chapter / f"{key}.safetensors"
            if not path.is_file():
                problems.append(f"{path} is missing")
                continue
            try:
                committed = ReferenceSet.load(path)
            except ValueError as error:
                problems.append(str(error))
                continue
            if committed.digest != reference_digest(chapter, key):
                why = "no digest stored" if committed.digest is None else "its digest changed"
                stored.append((committed, model, why))
            elif everything:
                stored.append((committed, model, "all"))
            else:
                unchanged.append((committed, model))
    drawn = []
    if unchanged and sample:
        seed = random.randrange(2**31) if seed is None else seed
        drawn = random.Random(seed).sample(unchanged, min(sample, len(unchanged)))
        stored += [(committed, model, f"sampled with seed {seed}") for committed, model in drawn]
    for committed, model, why in stored:
        if log:
            log(f"recomputing {committed.path.relative_to(references.COMMITTED_DIR)} ({why})")
        with torch.no_grad():
            found = differences(committed, model)
        problems += found
        current = reference_digest(committed.chapter, committed.key)
        if record and not found and committed.digest != current:
            record_digest(committed.path, current)
            if log:
                log(f"  in sync: recorded today's digest in {committed.path.with_suffix('.json').name}")
    if log and not everything:
        log(f"{len(unchanged) - len(drawn)} reference sets unchanged by their digest, not recomputed")
    for path in sorted(references.COMMITTED_DIR.glob("*/*.safetensors")):
        if path.stem not in keys or path.parent.name not in registry.chapters():
            problems.append(f"{path} is stale: no current model or chapter produces it")
    if json.loads(references.COMMITTED_DIR.joinpath("index.json").read_text()) != registry.index():
        problems.append(f"{references.COMMITTED_DIR / 'index.json'} differs from the declarations")
    return problems
