"""Bugs the hidden cases must catch, Chapter 5: each function below is a plausible wrong
answer from a class of bug that the cases once never reached (empty sets, whose 0/0 the
docstrings define, and single-element ones; scores of more than two dimensions; a pruning
search that visits a layer's heads from the last one; a threshold on the relative change; a
change exactly at the threshold counted as below it; a pruned circuit returned as numbers
instead of bools). Each is graded on the committed hidden cases, as a student's notebook
would be, and must fail them while the reference solution passes; none of them fails the
visible check.

The mutation score of the chapter is measured by `python -m autograder mutants --chapter
ch5_discovery` (README, "Check strength").
"""

import pytest
import torch

import solutions.ch5_discovery as ch5
from autograder.check import load_references
from autograder.compare import judge
from autograder.running import Outcome, run_case
from readheads.ioi import as_tokens

from .conftest import assert_only_hidden_cases_catch


# --- head_precision_recall: empty sets (0/0 is defined as 0) and single heads -------------


def _precision_recall_nan_when_empty(found, reference):
    """0/0 left as NaN: nothing found, or an empty reference."""
    both = (found & reference).sum().float()
    return torch.stack([both / found.sum(), both / reference.sum()])


def _precision_recall_guard_off_by_one(found, reference):
    """A guard against empty sets that also drops single heads (`> 1` for `> 0`)."""
    both = (found & reference).sum().float()
    precision = both / found.sum() if found.sum() > 1 else both * 0
    recall = both / reference.sum() if reference.sum() > 1 else both * 0
    return torch.stack([precision, recall])


# --- circuit_overlaps: two empty circuits overlap 1, an empty and a single head 0 ---------


def _overlaps_nan_when_both_empty(circuits):
    """|A and B| / |A or B| with no guard: 0/0 = NaN for two empty circuits."""
    flat = circuits.flatten(1).float()
    both = flat @ flat.T
    return both / (flat.sum(1)[:, None] + flat.sum(1)[None, :] - both)


def _overlaps_zero_when_both_empty(circuits):
    """A guard that makes two empty circuits overlap 0; the docstring says 1."""
    flat = circuits.flatten(1).float()
    both = flat @ flat.T
    return both / (flat.sum(1)[:, None] + flat.sum(1)[None, :] - both).clamp_min(1)


# --- largest_disagreements: any number of dimensions ----------------------------------------


def _disagreements_two_dimensional(exact, estimate, k):
    """Turns flat indices into (row, column) only: right for [layer, head] scores alone."""
    flat = (exact - estimate).abs().flatten().topk(k).indices
    return torch.stack([flat // exact.shape[1], flat % exact.shape[1]], dim=1)


PURE_BUGS = [
    ("head_precision_recall", _precision_recall_nan_when_empty),
    ("head_precision_recall", _precision_recall_guard_off_by_one),
    ("circuit_overlaps", _overlaps_nan_when_both_empty),
    ("circuit_overlaps", _overlaps_zero_when_both_empty),
    ("largest_disagreements", _disagreements_two_dimensional),
]


@pytest.mark.parametrize("exercise_id, bug", PURE_BUGS, ids=lambda x: getattr(x, "__name__", x))
def test_hidden_cases_catch_the_bug(exercise_id, bug):
    assert_only_hidden_cases_catch(exercise_id, bug, getattr(ch5, exercise_id))


# --- the pruning searches, on the offline model's committed hidden cases -------------------
# Each pruning case costs a forward pass per head or edge visited, so these run the bug and
# the solution on the one hidden case made for the bug only (the last ones), not on all.


def _prune_heads(model, clean, corrupted, metric, threshold, layers, *, last_head_first=False, at_most=False):
    _, cache = model.run_with_cache(as_tokens(corrupted), names_filter=lambda name: name.endswith("hook_z"))
    removed = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    current = ch5.metric_with_heads_removed(model, clean, cache, metric, removed)
    heads = range(model.cfg.n_heads)
    for layer in sorted(layers, reverse=True):
        for head in reversed(heads) if last_head_first else heads:
            removed[layer, head] = True
            value = ch5.metric_with_heads_removed(model, clean, cache, metric, removed)
            change = abs(float(value - current))
            if change <= threshold if at_most else change < threshold:
                current = value
            else:
                removed[layer, head] = False
    return ~removed


def _prune_heads_last_head_first(model, clean, corrupted, metric, threshold, layers):
    """Visits each layer's heads from the last one; the docstring says head 0 first."""
    return _prune_heads(model, clean, corrupted, metric, threshold, layers, last_head_first=True)


def _prune_heads_at_most(model, clean, corrupted, metric, threshold, layers):
    """Removes a head whose removal changes the metric by exactly the threshold (<= for <):
    at threshold 0 it removes the heads that change nothing."""
    return _prune_heads(model, clean, corrupted, metric, threshold, layers, at_most=True)


def _prune_edges(model, clean, corrupted, metric, threshold, edges, *, relative=False, at_most=False):
    _, cache = model.run_with_cache(as_tokens(corrupted), names_filter=lambda name: name.endswith("hook_z"))
    cut = torch.zeros(len(edges), dtype=torch.bool)
    current = ch5.metric_with_edges_removed(model, clean, cache, metric, edges[cut])
    for index in range(len(edges)):
        cut[index] = True
        value = ch5.metric_with_edges_removed(model, clean, cache, metric, edges[cut])
        change = (value - current).abs() / (current.abs() if relative else 1.0)
        if change <= threshold if at_most else change < threshold:
            current = value
        else:
            cut[index] = False
    return ~cut


def _prune_edges_relative(model, clean, corrupted, metric, threshold, edges):
    """Compares the change relative to the current metric with the threshold; the docstring
    asks for the absolute change (a metric that is 0 for the whole model, as ACDC's KL
    divergence is, makes every relative change infinite)."""
    return _prune_edges(model, clean, corrupted, metric, threshold, edges, relative=True)


def _prune_edges_at_most(model, clean, corrupted, metric, threshold, edges):
    """Cuts an edge whose change equals the threshold (<= for <): at threshold 0 it cuts the
    edges that change nothing."""
    return _prune_edges(model, clean, corrupted, metric, threshold, edges, at_most=True)


_SOLUTION_ANSWERS: dict = {}


def _case(exercise_id, model, index):
    exercise = load_references("ch5_discovery", {"model": model}).exercises[exercise_id]
    return exercise, exercise.cases[index]


def _solution_answer(exercise_id, model, index):
    """The solution's outcome on one committed case, run once for the tests below."""
    if (exercise_id, index) not in _SOLUTION_ANSWERS:
        _, case = _case(exercise_id, model, index)
        _SOLUTION_ANSWERS[exercise_id, index] = run_case(getattr(ch5, exercise_id), case, model, {})
    return _SOLUTION_ANSWERS[exercise_id, index]


@pytest.mark.parametrize("exercise_id, bug, index", [
    ("prune_heads", _prune_heads_last_head_first, -2),
    ("prune_heads", _prune_heads_at_most, -1),
    ("prune_edges", _prune_edges_relative, -2),
    ("prune_edges", _prune_edges_at_most, -1),
], ids=lambda x: getattr(x, "__name__", str(x)))
def test_hidden_pruning_cases_catch_the_bug(exercise_id, bug, index, smollm2):
    exercise, case = _case(exercise_id, smollm2, index)
    assert judge(run_case(bug, case, smollm2, {}), exercise, case, "cpu") is not None
    assert judge(_solution_answer(exercise_id, smollm2, index), exercise, case, "cpu") is None


@pytest.mark.parametrize("exercise_id", ["prune_heads", "prune_edges"])
def test_pruned_circuits_must_be_bools(exercise_id, smollm2):
    """The right heads or edges as 1.0 and 0.0 (`.float()`, or `1 - removed.int()`) fail."""
    exercise, case = _case(exercise_id, smollm2, -1)
    right = _solution_answer(exercise_id, smollm2, -1)
    for numbers in (right.answer.float(), right.answer.long()):
        assert "wrong dtype" in judge(Outcome(numbers), exercise, case, "cpu")
    assert judge(right, exercise, case, "cpu") is None
