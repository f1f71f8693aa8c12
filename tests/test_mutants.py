"""The mutation tester (autograder/authoring/mutants.py): it makes the mutants it says, kills
those a case fails, and reports a survivor unless it is recorded as equivalent."""

import dataclasses

from autograder.authoring import mutants, registry


def _exercise(exercise_id):
    chapter, exercise = registry.find(exercise_id)
    return chapter, exercise, registry.chapter_module(chapter)


def test_mutants_change_one_thing_inside_the_solution_block_only():
    _, exercise, module = _exercise("attention_scores")
    lines = {m.line for m in mutants.mutants(exercise, module)}
    assert "return torch.einsum('bqhd,bkhd->bhqk', q, k) * math.sqrt(d_head)" in lines  # operator
    assert "return torch.einsum('bqhd,bkhd->bhqk', q, k)" in lines  # an operand dropped
    assert "return torch.einsum('bqhd,bkhd->bhkq', q, k) / math.sqrt(d_head)" in lines  # transposed
    assert all("def attention_scores" not in line for line in lines)  # never the signature
    source_lines = [m.diff.splitlines() for m in mutants.mutants(exercise, module)]
    assert all(sum(line.startswith("-") for line in diff) == 1 for diff in source_lines)


def test_a_case_kills_a_mutant_and_an_unrecorded_equivalent_survives():
    chapter, exercise, module = _exercise("apply_causal_mask")
    sets = mutants.case_sets(chapter, model_names=(), seeds=(None,))
    report = mutants.mutation_test(exercise, module, sets)
    assert report.killed == report.counted > 0 and report.equivalent and not report.stale
    forgotten = dataclasses.replace(exercise, equivalent_mutants={})
    report = mutants.mutation_test(forgotten, module, sets)
    assert [m.line for m in report.survivors] == list(exercise.equivalent_mutants)
    assert mutants.score([report]) < 1
    stale = dataclasses.replace(exercise, equivalent_mutants={"no such line": "why"})
    assert mutants.mutation_test(stale, module, sets).stale == ["no such line"]
