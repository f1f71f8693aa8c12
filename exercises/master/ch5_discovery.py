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
# # Chapter 5 — Automated circuit discovery
#
# Chapter 3 found the IOI circuit by hand: a sweep for every kind of component, then reading
# the heatmaps and choosing what to patch next. On a model of this size that takes an
# afternoon; on a large model, or for a behaviour nobody has studied, it takes months. This
# chapter automates the two steps.
#
# 1. **Attribution patching** (Nanda 2023; Syed et al. 2023): one forward and one backward
#    pass give a *linear estimate* of every activation-patching result at once. Compare it
#    with Chapter 3's exact sweeps, and find where the estimate fails.
# 2. **Pruning** in the style of ACDC (Conmy et al. 2023): start from the whole model and
#    remove every head whose removal barely changes the metric, working back from the output.
# 3. **Edges**: which head feeds which head's query, key or value, or the logits. Edge
#    attribution scores every edge from one forward and one backward pass; ACDC over edges
#    draws the circuit as a graph.
# 4. **Evaluation**: which of the hand method's heads each algorithm recovers, how faithful
#    its circuit is, and what it costs.
# 5. **Antipattern "one circuit"**: change the threshold, the corruption or the prompts, and
#    measure how much of the circuit stays.
#
# The task, dataset and metric are Chapter 3's, ready-made here (`readheads.ioi.patching_setup`):
# clean and corrupted IOI prompts and the normalised logit difference, 1 on the clean run and
# 0 on the corrupted one. Chapter 3's exact sweeps are in `readheads.sweeps`.

# %% tags=["colab-install"]

# %% tags=["parameters"]
MODEL = None  # None: $COURSE_MODEL, else "gpt2-small". Offline: "smollm2-135m".
N_PROMPTS = 8  # prompts per dataset; more gives steadier numbers and slower sweeps
THRESHOLDS = [0.005, 0.01, 0.02, 0.04]  # pruning thresholds for the trade-off plot
PRUNE_LAST_LAYERS = None  # pruning searches the heads of this many last layers (None: all)
EDGE_HEADS = 8  # the edge search looks at the edges among this many most attributed heads

# %% tags=["setup"]
import time

import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from autograder import check
from readheads import attention_view, load_model, show_model, top_heads
from readheads.edges import KINDS, LOGITS, candidate_edges, edge_label, receiver_head, split_qkv_inputs
from readheads.ioi import as_tokens, patching_setup
from readheads.sweeps import head_output_sweep, layer_output_sweep, residual_sweep

# %%
model = load_model(MODEL)
show_model(model)
cfg = model.cfg
torch.set_grad_enabled(False)
clean, corrupted, metric = patching_setup(model, N_PROMPTS, seed=0)
print(f"{N_PROMPTS} prompts; clean logit difference {float(metric.clean):.2f}, "
      f"corrupted (ABC) {float(metric.corrupted):.2f}")
print(model.to_string(clean.tokens[0, 1:clean.end_pos[0] + 1]), "|",
      model.to_string(corrupted.tokens[0, 1:clean.end_pos[0] + 1]))

# %% [markdown]
# ## 1. Attribution patching
#
# Activation patching asks, for one activation *a*: what is the metric *M* if *a* takes its
# clean value in the corrupted run? Exactly, that is one forward pass per activation. To first
# order it is
#
# $$M(a_\text{clean}) \approx M(a_\text{corrupted}) + \frac{\partial M}{\partial a}\Big|_\text{corrupted} \cdot (a_\text{clean} - a_\text{corrupted}),$$
#
# and one backward pass gives the gradient for every activation at once. Two caches and one
# backward pass replace hundreds of forward passes.
#
# The chapter runs with gradients off, and the model's weights need none. To get the
# gradient with respect to an activation, a hook adds a tensor of zeros that requires a
# gradient: the sum equals the activation, stays connected to everything before it, and the
# gradient with respect to the zeros is the gradient with respect to the activation.

# %% tags=["solution:metric_gradients"]

# %% tags=["check:metric_gradients"]

# %% [markdown]
# Attribution for the three families of Chapter 3's sweeps: the residual stream by layer and
# position, each layer's attention and MLP output, each head's output. Each is a sum of
# gradient × difference over what the exact sweep patches together.

# %% tags=["solution:attribution_residual"]

# %% tags=["check:attribution_residual"]

# %% tags=["solution:attribution_layer_outputs"]

# %% tags=["check:attribution_layer_outputs"]

# %% tags=["solution:attribution_head_outputs"]

# %% tags=["check:attribution_head_outputs"]

# %% tags=["solution:pearson_correlation"]

# %% tags=["check:pearson_correlation"]

# %% [markdown]
# Now both methods on the same prompts, with the time each takes.

# %%
timings, exact, estimate = {}, {}, {}
for name, exact_sweep, attribution in [
        ("residual stream", residual_sweep, attribution_residual),
        ("layer outputs", layer_output_sweep, attribution_layer_outputs),
        ("head outputs", head_output_sweep, attribution_head_outputs)]:
    start = time.perf_counter()
    exact[name] = exact_sweep(model, clean, corrupted, metric).cpu()
    middle = time.perf_counter()
    estimate[name] = attribution(model, clean, corrupted, metric).cpu()
    timings[name] = (middle - start, time.perf_counter() - middle)
    print(f"{name:16} exact {timings[name][0]:6.1f} s, attribution {timings[name][1]:5.1f} s; "
          f"correlation {float(pearson_correlation(exact[name], estimate[name])):.3f}")

# %% mystnb={"image": {"alt": "Three scatter plots of attribution-patching estimates against exact activation-patching results, for residual-stream positions, layer outputs and head outputs, with the diagonal drawn: most points lie near it, a few far off."}}
fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
for ax, (name, values) in zip(axes, exact.items()):
    ax.scatter(values.flatten(), estimate[name].flatten(), s=10, alpha=0.6)
    low = min(float(values.min()), float(estimate[name].min()))
    high = max(float(values.max()), float(estimate[name].max()))
    ax.plot([low, high], [low, high], color="grey", ls="--", lw=1)
    ax.set_xlabel("exact activation patching")
    ax.set_ylabel("attribution patching")
    ax.set_title(f"{name} (r = {float(pearson_correlation(values, estimate[name])):.2f})")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Where the linear estimate fails
#
# The estimate is a tangent line. It is good where the metric is close to linear in the patched
# activation over the whole distance from corrupted to clean, and bad where that distance is
# large or the path bends: an attention pattern that flips from one token to another (the
# softmax saturates), a normalisation that rescales, an MLP neuron that switches on. Find the
# components where the two disagree most:

# %% tags=["solution:largest_disagreements"]

# %% tags=["check:largest_disagreements"]

# %%
for name in exact:
    worst = largest_disagreements(exact[name], estimate[name], 4)
    cells = [(tuple(index.tolist()), float(exact[name][tuple(index)]), float(estimate[name][tuple(index)]))
             for index in worst]
    print(f"{name}: " + "; ".join(f"{index} exact {e:+.2f}, estimate {a:+.2f}" for index, e, a in cells))

# %% [markdown]
# Read the residual-stream failures by position: the largest disagreements sit where the clean
# and corrupted streams differ by a whole token (the changed name, in the early layers). There
# the "small change" the tangent assumes is the difference between two words, and the patched
# stream carries information the rest of the model reacts to nonlinearly (attention moves to
# it). The head outputs are a smaller change each, and the estimate tracks the exact result
# more closely. Attribution patching is a filter: use it to pick candidates cheaply, then
# patch the candidates exactly.

# %% mystnb={"image": {"alt": "Two heatmaps, layer by position, of the residual stream: the exact patching result and the attribution estimate side by side."}}
fig, axes = plt.subplots(1, 2, figsize=(13, 0.18 * cfg.n_layers + 2))
positions = model.to_str_tokens(clean.tokens[0])
for ax, (title, values) in zip(axes, [("exact", exact["residual stream"]),
                                      ("attribution estimate", estimate["residual stream"])]):
    image = ax.imshow(values, cmap="RdBu", vmin=-1, vmax=1, aspect="auto")
    ax.set_xticks(range(len(positions)), positions, rotation=90)
    ax.set_ylabel("layer")
    ax.set_title(f"Residual stream, {title}")
plt.colorbar(image, ax=axes)
plt.show()

# %% [markdown]
# ## 3. Pruning: an ACDC-style search
#
# Attribution ranks components; it does not say where to stop. ACDC builds the circuit by
# removal instead. Start from the whole model, visit components from the output backwards,
# and remove each one for good if removing it changes the metric *of what is left* by less
# than a threshold τ. Here the components are heads, and "removed" means the head gets its
# output from the corrupted run while everything else sees the clean prompts (ACDC removes
# edges between components the same way; heads keep the search small enough for a CPU).

# %% tags=["solution:metric_with_heads_removed"]

# %% tags=["check:metric_with_heads_removed"]

# %% tags=["solution:prune_heads"]

# %% tags=["check:prune_heads"]

# %%
searched = list(range(cfg.n_layers))[-PRUNE_LAST_LAYERS:] if PRUNE_LAST_LAYERS else list(range(cfg.n_layers))
print(f"pruning searches the {len(searched) * cfg.n_heads} heads of layers {searched[0]}-{searched[-1]}")
_, corrupted_cache = model.run_with_cache(corrupted.tokens, names_filter=lambda name: name.endswith("hook_z"))
circuits, faithfulness, prune_seconds = {}, {}, {}
for threshold in THRESHOLDS:
    start = time.perf_counter()
    circuits[threshold] = prune_heads(model, clean, corrupted, metric, threshold, searched)
    prune_seconds[threshold] = time.perf_counter() - start
    faithfulness[threshold] = float(metric_with_heads_removed(model, clean, corrupted_cache, metric, ~circuits[threshold]))
    print(f"τ = {threshold}: {int(circuits[threshold].sum())} of {cfg.n_layers * cfg.n_heads} heads kept, "
          f"metric of the circuit alone {faithfulness[threshold]:.2f} ({prune_seconds[threshold]:.0f} s)")

# %% mystnb={"image": {"alt": "Circuit size and faithfulness against the pruning threshold: a larger threshold keeps fewer heads, and the circuit's metric drifts from 1."}}
fig, ax = plt.subplots(figsize=(6.5, 3.8))
ax.plot(THRESHOLDS, [int(circuits[t].sum()) for t in THRESHOLDS], "o-", color="tab:blue")
ax.set_xscale("log")
ax.set_xlabel("threshold τ")
ax.set_ylabel("heads kept", color="tab:blue")
twin = ax.twinx()
twin.plot(THRESHOLDS, [faithfulness[t] for t in THRESHOLDS], "s--", color="tab:red")
twin.set_ylabel("metric of the circuit alone (1 = clean)", color="tab:red")
ax.set_title("Pruning: the threshold trades circuit size for faithfulness")
plt.tight_layout()
plt.show()

# %% [markdown]
# Each removal may cost a little, and the costs add up: a threshold is a bound on each step,
# not on the total. That is why faithfulness drifts as τ grows, and why a circuit should
# always be reported with its threshold and its final metric.

# %% [markdown]
# ## 4. Edges: which head feeds which
#
# A list of heads says what matters, not how it connects. Chapter 3 found the connections by
# path patching; here they get scored all at once. An *edge* runs from a sender head's output
# to one input of a later receiver: a head's query, key or value, or the logits (the final
# residual stream). Normally every head of a layer reads the same residual stream, so one
# edge cannot be touched alone. `split_qkv_inputs(model)` gives each head its own copy of
# the stream for each input (`blocks.{layer}.hook_q_input`, [batch, pos, head, d_model]);
# a gradient there belongs to one receiver.
#
# Edge attribution (Syed et al. 2023) is attribution patching with that gradient: the
# sender's output difference, dotted with the gradient at the receiver's own input. One
# forward and one backward pass score every edge. In SmolLM2 the key and value inputs
# belong to the key/value heads: 3 a layer, each shared by 3 query heads, so a k or v edge
# feeds three query heads at once.

# %% tags=["solution:edge_attribution"]

# %% tags=["check:edge_attribution"]

# %% tags=["solution:edge_attribution_logits"]

# %% tags=["check:edge_attribution_logits"]

# %%
start = time.perf_counter()
edge_scores = {kind: edge_attribution(model, clean, corrupted, metric, kind).cpu() for kind in KINDS[:3]}
edge_scores["logits"] = edge_attribution_logits(model, clean, corrupted, metric).cpu()
edge_seconds = time.perf_counter() - start
n_edges = sum(int((scores != 0).sum()) for scores in edge_scores.values())
print(f"{n_edges} edges scored in {edge_seconds:.1f} s (per kind: two cached runs and one backward pass)")
ranked_edges = []
for kind, scores in edge_scores.items():
    for index in scores.abs().flatten().topk(8).indices:
        cell = torch.unravel_index(index, scores.shape)
        edge = (KINDS.index(kind), int(cell[0]), int(cell[1]),
                *((int(cell[2]), int(cell[3])) if kind != "logits" else (cfg.n_layers, 0)))
        ranked_edges.append((float(scores[cell]), edge))
for score, edge in sorted(ranked_edges, key=lambda row: -abs(row[0]))[:12]:
    print(f"{edge_label(edge):24} {score:+.3f}")

# %% [markdown]
# Read the list as Chapter 3's circuit, drawn as edges: heads that write the answer straight
# into the logits (name movers), heads that change *where a name mover looks* (its query:
# S-inhibition), and heads that feed those through their values. Among the heads with the
# largest attribution, the scores of every edge between them:

# %% mystnb={"image": {"alt": "Four heatmaps of edge-attribution scores among the most attributed heads: rows are senders, columns receivers, one panel each for query, key and value inputs and one column for the logits."}}
circuit_heads = [tuple(divmod(int(i), cfg.n_heads)) for i in
                 estimate["head outputs"].abs().flatten().topk(EDGE_HEADS).indices]
circuit_heads.sort()
labels = [f"{layer}.{head}" for layer, head in circuit_heads]
grids = {kind: torch.tensor([[float(edge_scores[kind][s + (r[0], receiver_head(model, kind, r[1]))])
                             for r in circuit_heads] for s in circuit_heads]) for kind in KINDS[:3]}
grids["logits"] = torch.tensor([[float(edge_scores["logits"][s])] for s in circuit_heads])
fig, axes = plt.subplots(1, 4, figsize=(16, 4.4), gridspec_kw={"width_ratios": [4, 4, 4, 1]}, layout="constrained")
head_limit = max(float(grids[kind].abs().max()) for kind in KINDS[:3])
for ax, (kind, grid) in zip(axes, grids.items()):
    limit = float(grid.abs().max()) if kind == "logits" else head_limit
    image = ax.imshow(grid, cmap="RdBu", vmin=-limit, vmax=limit)
    ax.set_yticks(range(len(labels)), labels)
    ax.set_xticks(range(grid.shape[1]), labels if kind != "logits" else ["logits"], rotation=90)
    ax.set_title(f"into {kind} (receiver)" if kind != "logits" else "direct")
    plt.colorbar(image, ax=ax, shrink=0.7)
axes[0].set_ylabel("sender")
plt.show()

# %% [markdown]
# Pruning over edges works as it did over heads: cut an edge (its receiver gets the sender's
# corrupted output; everything else reads the stream as it is) and keep the cut if the
# metric of what is left moves by less than τ. The search here covers the edges among the
# most attributed heads, and from each of them to the logits; every other path stays.

# %% tags=["solution:metric_with_edges_removed"]

# %% tags=["check:metric_with_edges_removed"]

# %% tags=["solution:prune_edges"]

# %% tags=["check:prune_edges"]

# %%
edges = candidate_edges(model, circuit_heads)
middle_threshold = THRESHOLDS[len(THRESHOLDS) // 2]
start = time.perf_counter()
kept_edges = prune_edges(model, clean, corrupted, metric, middle_threshold, edges)
edge_prune_seconds = time.perf_counter() - start
edge_circuit_metric = float(metric_with_edges_removed(model, clean, corrupted_cache, metric, edges[~kept_edges]))
print(f"τ = {middle_threshold}: {int(kept_edges.sum())} of {len(edges)} edges kept in {edge_prune_seconds:.0f} s; "
      f"metric with the others cut {edge_circuit_metric:.2f}")
start = time.perf_counter()
exact_cut = torch.tensor([1 - float(metric_with_edges_removed(model, clean, corrupted_cache, metric, edge[None]))
                          for edge in tqdm(edges, desc="cutting one edge at a time")])
per_edge = (time.perf_counter() - start) / len(edges)
print(f"cutting one edge: {per_edge:.2f} s a run; all {n_edges} edges one at a time would take "
      f"{per_edge * n_edges / 60:.0f} min, against {edge_seconds:.1f} s for edge attribution")
estimated = torch.tensor([float(edge_scores[KINDS[kind]][(s_layer, s_head) + ((r_layer, r_head) if kind < 3 else ())])
                          for kind, s_layer, s_head, r_layer, r_head in edges.tolist()])
print(f"edge attribution against cutting each edge alone: correlation "
      f"{float(pearson_correlation(exact_cut, estimated)):.3f}")

# %% mystnb={"image": {"alt": "Left: the edge circuit as a graph, heads placed by layer, arrows coloured by the input they feed (query, key, value, logits). Right: edge attribution against the exact effect of cutting each edge alone, with the diagonal."}}
fig, (graph, scatter) = plt.subplots(1, 2, figsize=(14, 5.5), gridspec_kw={"width_ratios": [3, 2]})
layers_used = sorted({layer for layer, _ in circuit_heads})
place = {}
for layer in layers_used:
    row = [h for h in circuit_heads if h[0] == layer]
    for i, h in enumerate(row):
        place[h] = (i - (len(row) - 1) / 2, layers_used.index(layer))
place["logits"] = (0, len(layers_used))
colours = {"q": "tab:blue", "k": "tab:green", "v": "tab:orange", "logits": "tab:red"}
for kind, s_layer, s_head, r_layer, r_head in edges[kept_edges].tolist():
    if KINDS[kind] == "logits":
        targets = ["logits"]
    else:
        targets = [h for h in circuit_heads if h[0] == r_layer and receiver_head(model, KINDS[kind], h[1]) == r_head]
    for target in targets:
        graph.annotate("", xy=place[target], xytext=place[(s_layer, s_head)],
                       arrowprops=dict(arrowstyle="-|>", mutation_scale=14, shrinkA=12, shrinkB=12,
                                       color=colours[KINDS[kind]], lw=1.5,
                                       connectionstyle=f"arc3,rad={0.15 * (kind - 1)}"))
for node, (x, y) in place.items():
    graph.text(x, y, node if node == "logits" else f"{node[0]}.{node[1]}", ha="center", va="center",
               bbox=dict(boxstyle="round", fc="white", ec="grey"))
for kind, colour in colours.items():
    graph.plot([], [], color=colour, label=f"into {kind}" if kind != "logits" else "to the logits")
graph.legend(loc="upper left")
width = max(abs(x) for x, _ in place.values()) + 1
graph.set_xlim(-width - 0.5, width + 0.5)
graph.set_ylim(-0.7, len(layers_used) + 0.7)
graph.axis("off")
graph.set_title(f"Edges kept at τ = {middle_threshold} ({int(kept_edges.sum())} of {len(edges)}), layers upwards")
scatter.scatter(exact_cut, estimated, s=14)
low, high = float(min(exact_cut.min(), estimated.min())), float(max(exact_cut.max(), estimated.max()))
scatter.plot([low, high], [low, high], color="grey", ls="--", lw=1)
scatter.set_xlabel("exact: 1 - metric with this edge alone cut")
scatter.set_ylabel("edge attribution")
scatter.set_title(f"r = {float(pearson_correlation(exact_cut, estimated)):.2f}")
plt.tight_layout()
plt.show()

# %% [markdown]
# The graph is the claim an edge search makes, and it is narrower than a list of heads: a
# head can be in the circuit for one receiver and irrelevant to the next. It inherits the
# settings of the search (the heads allowed, τ, the corruption), and cutting an edge here
# cuts the direct path only; the MLPs between sender and receiver still read the sender.

# %% [markdown]
# ## 5. Against the hand-found circuit
#
# Chapter 3's method ranks heads by exact activation patching of their outputs. Call its
# circuit the heads whose patched output restores at least 5% of the logit difference (in
# absolute value). How many of them does each automatic method find? (Where the pruning
# searched only the last layers, every comparison counts the heads of those layers.)

# %% tags=["solution:head_precision_recall"]

# %% tags=["check:head_precision_recall"]

# %%
hand = exact["head outputs"].abs() >= 0.05
print(f"hand method: {int(hand.sum())} heads, e.g. {[label for label, _ in top_heads(exact['head outputs'].abs(), 6)]}")
pruned = circuits[middle_threshold]
attributed = torch.zeros_like(hand)  # attribution's top heads, as many as the hand method has
attributed.view(-1)[estimate["head outputs"].abs().flatten().topk(int(hand.sum())).indices] = True
n_heads_total = cfg.n_layers * cfg.n_heads
in_search = torch.zeros_like(hand)  # the heads the pruning searched
in_search[searched] = True
rows = {"attribution (top |estimate|)": (attributed, f"3 forward + 1 backward, {timings['head outputs'][1]:.1f} s"),
        f"pruning (τ = {middle_threshold})": (pruned, f"{len(searched) * cfg.n_heads + 2} forward, {prune_seconds[middle_threshold]:.0f} s"),
        "hand method (exact sweep)": (hand, f"{n_heads_total} patched runs, {timings['head outputs'][0]:.1f} s")}
for name, (found, cost) in rows.items():
    precision, recall = head_precision_recall(found & in_search, hand & in_search).tolist()
    kept = float(metric_with_heads_removed(model, clean, corrupted_cache, metric, ~found))
    print(f"{name:30} {int(found.sum()):3} heads; precision {precision:.2f}, recall {recall:.2f}; "
          f"metric of these heads alone {kept:.2f}; cost {cost}")

# %% [markdown]
# A discovered circuit is a list of heads; reading them is the next step (Chapters 1 to 3).
# Here is where the heads that all three methods keep attend, on one clean prompt (the hand
# method's strongest heads if they share none):

# %%
agreed = attributed & pruned & hand
agreed = agreed if agreed.any() else hand
ranked = [label for label, score in top_heads(torch.where(agreed, exact["head outputs"].abs(), -1.0), 6)
          if score >= 0]
length = int(clean.end_pos[0]) + 1
_, prompt_cache = model.run_with_cache(clean.tokens[:1, :length], names_filter=lambda name: name.endswith("hook_pattern"))
patterns = [prompt_cache["pattern", int(label.split(".")[0])][0, int(label.split(".")[1])] for label in ranked]
attention_view(torch.stack(patterns), model.to_str_tokens(clean.tokens[0, :length]), ranked)

# %% mystnb={"image": {"alt": "Three layer-by-head grids, one per method (attribution, pruning, the hand method), with the heads each method keeps in black."}}
fig, axes = plt.subplots(1, 3, figsize=(15, 0.2 * cfg.n_layers + 2))
for ax, (name, (found, _)) in zip(axes, rows.items()):
    ax.imshow(found.float(), cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_title(name)
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
plt.tight_layout()
plt.show()

# %% [markdown]
# The three answer different questions. The hand method asks which single head matters on its
# own, in the corrupted run; pruning asks which heads the clean run cannot do without, given
# the others; attribution estimates the first question to first order. A head can matter
# alone and be redundant with a backup (pruning drops it), or matter only together with
# another. Precision and recall against the hand circuit say how far the methods agree, not
# which is right; the circuit's own metric says how much of the behaviour it carries.
#
# ## 6. Antipattern: "the circuit"
#
# A circuit is the output of a method with settings: a threshold, a metric, a corruption, a
# set of prompts. Change one and measure how much stays.

# %% tags=["solution:circuit_overlaps"]

# %% tags=["check:circuit_overlaps"]

# %% mystnb={"image": {"alt": "A matrix of Jaccard overlaps between circuits found with two thresholds, with swapped names as the corruption and with other prompts, each cell labelled with its value."}}
variants = {f"τ = {t}": circuits[t] for t in THRESHOLDS[1:3]}
swapped = patching_setup(model, N_PROMPTS, seed=0, kind="swapped")
variants[f"swapped names, τ = {middle_threshold}"] = prune_heads(model, *swapped, middle_threshold, searched)
other_prompts = patching_setup(model, N_PROMPTS, seed=1)
variants[f"other prompts, τ = {middle_threshold}"] = prune_heads(model, *other_prompts, middle_threshold, searched)
overlaps = circuit_overlaps(torch.stack(list(variants.values())) & in_search)
fig, ax = plt.subplots(figsize=(6.5, 5))
image = ax.imshow(overlaps, vmin=0, vmax=1, cmap="viridis")
ax.set_xticks(range(len(variants)), list(variants), rotation=30, ha="right")
ax.set_yticks(range(len(variants)), list(variants))
for i in range(len(variants)):
    for j in range(len(variants)):
        ax.text(j, i, f"{float(overlaps[i, j]):.2f}", ha="center", va="center", color="w" if overlaps[i, j] < 0.6 else "k")
ax.set_title("Jaccard overlap of circuits found with different settings")
plt.colorbar(image, ax=ax)
plt.tight_layout()
plt.show()

# %% [markdown]
# If the circuits overlap little, "the IOI circuit of this model" is not one object: report
# the settings, the faithfulness of each, and the heads that survive every variant (their
# intersection) as the claim you can defend.

# %%
core = torch.stack(list(variants.values())).all(0)
print(f"searched heads in every variant: {int((core & in_search).sum())}: "
      f"{[f'{layer}.{head}' for layer, head in (core & in_search).nonzero().tolist()]}")
print(f"metric of those heads alone: {float(metric_with_heads_removed(model, clean, corrupted_cache, metric, ~core)):.2f}")
