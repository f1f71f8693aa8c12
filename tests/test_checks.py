"""Every check passes the solution and fails the stub and each known mistake, with the right
diagnosis, on both course models with committed references; and the check's own behaviour."""

import pytest
import torch

from autograder import CheckFailed, check, references, registry
from autograder.check import verify

ALL = [e for chapter in registry.CHAPTERS for e in registry.exercises(chapter)]
PURE = [e for e in ALL if not e.needs_model]
MODEL = [e for e in ALL if e.needs_model]


def stub(*args, **kwargs):
    raise NotImplementedError()


def test_exercise_ids_are_unique_across_chapters():
    assert len({e.id for e in ALL}) == len(ALL)


def test_chapter_1_has_8_to_12_graded_exercises():
    assert 8 <= len(registry.exercises("ch1_attention")) <= 12


@pytest.mark.parametrize("exercise", PURE, ids=lambda e: e.id)
@pytest.mark.parametrize("hidden", [False, True])
def test_pure_exercise(exercise, hidden):
    assert "passed" in verify(exercise.id, function=exercise.solution, hidden=hidden)
    with pytest.raises(CheckFailed, match="not implemented yet"):
        check(exercise.id, function=stub, hidden=hidden)
    for mistake in exercise.mistakes:
        with pytest.raises(CheckFailed) as failure:
            check(exercise.id, function=mistake.fn, hidden=hidden)
        assert mistake.message in str(failure.value), mistake.name


@pytest.mark.parametrize("exercise", MODEL, ids=lambda e: e.id)
def test_model_exercise(exercise, course_model):
    for hidden in (False, True):
        assert "passed" in verify(exercise.id, function=exercise.solution, model=course_model,
                                 hidden=hidden)
        with pytest.raises(CheckFailed, match="not implemented yet"):
            check(exercise.id, function=stub, model=course_model, hidden=hidden)


def test_model_mistakes_are_diagnosed_where_they_make_a_difference(smollm2, gpt2_test):
    """Every mistake the SmolLM2 references keep is caught, with its message, on at least one
    case; on GPT-2 some coincide with the solution (no rotary, one KV head per query head).
    (test_ch2_solutions.py checks that the important mistakes are kept.)"""
    for exercise in MODEL:
        chapter = registry.find(exercise.id)[0]
        kept = references.load(chapter, smollm2).manifest["exercises"][exercise.id]["mistakes"]
        for mistake in (m for m in exercise.mistakes if m.name in kept):
            messages = []
            for hidden in (False, True):  # some mistakes only show on one of the cases
                try:
                    verify(exercise.id, function=mistake.fn, model=smollm2, hidden=hidden)
                except CheckFailed as failure:
                    messages.append(str(failure))
            assert messages and all(mistake.message in m for m in messages), (exercise.id, mistake.name)
    layer = registry.find("layer_attention_output")[1]
    pre_rotary = next(m.fn for m in layer.mistakes if m.name == "pre_rotary")
    assert "passed" in verify(layer.id, function=pre_rotary, model=gpt2_test)


def test_check_finds_the_function_by_name_in_the_callers_namespace(capsys):
    namespace = {"check": check, "attention_pattern": lambda masked_scores: masked_scores.softmax(-1)}
    exec('check("attention_pattern")', namespace)
    assert "✔ attention_pattern passed (visible case; references: pure" in capsys.readouterr().out
    with pytest.raises(CheckFailed, match="no function called `attention_scores`"):
        exec('check("attention_scores")', {"check": check})


def test_student_errors_are_reported_not_raised():
    def broken(q, k):
        return q @ k  # wrong shapes for matmul

    with pytest.raises(CheckFailed, match="your function raised RuntimeError"):
        check("attention_scores", function=broken)
    assert "passed" in verify("attention_pattern", function=lambda masked_scores: masked_scores.softmax(-1))


def test_in_place_edits_of_inputs_cannot_spoil_the_references():
    def destructive(q, k):
        q.zero_()
        k.zero_()
        return torch.zeros(1)

    with pytest.raises(CheckFailed):
        check("attention_scores", function=destructive)
    solution = registry.find("attention_scores")[1].solution
    assert "passed" in verify("attention_scores", function=solution)


def test_bad_calls_get_clear_errors(smollm2):
    with pytest.raises(KeyError, match="no exercise called 'atention_scores'"):
        check("atention_scores", function=stub)
    with pytest.raises(CheckFailed, match='check\\("head_type_scores", model=model\\)'):
        check("head_type_scores", function=stub)
    with pytest.raises(CheckFailed, match="is a int, not a function"):
        exec('check("attention_scores")', {"check": check, "attention_scores": 3})


def test_failed_check_fails_like_an_assertion_and_renders_briefly():
    with pytest.raises(AssertionError) as failure:
        check("attention_scores", function=stub)
    assert failure.value._render_traceback_() == [f"\x1b[31m✘ {failure.value}\x1b[0m"]
