"""Compare a student's answer with a reference tensor and say, in plain words, what is wrong.

`diagnose` returns None when the answer is right, else one message. It never prints reference
values: only shapes, dtypes, devices, counts and the size of the error.
"""

from __future__ import annotations

import torch


def _shape_text(shape, dims=None) -> str:
    if dims and len(dims) == len(shape):
        return "[" + ", ".join(f"{d}={n}" for d, n in zip(dims, shape)) + "]"
    return str(list(shape))


def close(answer: torch.Tensor, expected: torch.Tensor, atol: float, rtol: float) -> torch.Tensor:
    """Elementwise closeness; equal infinities (a masked -inf) count as close."""
    return torch.isclose(answer.detach().to("cpu", expected.dtype), expected, rtol=rtol, atol=atol)


def matches(answer, expected: torch.Tensor, atol: float, rtol: float) -> bool:
    return (isinstance(answer, torch.Tensor) and answer.shape == expected.shape
            and not answer.dtype.is_complex and bool(close(answer, expected, atol, rtol).all()))


def distinguishability(answer: torch.Tensor, others: list[torch.Tensor], atol: float,
                       rtol: float) -> float:
    """How far `answer` is from the nearest of `others`, in units of the tolerance: the largest
    |answer - other| / (atol + rtol * |other|) over the elements. 1 is the threshold of
    `matches`; 0 for equal elements (also with zero tolerance); inf where shapes differ or
    infinities/NaNs disagree."""
    nearest = float("inf")
    for other in others:
        if answer.shape != other.shape:
            continue
        a, b = answer.detach().to("cpu", torch.float64), other.to(torch.float64)
        gap = ((a - b).abs() / (atol + rtol * b.abs())).masked_fill(a == b, 0.0)
        gap = gap.nan_to_num(nan=float("inf"))
        nearest = min(nearest, gap.max().item() if gap.numel() else 0.0)
    return nearest


def diagnose(answer, expected: torch.Tensor, *, dims, atol: float, rtol: float,
             device: torch.device, mistakes: dict[str, tuple[str, torch.Tensor]]) -> str | None:
    """Why `answer` is not `expected` (None if it is, within atol/rtol).

    mistakes maps a mistake's name to (message, the tensor that mistake produces); an answer
    that matches one gets that message.
    """
    expected_text = _shape_text(expected.shape, dims)
    if answer is None:
        return "your function returned None: did you forget `return`?"
    if not isinstance(answer, torch.Tensor):
        return (f"your function returned a {type(answer).__name__}; expected a torch.Tensor of "
                f"shape {expected_text}")
    for message, wrong in mistakes.values():
        if matches(answer, wrong, atol, rtol):
            return f"it looks like you {message}."
    if answer.shape != expected.shape:
        text = f"wrong shape: got {list(answer.shape)}, expected {expected_text}"
        if sorted(answer.shape) == sorted(expected.shape):
            text += " (the same sizes in another order: check the order of dimensions)"
        return text
    if answer.dtype != expected.dtype:
        return (f"wrong dtype: got {answer.dtype}, expected {expected.dtype} (keep the inputs' "
                f"dtype; avoid .double(), integer division or boolean results)")
    if answer.device.type != torch.device(device).type:
        return (f"wrong device: the answer is on {answer.device} but the inputs were on {device} "
                "(create new tensors with device=<input>.device)")
    wrong = ~close(answer, expected, atol, rtol)
    # In float64 from here: bool and integer answers (masks, counts, choices) have no sign or
    # subtraction of their own.
    answer, expected = answer.detach().cpu().double(), expected.double()
    finite_expected = torch.isfinite(expected)
    bad = ~torch.isfinite(answer) & finite_expected
    if bad.any():
        kinds = "NaN" if torch.isnan(answer[bad]).all() else "NaN or inf"
        return (f"{int(bad.sum())} of {answer.numel()} entries are {kinds} where a finite value "
                "is expected (a softmax over a row that is all -inf? a division by zero?)")
    missing = torch.isinf(expected) & ~(torch.isinf(answer) & (answer.sign() == expected.sign()))
    if missing.any():
        return (f"{int(missing.sum())} entries should be -inf (masked) but are not")
    if not wrong.any():
        return None
    error = (answer - expected)[wrong & finite_expected].abs()
    return (f"{int(wrong.sum())} of {answer.numel()} values are wrong (largest error "
            f"{error.max().item():.3g}; tolerance atol={atol:g}, rtol={rtol:g})")


def judge(outcome, exercise, case, device) -> str | None:
    """Why the outcome of running a student's function on `case` is wrong (None if right).

    outcome: a running.Outcome; exercise: references.ExerciseReferences; case: one of its
    cases; device: where the inputs were. Whatever the answer is, this returns a verdict: an
    answer the comparison cannot handle fails with a message, it never stops the grading.
    """
    try:
        return _judge(outcome, exercise, case, device)
    except Exception as error:  # noqa: BLE001 (any answer at all must get a verdict)
        return (f"your answer could not be compared with the expected one "
                f"({type(error).__name__}: {error}); return the tensor(s) the exercise asks for")


def _judge(outcome, exercise, case, device) -> str | None:
    if outcome.error:
        return outcome.error
    if outcome.side_effect:
        return f"your function {outcome.side_effect}"
    answer, names = outcome.answer, list(exercise.outputs)
    tolerance = dict(atol=exercise.atol, rtol=exercise.rtol, device=device)
    if len(names) == 1:
        name = names[0]
        mistakes = {m: (exercise.mistake_messages[m], outputs[name])
                    for m, outputs in case.mistakes.items()}
        return diagnose(answer, case.expected[name], dims=exercise.outputs[name],
                        mistakes=mistakes, **tolerance)
    if isinstance(answer, dict):
        parts = [answer.get(name) for name in names]
    elif isinstance(answer, (tuple, list)) and len(answer) == len(names):
        parts = list(answer)
    else:
        return (f"your function should return {len(names)} tensors ({', '.join(names)}), as a "
                f"tuple in that order; it returned a {type(answer).__name__}")
    for mistake, outputs in case.mistakes.items():
        if all(matches(p, outputs[n], exercise.atol, exercise.rtol) for p, n in zip(parts, names)):
            return f"it looks like you {exercise.mistake_messages[mistake]}."
    for part, name in zip(parts, names):
        problem = diagnose(part, case.expected[name], dims=exercise.outputs[name], mistakes={},
                           **tolerance)
        if problem:
            return f"{name}: {problem}"
    return None
