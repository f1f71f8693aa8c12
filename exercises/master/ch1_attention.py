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
# # Chapter 1 — Attention from the inside
#
# A transformer's attention layer is a handful of matrix products. In this chapter you open one
# up and recompute, step by step, what the model itself computed: scores from queries and keys,
# the causal mask, the softmax pattern, the weighted values, each head's output and their sum.
# At every step you compare your tensor with the one the model cached. Then you look at
# patterns and score every head for three simple behaviours: attending to the previous token,
# to the current token, and to the first token.
#
# **How the exercises work.** Each exercise is a function with a docstring and a stub. Write
# the body, run the cell, then run the `check(...)` cell below it: it says `passed`, or what
# is wrong (wrong shape, a NaN, or a recognised mistake such as a missing scale factor).
# Checks compare your answer with stored reference tensors; they never show the answer.
#
# **Which model?** The course model is GPT-2 small. Set `MODEL = "smollm2-135m"` below (or the
# environment variable `COURSE_MODEL`) to use SmolLM2-135M, which works offline. The box under
# the set-up cell always says which model produced this notebook's outputs.

# %% tags=["colab-install"]

# %% tags=["parameters"]
MODEL = None  # None: $COURSE_MODEL, else "gpt2-small". Offline: "smollm2-135m".

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import torch

from autograder import check
from readheads import (attention_view, load_model, plot_head_scores, plot_pattern, show_model,
                       top_heads)

# %%
model = load_model(MODEL)
show_model(model)
cfg = model.cfg
print(f"{cfg.n_layers} layers, {cfg.n_heads} heads of size d_head={cfg.d_head}, "
      f"d_model={cfg.d_model}, {cfg.n_key_value_heads or cfg.n_heads} key/value heads")

# %% [markdown]
# ## Tokens and the residual stream
#
# The model reads token ids. `model.to_tokens` adds the beginning-of-sequence token (BOS) that
# the model saw in training, so position 0 is not a word of the prompt.
#
# `run_with_cache` runs the model and keeps every intermediate activation, named by where it
# sits: `blocks.3.attn.hook_pattern` is the attention pattern of layer 3. The *residual
# stream* `blocks.L.hook_resid_pre` is the running sum that every layer reads from and adds its
# output to.

# %%
PROMPT = "When Mary and John went to the store, John gave a drink to"
tokens = model.to_tokens(PROMPT)
token_strings = model.to_str_tokens(PROMPT)
print(token_strings)
logits, cache = model.run_with_cache(tokens)
print("next token:", repr(model.to_string(logits[0, -1].argmax())))
print("layer 0 attention hooks:", [name for name in cache.keys() if name.startswith("blocks.0.attn.hook")])

# %% mystnb={"image": {"alt": "Heatmap with layers across and the prompt's tokens down: the norm of the residual stream at each position before each layer; colour shows size."}}
norms = torch.stack([cache["resid_pre", layer][0].norm(dim=-1) for layer in range(cfg.n_layers)])
plt.figure(figsize=(8, 3))
plt.imshow(norms.T.cpu(), aspect="auto", cmap="magma")
plt.yticks(range(len(token_strings)), token_strings, fontsize=7)
plt.xlabel("layer")
plt.title("Size of the residual stream (norm) at each position, before each layer")
plt.colorbar()
plt.show()

# %% [markdown]
# The model's own numbers are in the cache. In this chapter we look at one layer at a time.
# Queries, keys and values are cached with shape `[batch, pos, head, d_head]`.
#
# ## 1. Attention scores
#
# Each query is compared with each key by a dot product, divided by $\sqrt{d_{head}}$ so that
# the scores do not grow with the head size:
# $\text{scores}[b, h, i, j] = q_{b,i,h} \cdot k_{b,j,h} / \sqrt{d_{head}}$. Rows are queries
# (the position that is looking), columns are keys (the positions looked at).

# %% tags=["solution:attention_scores"]

# %% tags=["check:attention_scores"]

# %% [markdown]
# ## 2. The causal mask
#
# A language model predicts the next token, so position $i$ may only look at positions
# $j \le i$. Scores for later positions are set to $-\infty$, which the softmax turns into
# exactly zero weight.

# %% tags=["solution:apply_causal_mask"]

# %% tags=["check:apply_causal_mask"]

# %% [markdown]
# ## 3. The attention pattern
#
# A softmax over the keys turns each query's scores into probabilities.

# %% tags=["solution:attention_pattern"]

# %% tags=["check:attention_pattern"]

# %% [markdown]
# ## 4. Grouped-query attention
#
# GPT-2 gives every head its own keys and values. Many newer models (SmolLM2, Llama) use
# *grouped-query attention*: several query heads share one key/value head, which saves memory.
# SmolLM2 has 9 query heads and 3 key/value heads: query heads 0-2 read key/value head 0,
# heads 3-5 read head 1, heads 6-8 read head 2. To reuse the code above, give each query head
# its own copy. (For GPT-2 this changes nothing.)

# %% tags=["solution:expand_kv_heads"]

# %% tags=["check:expand_kv_heads"]

# %% [markdown]
# ### Compare with the model
#
# Now compute a real layer's pattern from its cached queries and keys. Models with *rotary*
# position embeddings (SmolLM2) rotate queries and keys by an angle that depends on the
# position before taking dot products; the cache holds both versions (`hook_q` and
# `hook_rot_q`), and attention uses the rotated ones. GPT-2 adds learned position embeddings
# to the residual stream instead, and has no rotated version.

# %%
LAYER = 1
hook = f"blocks.{LAYER}.attn"
rotary = f"{hook}.hook_rot_q" in cache.keys()
q = cache[f"{hook}.hook_rot_q" if rotary else f"{hook}.hook_q"]
k = expand_kv_heads(cache[f"{hook}.hook_rot_k" if rotary else f"{hook}.hook_k"], cfg.n_heads)
my_pattern = attention_pattern(apply_causal_mask(attention_scores(q, k)))
model_pattern = cache["pattern", LAYER]
print("largest difference from the model's own pattern:",
      (my_pattern - model_pattern).abs().max().item())

# %% mystnb={"image": {"alt": "Three heatmaps, one per head of the chosen layer: rows are query tokens, columns key tokens, darker blue is more attention; the upper-right triangle is empty (causal mask)."}}
fig, axes = plt.subplots(1, 3, figsize=(15, 4.5))
for head, ax in enumerate(axes):
    plot_pattern(model_pattern[0, head], token_strings, f"layer {LAYER}, head {head}", ax=ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 5. Weighted values
#
# Each query position takes a weighted average of the value vectors, with its row of the
# pattern as the weights. TransformerLens calls the result `z`, shape `[batch, pos, head, d_head]`.

# %% tags=["solution:weighted_values"]

# %% tags=["check:weighted_values"]

# %% [markdown]
# ## 6. Each head's output
#
# Each head maps its `z` back into the residual stream with its own output matrix
# `W_O[head]` of shape `[d_head, d_model]`. Keeping the heads apart is what lets us ask later
# what *one* head contributes.

# %% tags=["solution:per_head_outputs"]

# %% tags=["check:per_head_outputs"]

# %% [markdown]
# ## 7. The attention output
#
# The layer's output is the sum of its heads' outputs plus one bias vector `b_O`
# (SmolLM2 has no bias: use zeros).

# %% tags=["solution:attention_output"]

# %% tags=["check:attention_output"]

# %% [markdown]
# ## 8. The whole layer, on the model
#
# Put it together: recompute a layer's attention output from the cache and the model's
# weights (`model.blocks[layer].attn.W_O` and `.b_O`, which is `None` for bias-free models).
# The check runs your function on this model, on two prompts and two layers.

# %% tags=["solution:layer_attention_output"]

# %% tags=["check:layer_attention_output"]

# %%
mine = layer_attention_output(model, cache, LAYER)
print("largest difference from the model's hook_attn_out:",
      (mine - cache[f"blocks.{LAYER}.hook_attn_out"]).abs().max().item())

# %% [markdown]
# ## Looking at patterns
#
# Numbers are easier to read as pictures. Below, every head of one layer on our prompt. Look
# for heads whose weight sits on one diagonal line (each token looks at a fixed offset), on
# the first column (everything looks at position 0), or spreads out.

# %% mystnb={"image": {"alt": "A grid of small heatmaps, the attention pattern of every head of one layer on the prompt: rows are queries, columns keys, darker is more attention."}}
LOOK_LAYER = min(4, cfg.n_layers - 1)
cols = 6
rows = -(-cfg.n_heads // cols)
fig, axes = plt.subplots(rows, cols, figsize=(3 * cols, 3 * rows))
for head, ax in enumerate(axes.flat):
    if head < cfg.n_heads:
        ax.imshow(cache["pattern", LOOK_LAYER][0, head].cpu(), cmap="Blues", vmin=0, vmax=1)
        ax.set_title(f"{LOOK_LAYER}.{head}")
    ax.axis("off")
plt.suptitle(f"All heads of layer {LOOK_LAYER} (rows: queries, columns: keys)")
plt.show()

# %% [markdown]
# The same layer, interactive (`attention_view`, drawn by `circuitsvis`): hover over a head to
# see its pattern with the tokens written out, click a head to keep it.

# %%
attention_view(cache["pattern", LOOK_LAYER][0], token_strings,
               [f"{LOOK_LAYER}.{head}" for head in range(cfg.n_heads)])

# %% [markdown]
# ## 9-11. Scoring head types
#
# Looking at every head by eye does not scale (GPT-2 small has 144, SmolLM2 270). Instead,
# score each head: how much of its attention goes where a given type would put it. Below,
# `patterns` holds one prompt's patterns of all layers, `[layer, head, query_pos, key_pos]`.

# %% tags=["solution:score_previous_token"]

# %% tags=["check:score_previous_token"]

# %% tags=["solution:score_current_token"]

# %% tags=["check:score_current_token"]

# %% tags=["solution:score_first_token"]

# %% tags=["check:score_first_token"]

# %% [markdown]
# ## 12. All heads of the model
#
# Now score every head of the loaded model on a prompt. The check runs your function on this
# model with two prompts, so it grades what *your* code finds, not a list of heads.

# %% tags=["solution:head_type_scores"]

# %% tags=["check:head_type_scores"]

# %% mystnb={"image": {"alt": "Three layer-by-head heatmaps: the previous-token, current-token and first-token score of every head; bright cells are heads of that type."}}
scores = head_type_scores(model, PROMPT)
fig, axes = plt.subplots(1, 3, figsize=(16, 5))
for ax, name, score in zip(axes, ["previous-token", "current-token", "first-token"], scores):
    plot_head_scores(score, f"{name} score", ax=ax)
    print(f"top {name} heads (layer.head, score):", top_heads(score, 5))
plt.tight_layout()
plt.show()

# %% [markdown]
# ## What this does and does not show
#
# - Every tensor you computed matched the model's own to floating-point precision: attention
#   *is* these few operations. Two details depend on the architecture: rotary models rotate
#   queries and keys (use the rotated ones), and grouped-query models share keys and values
#   across heads (expand them). The rest transfers unchanged from GPT-2 to SmolLM2.
# - Many heads put most of their weight on the first token. Attention must sum to one, so a
#   head with nothing useful to do often "parks" its weight there; a high first-token score
#   usually means *inactive here*, not *important*.
# - A score *describes* what a head attends to on these prompts. It does not show that the
#   model *uses* that head for anything. Chapter 2 tests that by intervention: remove a head
#   and measure what breaks.
# - Head indices are specific to a model: a previous-token head at 4.11 in GPT-2 small says
#   nothing about where one sits in SmolLM2. Find them again on every model you study.
