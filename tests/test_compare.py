"""The diagnostics: each kind of wrong answer gets its own plain message."""

import pytest
import torch

from autograder.compare import diagnose

EXPECTED = torch.arange(24, dtype=torch.float32).reshape(2, 3, 4) / 7
DIMS = ("batch", "head", "pos")


def run(answer, expected=EXPECTED, mistakes=None, device="cpu", atol=1e-5, rtol=1e-4):
    return diagnose(answer, expected, dims=DIMS, atol=atol, rtol=rtol, device=torch.device(device),
                    mistakes=mistakes or {})


def test_right_answer_passes_including_equivalent_rounding():
    assert run(EXPECTED.clone()) is None
    assert run(EXPECTED * (1 + 1e-6)) is None


def test_value_error_reports_count_and_size_not_the_answer():
    wrong = EXPECTED.clone()
    wrong[0, 0, 1] += 0.5
    message = run(wrong)
    assert "1 of 24 values are wrong" in message and "0.5" in message
    assert str(round(EXPECTED[0, 0, 1].item(), 4)) not in message


def test_shape_message_names_dimensions_and_spots_permutations():
    message = run(EXPECTED.transpose(0, 1))
    assert "wrong shape: got [3, 2, 4], expected [batch=2, head=3, pos=4]" in message
    assert "another order" in message
    assert "another order" not in run(EXPECTED[0])


def test_dtype_and_device_and_type_messages():
    assert "wrong dtype: got torch.float64" in run(EXPECTED.double())
    assert "wrong dtype: got torch.int64" in run(EXPECTED.long())
    assert "wrong device: the answer is on cpu but the inputs were on cuda" in run(EXPECTED, device="cuda")
    assert "returned None" in run(None)
    assert "returned a list" in run(EXPECTED.tolist())


def test_nan_and_inf_are_named():
    nan = EXPECTED.clone()
    nan[1] = float("nan")
    assert "12 of 24 entries are NaN" in run(nan)
    masked = EXPECTED.clone()
    masked[..., -1] = float("-inf")
    assert run(masked.clone(), expected=masked) is None
    unmasked = masked.clone()
    unmasked[0, 0, -1] = -1e9
    assert "1 entries should be -inf" in run(unmasked, expected=masked)


def test_known_mistake_wins_over_generic_message_even_with_another_shape():
    mistakes = {"doubled": ("doubled it", EXPECTED * 2), "summed": ("summed it", EXPECTED.sum(0))}
    assert run(EXPECTED * 2, mistakes=mistakes) == "it looks like you doubled it."
    assert run(EXPECTED.sum(0), mistakes=mistakes) == "it looks like you summed it."
    assert "values are wrong" in run(EXPECTED * 3, mistakes=mistakes)


@pytest.mark.parametrize("scale", [1e-3, 1e-2])
def test_tolerance_boundary(scale):
    answer = EXPECTED + scale
    assert (run(answer, atol=scale * 2, rtol=0) is None) and run(answer, atol=scale / 2, rtol=0)


def wrong_outputs(expected: torch.Tensor) -> dict:
    """Every kind of output a submission can return in place of `expected`, each wrong."""
    flipped = ~expected.bool() if expected.numel() else torch.ones(1, dtype=torch.bool)
    return {"bool": flipped, "int": expected.long() + 1, "float": expected.double() + 1,
            "float of the right dtype": (expected.float() + 1).to(expected.dtype)
            if expected.is_floating_point() else expected.float() + 1,
            "wrong shape": torch.zeros(7, 3), "scalar": torch.tensor(3.0), "tuple": (expected, expected),
            "list": [expected], "None": None, "str": "an answer", "dict": {"output": expected},
            "number": 1.5, "empty": torch.empty(0)}


def test_every_kind_of_wrong_output_gets_a_verdict_for_every_exercise():
    """No output kind crashes the comparison (bool answers once raised in the subtraction that
    measures the error, and nbgrader dropped the whole notebook's grade)."""
    from autograder.references import COMMITTED_DIR, ReferenceSet
    from autograder.compare import judge
    from autograder.running import Outcome

    for path in sorted(COMMITTED_DIR.glob("*/smollm2-*.safetensors")) + sorted(COMMITTED_DIR.glob("*/pure.safetensors")):
        for exercise in ReferenceSet.load(path).exercises.values():
            case = exercise.cases[0]
            expected = case.expected[next(iter(exercise.outputs))]
            for kind, answer in wrong_outputs(expected).items():
                if len(exercise.outputs) > 1 and kind == "tuple":
                    answer = tuple(answer[0] for _ in exercise.outputs)
                verdict = judge(Outcome(answer), exercise, case, "cpu")
                assert isinstance(verdict, str) and verdict, (exercise.id, kind)


def _verdicts(answers):
    """The sealed grader's verdicts for an exercise with two cases, each recording the
    mistake "sign" (the expected values negated), and one answer per case."""
    from autograder.compare import judge
    from autograder.references import Case, ExerciseReferences
    from autograder.running import Outcome

    cases = [Case({}, {"out": EXPECTED + i}, {"sign": {"out": -(EXPECTED + i)}}) for i in range(2)]
    exercise = ExerciseReferences("demo", "", {"out": list(DIMS)}, 1e-5, 1e-4,
                                  {"sign": "flipped the sign"}, cases)
    return [(exercise, case, None, Outcome(answer), judge(Outcome(answer), exercise, case, "cpu"))
            for case, answer in zip(cases, answers)]


def test_a_mistake_is_named_only_where_the_answer_makes_it_on_every_case_that_records_it():
    from autograder.sealed import first_failure

    assert first_failure(_verdicts([-EXPECTED, -(EXPECTED + 1)])) == ("it looks like you flipped the sign.", None)
    # the sign flipped on the first case by chance: the second case's answer is another bug's
    problem, _ = first_failure(_verdicts([-EXPECTED, EXPECTED + 2]))
    assert "flipped the sign" not in problem and "23 of 24 values are wrong" in problem
    problem, _ = first_failure(_verdicts([-EXPECTED, EXPECTED + 1]))  # right on the second case
    assert "flipped the sign" not in problem
    assert first_failure(_verdicts([EXPECTED, EXPECTED + 1])) is None
