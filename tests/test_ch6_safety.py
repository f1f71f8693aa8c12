"""Chapter 6's reference implementations on the offline model, and the library parts it
stands on: the probe reads truth in the middle layers and not at the embedding, a control task
does not, steering acts where it is added and only there, the deception test's context goes
where it should, and the two SAE seeds are two different SAEs trained alike."""

import json

import pytest
import torch

from readheads import sae as sae_module
from readheads import truth
from solutions.ch6_safety import (accuracy_by_layer, completion_margins, feature_alignment, logistic_probe,
                                  mean_difference, residual_at, selectivity, steered_margins)

TWIN_SAES = ("smollm2-135m-res-l15-1k", "smollm2-135m-res-l15-1k-seed1")


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.fixture(scope="module")
def known_statements(smollm2):
    """The statements of the items SmolLM2 knows, their residual streams at the completion
    token after every layer, and a split by item (a third held out)."""
    items = truth.truth_items(smollm2)
    known = truth.select(items, truth.completion_margin(smollm2, items) > 0)
    statements = truth.truth_statements(smollm2, known)
    acts = residual_at(smollm2, statements.tokens, statements.end_pos - 1, list(range(smollm2.cfg.n_layers)))
    return known, statements, acts, statements.item % 3 != 0


def test_library_margins_are_the_exercise_s(course_model):
    items = truth.truth_items(course_model, ("capitals", "plurals"))
    assert torch.allclose(truth.completion_margin(course_model, items, batch_size=7),
                          completion_margins(course_model, *items[:2], items.true_ids, items.false_ids), atol=1e-4)


def test_residual_at_reads_the_cached_stream_at_each_row_s_position(course_model):
    statements = truth.truth_statements(course_model, truth.truth_items(course_model, ("days",)))
    layers = [1, course_model.cfg.n_layers - 1]
    acts = residual_at(course_model, statements.tokens, statements.end_pos, layers)
    _, cache = course_model.run_with_cache(statements.tokens.to(course_model.cfg.device))
    for index, layer in enumerate(layers):
        full = cache[f"blocks.{layer}.hook_resid_post"].cpu()
        for row in (0, len(statements.end_pos) - 1):
            assert torch.allclose(acts[index, row], full[row, statements.end_pos[row]], atol=1e-4)


def test_truth_is_read_in_the_middle_layers_not_at_the_embedding(smollm2, known_statements):
    """Measured: held-out accuracy 0.48 after layer 0, 0.73-0.76 after layers 9-18."""
    _, statements, acts, train = known_statements
    accuracy = accuracy_by_layer(acts, statements.label.bool(), train)
    assert float(accuracy[0]) < 0.6
    assert float(accuracy[9:19].mean()) > 0.68


def test_a_control_task_is_read_far_worse_than_truth(smollm2, known_statements):
    """Measured: selectivity 0.24 at layer 17 (truth 0.76, a random label per word 0.52)."""
    _, statements, acts, train = known_statements
    completion = statements.tokens[torch.arange(len(statements.label)), statements.end_pos - 1]
    control = (torch.rand(smollm2.cfg.d_vocab, generator=torch.Generator().manual_seed(0)) < 0.5)[completion]
    assert float(selectivity(acts[17], statements.label.bool(), control, train)) > 0.1


def test_logistic_probe_separates_separable_rows_and_its_loss_falls():
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(40, generator=generator) < 0.6
    acts = torch.randn(40, 5, generator=generator)
    acts[:, 0] = (acts[:, 0].abs() + 0.5) * (2 * labels.float() - 1) + 1  # separable, with an offset for the bias
    loss = lambda w, b: torch.nn.functional.binary_cross_entropy_with_logits(acts @ w + b, labels.float())  # noqa: E731
    short, long = logistic_probe(acts, labels, 10, 0.5, 0.0), logistic_probe(acts, labels, 500, 0.5, 0.0)
    assert loss(*long) < loss(*short) < loss(torch.zeros(5), torch.zeros(()))
    assert bool(((acts @ long[0] + long[1] > 0) == labels).all())


def test_steering_with_zero_changes_nothing_and_acts_only_from_its_layer_on(course_model):
    items = truth.truth_items(course_model, ("capitals",))
    arguments = (items.prefix_tokens, items.end_pos, items.true_ids, items.false_ids)
    plain = completion_margins(course_model, *arguments)
    zero = torch.zeros(course_model.cfg.d_model)
    assert torch.allclose(steered_margins(course_model, *arguments, 3, zero), plain, atol=1e-5)
    push = 50 * torch.randn(course_model.cfg.d_model, generator=torch.Generator().manual_seed(1))
    assert (steered_margins(course_model, *arguments, 3, push) - plain).abs().max() > 0.1
    # after the last layer the push reaches the logits through the final normalisation only
    last = course_model.cfg.n_layers - 1
    assert not torch.allclose(steered_margins(course_model, *arguments, last, push),
                              steered_margins(course_model, *arguments, 3, push), atol=1e-3)


def test_context_goes_between_bos_and_each_prompt_and_its_examples_are_named(smollm2):
    items = truth.truth_items(smollm2, ("capitals", "opposites"))
    ids, used = truth.context_examples(smollm2, items, 3, lie=True, seed=2)
    shown = truth.with_context(items, ids)
    text = smollm2.tokenizer.decode(shown.prefix_tokens[0, 1:shown.end_pos[0] + 1].tolist())
    lines = text.split("\n")
    assert len(lines) == 4 and lines[-1] == items.texts[0][0]
    for line, index in zip(lines, used):
        prefix, _, false = items.texts[index]
        assert line == f"{prefix} {false}."
    assert shown.prefix_tokens[0, 0] == smollm2.tokenizer.bos_token_id
    assert torch.equal(shown.end_pos, items.end_pos + len(ids))


def test_the_twin_saes_differ_only_in_their_seed():
    folders = {name: sae_module.SAE_DIR / name for name in TWIN_SAES}
    manifests = {name: json.loads((folder / "manifest.json").read_text()) for name, folder in folders.items()}
    first, second = (manifests[name]["training"] for name in TWIN_SAES)
    assert {key for key in first if first[key] != second[key]} == {"seed"}
    assert manifests[TWIN_SAES[0]]["hook_name"] == manifests[TWIN_SAES[1]]["hook_name"]
    for manifest in manifests.values():
        assert manifest["metrics_on_held_out_rows"]["variance_explained"] > 0.6
    weights = [sae_module.load_sae(name).W_dec.detach() for name in TWIN_SAES]
    assert not torch.allclose(weights[0], weights[1])


def test_the_truth_direction_has_partial_counterparts_in_both_seeds(smollm2, known_statements):
    """Measured: each seed's best feature has cosine 0.55 with the direction (a random unit
    vector in 576 dimensions: ~0.04); the two best features have cosine 0.66 with each other."""
    _, statements, acts, _ = known_statements
    direction = mean_difference(acts[14], statements.label.bool())  # the SAEs read layer 15's input
    best = [feature_alignment(sae_module.load_sae(name).W_dec.detach(), direction).max() for name in TWIN_SAES]
    assert all(0.3 < float(value) < 0.9 for value in best)
