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
# # Chapter 3 — Circuits: indirect object identification
#
# "When Mary and John went to the store, John gave a drink to" → " Mary". Completing this
# needs three steps: notice that John is mentioned twice, hold on to the name that is *not*
# repeated, and copy it to the output. Wang et al. (2022) traced how GPT-2 small does it and
# found a circuit of about 26 heads in families: duplicate-token and induction heads notice
# the repeat, **S-inhibition** heads pass that on to the last token, **name movers** attend to
# the indirect object (IO) and copy it, and **negative** and **backup** name movers push the
# other way or step in when the main ones are removed.
#
# This chapter teaches the method behind such claims:
#
# 1. a task as data, and one number for the behaviour (the logit difference);
# 2. **attribution**: which components write that number (logit lens, direct logit attribution);
# 3. **interventions**: activation patching, which turns "this head lights up" into "this head
#    causes the answer", and path patching, which asks *through which other heads*;
# 4. testing a circuit (faithfulness), and three ways to fool yourself, with numbers.
#
# Every step is a graded function. Sweeps are batched (many patched runs per forward pass,
# each starting at the patched layer), so they run in seconds on a GPU and minutes on a CPU.

# %% tags=["colab-install"]

# %% tags=["parameters"]
MODEL = None  # None: $COURSE_MODEL, else "gpt2-small". Offline: "smollm2-135m".
N_PROMPTS = 8  # prompts per dataset; more gives steadier numbers and slower sweeps

# %% tags=["setup"]
import time

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from autograder import check
from readheads import attention_view, load_model, plot_head_scores, show_model, top_heads
from readheads.ioi import TEMPLATES, IOIPrompts, PatchingMetric, as_tokens, draw_prompts, name_token_ids
from readheads.patching import patch_positions, patched_runs, run_from_layer

# %%
model = load_model(MODEL)
show_model(model)
cfg = model.cfg
torch.set_grad_enabled(False)
print(f"{cfg.n_layers} layers x {cfg.n_heads} heads, {model.W_K.shape[1]} key/value heads")

# %% [markdown]
# ## 1. The task as data
#
# `draw_prompts` fills templates with names, a place and an object. Templates come in two
# orders: **ABBA** ("When *Mary* and *John* ..., *John* gave ... to") names the IO first,
# **BABA** names the subject (S) first. Only words that are **one token for this model's
# tokenizer** are used (with the leading space they have mid-sentence), so the name sits at
# one position and the answer is one token. This is filtered, not assumed: tokenizers differ.

# %%
for prompt in draw_prompts(model.tokenizer, 4, seed=0):
    print(f"{TEMPLATES[prompt.template][0]}  IO={prompt.io:8} S={prompt.s:8} {prompt.text}")

# %% [markdown]
# Turn prompts into a batch. Templates have different lengths, so rows are right-padded, and
# every position you need later (IO, the subject's two mentions S1 and S2, the last token) is
# stored per prompt. Reading "the last position" of a padded batch would silently read
# padding for the shorter prompts.

# %% tags=["solution:ioi_dataset"]

# %% tags=["check:ioi_dataset"]

# %%
clean = ioi_dataset(model, N_PROMPTS, seed=0)
row = 0
print(model.to_str_tokens(clean.tokens[row]))
print({name: int(getattr(clean, name)[row]) for name in ("io_pos", "s1_pos", "s2_pos", "end_pos")})

# %% [markdown]
# ### Corrupted prompts
#
# Patching compares a **clean** run with a **corrupted** one that differs only where we choose.
# Two corruptions keep the length and every position:
#
# - **ABC**: the subject's second mention becomes a third name ("..., *Bob* gave a drink to").
#   Nothing is repeated any more, so the model has no reason to prefer Mary over John.
# - **swapped**: IO and subject trade places everywhere; the right answer flips.
#
# A corrupted dataset keeps the *clean* answers, so one metric scores both runs.

# %% tags=["solution:corrupted_tokens"]

# %% tags=["check:corrupted_tokens"]

# %%
corrupted = clean._replace(tokens=corrupted_tokens(model, clean, "abc", seed=1))
print(model.to_string(clean.tokens[row, 1:clean.end_pos[row] + 1]))
print(model.to_string(corrupted.tokens[row, 1:clean.end_pos[row] + 1]))

# %% [markdown]
# ## 2. One number for the behaviour
#
# The **logit difference** `logit(IO) - logit(S)` at the last token asks exactly the question
# of the task (which of the two names?) and is linear in the residual stream, which makes it
# easy to attribute.

# %% tags=["solution:logit_diff"]

# %% tags=["check:logit_diff"]

# %%
clean_logits, clean_cache = model.run_with_cache(clean.tokens)
corrupted_logits = model(corrupted.tokens)
clean_diff = logit_diff(clean_logits, clean)
corrupted_diff = logit_diff(corrupted_logits, clean)
print(f"clean: mean logit difference {clean_diff.mean():.2f}, IO beats S on "
      f"{(clean_diff > 0).float().mean():.0%} of prompts")
print(f"ABC-corrupted: mean logit difference {corrupted_diff.mean():.2f}")

# %% [markdown]
# To compare interventions, normalise: 0 means "as bad as the corrupted run", 1 "as good as
# the clean run".

# %% tags=["solution:normalised_metric"]

# %% tags=["check:normalised_metric"]

# %% [markdown]
# `PatchingMetric` packs the same formula with the prompts' answers, so a sweep can call
# `metric(logits)` on every patched run.

# %%
metric = PatchingMetric(clean.io_ids, clean.s_ids, clean.end_pos, clean_diff.mean(), corrupted_diff.mean())
print(f"metric(clean) = {metric(clean_logits):.3f}, metric(corrupted) = {metric(corrupted_logits):.3f}, "
      f"your normalised_metric(clean) = {normalised_metric(clean_diff, clean_diff.mean(), corrupted_diff.mean()):.3f}")

# %% [markdown]
# ## 3. Attribution: who writes the answer?
#
# The logits are the final residual stream, normalised, times `W_U`. So the logit difference
# is the normalised residual stream dotted with one direction per prompt, `W_U[:, IO] - W_U[:, S]`.

# %% tags=["solution:logit_diff_directions"]

# %% tags=["check:logit_diff_directions"]

# %% [markdown]
# The **logit lens** applies the final norm and that direction to the residual stream before
# every layer: when does the answer appear? The norm's scale must be the one the model
# actually used at the end (cached as `ln_final.hook_scale`); projecting the raw stream gives
# numbers on the wrong scale.

# %% tags=["solution:accumulated_logit_diff"]

# %% tags=["check:accumulated_logit_diff"]

# %% mystnb={"image": {"alt": "Line plot of the logit lens: the logit difference between the indirect object and the subject read from the residual stream before each layer; it rises in the upper layers."}}
lens = accumulated_logit_diff(model, clean_cache, clean).mean(dim=1)
plt.figure(figsize=(8, 3))
plt.plot(range(cfg.n_layers + 1), lens.cpu(), marker=".")
plt.axhline(0, color="gray", linewidth=0.5)
plt.xlabel("residual stream before layer (last point: after the final layer)")
plt.ylabel("logit difference")
plt.title("Logit lens: when does the residual stream point to the IO?")
plt.show()
print(f"final logit lens value {lens[-1]:.2f} vs the model's logit difference {clean_diff.mean():.2f}")

# %% [markdown]
# The final residual stream is a sum of every layer's attention and MLP outputs (plus the
# embeddings), so the same projection splits the logit difference by component: which layers
# write the answer, and is it attention or MLPs?

# %% tags=["solution:layer_logit_diffs"]

# %% tags=["check:layer_logit_diffs"]

# %% mystnb={"image": {"alt": "Two lines over layers, attention and MLP: each layer's direct effect on the logit difference; a few upper attention layers carry most of it."}}
by_layer = layer_logit_diffs(model, clean_cache, clean)
plt.figure(figsize=(8, 3))
plt.plot(by_layer[0].cpu(), marker=".", label="attention")
plt.plot(by_layer[1].cpu(), marker=".", label="MLP")
plt.axhline(0, color="gray", linewidth=0.5)
plt.xlabel("layer")
plt.ylabel("direct effect on the logit difference")
plt.legend()
plt.show()

# %% [markdown]
# Each head adds its output to the residual stream, so the same projection splits the final
# logit difference head by head (**direct logit attribution**). Heads with large positive
# values are candidate name movers; large negative ones, candidate negative name movers.

# %% tags=["solution:head_logit_diffs"]

# %% tags=["check:head_logit_diffs"]

# %% mystnb={"image": {"alt": "Layer-by-head heatmap, red positive and blue negative: each head's direct effect on the logit difference; strong red cells are candidate name movers, blue ones negative name movers."}}
direct = head_logit_diffs(model, clean_cache, clean)
plot_head_scores(direct, "Direct effect of each head on the logit difference", cmap="RdBu")
plt.show()
name_movers = top_heads(direct, 3)
negative_movers = top_heads(-direct, 2)
print("candidate name movers:", name_movers, " negative name movers:", negative_movers)

# %% [markdown]
# A name mover should *attend* from the last token to the IO (and copy it). Check where the
# candidates look.

# %% tags=["solution:attention_to_names"]

# %% tags=["check:attention_to_names"]

# %%
to_names = attention_to_names(model, clean_cache, clean)
for label, _ in name_movers + negative_movers:
    layer, head = map(int, label.split("."))
    io, s1, s2 = to_names[layer, head].tolist()
    print(f"head {label}: attention from the last token to IO {io:.2f}, S1 {s1:.2f}, S2 {s2:.2f}")

# %% [markdown]
# The same heads on the first prompt, interactive: hover over a head, then over the last
# token, to see how its attention splits between the names.

# %%
movers = [tuple(map(int, label.split("."))) for label, _ in name_movers + negative_movers]
length = int(clean.end_pos[0]) + 1
patterns = [clean_cache["pattern", layer][0, head, :length, :length] for layer, head in movers]
attention_view(torch.stack(patterns), model.to_str_tokens(clean.tokens[0, :length]),
               [f"{layer}.{head}" for layer, head in movers])

# %% [markdown]
# ## 4. Activation patching: what causes the answer?
#
# Attribution shows who *writes* the answer, not what it depends on. **Activation patching**
# runs the corrupted prompts and restores one activation to its clean value: if the metric
# jumps back towards 1, that activation carries the information the task needs.
#
# A sweep is hundreds of patched runs. Three observations make them cheap:
#
# - a run that patches layer `l` computes layers `0 .. l-1` exactly as the corrupted run did:
#   start it from the cached residual stream entering layer `l` (`run_from_layer`);
# - runs are independent: stack many along the batch, one forward pass for all
#   (`patched_runs`; it also caps how many rows go in one pass, so memory stays bounded);
# - the model is causal: a run that patches position `p` computes positions `0 .. p-1`
#   exactly as the corrupted run did, in every layer. Compute only positions `p..`, and let
#   them attend to the keys and values the corrupted run computed for the earlier ones
#   (`patch_positions` does all three for the residual stream).
#
# For the same reason, where the clean and corrupted residual streams are *equal* (every
# position before the first changed token), a patch changes nothing.

# %% tags=["solution:patch_residual_sweep"]

# %% tags=["check:patch_residual_sweep"]

# %% [markdown]
# For the picture, use prompts of **one template**, so that a column is the same word in every
# prompt (with mixed templates, position 10 is S2 in some prompts and " gave" in others).

# %% mystnb={"image": {"alt": "Heatmap of layers against token positions of the first prompt, from -1 to 1: how much patching the clean residual stream at that layer and position restores the answer; the effect moves from the repeated name to the last position in the upper layers."}}
def one_template(n_prompts, template, seed):
    """n_prompts prompts of template `template` only (drawn from its family, then kept)."""
    data = ioi_dataset(model, 8 * n_prompts, seed, families=(TEMPLATES[template][0],))
    rows = (data.template == template).nonzero()[:n_prompts, 0]
    length = int(data.end_pos[rows].max()) + 1
    return IOIPrompts(data.tokens[rows, :length], *(field[rows] for field in data[1:]))


aligned = one_template(N_PROMPTS, template=0, seed=2)
aligned_corrupted = aligned._replace(tokens=corrupted_tokens(model, aligned, "abc", seed=3))
aligned_metric = PatchingMetric(aligned.io_ids, aligned.s_ids, aligned.end_pos,
                                logit_diff(model(aligned.tokens), aligned).mean(),
                                logit_diff(model(aligned_corrupted.tokens), aligned).mean())
start = time.perf_counter()
resid_sweep = patch_residual_sweep(model, aligned, aligned_corrupted, aligned_metric)
print(f"residual stream sweep, {len(aligned.tokens)} prompts: {time.perf_counter() - start:.1f} s")
labels = [f"{t} ({i})" for i, t in enumerate(model.to_str_tokens(aligned.tokens[0]))]
fig, ax = plt.subplots(figsize=(0.45 * len(labels) + 2, 0.2 * cfg.n_layers + 2))
image = ax.imshow(resid_sweep.cpu(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
ax.set_xticks(range(len(labels)), labels, rotation=90)
ax.set_xlabel("position (the tokens of the first prompt)")
ax.set_ylabel("layer")
ax.set_title("Patching the clean residual stream into the ABC run")
plt.colorbar(image, ax=ax)
plt.show()

# %% [markdown]
# Read it from the top. Early on, only the S2 position matters (its token is what ABC
# changed). Somewhere in the middle layers the information leaves S2 and appears at the last
# position: some heads moved it. From which layer on does patching the last position recover
# more than patching S2?

# %%
s2, end = int(aligned.s2_pos[0]), int(aligned.end_pos[0])
crossover = int((resid_sweep[:, end] > resid_sweep[:, s2]).float().argmax())
print(f"S2 is position {s2}, the last token {end}: the last position wins from layer {crossover} on "
      f"(metric there: S2 {resid_sweep[crossover, s2]:.2f}, last token {resid_sweep[crossover, end]:.2f})")

# %% [markdown]
# Which components move it? Patch each layer's whole attention output, and each MLP output.

# %% tags=["solution:patch_layer_output_sweep"]

# %% tags=["check:patch_layer_output_sweep"]

# %% mystnb={"image": {"alt": "Two lines over layers, attention output and MLP output: how much patching that layer's clean output into the ABC run restores the logit difference (1 = clean)."}}
layer_sweep = patch_layer_output_sweep(model, clean, corrupted, metric)
plt.figure(figsize=(8, 3))
plt.plot(layer_sweep[0].cpu(), marker=".", label="attention output")
plt.plot(layer_sweep[1].cpu(), marker=".", label="MLP output")
plt.xlabel("layer")
plt.ylabel("metric (1 = clean)")
plt.title("Patching one layer's output into the ABC run")
plt.legend()
plt.show()

# %% [markdown]
# Now each head's output, at every position: the heads whose clean output restores the
# answer.

# %% tags=["solution:patch_head_output_sweep"]

# %% tags=["check:patch_head_output_sweep"]

# %% mystnb={"image": {"alt": "Layer-by-head heatmap, red positive and blue negative: how much patching each head's clean output into the ABC run restores the logit difference."}}
start = time.perf_counter()
head_sweep = patch_head_output_sweep(model, clean, corrupted, metric)
print(f"head output sweep ({cfg.n_layers * cfg.n_heads} heads): {time.perf_counter() - start:.1f} s")
plot_head_scores(head_sweep, "Patching each head's clean output into the ABC run", cmap="RdBu")
plt.show()
print("heads whose output matters most:", top_heads(head_sweep, 6))

# %% [markdown]
# Where in the prompt does a top head's output matter? Patch it one position at a time, on
# the one-template prompts: `patched_runs` takes any list of in-place edits.

# %% mystnb={"image": {"alt": "Heatmap with the top heads down and token positions across: the effect of patching one head's output at one position; each head matters at a few positions only."}}
_, aligned_cache = model.run_with_cache(aligned.tokens)
_, aligned_corrupted_cache = model.run_with_cache(aligned_corrupted.tokens)
by_position = {}
for label, _ in top_heads(head_sweep, 4):
    layer, head = map(int, label.split("."))
    clean_z = aligned_cache["z", layer]

    def patch_at(p, head=head, clean_z=clean_z):
        def patch(z):
            z[:, p, head] = clean_z[:, p, head]
        return patch

    by_position[label] = patched_runs(model, aligned_corrupted_cache["resid_pre", layer], layer,
                                      f"blocks.{layer}.attn.hook_z",
                                      [patch_at(p) for p in range(len(labels))], aligned_metric)
fig, ax = plt.subplots(figsize=(0.45 * len(labels) + 2, 2.5))
image = ax.imshow(torch.stack(list(by_position.values())).cpu(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
ax.set_xticks(range(len(labels)), labels, rotation=90)
ax.set_yticks(range(len(by_position)), list(by_position))
ax.set_ylabel("head")
ax.set_title("Patching one head's output at one position")
plt.colorbar(image, ax=ax)
plt.show()

# %% [markdown]
# A head's output depends on its queries (where it looks from), its keys (where it can look)
# and its values (what it copies). Patching each separately says which of them carries the
# difference. On a **grouped-query** model like SmolLM2, three query heads share one
# key/value head: "head 12.4's keys" are the keys of key/value head 12.1, shared with heads
# 12.3 and 12.5. The key and value sweeps therefore have one column per key/value head.

# %% tags=["solution:patch_head_input_sweep"]

# %% tags=["check:patch_head_input_sweep"]

# %% mystnb={"image": {"alt": "Four heatmaps over a few layers and heads: the effect of patching each head's query, key, value and attention pattern from the clean run."}}
focus = sorted({int(label.split(".")[0]) for label, _ in top_heads(head_sweep, 4)})
fig, axes = plt.subplots(1, 4, figsize=(16, 0.4 * len(focus) + 2))
for ax, component in zip(axes, ("q", "k", "v", "pattern")):
    sweep = patch_head_input_sweep(model, clean, corrupted, metric, component, layers=focus)
    image = ax.imshow(sweep.cpu(), cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_yticks(range(len(focus)), focus)
    ax.set_xlabel("key/value head" if component in ("k", "v") else "head")
    ax.set_ylabel("layer")
    ax.set_title(f"patching {component}")
plt.colorbar(image, ax=axes)
plt.show()

# %% [markdown]
# ## 5. Path patching: through which heads?
#
# Activation patching a head measures *all* its downstream effects. **Path patching** keeps
# one path: the senders' effect that reaches the receivers directly. It runs the clean
# prompts, gives the senders their corrupted output, **freezes every other head at its clean
# output** (so nothing else can pass the change on), and then lets only the receivers see
# the result. A value well below 1 means the senders matter *through* the receivers.

# %% tags=["solution:path_patch"]

# %% tags=["check:path_patch"]

# %%
def heads_tensor(labels):
    return torch.tensor([[int(x) for x in label.split(".")] for label in labels], device=cfg.device)


movers = heads_tensor([label for label, _ in name_movers])
no_receivers = movers[:0]
direct_to_logits = {label: path_patch(model, clean, corrupted, heads_tensor([label]), no_receivers,
                                      "resid", metric).item() for label, _ in top_heads(head_sweep, 6)}
print("each top head -> logits directly:", {k: round(v, 3) for k, v in direct_to_logits.items()})

# Which earlier heads reach the name movers' queries (as S-inhibition heads should)?
first_mover_layer = int(movers[:, 0].min())
candidates = [label for label, _ in top_heads(head_sweep[:first_mover_layer], 8)]
to_queries = {label: path_patch(model, clean, corrupted, heads_tensor([label]), movers, "q",
                                metric).item() for label in tqdm(candidates, desc="path patching")}
print("candidate -> name movers' queries:", {k: round(v, 3) for k, v in to_queries.items()})

# %% [markdown]
# Heads that matter through the name movers' queries but not directly are this model's
# candidate **S-inhibition** heads. One step further back: which heads reach *their* values?
# In GPT-2 small these are the duplicate-token and induction heads, which notice at S2 that
# the name was said before. Path patching is applied recursively, layer by layer back.

# %%
s_inhibition = heads_tensor(sorted(to_queries, key=to_queries.get)[:2])
first_layer = int(s_inhibition[:, 0].min())
if first_layer > 0:
    earlier = [label for label, _ in top_heads(head_sweep[:first_layer], 6)]
    to_values = {label: path_patch(model, clean, corrupted, heads_tensor([label]), s_inhibition, "v",
                                   metric).item() for label in tqdm(earlier, desc="path patching")}
    print(f"candidate -> values of {s_inhibition.tolist()}:", {k: round(v, 3) for k, v in to_values.items()})

# %% [markdown]
#
# ## 6. Is this the circuit?
#
# A circuit is a claim: *these* heads do the task. **Faithfulness** tests it: mean-ablate
# every other head (replace its output by its average over prompts of the same template,
# whose positions line up) and see how much of the logit difference survives.

# %% tags=["solution:circuit_faithfulness"]

# %% tags=["check:circuit_faithfulness"]

# %% mystnb={"image": {"alt": "Line plot with a log scale across: the share of the logit difference kept when only the top 2, 5, 10, 20 or 40 heads by patching effect are kept."}}
ranked = [label for label, _ in top_heads(head_sweep.abs(), cfg.n_layers * cfg.n_heads)]
sizes = [2, 5, 10, 20, 40]
kept = [circuit_faithfulness(model, clean, heads_tensor(ranked[:k])).item() for k in sizes]
plt.figure(figsize=(6, 3))
plt.plot(sizes, kept, marker="o")
plt.xscale("log")
plt.xlabel("heads kept (by |patching effect|)")
plt.ylabel("logit difference kept")
plt.title("Faithfulness of the top heads")
plt.show()
print({k: round(v, 2) for k, v in zip(sizes, kept)})

# %% [markdown]
# Values above 1 mean the ablated heads were, on average, pushing *against* the IO: negative
# name movers are among them. Faithfulness near 1 with few heads is the claim of a small
# circuit; how it moves as heads are added is part of the evidence.

# %% [markdown]
# **Minimality** asks the converse: does each head in the circuit matter *given the others*?
# Remove one head at a time from the circuit and see how much faithfulness drops.

# %%
circuit = ranked[:10]
full = circuit_faithfulness(model, clean, heads_tensor(circuit)).item()
drops = {label: round(full - circuit_faithfulness(model, clean, heads_tensor([c for c in circuit if c != label])).item(), 3)
         for label in circuit}
print(f"circuit of 10 heads keeps {full:.2f}; drop when one head is removed: {drops}")

# %% [markdown]
# ## 7. Three ways to fool yourself, with numbers
#
# **Cherry-picking.** A ranking found on one kind of prompt is a claim about that kind only.
# Compare the heads that write the answer on ABBA prompts with those on BABA prompts.

# %% tags=["solution:top_k_overlap"]

# %% tags=["check:top_k_overlap"]

# %%
by_family = {}
for family in ("ABBA", "BABA"):
    prompts = ioi_dataset(model, N_PROMPTS, seed=10, families=(family,))
    _, cache = model.run_with_cache(prompts.tokens)
    by_family[family] = head_logit_diffs(model, cache, prompts)
for k in (3, 10):
    print(f"top-{k} heads by direct effect: ABBA and BABA share "
          f"{top_k_overlap(by_family['ABBA'], by_family['BABA'], k):.0%}")

# %% [markdown]
# **Description is not cause.** A head can attend to the IO and change nothing when patched
# (others do the work), or matter without a telling pattern. How well does "attends to the IO
# from the last token" predict "its output matters"?

# %% tags=["solution:rank_correlation"]

# %% tags=["check:rank_correlation"]

# %%
attention_to_io = to_names[..., 0]
print(f"rank correlation across all heads, attention to IO vs patching effect: "
      f"{rank_correlation(attention_to_io, head_sweep):.2f}")
strong_attention = top_heads(attention_to_io, 5)
print("heads attending most to the IO, with their patching effect:",
      [(label, round(head_sweep[tuple(map(int, label.split('.')))].item(), 3)) for label, _ in strong_attention])

# %% [markdown]
# **Ignoring scale.** Roles are found in one model at one size. In GPT-2 small (12 layers),
# Wang et al. report name movers 9.9, 9.6 and 10.0, negative name movers 10.7 and 11.10,
# S-inhibition heads 7.3, 7.9, 8.6 and 8.10, induction heads 5.5 and 6.9, and duplicate-token
# heads 0.1 and 3.0. Where do this model's candidates sit, as a fraction of its depth?

# %%
def depth(label):
    return int(label.split(".")[0]) / (cfg.n_layers - 1)


published = {"name movers": ["9.9", "9.6", "10.0"], "S-inhibition": ["7.3", "7.9", "8.6", "8.10"]}
found = {"name movers": [label for label, _ in name_movers],
         "S-inhibition": sorted(to_queries, key=to_queries.get)[:3]}
for role in published:
    print(f"{role:13} GPT-2 small (published): depth {[round(int(h.split('.')[0]) / 11, 2) for h in published[role]]}; "
          f"{model.course_info.name}: {found[role]} at depth {[round(depth(h), 2) for h in found[role]]}")

# %% [markdown]
# ## What this does and does not show
#
# - Patching shows what the answer depends on *for these prompts and this corruption*. ABC
#   and name-swapping ask different questions (is a name repeated? which name is which?), and
#   can implicate different heads.
# - Path patching depends on what is frozen. Here every other head is frozen and MLPs are
#   recomputed, as in Wang et al.; freezing MLPs too gives other numbers.
# - Mean ablation removes a head's prompt-specific information but keeps its average
#   output; zero ablation would also push the model off its usual activations.
# - A small model on a handful of templates is a sketch of a mechanism, not a proof.
