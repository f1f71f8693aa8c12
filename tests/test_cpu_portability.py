"""The course does not depend on the CPU's vector path (AVX-512, AVX2, plain): torch rounds
seeded draws, softmax and matmuls differently on each, so the committed references must stay
in sync and students' checks must pass wherever the last bits of a computation differ."""

import dataclasses
import os
import shutil
import subprocess
import sys

import pytest
import torch

from autograder import references
from autograder.authoring import registry
from autograder.authoring.spec import Mistake
from autograder.authoring.sync import references_out_of_sync
from autograder.check import verify
from autograder.references import ReferenceSet

from .conftest import ROOT, model_key_on_plain_cpu_path

PURE = [e for chapter in registry.chapters() for e in registry.exercises(chapter) if not e.needs_model]
CHAPTER = "ch1_attention"


def jiggle(value, generator):
    """`value` with the last bits of its floating-point entries changed (a few ulps), as
    another CPU's kernels would round it. Short binary fractions (multiples of 1/1024: small
    integers, quarters) stay as they are: the cases at a boundary (a score of exactly 0, tied
    accuracies) are drawn from them on purpose, and every CPU sums and multiplies them exactly."""
    if not (isinstance(value, torch.Tensor) and value.is_floating_point()):
        return value
    ulps = torch.randint(-4, 5, value.shape, generator=generator).to(value.dtype)
    exact = (value * 1024 == (value * 1024).round()) | ~torch.isfinite(value)
    return torch.where(exact, value, value * (1 + ulps * torch.finfo(value.dtype).eps))


@pytest.mark.parametrize("exercise", PURE, ids=lambda e: e.id)
def test_checks_pass_when_the_last_bits_of_inputs_and_outputs_differ(exercise):
    generator = torch.Generator().manual_seed(0)

    def rounded_elsewhere(**kwargs):
        answer = exercise.solution(**{k: jiggle(v, generator) for k, v in kwargs.items()})
        return jiggle(answer, generator)

    for hidden in (False, True):
        assert "passed" in verify(exercise.id, function=rounded_elsewhere, hidden=hidden)


@pytest.mark.parametrize("capability", ["default", "avx2"])
def test_pure_references_are_in_sync_on_other_cpu_vector_paths(capability):
    """ATEN_CPU_CAPABILITY forces torch onto a lower vector path than this CPU's best."""
    code = ("import torch; from autograder.authoring.sync import references_out_of_sync as s; "
            "print(torch.backends.cpu.get_cpu_capability()); "
            "print([p for p in s([]) if 'stale' not in p])")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    used, problems = run.stdout.strip().splitlines()[-2:]
    assert used == capability.upper() and problems == "[]", run.stdout


def test_a_changed_way_of_drawing_inputs_is_detected(monkeypatch):
    module = registry.chapter_module(CHAPTER)
    exercise = registry.find("apply_causal_mask")[1]

    def scaled_cases(generator):  # a real change: inputs 0.1% larger than committed
        return [{k: v * 1.001 for k, v in case.items()} for case in exercise.make_cases(generator)]

    changed = [e if e is not exercise else dataclasses.replace(e, make_cases=scaled_cases)
               for e in module.EXERCISES]
    monkeypatch.setattr(module, "EXERCISES", changed)
    problems = [p for p in references_out_of_sync([]) if "pure.safetensors:" in p]
    assert any("apply_causal_mask/0/argument/scores is not reproduced" in p for p in problems)


def _committed_without(tmp_path, monkeypatch, exercise_id=None, mistake=None):
    """A copy of the committed references (and index), without one mistake of case 0 of one
    exercise, in place of the real ones."""
    shutil.copy(references.COMMITTED_DIR / "index.json", tmp_path / "index.json")
    for chapter in registry.chapters():
        refs = ReferenceSet.load(references.COMMITTED_DIR / chapter / "pure.safetensors")
        if exercise_id in refs.exercises:
            del refs.exercises[exercise_id].cases[0].mistakes[mistake]
        refs.save(tmp_path / chapter)
    monkeypatch.setattr(references, "COMMITTED_DIR", tmp_path)


def test_a_mistake_missing_from_the_committed_file_is_reported(tmp_path, monkeypatch):
    _committed_without(tmp_path, monkeypatch, "attention_scores", "no_scale")
    problems = references_out_of_sync([])
    assert any("attention_scores/0/mistake/no_scale is missing from the committed file" in p
               for p in problems), problems


def test_a_mistake_kept_or_dropped_by_a_hair_is_not_reported(tmp_path, monkeypatch):
    """A mistake 1.5 tolerances from the solution is kept by this build; a CPU that rounds it
    just under 1 would drop it. Neither is a real change."""
    _committed_without(tmp_path, monkeypatch)
    module = registry.chapter_module(CHAPTER)
    exercise = registry.find("attention_scores")[1]

    def a_hair_off(q, k):
        right = exercise.solution(q, k)
        return right + 1.5 * (exercise.atol + exercise.rtol * right.abs()) * right.sign()

    hair = Mistake("hair", "is 1.5 tolerances off", a_hair_off)
    changed = [e if e is not exercise else dataclasses.replace(e, mistakes=e.mistakes + (hair,))
               for e in module.EXERCISES]
    monkeypatch.setattr(module, "EXERCISES", changed)
    problems = references_out_of_sync([])
    assert not any("hair" in p for p in problems), problems
    assert problems == [], problems


@pytest.mark.slow
def test_the_random_test_model_has_the_same_weights_on_every_vector_path(gpt2_test, tmp_path):
    """Its fingerprint picks its references: it must not depend on how this CPU rounds."""
    assert model_key_on_plain_cpu_path("gpt2-test", tmp_path) == gpt2_test.course_info.key
