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

from autograder.spec import Exercise, Mistake

CHAPTER = "ch2_induction"


# --- Exercise 1-3: repeated random tokens and the loss on each half ---------------------


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


def per_token_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """The model's loss (cross-entropy) for predicting each next token.

    tokens: int [batch, pos]. Entry [b, j] of the result is -log p(tokens[b, j + 1]) under the
    model's prediction at position j. Returns float [batch, pos - 1].
    """
    ### BEGIN SOLUTION
    log_probs = model(tokens).log_softmax(dim=-1)
    return -log_probs[:, :-1].gather(dim=-1, index=tokens[:, 1:, None])[..., 0]
    ### END SOLUTION


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


# --- Exercise 4-8: attention-pattern detectors ------------------------------------------


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


def all_layer_patterns(model, tokens: torch.Tensor) -> torch.Tensor:
    """Every layer's attention pattern on `tokens`, stacked.

    Run the model, caching only the ``hook_pattern`` activations (a ``names_filter``).
    Returns [layer, batch, head, query_pos, key_pos].
    """
    ### BEGIN SOLUTION
    _, cache = model.run_with_cache(tokens, names_filter=lambda name: name.endswith("hook_pattern"))
    return torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])
    ### END SOLUTION


def previous_token_scores(model, tokens: torch.Tensor) -> torch.Tensor:
    """How much each head attends to the previous token.

    tokens: repeated random tokens [batch, 1 + 2 * seq_len]. Average the attention from query
    i to key i - 1 over every query position i >= 1 and over the batch.
    Returns [layer, head].
    """
    ### BEGIN SOLUTION
    return diagonal_attention_score(all_layer_patterns(model, tokens), 1, 1).mean(dim=1)
    ### END SOLUTION


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


# --- Exercise 9: the same detector with hooks --------------------------------------------


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


# --- Exercise 10-11: ablating heads -----------------------------------------------------


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


# --- Exercise 12: direct logit attribution ----------------------------------------------


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


# --- Exercise 13-16: reading circuits from the weights ----------------------------------


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


def composition_score(W_A: torch.Tensor, W_B: torch.Tensor) -> torch.Tensor:
    """How much of W_B reads what W_A writes (Elhage et al. 2021).

    ||W_A @ W_B||_F / (||W_A||_F * ||W_B||_F), Frobenius norms. W_A: [d, d'], W_B: [d', d''].
    Returns a 0-dim tensor.
    """
    ### BEGIN SOLUTION
    return (W_A @ W_B).norm() / (W_A.norm() * W_B.norm())
    ### END SOLUTION


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


# --- Known mistakes (each must give a different answer from the solution) ---------------


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


def _halves_split_late(loss, seq_len):
    return torch.stack([loss[:, :seq_len + 1].mean(), loss[:, seq_len + 1:].mean()])


def _halves_split_early(loss, seq_len):
    return torch.stack([loss[:, :seq_len - 1].mean(), loss[:, seq_len - 1:].mean()])


def _halves_swapped(loss, seq_len):
    return loss_by_half(loss, seq_len).flip(0)


def _diagonal_above(patterns, offset, first_query):
    stripe = patterns.diagonal(offset=offset, dim1=-2, dim2=-1)
    return stripe[..., first_query - offset:].mean(dim=-1) if stripe.shape[-1] else stripe.sum(-1)


def _diagonal_from_start(patterns, offset, first_query):
    return patterns.diagonal(offset=-offset, dim1=-2, dim2=-1).mean(dim=-1)


def _diagonal_sliced_at_first_query(patterns, offset, first_query):
    return patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)[..., first_query:].mean(dim=-1)


def _diagonal_summed(patterns, offset, first_query):
    return patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)[..., first_query - offset:].sum(-1)


def _scores_at(model, tokens, offset, first_query, last_query=None):
    """Mean over batch of pattern[i, i - offset] for queries first_query..last_query."""
    patterns = all_layer_patterns(model, tokens)
    last_query = tokens.shape[1] - 1 if last_query is None else last_query
    stripe = patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)
    return stripe[..., first_query - offset:last_query - offset + 1].mean(dim=(1, -1))


def _half(tokens):
    return (tokens.shape[1] - 1) // 2


def _previous_current_token(model, tokens):
    return _scores_at(model, tokens, 0, 1)


def _previous_two_back(model, tokens):
    return _scores_at(model, tokens, 2, 2)


def _previous_second_half_only(model, tokens):
    return _scores_at(model, tokens, 1, _half(tokens) + 1)


def _duplicate_is_induction(model, tokens):
    return _scores_at(model, tokens, _half(tokens) - 1, _half(tokens) + 1)


def _duplicate_one_too_far_back(model, tokens):
    return _scores_at(model, tokens, _half(tokens) + 1, _half(tokens) + 1)


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


def _composition_unnormalised(W_A, W_B):
    return (W_A @ W_B).norm()


def _composition_spectral(W_A, W_B):
    spectral = lambda M: torch.linalg.matrix_norm(M, ord=2)  # noqa: E731
    return spectral(W_A @ W_B) / (spectral(W_A) * spectral(W_B))


def _composition_reversed(W_A, W_B):
    return (W_B @ W_A).norm() / (W_A.norm() * W_B.norm())


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


# --- Test cases ------------------------------------------------------------------------


def _token_cases(model):
    return [dict(model=model, seq_len=10, batch=2, seed=0),
            dict(model=model, seq_len=25, batch=3, seed=7)]


def _loss_cases(model):
    return [dict(model=model, tokens=repeated_random_tokens(model, 10, 2, seed=1)),
            dict(model=model, tokens=repeated_random_tokens(model, 20, 2, seed=2))]


def _loss_by_half_cases(gen):
    return [dict(loss=torch.rand(2, 12, generator=gen) * 10, seq_len=6),
            dict(loss=torch.rand(3, 20, generator=gen) * 10, seq_len=10)]


def _random_patterns(gen, *leading, pos):
    scores = torch.randn(*leading, pos, pos, generator=gen)
    future = torch.triu(torch.ones(pos, pos, dtype=torch.bool), 1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def _diagonal_cases(gen):
    return [dict(patterns=_random_patterns(gen, 2, 3, pos=11), offset=4, first_query=6),
            dict(patterns=_random_patterns(gen, 3, 2, 4, pos=13), offset=5, first_query=7),
            dict(patterns=_random_patterns(gen, 4, pos=9), offset=1, first_query=1)]


def _pattern_cases(model):
    return [dict(model=model, tokens=repeated_random_tokens(model, 4, 1, seed=3)),
            dict(model=model, tokens=repeated_random_tokens(model, 5, 2, seed=4))]


def _detector_cases(model):
    return [dict(model=model, tokens=repeated_random_tokens(model, 20, 2, seed=5)),
            dict(model=model, tokens=repeated_random_tokens(model, 30, 3, seed=6))]


def _ablation_cases(model):
    middle = model.cfg.n_layers // 2
    return [dict(model=model, tokens=repeated_random_tokens(model, 8, 2, seed=8), kind="zero",
                 layers=[middle]),
            dict(model=model, tokens=repeated_random_tokens(model, 8, 2, seed=9), kind="mean",
                 layers=[middle + 1])]


def _dla_cases(model):
    return [dict(model=model, tokens=repeated_random_tokens(model, 15, 2, seed=11)),
            dict(model=model, tokens=repeated_random_tokens(model, 25, 2, seed=12))]


def _copying_cases(model):
    n_layers = model.cfg.n_layers
    return [dict(model=model, layer=n_layers - 1, head=1, n_tokens=200, seed=0),
            dict(model=model, layer=n_layers - 2, head=5, n_tokens=200, seed=1),
            dict(model=model, layer=5, head=1, n_tokens=200, seed=2)]


def _qk_cases(model):
    gen = torch.Generator().manual_seed(13)
    ids = torch.randint(1000, 10000, (18,), generator=gen).to(model.cfg.device)
    vectors = model.W_E[ids]
    vectors = vectors / vectors.norm(dim=-1, keepdim=True) * math.sqrt(model.cfg.d_model)
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    return [dict(model=model, layer=n_layers // 2, head=n_heads - 2, queries=vectors[:8],
                 keys=vectors[8:]),
            dict(model=model, layer=2, head=n_heads // 2 + 1, queries=vectors[10:],
                 keys=vectors[:10])]


def _composition_score_cases(gen):
    low_rank = lambda d, r: torch.randn(d, r, generator=gen) @ torch.randn(r, d, generator=gen)  # noqa: E731
    return [dict(W_A=low_rank(12, 4), W_B=low_rank(12, 4)),
            dict(W_A=torch.randn(10, 6, generator=gen), W_B=torch.randn(6, 10, generator=gen))]


def _composition_cases(model):
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    return [dict(model=model, earlier_layer=0, later_layer=1, later_head=n_heads - 1),
            dict(model=model, earlier_layer=n_layers // 2 - 1, later_layer=n_layers // 2,
                 later_head=n_heads // 2)]


TOKENS = "repeated random tokens (BOS, seq_len random tokens, the same again)"
MODEL_TOL = dict(atol=1e-3, rtol=1e-3)
PURE_TOL = dict(atol=1e-5, rtol=1e-4)
DETECTOR = ("layer", "head")
DETECTOR_INPUTS = f"{TOKENS}: seq_len 20, batch 2 and, hidden, seq_len 30, batch 3"
BOS_SHIFT = ("forgot the BOS shift: the second half is positions seq_len + 1 .. 2 * seq_len "
             "(position 0 is BOS), so queries start at seq_len + 1 and include the last position")

EXERCISES = [
    Exercise(repeated_random_tokens, ("batch", "pos"), _token_cases,
             "seq_len 10, batch 2, seed 0 and, hidden, seq_len 25, batch 3, seed 7",
             atol=0, rtol=0, needs_model=True, mistakes=(
                 Mistake("no_bos", "left out the BOS token at position 0 "
                         "(model.tokenizer.bos_token_id)", _tokens_without_bos),
                 Mistake("two_draws", "drew the second half separately: it must repeat the first "
                         "half exactly (draw once, concatenate twice)", _tokens_two_draws),
                 Mistake("interleaved", "repeated each token in place (a a b b ...); repeat the "
                         "whole half (a b ... a b ...)", _tokens_interleaved),
                 Mistake("one_row", "drew one sequence for the whole batch; draw a [batch, seq_len] "
                         "tensor so each row is different", _tokens_one_row),
             )),
    Exercise(per_token_loss, ("batch", "pos"), _loss_cases, f"{TOKENS}: seq_len 10 and 20",
             **MODEL_TOL, needs_model=True, mistakes=(
                 Mistake("current_token", "scored the current token instead of the next one: the "
                         "prediction at position j is for tokens[:, j + 1]", _loss_current_token),
                 Mistake("not_negated", "returned the log-probability; the loss is its negative",
                         _loss_not_negated),
                 Mistake("shifted_logits", "took the predictions from positions 1.. instead of "
                         "0..pos-2 (logits[:, :-1] predict tokens[:, 1:])", _loss_shifted_logits),
                 Mistake("probabilities", "used probabilities (softmax) instead of "
                         "log-probabilities (log_softmax)", _loss_probabilities),
             )),
    Exercise(loss_by_half, ("half",), _loss_by_half_cases, "loss: seeded uniform [0, 10) tensors",
             **PURE_TOL, mistakes=(
                 Mistake("split_late", "split one position late: loss[:, seq_len] already predicts "
                         "the first token of the second half", _halves_split_late),
                 Mistake("split_early", "split one position early: the first half has seq_len "
                         "predictions", _halves_split_early),
                 Mistake("swapped", "returned the halves in the wrong order (first half first)",
                         _halves_swapped),
             )),
    Exercise(diagonal_attention_score, ("...",), _diagonal_cases,
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
             )),
    Exercise(all_layer_patterns, ("layer", "batch", "head", "query_pos", "key_pos"), _pattern_cases,
             f"{TOKENS}: seq_len 4 (batch 1) and 5 (batch 2)", **MODEL_TOL, needs_model=True),
    Exercise(previous_token_scores, DETECTOR, _detector_cases,
             DETECTOR_INPUTS, **MODEL_TOL,
             needs_model=True, mistakes=(
                 Mistake("current_token", "read the main diagonal (the current token); the "
                         "previous token is one below it", _previous_current_token),
                 Mistake("two_back", "read two positions back", _previous_two_back),
                 Mistake("second_half_only", "averaged only the second half; the previous-token "
                         "score uses every query position i >= 1", _previous_second_half_only),
             )),
    Exercise(duplicate_token_scores, DETECTOR, _detector_cases,
             DETECTOR_INPUTS, **MODEL_TOL,
             needs_model=True, mistakes=(
                 Mistake("induction", "read key i - seq_len + 1, the token after the earlier copy "
                         "(that is the induction score); the duplicate is at i - seq_len",
                         _duplicate_is_induction),
                 Mistake("one_too_far_back", "read key i - seq_len - 1, one before the earlier copy",
                         _duplicate_one_too_far_back),
             )),
    Exercise(induction_scores, DETECTOR, _detector_cases,
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
             )),
    Exercise(induction_scores_with_hooks, DETECTOR, _detector_cases,
             DETECTOR_INPUTS, **MODEL_TOL,
             needs_model=True, mistakes=(
                 Mistake("duplicate", "attended to the earlier copy of the token itself; "
                         "induction reads key i - seq_len + 1", _induction_is_duplicate),
                 Mistake("bos_shift", BOS_SHIFT, _induction_without_bos_shift),
                 Mistake("whole_diagonal", "averaged the whole diagonal; only queries of the "
                         "second half count", _induction_whole_diagonal),
             )),
]

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
                    "mean ablation of the layer after it")

EXERCISES += [
    Exercise(head_ablation_loss_increase_slow, ("layer", "head"), _ablation_cases, _ABLATION_INPUTS,
             **MODEL_TOL, needs_model=True, mistakes=_ABLATION_MISTAKES),
    Exercise(head_ablation_loss_increase, ("layer", "head"), _ablation_cases, _ABLATION_INPUTS,
             **MODEL_TOL, needs_model=True, mistakes=_ABLATION_MISTAKES),
    Exercise(head_logit_attribution, DETECTOR, _dla_cases,
             f"{TOKENS}: seq_len 15 and, hidden, 25 (batch 2)", **MODEL_TOL, needs_model=True,
             mistakes=(
                 Mistake("no_scale", "left out the final norm: divide each head's output by "
                         "cache['ln_final.hook_scale']", _dla_no_scale),
                 Mistake("times_scale", "multiplied by the final norm's scale; the norm divides "
                         "by it", _dla_times_scale),
                 Mistake("current_token", "used the unembedding of the current token; position j "
                         "predicts tokens[:, j + 1]", _dla_current_token),
                 Mistake("whole_sequence", "averaged over every position; use the positions that "
                         "predict second-half tokens (seq_len .. 2 * seq_len - 1)",
                         _dla_whole_sequence),
             )),
    Exercise(ov_copying_score, (), _copying_cases,
             "200 tokens from [1000, 10000); heads: last layer head 1 and, hidden, "
             "second-to-last layer head 5 and layer 5 head 1",
             atol=0.006, rtol=0, needs_model=True, mistakes=(
                 Mistake("kv_tiled", "used key/value head `head % n_kv_heads`; query head h reads "
                         "key/value head h // (n_heads // n_kv_heads)", _copying_kv_tiled),
                 Mistake("embedding_as_unembedding", "used W_E.T instead of the unembedding W_U",
                         _copying_embedding_as_unembedding),
                 Mistake("query_weights", "used W_Q instead of W_V: the OV circuit is W_V @ W_O",
                         _copying_query_weights),
             )),
    Exercise(qk_scores, ("query", "key"), _qk_cases,
             "normalised token embeddings (8 queries x 10 keys, hidden 8 x 10)", **MODEL_TOL,
             needs_model=True, mistakes=(
                 Mistake("kv_tiled", "used key head `head % n_kv_heads`; query head h reads key "
                         "head h // (n_heads // n_kv_heads)", _qk_kv_tiled),
                 Mistake("unscaled", "forgot to divide by sqrt(d_head)", _qk_unscaled),
                 Mistake("swapped", "multiplied the queries by W_K and the keys by W_Q",
                         _qk_swapped),
             )),
    Exercise(composition_score, (), _composition_score_cases,
             "W_A, W_B: seeded random matrices (low rank, and rectangular)", **PURE_TOL, mistakes=(
                 Mistake("unnormalised", "forgot to divide by ||W_A|| ||W_B||",
                         _composition_unnormalised),
                 Mistake("spectral", "used spectral norms; the score uses Frobenius norms "
                         "(tensor.norm())", _composition_spectral),
                 Mistake("reversed", "multiplied W_B @ W_A; W_A writes, then W_B reads: W_A @ W_B",
                         _composition_reversed),
             )),
    Exercise(composition_scores, ("kind", "head"), _composition_cases,
             "layer 0 into 1 and, hidden, the middle layer pair", atol=1e-4, rtol=1e-3,
             needs_model=True, mistakes=(
                 Mistake("q_k_swapped", "swapped Q- and K-composition: Q-composition reads W_QK "
                         "(the written vector is on the query side), K-composition W_QK.T",
                         _compositions_q_k_swapped),
                 Mistake("kv_tiled", "used key/value head `head % n_kv_heads`; query head h reads "
                         "h // (n_heads // n_kv_heads)", _compositions_kv_tiled),
                 Mistake("unnormalised", "left out the normalisation by the two norms",
                         _compositions_unnormalised),
             )),
]
