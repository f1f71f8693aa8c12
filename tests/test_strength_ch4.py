"""Bugs the hidden cases must catch, Chapter 4: each function below is a plausible wrong
answer from a class of bug that the cases once never reached (a label that never says yes
or a feature that never fires, whose 0/0 the docstring defines; single-element sets; a
frequency exactly at the density limit). Each is graded on the committed hidden cases, as a
student's notebook would be, and must fail them while the reference solution passes; none
of them fails the visible check.

The mutation score of the chapter is measured by `python -m autograder mutants --chapter
ch4_saes` (README, "Check strength").
"""

import pytest
import torch

import solutions.ch4_saes as ch4

from .conftest import assert_only_hidden_cases_catch


# --- label_score: empty sets (0/0 is defined as 0) and single-element sets ----------------


def _label_score_nan_when_empty(fires, label_says):
    """0/0 left as NaN: precision and recall divide by counts that can be 0 (a label that
    never says yes, a feature that never fires)."""
    both = (fires & label_says).sum().float()
    precision = both / label_says.sum()
    recall = both / fires.sum()
    return precision, recall, 2 * precision * recall / (precision + recall)


def _label_score_f1_nan_when_disjoint(fires, label_says):
    """The harmonic mean taken without its guard: precision and recall are safe, but f1 is
    0/0 = NaN when they are both 0."""
    both = (fires & label_says).sum().float()
    precision = both / label_says.sum().clamp_min(1)
    recall = both / fires.sum().clamp_min(1)
    return precision, recall, 2 * precision * recall / (precision + recall)


def _label_score_guard_off_by_one(fires, label_says):
    """A guard against empty sets that also drops single-element ones (`> 1` for `> 0`): a
    label and a feature that agree on their only token score 0, not 1."""
    both = (fires & label_says).sum().float()
    n_label, n_fires = label_says.sum(), fires.sum()
    precision = both / n_label if n_label > 1 else torch.tensor(0.0)
    recall = both / n_fires if n_fires > 1 else torch.tensor(0.0)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else torch.tensor(0.0)
    return precision, recall, f1


# --- feature_density: a frequency exactly at the limit -----------------------------------


def _feature_density_at_least(features, dense_above):
    """An exact threshold misread: counts a feature that fires on exactly `dense_above` of
    the tokens as dense (>=); the docstring says "more than"."""
    frequency = (features > 0).float().mean(0)
    return frequency, (frequency == 0).float().mean(), (frequency >= dense_above).float().mean()


@pytest.mark.parametrize("exercise_id, bug", [
    ("label_score", _label_score_nan_when_empty),
    ("label_score", _label_score_f1_nan_when_disjoint),
    ("label_score", _label_score_guard_off_by_one),
    ("feature_density", _feature_density_at_least),
])
def test_hidden_cases_catch_the_bug(exercise_id, bug):
    assert_only_hidden_cases_catch(exercise_id, bug, getattr(ch4, exercise_id))
