"""Bugs the hidden cases must catch, Chapter 6: each function below is a plausible wrong
answer from a class of bug that the cases once never reached (a held-out score exactly at the
threshold, families that come unsorted in the rows, a tie between the best layers, an empty
cell of the deception table, layers listed unsorted or twice). Each is graded on the committed
hidden cases, as a student's notebook would be, and must fail them while the reference
solution passes; none of them fails the visible check.

The mutation score of the chapter is measured by `python -m autograder mutants --chapter
ch6_safety` (README, "Check strength").
"""

import pytest
import torch

import solutions.ch6_safety as ch6
from autograder.check import evaluate

from .conftest import assert_only_hidden_cases_catch


# --- a score exactly at the threshold: 0 does not say true ---------------------------------


def _accuracy_at_least(acts, labels, train):
    """Counts a held-out score of exactly 0 as "true" (>= for >)."""
    return torch.stack([((ch6.dom_probe_scores(a[train], labels[train], a[~train]) >= 0) == labels[~train])
                        .float().mean() for a in acts])


def _held_out_at_least(acts, labels, family):
    """Counts a held-out score of exactly 0 as "true"."""
    accuracies = []
    for name in family.unique():
        held_out = family == name
        scores = ch6.dom_probe_scores(acts[~held_out], labels[~held_out], acts[held_out])
        accuracies.append(((scores >= 0) == labels[held_out]).float().mean())
    return torch.stack(accuracies)


def _selectivity_at_least(acts, labels, control, train):
    """Counts a held-out score of exactly 0 as "true", for both tasks."""
    def accuracy(targets):
        scores = ch6.dom_probe_scores(acts[train], targets[train], acts[~train])
        return ((scores >= 0) == targets[~train]).float().mean()
    return accuracy(labels) - accuracy(control)


# --- families in the order the rows list them ----------------------------------------------


def _held_out_first_appearance_order(acts, labels, family):
    """Visits the families in order of first appearance in the rows, not sorted."""
    accuracies = []
    for name in dict.fromkeys(family.tolist()):
        held_out = family == name
        scores = ch6.dom_probe_scores(acts[~held_out], labels[~held_out], acts[held_out])
        accuracies.append(((scores > 0) == labels[held_out]).float().mean())
    return torch.stack(accuracies)


# --- ties between the best layers: the first one ---------------------------------------------


def _honest_last_best(validation, test):
    """Takes the last layer with the best validation accuracy on ties."""
    last = validation.shape[1] - 1 - validation.flip(1).argmax(dim=1)
    return test[torch.arange(len(test)), last]


# --- an empty cell in the deception table ---------------------------------------------------


def _table_bincount(output_true, probe_true):
    """Counts with bincount without minlength: fewer than 4 counts when the last cells are
    empty."""
    return torch.bincount(2 * output_true.long() + probe_true.long()).reshape(2, 2)


# --- layers as given: unsorted, with repeats ------------------------------------------------


def _residual_sorted_layers(model, tokens, positions, layers):
    """Sorts the layers and drops repeats (a set of hook names)."""
    return ch6.residual_at(model, tokens, positions, sorted(set(layers)))


PURE_BUGS = [
    ("accuracy_by_layer", _accuracy_at_least),
    ("held_out_family_accuracy", _held_out_at_least),
    ("selectivity", _selectivity_at_least),
    ("held_out_family_accuracy", _held_out_first_appearance_order),
    ("honest_layer_accuracy", _honest_last_best),
    ("deception_table", _table_bincount),
]


@pytest.mark.parametrize("exercise_id, bug", PURE_BUGS, ids=lambda x: getattr(x, "__name__", x))
def test_hidden_cases_catch_the_bug(exercise_id, bug):
    assert_only_hidden_cases_catch(exercise_id, bug, getattr(ch6, exercise_id))


def test_hidden_cases_catch_sorted_deduplicated_layers(smollm2):
    """(The visible case lists three distinct layers in order: sorting them changes nothing.)"""
    assert not evaluate("residual_at", hidden=True, function=_residual_sorted_layers, model=smollm2).passed
    assert evaluate("residual_at", hidden=True, function=ch6.residual_at, model=smollm2).passed
