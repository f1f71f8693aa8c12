"""Bugs the hidden cases must catch, Chapters 1–3: each function below is a plausible wrong
answer from a class of bug that the cases once never reached (rectangular shapes, unsorted
or single-element arguments, default and optional arguments, key/value heads other than
head 0's). Each is graded as the sealed grader would, on cases drawn with an instructor's
seed, on the model that exposes it (the grader's second model gqa-test, where it is one).

Chapters 4–6 have their own files (test_strength_ch4.py, ...). The mutation score of every
chapter is measured by `python -m autograder mutants` (README, "Check strength").
"""

import pytest
import torch

import solutions.ch2_induction as ch2
import solutions.ch3_circuits as ch3
from autograder.authoring import registry
from autograder.authoring.build import draw_cases, outputs_of
from autograder.compare import judge
from autograder.references import Case, ExerciseReferences
from autograder.running import materialize, run_case

from .conftest import SEED


def grader_verdict(exercise_id: str, function, model=None) -> str | None:
    """Why `function` fails the hidden cases an instructor's seed draws (None: it passes);
    the expected answers are the solution's on the same cases. The last cases first: edge
    cases are appended at the end, so a bug usually fails at once."""
    chapter, exercise = registry.find(exercise_id)
    references = ExerciseReferences(exercise.id, "", {n: list(d) for n, d in exercise.outputs.items()},
                                    exercise.atol, exercise.rtol, {}, [])
    for arguments in reversed(draw_cases(chapter, exercise, model, SEED)[1:]):
        with torch.no_grad():
            expected = outputs_of(exercise, exercise.solution(**materialize(arguments, model)))
        case = Case(arguments, expected)
        problem = judge(run_case(function, case, model, {}), references, case, "cpu")
        if problem:
            return problem
    return None


@pytest.fixture(scope="module")
def gqa_test():
    from readheads import load_model

    return load_model("gqa-test", device="cpu")


# --- Sizes never varied: square scores only --------------------------------------------


def square_causal_mask(scores):
    """Builds an n_key x n_key mask: right only when there are as many queries as keys."""
    n = scores.shape[-1]
    return scores.masked_fill(torch.triu(torch.ones(n, n, dtype=torch.bool), 1), float("-inf"))


# --- Optional arguments never given: heads_per_pass that does not divide the heads ------


def ablation_dropping_the_remainder(model, tokens, kind="zero", layers=None, heads_per_pass=None):
    """Passes of heads_per_pass heads, but the last, shorter pass of each layer forgotten."""
    n_heads = model.cfg.n_heads
    k = heads_per_pass or n_heads
    full = ch2.head_ablation_loss_increase(model, tokens, kind, layers, k)
    kept = torch.zeros_like(full)
    kept[:, :n_heads // k * k] = full[:, :n_heads // k * k]
    return kept


# --- Key/value groups never varied: every case read key/value head 0 --------------------


def copying_with_group_size_n_kv(model, layer, head, n_tokens=200, seed=0, low=1000, high=10000):
    """Takes the number of key/value heads for the group size (the same on SmolLM2's 9 over
    3, not on 8 over 2)."""
    tokens = torch.randint(low, high, (n_tokens,), generator=torch.Generator().manual_seed(seed))
    W_OV = model.W_V[layer, head // model.W_V.shape[1]] @ model.W_O[layer, head]
    return ((model.W_E[tokens] @ W_OV @ model.W_U).argmax(dim=-1) == tokens).float().mean()


# --- Order never varied, defaults never used: sweeps over layers -------------------------


def head_sweep_in_sorted_layer_order(model, clean, corrupted, metric, layers=None):
    """Sweeps the layers sorted, whatever order they were asked in."""
    layers = None if layers is None else sorted(layers)
    return ch3.patch_head_output_sweep(model, clean, corrupted, metric, layers)


def residual_sweep_default_misses_last_layer(model, clean, corrupted, metric, layers=None):
    """layers=None sweeps range(n_layers - 1): the default was never drawn."""
    layers = range(model.cfg.n_layers - 1) if layers is None else layers
    return ch3.patch_residual_sweep(model, clean, corrupted, metric, layers)


# --- One element never drawn: a single receiver head -----------------------------------


def path_patch_squeezing_receivers(model, clean, corrupted, senders, receivers, component, metric):
    """Squeezes the receivers: [1, 2] becomes [2], a pair of numbers, not one head."""
    if receivers is not None and component != "resid":
        receivers = torch.as_tensor(receivers).squeeze()
        if receivers.dim() == 1:
            raise ValueError("receivers must be rows of (layer, head)")
    return ch3.path_patch(model, clean, corrupted, senders, receivers, component, metric)


BUGS = [
    ("apply_causal_mask", square_causal_mask, None),
    ("head_ablation_loss_increase", ablation_dropping_the_remainder, "gqa_test"),
    ("ov_copying_score", copying_with_group_size_n_kv, "gqa_test"),
    ("patch_head_output_sweep", head_sweep_in_sorted_layer_order, "gqa_test"),
    ("patch_residual_sweep", residual_sweep_default_misses_last_layer, "gqa_test"),
    ("path_patch", path_patch_squeezing_receivers, "gqa_test"),
]


@pytest.mark.parametrize("exercise_id, bug, model", BUGS, ids=[b.__name__ for _, b, _ in BUGS])
def test_the_hidden_cases_catch_the_bug(exercise_id, bug, model, request):
    model = request.getfixturevalue(model) if model else None
    assert grader_verdict(exercise_id, bug, model), f"{bug.__name__} passed {exercise_id}'s hidden cases"
