# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Chapter 2 — Induction heads
#
# Show a language model a sequence it has seen earlier in the same context and it will predict
# the rest of it: after `... A B ... A`, it predicts `B`. In small models this behaviour comes
# from a pair of heads (Elhage et al. 2021; Olsson et al. 2022):
#
# - a **previous-token head** copies, into each position, information about the token before
#   it (at `B`'s position: "the previous token was `A`");
# - an **induction head**, at the second `A`, looks for positions whose *previous* token was
#   `A`, attends to `B` and copies it to the output. Its keys are built from what the
#   previous-token head wrote: this is *K-composition*.
#
# In this chapter you find such heads in four independent ways, and see where the ways agree:
#
# 1. **behaviour**: the model's loss on a repeated random sequence;
# 2. **attention**: which heads attend where an induction head should;
# 3. **intervention**: which heads the loss depends on, by ablating them one at a time;
# 4. **weights**: direct logit attribution, and the heads' OV and QK circuits and their
#    composition, read from the weight matrices without running the model.
#
# As in Chapter 1, every exercise is a function with a docstring, checked by the cell below
# it. Checks of model exercises run *your* function on the loaded model, so they grade what
# your code finds, not a list of head indices.

# %% tags=["colab-install"]

# %% tags=["parameters"]
MODEL = None  # None: $COURSE_MODEL, else "gpt2-small". Offline: "smollm2-135m".
ABLATION_ROWS = 2  # sequences in the head-ablation sweep, the chapter's slowest cell
SEQ_LEN = 50  # tokens in each half of a repeated-random-token row

# %% tags=["setup"]
import math
import time

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from autograder import check
from readheads import attention_view, load_model, plot_head_scores, show_model, top_heads

# %%
model = load_model(MODEL)
show_model(model)
cfg = model.cfg
n_kv_heads = model.W_K.shape[1]
print(f"{cfg.n_layers} layers x {cfg.n_heads} heads (d_head={cfg.d_head}), d_model={cfg.d_model}, "
      f"{n_kv_heads} key/value heads, positions: {cfg.positional_embedding_type}")

# %% [markdown]
# ## 1. Repeated random tokens
#
# Natural text mixes many mechanisms. A cleaner probe: random tokens, then the same random
# tokens again. The first half is unpredictable, so the model can only guess; in the second
# half every token can be predicted by looking back at the first copy, which is exactly what
# an induction head does.
#
# Each row starts with the BOS token (the model saw one at the start of every training
# sequence; Chapter 1 showed many heads park their attention on it). With halves of length
# `seq_len`, positions `1 .. seq_len` are the first half and `seq_len + 1 .. 2 * seq_len` the
# second. The draw uses a seeded CPU generator so every machine gets the same tokens.

# %% tags=["solution:repeated_random_tokens"]

# %% tags=["check:repeated_random_tokens"]

# %%
BATCH = 4
tokens = repeated_random_tokens(model, SEQ_LEN, BATCH, seed=0)
print(tokens.shape)
print(model.to_str_tokens(tokens[0, :8]), "...", model.to_str_tokens(tokens[0, SEQ_LEN:SEQ_LEN + 8]))

# %% [markdown]
# ### The loss on each half
#
# The model's logits at position `j` are its prediction for token `j + 1`. Compute the
# cross-entropy of every prediction, then average it over each half.

# %% tags=["solution:per_token_loss"]

# %% tags=["check:per_token_loss"]

# %% tags=["solution:loss_by_half"]

# %% tags=["check:loss_by_half"]

# %% mystnb={"image": {"alt": "Line plot of the loss at each position of repeated random tokens: high and flat in the first half, dropping sharply after the dashed line where the repeat starts."}}
loss = per_token_loss(model, tokens)
first_half, second_half = loss_by_half(loss, SEQ_LEN)
print(f"mean loss: first half {first_half:.2f}, second half {second_half:.2f}; "
      f"uniform guessing over the vocabulary would be ln({cfg.d_vocab}) = {math.log(cfg.d_vocab):.2f}")
plt.figure(figsize=(9, 3))
plt.plot(range(1, 2 * SEQ_LEN + 1), loss.mean(0).cpu(), marker=".")
plt.axvline(SEQ_LEN + 0.5, color="gray", linestyle="--", label="start of the repeat")
plt.xlabel("position of the predicted token")
plt.ylabel("loss (nats)")
plt.title("Loss per position, averaged over the batch")
plt.legend()
plt.show()

# %% [markdown]
# If the second-half loss is far below the first, the model has learned to use the earlier
# copy. Which heads do it?
#
# ## 2. Detecting heads by their attention
#
# Three kinds of head, three places to look in the pattern of a query at position `i`:
#
# | head | attends to | on repeated tokens (second half, `i > seq_len`) |
# | --- | --- | --- |
# | previous-token | the token before | key `i - 1` |
# | duplicate-token | the earlier copy of the current token | key `i - seq_len` |
# | induction | the token *after* the earlier copy | key `i - seq_len + 1` |
#
# Each is one diagonal of the `[query_pos, key_pos]` pattern. First a general helper: the
# average attention along the diagonal `key = query - offset`, starting at a given query.

# %% tags=["solution:diagonal_attention_score"]

# %% tags=["check:diagonal_attention_score"]

# %% [markdown]
# Now collect every layer's pattern (caching only the patterns) and score every head. Average
# the previous-token score over all query positions `i >= 1`, the other two over the
# queries of the second half.

# %% tags=["solution:all_layer_patterns"]

# %% tags=["check:all_layer_patterns"]

# %% tags=["solution:previous_token_scores"]

# %% tags=["check:previous_token_scores"]

# %% tags=["solution:duplicate_token_scores"]

# %% tags=["check:duplicate_token_scores"]

# %% tags=["solution:induction_scores"]

# %% tags=["check:induction_scores"]

# %% mystnb={"image": {"alt": "Three layer-by-head heatmaps: previous-token, duplicate-token and induction scores of every head; a few bright cells in each mark the heads of that type."}}
prev_scores = previous_token_scores(model, tokens)
dup_scores = duplicate_token_scores(model, tokens)
ind_scores = induction_scores(model, tokens)
fig, axes = plt.subplots(1, 3, figsize=(16, 5))
for ax, name, score in zip(axes, ["previous-token", "duplicate-token", "induction"],
                           [prev_scores, dup_scores, ind_scores]):
    plot_head_scores(score, f"{name} score", ax=ax)
    print(f"top {name} heads (layer.head, score):", top_heads(score, 5))
plt.tight_layout()
plt.show()

# %% mystnb={"image": {"alt": "Heatmap of the strongest induction head's pattern on one repeated sequence: in the second half the attention forms a stripe just right of the diagonal key = query - 12."}}
layer, head = divmod(ind_scores.flatten().argmax().item(), cfg.n_heads)
short = repeated_random_tokens(model, 12, 1, seed=1)
_, short_cache = model.run_with_cache(short, names_filter=f"blocks.{layer}.attn.hook_pattern")
plt.figure(figsize=(5, 4.5))
plt.imshow(short_cache["pattern", layer][0, head].cpu(), cmap="Blues", vmin=0, vmax=1)
plt.title(f"head {layer}.{head} on one repeated sequence (seq_len 12)")
plt.xlabel("key position")
plt.ylabel("query position")
plt.colorbar()
plt.show()

# %% [markdown]
# The strongest induction head's pattern should show a stripe in the second half, one
# position to the right of the `key = query - seq_len` diagonal. Below, the three strongest
# induction heads on the same sequence, interactive: hover over a head, then over a token in
# the second half, and see which earlier token it looks at.

# %%
top_induction = [tuple(map(int, label.split("."))) for label, _ in top_heads(ind_scores, 3)]
_, short_cache = model.run_with_cache(short, names_filter=lambda name: name.endswith("hook_pattern"))
patterns = [short_cache["pattern", layer][0, head] for layer, head in top_induction]
attention_view(torch.stack(patterns), model.to_str_tokens(short[0]),
               [f"{layer}.{head}" for layer, head in top_induction])
#
# Where do the top previous-token heads sit relative to the top induction heads? An induction
# head can only use a previous-token head from an *earlier* layer (it reads what that head
# wrote into the residual stream).
#
# ## 3. The same detector with hooks
#
# `run_with_cache` keeps every activation you ask for until you drop the cache. For a sweep
# over long inputs, most of that memory holds numbers you reduce to one score per head anyway.
# A *hook* is a function that the model calls with an activation while it runs; it can
# compute the score on the spot and keep only that.

# %% tags=["solution:induction_scores_with_hooks"]

# %% tags=["check:induction_scores_with_hooks"]

# %%
hooked = induction_scores_with_hooks(model, tokens)
print("largest difference from the cache version:", (hooked - ind_scores).abs().max().item())


def tensor_bytes(tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors)


_, full_cache = model.run_with_cache(tokens)
full = tensor_bytes(full_cache.values())
patterns_only = tensor_bytes([all_layer_patterns(model, tokens)])
del full_cache
print(f"full cache:      {full / 2**20:9.1f} MiB ({BATCH} x {tokens.shape[1]} tokens)")
print(f"patterns only:   {patterns_only / 2**20:9.1f} MiB")
print(f"hooked scores:   {tensor_bytes([hooked]) / 2**20:9.4f} MiB")

# %% [markdown]
# The pattern memory grows with the *square* of the sequence length; the hooked version holds
# one layer's pattern at a time, which the model frees as it moves on.
#
# ## 4. Ablation: which heads does the loss depend on?
#
# A high induction score *describes* a head. To test whether the model *uses* it, remove the
# head and measure how much the loss on the repeated half rises. To remove head `h` of layer
# `L`, replace its `z` (its mix of values, before the output projection `W_O`) by
#
# - zeros (*zero ablation*), or
# - its mean over the batch and positions (*mean ablation*): this keeps the average signal
#   that later layers may rely on and removes only the part that depends on the input.
#
# Start with the simple version, one forward pass per head.

# %% tags=["solution:head_ablation_loss_increase_slow"]

# %% tags=["check:head_ablation_loss_increase_slow"]

# %% [markdown]
# That is `n_layers * n_heads` forward passes. Batch the sweep: repeat the batch `k` times
# and have one hook ablate a different head in each copy, so one pass measures `k` heads. The
# arithmetic is the same, but each pass has a fixed cost, and a small batch leaves most of a
# GPU idle: there, batching is many times faster. On a CPU, which is busy with the arithmetic
# anyway, the gain is smaller; the cell below measures it on this machine.

# %% tags=["solution:head_ablation_loss_increase"]

# %% tags=["check:head_ablation_loss_increase"]

# %%
SWEEP_LAYERS = [layer]  # the layer of the strongest induction head
start = time.perf_counter()
slow = head_ablation_loss_increase_slow(model, tokens, "zero", layers=SWEEP_LAYERS)
slow_seconds = time.perf_counter() - start
start = time.perf_counter()
fast = head_ablation_loss_increase(model, tokens, "zero", layers=SWEEP_LAYERS)
fast_seconds = time.perf_counter() - start
print(f"layer {layer}: one head at a time {slow_seconds:.1f} s, batched {fast_seconds:.1f} s; "
      f"largest difference {(slow - fast).abs().max().item():.2e}")

# %% [markdown]
# Now every head of the model, with both kinds of ablation, on the first two sequences of the
# batch (the slow cell of the chapter: several minutes on a laptop CPU, seconds on a GPU).

# %% mystnb={"image": {"alt": "Two layer-by-head heatmaps, red for a loss increase and blue for a decrease: how much the loss on repeated tokens rises when each head is zero-ablated or mean-ablated."}}
sweep_tokens = tokens[:ABLATION_ROWS]
start = time.perf_counter()
zero_increase = head_ablation_loss_increase(model, sweep_tokens, "zero")
mean_increase = head_ablation_loss_increase(model, sweep_tokens, "mean")
print(f"full sweep, both kinds: {time.perf_counter() - start:.0f} s")
fig, axes = plt.subplots(1, 2, figsize=(12, 5))
for ax, name, increase in zip(axes, ["zero", "mean"], [zero_increase, mean_increase]):
    plot_head_scores(increase, f"loss increase, {name} ablation", ax=ax, cmap="RdBu_r")
    print(f"{name} ablation, largest loss increases:", top_heads(increase, 5))
plt.tight_layout()
plt.show()

# %% mystnb={"image": {"alt": "Two scatter plots, one dot per head: induction score across against the loss increase when the head is ablated (zero, then mean); the top induction heads are labelled."}}
fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
for ax, name, increase in zip(axes, ["zero", "mean"], [zero_increase, mean_increase]):
    ax.scatter(ind_scores.flatten().cpu(), increase.flatten().cpu(), s=12)
    for label, _ in top_heads(ind_scores, 5):
        L, H = map(int, label.split("."))
        ax.annotate(label, (ind_scores[L, H].item(), increase[L, H].item()), fontsize=8)
    ax.set_xlabel("induction score (attention)")
    ax.set_ylabel(f"loss increase ({name} ablation)")
plt.tight_layout()
plt.show()
corr = torch.corrcoef(torch.stack([ind_scores.flatten(), mean_increase.flatten()]))[0, 1]
print(f"correlation of induction score with mean-ablation loss increase: {corr:.2f}")

# %% [markdown]
# Read the scatter plots with three cautions:
#
# - **Description is not cause.** A head can attend along the induction stripe without the
#   loss depending on it, and a head with a modest score can matter a lot (for example a
#   previous-token head that the induction heads read from: ablating it breaks them). Check
#   where the top previous-token heads fall in the ablation map.
# - **Backup heads.** Models often have several heads that can do the same job. Ablate one and
#   another may compensate, so a single-head ablation *underestimates* what a group of heads
#   does together. Ablating several induction heads at once usually hurts more than the sum of
#   their single effects suggests.
# - **Zero ablation is off-distribution.** Zeros are a value `z` never takes; later layers can
#   react to the oddity itself. Mean ablation is the gentler test. Where the two maps disagree,
#   trust mean ablation more.
#
# ## 5. Direct logit attribution
#
# Ablation measures a head's *total* effect, through every later layer. Its *direct* effect is
# what its output adds to the correct logit through the residual stream alone: the final norm
# divides the residual stream by one scale per position, and the unembedding is linear, so each
# head's share of the logit can be read off from the cached activations.

# %% tags=["solution:head_logit_attribution"]

# %% tags=["check:head_logit_attribution"]

# %% mystnb={"image": {"alt": "Layer-by-head heatmap, red positive and blue negative: each head's direct contribution to the correct token's logit in the second half of repeated tokens."}}
dla = head_logit_attribution(model, tokens)
plot_head_scores(dla, "direct logit attribution to the correct token (second half)", cmap="RdBu_r")
plt.show()
print("largest direct contributions:", top_heads(dla, 5))
print("induction score of those heads:",
      [(label, round(ind_scores[tuple(map(int, label.split('.')))].item(), 2))
       for label, _ in top_heads(dla, 5)])

# %% [markdown]
# A head can matter without any direct effect (a previous-token head writes information for
# *other heads* to read, not for the output), and heads near the end of the model often write
# large direct effects that later layers partly cancel. Direct logit attribution and ablation
# answer different questions.
#
# ## 6. Reading circuits from the weights
#
# Everything so far ran the model. The weights alone say a lot too. With residual vectors as
# rows, a head has two circuits:
#
# - the **OV circuit** `W_OV = W_V @ W_O` ([d_model, d_model]): what the head writes, given
#   what it attends to;
# - the **QK circuit** `W_QK = W_Q @ W_K.T`: which (query, key) pairs it attends between.
#
# On grouped-query models (SmolLM2) use, for query head `h`, the key/value head
# `h // (n_heads // n_kv_heads)`.
#
# ### The OV circuit: does a head copy?
#
# An induction head that attends to `B` should output `B`. Send token embeddings through the
# OV circuit and the unembedding, and count how often the token itself comes out on top.

# %% tags=["solution:ov_copying_score"]

# %% tags=["check:ov_copying_score"]

# %%
induction_top = [tuple(map(int, label.split("."))) for label, _ in top_heads(ind_scores, 5)]
generator = torch.Generator().manual_seed(0)
controls = [tuple(divmod(i, cfg.n_heads))
            for i in torch.randperm(cfg.n_layers * cfg.n_heads, generator=generator)[:5].tolist()]
for name, heads in [("top induction heads", induction_top), ("random heads", controls)]:
    print(name, [(f"{L}.{H}", round(ov_copying_score(model, L, H, n_tokens=100).item(), 2))
                 for L, H in heads])

# %% [markdown]
# This reads the OV circuit on *raw token embeddings*. A head deep in the model never sees
# raw embeddings: by its layer each position holds a vector that earlier layers have
# transformed, so a low score here does not rule out copying. A test closer to what the head
# actually reads: the normalised residual stream it receives at first-half positions, sent
# through the same OV circuit and the unembedding.

# %%
def ov_copying_on_residual(model, layer, head, tokens):
    """Fraction of first-half positions whose own token is the top logit of the head's OV output."""
    seq_len = (tokens.shape[1] - 1) // 2
    name = f"blocks.{layer}.ln1.hook_normalized"
    _, cache = model.run_with_cache(tokens, names_filter=name)
    x = cache[name][:, 1:seq_len + 1]  # what the head reads, [batch, pos, d_model]
    group = model.cfg.n_heads // model.W_V.shape[1]
    logits = x @ model.W_V[layer, head // group] @ model.W_O[layer, head] @ model.W_U
    return (logits.argmax(-1) == tokens[:, 1:seq_len + 1]).float().mean().item()


for name, heads in [("top induction heads", induction_top), ("random heads", controls)]:
    print(name, [(f"{L}.{H}", round(ov_copying_on_residual(model, L, H, tokens[:2]), 2))
                 for L, H in heads])

# %% [markdown]
# If both tests give low scores for the induction heads, their output is probably not read by
# the unembedding directly but by later layers: compare with their direct logit attribution
# above, and with the heads that score highest there. "Copies its input to the logits" is the
# story of small models (and of GPT-2's induction heads); deeper models can split the job
# across several heads.

# %% [markdown]
# ### The QK circuit
#
# Attention scores between two residual vectors, from the weights alone. On rotary models
# (SmolLM2) queries and keys are also rotated by an angle that depends on their distance; the
# weights-only score below is the score at distance zero, an approximation for distant pairs.

# %% tags=["solution:qk_scores"]

# %% tags=["check:qk_scores"]

# %% [markdown]
# ### Composition
#
# An induction head's key at `B`'s position must carry "my previous token was `A`", which a
# previous-token head wrote there: the earlier head's OV output feeds the later head's keys.
# Elhage et al. measure how much two heads compose with
# `||W_A W_B||_F / (||W_A||_F ||W_B||_F)`: large when `W_B` reads the directions `W_A` writes.
# With `W_A` the earlier head's `W_OV`:
#
# - **Q-composition**: `W_B = W_QK` (the earlier head's output shapes the later head's queries),
# - **K-composition**: `W_B = W_QK.T` (... its keys),
# - **V-composition**: `W_B` = the later head's `W_OV` (... its values).

# %% tags=["solution:composition_score"]

# %% tags=["check:composition_score"]

# %% tags=["solution:composition_scores"]

# %% tags=["check:composition_scores"]

# %% [markdown]
# Random matrices compose a little too. As a baseline, score random low-rank matrices of the
# same shapes (`W_OV` and `W_QK` both have rank `d_head`).

# %%
def random_composition_baseline(d_model, d_head, n_samples=20, seed=0):
    generator = torch.Generator().manual_seed(seed)
    low_rank = lambda: (torch.randn(d_model, d_head, generator=generator)  # noqa: E731
                        @ torch.randn(d_head, d_model, generator=generator))
    return torch.stack([composition_score(low_rank(), low_rank()) for _ in range(n_samples)])


baseline = random_composition_baseline(cfg.d_model, cfg.d_head)
print(f"random baseline: {baseline.mean():.4f} ± {baseline.std():.4f}")

# %% mystnb={"image": {"alt": "Three heatmaps over earlier layers and heads: Q-, K- and V-composition scores of every earlier head into the strongest induction head; K-composition picks out previous-token heads."}}
L_ind, H_ind = induction_top[0]
by_layer = torch.stack([composition_scores(model, earlier, L_ind, H_ind)
                        for earlier in tqdm(range(L_ind), desc="earlier layers")])  # [layer, 3, head]
fig, axes = plt.subplots(1, 3, figsize=(15, 0.2 * L_ind + 2))
for index, (ax, kind) in enumerate(zip(axes, ["Q", "K", "V"])):
    scores = by_layer[:, index]
    plot_head_scores(scores, f"{kind}-composition into {L_ind}.{H_ind}", ax=ax)
    top = top_heads(scores, 3)
    print(f"{kind}-composition into {L_ind}.{H_ind}: top sources {top} "
          f"({top[0][1] / baseline.mean().item():.1f}x the random baseline)")
plt.tight_layout()
plt.show()
k_sources = top_heads(by_layer[:, 1], 5)
print("previous-token score of the top K-composition sources:",
      [(label, round(prev_scores[tuple(map(int, label.split('.')))].item(), 2)) for label, _ in k_sources])

# %% [markdown]
# If the top K-composition sources are also heads with high previous-token scores, the
# weights and the attention patterns tell the same story: the induction head builds its keys
# from what the previous-token head wrote.
#
# The QK circuit can test that story directly. For sampled tokens `t`, take as queries their
# (normalised) embeddings, "the current token is `t`", and as keys the previous-token head's
# output when its previous token is `t`, "my previous token was `t`". If the induction head's
# QK circuit matches them, each query's highest score falls on its own token's key.

# %%
def normalised(x):
    return x / x.norm(dim=-1, keepdim=True) * math.sqrt(x.shape[-1])


L_prev, H_prev = map(int, k_sources[0][0].split("."))
sample = torch.randint(1000, 10000, (200,), generator=torch.Generator().manual_seed(0))
embeddings = model.W_E[sample.to(cfg.device)]
group = cfg.n_heads // n_kv_heads
prev_ov = model.W_V[L_prev, H_prev // group] @ model.W_O[L_prev, H_prev]
through_prev = qk_scores(model, L_ind, H_ind, normalised(embeddings), normalised(embeddings @ prev_ov))
direct = qk_scores(model, L_ind, H_ind, normalised(embeddings), normalised(embeddings))
diagonal = torch.arange(len(sample), device=cfg.device)
print(f"head {L_ind}.{H_ind}: a query's top key is its own token's key for "
      f"{(through_prev.argmax(-1) == diagonal).float().mean():.2f} of tokens through {L_prev}.{H_prev}, "
      f"{(direct.argmax(-1) == diagonal).float().mean():.2f} on raw embeddings "
      f"(chance: {1 / len(sample):.3f})")

# %% [markdown]
# ## 7. Replication across models
#
# Head indices are a property of one trained model. In **GPT-2 small** the literature names
# the induction heads 5.1, 5.5, 6.9, 7.2 and 7.10, and 4.11 as a previous-token head they
# compose with; with GPT-2 small's real attention weights, the strongest K-composition source
# of each of those five induction heads is 4.11. If this page was run on GPT-2 small, compare
# those names with the tables above; on another model, look for the same *structure*:
# previous-token heads in earlier layers, induction heads after them, K-composition between
# them, a lower loss on the repeat.
#
# What changes on **SmolLM2-135M**:
#
# - **Grouped-query attention.** Three query heads share one key/value head. Heads of a group
#   have the same keys and values and differ only in their queries and output matrices, so
#   their OV circuits share `W_V` and their K-composition with an earlier head shares `W_K`.
# - **Rotary positions.** SmolLM2 has no learned position embedding in the residual stream.
#   GPT-2's previous-token heads can match a position embedding to the one before it; a
#   rotary model instead rotates queries and keys by their position, so "attend one back" is a
#   property of how a head's query and key use the rotation. The weights-only QK circuit
#   above ignores the rotation.
# - **Depth.** 30 layers instead of 12: the circuit can sit anywhere, and raw token
#   embeddings are a poor stand-in for what a deep head reads (section 6).
# - **RMSNorm and no biases**: the final norm only rescales, and `b_O` is absent.
#
# ## What this does and does not show
#
# - The loss on a repeated random sequence shows that the model *can* copy from context. The
#   detectors show which heads *attend* as induction heads would; ablation shows which heads
#   the loss *depends on*; direct logit attribution shows which heads *write* the answer; the
#   weights show which heads *could* compose. Claims are strongest where these agree.
# - Everything here uses repeated random tokens, an artificial distribution. Induction heads
#   also act on natural text, alongside other mechanisms.
# - Single-head ablation misses redundancy (backup heads) and zero ablation adds
#   off-distribution effects; composition scores are a coarse, weights-only proxy.
