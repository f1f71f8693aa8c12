"""Chapter 3, "Circuits": the IOI task as data, its metric, attribution, activation and path
patching, and the tests of a circuit — reference solutions, known mistakes, exercise list.

Datasets are `readheads.ioi.IOIPrompts` records (tokens right-padded; per-prompt IO and
subject ids and positions). A corrupted dataset keeps the clean prompts' answers and
positions and changes only tokens, so one metric reads both. Patching metrics are callables
logits [batch, pos, vocab] -> scalar, e.g. `readheads.ioi.PatchingMetric` (0 = corrupted run,
1 = clean run).

Activation patching here *denoises*: it runs the corrupted prompts and patches in clean
activations. Path patching *noises*, as Wang et al. (2022) do: it runs the clean prompts and
patches in the senders' corrupted outputs. Sweeps are batched: each patched run starts from
the cached residual stream entering the patched layer (`readheads.patching`).
"""

import torch
from tqdm.auto import tqdm

from autograder.authoring.spec import SMALL_MODEL_LAYERS, CachedRun, Exercise, Mistake
from readheads.ioi import IOIPrompts, PatchingMetric, as_tokens, draw_prompts, name_token_ids
from readheads.patching import patch_positions, patched_runs

MODEL_TOL = dict(atol=1e-3, rtol=1e-3)
SWEEP_TOL = dict(atol=2e-3, rtol=0)  # metrics are differences of ~1 normalised by ~1
PURE_TOL = dict(atol=1e-5, rtol=1e-4)
EXERCISES: list[Exercise] = []
# Mutants that leave out a cached run's names_filter (recorded as equivalent below).
UNFILTERED = "names_filter only keeps fewer activations in memory; the values read are the same"
UNFILTERED_CACHES = {"_, clean_cache = model.run_with_cache(clean)": UNFILTERED,
                     "_, corrupted_cache = model.run_with_cache(corrupted)": UNFILTERED}


def _randint(generator, low, high) -> int:
    return int(torch.randint(low, high, (1,), generator=generator))


def _seed(generator) -> int:
    return _randint(generator, 0, 2**31 - 1)


# --- Exercise 1: the dataset -------------------------------------------------------------


def ioi_dataset(model, n_prompts: int, seed: int, families=("ABBA", "BABA")) -> IOIPrompts:
    """IOI prompts as tokens, with where the names are.

    Draw the prompts with ``draw_prompts(model.tokenizer, n_prompts, seed, families)`` (text,
    IO name, subject name, template index). Tokenize each text with
    ``model.tokenizer.encode(text, add_special_tokens=False)`` and put the BOS token
    (``model.tokenizer.bos_token_id``) in front. Prompts of different templates have different
    lengths: right-pad every row to the longest with ``model.tokenizer.pad_token_id`` (a causal
    model never looks ahead, so padding changes nothing before it).

    The name tokens are those of " " + name. Positions index the padded rows: io_pos, s1_pos
    (first mention of the subject), s2_pos (second mention), end_pos (the last token of the
    prompt, not of the padded row). Returns an `IOIPrompts` of int64 tensors on the model's
    device.
    """
    ### BEGIN SOLUTION
    tokenizer = model.tokenizer
    prompts = draw_prompts(tokenizer, n_prompts, seed, families)
    rows = [[tokenizer.bos_token_id] + tokenizer.encode(p.text, add_special_tokens=False)
            for p in prompts]
    length = max(len(row) for row in rows)
    tokens = torch.tensor([row + [tokenizer.pad_token_id] * (length - len(row)) for row in rows])
    io_ids = [tokenizer.encode(" " + p.io, add_special_tokens=False)[0] for p in prompts]
    s_ids = [tokenizer.encode(" " + p.s, add_special_tokens=False)[0] for p in prompts]
    io_pos = [row.index(io) for row, io in zip(rows, io_ids)]
    s1_pos = [row.index(s) for row, s in zip(rows, s_ids)]
    s2_pos = [row.index(s, first + 1) for row, s, first in zip(rows, s_ids, s1_pos)]
    end_pos = [len(row) - 1 for row in rows]
    template = [p.template for p in prompts]
    columns = [tokens] + [torch.tensor(c) for c in (io_ids, s_ids, io_pos, s1_pos, s2_pos, end_pos, template)]
    return IOIPrompts(*(c.to(model.cfg.device) for c in columns))
    ### END SOLUTION


def _dataset_without_bos(model, n_prompts, seed, families=("ABBA", "BABA")):
    data = ioi_dataset(model, n_prompts, seed, families)
    return data._replace(tokens=data.tokens[:, 1:], io_pos=data.io_pos - 1, s1_pos=data.s1_pos - 1,
                         s2_pos=data.s2_pos - 1, end_pos=data.end_pos - 1)


def _dataset_end_of_row(model, n_prompts, seed, families=("ABBA", "BABA")):
    data = ioi_dataset(model, n_prompts, seed, families)
    return data._replace(end_pos=torch.full_like(data.end_pos, data.tokens.shape[1] - 1))


def _dataset_s2_is_s1(model, n_prompts, seed, families=("ABBA", "BABA")):
    data = ioi_dataset(model, n_prompts, seed, families)
    return data._replace(s2_pos=data.s1_pos)


def _dataset_names_swapped(model, n_prompts, seed, families=("ABBA", "BABA")):
    data = ioi_dataset(model, n_prompts, seed, families)
    return data._replace(io_ids=data.s_ids, s_ids=data.io_ids)


def _dataset_cases(model, generator):
    return [dict(model=model, n_prompts=6, seed=0),
            dict(model=model, n_prompts=_randint(generator, 5, 9), seed=_seed(generator)),
            dict(model=model, n_prompts=_randint(generator, 3, 6), seed=_seed(generator),
                 families=["BABA"])]


EXERCISES.append(Exercise(
    ioi_dataset, {f: ("batch", "pos") if f == "tokens" else ("batch",) for f in IOIPrompts._fields},
    _dataset_cases, "6 prompts, seed 0 and, hidden, seeded sizes and seeds (once BABA only)",
    atol=0, rtol=0, needs_model=True, answered_by=("readheads.ioi.ioi_prompts",), mistakes=(
        Mistake("no_bos", "left out the BOS token in front of each prompt "
                "(model.tokenizer.bos_token_id)", _dataset_without_bos),
        Mistake("end_of_row", "took the last position of the padded row as end_pos; shorter "
                "prompts end earlier (end_pos = the prompt's own length - 1, BOS included)",
                _dataset_end_of_row),
        Mistake("s2_is_s1", "s2_pos is the subject's first mention; the second mention comes "
                "after it (search from s1_pos + 1)", _dataset_s2_is_s1),
        Mistake("names_swapped", "io_ids and s_ids are swapped: the IO is the name said once",
                _dataset_names_swapped),
    ), equivalent_mutants={
        "s2_pos = [row.index(s, first + 2) for row, s, first in zip(rows, s_ids, s1_pos)]":
            "in every IOI template at least two tokens separate the two mentions of S, so the search from first + 2 finds the same S2"}))


# --- Exercise 2: corrupted prompts -------------------------------------------------------


def corrupted_tokens(model, clean: IOIPrompts, kind: str, seed: int) -> torch.Tensor:
    """The tokens of a corrupted copy of `clean`; answers and positions stay those of `clean`.

    kind "abc": the second mention of the subject (s2_pos) becomes a third name C. For each
    prompt in order, C is ``others[torch.randint(len(others), (1,), generator=g)]`` where
    ``others`` lists ``name_token_ids(model.tokenizer)`` without that prompt's IO and S ids
    and ``g = torch.Generator().manual_seed(seed)``.
    kind "swapped": the IO and subject names trade places everywhere (IO, S1 and S2).
    Returns int64 [batch, pos] on the model's device.
    """
    ### BEGIN SOLUTION
    tokens = clean.tokens.clone()
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    if kind == "swapped":
        tokens[rows, clean.io_pos] = clean.s_ids
        tokens[rows, clean.s1_pos] = clean.io_ids
        tokens[rows, clean.s2_pos] = clean.io_ids
        return tokens
    if kind != "abc":
        raise ValueError(f"kind must be 'abc' or 'swapped', not {kind!r}")
    generator = torch.Generator().manual_seed(seed)
    names = name_token_ids(model.tokenizer).tolist()
    for row, (io, s) in enumerate(zip(clean.io_ids.tolist(), clean.s_ids.tolist())):
        others = [n for n in names if n not in (io, s)]
        tokens[row, clean.s2_pos[row]] = others[int(torch.randint(len(others), (1,), generator=generator))]
    return tokens
    ### END SOLUTION


def _corrupt_s1(model, clean, kind, seed):
    if kind == "swapped":
        return corrupted_tokens(model, clean, kind, seed)
    abc = corrupted_tokens(model, clean, kind, seed)
    rows = torch.arange(abc.shape[0], device=abc.device)
    tokens = clean.tokens.clone()
    tokens[rows, clean.s1_pos] = abc[rows, clean.s2_pos]
    return tokens


def _corrupt_first_mentions_only(model, clean, kind, seed):
    if kind != "swapped":
        return corrupted_tokens(model, clean, kind, seed)
    tokens = clean.tokens.clone()
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    tokens[rows, clean.io_pos] = clean.s_ids
    tokens[rows, clean.s1_pos] = clean.io_ids
    return tokens


def _corrupt_any_name(model, clean, kind, seed):
    if kind != "abc":
        return corrupted_tokens(model, clean, kind, seed)
    generator = torch.Generator().manual_seed(seed)
    names = name_token_ids(model.tokenizer).tolist()
    tokens = clean.tokens.clone()
    for row in range(tokens.shape[0]):
        others = names[:-2]
        tokens[row, clean.s2_pos[row]] = others[int(torch.randint(len(others), (1,), generator=generator))]
    return tokens


def _corruption_cases(model, generator):
    def clean(n_prompts):
        return ioi_dataset(model, n_prompts, _seed(generator))
    return [dict(model=model, clean=ioi_dataset(model, 6, 0), kind="abc", seed=1),
            dict(model=model, clean=clean(_randint(generator, 5, 9)), kind="abc", seed=_seed(generator)),
            dict(model=model, clean=clean(_randint(generator, 3, 7)), kind="swapped", seed=0)]


EXERCISES.append(Exercise(
    corrupted_tokens, ("batch", "pos"), _corruption_cases,
    "the 6 prompts of seed 0, kind 'abc' with seed 1 and, hidden, other prompts, 'abc' and "
    "'swapped'", atol=0, rtol=0, needs_model=True, answered_by=("readheads.ioi.corrupted_prompts",),
    mistakes=(
        Mistake("s1_replaced", "replaced the first mention of the subject (s1_pos); ABC "
                "replaces the second (s2_pos)", _corrupt_s1),
        Mistake("first_mentions_only", "swapped only the first mentions; the subject's second "
                "mention (s2_pos) must become the IO too", _corrupt_first_mentions_only),
        Mistake("any_name", "drew C from a list that still contains the prompt's IO or "
                "subject: leave both out of the candidates", _corrupt_any_name),
    ), equivalent_mutants={
        "rows = torch.arange(tokens.shape[0])":
            "indexing with a CPU index tensor works on any device: the same rows are read"}))


# --- Exercise 3: the logit difference ----------------------------------------------------


def logit_diff(logits: torch.Tensor, dataset: IOIPrompts) -> torch.Tensor:
    """Logit of the IO minus logit of the subject, at each prompt's last token.

    logits: [batch, pos, vocab]. Read row b at dataset.end_pos[b] (not at the padded last
    position). Returns [batch].
    """
    ### BEGIN SOLUTION
    rows = torch.arange(logits.shape[0], device=logits.device)
    final = logits[rows, dataset.end_pos]
    return final[rows, dataset.io_ids] - final[rows, dataset.s_ids]
    ### END SOLUTION


def _logit_diff_sign(logits, dataset):
    return -logit_diff(logits, dataset)


def _logit_diff_last_position(logits, dataset):
    ends = torch.full_like(dataset.end_pos, logits.shape[1] - 1)
    return logit_diff(logits, dataset._replace(end_pos=ends))


def _logit_diff_probabilities(logits, dataset):
    return logit_diff(logits.softmax(dim=-1), dataset)


def _random_dataset(gen, batch, pos, vocab):
    ends = torch.randint(pos // 2, pos, (batch,), generator=gen)
    ends[0] = pos - 1
    ids = torch.randperm(vocab, generator=gen)[:2 * batch].view(2, batch)
    zeros = torch.zeros(batch, dtype=torch.long)
    return IOIPrompts(torch.randint(vocab, (batch, pos), generator=gen), ids[0], ids[1],
                      zeros, zeros, zeros, ends, zeros)


def _logit_diff_cases(gen):
    return [dict(logits=torch.randn(3, 7, 20, generator=gen) * 3, dataset=_random_dataset(gen, 3, 7, 20)),
            dict(logits=torch.randn(5, 9, 30, generator=gen) * 3, dataset=_random_dataset(gen, 5, 9, 30))]


EXERCISES.append(Exercise(
    logit_diff, ("batch",), _logit_diff_cases,
    "logits: seeded normal; datasets with seeded answers and end positions", **PURE_TOL, mistakes=(
        Mistake("sign", "computed subject minus IO; the logit difference is IO minus subject",
                _logit_diff_sign),
        Mistake("last_position", "read the last position of the padded batch; read each "
                "prompt at its own end_pos", _logit_diff_last_position),
        Mistake("probabilities", "took the difference of probabilities; use the logits",
                _logit_diff_probabilities),
    ), equivalent_mutants={
        "rows = torch.arange(logits.shape[0])":
            "indexing with a CPU index tensor works on any device: the same rows are read"}))


# --- Exercise 4: the patching metric -----------------------------------------------------


def normalised_metric(logit_diffs: torch.Tensor, clean: torch.Tensor, corrupted: torch.Tensor) -> torch.Tensor:
    """How much of the clean behaviour a run recovers: 0 = corrupted run, 1 = clean run.

    logit_diffs: [batch], a run's logit differences; clean, corrupted: the mean logit
    difference of the clean and of the corrupted run (0-dim). Returns a 0-dim tensor:
    (mean of logit_diffs - corrupted) / (clean - corrupted).
    """
    ### BEGIN SOLUTION
    return (logit_diffs.mean() - corrupted) / (clean - corrupted)
    ### END SOLUTION


def _metric_unnormalised(logit_diffs, clean, corrupted):
    return logit_diffs.mean() - corrupted


def _metric_swapped(logit_diffs, clean, corrupted):
    return (logit_diffs.mean() - clean) / (corrupted - clean)


def _metric_not_centred(logit_diffs, clean, corrupted):
    return logit_diffs.mean() / clean


def _metric_cases(gen):
    def case(batch):
        return dict(logit_diffs=torch.randn(batch, generator=gen) * 2 + 1,
                    clean=torch.rand((), generator=gen) * 3 + 2, corrupted=torch.rand((), generator=gen) - 1.5)
    return [case(4), case(7)]


EXERCISES.append(Exercise(
    normalised_metric, (), _metric_cases, "seeded logit differences, clean in [2, 5), "
    "corrupted in [-1.5, -0.5)", **PURE_TOL, mistakes=(
        Mistake("unnormalised", "did not divide by (clean - corrupted): the clean run must "
                "score 1", _metric_unnormalised),
        Mistake("swapped", "swapped clean and corrupted: the corrupted run scores 0, the clean 1",
                _metric_swapped),
        Mistake("not_centred", "divided by the clean value without subtracting the corrupted "
                "one first", _metric_not_centred),
    )))


# --- Shared by the model exercises below: small datasets and their cached runs -----------


def _clean_run(model, generator, visible, n_prompts):
    """(dataset, CachedRun) for the visible case (seed 0) or a hidden one (seeded)."""
    dataset = ioi_dataset(model, n_prompts, 0 if visible else _seed(generator))
    return dataset, CachedRun(dataset.tokens)


def _attribution_cases(model, generator):
    cases = []
    for visible, n_prompts in ((True, 4), (False, _randint(generator, 3, 6))):
        dataset, run = _clean_run(model, generator, visible, n_prompts)
        cases.append(dict(model=model, cache=run, dataset=dataset))
    return cases


# --- Exercise 5: the logit-difference direction ------------------------------------------


def logit_diff_directions(model, dataset: IOIPrompts) -> torch.Tensor:
    """The residual-stream direction whose dot product with the final (normalised) residual
    stream is the logit difference: the unembedding of the IO minus that of the subject.

    Returns [batch, d_model]: ``model.W_U[:, io] - model.W_U[:, s]`` for each prompt.
    """
    ### BEGIN SOLUTION
    return (model.W_U[:, dataset.io_ids] - model.W_U[:, dataset.s_ids]).T
    ### END SOLUTION


def _directions_sign(model, dataset):
    return -logit_diff_directions(model, dataset)


def _directions_embedding(model, dataset):
    return model.W_E[dataset.io_ids] - model.W_E[dataset.s_ids]


def _direction_cases(model, generator):
    return [dict(model=model, dataset=ioi_dataset(model, 4, 0)),
            dict(model=model, dataset=ioi_dataset(model, _randint(generator, 3, 7), _seed(generator)))]


EXERCISES.append(Exercise(
    logit_diff_directions, ("batch", "d_model"), _direction_cases,
    "the 4 prompts of seed 0 and, hidden, other seeded prompts", **MODEL_TOL, needs_model=True,
    mistakes=(
        Mistake("sign", "took subject minus IO; the direction is W_U[:, io] - W_U[:, s]",
                _directions_sign),
        Mistake("embedding", "used the embedding W_E; the logits come from the unembedding W_U",
                _directions_embedding),
    )))


# --- Exercise 6: the logit lens on the logit difference ----------------------------------


def accumulated_logit_diff(model, cache, dataset: IOIPrompts) -> torch.Tensor:
    """The logit lens on the logit difference: how far the residual stream at each prompt's
    last token already points to the IO, layer by layer.

    Take the residual stream at end_pos entering each layer (``cache["resid_pre", layer]``)
    and, last, leaving the final layer (``cache["resid_post", n_layers - 1]``). Apply the
    final norm as the model did: divide by the scale cached at ``"ln_final.hook_scale"`` (at
    end_pos). (In compatibility mode the norms' weights are folded into W_U and GPT-2's
    residual stream is already centred, so the norm is this division on both course models.)
    Project on `logit_diff_directions`. Returns [n_layers + 1, batch]; the last row is the
    model's logit difference, up to the unembedding bias.
    """
    ### BEGIN SOLUTION
    rows = torch.arange(dataset.tokens.shape[0], device=dataset.tokens.device)
    stack = [cache["resid_pre", layer] for layer in range(model.cfg.n_layers)]
    stack.append(cache["resid_post", model.cfg.n_layers - 1])
    resid = torch.stack(stack)[:, rows, dataset.end_pos]  # [layer + 1, batch, d_model]
    scale = cache["ln_final.hook_scale"][rows, dataset.end_pos]  # [batch, 1]
    return ((resid / scale) * logit_diff_directions(model, dataset)).sum(-1)
    ### END SOLUTION


def _lens(model, cache, dataset, *, scale=True, last=False):
    ends = torch.full_like(dataset.end_pos, dataset.tokens.shape[1] - 1) if last else dataset.end_pos
    rows = torch.arange(len(ends), device=ends.device)
    stack = [cache["resid_pre", layer] for layer in range(model.cfg.n_layers)]
    stack.append(cache["resid_post", model.cfg.n_layers - 1])
    resid = torch.stack(stack)[:, rows, ends]
    if scale:
        resid = resid / cache["ln_final.hook_scale"][rows, ends]
    return (resid * logit_diff_directions(model, dataset)).sum(-1)


def _lens_no_scale(model, cache, dataset):
    return _lens(model, cache, dataset, scale=False)


def _lens_last_position(model, cache, dataset):
    return _lens(model, cache, dataset, last=True)


EXERCISES.append(Exercise(
    accumulated_logit_diff, ("layer", "batch"), _attribution_cases,
    "the cached run of the 4 prompts of seed 0 and, hidden, other seeded prompts",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("no_final_scale", "forgot the final norm: divide the residual stream by the "
                "cached scale ln_final.hook_scale before projecting", _lens_no_scale),
        Mistake("last_position", "read the last position of the padded batch; read each prompt "
                "at its end_pos", _lens_last_position),
    ), equivalent_mutants={
        "rows = torch.arange(dataset.tokens.shape[0])":
            "indexing with a CPU index tensor works on any device: the same rows are read"}))


# --- Exercise 7: each layer's direct effect, attention and MLP ---------------------------


def layer_logit_diffs(model, cache, dataset: IOIPrompts) -> torch.Tensor:
    """Direct logit attribution by layer: what each layer's attention output
    (``cache["attn_out", layer]``) and MLP output (``cache["mlp_out", layer]``) add to the
    logit difference at end_pos, divided by the final norm's cached scale there, projected
    on `logit_diff_directions` and averaged over the batch.
    Returns [2, n_layers]: row 0 attention, row 1 MLP.
    """
    ### BEGIN SOLUTION
    rows = torch.arange(dataset.tokens.shape[0], device=dataset.tokens.device)
    scale = cache["ln_final.hook_scale"][rows, dataset.end_pos]  # [batch, 1]
    directions = logit_diff_directions(model, dataset)
    parts = [[cache[kind, layer][rows, dataset.end_pos] for layer in range(model.cfg.n_layers)]
             for kind in ("attn_out", "mlp_out")]
    outputs = torch.stack([torch.stack(part) for part in parts])  # [2, layer, batch, d_model]
    return (outputs / scale * directions).sum(-1).mean(-1)
    ### END SOLUTION


def _layers(model, cache, dataset, *, scale=True, order=("attn_out", "mlp_out")):
    rows = torch.arange(dataset.tokens.shape[0], device=dataset.tokens.device)
    outputs = torch.stack([torch.stack([cache[kind, layer][rows, dataset.end_pos]
                                        for layer in range(model.cfg.n_layers)]) for kind in order])
    if scale:
        outputs = outputs / cache["ln_final.hook_scale"][rows, dataset.end_pos]
    return (outputs * logit_diff_directions(model, dataset)).sum(-1).mean(-1)


def _layers_no_scale(model, cache, dataset):
    return _layers(model, cache, dataset, scale=False)


def _layers_mlp_first(model, cache, dataset):
    return _layers(model, cache, dataset, order=("mlp_out", "attn_out"))


EXERCISES.append(Exercise(
    layer_logit_diffs, ("component", "layer"), _attribution_cases,
    "the cached run of the 4 prompts of seed 0 and, hidden, other seeded prompts",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("no_final_scale", "forgot the final norm: divide each output by the cached "
                "scale ln_final.hook_scale at end_pos", _layers_no_scale),
        Mistake("mlp_first", "put the MLP outputs in row 0; row 0 is attention, row 1 MLP",
                _layers_mlp_first),
    ), equivalent_mutants={
        "rows = torch.arange(dataset.tokens.shape[0])":
            "indexing with a CPU index tensor works on any device: the same rows are read"}))


# --- Exercise 8: each head's direct effect on the logit difference -----------------------


def head_logit_diffs(model, cache, dataset: IOIPrompts) -> torch.Tensor:
    """Direct logit attribution to the logit difference, head by head.

    A head's output at end_pos is ``z[end_pos, head] @ W_O[layer, head]`` (z from
    ``cache["z", layer]``, [batch, pos, head, d_head]). Divide it by the final norm's cached
    scale at end_pos and project it on `logit_diff_directions`. Average over the batch.
    Returns [n_layers, n_heads]: positive heads push towards the IO (name movers), negative
    ones towards the subject.
    """
    ### BEGIN SOLUTION
    rows = torch.arange(dataset.tokens.shape[0], device=dataset.tokens.device)
    z = torch.stack([cache["z", layer][rows, dataset.end_pos] for layer in range(model.cfg.n_layers)])
    outputs = torch.einsum("lbhd,lhdm->lbhm", z, model.W_O)  # [layer, batch, head, d_model]
    scale = cache["ln_final.hook_scale"][rows, dataset.end_pos]  # [batch, 1]
    directions = logit_diff_directions(model, dataset)  # [batch, d_model]
    return (outputs / scale[:, None] * directions[:, None]).sum(-1).mean(1)
    ### END SOLUTION


def _heads(model, cache, dataset, *, scale=True, last=False):
    ends = torch.full_like(dataset.end_pos, dataset.tokens.shape[1] - 1) if last else dataset.end_pos
    rows = torch.arange(len(ends), device=ends.device)
    z = torch.stack([cache["z", layer][rows, ends] for layer in range(model.cfg.n_layers)])
    outputs = torch.einsum("lbhd,lhdm->lbhm", z, model.W_O)
    if scale:
        outputs = outputs / cache["ln_final.hook_scale"][rows, ends][:, None]
    return (outputs * logit_diff_directions(model, dataset)[:, None]).sum(-1).mean(1)


def _heads_no_scale(model, cache, dataset):
    return _heads(model, cache, dataset, scale=False)


def _heads_last_position(model, cache, dataset):
    return _heads(model, cache, dataset, last=True)


EXERCISES.append(Exercise(
    head_logit_diffs, ("layer", "head"), _attribution_cases,
    "the cached run of the 4 prompts of seed 0 and, hidden, other seeded prompts",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("no_final_scale", "forgot the final norm: divide each head's output by the "
                "cached scale ln_final.hook_scale at end_pos", _heads_no_scale),
        Mistake("last_position", "read the last position of the padded batch; read each prompt "
                "at its end_pos", _heads_last_position),
    ), equivalent_mutants={
        "rows = torch.arange(dataset.tokens.shape[0])":
            "indexing with a CPU index tensor works on any device: the same rows are read"}))


# --- Exercise 9: where the heads look from the last token --------------------------------


def attention_to_names(model, cache, dataset: IOIPrompts) -> torch.Tensor:
    """How much each head attends from the last token (end_pos) to the IO, to the subject's
    first mention and to its second mention, averaged over the batch.

    Returns [n_layers, n_heads, 3] (IO, S1, S2), from ``cache["pattern", layer]``
    ([batch, head, query_pos, key_pos]).
    """
    ### BEGIN SOLUTION
    rows = torch.arange(dataset.tokens.shape[0], device=dataset.tokens.device)
    scores = []
    for layer in range(model.cfg.n_layers):
        from_end = cache["pattern", layer][rows, :, dataset.end_pos]  # [batch, head, key_pos]
        names = torch.stack([dataset.io_pos, dataset.s1_pos, dataset.s2_pos], dim=1)  # [batch, 3]
        scores.append(from_end.gather(-1, names[:, None].expand(-1, from_end.shape[1], -1)).mean(0))
    return torch.stack(scores)
    ### END SOLUTION


def _names_attention(model, cache, dataset, *, transposed=False, last=False):
    ends = torch.full_like(dataset.end_pos, dataset.tokens.shape[1] - 1) if last else dataset.end_pos
    rows = torch.arange(len(ends), device=ends.device)
    scores = []
    for layer in range(model.cfg.n_layers):
        pattern = cache["pattern", layer]
        if transposed:
            pattern = pattern.transpose(-1, -2)
        names = (dataset.io_pos, dataset.s1_pos, dataset.s2_pos)
        scores.append(torch.stack([pattern[rows, :, ends, p] for p in names], -1).mean(0))
    return torch.stack(scores)


def _names_transposed(model, cache, dataset):
    return _names_attention(model, cache, dataset, transposed=True)


def _names_last_position(model, cache, dataset):
    return _names_attention(model, cache, dataset, last=True)


EXERCISES.append(Exercise(
    attention_to_names, ("layer", "head", "name"), _attribution_cases,
    "the cached run of the 4 prompts of seed 0 and, hidden, other seeded prompts",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("transposed", "read pattern[..., key, query]: the query (attending) position "
                "is the second-to-last index, the key the last", _names_transposed),
        Mistake("last_position", "attended from the last position of the padded batch; "
                "start at each prompt's end_pos", _names_last_position),
    ), equivalent_mutants={
        "rows = torch.arange(dataset.tokens.shape[0])":
            "indexing with a CPU index tensor works on any device: the same rows are read"}))


# --- Shared by the patching exercises: clean and corrupted prompts, and their metric -----


def patching_setup(model, n_prompts: int, seed: int, kind: str = "abc", families=("ABBA", "BABA")):
    """(clean, corrupted, metric) for patching: `n_prompts` IOI prompts, a corrupted copy of
    the given kind, and the normalised logit difference measured against both runs."""
    clean = ioi_dataset(model, n_prompts, seed, families)
    corrupted = clean._replace(tokens=corrupted_tokens(model, clean, kind, seed + 1))
    with torch.no_grad():
        clean_value = logit_diff(model(clean.tokens), clean).mean()
        corrupted_value = logit_diff(model(corrupted.tokens), clean).mean()
    metric = PatchingMetric(clean.io_ids, clean.s_ids, clean.end_pos, clean_value, corrupted_value)
    return clean, corrupted, metric


def _sweep_cases(model, generator, n_layers_hidden=2, **extra):
    """Visible: 3 prompts of seed 0, layers 0 and the last. Hidden: seeded prompts (2 to 4),
    `n_layers_hidden` seeded layers in seeded (unsorted) order, an ABC or a swapped
    corruption; on a model of at most SMALL_MODEL_LAYERS layers also the default, every
    layer (`layers` left out)."""
    last = model.cfg.n_layers - 1
    clean, corrupted, metric = patching_setup(model, 3, 0)
    cases = [dict(model=model, clean=clean, corrupted=corrupted, metric=metric, layers=[0, last], **extra)]
    kind = ("abc", "swapped")[_randint(generator, 0, 2)]
    clean, corrupted, metric = patching_setup(model, _randint(generator, 2, 5), _seed(generator) % 10**6, kind)
    layers = torch.randperm(model.cfg.n_layers, generator=generator)[:n_layers_hidden].tolist()
    if layers == sorted(layers):
        layers.reverse()
    cases.append(dict(model=model, clean=clean, corrupted=corrupted, metric=metric, layers=layers, **extra))
    if model.cfg.n_layers <= SMALL_MODEL_LAYERS:
        cases.append(dict(model=model, clean=clean, corrupted=corrupted, metric=metric, **extra))
    return cases


# --- Exercise 10: patching the residual stream, by layer and position ---------------------


def patch_residual_sweep(model, clean: IOIPrompts, corrupted: IOIPrompts, metric, layers=None) -> torch.Tensor:
    """Activation patching of the residual stream: for each layer (of `layers`, default all)
    and each position p, run the corrupted prompts with the clean residual stream entering
    that layer (``hook_resid_pre``) patched in at position p, and measure `metric` on the
    logits. `clean` and `corrupted` are `IOIPrompts` (or just their tokens, same shape).
    Returns [len(layers), pos].

    Batch it with `patch_positions`: many patched runs per forward pass, each starting from
    the corrupted residual stream entering the patched layer (earlier layers are the same as
    in the corrupted run) and computing only the positions from the patched one on (earlier
    positions are the same too). Where the clean and corrupted residual streams are equal
    (positions before the first changed token), a patch changes nothing: the result is the
    unpatched corrupted run's metric.
    """
    ### BEGIN SOLUTION
    clean, corrupted = as_tokens(clean), as_tokens(corrupted)  # records or token tensors
    layers = range(model.cfg.n_layers) if layers is None else layers
    only_resid = lambda name: name.endswith("hook_resid_pre")  # noqa: E731
    _, clean_cache = model.run_with_cache(clean, names_filter=only_resid)
    corrupted_logits, corrupted_cache = model.run_with_cache(corrupted, names_filter=only_resid)
    n_positions = clean.shape[1]
    unpatched = torch.as_tensor(metric(corrupted_logits), device=clean.device)
    results = unpatched.repeat(len(layers), n_positions)
    for row, layer in enumerate(tqdm(layers, desc="patching the residual stream")):
        clean_resid, corrupted_resid = clean_cache["resid_pre", layer], corrupted_cache["resid_pre", layer]
        changed = [p for p in range(n_positions) if not torch.equal(clean_resid[:, p], corrupted_resid[:, p])]
        results[row, changed] = patch_positions(model, corrupted_resid, layer, clean_resid, changed, metric)
    return results
    ### END SOLUTION


def residual_sweep_one_patch_per_forward(model, clean, corrupted, metric, layers=None, hook="resid_pre"):
    """The plain loop: one full forward pass per (layer, position). For benchmarks and tests."""
    layers = range(model.cfg.n_layers) if layers is None else layers
    _, clean_cache = model.run_with_cache(clean.tokens)
    results = torch.zeros(len(layers), clean.tokens.shape[1], device=clean.tokens.device)
    for row, layer in enumerate(tqdm(layers, desc="one patch per forward")):
        name = f"blocks.{layer}.hook_{hook}"
        for p in range(clean.tokens.shape[1]):
            def patch(resid, hook):
                resid[:, p] = clean_cache[name][:, p]
                return resid
            results[row, p] = metric(model.run_with_hooks(corrupted.tokens, fwd_hooks=[(name, patch)]))
    return results


def _residual_post(model, clean, corrupted, metric, layers=None):
    layers = range(model.cfg.n_layers) if layers is None else layers
    _, clean_cache = model.run_with_cache(clean.tokens)
    _, corrupted_cache = model.run_with_cache(corrupted.tokens)
    rows = []
    for layer in layers:
        clean_post = clean_cache["resid_post", layer]

        def patch_position(p):
            def patch(resid):
                resid[:, p] = clean_post[:, p]
            return patch

        rows.append(patched_runs(model, corrupted_cache["resid_pre", layer], layer,
                                 f"blocks.{layer}.hook_resid_post",
                                 [patch_position(p) for p in range(clean.tokens.shape[1])], metric))
    return torch.stack(rows)


def _residual_swapped(model, clean, corrupted, metric, layers=None):
    return patch_residual_sweep(model, corrupted, clean, metric, layers)


EXERCISES.append(Exercise(
    patch_residual_sweep, ("layer", "pos"), _sweep_cases,
    "3 ABC-corrupted prompts of seed 0, layers 0 and the last and, hidden, 2 to 4 seeded "
    "prompts (ABC or swapped names) at 2 seeded layers in seeded order (and every layer, "
    "the default, on the grader's 4-layer models)", **SWEEP_TOL, needs_model=True,
    answered_by=("readheads.sweeps.residual_sweep",), mistakes=(
        Mistake("resid_post", "patched the residual stream leaving the layer (hook_resid_post); "
                "the sweep patches the stream entering it (hook_resid_pre)", _residual_post),
        Mistake("swapped", "patched corrupted activations into the clean run; activation "
                "patching here runs the corrupted prompts and patches in clean activations",
                _residual_swapped),
    ), equivalent_mutants={
        "_, clean_cache = model.run_with_cache(clean)": UNFILTERED,
        "corrupted_logits, corrupted_cache = model.run_with_cache(corrupted)": UNFILTERED,
        "unpatched = torch.as_tensor(metric(corrupted_logits))":
            "the same on the CPU; on a GPU the grader's device check fails it",
        "for row, layer in enumerate(tqdm(layers)):":
            "desc only labels the progress bar"}))


# --- Exercise 11: patching attention and MLP outputs, by layer --------------------------


def patch_layer_output_sweep(model, clean: IOIPrompts, corrupted: IOIPrompts, metric) -> torch.Tensor:
    """Activation patching of each layer's attention output (``hook_attn_out``) and MLP output
    (``hook_mlp_out``), at every position: run the corrupted prompts with that one output
    taken from the clean run. Returns [2, n_layers]: row 0 attention, row 1 MLP.

    Start each patched run at its layer (`patched_runs` with one patch, or `run_from_layer`).
    """
    ### BEGIN SOLUTION
    clean, corrupted = as_tokens(clean), as_tokens(corrupted)  # records or token tensors
    wanted = lambda name: name.endswith(("hook_attn_out", "hook_mlp_out", "hook_resid_pre"))  # noqa: E731
    _, clean_cache = model.run_with_cache(clean, names_filter=wanted)
    _, corrupted_cache = model.run_with_cache(corrupted, names_filter=wanted)
    results = torch.zeros(2, model.cfg.n_layers, device=clean.device)
    for layer in tqdm(range(model.cfg.n_layers), desc="patching layer outputs"):
        for row, kind in enumerate(("attn_out", "mlp_out")):
            clean_output = clean_cache[kind, layer]

            def patch(output):
                output.copy_(clean_output)

            results[row, layer] = patched_runs(model, corrupted_cache["resid_pre", layer], layer,
                                               f"blocks.{layer}.hook_{kind}", [patch], metric)[0]
    return results
    ### END SOLUTION


def _layer_outputs_swapped(model, clean, corrupted, metric):
    return patch_layer_output_sweep(model, corrupted, clean, metric)


def _layer_outputs_mlp_first(model, clean, corrupted, metric):
    return patch_layer_output_sweep(model, clean, corrupted, metric).flip(0)


def _layer_output_cases(model, generator):
    return [{k: v for k, v in case.items() if k != "layers"} for case in _sweep_cases(model, generator)[:2]]


EXERCISES.append(Exercise(
    patch_layer_output_sweep, ("component", "layer"), _layer_output_cases,
    "3 ABC-corrupted prompts of seed 0 and, hidden, 2 to 4 seeded prompts (ABC or swapped names)",
    **SWEEP_TOL, needs_model=True, answered_by=("readheads.sweeps.layer_output_sweep",), mistakes=(
        Mistake("swapped", "patched corrupted activations into the clean run; run the "
                "corrupted prompts and patch in the clean outputs", _layer_outputs_swapped),
        Mistake("mlp_first", "put the MLP outputs in row 0; row 0 is attention, row 1 MLP",
                _layer_outputs_mlp_first),
    ), equivalent_mutants={**UNFILTERED_CACHES,
        "results = torch.zeros(2, model.cfg.n_layers)":
            "the same on the CPU; on a GPU the grader's device check fails it",
        "for layer in tqdm(range(model.cfg.n_layers)):":
            "desc only labels the progress bar"}))


# --- Exercise 12: patching each head's output --------------------------------------------


def patch_head_output_sweep(model, clean: IOIPrompts, corrupted: IOIPrompts, metric, layers=None) -> torch.Tensor:
    """Activation patching of each head's output: for each layer (of `layers`, default all)
    and head, run the corrupted prompts with that head's clean z (``attn.hook_z``,
    [batch, pos, head, d_head]) patched in at every position. Returns [len(layers), n_heads].

    Batch the heads of a layer with `patched_runs`, starting from the corrupted residual
    stream entering the layer.
    """
    ### BEGIN SOLUTION
    clean, corrupted = as_tokens(clean), as_tokens(corrupted)  # records or token tensors
    layers = range(model.cfg.n_layers) if layers is None else layers
    wanted = lambda name: name.endswith(("hook_z", "hook_resid_pre"))  # noqa: E731
    _, clean_cache = model.run_with_cache(clean, names_filter=wanted)
    _, corrupted_cache = model.run_with_cache(corrupted, names_filter=wanted)
    rows = []
    for layer in tqdm(layers, desc="patching head outputs"):
        clean_z = clean_cache["z", layer]

        def patch_head(head):
            def patch(z):
                z[:, :, head] = clean_z[:, :, head]
            return patch

        rows.append(patched_runs(model, corrupted_cache["resid_pre", layer], layer,
                                 f"blocks.{layer}.attn.hook_z",
                                 [patch_head(h) for h in range(model.cfg.n_heads)], metric))
    return torch.stack(rows)
    ### END SOLUTION


def _heads_swapped(model, clean, corrupted, metric, layers=None):
    return patch_head_output_sweep(model, corrupted, clean, metric, layers)


def _heads_end_only(model, clean, corrupted, metric, layers=None):
    layers = range(model.cfg.n_layers) if layers is None else layers
    _, clean_cache = model.run_with_cache(clean.tokens)
    _, corrupted_cache = model.run_with_cache(corrupted.tokens)
    rows_index = torch.arange(clean.tokens.shape[0], device=clean.tokens.device)
    rows = []
    for layer in layers:
        clean_z = clean_cache["z", layer]

        def patch_head(head):
            def patch(z):
                z[rows_index, clean.end_pos, head] = clean_z[rows_index, clean.end_pos, head]
            return patch

        rows.append(patched_runs(model, corrupted_cache["resid_pre", layer], layer,
                                 f"blocks.{layer}.attn.hook_z",
                                 [patch_head(h) for h in range(model.cfg.n_heads)], metric))
    return torch.stack(rows)


EXERCISES.append(Exercise(
    patch_head_output_sweep, ("layer", "head"), _sweep_cases,
    "3 ABC-corrupted prompts of seed 0, layers 0 and the last and, hidden, 2 to 4 seeded "
    "prompts (ABC or swapped names) at 2 seeded layers in seeded order (and every layer, "
    "the default, on the grader's 4-layer models)", **SWEEP_TOL, needs_model=True,
    answered_by=("readheads.sweeps.head_output_sweep",), mistakes=(
        Mistake("swapped", "patched corrupted activations into the clean run; run the "
                "corrupted prompts and patch in the clean head output", _heads_swapped),
        Mistake("end_only", "patched the head's output at the last token only; this sweep "
                "patches it at every position", _heads_end_only),
    ), equivalent_mutants={**UNFILTERED_CACHES,
        "for layer in tqdm(layers):":
            "desc only labels the progress bar"}))


# --- Exercise 13: patching a head's queries, keys, values or pattern ---------------------


def patch_head_input_sweep(model, clean: IOIPrompts, corrupted: IOIPrompts, metric, component: str,
                           layers=None) -> torch.Tensor:
    """Activation patching of what each head computes from: its queries (component "q"),
    keys ("k"), values ("v") or attention pattern ("pattern"), at every position.

    Hooks: ``blocks.{layer}.attn.hook_q`` / ``hook_k`` / ``hook_v`` ([batch, pos, head,
    d_head]) and ``hook_pattern`` ([batch, head, query_pos, key_pos]). On a grouped-query
    model (SmolLM2: 9 query heads share 3 key/value heads) hook_k and hook_v have one entry per
    *key/value* head: "a head's keys" are shared by its whole group, so the k and v sweeps
    have n_kv_heads columns, and patching one changes every head of its group.
    Returns [len(layers), heads of that component].
    """
    ### BEGIN SOLUTION
    clean, corrupted = as_tokens(clean), as_tokens(corrupted)  # records or token tensors
    layers = range(model.cfg.n_layers) if layers is None else layers
    hook = {"q": "hook_q", "k": "hook_k", "v": "hook_v", "pattern": "hook_pattern"}[component]
    head_dim = 1 if component == "pattern" else 2
    wanted = lambda name: name.endswith((hook, "hook_resid_pre"))  # noqa: E731
    _, clean_cache = model.run_with_cache(clean, names_filter=wanted)
    _, corrupted_cache = model.run_with_cache(corrupted, names_filter=wanted)
    rows = []
    for layer in tqdm(layers, desc=f"patching head {component}"):
        name = f"blocks.{layer}.attn.{hook}"
        clean_activation = clean_cache[name]

        def patch_head(head):
            def patch(activation):
                activation.select(head_dim, head).copy_(clean_activation.select(head_dim, head))
            return patch

        n_heads = clean_activation.shape[head_dim]
        rows.append(patched_runs(model, corrupted_cache["resid_pre", layer], layer, name,
                                 [patch_head(h) for h in range(n_heads)], metric))
    return torch.stack(rows)
    ### END SOLUTION


def _inputs_swapped(model, clean, corrupted, metric, component, layers=None):
    return patch_head_input_sweep(model, corrupted, clean, metric, component, layers)


def _head_input_cases(model, generator):
    cases = _sweep_cases(model, generator, component="k")
    hidden = _sweep_cases(model, generator, component=("q", "v", "pattern")[_randint(generator, 0, 3)])[1]
    return cases + [hidden]


EXERCISES.append(Exercise(
    patch_head_input_sweep, ("layer", "head"), _head_input_cases,
    "keys of 3 ABC-corrupted prompts of seed 0, layers 0 and the last and, hidden, keys and "
    "one of q, v or pattern on seeded prompts and layers (every layer on the grader's 4-layer "
    "models)", **SWEEP_TOL, needs_model=True, mistakes=(
        Mistake("swapped", "patched corrupted activations into the clean run; run the "
                "corrupted prompts and patch in the clean ones", _inputs_swapped),
    ), equivalent_mutants={**UNFILTERED_CACHES,
        "for layer in tqdm(layers):":
            "desc only labels the progress bar"}))


# --- Exercise 14: path patching ----------------------------------------------------------


def path_patch(model, clean: IOIPrompts, corrupted: IOIPrompts, senders: torch.Tensor,
               receivers: torch.Tensor, component: str, metric) -> torch.Tensor:
    """Path patching: the effect of the sender heads on the answer *through* the receivers
    only. Runs the clean prompts and gives the senders their corrupted outputs (noising).

    clean, corrupted: `IOIPrompts` (or their tokens). senders: int [n, 2] rows of (layer,
    head). component "resid": the receiver is the final residual stream (the direct path to
    the logits; `receivers` is ignored and may be None). Else receivers
    [m, 2] are heads and component is "q", "k" or "v": the path into their queries, keys or
    values (on a grouped-query model the key/value head that head reads, shared by its group).

    1. Run the clean prompts with every head's z (``attn.hook_z``) frozen at its clean value,
       except the senders, which get their corrupted z. (MLPs are recomputed.) For "resid",
       return the metric of this run's logits.
    2. Else, keep the receivers' q/k/v from run 1, and run the clean prompts again with only
       those patched in (their head entries of ``attn.hook_q`` / ``hook_k`` / ``hook_v``).
       Return the metric of run 2. Returns a 0-dim tensor (1 = no effect, as clean).
    """
    ### BEGIN SOLUTION
    clean, corrupted = as_tokens(clean), as_tokens(corrupted)  # records or token tensors
    senders = torch.as_tensor(senders).long().reshape(-1, 2)
    receivers = torch.as_tensor([] if receivers is None else receivers).long().reshape(-1, 2)
    n_layers = model.cfg.n_layers
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layers)]
    _, clean_cache = model.run_with_cache(clean, names_filter=z_names)
    _, corrupted_cache = model.run_with_cache(corrupted, names_filter=z_names)

    def freeze(z, hook):
        layer = int(hook.name.split(".")[1])
        frozen = clean_cache[hook.name].clone()
        heads = senders[senders[:, 0] == layer, 1]
        frozen[:, :, heads] = corrupted_cache[hook.name][:, :, heads]
        return frozen

    freezing = [(name, freeze) for name in z_names]
    if component == "resid":
        return torch.as_tensor(metric(model.run_with_hooks(clean, fwd_hooks=freezing)))
    if component not in ("q", "k", "v"):
        raise ValueError(f"component must be 'resid', 'q', 'k' or 'v', not {component!r}")
    if len(receivers) == 0:
        raise ValueError(f"component {component!r} needs receiver heads, rows of (layer, head)")
    receiver_names = sorted({f"blocks.{layer}.attn.hook_{component}" for layer in receivers[:, 0].tolist()})
    with model.hooks(fwd_hooks=freezing):
        _, sent = model.run_with_cache(clean, names_filter=receiver_names)
    group = model.cfg.n_heads // sent[receiver_names[0]].shape[2]  # query heads per k/v head

    def patch_receivers(activation, hook):
        layer = int(hook.name.split(".")[1])
        heads = receivers[receivers[:, 0] == layer, 1]
        if component != "q":
            heads = heads // group
        activation[:, :, heads] = sent[hook.name][:, :, heads]
        return activation

    logits = model.run_with_hooks(clean, fwd_hooks=[(n, patch_receivers) for n in receiver_names])
    return torch.as_tensor(metric(logits))
    ### END SOLUTION


def _path_not_frozen(model, clean, corrupted, senders, receivers, component, metric):
    """Patches the senders but lets every other head recompute: activation patching."""
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, corrupted_cache = model.run_with_cache(corrupted.tokens, names_filter=z_names)

    def patch_senders(z, hook):
        heads = senders[senders[:, 0] == int(hook.name.split(".")[1]), 1]
        z[:, :, heads] = corrupted_cache[hook.name][:, :, heads]
        return z

    patching = [(name, patch_senders) for name in z_names]
    if component == "resid":
        return metric(model.run_with_hooks(clean.tokens, fwd_hooks=patching))
    names = sorted({f"blocks.{layer}.attn.hook_{component}" for layer in receivers[:, 0].tolist()})
    with model.hooks(fwd_hooks=patching):
        _, sent = model.run_with_cache(clean.tokens, names_filter=names)
    group = model.cfg.n_heads // sent[names[0]].shape[2]

    def patch_receivers(activation, hook):
        heads = receivers[receivers[:, 0] == int(hook.name.split(".")[1]), 1]
        heads = heads if component == "q" else heads // group
        activation[:, :, heads] = sent[hook.name][:, :, heads]
        return activation

    return metric(model.run_with_hooks(clean.tokens, fwd_hooks=[(n, patch_receivers) for n in names]))


def _path_swapped(model, clean, corrupted, senders, receivers, component, metric):
    return path_patch(model, corrupted, clean, senders, receivers, component, metric)


def _path_whole_layer(model, clean, corrupted, senders, receivers, component, metric):
    """Patches every head of the receivers' layers, not only the receivers."""
    layers = receivers[:, 0].unique()
    every_head = torch.cartesian_prod(layers, torch.arange(model.cfg.n_heads, device=layers.device))
    return path_patch(model, clean, corrupted, senders, every_head, component, metric)


def _heads_tensor(generator, model, n, first_layer=0, last_layer=None):
    """n distinct seeded (layer, head) rows with layers in [first_layer, last_layer]."""
    last_layer = model.cfg.n_layers - 1 if last_layer is None else last_layer
    n_heads = model.cfg.n_heads
    flat = first_layer * n_heads + torch.randperm((last_layer - first_layer + 1) * n_heads, generator=generator)[:n]
    return torch.stack([flat // n_heads, flat % n_heads], dim=1)


def _layer_window(model, generator):
    """Every head of a seeded window of n_layers // 5 consecutive layers in the middle."""
    width = max(1, model.cfg.n_layers // 5)
    first = _randint(generator, model.cfg.n_layers // 3, model.cfg.n_layers // 2 + 1)
    return torch.cartesian_prod(torch.arange(first, first + width), torch.arange(model.cfg.n_heads))


def _top_direct_heads(model, clean, k=3):
    """The k heads that write most towards the IO at the last token (likely name movers)."""
    _, cache = model.run_with_cache(clean.tokens)
    top = head_logit_diffs(model, cache, clean).flatten().topk(k).indices.cpu()
    return torch.stack([top // model.cfg.n_heads, top % model.cfg.n_heads], dim=1)


def _path_cases(model, generator):
    """Senders: the heads of a window of middle layers. Receivers: the final residual stream,
    or the three heads with the largest direct effect on the logit difference (in the hidden
    "v" case only the first of them: one receiver is a legal input too)."""
    cases = []
    for visible, components in ((True, ("resid", "q")), (False, ("k", "v", "resid"))):
        seed = 0 if visible else _seed(generator) % 10**6
        clean, corrupted, metric = patching_setup(model, 3 if visible else _randint(generator, 2, 5), seed)
        receivers = _top_direct_heads(model, clean)
        for component in components:
            chosen = {"resid": receivers[:0], "v": receivers[:1]}.get(component, receivers)
            cases.append(dict(model=model, clean=clean, corrupted=corrupted, metric=metric,
                              senders=_layer_window(model, generator), component=component,
                              receivers=chosen))
    return cases


EXERCISES.append(Exercise(
    path_patch, (), _path_cases,
    "3 ABC-corrupted prompts of seed 0: every head of a seeded window of middle layers to the "
    "final residual stream and to the queries of the 3 heads of largest direct effect and, "
    "hidden, seeded prompts and windows to those heads' keys, the first one's values and to "
    "the residual stream", **SWEEP_TOL, needs_model=True, mistakes=(
        Mistake("not_frozen", "did not freeze the other heads at their clean outputs in the "
                "first run: then the senders' effect also flows through every later head, "
                "which is activation patching, not the path", _path_not_frozen),
        Mistake("swapped", "ran the corrupted prompts with clean senders; path patching here "
                "runs the clean prompts and gives the senders their corrupted outputs",
                _path_swapped),
        Mistake("whole_layer", "patched every head of the receivers' layers; patch only the "
                "receiver heads' entries", _path_whole_layer),
    ), equivalent_mutants={
        "deleted: senders = torch.as_tensor(senders).long().reshape(-1, 2)":
            "cases pass int64 [n, 2] tensors, as the docstring asks: the conversion only widens what is accepted",
        "deleted: receivers = torch.as_tensor([] if receivers is None else receivers).long().reshape(-1, 2)":
            "cases pass int64 [n, 2] tensors, as the docstring asks: the conversion only widens what is accepted",
        **UNFILTERED_CACHES,
        "_, sent = model.run_with_cache(clean)": UNFILTERED}))


# --- Exercise 15: is the circuit enough? -------------------------------------------------


def circuit_faithfulness(model, dataset: IOIPrompts, circuit: torch.Tensor) -> torch.Tensor:
    """How much of the logit difference the circuit alone keeps.

    circuit: int [n, 2] rows of (layer, head). Mean-ablate every head *outside* the circuit:
    replace its z (``attn.hook_z``) at each position by its mean over the prompts of the same
    template (``dataset.template``; within a template, positions line up), taken from a clean
    run. Returns a 0-dim tensor: mean logit difference with the ablation / without it.
    """
    ### BEGIN SOLUTION
    circuit = torch.as_tensor(circuit).long().reshape(-1, 2)
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(dataset.tokens, names_filter=z_names)
    outside = torch.ones(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    outside[circuit[:, 0], circuit[:, 1]] = False

    def ablate(z, hook):
        clean_z = cache[hook.name]
        means = torch.zeros_like(clean_z)
        for template in dataset.template.unique():
            same = dataset.template == template
            means[same] = clean_z[same].mean(dim=0)
        heads = outside[int(hook.name.split(".")[1])].to(z.device)
        z[:, :, heads] = means[:, :, heads]
        return z

    ablated = model.run_with_hooks(dataset.tokens, fwd_hooks=[(name, ablate) for name in z_names])
    return logit_diff(ablated, dataset).mean() / logit_diff(logits, dataset).mean()
    ### END SOLUTION


def _faithfulness(model, dataset, circuit, *, zero=False, by_template=True, invert=False):
    z_names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    logits, cache = model.run_with_cache(dataset.tokens, names_filter=z_names)
    outside = torch.ones(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool, device=circuit.device)
    outside[circuit[:, 0], circuit[:, 1]] = False
    outside = ~outside if invert else outside
    groups = dataset.template if by_template else torch.zeros_like(dataset.template)

    def ablate(z, hook):
        means = torch.zeros_like(z)
        if not zero:
            for group in groups.unique():
                means[groups == group] = cache[hook.name][groups == group].mean(dim=0)
        heads = outside[int(hook.name.split(".")[1])]
        z[:, :, heads] = means[:, :, heads]
        return z

    ablated = model.run_with_hooks(dataset.tokens, fwd_hooks=[(name, ablate) for name in z_names])
    return logit_diff(ablated, dataset).mean() / logit_diff(logits, dataset).mean()


def _faithfulness_zero(model, dataset, circuit):
    return _faithfulness(model, dataset, circuit, zero=True)


def _faithfulness_all_templates(model, dataset, circuit):
    return _faithfulness(model, dataset, circuit, by_template=False)


def _faithfulness_inverted(model, dataset, circuit):
    return _faithfulness(model, dataset, circuit, invert=True)


def _faithfulness_cases(model, generator):
    total = model.cfg.n_layers * model.cfg.n_heads
    cases = [dict(model=model, dataset=ioi_dataset(model, 8, 0, ["ABBA"]),
                  circuit=_heads_tensor(generator, model, total // 3))]
    cases.append(dict(model=model, dataset=ioi_dataset(model, _randint(generator, 6, 10), _seed(generator)),
                      circuit=_heads_tensor(generator, model, _randint(generator, total // 4, total // 2))))
    return cases


EXERCISES.append(Exercise(
    circuit_faithfulness, (), _faithfulness_cases,
    "8 ABBA prompts of seed 0 with a seeded third of the heads as the circuit and, hidden, "
    "other prompts and circuits", **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("zero_ablation", "zero-ablated the heads outside the circuit; mean ablation "
                "replaces their output by its mean over prompts of the same template",
                _faithfulness_zero),
        Mistake("all_templates", "averaged over all prompts; average over the prompts of each "
                "template (dataset.template), whose positions line up", _faithfulness_all_templates),
        Mistake("ablated_circuit", "ablated the circuit's heads; ablate every head outside it",
                _faithfulness_inverted),
    ), equivalent_mutants={
        "deleted: circuit = torch.as_tensor(circuit).long().reshape(-1, 2)":
            "cases pass int64 [n, 2] tensors, as the docstring asks: the conversion only widens what is accepted",
        "logits, cache = model.run_with_cache(dataset.tokens)": UNFILTERED,
        "for template in dataset.template:":
            "each template's mean is recomputed once per prompt instead of once per template: the same means"}))


# --- Exercise 16: do two head rankings agree? (cherry-picking) ---------------------------


def top_k_overlap(scores_a: torch.Tensor, scores_b: torch.Tensor, k: int) -> torch.Tensor:
    """The fraction of the k highest-scoring heads of `scores_a` that are also among the k
    highest of `scores_b` (both [n_layers, n_heads]). Returns a 0-dim float tensor in [0, 1].
    """
    ### BEGIN SOLUTION
    top_a = set(scores_a.flatten().topk(k).indices.tolist())
    top_b = set(scores_b.flatten().topk(k).indices.tolist())
    return torch.tensor(len(top_a & top_b) / k)
    ### END SOLUTION


def _overlap_lowest(scores_a, scores_b, k):
    return top_k_overlap(-scores_a, -scores_b, k)


def _overlap_jaccard(scores_a, scores_b, k):
    top_a = set(scores_a.flatten().topk(k).indices.tolist())
    top_b = set(scores_b.flatten().topk(k).indices.tolist())
    return torch.tensor(len(top_a & top_b) / len(top_a | top_b))


def _overlap_cases(gen):
    def pair(layers, heads, k):
        a = torch.randn(layers, heads, generator=gen)
        return dict(scores_a=a, scores_b=a + torch.randn(layers, heads, generator=gen), k=k)
    return [pair(6, 4, 5), pair(10, 6, 8), pair(8, 5, 12)]


EXERCISES.append(Exercise(
    top_k_overlap, (), _overlap_cases, "seeded normal scores and a noisy copy; k 5 to 12",
    **PURE_TOL, mistakes=(
        Mistake("lowest", "took the k lowest scores; the top heads have the highest",
                _overlap_lowest),
        Mistake("jaccard", "divided by the size of the union; divide the shared heads by k",
                _overlap_jaccard),
    )))


# --- Exercise 17: attention versus effect (description vs cause) -------------------------


def rank_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Spearman's rank correlation of two score tensors of the same shape (e.g. each head's
    attention to the IO and its patching effect): the Pearson correlation of their ranks
    (rank 0 = smallest; no ties in the inputs). Returns a 0-dim tensor in [-1, 1].
    """
    ### BEGIN SOLUTION
    ranks_x = x.flatten().argsort().argsort().float()
    ranks_y = y.flatten().argsort().argsort().float()
    return torch.corrcoef(torch.stack([ranks_x, ranks_y]))[0, 1]
    ### END SOLUTION


def _correlation_pearson(x, y):
    return torch.corrcoef(torch.stack([x.flatten(), y.flatten()]))[0, 1]


def _correlation_argsort_once(x, y):
    return torch.corrcoef(torch.stack([x.flatten().argsort().float(), y.flatten().argsort().float()]))[0, 1]


def _correlation_cases(gen):
    def pair(*shape):
        x = torch.randn(*shape, generator=gen)
        return dict(x=x, y=(x + torch.randn(*shape, generator=gen)) ** 3)
    return [pair(5, 4), pair(12, 6), pair(30)]


EXERCISES.append(Exercise(
    rank_correlation, (), _correlation_cases, "seeded normal scores and a noisy, cubed copy",
    **PURE_TOL, mistakes=(
        Mistake("pearson", "correlated the values, not their ranks", _correlation_pearson),
        Mistake("argsort_once", "argsort gives the order of the indices, not the ranks: rank = "
                "x.argsort().argsort()", _correlation_argsort_once),
    )))
