"""Chapter 1, "Attention from the inside": reference solutions, known mistakes, exercise list.

Shapes follow TransformerLens: queries/keys/values are [batch, pos, head, d_head], attention
scores and patterns are [batch, head, query_pos, key_pos]. The code between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write; nbgrader replaces it
with a stub in the released notebook.

Each exercise is one block below: its solution, its known mistakes (each must give a different
answer from the solution), its case maker, then its declaration.
"""

import math

import torch

from autograder.authoring.spec import CachedRun, Exercise, Mistake

# --- Shared: prompts, tolerances, input descriptions, helpers ----------------------------

PROMPT = "When Mary and John went to the store, John gave a drink to"
HIDDEN_PROMPT = "The cat sat on the mat. The cat sat on the"
# Hidden cases of the model exercises draw their prompts from these.
OTHER_PROMPTS = (
    HIDDEN_PROMPT,
    "The quick brown fox jumps over the lazy dog near the river bank",
    "In the morning she walked to the station and bought a newspaper",
    "Alice gave Bob a book, and then Bob gave Alice a pen",
)

PURE = "seeded standard-normal tensors"
PATTERNS = "seeded random causal attention patterns (softmax of masked normal scores)"
MODEL_TOL = dict(atol=1e-3, rtol=1e-3)
PURE_TOL = dict(atol=1e-5, rtol=1e-4)


def _randn(gen, *shape):
    return torch.randn(*shape, generator=gen)


def _randint(generator, low, high):
    """An int drawn uniformly from [low, high)."""
    return int(torch.randint(low, high, (1,), generator=generator))


EXERCISES: list[Exercise] = []


# --- Exercise 1: attention scores --------------------------------------------------------


def attention_scores(q: torch.Tensor, k: torch.Tensor) -> torch.Tensor:
    """Scaled dot products between every query and every key, per head.

    q, k: [batch, pos, head, d_head]. Returns [batch, head, query_pos, key_pos]:
    q·k / sqrt(d_head), with no mask yet.
    """
    ### BEGIN SOLUTION
    d_head = q.shape[-1]
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(d_head)
    ### END SOLUTION


def _scores_unscaled(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k)


def _scores_divided_by_d_head(q, k):
    return torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1]


def _scores_query_key_swapped(q, k):
    return attention_scores(k, q)


def _qk_cases(gen):
    return [dict(q=_randn(gen, 2, 5, 3, 8), k=_randn(gen, 2, 5, 3, 8)),
            dict(q=_randn(gen, 1, 7, 4, 16), k=_randn(gen, 1, 7, 4, 16))]


EXERCISES.append(Exercise(
    attention_scores, ("batch", "head", "query_pos", "key_pos"), _qk_cases,
    f"q, k: {PURE}", **PURE_TOL, mistakes=(
        Mistake("no_scale", "forgot to divide by sqrt(d_head)", _scores_unscaled),
        Mistake("d_head_scale", "divided by d_head instead of sqrt(d_head)",
                _scores_divided_by_d_head),
        Mistake("transposed", "swapped queries and keys: the result is transposed in "
                "its last two dimensions (rows must be queries)", _scores_query_key_swapped),
    )))


# --- Exercise 2: the causal mask ---------------------------------------------------------


def apply_causal_mask(scores: torch.Tensor) -> torch.Tensor:
    """Forbid attention to later positions: set scores[..., i, j] to -inf where j > i.

    scores: [batch, head, query_pos, key_pos]. Returns a new tensor of the same shape
    (a position may attend to itself and to earlier positions).
    """
    ### BEGIN SOLUTION
    n_query, n_key = scores.shape[-2:]
    future = torch.triu(torch.ones(n_query, n_key, dtype=torch.bool, device=scores.device), 1)
    return scores.masked_fill(future, float("-inf"))
    ### END SOLUTION


def _mask_past_instead_of_future(scores):
    return scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool).tril(-1), float("-inf"))


def _mask_diagonal_too(scores):
    return scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool).triu(), float("-inf"))


def _mask_with_zero(scores):
    return scores.masked_fill(torch.ones(scores.shape[-2:], dtype=torch.bool).triu(1), 0.0)


def _score_cases(gen):
    # hidden: a square case, then rectangular ones (fewer queries than keys, and more), which
    # code that builds an n_key x n_key mask fails
    return [dict(scores=_randn(gen, 2, 3, 5, 5)), dict(scores=_randn(gen, 1, 4, 6, 6)),
            dict(scores=_randn(gen, 2, 2, _randint(gen, 2, 5), _randint(gen, 6, 9))),
            dict(scores=_randn(gen, 1, 3, _randint(gen, 6, 9), _randint(gen, 2, 5)))]


EXERCISES.append(Exercise(
    apply_causal_mask, ("batch", "head", "query_pos", "key_pos"), _score_cases,
    f"scores: {PURE}", **PURE_TOL, mistakes=(
        Mistake("past_masked", "masked the past instead of the future (use the upper "
                "triangle above the diagonal)", _mask_past_instead_of_future),
        Mistake("diagonal_masked", "also masked the diagonal: a position may attend to "
                "itself", _mask_diagonal_too),
        Mistake("zero_fill", "filled masked entries with 0: softmax still gives them "
                "weight; use float('-inf')", _mask_with_zero),
    ), equivalent_mutants={
        "future = torch.triu(torch.ones(n_query, n_key, dtype=torch.bool), 1)":
            "the same on the CPU; on a GPU the grader's device check fails it"}))


# --- Exercise 3: the attention pattern ---------------------------------------------------


def attention_pattern(masked_scores: torch.Tensor) -> torch.Tensor:
    """Turn masked scores into attention probabilities: each query's row sums to 1.

    masked_scores: [batch, head, query_pos, key_pos]. Returns the same shape.
    """
    ### BEGIN SOLUTION
    return masked_scores.softmax(dim=-1)
    ### END SOLUTION


def _softmax_over_queries(masked_scores):
    return masked_scores.softmax(dim=-2)


def _masked_score_cases(gen):
    return [dict(masked_scores=apply_causal_mask(_randn(gen, 2, 3, 5, 5))),
            dict(masked_scores=apply_causal_mask(_randn(gen, 1, 2, 7, 7)))]


EXERCISES.append(Exercise(
    attention_pattern, ("batch", "head", "query_pos", "key_pos"), _masked_score_cases,
    f"masked_scores: {PURE}, causally masked with -inf", **PURE_TOL, mistakes=(
        Mistake("softmax_queries", "took the softmax over the query dimension; each "
                "query's probabilities over keys (the last dimension) should sum to 1",
                _softmax_over_queries),
    )))


# --- Exercise 4: grouped-query attention -------------------------------------------------


def expand_kv_heads(kv: torch.Tensor, n_heads: int) -> torch.Tensor:
    """Give every query head its own copy of the key/value head it reads.

    kv: [batch, pos, n_kv_heads, d_head], where consecutive groups of n_heads // n_kv_heads
    query heads share one key/value head (query head h reads kv head h // group_size).
    Returns [batch, pos, n_heads, d_head]. For GPT-2 (n_kv_heads == n_heads) it is unchanged.
    """
    ### BEGIN SOLUTION
    group_size = n_heads // kv.shape[2]
    return kv.repeat_interleave(group_size, dim=2)
    ### END SOLUTION


# Also used by layer_attention_output's kv_tiled mistake.
def _kv_tiled(kv, n_heads):
    return kv.repeat(1, 1, n_heads // kv.shape[2], 1)


def _kv_cases(gen):
    return [dict(kv=_randn(gen, 2, 4, 3, 8), n_heads=9), dict(kv=_randn(gen, 1, 5, 2, 4), n_heads=8)]


EXERCISES.append(Exercise(
    expand_kv_heads, ("batch", "pos", "head", "d_head"), _kv_cases,
    f"kv: {PURE}; n_heads: a multiple of kv's head count", **PURE_TOL, mistakes=(
        Mistake("tiled", "tiled the key/value heads (0,1,2,0,1,2...) instead of repeating "
                "each one for its group (0,0,0,1,1,1...): try repeat_interleave",
                _kv_tiled),
    )))


# --- Exercise 5: weighted values ---------------------------------------------------------


def weighted_values(pattern: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Each query position's mix of value vectors (TransformerLens calls the result z).

    pattern: [batch, head, query_pos, key_pos]; v: [batch, key_pos, head, d_head].
    Returns z: [batch, query_pos, head, d_head].
    """
    ### BEGIN SOLUTION
    return torch.einsum("bhqk,bkhd->bqhd", pattern, v)
    ### END SOLUTION


def _values_pattern_transposed(pattern, v):
    return torch.einsum("bhkq,bkhd->bqhd", pattern, v)


# Also used by the head-type score cases.
def _random_pattern(gen, *leading, pos):
    return attention_pattern(apply_causal_mask(_randn(gen, *leading, pos, pos)))


def _value_cases(gen):
    return [dict(pattern=_random_pattern(gen, 2, 3, pos=5), v=_randn(gen, 2, 5, 3, 8)),
            dict(pattern=_random_pattern(gen, 1, 4, pos=6), v=_randn(gen, 1, 6, 4, 4))]


EXERCISES.append(Exercise(
    weighted_values, ("batch", "query_pos", "head", "d_head"), _value_cases,
    f"pattern: {PATTERNS}; v: {PURE}", **PURE_TOL, mistakes=(
        Mistake("pattern_transposed", "used the pattern transposed: weight values by "
                "pattern[b, h, query, key], summing over keys", _values_pattern_transposed),
    )))


# --- Exercise 6: per-head outputs --------------------------------------------------------


def per_head_outputs(z: torch.Tensor, W_O: torch.Tensor) -> torch.Tensor:
    """What each head writes into the residual stream.

    z: [batch, pos, head, d_head]; W_O: [head, d_head, d_model].
    Returns [batch, pos, head, d_model].
    """
    ### BEGIN SOLUTION
    return torch.einsum("bphd,hdm->bphm", z, W_O)
    ### END SOLUTION


def _per_head_summed(z, W_O):
    return torch.einsum("bphd,hdm->bpm", z, W_O)


# Also the start of attention_output's cases.
def _z_W_O_cases(gen):
    return [dict(z=_randn(gen, 2, 5, 3, 8), W_O=_randn(gen, 3, 8, 12)),
            dict(z=_randn(gen, 1, 4, 2, 4), W_O=_randn(gen, 2, 4, 6))]


EXERCISES.append(Exercise(
    per_head_outputs, ("batch", "pos", "head", "d_model"), _z_W_O_cases,
    f"z, W_O: {PURE}", **PURE_TOL, mistakes=(
        Mistake("summed_heads", "summed over the heads; keep one output per head (the "
                "next exercise adds them up)", _per_head_summed),
    )))


# --- Exercise 7: the attention output ----------------------------------------------------


def attention_output(z: torch.Tensor, W_O: torch.Tensor, b_O: torch.Tensor) -> torch.Tensor:
    """The attention layer's output: the sum of all heads' outputs plus the output bias.

    z: [batch, pos, head, d_head]; W_O: [head, d_head, d_model]; b_O: [d_model].
    Returns [batch, pos, d_model].
    """
    ### BEGIN SOLUTION
    return per_head_outputs(z, W_O).sum(dim=2) + b_O
    ### END SOLUTION


def _output_without_bias(z, W_O, b_O):
    return per_head_outputs(z, W_O).sum(dim=2)


def _output_mean_over_heads(z, W_O, b_O):
    return per_head_outputs(z, W_O).mean(dim=2) + b_O


def _output_cases(gen):
    return [dict(case, b_O=_randn(gen, case["W_O"].shape[-1])) for case in _z_W_O_cases(gen)]


EXERCISES.append(Exercise(
    attention_output, ("batch", "pos", "d_model"), _output_cases,
    f"z, W_O, b_O: {PURE}", **PURE_TOL, mistakes=(
        Mistake("no_bias", "left out the output bias b_O", _output_without_bias),
        Mistake("mean_heads", "averaged the heads; their outputs add up", _output_mean_over_heads),
    )))


# --- Exercise 8: previous-token score ----------------------------------------------------


def score_previous_token(patterns: torch.Tensor) -> torch.Tensor:
    """How much each head attends to the previous token, on average.

    patterns: [layer, head, query_pos, key_pos] for one prompt. Returns [layer, head]: the
    mean of patterns[..., i, i - 1] over query positions i >= 1.
    """
    ### BEGIN SOLUTION
    return patterns.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=-1)
    ### END SOLUTION


def _previous_score_is_diagonal(patterns):
    return score_current_token(patterns)


def _previous_score_two_back(patterns):
    return patterns.diagonal(offset=-2, dim1=-2, dim2=-1).mean(dim=-1)


def _previous_score_counts_position_zero(patterns):
    below = patterns.diagonal(offset=-1, dim1=-2, dim2=-1)
    return below.sum(dim=-1) / patterns.shape[-1]


# Also the cases of the current- and first-token scores.
def _pattern_stack_cases(gen):
    return [dict(patterns=_random_pattern(gen, 3, 4, pos=6)),
            dict(patterns=_random_pattern(gen, 2, 5, pos=9))]


EXERCISES.append(Exercise(
    score_previous_token, ("layer", "head"), _pattern_stack_cases,
    f"patterns: {PATTERNS}", **PURE_TOL, mistakes=(
        Mistake("diagonal", "read the main diagonal (the current token); the previous "
                "token sits one below it (offset=-1)", _previous_score_is_diagonal),
        Mistake("two_back", "read two positions back; the previous token is one below "
                "the diagonal", _previous_score_two_back),
        Mistake("pos0_counted", "divided by all positions; position 0 has no previous "
                "token, so average over the pos - 1 query positions that do",
                _previous_score_counts_position_zero),
    )))


# --- Exercise 9: current-token score -----------------------------------------------------


def score_current_token(patterns: torch.Tensor) -> torch.Tensor:
    """How much each head attends to the current token: mean of patterns[..., i, i].

    patterns: [layer, head, query_pos, key_pos]. Returns [layer, head].
    """
    ### BEGIN SOLUTION
    return patterns.diagonal(dim1=-2, dim2=-1).mean(dim=-1)
    ### END SOLUTION


def _current_score_is_previous(patterns):
    return score_previous_token(patterns)


EXERCISES.append(Exercise(
    score_current_token, ("layer", "head"), _pattern_stack_cases,
    f"patterns: {PATTERNS}", **PURE_TOL, mistakes=(
        Mistake("below_diagonal", "read one below the diagonal (the previous token)",
                _current_score_is_previous),
    )))


# --- Exercise 10: first-token score ------------------------------------------------------


def score_first_token(patterns: torch.Tensor) -> torch.Tensor:
    """How much each head attends to position 0, averaged over query positions i >= 1.

    (Position 0 can only attend to itself, so it is left out.)
    patterns: [layer, head, query_pos, key_pos]. Returns [layer, head].
    """
    ### BEGIN SOLUTION
    return patterns[..., 1:, 0].mean(dim=-1)
    ### END SOLUTION


def _first_score_includes_position_zero(patterns):
    return patterns[..., :, 0].mean(dim=-1)


def _first_score_is_last_key(patterns):
    return patterns[..., 1:, -1].mean(dim=-1)


EXERCISES.append(Exercise(
    score_first_token, ("layer", "head"), _pattern_stack_cases,
    f"patterns: {PATTERNS}", **PURE_TOL, mistakes=(
        Mistake("pos0_included", "included query position 0, which can only attend to "
                "itself; average over positions 1..pos-1", _first_score_includes_position_zero),
        Mistake("last_key", "read the last key column; the first token is key 0",
                _first_score_is_last_key),
    )))


# --- Exercise 11: one layer's attention output on the real model -------------------------


def layer_attention_output(model, cache, layer: int) -> torch.Tensor:
    """Recompute layer `layer`'s attention output from its cached queries, keys and values.

    Use your functions above and the model's W_O (and b_O, if the model has one). Returns
    [batch, pos, d_model]; it should match cache[f"blocks.{layer}.hook_attn_out"].
    Rotary models cache q and k before and after the rotation (hook_q / hook_rot_q): the
    attention pattern is computed from the rotated ones.
    """
    ### BEGIN SOLUTION
    hooks = f"blocks.{layer}.attn"
    rotary = f"{hooks}.hook_rot_q" in cache.keys()
    q = cache[f"{hooks}.hook_rot_q" if rotary else f"{hooks}.hook_q"]
    k = cache[f"{hooks}.hook_rot_k" if rotary else f"{hooks}.hook_k"]
    n_heads = q.shape[2]
    k = expand_kv_heads(k, n_heads)
    v = expand_kv_heads(cache[f"{hooks}.hook_v"], n_heads)
    pattern = attention_pattern(apply_causal_mask(attention_scores(q, k)))
    attn = model.blocks[layer].attn
    b_O = attn.b_O if attn.b_O is not None else torch.zeros(attn.W_O.shape[-1], device=q.device)
    return attention_output(weighted_values(pattern, v), attn.W_O, b_O)
    ### END SOLUTION


def _recompute_layer(model, cache, layer, q_name, k_name, expand):
    hooks = f"blocks.{layer}.attn"
    q, k, v = cache[f"{hooks}.{q_name}"], cache[f"{hooks}.{k_name}"], cache[f"{hooks}.hook_v"]
    n_heads = q.shape[2]
    pattern = attention_pattern(apply_causal_mask(attention_scores(q, expand(k, n_heads))))
    attn = model.blocks[layer].attn
    out = per_head_outputs(weighted_values(pattern, expand(v, n_heads)), attn.W_O).sum(dim=2)
    return out if attn.b_O is None else out + attn.b_O


def _layer_output_pre_rotary(model, cache, layer):
    return _recompute_layer(model, cache, layer, "hook_q", "hook_k", expand_kv_heads)


def _layer_output_kv_tiled(model, cache, layer):
    rotary = f"blocks.{layer}.attn.hook_rot_q" in cache.keys()
    names = ("hook_rot_q", "hook_rot_k") if rotary else ("hook_q", "hook_k")
    return _recompute_layer(model, cache, layer, *names, _kv_tiled)


def _layer_output_copied_from_cache(model, cache, layer):
    return cache[f"blocks.{layer}.hook_attn_out"]


def _prompt_batch(model, generator, batch):
    """`batch` different prompts of OTHER_PROMPTS, tokenised with BOS and cut to a common length."""
    chosen = torch.randperm(len(OTHER_PROMPTS), generator=generator)[:batch].tolist()
    rows = [model.to_tokens(OTHER_PROMPTS[i]) for i in chosen]
    length = min(row.shape[1] for row in rows)
    return torch.cat([row[:, :length] for row in rows])


def _layer_cases(model, generator):
    n_layers = model.cfg.n_layers
    cases = [dict(model=model, cache=CachedRun(model.to_tokens(PROMPT)), layer=1)]
    layer = _randint(generator, 0, n_layers)
    cases.append(dict(model=model, cache=CachedRun(_prompt_batch(model, generator, 2)),
                      layer=layer))
    # hook_v scaled after the run: hook_attn_out no longer matches q, k and v.
    layer = _randint(generator, 0, n_layers)
    cases.append(dict(model=model, cache=CachedRun(_prompt_batch(model, generator, 3),
                                                   scales={f"blocks.{layer}.attn.hook_v": 1.5}),
                      layer=layer))
    return cases


EXERCISES.append(Exercise(
    layer_attention_output, ("batch", "pos", "d_model"), _layer_cases,
    f"the model's cache on {PROMPT!r} (layer 1) and, hidden, on batches of 2 and 3 other "
    "prompts at seeded layers (in the batch of 3, hook_v is scaled by 1.5 after the run, so "
    "hook_attn_out no longer matches)", **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("pre_rotary", "used hook_q/hook_k from before the rotary embedding; the "
                "pattern is computed from hook_rot_q/hook_rot_k", _layer_output_pre_rotary),
        Mistake("kv_tiled", "shared key/value heads in the wrong order (see "
                "expand_kv_heads)", _layer_output_kv_tiled),
        Mistake("copied_from_cache", "returned the model's cached attention output "
                "(hook_attn_out) instead of recomputing it from q, k and v",
                _layer_output_copied_from_cache),
    ), equivalent_mutants={
        "b_O = attn.b_O if attn.b_O is not None else torch.zeros(attn.W_O.shape[-1])":
            "the same on the CPU; on a GPU the grader's device check fails it"}))


# --- Exercise 12: head-type scores on the real model -------------------------------------


def head_type_scores(model, prompt: str) -> torch.Tensor:
    """Previous-, current- and first-token scores of every head on `prompt`.

    Run the model on the prompt's tokens (model.to_tokens adds the BOS token the model was
    trained with), stack every layer's attention pattern into [layer, head, pos, pos] and
    score it. Returns [3, layer, head]: previous, current, first.
    """
    ### BEGIN SOLUTION
    tokens = model.to_tokens(prompt)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer][0] for layer in range(model.cfg.n_layers)])
    return torch.stack([score_previous_token(patterns), score_current_token(patterns),
                        score_first_token(patterns)])
    ### END SOLUTION


def _head_scores_without_bos(model, prompt):
    tokens = model.to_tokens(prompt, prepend_bos=False)
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer][0] for layer in range(model.cfg.n_layers)])
    return torch.stack([score_previous_token(patterns), score_current_token(patterns),
                        score_first_token(patterns)])


def _prompt_cases(model, generator):
    chosen = torch.randperm(len(OTHER_PROMPTS), generator=generator)[:2].tolist()
    return [dict(model=model, prompt=PROMPT)] + [dict(model=model, prompt=OTHER_PROMPTS[i])
                                                 for i in chosen]


EXERCISES.append(Exercise(
    head_type_scores, ("score", "layer", "head"), _prompt_cases,
    f"the prompt {PROMPT!r} and, hidden, two of {len(OTHER_PROMPTS)} other English prompts "
    "(seeded)", **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("no_bos", "ran the model without the BOS token; use model.to_tokens(prompt)",
                _head_scores_without_bos),
    ), equivalent_mutants={
        "_, cache = model.run_with_cache(tokens)": "names_filter only keeps fewer activations "
                                                   "in memory; the patterns read are the same"}))
