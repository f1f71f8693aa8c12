"""Chapter 2b, "How induction heads form": reference solutions, known mistakes, exercise list.

Everything runs on the course's committed training runs of small attention-only transformers
(`readheads.formation`; vocabulary 256, context 128, d_model 64, heads of size 16): the
two-layer model of seed 0 with every checkpoint's weights, and its siblings (other seeds,
2 and 8 heads, one layer, the smeared key) with the last checkpoint's weights and the measures
logged at every checkpoint. Cases take them as `TrainedRun` / `TrainedCheckpoint` arguments;
the grader loads them where the case runs.

Per-token losses follow `AttnOnlyTransformer(..., loss_per_token=True)`: entry j of the last
dimension is the loss of predicting token j + 1 from tokens 0..j. The code between
``### BEGIN SOLUTION`` and ``### END SOLUTION`` is what students write.
"""

import math

import torch
import torch.nn.functional as F

from autograder.authoring.spec import Exercise, Mistake, TrainedCheckpoint, TrainedRun
from readheads.formation import COURSE_RUNS, DATA, load_course_run, repeated_tokens
from readheads.formation_data import sample_batch

# --- Shared: runs, tolerances, input descriptions, helpers -------------------------------

MAIN = "2l-seed0"  # every checkpoint's weights are kept
SIBLINGS = [name for name in COURSE_RUNS if name != MAIN]  # the last checkpoint's weights
MAIN_STEPS = load_course_run(MAIN).steps
LAST = MAIN_STEPS[-1]
MODEL_TOL = dict(atol=1e-3, rtol=1e-3)
PURE_TOL = dict(atol=1e-5, rtol=1e-4)
EXACT = dict(atol=0.0, rtol=0.0)
STREAM = "sequences of the training stream (readheads.formation_data.sample_batch)"
REPEATED = "repeated random tokens (BOS, seq_len random tokens, the same again)"


def _randint(generator, low, high) -> int:
    """An int drawn uniformly from [low, high)."""
    return int(torch.randint(low, high, (1,), generator=generator))


def _pick(generator, options):
    return options[_randint(generator, 0, len(options))]


def _stream(generator, batch, n_tokens=DATA.n_ctx):
    return sample_batch(DATA, batch, generator)[:, :n_tokens]


def _repeated(generator, seq_len, batch):
    return repeated_tokens(DATA.d_vocab, seq_len, batch, _randint(generator, 0, 2**31 - 1))


def _near(step: int) -> int:
    """The index of the main run's checkpoint nearest to `step`."""
    return min(range(len(MAIN_STEPS)), key=lambda i: abs(MAIN_STEPS[i] - step))


VISIBLE_CURVE = tuple(_near(step) for step in (0, 170, 230, 300, 400, LAST))
COMPOSITION_FROM = _near(60)


def _checkpoint_subset(generator, size):
    """Sorted indices of `size` checkpoints of the main run, the last one always included."""
    chosen = torch.randperm(len(MAIN_STEPS) - 1, generator=generator)[:size - 1].sort().values
    return tuple(chosen.tolist()) + (len(MAIN_STEPS) - 1,)


def _olsson_positions(n_tokens: int) -> tuple[int, int]:
    """Tokens 50 and 500 of a 512-token context, scaled to n_tokens."""
    return round(50 / 512 * n_tokens), round(500 / 512 * n_tokens)


# Reasons shared by equivalent mutants (see autograder/authoring/mutants.py).
ON_THE_CPU = "the same on the CPU; on a GPU the grader's device check fails it"
GATHER_READS_ITS_INDEX = ("gather reads only the positions its index has (pos - 1): the last "
                          "position's logits are never read, sliced off or not")
ODD_LENGTH = "repeated tokens have 1 + 2 * seq_len positions, an odd number n: n // 2 == (n - 1) // 2"
N_CTX_128 = ("every course run has n_ctx 128, where the perturbed fractions round to the same "
             "tokens, 12 and 125")

EXERCISES: list[Exercise] = []


# --- Exercise 1: the forward pass from the weights ---------------------------------------


def forward_from_weights(model, tokens: torch.Tensor) -> torch.Tensor:
    """The model's logits, computed from its weights alone.

    The residual stream starts as W_E[tokens] + W_pos[position]. Each layer reads the stream
    as it is after the layers below; each head computes q, k, v = resid @ W_Q/W_K/W_V[layer,
    head], scores q.k / sqrt(d_head), masks future keys with -inf, takes the softmax over keys,
    and adds (pattern @ v) @ W_O[layer, head] to the stream. No LayerNorm, no biases, no
    MLPs. logits = resid @ W_U. tokens: int [batch, pos]; returns [batch, pos, d_vocab].
    """
    ### BEGIN SOLUTION
    n = tokens.shape[1]
    resid = model.W_E[tokens] + model.W_pos[:n]
    future = torch.ones(n, n, dtype=torch.bool, device=tokens.device).triu(1)
    for layer in range(model.cfg.n_layers):
        q = torch.einsum("bpm,hmd->bhpd", resid, model.W_Q[layer])
        k = torch.einsum("bpm,hmd->bhpd", resid, model.W_K[layer])
        v = torch.einsum("bpm,hmd->bhpd", resid, model.W_V[layer])
        scores = q @ k.transpose(-1, -2) / math.sqrt(model.cfg.d_head)
        pattern = scores.masked_fill(future, float("-inf")).softmax(dim=-1)
        resid = resid + torch.einsum("bhpd,hdm->bpm", pattern @ v, model.W_O[layer])
    return resid @ model.W_U
    ### END SOLUTION


def _forward(model, tokens, *, mask=True, scale=True, positions=True, compose=True):
    n = tokens.shape[1]
    embedded = model.W_E[tokens] + (model.W_pos[:n] if positions else 0)
    resid = embedded
    future = torch.ones(n, n, dtype=torch.bool).triu(1)
    for layer in range(model.cfg.n_layers):
        source = resid if compose else embedded
        q, k, v = (torch.einsum("bpm,hmd->bhpd", source, W[layer])
                   for W in (model.W_Q, model.W_K, model.W_V))
        scores = q @ k.transpose(-1, -2) / (math.sqrt(model.cfg.d_head) if scale else 1)
        pattern = (scores.masked_fill(future, float("-inf")) if mask else scores).softmax(dim=-1)
        resid = resid + torch.einsum("bhpd,hdm->bpm", pattern @ v, model.W_O[layer])
    return resid @ model.W_U


def _forward_cases(generator):
    other = _pick(generator, ["2l-heads8-seed0", "2l-seed3"])
    return [dict(model=TrainedCheckpoint(MAIN, LAST), tokens=_stream(generator, 2, 32)),
            dict(model=TrainedCheckpoint(MAIN, _pick(generator, MAIN_STEPS[_near(80):-1])),
                 tokens=_stream(generator, 3, _randint(generator, 12, 24))),
            dict(model=TrainedCheckpoint(other, LAST), tokens=_stream(generator, 1, 64)),
            dict(model=TrainedCheckpoint("1l-seed0", LAST), tokens=_stream(generator, 2, 16))]


EXERCISES.append(Exercise(
    forward_from_weights, ("batch", "pos", "d_vocab"), _forward_cases,
    f"the main run's last checkpoint on the first 32 tokens of 2 {STREAM}; hidden: other "
    "checkpoints, sizes, a one-layer model, other lengths", **MODEL_TOL, mistakes=(
        Mistake("no_mask", "did not mask future keys: each position may attend only to itself "
                "and earlier positions", lambda model, tokens: _forward(model, tokens, mask=False)),
        Mistake("no_scale", "forgot to divide the scores by sqrt(d_head)",
                lambda model, tokens: _forward(model, tokens, scale=False)),
        Mistake("no_positions", "left out the position embeddings W_pos",
                lambda model, tokens: _forward(model, tokens, positions=False)),
        Mistake("no_composition", "every layer read the embeddings; a layer reads the residual "
                "stream as the layers below left it (that is how heads compose)",
                lambda model, tokens: _forward(model, tokens, compose=False)),
    ), equivalent_mutants={
        "future = torch.ones(n, n, dtype=torch.bool).triu(1)": ON_THE_CPU}))


# --- Exercise 2: the logits as a sum of paths --------------------------------------------


def logit_contributions(model, tokens: torch.Tensor) -> torch.Tensor:
    """How much each path adds to the logit of the token that comes next.

    The logits split exactly into the direct path, (W_E[tokens] + W_pos[position]) @ W_U, and
    one term per head, z @ W_O[layer, head] @ W_U, with z from the cache
    (``blocks.{layer}.attn.hook_z``, [batch, pos, head, d_head]): no LayerNorm, so direct logit
    attribution needs no scale folded in. At position j, read each term at the next token,
    tokens[:, j + 1]. Rows: the direct path, then layer by layer and head by head (row
    1 + layer * n_heads + head). Returns [1 + n_layers * n_heads, batch, pos - 1]; the rows
    sum to the logit of each next token.
    """
    ### BEGIN SOLUTION
    _, cache = model.run_with_cache(tokens)
    direct = (model.W_E[tokens] + model.W_pos[:tokens.shape[1]]) @ model.W_U
    heads = [torch.einsum("bphd,hdm->hbpm", cache["z", layer], model.W_O[layer]) @ model.W_U
             for layer in range(model.cfg.n_layers)]
    logits = torch.cat([direct[None], *heads])  # [component, batch, pos, d_vocab]
    following = tokens[:, 1:].expand(len(logits), -1, -1)
    return logits[:, :, :-1].gather(-1, following[..., None])[..., 0]
    ### END SOLUTION


def _contributions(model, tokens, *, positions=True, head_major=False, shift=1):
    _, cache = model.run_with_cache(tokens)
    direct = (model.W_E[tokens] + (model.W_pos[:tokens.shape[1]] if positions else 0)) @ model.W_U
    heads = torch.stack([torch.einsum("bphd,hdm->hbpm", cache["z", layer], model.W_O[layer]) @ model.W_U
                         for layer in range(model.cfg.n_layers)])  # [layer, head, ...]
    heads = heads.transpose(0, 1) if head_major else heads
    logits = torch.cat([direct[None], heads.flatten(0, 1)])
    read = tokens[:, 1:] if shift else tokens[:, :-1]
    return logits[:, :, :-1].gather(-1, read.expand(len(logits), -1, -1)[..., None])[..., 0]


def _contribution_cases(generator):
    return [dict(model=TrainedCheckpoint(MAIN, LAST), tokens=_stream(generator, 2, 48)),
            dict(model=TrainedCheckpoint(MAIN, _pick(generator, MAIN_STEPS[_near(170):-1])),
                 tokens=_stream(generator, 3, _randint(generator, 10, 100))),
            dict(model=TrainedCheckpoint("2l-heads2-seed0", LAST), tokens=_stream(generator, 2))]


EXERCISES.append(Exercise(
    logit_contributions, ("component", "batch", "position"), _contribution_cases,
    f"the main run's last checkpoint on the first 48 tokens of 2 {STREAM}; hidden: other "
    "checkpoints and lengths, 2 heads", **MODEL_TOL, mistakes=(
        Mistake("no_positions", "left W_pos out of the direct path: it is part of the "
                "residual stream the unembedding reads",
                lambda model, tokens: _contributions(model, tokens, positions=False)),
        Mistake("head_major", "ordered the heads head by head; the rows go layer by layer "
                "(row 1 + layer * n_heads + head)",
                lambda model, tokens: _contributions(model, tokens, head_major=True)),
        Mistake("current_token", "read the logit of the current token; position j predicts "
                "token j + 1", lambda model, tokens: _contributions(model, tokens, shift=0)),
    ), equivalent_mutants={
        "return logits[:, :, :].gather(-1, following[..., None])[..., 0]": GATHER_READS_ITS_INDEX}))


# --- Exercise 3: the smeared key ---------------------------------------------------------


def smear_keys(k: torch.Tensor, smear: torch.Tensor) -> torch.Tensor:
    """Mix each key with the key one position back, with a learned weight per head.

    k: [batch, pos, head, d_head]; smear: [head] (alpha_h). With w_h = sigmoid(alpha_h), the
    smeared key at position j is w_h * k_j + (1 - w_h) * k_(j-1); position 0 has no previous
    key and is unchanged. Returns the same shape as k.
    """
    ### BEGIN SOLUTION
    keep = torch.sigmoid(smear)[:, None]  # [head, 1]: broadcasts over [..., head, d_head]
    previous = torch.cat([k[:, :1], k[:, :-1]], dim=1)
    return keep * k + (1 - keep) * previous
    ### END SOLUTION


def _smear_next(k, smear):
    keep = torch.sigmoid(smear)[:, None]
    return keep * k + (1 - keep) * torch.cat([k[:, 1:], k[:, -1:]], dim=1)


def _smear_weights_swapped(k, smear):
    keep = torch.sigmoid(smear)[:, None]
    return (1 - keep) * k + keep * torch.cat([k[:, :1], k[:, :-1]], dim=1)


def _smear_zero_start(k, smear):
    keep = torch.sigmoid(smear)[:, None]
    return keep * k + (1 - keep) * torch.cat([torch.zeros_like(k[:, :1]), k[:, :-1]], dim=1)


def _smear_cases(generator):
    def case(batch, pos, heads, d_head):
        return dict(k=torch.randn(batch, pos, heads, d_head, generator=generator),
                    smear=torch.randn(heads, generator=generator) * 2)
    return [case(2, 5, 3, 4), case(3, _randint(generator, 2, 9), 4, 8), case(1, 6, 1, 2)]


EXERCISES.append(Exercise(
    smear_keys, ("batch", "pos", "head", "d_head"), _smear_cases,
    "k and smear: seeded standard-normal tensors (smear scaled by 2)", **PURE_TOL, mistakes=(
        Mistake("next_position", "mixed in the *next* position's key; the smeared key looks "
                "one position back (k_(j-1)), which the causal mask allows", _smear_next),
        Mistake("weights_swapped", "gave sigmoid(alpha) to the previous key; it is the weight "
                "of the key's own position", _smear_weights_swapped),
        Mistake("zero_at_start", "mixed position 0 with zeros; it has no previous key and stays "
                "as it is", _smear_zero_start),
    )))


# --- Exercise 4: a smeared-key layer's attention pattern ---------------------------------


def smeared_attention_pattern(model, tokens: torch.Tensor, layer: int) -> torch.Tensor:
    """One layer's attention pattern in a smeared-key model, from its weights and its input.

    Read the layer's input from the cache (``blocks.{layer}.hook_resid_pre``), compute q and
    k from W_Q, W_K, smear the keys with `smear_keys` and the layer's learned weights
    (``model.blocks[layer].attn.smear``), then the masked, scaled softmax as before.
    Returns [batch, head, query_pos, key_pos].
    """
    ### BEGIN SOLUTION
    _, cache = model.run_with_cache(tokens)
    resid = cache["resid_pre", layer]
    q = torch.einsum("bpm,hmd->bphd", resid, model.W_Q[layer])
    k = smear_keys(torch.einsum("bpm,hmd->bphd", resid, model.W_K[layer]),
                   model.blocks[layer].attn.smear)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(model.cfg.d_head)
    n = tokens.shape[1]
    future = torch.ones(n, n, dtype=torch.bool, device=tokens.device).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)
    ### END SOLUTION


def _smeared_pattern(model, tokens, layer, smear_fn=None, smear_queries=False):
    _, cache = model.run_with_cache(tokens)
    resid = cache["resid_pre", layer]
    q = torch.einsum("bpm,hmd->bphd", resid, model.W_Q[layer])
    k = torch.einsum("bpm,hmd->bphd", resid, model.W_K[layer])
    alpha = model.blocks[layer].attn.smear
    if smear_queries:
        q = smear_keys(q, alpha)
    elif smear_fn is not None:
        k = smear_fn(k, alpha)
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(model.cfg.d_head)
    future = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def _pattern_unsmeared(model, tokens, layer):
    # written out whole: the nbgrader test submits this as a student's wrong answer
    _, cache = model.run_with_cache(tokens)
    resid = cache["resid_pre", layer]
    q = torch.einsum("bpm,hmd->bphd", resid, model.W_Q[layer])
    k = torch.einsum("bpm,hmd->bphd", resid, model.W_K[layer])
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / math.sqrt(model.cfg.d_head)
    future = torch.ones(tokens.shape[1], tokens.shape[1], dtype=torch.bool).triu(1)
    return scores.masked_fill(future, float("-inf")).softmax(dim=-1)


def _smeared_pattern_cases(generator):
    return [dict(model=TrainedCheckpoint("1l-smeared-seed0", LAST),
                 tokens=_repeated(generator, 10, 2), layer=0),
            dict(model=TrainedCheckpoint("1l-smeared-seed0", LAST),
                 tokens=_stream(generator, 3, _randint(generator, 16, 40)), layer=0)]


EXERCISES.append(Exercise(
    smeared_attention_pattern, ("batch", "head", "query_pos", "key_pos"), _smeared_pattern_cases,
    f"the one-layer smeared-key model (last checkpoint) on 2 {REPEATED}, seq_len 10; hidden: "
    f"3 {STREAM}", **MODEL_TOL, mistakes=(
        Mistake("unsmeared", "did not smear the keys (use model.blocks[layer].attn.smear)",
                _pattern_unsmeared),
        Mistake("smeared_queries", "smeared the queries; the keys are smeared",
                lambda model, tokens, layer: _smeared_pattern(model, tokens, layer, smear_queries=True)),
        Mistake("smeared_next", "smeared each key with the next position's key",
                lambda model, tokens, layer: _smeared_pattern(model, tokens, layer, _smear_next)),
    ), equivalent_mutants={
        "future = torch.ones(n, n, dtype=torch.bool).triu(1)": ON_THE_CPU}))


# --- Exercise 5: loss at each position ---------------------------------------------------


def per_position_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """The next-token loss at each position, averaged over the batch.

    Entry j is the mean over sequences of -log p(tokens[:, j + 1] | tokens[:, :j + 1]).
    tokens: int [batch, pos]. Returns [pos - 1].
    """
    ### BEGIN SOLUTION
    logits = model(tokens)
    log_probs = logits[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0].mean(dim=0)
    ### END SOLUTION


def _loss_unshifted(model, tokens):
    log_probs = model(tokens)[:, 1:].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0].mean(dim=0)


def _loss_summed(model, tokens):
    log_probs = model(tokens)[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0].sum(dim=0)


def _loss_cases(generator):
    return [dict(model=TrainedCheckpoint(MAIN, LAST), tokens=_stream(generator, 4)),
            dict(model=TrainedCheckpoint(MAIN, _pick(generator, MAIN_STEPS[_near(20):-1])),
                 tokens=_stream(generator, 3, _randint(generator, 8, 64))),
            dict(model=TrainedCheckpoint(_pick(generator, SIBLINGS), LAST),
                 tokens=_stream(generator, 2))]


EXERCISES.append(Exercise(
    per_position_loss, ("position",), _loss_cases,
    f"the main run's last checkpoint on 4 {STREAM}; hidden: other checkpoints and runs, "
    "shorter sequences", **MODEL_TOL, mistakes=(
        Mistake("unshifted", "scored the logits at position j + 1 against token j + 1; the "
                "logits at position j predict token j + 1", _loss_unshifted),
        Mistake("summed", "summed over the batch; average it", _loss_summed),
    ), equivalent_mutants={
        "log_probs = logits[:, :].log_softmax(dim=-1)": GATHER_READS_ITS_INDEX}))


# --- Exercise 6: the in-context-learning score -------------------------------------------


def icl_score(losses: torch.Tensor, early: int, late: int) -> torch.Tensor:
    """Olsson et al.'s in-context-learning score: the loss on a late token minus the loss on
    an early token of the context (negative when the context helps).

    losses: [..., pos - 1] per-token losses, entry j the loss on token j + 1 (as
    `per_position_loss` returns, or a batch of them). early < late are token positions.
    Returns [...].
    """
    ### BEGIN SOLUTION
    return losses[..., late - 1] - losses[..., early - 1]
    ### END SOLUTION


def _icl_swapped(losses, early, late):
    return losses[..., early - 1] - losses[..., late - 1]


def _icl_off_by_one(losses, early, late):
    return losses[..., late] - losses[..., early]


def _icl_ratio(losses, early, late):
    return losses[..., late - 1] / losses[..., early - 1]


def _icl_cases(generator):
    def losses(*shape):
        return torch.rand(*shape, generator=generator) * 5
    n = _randint(generator, 20, 127)
    return [dict(losses=losses(127), early=12, late=125),
            dict(losses=losses(5, 127), early=_randint(generator, 1, 20),
                 late=_randint(generator, 100, 127)),
            dict(losses=losses(2, 3, n), early=_randint(generator, 1, 5), late=n - 1)]


EXERCISES.append(Exercise(
    icl_score, (), _icl_cases,
    "per-token losses: seeded uniform [0, 5) tensors of 127 positions (tokens 12 and 125 "
    "visible); hidden: batched, other positions, the last token", **PURE_TOL,
    answered_by=("readheads.formation.in_context_learning_score",), mistakes=(
        Mistake("swapped", "took the early loss minus the late loss; the score is late minus "
                "early (negative when the context helps)", _icl_swapped),
        Mistake("off_by_one", "read entry `late` for token `late`; entry j is the loss on "
                "token j + 1", _icl_off_by_one),
        Mistake("ratio", "divided the losses; the score is their difference", _icl_ratio),
    )))


# --- Exercise 7: loss on the repeated half -----------------------------------------------


def repeated_half_loss(model, tokens: torch.Tensor) -> torch.Tensor:
    """Each sequence's mean loss on the tokens that copying predicts.

    tokens: repeated random tokens [batch, 1 + 2 * seq_len]. The second copy's first token
    follows nothing that predicts it; its tokens 2..seq_len (positions seq_len + 2 ..
    2 * seq_len) are what an induction head can copy. Returns [batch].
    """
    ### BEGIN SOLUTION
    seq_len = (tokens.shape[1] - 1) // 2
    log_probs = model(tokens)[:, :-1].log_softmax(dim=-1)
    losses = -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]
    return losses[:, seq_len + 1:].mean(dim=1)
    ### END SOLUTION


def _half_losses(model, tokens):
    log_probs = model(tokens)[:, :-1].log_softmax(dim=-1)
    return -log_probs.gather(-1, tokens[:, 1:, None])[..., 0]


def _repeated_with_first(model, tokens):
    seq_len = (tokens.shape[1] - 1) // 2
    return _half_losses(model, tokens)[:, seq_len:].mean(dim=1)


def _repeated_first_half(model, tokens):
    seq_len = (tokens.shape[1] - 1) // 2
    return _half_losses(model, tokens)[:, 1:seq_len].mean(dim=1)


def _repeated_cases(generator):
    return [dict(model=TrainedCheckpoint(MAIN, LAST), tokens=_repeated(generator, 20, 3)),
            dict(model=TrainedCheckpoint(MAIN, _pick(generator, MAIN_STEPS[_near(80):-1])),
                 tokens=_repeated(generator, _randint(generator, 5, 63), 2)),
            dict(model=TrainedCheckpoint(_pick(generator, SIBLINGS), LAST),
                 tokens=_repeated(generator, _randint(generator, 5, 63), 1))]


EXERCISES.append(Exercise(
    repeated_half_loss, ("batch",), _repeated_cases,
    f"the main run's last checkpoint on 3 {REPEATED}, seq_len 20; hidden: other checkpoints "
    "and runs, other lengths", **MODEL_TOL, answered_by=("readheads.formation.measure",), mistakes=(
        Mistake("with_first_token", "included the second copy's first token, which nothing "
                "before it predicts", _repeated_with_first),
        Mistake("first_half", "averaged over the first copy; the repeated half is the second",
                _repeated_first_half),
    ), equivalent_mutants={
        "seq_len = (tokens.shape[1]) // 2": ODD_LENGTH,
        "seq_len = (tokens.shape[1] - 0) // 2": ODD_LENGTH,
        "log_probs = model(tokens)[:, :].log_softmax(dim=-1)": GATHER_READS_ITS_INDEX}))


# --- Exercise 8: head scores over training -----------------------------------------------


def head_score_curves(run, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every head's previous-token and induction score at every checkpoint of a run.

    For each step in run.steps, take ``run.model_at(step)`` and its patterns on `tokens`
    (repeated random tokens [batch, 1 + 2 * seq_len]). Previous-token score: the attention
    from query i to key i - 1, averaged over queries i >= 1 and the batch. Induction score:
    from each query i of the second half (seq_len + 1 .. 2 * seq_len) to key i - seq_len + 1,
    averaged the same way (Chapter 2's definitions). Returns (previous_token, induction),
    each [checkpoint, layer, head].
    """
    ### BEGIN SOLUTION
    seq_len = (tokens.shape[1] - 1) // 2
    previous, induction = [], []
    for step in run.steps:
        model = run.model_at(step)
        _, cache = model.run_with_cache(tokens)
        patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])
        previous.append(patterns.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1)))
        stripe = patterns.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)
        induction.append(stripe[..., 2:].mean(dim=(1, -1)))
    return torch.stack(previous), torch.stack(induction)
    ### END SOLUTION


def _curves(run, tokens, *, induction_offset=None, previous_from=1):
    seq_len = (tokens.shape[1] - 1) // 2
    offset = seq_len - 1 if induction_offset is None else induction_offset
    previous, induction = [], []
    for step in run.steps:
        model = run.model_at(step)
        _, cache = model.run_with_cache(tokens)
        patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])
        previous.append(patterns.diagonal(offset=-1, dim1=-2, dim2=-1)[..., previous_from - 1:].mean(dim=(1, -1)))
        stripe = patterns.diagonal(offset=-offset, dim1=-2, dim2=-1)
        induction.append(stripe[..., seq_len + 1 - offset:].mean(dim=(1, -1)))
    return torch.stack(previous), torch.stack(induction)


def _curve_cases(generator):
    return [dict(run=TrainedRun(MAIN, VISIBLE_CURVE), tokens=_repeated(generator, 20, 2)),
            dict(run=TrainedRun(MAIN, _checkpoint_subset(generator, 5)),
                 tokens=_repeated(generator, _randint(generator, 8, 40), 3)),
            dict(run=TrainedRun(_pick(generator, SIBLINGS), (len(MAIN_STEPS) - 1,)),
                 tokens=_repeated(generator, _randint(generator, 8, 40), 2))]


_VISIBLE_STEPS = ", ".join(str(MAIN_STEPS[i]) for i in VISIBLE_CURVE)


EXERCISES.append(Exercise(
    head_score_curves, {"previous_token": ("checkpoint", "layer", "head"),
                        "induction": ("checkpoint", "layer", "head")}, _curve_cases,
    f"the main run at steps {_VISIBLE_STEPS} on 2 {REPEATED}, seq_len 20; hidden: "
    "other checkpoints, other runs' last checkpoint, other lengths", **MODEL_TOL,
    answered_by=("readheads.formation.measure",), mistakes=(
        Mistake("duplicate_not_induction", "scored attention to the earlier copy of the current "
                "token (key i - seq_len, a duplicate-token score); an induction head attends to "
                "the token after it, i - seq_len + 1",
                lambda run, tokens: _curves(run, tokens, induction_offset=(tokens.shape[1] - 1) // 2)),
        Mistake("induction_too_far", "scored key i - seq_len + 2, one past the token after the "
                "earlier copy", lambda run, tokens: _curves(run, tokens,
                                                            induction_offset=(tokens.shape[1] - 1) // 2 - 2)),
        Mistake("previous_second_half", "averaged the previous-token score over the second "
                "half only; use every query i >= 1",
                lambda run, tokens: _curves(run, tokens, previous_from=(tokens.shape[1] - 1) // 2 + 1)),
    ), equivalent_mutants={
        "seq_len = (tokens.shape[1]) // 2": ODD_LENGTH,
        "seq_len = (tokens.shape[1] - 0) // 2": ODD_LENGTH}))


# --- Exercise 9: where a curve changes fastest -------------------------------------------


def fastest_change(steps: torch.Tensor, values: torch.Tensor, window: int) -> torch.Tensor:
    """The two neighbouring checkpoints between which a smoothed curve changes most.

    steps: int [checkpoint] (increasing); values: [checkpoint]. Smooth with a centred moving
    average over `window` (odd) checkpoints: smoothed value c is the mean of values[c - h ..
    c + h], h = window // 2, for the checkpoints c that have a whole window. Between
    neighbouring smoothed checkpoints c, c + 1, the change is |smoothed[c + 1] - smoothed[c]|
    (rises and falls alike: the ICL score falls while induction scores rise). Returns
    int [2]: steps[c], steps[c + 1] for the largest change (the first, on a tie).
    """
    ### BEGIN SOLUTION
    half = window // 2
    smoothed = values.unfold(0, window, 1).mean(dim=-1)  # entry i: centred at checkpoint i + half
    c = int(smoothed.diff().abs().argmax()) + half
    return steps[c:c + 2].clone()
    ### END SOLUTION


def _fastest_unsmoothed(steps, values, window):
    c = int(values.diff().abs().argmax())
    return steps[c:c + 2].clone()


def _fastest_signed(steps, values, window):
    half = window // 2
    c = int(values.unfold(0, window, 1).mean(dim=-1).diff().argmax()) + half
    return steps[c:c + 2].clone()


def _fastest_uncentred(steps, values, window):
    c = int(values.unfold(0, window, 1).mean(dim=-1).diff().abs().argmax())
    return steps[c:c + 2].clone()


def _jump_curve(generator, n, sign, spike):
    """A sigmoid step of height 1 (its steepest change 0.25 per checkpoint) at a random
    checkpoint of the middle third, noise, and a one-checkpoint spike of height `spike` near
    an end: unsmoothed, the spike changes most; smoothed over 3 or 5 checkpoints, the step."""
    centre = _randint(generator, n // 3, 2 * n // 3)
    x = torch.arange(n, dtype=torch.float32)
    curve = sign * torch.sigmoid(x - centre) + 0.02 * torch.randn(n, generator=generator)
    curve[_pick(generator, [2, n - 3])] += spike
    return curve


def _fastest_cases(generator):
    steps = torch.tensor(MAIN_STEPS)
    n = len(MAIN_STEPS)
    return [dict(steps=steps, values=_jump_curve(generator, n, -1.0, 0.45), window=3),
            dict(steps=steps, values=_jump_curve(generator, n, 1.0, 0.0), window=3),
            dict(steps=steps, values=_jump_curve(generator, n, 1.0, -0.45), window=3),
            dict(steps=steps[:30], values=_jump_curve(generator, 30, -1.0, 0.4), window=5)]


EXERCISES.append(Exercise(
    fastest_change, ("interval",), _fastest_cases,
    "the main run's checkpoint steps and a seeded noisy falling sigmoid curve with a "
    "one-checkpoint spike (window 3); hidden: rising curves, window 5", **EXACT, mistakes=(
        Mistake("unsmoothed", "read the step from the unsmoothed curve: one noisy checkpoint "
                "can look like the jump; average over the window first", _fastest_unsmoothed),
        Mistake("signed", "took the largest rise; a curve can jump downwards (the ICL score "
                "does): use the absolute change", _fastest_signed),
        Mistake("uncentred", "indexed the steps from the start of each window; a smoothed "
                "value belongs to the window's centre (add window // 2)", _fastest_uncentred),
    ), equivalent_mutants={
        "smoothed = values.unfold(0, window, 1).sum(dim=-1)  # entry i: centred at checkpoint i + half":
            "a sum is the mean times the window: the same largest change"}))


# --- Exercise 10: the phase change in the logs of a run ----------------------------------


def phase_change_steps(run, window: int) -> torch.Tensor:
    """When a run's ICL score and its best induction score changed fastest.

    ICL score at each checkpoint: `icl_score` of ``run.held_out_loss`` [checkpoint, pos - 1]
    at tokens round(50 / 512 * n_ctx) and round(500 / 512 * n_ctx) (n_ctx =
    run.config.n_ctx). Best induction score at each checkpoint: the highest score of any head
    (any layer) at that checkpoint, from ``run.measures["induction_scores"]`` [checkpoint,
    layer, head] (logged in training, as `head_score_curves` computes them): how strong the
    model's best induction head is, whichever head that is. Returns int [2, 2]:
    `fastest_change` of the ICL curve (row 0) and of the best-score curve (row 1), steps from
    ``run.steps``.
    """
    ### BEGIN SOLUTION
    steps = torch.tensor(run.steps)
    early, late = round(50 / 512 * run.config.n_ctx), round(500 / 512 * run.config.n_ctx)
    icl = icl_score(run.held_out_loss, early, late)
    best = run.measures["induction_scores"].flatten(1).max(dim=1).values
    return torch.stack([fastest_change(steps, icl, window), fastest_change(steps, best, window)])
    ### END SOLUTION


def _phase(run, window, *, best="each", smooth=True):
    steps = torch.tensor(run.steps)
    icl = icl_score(run.held_out_loss, *_olsson_positions(run.config.n_ctx))
    scores = run.measures["induction_scores"].flatten(1)
    curve = scores.max(dim=1).values if best == "each" else scores[:, int(scores[-1].argmax())]
    change = fastest_change if smooth else _fastest_unsmoothed
    return torch.stack([change(steps, icl, window), change(steps, curve, window)])


def _phase_cases(generator):
    seeds = [f"2l-seed{seed}" for seed in (0, 1, 3, 4)]
    return [dict(run=TrainedRun("2l-seed2"), window=3),
            dict(run=TrainedRun(_pick(generator, seeds)), window=_pick(generator, [3, 5])),
            dict(run=TrainedRun(_pick(generator, ["2l-heads2-seed0", "2l-heads8-seed0"])), window=3),
            dict(run=TrainedRun("1l-smeared-seed0"), window=3),
            dict(run=TrainedRun("1l-seed0"), window=5)]


EXERCISES.append(Exercise(
    phase_change_steps, ("curve", "interval"), _phase_cases,
    "the two-layer run of seed 2 (window 3); hidden: other seeds, head counts, the one-layer "
    "and smeared-key runs, window 5", **EXACT, mistakes=(
        Mistake("best_head_at_the_end", "followed the head that is best at the end; another "
                "head can be the model's induction head earlier on: take the highest score at "
                "each checkpoint", lambda run, window: _phase(run, window, best="last")),
        Mistake("unsmoothed", "read the steps from unsmoothed curves (use `fastest_change` "
                "with the window)", lambda run, window: _phase(run, window, smooth=False)),
    ), equivalent_mutants={
        "early, late = round(49 / 512 * run.config.n_ctx), round(500 / 512 * run.config.n_ctx)": N_CTX_128,
        "early, late = round(50 / 513 * run.config.n_ctx), round(500 / 512 * run.config.n_ctx)": N_CTX_128,
        "early, late = round(50 / 512 * run.config.n_ctx), round(501 / 512 * run.config.n_ctx)": N_CTX_128,
        "early, late = round(50 / 512 * run.config.n_ctx), round(499 / 512 * run.config.n_ctx)": N_CTX_128,
        "early, late = round(50 / 512 * run.config.n_ctx), round(500 / 513 * run.config.n_ctx)": N_CTX_128,
        "early, late = round(50 / 512 * run.config.n_ctx), round(500 / 511 * run.config.n_ctx)": N_CTX_128,
}))


# --- Exercise 11: mean ablation of heads -------------------------------------------------


def mean_ablated_loss(model, tokens: torch.Tensor, heads: list) -> torch.Tensor:
    """`per_position_loss` with some heads mean-ablated.

    heads: [layer, head] pairs (any order; a pair may repeat). Replace each listed head's
    output z (``blocks.{layer}.attn.hook_z``, [batch, pos, head, d_head]) by its mean over
    the batch and the positions, with a hook, so that the head writes its average output
    and nothing about this input. Returns [pos - 1].
    """
    ### BEGIN SOLUTION
    by_layer = {}
    for layer, head in heads:
        by_layer.setdefault(layer, set()).add(head)

    def ablate(z, hook):
        chosen = sorted(by_layer[hook.layer()])
        z = z.clone()
        z[:, :, chosen] = z[:, :, chosen].mean(dim=(0, 1), keepdim=True)
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", ablate) for layer in by_layer]
    losses = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks)
    return losses.mean(dim=0)
    ### END SOLUTION


def _ablated(model, tokens, heads, *, where="z", means=(0, 1)):
    def hook_fn(head):
        def fn(activation, hook):
            activation = activation.clone()
            if where == "pattern":
                activation[:, head] = 0
            else:
                activation[:, :, head] = activation[:, :, head].mean(dim=means, keepdim=True)
            return activation
        return fn
    name = "hook_pattern" if where == "pattern" else "hook_z"
    hooks = [(f"blocks.{layer}.attn.{name}", hook_fn(head)) for layer, head in heads]
    return model.run_with_hooks(tokens, return_type="loss", loss_per_token=True, fwd_hooks=hooks).mean(0)


def _ablation_cases(generator):
    n_heads = 4
    pairs = [[_randint(generator, 0, 2), _randint(generator, 0, n_heads)] for _ in range(3)]
    return [dict(model=TrainedCheckpoint(MAIN, LAST), tokens=_stream(generator, 4), heads=[[1, 0], [0, 3]]),
            dict(model=TrainedCheckpoint(MAIN, LAST), tokens=_stream(generator, 3),
                 heads=[[1, 3], [0, 2], [1, 1], [0, 2]]),
            dict(model=TrainedCheckpoint(MAIN, _pick(generator, MAIN_STEPS[_near(170):-1])),
                 tokens=_stream(generator, 2, _randint(generator, 20, 128)), heads=pairs),
            dict(model=TrainedCheckpoint("2l-heads8-seed0", LAST), tokens=_stream(generator, 2),
                 heads=[[1, _randint(generator, 0, 8)], [0, _randint(generator, 0, 8)]])]


EXERCISES.append(Exercise(
    mean_ablated_loss, ("position",), _ablation_cases,
    f"the main run's last checkpoint on 4 {STREAM}, heads 1.0 and 0.3 ablated; hidden: heads "
    "unsorted and repeated, other checkpoints, 8 heads", **MODEL_TOL, mistakes=(
        Mistake("zeroed_pattern", "zeroed the head's attention pattern: that zeroes its output "
                "(zero ablation, far from anything it writes in use); replace its output z by "
                "its mean", lambda model, tokens, heads: _ablated(model, tokens, heads, where="pattern")),
        Mistake("mean_per_position", "averaged z over the batch only; the mean is over the "
                "batch and the positions (one vector per head)",
                lambda model, tokens, heads: _ablated(model, tokens, heads, means=(0,))),
        Mistake("first_head_only", "ablated only the first listed head",
                lambda model, tokens, heads: _ablated(model, tokens, heads[:1])),
    ), equivalent_mutants={
        "deleted: z = z.clone()": "the hook's input is read by nothing after the hook: editing it "
                                  "in place changes nothing else",
        "z[:, :, chosen] = z[:, :, chosen].mean(dim=(0, 1))": "[chosen, d_head] broadcasts over "
            "batch and position as [1, 1, chosen, d_head] does",
        "z[:, :, chosen] = z[:, :, chosen].mean(dim=(0, 1), keepdim=False)": "the same broadcast"}))


# --- Exercise 12: how much of the ICL score each head carries ----------------------------


def ablation_icl_effects(model, tokens: torch.Tensor, layer: int) -> torch.Tensor:
    """The share of the model's ICL score that mean-ablating each head of `layer` removes.

    With early, late = round(50 / 512 * pos), round(500 / 512 * pos) for tokens [batch, pos]:
    clean = icl_score(per_position_loss), ablated_h = icl_score(mean_ablated_loss with
    head h of `layer` alone). Returns [head]: 1 - ablated_h / clean (1: that head carries all
    of it; 0: none).
    """
    ### BEGIN SOLUTION
    early, late = round(50 / 512 * tokens.shape[1]), round(500 / 512 * tokens.shape[1])
    clean = icl_score(per_position_loss(model, tokens), early, late)
    ablated = torch.stack([icl_score(mean_ablated_loss(model, tokens, [[layer, head]]), early, late)
                           for head in range(model.cfg.n_heads)])
    return 1 - ablated / clean
    ### END SOLUTION


def _effects(model, tokens, layer, *, where="z", share=True):
    early, late = _olsson_positions(tokens.shape[1])
    clean = icl_score(per_position_loss(model, tokens), early, late)
    ablated = torch.stack([icl_score(_ablated(model, tokens, [[layer, h]], where=where), early, late)
                           for h in range(model.cfg.n_heads)])
    return 1 - ablated / clean if share else clean - ablated


def _effect_cases(generator):
    return [dict(model=TrainedCheckpoint(MAIN, LAST), tokens=_stream(generator, 64), layer=1),
            dict(model=TrainedCheckpoint(MAIN, LAST), tokens=_stream(generator, 32), layer=0),
            # 99 tokens: the early and late tokens are 10 and 97, where 49/512 or 499/512 of
            # the length, or truncating instead of rounding, would pick other tokens
            dict(model=TrainedCheckpoint(f"2l-seed{_randint(generator, 1, 5)}", LAST),
                 tokens=_stream(generator, 32, 99), layer=1),
            dict(model=TrainedCheckpoint("2l-heads8-seed0", LAST),
                 tokens=_stream(generator, 16, _randint(generator, 64, 129)), layer=0)]


EXERCISES.append(Exercise(
    ablation_icl_effects, ("head",), _effect_cases,
    f"the main run's last checkpoint on 64 {STREAM}, layer 1; hidden: layer 0, other seeds, "
    "99 tokens, 8 heads", **MODEL_TOL, mistakes=(
        Mistake("difference", "returned clean - ablated; the share is 1 - ablated / clean",
                lambda model, tokens, layer: _effects(model, tokens, layer, share=False)),
        Mistake("zero_ablation", "zero-ablated the heads (e.g. by zeroing the pattern); use "
                "`mean_ablated_loss`", lambda model, tokens, layer: _effects(model, tokens, layer,
                                                                            where="pattern")),
    ), equivalent_mutants={
        "early, late = round(50 / 513 * tokens.shape[1]), round(500 / 512 * tokens.shape[1])":
            "no length up to n_ctx = 128 rounds 50/513 and 50/512 of it to different tokens"}))


# --- Exercise 13: K-composition over training --------------------------------------------


def k_composition_curve(run, earlier_head: int, later_head: int) -> torch.Tensor:
    """How much a layer-1 head's keys read a layer-0 head's output, at every checkpoint.

    For each step in run.steps (model = run.model_at(step)): W_OV = W_V[0, earlier_head] @
    W_O[0, earlier_head] and W_QK = W_Q[1, later_head] @ W_K[1, later_head].T (both
    [d_model, d_model], residual vectors as rows). K-composition (Chapter 2) =
    ||W_OV @ W_QK.T||_F / (||W_OV||_F ||W_QK||_F). Returns [checkpoint].
    """
    ### BEGIN SOLUTION
    scores = []
    for step in run.steps:
        model = run.model_at(step)
        W_OV = model.W_V[0, earlier_head] @ model.W_O[0, earlier_head]
        W_QK = model.W_Q[1, later_head] @ model.W_K[1, later_head].T
        scores.append((W_OV @ W_QK.T).norm() / (W_OV.norm() * W_QK.norm()))
    return torch.stack(scores)
    ### END SOLUTION


def _composition(run, earlier_head, later_head, kind="K", normalise=True):
    scores = []
    for step in run.steps:
        model = run.model_at(step)
        W_OV = model.W_V[0, earlier_head] @ model.W_O[0, earlier_head]
        W_QK = model.W_Q[1, later_head] @ model.W_K[1, later_head].T
        reader = {"K": W_QK.T, "Q": W_QK, "V": model.W_V[1, later_head] @ model.W_O[1, later_head]}[kind]
        product = (W_OV @ reader).norm()
        scores.append(product / (W_OV.norm() * reader.norm()) if normalise else product)
    return torch.stack(scores)


def _composition_cases(generator):
    return [dict(run=TrainedRun(MAIN, tuple(range(COMPOSITION_FROM, len(MAIN_STEPS)))),
                 earlier_head=0, later_head=0),
            dict(run=TrainedRun(MAIN, _checkpoint_subset(generator, 6)),
                 earlier_head=_randint(generator, 0, 4), later_head=_randint(generator, 0, 4)),
            dict(run=TrainedRun("2l-heads8-seed0", (len(MAIN_STEPS) - 1,)),
                 earlier_head=_randint(generator, 0, 8), later_head=_randint(generator, 0, 8))]


EXERCISES.append(Exercise(
    k_composition_curve, ("checkpoint",), _composition_cases,
    f"the main run from step {MAIN_STEPS[COMPOSITION_FROM]} on, heads 0.0 and 1.0; hidden: other "
    "checkpoints and heads, "
    "8 heads", **MODEL_TOL, mistakes=(
        Mistake("q_composition", "used W_QK untransposed: that is Q-composition (the queries "
                "reading the earlier head); keys read through W_QK.T",
                lambda run, earlier_head, later_head: _composition(run, earlier_head, later_head, "Q")),
        Mistake("v_composition", "used the later head's OV circuit: that is V-composition",
                lambda run, earlier_head, later_head: _composition(run, earlier_head, later_head, "V")),
        Mistake("unnormalised", "forgot to divide by ||W_OV|| ||W_QK||",
                lambda run, earlier_head, later_head: _composition(run, earlier_head, later_head,
                                                                   normalise=False)),
    )))


# --- Exercise 14: how sharp a jump is ----------------------------------------------------


def jump_window(steps: torch.Tensor, values: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """The steps at which a curve has covered `low` and `high` fractions of its change.

    The change runs from values[0] to values[-1] (up or down). A level p is crossed at the
    first checkpoint i >= 1 where (values[i] - values[0]) / (values[-1] - values[0]) >= p;
    interpolate linearly in step between checkpoints i - 1 and i. Returns float [2]: the
    steps for `low` and `high` (their difference is the jump's width).
    """
    ### BEGIN SOLUTION
    fraction = (values - values[0]) / (values[-1] - values[0])
    crossings = []
    for level in (low, high):
        i = int((fraction[1:] >= level).nonzero()[0]) + 1
        t = (level - fraction[i - 1]) / (fraction[i] - fraction[i - 1])
        crossings.append(steps[i - 1] + t * (steps[i] - steps[i - 1]))
    return torch.stack(crossings).float()
    ### END SOLUTION


def _jump_unsmoothed_step(steps, values, low, high):
    fraction = (values - values[0]) / (values[-1] - values[0])
    return torch.stack([steps[int((fraction[1:] >= p).nonzero()[0]) + 1] for p in (low, high)]).float()


def _jump_min_max(steps, values, low, high):
    span = values.max() - values.min()
    start = values.min() if values[-1] >= values[0] else values.max()
    fraction = (values - start) / (span if values[-1] >= values[0] else -span)
    crossings = []
    for level in (low, high):
        i = int((fraction[1:] >= level).nonzero()[0]) + 1
        t = (level - fraction[i - 1]) / (fraction[i] - fraction[i - 1])
        crossings.append(steps[i - 1] + t * (steps[i] - steps[i - 1]))
    return torch.stack(crossings).float()


def _jump_cases(generator):
    steps = torch.tensor(MAIN_STEPS)
    n = len(MAIN_STEPS)
    overshoot = _jump_curve(generator, n, -1.0, 0.0)
    overshoot[-4:] += 0.3  # the curve dips past its final value and comes back
    return [dict(steps=steps, values=_jump_curve(generator, n, 1.0, 0.0), low=0.1, high=0.9),
            dict(steps=steps, values=overshoot, low=0.2, high=0.8),
            dict(steps=steps[:18], values=_jump_curve(generator, 18, 1.0, 0.0) * 3, low=0.25, high=0.75)]


EXERCISES.append(Exercise(
    jump_window, ("level",), _jump_cases,
    "the main run's checkpoint steps and a seeded noisy sigmoid curve (10% and 90%); hidden: a "
    "falling curve that overshoots its end, other levels", **PURE_TOL, mistakes=(
        Mistake("no_interpolation", "returned the first checkpoint past each level; "
                "interpolate between it and the one before", _jump_unsmoothed_step),
        Mistake("min_to_max", "measured the change from the curve's minimum to its maximum; "
                "it runs from the first value to the last", _jump_min_max),
    ), equivalent_mutants={
        "i = int((fraction[1:] > level).nonzero()[0]) + 1": "at a level met exactly at a "
            "checkpoint, both give that checkpoint's step (t = 1 from before it, t = 0 after)"}))


# --- Exercise 15: the spread over seeds --------------------------------------------------


def seed_spread(steps_per_seed: torch.Tensor, total_steps: int) -> torch.Tensor:
    """How much a measured step varies over seeds, as fractions of training.

    steps_per_seed: [seed] (e.g. each seed's phase-change step). Returns [3]: the mean, the
    sample standard deviation (n - 1 in the denominator) and the range (max - min), each
    divided by total_steps.
    """
    ### BEGIN SOLUTION
    steps = steps_per_seed.double()
    return (torch.stack([steps.mean(), steps.std(), steps.max() - steps.min()]) / total_steps).float()
    ### END SOLUTION


def _spread_population(steps_per_seed, total_steps):
    steps = steps_per_seed.double()
    return (torch.stack([steps.mean(), steps.std(correction=0), steps.max() - steps.min()]) / total_steps).float()


def _spread_in_steps(steps_per_seed, total_steps):
    steps = steps_per_seed.double()
    return torch.stack([steps.mean(), steps.std(), steps.max() - steps.min()]).float()


def _spread_cases(generator):
    return [dict(steps_per_seed=torch.tensor([228, 299, 228, 174, 299]), total_steps=2000),
            dict(steps_per_seed=torch.randint(50, 900, (_randint(generator, 2, 9),), generator=generator),
                 total_steps=_pick(generator, [1000, 3000])),
            dict(steps_per_seed=torch.tensor([310.5, 290.25, 301.0]), total_steps=500)]


EXERCISES.append(Exercise(
    seed_spread, ("statistic",), _spread_cases,
    "five seeds' steps of 2,000; hidden: seeded integer steps of 2-8 seeds, fractional steps",
    **PURE_TOL, mistakes=(
        Mistake("population_std", "divided by n in the standard deviation; with a handful of "
                "seeds use the sample standard deviation (n - 1)", _spread_population),
        Mistake("not_fraction", "returned steps; divide by total_steps", _spread_in_steps),
    )))


# --- Exercise 16: the correlation that describes, and does not explain -------------------


def curve_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson's correlation between two curves over the same checkpoints.

    a, b: [checkpoint]. Returns a 0-dim tensor: cov(a, b) / (std(a) std(b)), with both
    curves centred on their means.
    """
    ### BEGIN SOLUTION
    a, b = a - a.mean(), b - b.mean()
    return (a * b).sum() / (a.norm() * b.norm())
    ### END SOLUTION


def _correlation_uncentred(a, b):
    return (a * b).sum() / (a.norm() * b.norm())


def _covariance(a, b):
    return ((a - a.mean()) * (b - b.mean())).mean()


def _correlation_cases(generator):
    n = len(MAIN_STEPS)
    x = _jump_curve(generator, n, 1.0, 0.0)
    return [dict(a=x, b=-x + 0.2 * torch.randn(n, generator=generator) - 0.9),
            dict(a=_jump_curve(generator, 20, 1.0, 0.0) + 2, b=torch.randn(20, generator=generator) + 1)]


EXERCISES.append(Exercise(
    curve_correlation, (), _correlation_cases,
    "a seeded noisy sigmoid curve and a falling, shifted copy; hidden: an unrelated curve",
    **PURE_TOL, mistakes=(
        Mistake("uncentred", "forgot to centre the curves (that is cosine similarity)",
                _correlation_uncentred),
        Mistake("covariance", "returned the covariance; divide by both standard deviations",
                _covariance),
    )))
