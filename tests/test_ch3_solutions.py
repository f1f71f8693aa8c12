"""Chapter 3's reference implementations on both course models: the dataset's positions, the
batched sweeps against the plain one-patch-per-forward loop and against TransformerLens's own
patching utilities, running from the middle of the model, and path patching's fixed points."""

import pytest
import torch

from readheads.ioi import TEMPLATES
from readheads.patching import patch_positions, patched_runs, record_earlier_positions, run_from_layer
from solutions.ch3_circuits import (corrupted_tokens, ioi_dataset, logit_diff, patch_head_input_sweep,
                                    patch_head_output_sweep, patch_residual_sweep, path_patch,
                                    patching_setup, residual_sweep_one_patch_per_forward)


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def test_dataset_positions_point_at_the_names_for_prompts_of_different_lengths(course_model):
    data = ioi_dataset(course_model, 16, seed=3)
    rows = torch.arange(16)
    lengths = data.end_pos + 1
    assert len(set(lengths.tolist())) > 1, "the seed should mix templates of different lengths"
    assert (data.tokens[:, 0] == course_model.tokenizer.bos_token_id).all()
    assert (data.tokens[rows, data.io_pos] == data.io_ids).all()
    assert (data.tokens[rows, data.s1_pos] == data.s_ids).all()
    assert (data.tokens[rows, data.s2_pos] == data.s_ids).all()
    assert (data.s1_pos < data.s2_pos).all() and (data.s2_pos < data.end_pos).all()
    to = course_model.tokenizer.encode(" to", add_special_tokens=False)
    assert (data.tokens[rows, data.end_pos] == to[0]).all()
    for row, length in enumerate(lengths.tolist()):
        assert (data.tokens[row, length:] == course_model.tokenizer.pad_token_id).all()
    families = {TEMPLATES[t][0] for t in data.template.tolist()}
    assert families == {"ABBA", "BABA"}
    order = (data.io_pos < data.s1_pos).tolist()
    assert order == [TEMPLATES[t][0] == "ABBA" for t in data.template.tolist()]


def test_corruptions_change_only_the_names_they_should(smollm2):
    clean = ioi_dataset(smollm2, 8, seed=0)
    rows = torch.arange(8)
    abc = corrupted_tokens(smollm2, clean, "abc", seed=1)
    changed = (abc != clean.tokens).nonzero()
    assert changed[:, 0].tolist() == list(range(8)) and (changed[:, 1] == clean.s2_pos).all()
    third = abc[rows, clean.s2_pos]
    assert ((third != clean.io_ids) & (third != clean.s_ids)).all()
    swapped = corrupted_tokens(smollm2, clean, "swapped", seed=0)
    assert (swapped[rows, clean.io_pos] == clean.s_ids).all()
    assert (swapped[rows, clean.s2_pos] == clean.io_ids).all()


def test_the_offline_model_solves_ioi_and_abc_breaks_it(smollm2):
    clean = ioi_dataset(smollm2, 16, seed=0)
    abc = clean._replace(tokens=corrupted_tokens(smollm2, clean, "abc", seed=1))
    clean_diff, abc_diff = logit_diff(smollm2(clean.tokens), clean), logit_diff(smollm2(abc.tokens), clean)
    assert (clean_diff > 0).float().mean() > 0.9 and clean_diff.mean() > 2
    assert abc_diff.mean() < clean_diff.mean() / 3


def edge_layers(model) -> list[int]:
    """The first and the last layer: the sweeps' boundary cases (the plain loop and
    TransformerLens's utilities cost one forward pass per patch, so tests sweep these two)."""
    return [0, model.cfg.n_layers - 1]


def transformer_lens_sweep(sweep, model, corrupted, clean_cache, metric, layers, width):
    """TransformerLens's `sweep` (a patching.get_act_patch_* function) for `layers` only,
    as [len(layers), width]."""
    import pandas as pd

    rows = pd.DataFrame([(layer, i) for layer in layers for i in range(width)], columns=["layer", "index"])
    flat = sweep(model, corrupted.tokens, clean_cache, metric, index_axis_names=None, index_df=rows)
    return torch.as_tensor(flat).reshape(len(layers), width)


@pytest.mark.parametrize("kind", ["abc", "swapped"])
def test_batched_residual_sweep_equals_one_patch_per_forward(course_model, kind):
    clean, corrupted, metric = patching_setup(course_model, 3, seed=5, kind=kind)
    layers = edge_layers(course_model)
    batched = patch_residual_sweep(course_model, clean, corrupted, metric, layers)
    loop = residual_sweep_one_patch_per_forward(course_model, clean, corrupted, metric, layers)
    assert (batched - loop).abs().max() <= 1e-4
    if kind == "abc":  # positions before S2 are identical: their patches change nothing
        first = int(clean.s2_pos.min())
        assert (batched[:, :first] == metric(course_model(corrupted.tokens))).all()


def test_sweeps_agree_with_transformer_lens_patching(gpt2_test):
    """TransformerLens's own residual and head-output sweeps, on its bridge."""
    from transformer_lens import patching

    clean, corrupted, metric = patching_setup(gpt2_test, 3, seed=2)
    _, clean_cache = gpt2_test.run_with_cache(clean.tokens)
    layers = edge_layers(gpt2_test)
    theirs = transformer_lens_sweep(patching.get_act_patch_resid_pre, gpt2_test, corrupted, clean_cache,
                                    metric, layers, clean.tokens.shape[1])
    ours = patch_residual_sweep(gpt2_test, clean, corrupted, metric, layers)
    assert (theirs - ours).abs().max() <= 1e-4
    theirs = transformer_lens_sweep(patching.get_act_patch_attn_head_out_all_pos, gpt2_test, corrupted,
                                    clean_cache, metric, layers, gpt2_test.cfg.n_heads)
    ours = patch_head_output_sweep(gpt2_test, clean, corrupted, metric, layers)
    assert (theirs - ours).abs().max() <= 1e-4


def test_key_sweep_agrees_with_transformer_lens_on_the_grouped_query_model(smollm2):
    """Both count "a head's keys" per key/value head on SmolLM2 (3 columns, not 9)."""
    from transformer_lens import patching

    clean, corrupted, metric = patching_setup(smollm2, 2, seed=1)
    _, clean_cache = smollm2.run_with_cache(clean.tokens)
    layers, n_kv_heads = edge_layers(smollm2), smollm2.W_K.shape[1]
    theirs = transformer_lens_sweep(patching.get_act_patch_attn_head_k_all_pos, smollm2, corrupted,
                                    clean_cache, metric, layers, n_kv_heads)
    ours = patch_head_input_sweep(smollm2, clean, corrupted, metric, "k", layers)
    assert ours.shape == (len(layers), n_kv_heads)
    assert (theirs - ours).abs().max() <= 1e-4


def test_run_from_layer_reproduces_the_model_and_fires_later_hooks(course_model):
    tokens = ioi_dataset(course_model, 4, seed=1).tokens
    logits, cache = course_model.run_with_cache(tokens)
    for layer in (0, course_model.cfg.n_layers - 1):
        assert (run_from_layer(course_model, cache["resid_pre", layer], layer) - logits).abs().max() <= 1e-4
    seen = []
    with course_model.hooks(fwd_hooks=[("blocks.1.hook_resid_pre", lambda x, hook: seen.append(x.shape))]):
        run_from_layer(course_model, cache["resid_pre", 1], 1)
    assert seen == [cache["resid_pre", 1].shape]
    ends = torch.tensor([3, 5, 0, 7])
    only_ends = run_from_layer(course_model, cache["resid_pre", 2], 2, positions=ends)
    rows = torch.arange(4)
    assert (only_ends[rows, ends] - logits[rows, ends]).abs().max() <= 1e-4
    assert only_ends.isnan().sum() == only_ends[0].numel() * 4 - 4 * only_ends.shape[-1]
    with pytest.raises(ValueError, match="layer must be in"):
        run_from_layer(course_model, cache["resid_pre", 0], course_model.cfg.n_layers)


def test_runs_that_start_at_a_later_position_reproduce_the_model(course_model):
    tokens = ioi_dataset(course_model, 4, seed=1).tokens
    logits, cache = course_model.run_with_cache(tokens)
    earlier = record_earlier_positions(course_model, cache["resid_pre", 0])
    for layer in (0, course_model.cfg.n_layers // 2):
        for start in (1, 6):
            later = run_from_layer(course_model, cache["resid_pre", layer][:, start:], layer,
                                   earlier=earlier.starting_at(start))
            assert later.shape == logits.shape and later[:, :start].isnan().all()
            assert (later[:, start:] - logits[:, start:]).abs().max() <= 1e-4


def test_position_patches_give_the_same_metrics_from_any_start(gpt2_test):
    """One patch per pass (each starts at its own position), many per pass, and a metric that
    reads every position (every pass starts at 0) agree."""
    clean, corrupted, metric = patching_setup(gpt2_test, 3, seed=4, kind="swapped")
    _, clean_cache = gpt2_test.run_with_cache(clean.tokens)
    _, corrupted_cache = gpt2_test.run_with_cache(corrupted.tokens)
    args = (gpt2_test, corrupted_cache["resid_pre", 2], 2, clean_cache["resid_pre", 2],
            list(range(clean.tokens.shape[1])))
    every_position = lambda logits: metric(logits.nan_to_num())  # noqa: E731 (reads no position list)
    one_per_pass = patch_positions(*args, metric, max_rows=3)
    assert (one_per_pass - patch_positions(*args, metric)).abs().max() <= 1e-4
    assert (one_per_pass - patch_positions(*args, every_position)).abs().max() <= 1e-4


def test_patched_runs_give_the_same_metrics_whatever_the_pass_size(gpt2_test):
    clean, corrupted, metric = patching_setup(gpt2_test, 3, seed=4)
    _, clean_cache = gpt2_test.run_with_cache(clean.tokens)
    _, corrupted_cache = gpt2_test.run_with_cache(corrupted.tokens)
    z = clean_cache["z", 3]

    def patch_head(head):
        def patch(activation):
            activation[:, :, head] = z[:, :, head]
        return patch

    patches = [patch_head(h) for h in range(gpt2_test.cfg.n_heads)]
    one_pass = patched_runs(gpt2_test, corrupted_cache["resid_pre", 3], 3, "blocks.3.attn.hook_z", patches, metric)
    per_run = patched_runs(gpt2_test, corrupted_cache["resid_pre", 3], 3, "blocks.3.attn.hook_z", patches,
                           metric, max_rows=3)
    assert (one_pass - per_run).abs().max() <= 1e-4 and one_pass.shape == (gpt2_test.cfg.n_heads,)


def test_key_and_value_sweeps_have_one_column_per_key_value_head(smollm2):
    clean, corrupted, metric = patching_setup(smollm2, 2, seed=0)
    n_kv_heads = smollm2.W_K.shape[1]
    assert patch_head_input_sweep(smollm2, clean, corrupted, metric, "k", layers=[20]).shape == (1, n_kv_heads)
    assert patch_head_input_sweep(smollm2, clean, corrupted, metric, "q", layers=[20]).shape == (1, smollm2.cfg.n_heads)


def test_path_patching_without_senders_is_the_clean_run_and_with_all_heads_is_not(smollm2):
    clean, corrupted, metric = patching_setup(smollm2, 3, seed=0)
    nobody = torch.zeros(0, 2, dtype=torch.long)
    receivers = torch.tensor([[23, 3]])
    for component in ("resid", "q", "v"):
        assert abs(path_patch(smollm2, clean, corrupted, nobody, receivers, component, metric).item() - 1) < 1e-4
    everyone = torch.cartesian_prod(torch.arange(smollm2.cfg.n_layers), torch.arange(smollm2.cfg.n_heads))
    # All heads corrupted, straight to the logits: only the MLPs still see clean heads' inputs.
    assert path_patch(smollm2, clean, corrupted, everyone, nobody, "resid", metric).item() < 0.5


def test_sweeps_take_token_tensors_and_a_plain_metric(gpt2_test):
    """Records or bare tokens; PatchingMetric (unembeds the last tokens only) or any function
    of the logits returning a float (unembeds everything): the same numbers."""
    clean, corrupted, metric = patching_setup(gpt2_test, 2, seed=6)

    def plain_metric(logits):
        return float(metric(logits))

    with_records = patch_head_output_sweep(gpt2_test, clean, corrupted, metric, layers=[2, 7])
    with_tokens = patch_head_output_sweep(gpt2_test, clean.tokens, corrupted.tokens, plain_metric, layers=[2, 7])
    assert (with_records - with_tokens).abs().max() <= 1e-4
    senders = [(1, 3), (2, 5)]
    as_lists = path_patch(gpt2_test, clean.tokens, corrupted.tokens, senders, None, "resid", plain_metric)
    as_tensors = path_patch(gpt2_test, clean, corrupted, torch.tensor(senders), torch.zeros(0, 2), "resid", metric)
    assert abs(as_lists.item() - as_tensors.item()) <= 1e-4
    with pytest.raises(ValueError, match="needs receiver heads"):
        path_patch(gpt2_test, clean, corrupted, senders, None, "q", metric)
