"""Chapter 2, "Induction heads": reference solutions, known mistakes, exercise list.

Everything runs on *repeated random tokens*: a BOS token at position 0, then `seq_len` random
tokens, then the same `seq_len` tokens again. Positions 1..seq_len are the first half,
seq_len+1..2*seq_len the second. A token of the second half at position i first appeared at
i - seq_len; the token that followed it then sits at i - seq_len + 1.

Shapes follow TransformerLens: attention patterns are [batch, head, query_pos, key_pos],
z (the weighted values) is [batch, pos, head, d_head], W_Q/W_O are [layer, head, ...] and
W_K/W_V are [layer, kv_head, ...] (fewer key/value heads on grouped-query models: query head
h reads key/value head h // (n_heads // n_kv_heads)). The code between ``### BEGIN SOLUTION``
and ``### END SOLUTION`` is what students write.
"""

import math

import torch
from tqdm.auto import tqdm

from autograder.authoring.spec import SMALL_MODEL_LAYERS, Exercise, Mistake

# --- Shared: tolerances, input descriptions, helpers -------------------------------------

TOKENS = "repeated random tokens (BOS, seq_len random tokens, the same again)"
MODEL_TOL = dict(atol=1e-3, rtol=1e-3)
PURE_TOL = dict(atol=1e-5, rtol=1e-4)
DETECTOR = ("layer", "head")
DETECTOR_INPUTS = f"{TOKENS}: seq_len 20, batch 2 and, hidden, a seeded seq_len with batch 3 or 4"
BOS_SHIFT = ("forgot the BOS shift: the second half is positions seq_len + 1 .. 2 * seq_len "
             "(position 0 is BOS), so queries start at seq_len + 1 and include the last position")


def _seed(generator) -> int:
    """A token seed for `repeated_random_tokens`, drawn from the case generator."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def _randint(generator, low, high) -> int:
    """An int drawn uniformly from [low, high)."""
    return int(torch.randint(low, high, (1,), generator=generator))


def _batch_and_seq_len(generator, batches, max_tokens, min_seq_len):
    """A batch size from `batches` and a seq_len >= min_seq_len whose repeated random tokens
    (batch * (1 + 2 * seq_len)) fit in max_tokens, to keep hidden cases cheap."""
    batch = batches[_randint(generator, 0, len(batches))]
    longest = (max_tokens // batch - 1) // 2
    return batch, _randint(generator, min_seq_len, longest + 1)


def _visible_and_hidden_tokens(model, generator, visible, batches, max_tokens, min_seq_len):
    """Cases of an exercise that takes (model, tokens): the visible one, repeated random
    tokens of (seq_len, batch, seed) `visible`, and a hidden one of seeded size and seed."""
    batch, seq_len = _batch_and_seq_len(generator, batches, max_tokens, min_seq_len)
    return [dict(model=model, tokens=repeated_random_tokens(model, *visible)),
            dict(model=model, tokens=repeated_random_tokens(model, seq_len, batch,
                                                            seed=_seed(generator)))]


def _scores_at(model, tokens, offset, first_query, last_query=None):
    """Mean over batch of pattern[i, i - offset] for queries first_query..last_query."""
    patterns = all_layer_patterns(model, tokens)
    last_query = tokens.shape[1] - 1 if last_query is None else last_query
    stripe = patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)
    return stripe[..., first_query - offset:last_query - offset + 1].mean(dim=(1, -1))


def _half(tokens):
    return (tokens.shape[1] - 1) // 2


# Repeated random tokens are 1 + 2 * seq_len long: pos // 2 is (pos - 1) // 2 for every input.
ODD_LENGTH = "repeated random tokens have an odd length, 1 + 2 * seq_len: pos // 2 == (pos - 1) // 2"
SEQ_LEN_EQUIVALENTS = {"seq_len = (tokens.shape[1]) // 2": ODD_LENGTH,
                       "seq_len = (tokens.shape[1] - 0) // 2": ODD_LENGTH}


EXERCISES: list[Exercise] = []


# --- Exercise 1: repeated random tokens --------------------------------------------------


def repeated_random_tokens(model, seq_len: int, batch: int, seed: int,
                           low: int = 1000, high: int = 10000) -> torch.Tensor:
    """A batch of random token sequences, each followed by an exact repeat of itself.

    Draw the random half with ``torch.randint(low, high, (batch, seq_len), generator=g)``
    where ``g = torch.Generator().manual_seed(seed)`` (on the CPU, so every machine draws the
    same tokens; ids in [low, high) are ordinary tokens on both course models, never special
    ones). Each row is then: the BOS token (``model.tokenizer.bos_token_id``), the random
    half, the same half again.

    Returns int64 [batch, 1 + 2 * seq_len] on the model's device (``model.cfg.device``).
    """
    ### BEGIN SOLUTION
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(low, high, (batch, seq_len), generator=generator)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    return torch.cat([bos, half, half], dim=1).to(model.cfg.device)
    ### END SOLUTION


def _tokens_without_bos(model, seq_len, batch, seed, low=1000, high=10000):
    return repeated_random_tokens(model, seq_len, batch, seed, low, high)[:, 1:]


def _tokens_two_draws(model, seq_len, batch, seed, low=1000, high=10000):
    generator = torch.Generator().manual_seed(seed)
    first = torch.randint(low, high, (batch, seq_len), generator=generator)
    second = torch.randint(low, high, (batch, seq_len), generator=generator)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    return torch.cat([bos, first, second], dim=1).to(model.cfg.device)


def _tokens_interleaved(model, seq_len, batch, seed, low=1000, high=10000):
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(low, high, (batch, seq_len), generator=generator)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    return torch.cat([bos, half.repeat_interleave(2, dim=1)], dim=1).to(model.cfg.device)


def _tokens_one_row(model, seq_len, batch, seed, low=1000, high=10000):
    generator = torch.Generator().manual_seed(seed)
    half = torch.randint(low, high, (1, seq_len), generator=generator).expand(batch, -1)
    bos = torch.full((batch, 1), model.tokenizer.bos_token_id, dtype=torch.long)
    return torch.cat([bos, half, half], dim=1).to(model.cfg.device)


def _token_cases(model, generator):
    cases = [dict(model=model, seq_len=10, batch=2, seed=0)]
    cases.append(dict(model=model, seq_len=_randint(generator, 11, 26),
                      batch=_randint(generator, 3, 5), seed=_seed(generator)))
    low = _randint(generator, 1000, 4000)  # another range of ordinary tokens
    high = low + _randint(generator, 2000, 6001)
    cases.append(dict(model=model, seq_len=_randint(generator, 5, 10),
                      batch=_randint(generator, 3, 5), seed=_seed(generator), low=low, high=high))
    return cases


EXERCISES.append(Exercise(
    repeated_random_tokens, ("batch", "pos"), _token_cases,
    "seq_len 10, batch 2, seed 0 and, hidden, seeded seq_len, batch (3 or 4) and seed, once "
    "with another range [low, high) inside [1000, 10000)",
    atol=0, rtol=0, needs_model=True, mistakes=(
        Mistake("no_bos", "left out the BOS token at position 0 "
                "(model.tokenizer.bos_token_id)", _tokens_without_bos),
        Mistake("two_draws", "drew the second half separately: it must repeat the first "
                "half exactly (draw once, concatenate twice)", _tokens_two_draws),
        Mistake("interleaved", "repeated each token in place (a a b b ...); repeat the "
                "whole half (a b ... a b ...)", _tokens_interleaved),
        Mistake("one_row", "drew one sequence for the whole batch; draw a [batch, seq_len] "
                "tensor so each row is different", _tokens_one_row),
    ), equivalent_mutants={
        "bos = torch.full((batch, 1), model.tokenizer.bos_token_id)":
            "torch.full with an integer fill value makes int64 already"}))


# --- Exercise 2: the loss on each token --------------------------------------------------


def per_token_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """The model's loss (cross-entropy) for predicting each next token.

    tokens: int [batch, pos]. Entry [b, j] of the result is -log p(tokens[b, j + 1]) under the
    model's prediction at position j. Returns float [batch, pos - 1].
    """
    ### BEGIN SOLUTION
    log_probs = model(tokens).log_softmax(dim=-1)
    return -log_probs[:, :-1].gather(dim=-1, index=tokens[:, 1:, None])[..., 0]
    ### END SOLUTION


def _loss_current_token(model, tokens):
    log_probs = model(tokens).log_softmax(dim=-1)
    return -log_probs[:, :-1].gather(dim=-1, index=tokens[:, :-1, None])[..., 0]


def _loss_not_negated(model, tokens):
    return -per_token_loss(model, tokens)


def _loss_shifted_logits(model, tokens):
    log_probs = model(tokens).log_softmax(dim=-1)
    return -log_probs[:, 1:].gather(dim=-1, index=tokens[:, 1:, None])[..., 0]


def _loss_probabilities(model, tokens):
    probs = model(tokens).softmax(dim=-1)
    return -probs[:, :-1].gather(dim=-1, index=tokens[:, 1:, None])[..., 0]


def _loss_cases(model, generator):
    return _visible_and_hidden_tokens(model, generator, (10, 2, 1), (3, 4),
                                      max_tokens=82, min_seq_len=6)


EXERCISES.append(Exercise(
    per_token_loss, ("batch", "pos"), _loss_cases,
    f"{TOKENS}: seq_len 10, batch 2 and, hidden, a seeded seq_len with batch 3 or 4",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("current_token", "scored the current token instead of the next one: the "
                "prediction at position j is for tokens[:, j + 1]", _loss_current_token),
        Mistake("not_negated", "returned the log-probability; the loss is its negative",
                _loss_not_negated),
        Mistake("shifted_logits", "took the predictions from positions 1.. instead of "
                "0..pos-2 (logits[:, :-1] predict tokens[:, 1:])", _loss_shifted_logits),
        Mistake("probabilities", "used probabilities (softmax) instead of "
                "log-probabilities (log_softmax)", _loss_probabilities),
    ), equivalent_mutants={
        "return -log_probs[:, :].gather(dim=-1, index=tokens[:, 1:, None])[..., 0]":
            "gather's output has the index's shape: it reads positions 0..pos-2 either way"}))


# --- Exercise 3: the loss on each half ---------------------------------------------------


def loss_by_half(loss: torch.Tensor, seq_len: int) -> torch.Tensor:
    """Mean loss on the first and on the second half of repeated random tokens.

    loss: [batch, 2 * seq_len], the output of `per_token_loss` on tokens [batch, 1 + 2 * seq_len]
    (BOS, first half, second half). loss[:, j] is the loss of predicting token j + 1, so the
    first seq_len entries predict first-half tokens and the rest predict second-half tokens.
    Returns [2]: the mean over batch and positions of each group, first half first.
    """
    ### BEGIN SOLUTION
    return torch.stack([loss[:, :seq_len].mean(), loss[:, seq_len:].mean()])
    ### END SOLUTION


def _halves_split_late(loss, seq_len):
    return torch.stack([loss[:, :seq_len + 1].mean(), loss[:, seq_len + 1:].mean()])


def _halves_split_early(loss, seq_len):
    return torch.stack([loss[:, :seq_len - 1].mean(), loss[:, seq_len - 1:].mean()])


def _halves_swapped(loss, seq_len):
    return loss_by_half(loss, seq_len).flip(0)


def _loss_by_half_cases(gen):
    return [dict(loss=torch.rand(2, 12, generator=gen) * 10, seq_len=6),
            dict(loss=torch.rand(3, 20, generator=gen) * 10, seq_len=10)]


EXERCISES.append(Exercise(
    loss_by_half, ("half",), _loss_by_half_cases, "loss: seeded uniform [0, 10) tensors",
    **PURE_TOL, mistakes=(
        Mistake("split_late", "split one position late: loss[:, seq_len] already predicts "
                "the first token of the second half", _halves_split_late),
        Mistake("split_early", "split one position early: the first half has seq_len "
                "predictions", _halves_split_early),
        Mistake("swapped", "returned the halves in the wrong order (first half first)",
                _halves_swapped),
    )))


# --- Exercise 4: average attention along a diagonal --------------------------------------


def diagonal_attention_score(patterns: torch.Tensor, offset: int, first_query: int) -> torch.Tensor:
    """Average attention from each query position i to the key position i - offset.

    patterns: [..., query_pos, key_pos] (any leading dimensions). Average
    patterns[..., i, i - offset] over the query positions i = first_query, ..., query_pos - 1
    (first_query >= offset >= 0). Returns the leading dimensions [...].
    """
    ### BEGIN SOLUTION
    stripe = patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)  # entry k is query k + offset
    return stripe[..., first_query - offset:].mean(dim=-1)
    ### END SOLUTION


def _diagonal_above(patterns, offset, first_query):
    stripe = patterns.diagonal(offset=offset, dim1=-2, dim2=-1)
    return stripe[..., first_query - offset:].mean(dim=-1) if stripe.shape[-1] else stripe.sum(-1)


def _diagonal_from_start(patterns, offset, first_query):
    return patterns.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(dim=-1)


def _diagonal_sliced_at_first_query(patterns, offset, first_query):
    return patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)[..., first_query:].mean(dim=-1)


def _diagonal_summed(patterns, offset, first_query):
    return patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)[..., first_query - offset:].sum(-1)


def _random_patterns(gen, *leading, pos):
    scores = torch.randn(*leading, pos, pos, generator=gen)
    future = torch.triu(torch.ones(pos, pos, dtype=torch.bool), 1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def _diagonal_cases(gen):
    return [dict(patterns=_random_patterns(gen, 2, 3, pos=11), offset=4, first_query=6),
            dict(patterns=_random_patterns(gen, 3, 2, 4, pos=13), offset=5, first_query=7),
            dict(patterns=_random_patterns(gen, 4, pos=9), offset=1, first_query=1)]


EXERCISES.append(Exercise(
    diagonal_attention_score, ("...",), _diagonal_cases,
    "patterns: seeded random causal attention patterns", **PURE_TOL, mistakes=(
        Mistake("above_diagonal", "took the diagonal above the main one (future keys, "
                "masked to 0); key i - offset is below it: diagonal(offset=-offset)",
                _diagonal_above),
        Mistake("all_queries", "averaged the whole diagonal; start at query first_query",
                _diagonal_from_start),
        Mistake("sliced_at_first_query", "sliced the diagonal at first_query: its entry k "
                "belongs to query k + offset, so slice at first_query - offset",
                _diagonal_sliced_at_first_query),
        Mistake("summed", "summed over queries instead of averaging", _diagonal_summed),
    )))


# --- Exercise 5: every layer's attention pattern -----------------------------------------


def all_layer_patterns(model, tokens: torch.Tensor) -> torch.Tensor:
    """Every layer's attention pattern on `tokens`, stacked.

    Run the model, caching only the ``hook_pattern`` activations (a ``names_filter``).
    Returns [layer, batch, head, query_pos, key_pos].
    """
    ### BEGIN SOLUTION
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    return torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])
    ### END SOLUTION


def _pattern_cases(model, generator):
    return _visible_and_hidden_tokens(model, generator, (4, 1, 3), (2, 3),
                                      max_tokens=22, min_seq_len=3)


EXERCISES.append(Exercise(
    all_layer_patterns, ("layer", "batch", "head", "query_pos", "key_pos"), _pattern_cases,
    f"{TOKENS}: seq_len 4, batch 1 and, hidden, a seeded seq_len (3 to 5) with batch 2 or 3",
    **MODEL_TOL, needs_model=True, equivalent_mutants={
        "_, cache = model.run_with_cache(tokens)": "names_filter only keeps fewer activations "
                                                   "in memory; the patterns read are the same"}))


# --- Exercise 6: previous-token scores ---------------------------------------------------


def previous_token_scores(model, tokens: torch.Tensor) -> torch.Tensor:
    """How much each head attends to the previous token.

    tokens: repeated random tokens [batch, 1 + 2 * seq_len]. Average the attention from query
    i to key i - 1 over every query position i >= 1 and over the batch.
    Returns [layer, head].
    """
    ### BEGIN SOLUTION
    return diagonal_attention_score(all_layer_patterns(model, tokens), 1, 1).mean(dim=1)
    ### END SOLUTION


def _previous_current_token(model, tokens):
    return _scores_at(model, tokens, 0, 1)


def _previous_two_back(model, tokens):
    return _scores_at(model, tokens, 2, 2)


def _previous_second_half_only(model, tokens):
    return _scores_at(model, tokens, 1, _half(tokens) + 1)


# Also the cases of exercises 7 to 9.
def _detector_cases(model, generator):
    return _visible_and_hidden_tokens(model, generator, (20, 2, 5), (3, 4),
                                      max_tokens=183, min_seq_len=12)


EXERCISES.append(Exercise(
    previous_token_scores, DETECTOR, _detector_cases,
    DETECTOR_INPUTS, **MODEL_TOL,
    needs_model=True, mistakes=(
        Mistake("current_token", "read the main diagonal (the current token); the "
                "previous token is one below it", _previous_current_token),
        Mistake("two_back", "read two positions back", _previous_two_back),
        Mistake("second_half_only", "averaged only the second half; the previous-token "
                "score uses every query position i >= 1", _previous_second_half_only),
    )))


# --- Exercise 7: duplicate-token scores --------------------------------------------------


def duplicate_token_scores(model, tokens: torch.Tensor) -> torch.Tensor:
    """How much each head attends to the earlier copy of the current token.

    tokens: repeated random tokens [batch, 1 + 2 * seq_len], with seq_len = (pos - 1) // 2.
    For each query i of the second half (i = seq_len + 1, ..., 2 * seq_len), the same token
    sits at i - seq_len. Average that attention over those queries and the batch.
    Returns [layer, head].
    """
    ### BEGIN SOLUTION
    seq_len = (tokens.shape[1] - 1) // 2
    patterns = all_layer_patterns(model, tokens)
    return diagonal_attention_score(patterns, seq_len, seq_len + 1).mean(dim=1)
    ### END SOLUTION


def _duplicate_is_induction(model, tokens):
    return _scores_at(model, tokens, _half(tokens) - 1, _half(tokens) + 1)


def _duplicate_one_too_far_back(model, tokens):
    return _scores_at(model, tokens, _half(tokens) + 1, _half(tokens) + 1)


EXERCISES.append(Exercise(
    duplicate_token_scores, DETECTOR, _detector_cases,
    DETECTOR_INPUTS, **MODEL_TOL,
    needs_model=True, mistakes=(
        Mistake("induction", "read key i - seq_len + 1, the token after the earlier copy "
                "(that is the induction score); the duplicate is at i - seq_len",
                _duplicate_is_induction),
        Mistake("one_too_far_back", "read key i - seq_len - 1, one before the earlier copy",
                _duplicate_one_too_far_back),
    ), equivalent_mutants=SEQ_LEN_EQUIVALENTS))


# --- Exercise 8: induction scores --------------------------------------------------------


def induction_scores(model, tokens: torch.Tensor) -> torch.Tensor:
    """How much each head attends to the token *after* the earlier copy of the current token.

    tokens: repeated random tokens [batch, 1 + 2 * seq_len], with seq_len = (pos - 1) // 2.
    For each query i of the second half (i = seq_len + 1, ..., 2 * seq_len) that is key
    i - seq_len + 1. Average that attention over those queries and the batch.
    Returns [layer, head].
    """
    ### BEGIN SOLUTION
    seq_len = (tokens.shape[1] - 1) // 2
    patterns = all_layer_patterns(model, tokens)
    return diagonal_attention_score(patterns, seq_len - 1, seq_len + 1).mean(dim=1)
    ### END SOLUTION


def _induction_is_duplicate(model, tokens):
    return _scores_at(model, tokens, _half(tokens), _half(tokens) + 1)


def _induction_two_ahead(model, tokens):
    return _scores_at(model, tokens, _half(tokens) - 2, _half(tokens) + 1)


def _induction_without_bos_shift(model, tokens):
    # Halves taken as positions 0..s-1 and s..2s-1, as if there were no BOS token.
    seq_len = tokens.shape[1] // 2
    return _scores_at(model, tokens, seq_len - 1, seq_len, 2 * seq_len - 1)


def _induction_whole_diagonal(model, tokens):
    return _scores_at(model, tokens, _half(tokens) - 1, _half(tokens) - 1)


def _induction_summed(model, tokens):
    return induction_scores(model, tokens) * _half(tokens)


EXERCISES.append(Exercise(
    induction_scores, DETECTOR, _detector_cases,
    DETECTOR_INPUTS, **MODEL_TOL,
    needs_model=True, mistakes=(
        Mistake("duplicate", "attended to the earlier copy of the token itself (key "
                "i - seq_len: a duplicate-token score); induction reads the token after "
                "it, key i - seq_len + 1", _induction_is_duplicate),
        Mistake("two_ahead", "read key i - seq_len + 2: one too far forward",
                _induction_two_ahead),
        Mistake("bos_shift", BOS_SHIFT, _induction_without_bos_shift),
        Mistake("whole_diagonal", "averaged the whole diagonal; only queries of the "
                "second half (i >= seq_len + 1) count", _induction_whole_diagonal),
        Mistake("summed", "summed over query positions instead of averaging",
                _induction_summed),
    ), equivalent_mutants=SEQ_LEN_EQUIVALENTS))


# --- Exercise 9: induction scores with hooks ---------------------------------------------


def induction_scores_with_hooks(model, tokens: torch.Tensor) -> torch.Tensor:
    """`induction_scores`, computed inside the forward pass without caching any pattern.

    Add one forward hook on every ``blocks.{layer}.attn.hook_pattern`` with
    ``model.run_with_hooks(tokens, return_type=None, fwd_hooks=[(name_or_filter, fn), ...])``.
    A hook is called as ``fn(pattern, hook)`` (``hook.layer()`` is the layer) and should
    return None: it only writes that layer's scores into a [layer, head] tensor created
    beforehand. Returns [layer, head], equal to `induction_scores`.
    """
    ### BEGIN SOLUTION
    seq_len = (tokens.shape[1] - 1) // 2
    scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, device=model.cfg.device)

    def score_hook(pattern, hook):
        scores[hook.layer()] = diagonal_attention_score(pattern, seq_len - 1, seq_len + 1).mean(0)

    model.run_with_hooks(tokens, return_type=None,
                         fwd_hooks=[(lambda name: name.endswith("hook_pattern"), score_hook)])
    return scores
    ### END SOLUTION


EXERCISES.append(Exercise(
    induction_scores_with_hooks, DETECTOR, _detector_cases,
    DETECTOR_INPUTS, **MODEL_TOL,
    needs_model=True, mistakes=(
        Mistake("duplicate", "attended to the earlier copy of the token itself; "
                "induction reads key i - seq_len + 1", _induction_is_duplicate),
        Mistake("bos_shift", BOS_SHIFT, _induction_without_bos_shift),
        Mistake("whole_diagonal", "averaged the whole diagonal; only queries of the "
                "second half count", _induction_whole_diagonal),
    ), equivalent_mutants={
        **SEQ_LEN_EQUIVALENTS,
        "scores = torch.zeros(model.cfg.n_layers, model.cfg.n_heads)":
            "the same on the CPU; on a GPU the grader's device check fails it",
        "model.run_with_hooks(tokens, fwd_hooks=[(lambda name: name.endswith('hook_pattern'), score_hook)])":
            "return_type=None only skips computing the logits, which are not used"}))


# --- Exercise 10: ablating heads, one run per head ---------------------------------------


def head_ablation_loss_increase_slow(model, tokens: torch.Tensor, kind: str = "zero",
                                     layers=None) -> torch.Tensor:
    """How much the loss on the repeated half rises when one head is ablated: one run per head.

    tokens: repeated random tokens [batch, 1 + 2 * seq_len]. The loss is the mean of
    `per_token_loss` over the batch and the second-half predictions (entries seq_len onwards,
    as in `loss_by_half`). To ablate head h of layer L, hook ``blocks.{L}.attn.hook_z``
    (z: [batch, pos, head, d_head], before the output projection W_O) and replace z[:, :, h]
    with zeros (kind="zero") or with that head's mean z over the batch and all positions of a
    clean run (kind="mean"). ``model.run_with_hooks(tokens, return_type="loss",
    loss_per_token=True, fwd_hooks=[...])`` returns the per-token loss of a hooked run.
    layers: the layers to sweep (default: all). Returns [len(layers), head]: ablated loss minus
    clean loss.
    """
    ### BEGIN SOLUTION
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    seq_len = (tokens.shape[1] - 1) // 2
    clean = model(tokens, return_type="loss", loss_per_token=True)[:, seq_len:].mean()
    if kind == "mean":
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_z"))
    increases = torch.zeros(len(layers), model.cfg.n_heads, device=model.cfg.device)
    for row, layer in enumerate(tqdm(layers, desc="layers")):
        for head in range(model.cfg.n_heads):
            replacement = 0.0 if kind == "zero" else cache["z", layer][:, :, head].mean(dim=(0, 1))

            def ablate(z, hook):
                z[:, :, head] = replacement
                return z

            loss = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True,
                                        fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate)])
            increases[row, head] = loss[:, seq_len:].mean() - clean
    return increases
    ### END SOLUTION


def _ablation_variant(model, tokens, kind="zero", layers=None, *, site="z", mean_dims=(0, 1),
                      loss_positions="second", subtract=True, index="head"):
    """Batched head ablation (one pass per layer) with a switch for each known mistake."""
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    n_heads, batch, d_head = model.cfg.n_heads, tokens.shape[0], model.cfg.d_head
    first = _half(tokens) if loss_positions == "second" else 0
    clean = model(tokens, return_type="loss", loss_per_token=True)[:, first:].mean()
    hook_name = "blocks.{}.attn.hook_z" if site == "z" else "blocks.{}.hook_attn_out"
    names = {hook_name.format(layer) for layer in layers}
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name in names)
    result = torch.zeros(len(layers), n_heads, device=model.cfg.device)
    for row, layer in enumerate(layers):
        activation = cache[hook_name.format(layer)]
        targets = []
        for head in range(n_heads):
            if site != "z":  # a slice of the attention output, after W_O
                where = (slice(None), slice(head * d_head, (head + 1) * d_head))
            elif index == "position":
                where = (head,)
            else:
                where = (slice(None), head)
            replacement = 0.0 if kind == "zero" else activation[(slice(None),) + where].mean(mean_dims)
            targets.append((where, replacement))

        def ablate(value, hook, targets=targets):
            for copy, (where, replacement) in enumerate(targets):
                value[(slice(copy * batch, (copy + 1) * batch),) + where] = replacement
            return value

        loss = model.run_with_hooks(tokens.repeat(n_heads, 1), return_type="loss",
                                    loss_per_token=True,
                                    fwd_hooks=[(hook_name.format(layer), ablate)])
        ablated = loss[:, first:].reshape(n_heads, -1).mean(dim=1)
        result[row] = ablated - clean if subtract else ablated
    return result


def _ablation_after_output_projection(model, tokens, kind="zero", layers=None, **_):
    return _ablation_variant(model, tokens, kind, layers, site="attn_out")


def _ablation_kind_swapped(model, tokens, kind="zero", layers=None, **_):
    return _ablation_variant(model, tokens, "mean" if kind == "zero" else "zero", layers)


def _ablation_position_indexed(model, tokens, kind="zero", layers=None, **_):
    return _ablation_variant(model, tokens, kind, layers, index="position", mean_dims=0)


def _ablation_mean_per_position(model, tokens, kind="zero", layers=None, **_):
    return _ablation_variant(model, tokens, kind, layers, mean_dims=0)


def _ablation_whole_sequence(model, tokens, kind="zero", layers=None, **_):
    return _ablation_variant(model, tokens, kind, layers, loss_positions="all")


def _ablation_not_subtracted(model, tokens, kind="zero", layers=None, **_):
    return _ablation_variant(model, tokens, kind, layers, subtract=False)


# Also the cases of exercise 11.
def _ablation_cases(model, generator):
    n_layers, middle = model.cfg.n_layers, model.cfg.n_layers // 2
    kinds = ("zero", "mean") if _randint(generator, 0, 2) else ("mean", "zero")
    one_layer = [_randint(generator, 0, n_layers)]
    two_layers = torch.randperm(n_layers, generator=generator)[:2].tolist()
    # seq_len 6 and 8: more positions than heads, so z[:, head] (a position) always exists.
    tokens_3 = repeated_random_tokens(model, 6, 3, seed=_seed(generator))
    tokens_1 = repeated_random_tokens(model, 8, 1, seed=_seed(generator))
    # Mean ablation needs a batch of several rows: over one row, the mean per position (a
    # known mistake) is the activation itself.
    batches = {"mean": tokens_3, "zero": tokens_1}
    cases = [dict(model=model, tokens=repeated_random_tokens(model, 8, 2, seed=8), kind="zero",
                  layers=[middle]),
             dict(model=model, tokens=batches[kinds[0]], kind=kinds[0], layers=one_layer),
             dict(model=model, tokens=batches[kinds[1]], kind=kinds[1], layers=two_layers)]
    if n_layers <= SMALL_MODEL_LAYERS:  # the default, every layer, where that is cheap
        cases.append(dict(model=model, tokens=tokens_1, kind="zero"))
    return cases


_ABLATION_MISTAKES = (
    Mistake("after_output_projection", "ablated a slice of hook_attn_out, after the output "
            "projection, where heads are already mixed; ablate the head's z (hook_z) before W_O",
            _ablation_after_output_projection),
    Mistake("kind_swapped", "used zero ablation where mean ablation was asked, or the reverse",
            _ablation_kind_swapped),
    Mistake("position_indexed", "indexed z[:, head]: that is a position; z is [batch, pos, head, "
            "d_head], so the head is z[:, :, head]", _ablation_position_indexed),
    Mistake("mean_per_position", "took the mean over the batch only (one mean per position); "
            "mean ablation uses the head's mean over batch and positions", _ablation_mean_per_position),
    Mistake("whole_sequence", "measured the loss on the whole sequence; use the second-half "
            "predictions only (entries seq_len onwards)", _ablation_whole_sequence),
    Mistake("not_subtracted", "returned the ablated loss; subtract the clean loss",
            _ablation_not_subtracted),
)
_ABLATION_INPUTS = (f"{TOKENS}: seq_len 8, batch 2, zero ablation of the middle layer; hidden: "
                    "mean ablation (seq_len 6, batch 3) and zero ablation (seq_len 8, batch 1), "
                    "one of them of one seeded layer, the other of two, and on the grader's "
                    "4-layer models zero ablation of every layer (layers left out)")

EXERCISES.append(Exercise(
    head_ablation_loss_increase_slow, ("layer", "head"), _ablation_cases, _ABLATION_INPUTS,
    **MODEL_TOL, needs_model=True, mistakes=_ABLATION_MISTAKES, equivalent_mutants={
        **SEQ_LEN_EQUIVALENTS,
        "increases = torch.zeros(len(layers), model.cfg.n_heads)":
            "the same on the CPU; on a GPU the grader's device check fails it",
        "_, cache = model.run_with_cache(tokens)": "names_filter only keeps fewer activations "
                                                   "in memory; the values read are the same",
        "for row, layer in enumerate(tqdm(layers)):": "desc only labels the progress bar"}))


# --- Exercise 11: ablating heads, batched ------------------------------------------------


def head_ablation_loss_increase(model, tokens: torch.Tensor, kind: str = "zero", layers=None,
                                heads_per_pass: int | None = None) -> torch.Tensor:
    """`head_ablation_loss_increase_slow`, batched: several heads ablated in one forward pass.

    Repeat the batch k times (``tokens.repeat(k, 1)``: copy c is rows c*batch..(c+1)*batch-1)
    and let one hook on layer L ablate a different head in each copy; then split the
    per-token loss back into the k copies. heads_per_pass: k (default: all heads of a layer,
    so one pass per layer; lower it to save memory). Same arguments and result as the slow
    version: [len(layers), head].
    """
    ### BEGIN SOLUTION
    layers = list(range(model.cfg.n_layers)) if layers is None else list(layers)
    n_heads, batch = model.cfg.n_heads, tokens.shape[0]
    heads_per_pass = heads_per_pass or n_heads
    seq_len = (tokens.shape[1] - 1) // 2
    clean = model(tokens, return_type="loss", loss_per_token=True)[:, seq_len:].mean()
    if kind == "mean":
        _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_z"))
    increases = torch.zeros(len(layers), n_heads, device=model.cfg.device)
    passes = [(row, layer, list(range(start, min(start + heads_per_pass, n_heads))))
              for row, layer in enumerate(layers) for start in range(0, n_heads, heads_per_pass)]
    for row, layer, heads in tqdm(passes, desc="ablation passes"):
        mean_z = cache["z", layer].mean(dim=(0, 1)) if kind == "mean" else None  # [head, d_head]

        def ablate(z, hook):
            for copy, head in enumerate(heads):
                z[copy * batch:(copy + 1) * batch, :, head] = 0.0 if mean_z is None else mean_z[head]
            return z

        loss = model.run_with_hooks(tokens.repeat(len(heads), 1), return_type="loss",
                                    loss_per_token=True,
                                    fwd_hooks=[(f"blocks.{layer}.attn.hook_z", ablate)])
        per_copy = loss[:, seq_len:].reshape(len(heads), -1).mean(dim=1)
        increases[row, heads[0]:heads[-1] + 1] = per_copy - clean
    return increases
    ### END SOLUTION


def _batched_ablation_cases(model, generator):
    """The slow version's cases, then heads_per_pass that does not divide the number of
    heads, so the last pass of each layer is a shorter one: on every layer (the default,
    `layers` left out) of a model of at most SMALL_MODEL_LAYERS layers, else one seeded layer."""
    heads_per_pass = next(k for k in range(2, model.cfg.n_heads) if model.cfg.n_heads % k)
    case = dict(model=model, tokens=repeated_random_tokens(model, 6, 1, seed=_seed(generator)),
                kind="zero", heads_per_pass=heads_per_pass)
    if model.cfg.n_layers > SMALL_MODEL_LAYERS:
        case["layers"] = [_randint(generator, 0, model.cfg.n_layers)]
    return _ablation_cases(model, generator) + [case]


EXERCISES.append(Exercise(
    head_ablation_loss_increase, ("layer", "head"), _batched_ablation_cases,
    _ABLATION_INPUTS + "; and zero ablation (seq_len 6, batch 1) with the fewest heads per pass "
    "(from 2) that do not divide the number of heads, of every layer (layers left out) on the "
    "grader's 4-layer models, else of one seeded layer",
    **MODEL_TOL, needs_model=True, mistakes=_ABLATION_MISTAKES, equivalent_mutants={
        **SEQ_LEN_EQUIVALENTS,
        "increases = torch.zeros(len(layers), n_heads)":
            "the same on the CPU; on a GPU the grader's device check fails it",
        "_, cache = model.run_with_cache(tokens)": "names_filter only keeps fewer activations "
                                                   "in memory; the values read are the same",
        "for row, layer, heads in tqdm(passes):": "desc only labels the progress bar"}))


# --- Exercise 12: direct logit attribution -----------------------------------------------


def head_logit_attribution(model, tokens: torch.Tensor) -> torch.Tensor:
    """Each head's direct contribution to the logit of the correct next token.

    tokens: repeated random tokens [batch, 1 + 2 * seq_len]. Head h of layer L writes
    z[:, :, h] @ W_O[L, h] into the residual stream. The final norm divides the residual by
    ``cache["ln_final.hook_scale"]`` ([batch, pos, 1]; its weight is folded into W_U), and the
    logit of token t is then a dot product with ``model.W_U[:, t]``. Take, at each position j
    that predicts a second-half token (j = seq_len, ..., 2 * seq_len - 1), the head's output
    divided by that scale, dotted with the unembedding of the next token tokens[:, j + 1];
    average over those positions and the batch. Returns [layer, head].
    """
    ### BEGIN SOLUTION
    seq_len = (tokens.shape[1] - 1) // 2
    _, cache = model.run_with_cache(
        tokens, names_filter=lambda name: name.endswith("hook_z") or name == "ln_final.hook_scale")
    scale = cache["ln_final.hook_scale"][:, seq_len:-1]  # [batch, query, 1]
    directions = model.W_U[:, tokens[:, seq_len + 1:]]  # [d_model, batch, query]
    scores = []
    for layer in range(model.cfg.n_layers):
        z = cache["z", layer][:, seq_len:-1]  # [batch, query, head, d_head]
        head_out = torch.einsum("bqhd,hdm->bqhm", z, model.W_O[layer]) / scale[..., None]
        scores.append(torch.einsum("bqhm,mbq->h", head_out, directions) / scale[..., 0].numel())
    return torch.stack(scores)
    ### END SOLUTION


def _dla_parts(model, tokens):
    _, cache = model.run_with_cache(
        tokens, names_filter=lambda name: name.endswith("hook_z") or name == "ln_final.hook_scale")
    head_out = torch.stack([torch.einsum("bphd,hdm->bphm", cache["z", layer], model.W_O[layer])
                            for layer in range(model.cfg.n_layers)])  # [layer, b, pos, head, m]
    return head_out, cache["ln_final.hook_scale"]


def _dla(model, tokens, *, scale_power=-1, target_shift=1, first=None):
    """Direct logit attribution with switches: scale_power -1 divides by the final norm's scale."""
    first = _half(tokens) if first is None else first
    head_out, scale = _dla_parts(model, tokens)
    positions = torch.arange(first, tokens.shape[1] - 1, device=tokens.device)
    out = head_out[:, :, positions] * scale[:, positions][None, ..., None] ** scale_power
    directions = model.W_U[:, tokens[:, positions + target_shift]]  # [d_model, b, q]
    return torch.einsum("lbqhm,mbq->lh", out, directions) / (out.shape[1] * out.shape[2])


def _dla_no_scale(model, tokens):
    return _dla(model, tokens, scale_power=0)


def _dla_times_scale(model, tokens):
    return _dla(model, tokens, scale_power=1)


def _dla_current_token(model, tokens):
    return _dla(model, tokens, target_shift=0)


def _dla_whole_sequence(model, tokens):
    return _dla(model, tokens, first=0)


def _dla_cases(model, generator):
    return _visible_and_hidden_tokens(model, generator, (15, 2, 11), (3, 4),
                                      max_tokens=102, min_seq_len=8)


EXERCISES.append(Exercise(
    head_logit_attribution, DETECTOR, _dla_cases,
    f"{TOKENS}: seq_len 15, batch 2 and, hidden, a seeded seq_len with batch 3 or 4",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("no_scale", "left out the final norm: divide each head's output by "
                "cache['ln_final.hook_scale']", _dla_no_scale),
        Mistake("times_scale", "multiplied by the final norm's scale; the norm divides "
                "by it", _dla_times_scale),
        Mistake("current_token", "used the unembedding of the current token; position j "
                "predicts tokens[:, j + 1]", _dla_current_token),
        Mistake("whole_sequence", "averaged over every position; use the positions that "
                "predict second-half tokens (seq_len .. 2 * seq_len - 1)",
                _dla_whole_sequence),
    ), equivalent_mutants={
        **SEQ_LEN_EQUIVALENTS,
        "_, cache = model.run_with_cache(tokens)": "names_filter only keeps fewer activations "
                                                   "in memory; the values read are the same"}))


# --- Exercise 13: OV copying score -------------------------------------------------------


def ov_copying_score(model, layer: int, head: int, n_tokens: int = 200, seed: int = 0,
                     low: int = 1000, high: int = 10000) -> torch.Tensor:
    """The fraction of tokens that a head's OV circuit maps back to themselves.

    Draw ``tokens = torch.randint(low, high, (n_tokens,), generator=g)`` with
    ``g = torch.Generator().manual_seed(seed)``. For each token t, send its embedding
    model.W_E[t] through the head's OV circuit (W_V of its key/value group, then W_O) and
    the unembedding model.W_U; count t as copied if t itself gets the largest logit.
    Returns a 0-dim float tensor: the fraction copied.
    """
    ### BEGIN SOLUTION
    tokens = torch.randint(low, high, (n_tokens,), generator=torch.Generator().manual_seed(seed))
    tokens = tokens.to(model.cfg.device)
    group = model.cfg.n_heads // model.W_V.shape[1]
    W_OV = model.W_V[layer, head // group] @ model.W_O[layer, head]  # [d_model, d_model]
    logits = model.W_E[tokens] @ W_OV @ model.W_U  # [n_tokens, d_vocab]
    return (logits.argmax(dim=-1) == tokens).float().mean()
    ### END SOLUTION


def _copying(model, layer, head, n_tokens, seed, low, high, *, kv_head=None, unembed=None,
             weight="V"):
    tokens = torch.randint(low, high, (n_tokens,), generator=torch.Generator().manual_seed(seed))
    tokens = tokens.to(model.cfg.device)
    group = model.cfg.n_heads // model.W_V.shape[1]
    kv_head = head // group if kv_head is None else kv_head
    W_in = (model.W_V if weight == "V" else model.W_Q)[layer, kv_head if weight == "V" else head]
    W_OV = W_in @ model.W_O[layer, head]
    W_U = model.W_U if unembed is None else unembed
    logits = model.W_E[tokens] @ W_OV @ W_U
    return (logits.argmax(dim=-1) == tokens).float().mean()


def _copying_kv_tiled(model, layer, head, n_tokens=200, seed=0, low=1000, high=10000):
    return _copying(model, layer, head, n_tokens, seed, low, high,
                    kv_head=head % model.W_V.shape[1])


def _copying_embedding_as_unembedding(model, layer, head, n_tokens=200, seed=0, low=1000,
                                      high=10000):
    return _copying(model, layer, head, n_tokens, seed, low, high, unembed=model.W_E.T)


def _copying_query_weights(model, layer, head, n_tokens=200, seed=0, low=1000, high=10000):
    return _copying(model, layer, head, n_tokens, seed, low, high, weight="Q")


def _copying_heads(model, n_heads_kept, n_tokens=100):
    """The (layer, head) pairs whose OV circuit copies best, by a cheap estimate: how often a
    token's logit is the largest among the sampled tokens (not the whole vocabulary). Most
    heads copy nothing, and a case whose answer is 0 would not tell mistakes apart."""
    tokens = torch.randint(1000, 10000, (n_tokens,), generator=torch.Generator().manual_seed(0))
    tokens = tokens.to(model.cfg.device)
    group = model.cfg.n_heads // model.W_V.shape[1]
    embeddings, unembeddings = model.W_E[tokens], model.W_U[:, tokens]
    with torch.no_grad():
        scores = torch.stack([
            ((embeddings @ model.W_V[layer].repeat_interleave(group, dim=0) @ model.W_O[layer]
              @ unembeddings).argmax(dim=-1) == torch.arange(n_tokens, device=tokens.device))
            .float().mean(dim=-1)
            for layer in range(model.cfg.n_layers)])  # [layer, head]
    best = scores.flatten().argsort(descending=True, stable=True)[:n_heads_kept].tolist()
    return [divmod(index, model.cfg.n_heads) for index in best]


def _copying_cases(model, generator):
    n_layers = model.cfg.n_layers
    cases = [dict(model=model, layer=n_layers - 1, head=1, n_tokens=200, seed=0)]
    candidates = _copying_heads(model, 10)
    chosen = [candidates[i] for i in torch.randperm(len(candidates), generator=generator)[:2].tolist()]
    # and the best copier among the heads of the last key/value group (not head 0's), so
    # that reading the wrong group's W_V gives another answer
    group = model.cfg.n_heads // model.W_V.shape[1]
    chosen.append(next(pair for pair in _copying_heads(model, n_layers * model.cfg.n_heads)
                       if pair[1] // group == model.W_V.shape[1] - 1))
    for other_range, (layer, head) in zip((False, True, False), chosen):
        # n_tokens >= 170: one token more or less copied stays within atol=0.006.
        case = dict(model=model, layer=layer, head=head, n_tokens=_randint(generator, 170, 201),
                    seed=_seed(generator))
        if other_range:
            case["low"] = _randint(generator, 1000, 4000)
            case["high"] = case["low"] + _randint(generator, 2000, 6001)
        cases.append(case)
    return cases


EXERCISES.append(Exercise(
    ov_copying_score, (), _copying_cases,
    "200 tokens from [1000, 10000), last layer, head 1 and, hidden, two heads drawn from the "
    "ten that copy best (by a cheap estimate) and the best copier of the last key/value "
    "group, seeded seeds and 170 to 200 tokens, once from another range inside [1000, 10000)",
    atol=0.006, rtol=0, needs_model=True, mistakes=(
        Mistake("kv_tiled", "used key/value head `head % n_kv_heads`; query head h reads "
                "key/value head h // (n_heads // n_kv_heads)", _copying_kv_tiled),
        Mistake("embedding_as_unembedding", "used W_E.T instead of the unembedding W_U",
                _copying_embedding_as_unembedding),
        Mistake("query_weights", "used W_Q instead of W_V: the OV circuit is W_V @ W_O",
                _copying_query_weights),
    ), equivalent_mutants={
        "deleted: tokens = tokens.to(model.cfg.device)":
            "the same on the CPU; on a GPU the grader's device check fails it"}))


# --- Exercise 14: QK scores --------------------------------------------------------------


def qk_scores(model, layer: int, head: int, queries: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Attention scores of one head between given residual-stream vectors (weights only).

    queries: [n_query, d_model]; keys: [n_key, d_model]. Map queries with W_Q of the head and
    keys with W_K of its key/value group, and return their dot products divided by
    sqrt(d_head): [n_query, n_key]. (No rotary embedding: on rotary models this is the score
    at relative distance 0.)
    """
    ### BEGIN SOLUTION
    group = model.cfg.n_heads // model.W_K.shape[1]
    q = queries @ model.W_Q[layer, head]
    k = keys @ model.W_K[layer, head // group]
    return q @ k.T / math.sqrt(q.shape[-1])
    ### END SOLUTION


def _qk(model, layer, head, queries, keys, *, kv_head=None, scale=True, swapped=False):
    group = model.cfg.n_heads // model.W_K.shape[1]
    kv_head = head // group if kv_head is None else kv_head
    W_Q, W_K = model.W_Q[layer, head], model.W_K[layer, kv_head]
    if swapped:
        W_Q, W_K = W_K, W_Q
    scores = (queries @ W_Q) @ (keys @ W_K).T
    return scores / math.sqrt(model.cfg.d_head) if scale else scores


def _qk_kv_tiled(model, layer, head, queries, keys):
    return _qk(model, layer, head, queries, keys, kv_head=head % model.W_K.shape[1])


def _qk_unscaled(model, layer, head, queries, keys):
    return _qk(model, layer, head, queries, keys, scale=False)


def _qk_swapped(model, layer, head, queries, keys):
    return _qk(model, layer, head, queries, keys, swapped=True)


def _normalised_embeddings(model, ids):
    """Rows of W_E for `ids`, scaled to norm sqrt(d_model) (the scale of a normalised residual)."""
    vectors = model.W_E[ids.to(model.cfg.device)]
    return vectors / vectors.norm(dim=-1, keepdim=True) * math.sqrt(model.cfg.d_model)


def _qk_cases(model, generator):
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    vectors = _normalised_embeddings(
        model, torch.randint(1000, 10000, (18,), generator=torch.Generator().manual_seed(13)))
    cases = [dict(model=model, layer=n_layers // 2, head=n_heads - 2, queries=vectors[:8],
                  keys=vectors[8:])]
    for _ in range(2):
        layer, head = _randint(generator, 0, n_layers), _randint(generator, 0, n_heads)
        n_query, n_key = _randint(generator, 3, 11), _randint(generator, 3, 11)
        ids = torch.randint(1000, 10000, (n_query + n_key,), generator=generator)
        vectors = _normalised_embeddings(model, ids)
        cases.append(dict(model=model, layer=layer, head=head, queries=vectors[:n_query],
                          keys=vectors[n_query:]))
    return cases


EXERCISES.append(Exercise(
    qk_scores, ("query", "key"), _qk_cases,
    "normalised token embeddings (8 queries x 10 keys; hidden: seeded layers, heads and "
    "3 to 10 queries and keys)", **MODEL_TOL,
    needs_model=True, mistakes=(
        Mistake("kv_tiled", "used key head `head % n_kv_heads`; query head h reads key "
                "head h // (n_heads // n_kv_heads)", _qk_kv_tiled),
        Mistake("unscaled", "forgot to divide by sqrt(d_head)", _qk_unscaled),
        Mistake("swapped", "multiplied the queries by W_K and the keys by W_Q",
                _qk_swapped),
    )))


# --- Exercise 15: composition score ------------------------------------------------------


def composition_score(W_A: torch.Tensor, W_B: torch.Tensor) -> torch.Tensor:
    """How much of W_B reads what W_A writes (Elhage et al. 2021).

    ||W_A @ W_B||_F / (||W_A||_F * ||W_B||_F), Frobenius norms. W_A: [d, d'], W_B: [d', d''].
    Returns a 0-dim tensor.
    """
    ### BEGIN SOLUTION
    return (W_A @ W_B).norm() / (W_A.norm() * W_B.norm())
    ### END SOLUTION


def _composition_unnormalised(W_A, W_B):
    return (W_A @ W_B).norm()


def _composition_spectral(W_A, W_B):
    spectral = lambda M: torch.linalg.matrix_norm(M, ord=2)  # noqa: E731
    return spectral(W_A @ W_B) / (spectral(W_A) * spectral(W_B))


def _composition_reversed(W_A, W_B):
    return (W_B @ W_A).norm() / (W_A.norm() * W_B.norm())


def _composition_score_cases(gen):
    low_rank = lambda d, r: torch.randn(d, r, generator=gen) @ torch.randn(r, d, generator=gen)  # noqa: E731
    return [dict(W_A=low_rank(12, 4), W_B=low_rank(12, 4)),
            dict(W_A=torch.randn(10, 6, generator=gen), W_B=torch.randn(6, 10, generator=gen))]


EXERCISES.append(Exercise(
    composition_score, (), _composition_score_cases,
    "W_A, W_B: seeded random matrices (low rank, and rectangular)", **PURE_TOL, mistakes=(
        Mistake("unnormalised", "forgot to divide by ||W_A|| ||W_B||",
                _composition_unnormalised),
        Mistake("spectral", "used spectral norms; the score uses Frobenius norms "
                "(tensor.norm())", _composition_spectral),
        Mistake("reversed", "multiplied W_B @ W_A; W_A writes, then W_B reads: W_A @ W_B",
                _composition_reversed),
    )))


# --- Exercise 16: composition scores of a model's heads ----------------------------------


def composition_scores(model, earlier_layer: int, later_layer: int, later_head: int) -> torch.Tensor:
    """Q-, K- and V-composition of every head of `earlier_layer` into one later head.

    With residual vectors as rows, a head's OV circuit is W_OV = W_V @ W_O and its QK circuit
    W_QK = W_Q @ W_K.T (both [d_model, d_model]; use the key/value head of each query head's
    group). For earlier head i and the later head:
    Q-composition = composition_score(W_OV_i, W_QK), K-composition =
    composition_score(W_OV_i, W_QK.T), V-composition = composition_score(W_OV_i, W_OV_later).
    Returns [3, n_heads]: rows Q, K, V; column i is earlier head i.
    """
    ### BEGIN SOLUTION
    group = model.cfg.n_heads // model.W_K.shape[1]
    kv_head = later_head // group
    W_QK = model.W_Q[later_layer, later_head] @ model.W_K[later_layer, kv_head].T
    W_OV_later = model.W_V[later_layer, kv_head] @ model.W_O[later_layer, later_head]
    scores = torch.zeros(3, model.cfg.n_heads, device=model.cfg.device)
    for head in range(model.cfg.n_heads):
        W_OV = model.W_V[earlier_layer, head // group] @ model.W_O[earlier_layer, head]
        scores[0, head] = composition_score(W_OV, W_QK)
        scores[1, head] = composition_score(W_OV, W_QK.T)
        scores[2, head] = composition_score(W_OV, W_OV_later)
    return scores
    ### END SOLUTION


def _compositions(model, earlier_layer, later_layer, later_head, *, tiled=False, reverse=False,
                  normalise=True):
    group = model.cfg.n_heads // model.W_K.shape[1]
    kv = (lambda h: h % model.W_K.shape[1]) if tiled else (lambda h: h // group)
    W_QK = model.W_Q[later_layer, later_head] @ model.W_K[later_layer, kv(later_head)].T
    W_OV_later = model.W_V[later_layer, kv(later_head)] @ model.W_O[later_layer, later_head]
    score = composition_score if normalise else _composition_unnormalised
    rows = []
    for head in range(model.cfg.n_heads):
        W_OV = model.W_V[earlier_layer, kv(head)] @ model.W_O[earlier_layer, head]
        if reverse:  # K- and Q-composition swapped
            rows.append([score(W_OV, W_QK.T), score(W_OV, W_QK), score(W_OV, W_OV_later)])
        else:
            rows.append([score(W_OV, W_QK), score(W_OV, W_QK.T), score(W_OV, W_OV_later)])
    return torch.tensor(rows, device=model.cfg.device).T


def _compositions_q_k_swapped(model, earlier_layer, later_layer, later_head):
    return _compositions(model, earlier_layer, later_layer, later_head, reverse=True)


def _compositions_kv_tiled(model, earlier_layer, later_layer, later_head):
    return _compositions(model, earlier_layer, later_layer, later_head, tiled=True)


def _compositions_unnormalised(model, earlier_layer, later_layer, later_head):
    return _compositions(model, earlier_layer, later_layer, later_head, normalise=False)


def _composition_cases(model, generator):
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    cases = [dict(model=model, earlier_layer=0, later_layer=1, later_head=n_heads - 1)]
    for _ in range(2):
        later_layer = _randint(generator, 1, n_layers)
        cases.append(dict(model=model, earlier_layer=_randint(generator, 0, later_layer),
                          later_layer=later_layer, later_head=_randint(generator, 0, n_heads)))
    return cases


EXERCISES.append(Exercise(
    composition_scores, ("kind", "head"), _composition_cases,
    "layer 0 into 1 (last head) and, hidden, seeded pairs of an earlier and a later layer "
    "and seeded heads", atol=1e-4, rtol=1e-3,
    needs_model=True, mistakes=(
        Mistake("q_k_swapped", "swapped Q- and K-composition: Q-composition reads W_QK "
                "(the written vector is on the query side), K-composition W_QK.T",
                _compositions_q_k_swapped),
        Mistake("kv_tiled", "used key/value head `head % n_kv_heads`; query head h reads "
                "h // (n_heads // n_kv_heads)", _compositions_kv_tiled),
        Mistake("unnormalised", "left out the normalisation by the two norms",
                _compositions_unnormalised),
    ), equivalent_mutants={
        "scores = torch.zeros(3, model.cfg.n_heads)":
            "the same on the CPU; on a GPU the grader's device check fails it"}))
