"""Every check passes the solution and fails the stub and each known mistake, with the right
diagnosis, on both course models with committed references; and the check's own behaviour:
it finds functions by name, reports errors, and fails answers whose side effects would spoil
later work (inputs or the cache edited in place, hooks left on the model, weights changed)."""

import ast
import inspect
import subprocess
import sys

import pytest
import torch

from autograder import CheckFailed, check
from autograder.authoring import registry
from autograder.check import load_references, verify
from autograder.compare import judge
from autograder.running import Outcome

from .conftest import ROOT

ALL = [e for chapter in registry.chapters() for e in registry.exercises(chapter)]
PURE = [e for e in ALL if not e.needs_model]
MODEL = [e for e in ALL if e.needs_model]


def stub(*args, **kwargs):
    raise NotImplementedError()


def solution(exercise_id):
    return registry.find(exercise_id)[1].solution


def test_exercise_ids_are_unique_across_chapters():
    assert len({e.id for e in ALL}) == len(ALL)


@pytest.mark.parametrize("chapter", registry.chapters())
def test_solutions_have_markers_docstrings_and_only_notebook_names(chapter):
    """A solution body may use the names its notebook's set-up cell imports and the earlier
    solutions of its chapter only: the sealed grader runs nothing else before a student's
    answers."""
    setup = ast.parse(registry.setup_code(chapter))
    allowed = {(alias.asname or alias.name).split(".")[0] for node in setup.body
               if isinstance(node, (ast.Import, ast.ImportFrom)) for alias in node.names}
    exercises = registry.exercises(chapter)
    module = registry.chapter_module(chapter)
    for index, exercise in enumerate(exercises):
        fn = exercise.solution
        source = inspect.getsource(fn)
        assert "### BEGIN SOLUTION" in source and "### END SOLUTION" in source, fn.__name__
        assert fn.__doc__ and len(fn.__doc__) > 40, fn.__name__
        module_names = {n.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Name)
                        and n.id in vars(module) and not n.id.startswith("__")}
        unknown = module_names - allowed - {fn.__name__} - {e.id for e in exercises[:index]}
        assert not unknown, f"{fn.__name__} uses {sorted(unknown)}"


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
    # The visible case only: that the solution reproduces every case, hidden ones included,
    # is test_references' sync check (to a tenth of the tolerance), and the nbgrader test
    # grades the solution on fresh hidden cases.
    assert "passed" in verify(exercise.id, function=exercise.solution, model=course_model)
    for hidden in (False, True):
        with pytest.raises(CheckFailed, match="not implemented yet"):
            check(exercise.id, function=stub, model=course_model, hidden=hidden)


@pytest.mark.parametrize("which", ["smollm2", "gpt2_test"])
def test_model_mistakes_are_diagnosed_on_every_case_that_keeps_them(which, request):
    """Every mistake a model's references keep is named, with its message, on every case that
    keeps it (its stored output judged as an answer; the sync check proves the mistake's code
    still gives that output, `test_ch1_model_mistakes_are_diagnosed_when_run` runs some)."""
    model = request.getfixturevalue(which)
    for chapter in registry.chapters():
        for exercise in load_references(chapter, {"model": model}).exercises.values():
            names = list(exercise.outputs)
            for index, case in enumerate(exercise.cases):
                for mistake, outputs in case.mistakes.items():
                    answer = outputs[names[0]] if len(names) == 1 else tuple(outputs[n] for n in names)
                    verdict = judge(Outcome(answer), exercise, case, "cpu") or "passed"
                    assert exercise.mistake_messages[mistake] in verdict, (exercise.id, index, mistake)


def test_ch1_model_mistakes_are_diagnosed_when_run(smollm2, gpt2_test):
    """Chapter 1's model mistakes, run through `check` as a student's answer would be: each
    one SmolLM2's references keep is caught with its message on some case; on GPT-2 some
    coincide with the solution (no rotary, one KV head per query head)."""
    for exercise in (e for e in MODEL if registry.find(e.id)[0] == "ch1_attention"):
        kept = load_references("ch1_attention", {"model": smollm2}).exercises[exercise.id].mistake_messages
        for mistake in (m for m in exercise.mistakes if m.name in kept):
            for hidden in (False, True):  # some mistakes only show on one of the cases
                try:
                    verify(exercise.id, function=mistake.fn, model=smollm2, hidden=hidden)
                except CheckFailed as failure:
                    # Where its answer equals an earlier mistake's, the earlier message is given.
                    if mistake.message in str(failure):
                        break
            else:
                pytest.fail(f"{exercise.id}: mistake {mistake.name!r} is not diagnosed on any case")
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

    def exits(q, k):
        sys.exit(3)

    with pytest.raises(CheckFailed, match="your function raised SystemExit"):
        check("attention_scores", function=exits)
    assert "passed" in verify("attention_pattern", function=lambda masked_scores: masked_scores.softmax(-1))


def test_in_place_edits_of_inputs_fail_and_cannot_spoil_the_references():
    def masks_in_place(scores):  # the right values, but the caller's tensor is changed
        n = scores.shape[-1]
        return scores.masked_fill_(torch.ones(n, n, dtype=torch.bool).triu(1), float("-inf"))

    with pytest.raises(CheckFailed, match="changed its argument `scores` in place"):
        check("apply_causal_mask", function=masks_in_place)

    def destructive(q, k):
        q.zero_()
        k.zero_()
        return torch.zeros(1)

    with pytest.raises(CheckFailed):
        check("attention_scores", function=destructive)
    assert "passed" in verify("attention_scores", function=solution("attention_scores"))


def test_side_effects_on_the_model_fail_that_check_only(smollm2):
    right = solution("layer_attention_output")

    def leaves_a_hook(model, cache, layer):
        model.blocks[0].attn.hook_pattern.add_hook(lambda pattern, hook: pattern * 0)
        return right(model, cache, layer)

    with pytest.raises(CheckFailed, match="left a hook on the model"):
        check("layer_attention_output", function=leaves_a_hook, model=smollm2)
    assert "passed" in verify("head_type_scores", function=solution("head_type_scores"),
                              model=smollm2)  # the hook was removed

    def edits_the_cache(model, cache, layer):
        cache[f"blocks.{layer}.attn.hook_v"].mul_(1.0)
        return right(model, cache, layer)

    with pytest.raises(CheckFailed, match="changed the activation cache `cache` in place"):
        check("layer_attention_output", function=edits_the_cache, model=smollm2)
    assert "passed" in verify("layer_attention_output", function=right, model=smollm2, hidden=True)

    def copies_the_cached_output(model, cache, layer):
        return cache[f"blocks.{layer}.hook_attn_out"]

    with pytest.raises(CheckFailed, match="cached attention output"):
        check("layer_attention_output", function=copies_the_cached_output, model=smollm2,
              hidden=True)


def test_a_setting_left_switched_on_fails_that_check_and_is_switched_back(gpt2_test):
    right = solution("edge_attribution_logits")

    def leaves_split_inputs_on(model, clean, corrupted, metric):
        model.set_use_split_qkv_input(True)
        return right(model, clean, corrupted, metric)

    with pytest.raises(CheckFailed, match="left model.cfg.use_split_qkv_input switched to True"):
        check("edge_attribution_logits", function=leaves_split_inputs_on, model=gpt2_test)
    assert gpt2_test.cfg.use_split_qkv_input is False
    assert "passed" in verify("edge_attribution_logits", function=right, model=gpt2_test)


def test_changed_weights_fail_the_check(gpt2_test):
    right = solution("head_type_scores")
    original = gpt2_test.blocks[0].attn.W_Q.clone()

    def scales_weights(model, prompt):
        model.blocks[0].attn.W_Q.mul_(1.0)
        return right(model, prompt)

    try:
        with pytest.raises(CheckFailed, match="changed the model's weights"):
            check("head_type_scores", function=scales_weights, model=gpt2_test)
    finally:
        assert torch.equal(gpt2_test.blocks[0].attn.W_Q, original)


def test_code_right_only_for_batch_size_1_fails():
    """The cases of an exercise vary the batch size, so code that only handles one row fails."""
    cases = load_references("ch1_attention", {}).exercises["attention_scores"].cases
    assert len({c.arguments["q"].value.shape[0] for c in cases}) > 1

    def first_row_only(q, k):
        return solution("attention_scores")(q[:1], k[:1]).expand(q.shape[0], -1, -1, -1)

    failures = 0
    for hidden in (False, True):
        try:
            verify("attention_scores", function=first_row_only, hidden=hidden)
        except CheckFailed:
            failures += 1
    assert failures >= 1


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


def test_the_runtime_never_imports_the_solutions_or_the_authoring_tools(smollm2):
    """A student's kernel: load the model, check a pure and a model exercise."""
    code = """
import sys, torch
from autograder import check
from readheads import load_model
model = load_model("smollm2-135m", device="cpu", quiet=True)
def attention_pattern(masked_scores):
    return masked_scores.softmax(-1)
check("attention_pattern")
try:
    check("head_type_scores", model=model, function=lambda model, prompt: torch.zeros(1))
except AssertionError as failure:
    print("failed as expected:", failure)
print(sorted(m for m in sys.modules if m.startswith(("solutions", "autograder"))))
"""
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT / "tests", capture_output=True,
                         text=True, check=True)
    loaded = run.stdout.strip().splitlines()[-1]
    assert "failed as expected" in run.stdout and "attention_pattern passed" in run.stdout
    assert "solutions" not in loaded and "authoring" not in loaded, loaded
