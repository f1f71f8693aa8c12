"""Chapter 2 (induction heads): the solutions are right, and the autograder can grade them.

Model tests use the offline SmolLM2-135M and the GPT-2 test model (random weights) with short
sequences. That every check passes the solutions and fails the stub and the mistakes is tested
for all chapters in test_checks.py.
"""

from __future__ import annotations

import pytest
import torch

from autograder.check import load_references
from solutions import ch1_attention as ch1
from solutions import ch2_induction as ch2

CHAPTER = "ch2_induction"


# --- Declarations ------------------------------------------------------------------------


def test_exercise_ids_are_unique_and_new():
    ids = [e.id for e in ch2.EXERCISES]
    assert len(ids) == len(set(ids))
    assert not set(ids) & {e.id for e in ch1.EXERCISES}
    assert 14 <= len(ids) <= 20


# --- Pure exercises ----------------------------------------------------------------------


def test_loss_by_half():
    loss = torch.tensor([[1.0, 1.0, 3.0, 3.0], [1.0, 1.0, 5.0, 5.0]])
    assert torch.equal(ch2.loss_by_half(loss, 2), torch.tensor([1.0, 4.0]))


def test_diagonal_attention_score_reads_the_right_stripe():
    seq_len, pos = 5, 11
    pattern = torch.zeros(pos, pos)
    for i in range(pos):
        pattern[i, i - seq_len + 1 if i > seq_len else 0] = 1.0  # a perfect induction head
    induction = ch2.diagonal_attention_score(pattern, seq_len - 1, seq_len + 1)
    duplicate = ch2.diagonal_attention_score(pattern, seq_len, seq_len + 1)
    assert induction.item() == 1.0 and duplicate.item() == 0.0
    stacked = pattern.expand(2, 3, pos, pos)
    assert ch2.diagonal_attention_score(stacked, seq_len - 1, seq_len + 1).shape == (2, 3)


def test_composition_score_properties():
    gen = torch.Generator().manual_seed(0)
    A, B = torch.randn(6, 6, generator=gen), torch.randn(6, 6, generator=gen)
    score = ch2.composition_score(A, B)
    assert 0 < score <= 1
    assert torch.isclose(ch2.composition_score(3 * A, 0.5 * B), score)
    # B reads nothing that A writes: the score is 0.
    A_low, B_low = torch.zeros(6, 6), torch.zeros(6, 6)
    A_low[:, :3], B_low[3:] = 1.0, 1.0
    assert ch2.composition_score(A_low, B_low) == 0


# --- Model exercises ---------------------------------------------------------------------


@pytest.mark.parametrize("which", ["smollm2", "gpt2_test"])
def test_repeated_random_tokens(which, request):
    model = request.getfixturevalue(which)
    tokens = ch2.repeated_random_tokens(model, 7, 3, seed=1)
    assert tokens.dtype == torch.int64 and tokens.shape == (3, 15)
    assert torch.equal(tokens[:, 0], model.to_tokens("")[0].expand(3))  # the BOS TL prepends
    assert torch.equal(tokens[:, 1:8], tokens[:, 8:])
    assert tokens[:, 1:].min() >= 1000 and tokens[:, 1:].max() < 10000
    assert torch.equal(tokens, ch2.repeated_random_tokens(model, 7, 3, seed=1))
    assert not torch.equal(tokens, ch2.repeated_random_tokens(model, 7, 3, seed=2))
    special = set(model.tokenizer.all_special_ids)
    assert not special & set(tokens[:, 1:].flatten().tolist())


def test_per_token_loss_matches_transformer_lens(smollm2):
    tokens = ch2.repeated_random_tokens(smollm2, 6, 2, seed=0)
    expected = smollm2(tokens, return_type="loss", loss_per_token=True)
    torch.testing.assert_close(ch2.per_token_loss(smollm2, tokens), expected)


@pytest.mark.parametrize("which", ["smollm2", "gpt2_test"])
def test_detectors(which, request):
    model = request.getfixturevalue(which)
    tokens = ch2.repeated_random_tokens(model, 6, 2, seed=3)
    shape = (model.cfg.n_layers, model.cfg.n_heads)
    patterns = ch2.all_layer_patterns(model, tokens)
    assert patterns.shape == (model.cfg.n_layers, 2, model.cfg.n_heads, 13, 13)
    induction = ch2.induction_scores(model, tokens)
    for scores in (induction, ch2.previous_token_scores(model, tokens),
                   ch2.duplicate_token_scores(model, tokens)):
        assert scores.shape == shape and scores.min() >= 0 and scores.max() <= 1
    # The hooks version computes the same numbers without caching patterns.
    torch.testing.assert_close(ch2.induction_scores_with_hooks(model, tokens), induction)
    # Direct check of one entry: layer 1, head 0, query 9 (second half) reads key 9 - 6 + 1.
    expected = patterns[1, :, 0, torch.arange(7, 13), torch.arange(2, 8)].mean()
    torch.testing.assert_close(induction[1, 0], expected)


def test_smollm2_has_induction_heads(smollm2):
    tokens = ch2.repeated_random_tokens(smollm2, 20, 2, seed=0)
    first, second = ch2.loss_by_half(ch2.per_token_loss(smollm2, tokens), 20)
    assert second < first / 2
    assert ch2.induction_scores(smollm2, tokens).max() > 0.5
    assert ch2.previous_token_scores(smollm2, tokens).max() > 0.5


@pytest.mark.parametrize("kind", ["zero", "mean"])
def test_batched_ablation_equals_one_at_a_time(gpt2_test, kind):
    tokens = ch2.repeated_random_tokens(gpt2_test, 5, 2, seed=4)
    layers = [0, 6, 11]
    slow = ch2.head_ablation_loss_increase_slow(gpt2_test, tokens, kind, layers=layers)
    assert slow.shape == (3, 12) and slow.abs().max() > 0
    for heads_per_pass in (None, 5):  # all heads in one pass; uneven chunks
        fast = ch2.head_ablation_loss_increase(gpt2_test, tokens, kind, layers=layers,
                                               heads_per_pass=heads_per_pass)
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)


def test_ablation_on_smollm2_matches_and_mistake_variants_agree(smollm2):
    tokens = ch2.repeated_random_tokens(smollm2, 5, 2, seed=5)
    for kind in ("zero", "mean"):
        slow = ch2.head_ablation_loss_increase_slow(smollm2, tokens, kind, layers=[3])
        fast = ch2.head_ablation_loss_increase(smollm2, tokens, kind, layers=[3], heads_per_pass=4)
        variant = ch2._ablation_variant(smollm2, tokens, kind, layers=[3])  # used by mistakes
        torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
        torch.testing.assert_close(variant, slow, atol=1e-5, rtol=0)


@pytest.mark.parametrize("which", ["smollm2", "gpt2_test"])
def test_logit_attribution_adds_up(which, request):
    """Summed over heads (plus b_O), it is the attention layers' direct effect on the logit."""
    model = request.getfixturevalue(which)
    tokens = ch2.repeated_random_tokens(model, 6, 2, seed=6)
    dla = ch2.head_logit_attribution(model, tokens)
    _, cache = model.run_with_cache(tokens)
    positions = slice(6, 12)
    scale = cache["ln_final.hook_scale"][:, positions]
    directions = model.W_U[:, tokens[:, 7:]]
    for layer in (0, model.cfg.n_layers - 1):
        attn_out = cache[f"blocks.{layer}.hook_attn_out"][:, positions]
        b_O = model.blocks[layer].attn.b_O
        if b_O is not None:
            attn_out = attn_out - b_O
        direct = torch.einsum("bqm,mbq->", attn_out / scale, directions) / scale.numel()
        torch.testing.assert_close(dla[layer].sum(), direct, atol=1e-4, rtol=1e-4)


def test_qk_scores_reproduce_attention_scores_at_distance_zero(smollm2):
    """On the diagonal (query = key position) rotary embeddings cancel out."""
    layer, head = 4, 7
    tokens = ch2.repeated_random_tokens(smollm2, 4, 1, seed=7)
    _, cache = smollm2.run_with_cache(tokens)
    x = cache[f"blocks.{layer}.ln1.hook_normalized"][0]
    scores = ch2.qk_scores(smollm2, layer, head, x, x)
    expected = cache[f"blocks.{layer}.attn.hook_attn_scores"][0, head].diagonal()
    torch.testing.assert_close(scores.diagonal(), expected, atol=1e-4, rtol=1e-4)


def test_composition_scores_gqa(smollm2):
    scores = ch2.composition_scores(smollm2, 0, 1, 4)
    assert scores.shape == (3, 9) and (scores > 0).all() and (scores < 1).all()
    W_K = smollm2.W_K[1, 1]  # head 4 reads key/value head 4 // 3 = 1
    W_OV = smollm2.W_V[0, 2] @ smollm2.W_O[0, 7]
    k_comp = ch2.composition_score(W_OV, (smollm2.W_Q[1, 4] @ W_K.T).T)
    torch.testing.assert_close(scores[1, 7], k_comp)


def test_ov_copying_score_counts_copies(smollm2):
    score = ch2.ov_copying_score(smollm2, smollm2.cfg.n_layers - 1, 1, n_tokens=50, seed=0)
    assert score.shape == () and 0 <= score <= 1


# --- References and check, end to end on SmolLM2 -----------------------------------------

IMPORTANT = {
    "repeated_random_tokens": {"no_bos", "two_draws", "interleaved", "one_row"},
    "per_token_loss": {"current_token", "not_negated", "shifted_logits", "probabilities"},
    "previous_token_scores": {"current_token", "two_back", "second_half_only"},
    "duplicate_token_scores": {"induction", "one_too_far_back"},
    "induction_scores": {"duplicate", "two_ahead", "bos_shift", "whole_diagonal", "summed"},
    "induction_scores_with_hooks": {"duplicate", "bos_shift", "whole_diagonal"},
    "head_ablation_loss_increase_slow": {"after_output_projection", "kind_swapped",
                                         "position_indexed", "mean_per_position",
                                         "whole_sequence", "not_subtracted"},
    "head_ablation_loss_increase": {"after_output_projection", "kind_swapped",
                                    "position_indexed", "mean_per_position", "whole_sequence",
                                    "not_subtracted"},
    "head_logit_attribution": {"no_scale", "times_scale", "current_token", "whole_sequence"},
    # Its answer is one fraction: "query weights" gives the same fraction as "kv tiled" here.
    "ov_copying_score": {"kv_tiled", "embedding_as_unembedding"},
    "qk_scores": {"kv_tiled", "unscaled", "swapped"},
    "composition_scores": {"q_k_swapped", "kv_tiled", "unnormalised"},
}


def test_important_mistakes_are_not_dropped_on_smollm2(smollm2):
    exercises = {**load_references(CHAPTER, {"model": smollm2}).exercises,
                 **load_references(CHAPTER, {}).exercises}
    for exercise_id, names in IMPORTANT.items():
        kept = set(exercises[exercise_id].mistake_messages)
        assert names <= kept, f"{exercise_id}: dropped {sorted(names - kept)}"


def test_k_composition_finds_gpt2_smalls_previous_token_head(gpt2_attention):
    """On GPT-2 small's real attention weights, the strongest K-composition source of each
    induction head the literature names (5.1, 5.5, 6.9, 7.2, 7.10) is head 4.11."""
    for layer, head in [(5, 1), (5, 5), (6, 9), (7, 2), (7, 10)]:
        k_composition = torch.stack([ch2.composition_scores(gpt2_attention, earlier, layer, head)[1]
                                     for earlier in range(layer)])  # [earlier layer, head]
        source = divmod(k_composition.argmax().item(), 12)
        assert source == (4, 11), f"{layer}.{head}: top K-composition source {source}"
