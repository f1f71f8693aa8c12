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
# # Chapter 2b — How induction heads form
#
# Chapter 2 found induction heads in trained models. The claim that made them famous is about
# *training*: in small transformers they form abruptly, at the same moment as the model's
# in-context learning jumps, and so they are taken to *be* much of that in-context learning
# (Olsson et al. 2022, "In-context learning and induction heads"; Elhage et al. 2021). Two
# curves moving together is a correlation. What turns it into evidence are interventions:
# change the architecture and see the jump move, remove the heads and see the learning go.
#
# Here you watch it happen in models small enough to train on a laptop's CPU in a minute or two,
# and run those interventions yourself:
#
# 1. **the models**: attention-only transformers, their forward pass written from the
#    weights, and the *smeared key*, an architecture change that lets one layer do what
#    otherwise takes two;
# 2. **measuring training**: the loss at each position, the in-context-learning (ICL) score,
#    the loss on repeated tokens, every head's previous-token and induction scores at every
#    checkpoint, and when each changes fastest;
# 3. **the interventions**: a one-layer control, the smeared key, ablating heads, and
#    K-composition between the two heads over training;
# 4. **the antipatterns, measured**: one seed, one size, and a description taken for a cause.
#
# **The runs.** Everything reads the course's committed training runs (`readheads.formation`;
# the command that made each is in its manifest, printed below): two-layer models with four
# heads trained from seeds 0-4, two-layer models with two and eight heads, a one-layer model,
# and a one-layer model with the smeared key. All were trained on the same synthetic stream
# for 2,000 steps, with checkpoints on a log-spaced schedule. The run of seed 0 keeps every
# checkpoint's weights; the others keep their last weights and the measures logged at every
# checkpoint. No course model is loaded: this chapter runs as it is offline, and checks need
# no model.

# %% tags=["colab-install"]

# %% tags=["parameters"]
HELD_OUT = 128  # stream sequences the ablation measurements average over

# %% tags=["setup"]
import math

import matplotlib.pyplot as plt
import torch

from autograder import check
from readheads import attention_view, show_source
from readheads.formation import COURSE_RUNS, DATA, load_course_run, repeated_tokens
from readheads.formation_data import sample_batch

# %%
show_source("the course's committed training runs", "of attention-only transformers "
            "(<code>readheads/formation_runs</code>), on the CPU; no course model is loaded.")
torch.set_grad_enabled(False)
run = load_course_run("2l-seed0")
runs = {name: load_course_run(name) for name in COURSE_RUNS}
cfg = run.config
print(f"{cfg.n_layers} layers of {cfg.n_heads} heads (d_head {cfg.d_head}), d_model {cfg.d_model}, "
      f"vocabulary {cfg.d_vocab}, context {cfg.n_ctx}")
print(f"{run.training.steps} steps of {run.training.batch_size} sequences, checkpoints at steps {run.steps}")
for name, r in runs.items():
    kept = "every checkpoint" if r.weight_steps == r.steps else f"step {r.weight_steps[-1]}"
    print(f"  {name:18s} trained in {r.seconds:5.1f} s; {r.config.n_layers} layer(s) of "
          f"{r.config.n_heads} heads; weights kept: {kept}")
print("made by:", run.command)

# %% [markdown]
# ## 1. The models and the data
#
# The models are transformers with the MLPs and LayerNorms taken out: token and position
# embeddings, one or two layers of attention heads, an unembedding. Without LayerNorm the
# logits are exactly a sum of *paths*: the direct path from the embeddings to the
# unembedding, plus one term per head (Elhage et al. 2021). The model is a TransformerLens
# `HookedRootModule` with the hook names you know (`blocks.1.attn.hook_pattern`, `hook_z`, ...),
# so Chapters 1 and 2's code runs on it unchanged.
#
# The data is a seeded synthetic stream (`readheads.formation_data`): a fixed random
# "language" in which each token has a few likely successors (bigram statistics), sometimes
# following the token before the current one instead, and, at about one position in ten, the
# start of a copy of 8-32 tokens from earlier in the same sequence. A model first learns the
# bigram table; only copying predicts a copy's tokens, and copies are likelier late in a
# sequence. That is the whole reason an induction head pays here.
#
# Write the forward pass from the weights, and check that it is the model's.

# %%
stream = sample_batch(DATA, 4, torch.Generator().manual_seed(0))
print("the first 40 tokens of a stream sequence:", stream[0, :40].tolist())

# %% tags=["solution:forward_from_weights"]

# %% tags=["check:forward_from_weights"]

# %%
model = run.model_at(run.steps[-1])
print(f"largest difference from the module's logits: "
      f"{(forward_from_weights(model, stream) - model(stream)).abs().max():.2e}")

# %% [markdown]
# Because the logits are a sum of paths, direct logit attribution needs nothing folded in:
# split them into the direct path and one term per head, and read each term at the token that
# comes next. The terms add up to that token's logit exactly.

# %% tags=["solution:logit_contributions"]

# %% tags=["check:logit_contributions"]

# %% mystnb={"image": {"alt": "Bar chart: for the trained two-layer model on repeated random tokens, the mean contribution to the next token's logit on the repeated half, from the direct path and from each of the eight heads: each of the four layer-1 heads adds a large part of it, the direct path and the layer-0 heads about nothing."}}
seq_len = 40
repeated = repeated_tokens(cfg.d_vocab, seq_len, 16, seed=1)
contributions = logit_contributions(model, repeated)  # [1 + heads, batch, pos - 1]
copied = contributions[:, :, seq_len + 1:].mean(dim=(1, 2))  # the tokens copying predicts
labels = ["direct"] + [f"{layer}.{head}" for layer in range(cfg.n_layers) for head in range(cfg.n_heads)]
plt.figure(figsize=(7, 2.8))
plt.bar(labels, copied)
plt.ylabel("logit of the next token")
plt.xlabel("path (layer.head)")
plt.title("What predicts the repeated half: each path's part of the next token's logit")
plt.tight_layout()
plt.show()

# %% [markdown]
# Look at the trained model's heads on a short repeated sequence (hover over a head to zoom
# in). Find a layer-0 head that looks one token back, and a layer-1 head whose stripe, on
# the second copy, sits one position right of where the first copy of the current token was.

# %%
view_tokens = repeated_tokens(cfg.d_vocab, 10, 1, seed=4)
_, view_cache = model.run_with_cache(view_tokens)
attention_view(torch.cat([view_cache["pattern", layer][0] for layer in range(cfg.n_layers)]),
               [str(t) for t in view_tokens[0].tolist()],
               [f"{layer}.{head}" for layer in range(cfg.n_layers) for head in range(cfg.n_heads)])

# %% [markdown]
# ### The smeared key
#
# An induction head needs, at each key position, what the *previous* token was. In a
# two-layer model a layer-0 previous-token head writes it and the layer-1 head's keys read it
# (K-composition). Olsson et al. gave a one-layer model a shortcut instead: each key mixes in
# the key one position back, with a weight learned per head. Then a single layer can attend
# to the token after an earlier copy of the current one.

# %% tags=["solution:smear_keys"]

# %% tags=["check:smear_keys"]

# %% tags=["solution:smeared_attention_pattern"]

# %% tags=["check:smeared_attention_pattern"]

# %% mystnb={"image": {"alt": "Heatmaps of the four heads of the one-layer smeared-key model on 12 random tokens repeated once: on the second copy every head attends along a stripe to the token after the earlier copy of the current token, the induction stripe; each head keeps only a few percent of its own key."}}
smeared = runs["1l-smeared-seed0"].model_at(run.steps[-1])
short = repeated_tokens(cfg.d_vocab, 12, 1, seed=2)
patterns = smeared_attention_pattern(smeared, short, 0)[0]
figure, axes = plt.subplots(1, cfg.n_heads, figsize=(12, 3))
for head, ax in enumerate(axes):
    ax.imshow(patterns[head], cmap="Blues", vmin=0, vmax=1)
    ax.set_title(f"head 0.{head}, keep {torch.sigmoid(smeared.blocks[0].attn.smear[head]):.2f}")
    ax.set_xlabel("key")
axes[0].set_ylabel("query")
figure.suptitle("One layer with the smeared key, on 12 random tokens repeated once")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## 2. Measuring training
#
# The first measure is the loss at each position of held-out sequences. The run logged it at
# every checkpoint (`run.held_out_loss`, over 512 held-out sequences); you compute it for one
# model.

# %% tags=["solution:per_position_loss"]

# %% tags=["check:per_position_loss"]

# %% mystnb={"image": {"alt": "Line chart of the held-out loss at each token position, one line per checkpoint from before to after the phase change: late checkpoints have lower loss at late positions than at early ones."}}
plt.figure(figsize=(7, 3))
for target in (100, 230, 300, 500, 2000):  # the checkpoints nearest these steps
    index = min(range(len(run.steps)), key=lambda i: abs(run.steps[i] - target))
    plt.plot(run.held_out_loss[index], label=f"step {run.steps[index]}")
plt.xlabel("token position")
plt.ylabel("loss")
plt.title("Held-out loss by position: after the jump, later tokens are easier")
plt.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% [markdown]
# Olsson et al.'s **in-context-learning score** is the loss on the 500th token of the context
# minus the loss on the 50th: negative when the context helps. For a context of 128 tokens we
# scale the positions to tokens 12 and 125.

# %% tags=["solution:icl_score"]

# %% tags=["check:icl_score"]

# %% [markdown]
# The second measure asks for copying directly: the loss on the second half of repeated
# random tokens, where only copying helps. The third is per head, Chapter 2's detectors at
# every checkpoint.

# %% tags=["solution:repeated_half_loss"]

# %% tags=["check:repeated_half_loss"]

# %% tags=["solution:head_score_curves"]

# %% tags=["check:head_score_curves"]

# %% mystnb={"image": {"alt": "Four stacked line charts sharing a logarithmic training-step axis: the held-out loss, the loss on the repeated half, the in-context-learning score, and every head's induction and previous-token score. All change sharply around the same step."}}
steps = torch.tensor(run.steps)
early, late = round(50 / 512 * cfg.n_ctx), round(500 / 512 * cfg.n_ctx)
icl = icl_score(run.held_out_loss, early, late)
previous_curves, induction_curves = head_score_curves(run, repeated_tokens(cfg.d_vocab, 40, 8, seed=3))
repeated_loss = torch.stack([repeated_half_loss(run.model_at(s), repeated).mean() for s in run.steps])
plotted = steps.clamp(min=1)  # step 0 drawn at 1 on the log axis
figure, axes = plt.subplots(4, 1, figsize=(7, 8), sharex=True)
axes[0].plot(plotted, run.held_out_loss.mean(1))
axes[0].set_ylabel("held-out loss")
axes[1].plot(plotted, repeated_loss)
axes[1].set_ylabel("loss, repeated half")
axes[2].plot(plotted, icl)
axes[2].set_ylabel("ICL score")
for layer in range(cfg.n_layers):
    for head in range(cfg.n_heads):
        axes[3].plot(plotted, induction_curves[:, layer, head], color=f"C{head}",
                     linestyle="-" if layer else ":", label=f"{layer}.{head} induction")
        if layer == 0:
            axes[3].plot(plotted, previous_curves[:, 0, head], color=f"C{head}", linestyle="--",
                         alpha=0.6, label=f"0.{head} previous token")
axes[3].set_ylabel("head score")
axes[3].legend(fontsize=6, ncol=3)
axes[3].set_xscale("log")
axes[3].set_xlabel("training step")
figure.suptitle("One run, four measures, one step axis")
plt.tight_layout()
plt.show()

# %% [markdown]
# The held-out loss, after a slow fall, drops steeply; the loss on the repeated half first
# rises (the bigram statistics the model learns first fit a random repeat worse than a
# uniform guess) and then falls steeply; the ICL score turns negative; layer-1 induction
# scores and layer-0 previous-token scores rise. All at about the same step.
#
# ## 3. When does it happen?
#
# "At the same moment" needs a number. Checkpoints are log-spaced, and single curves are
# noisy (the ICL score is a difference of two positions' losses): smooth over a few
# checkpoints, then find the neighbouring pair between which the curve changes most.

# %% tags=["solution:fastest_change"]

# %% tags=["check:fastest_change"]

# %% tags=["solution:phase_change_steps"]

# %% tags=["check:phase_change_steps"]

# %%
two_layer = [f"2l-seed{seed}" for seed in range(5)]
intervals = {name: phase_change_steps(runs[name], 3) for name in two_layer}
print("run          ICL changes fastest    best induction head    agree?")
for name, found in intervals.items():
    (a, b), (c, d) = found.tolist()
    gap = abs(math.sqrt(a * b) - math.sqrt(c * d)) / run.training.steps  # middles, log-spaced
    print(f"{name:12s} steps {a:4d}-{b:4d}        steps {c:4d}-{d:4d}        "
          f"{'same interval' if (a, b) == (c, d) else f'{gap:.1%} of training apart'}")
width = max(int(f[0, 1] - f[0, 0]) for f in intervals.values())
print(f"the widest of these intervals is {width} steps, {width / run.training.steps:.1%} of training")
start, end = intervals["2l-seed0"][0].tolist()  # shaded in the figures below

# %% [markdown]
# The ICL score falls in two stages: the jump, then a slower fall later in training, while the
# layer-0 previous-token head sharpens (its score keeps rising long after the induction
# scores level off; figure above). How much you smooth decides which stage the "fastest
# change" finds:

# %%
for name in two_layer:
    print(f"{name}: ICL changes fastest at steps {phase_change_steps(runs[name], 3)[0].tolist()} "
          f"with a window of 3, {phase_change_steps(runs[name], 5)[0].tolist()} with 5")

# %% [markdown]
# So say which window you used, and look at the curve: a number without its curve can point
# at the wrong event.

# %% [markdown]
# ## 4. The interventions
#
# **The one-layer control.** A one-layer model has no layer below to write the previous
# token into its keys, so it cannot form an induction head (without the smeared key).
# If the ICL jump is the induction head forming, the control should show no jump.

# %% mystnb={"image": {"alt": "Line chart of the ICL score against training step (log axis) for the two-layer model, the one-layer model and the one-layer smeared-key model: the one-layer model's score stays near zero, the two others fall sharply, the smeared-key model earlier."}}
plt.figure(figsize=(7, 3))
for name, label in (("2l-seed0", "two layers"), ("1l-seed0", "one layer"),
                    ("1l-smeared-seed0", "one layer, smeared key")):
    r = runs[name]
    plt.plot(torch.tensor(r.steps).clamp(min=1), icl_score(r.held_out_loss, early, late), label=label)
plt.xscale("log")
plt.xlabel("training step")
plt.ylabel("ICL score")
plt.title("The control and the architecture change")
plt.legend()
plt.tight_layout()
plt.show()
for name in ("2l-seed0", "1l-seed0", "1l-smeared-seed0"):
    r = runs[name]
    curve = icl_score(r.held_out_loss, early, late)
    best = r.measures["induction_scores"][-1].max()
    print(f"{name:18s} lowest ICL score {curve.min():+.2f}, final {curve[-1]:+.2f}; best induction "
          f"score at the end {best:.2f}; changes fastest at steps {phase_change_steps(r, 3)[0].tolist()}")

# %% [markdown]
# **Ablation.** Now remove heads from the trained model. Mean ablation replaces a head's
# output by its average, so the head still writes what it writes on average but nothing
# about this input: the measured change is what the head contributes *because of* the input.

# %% tags=["solution:mean_ablated_loss"]

# %% tags=["check:mean_ablated_loss"]

# %% tags=["solution:ablation_icl_effects"]

# %% tags=["check:ablation_icl_effects"]

# %% mystnb={"image": {"alt": "Bar chart of the share of the ICL score removed by mean-ablating each head alone, for the four heads of layer 0 and the four of layer 1: one layer-0 head removes most of it, each layer-1 head a small share."}}
held_out = sample_batch(DATA, HELD_OUT, torch.Generator().manual_seed(7))
effects = torch.stack([ablation_icl_effects(model, held_out, layer) for layer in range(cfg.n_layers)])
plt.figure(figsize=(7, 2.8))
plt.bar([f"{layer}.{head}" for layer in range(cfg.n_layers) for head in range(cfg.n_heads)],
        effects.flatten())
plt.axhline(0.5, color="grey", linestyle=":")
plt.ylabel("share of ICL score removed")
plt.xlabel("head ablated alone (layer.head)")
plt.title("Which heads the in-context learning depends on")
plt.tight_layout()
plt.show()
print("induction scores of layer 1 at the end:", [round(x, 2) for x in induction_curves[-1, 1].tolist()])
print("previous-token scores of layer 0 at the end:", [round(x, 2) for x in previous_curves[-1, 0].tolist()])

# %% [markdown]
# In these runs every head of layer 1 became an induction head, so each one alone carries
# only a share: they back each other up. Ablate them together. In layer 0, two heads may
# attend to the previous token about equally; compare what ablating each one does.

# %%
clean_icl = icl_score(per_position_loss(model, held_out), early, late)


def share_removed(heads):
    return 1 - icl_score(mean_ablated_loss(model, held_out, heads), early, late) / clean_icl


inductors = [[1, h] for h in range(cfg.n_heads) if induction_curves[-1, 1, h] > 0.3]
print(f"ICL score {clean_icl:+.3f}; ablating the induction heads {inductors} together removes "
      f"{share_removed(inductors):.0%} of it")
followers = [h for h in range(cfg.n_heads) if previous_curves[-1, 0, h] > 0.5]
others = [h for h in range(cfg.n_heads) if h not in followers]
for head in followers:
    print(f"previous-token head 0.{head} (score {previous_curves[-1, 0, head]:.2f}) alone: "
          f"{share_removed([[0, head]]):.0%} removed")
print(f"the other layer-0 heads {others} together: {share_removed([[0, h] for h in others]):.0%} removed")

# %% [markdown]
# **K-composition over training.** Chapter 2 read composition from the weights of a trained
# model. Here you can watch it form: the score between a layer-0 head and the best layer-1
# induction head at every checkpoint, for the previous-token head that the ablation singled
# out, for the other previous-token head (if there is one), and for a head that attends
# elsewhere.

# %% tags=["solution:k_composition_curve"]

# %% tags=["check:k_composition_curve"]

# %% mystnb={"image": {"alt": "Line chart of the K-composition score against training step (log axis) between three layer-0 heads and the best induction head: all rise in the shaded phase-change interval; afterwards only the previous-token head whose ablation removes the ICL score stays high."}}
inductor = int(induction_curves[-1, 1].argmax())
used = int(effects[0].argmax())
plt.figure(figsize=(7, 3))
for head in [used] + [h for h in followers if h != used] + others[:1]:
    kind = ("the previous-token head ablation singled out" if head == used else
            "another previous-token head" if head in followers else "a head attending elsewhere")
    plt.plot(plotted, k_composition_curve(run, head, inductor), label=f"0.{head} -> 1.{inductor}: {kind}")
plt.axvspan(start, end, color="grey", alpha=0.2)
plt.xscale("log")
plt.xlabel("training step")
plt.ylabel("K-composition")
plt.legend(fontsize=8)
plt.title("Composition into the induction head over training")
plt.tight_layout()
plt.show()

# %% [markdown]
# Every pair's score rises at the jump, as the weights reorganise, and by the end only the
# head that the ablation singled out stays composed with the induction head. The composition
# score is a weak signal (random matrices of these shapes score about 0.12); on its own it
# would not have told the two previous-token heads apart by much. With the ablation it does.

# %% [markdown]
# ## 5. Antipatterns, measured
#
# **One seed is not a result.** The step of the jump is a random variable: report it over
# seeds, with its spread.

# %% tags=["solution:jump_window"]

# %% tags=["check:jump_window"]

# %% tags=["solution:seed_spread"]

# %% tags=["check:seed_spread"]

# %%
jump_steps = torch.tensor([math.sqrt(float(f[0, 0] * f[0, 1])) for f in intervals.values()])
mean, spread, extent = seed_spread(jump_steps, run.training.steps).tolist()
print(f"ICL jump over {len(jump_steps)} seeds (middle of the fastest interval): "
      f"{[round(s) for s in jump_steps.tolist()]} steps")
print(f"mean {mean:.1%} of training, standard deviation {spread:.1%}, range {extent:.1%}")

# %% [markdown]
# **Ignoring scale.** One size says nothing about how the jump depends on size. Compare two,
# four and eight heads: when the ICL score changes fastest, and how long it takes to go from
# 10% to 90% of its change.

# %% mystnb={"image": {"alt": "Line chart of the ICL score against training step (log axis) for two-layer models with two, four and eight heads: the three curves nearly coincide, each falling sharply between steps 250 and 320 and again near step 1,000."}}
plt.figure(figsize=(7, 3))
for name in ("2l-heads2-seed0", "2l-seed0", "2l-heads8-seed0"):
    r = runs[name]
    curve = icl_score(r.held_out_loss, early, late)
    low, high = jump_window(torch.tensor(r.steps), curve, 0.1, 0.9).tolist()
    print(f"{r.config.n_heads} heads: changes fastest at steps {phase_change_steps(r, 3)[0].tolist()}, "
          f"10% to 90% of the change between steps {low:.0f} and {high:.0f}")
    plt.plot(torch.tensor(r.steps).clamp(min=1), curve, label=f"{r.config.n_heads} heads")
plt.xscale("log")
plt.xlabel("training step")
plt.ylabel("ICL score")
plt.title("The same jump at three sizes")
plt.legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# Across a factor of four in heads, the jump moves by at most one checkpoint interval. That
# is what these three runs show over this range, with one seed each; it is not a law about
# size (width, depth and the data were not varied).
#
# **Description is not cause.** The two curves are tightly correlated. So is almost any pair
# of curves that both move during training, which is why a correlation is only a description.

# %% tags=["solution:curve_correlation"]

# %% tags=["check:curve_correlation"]

# %%
best_curve = run.measures["induction_scores"][:, 1, inductor]
print(f"correlation over checkpoints, ICL score with the induction head's score: "
      f"{curve_correlation(icl, best_curve):+.2f}")
print(f"ICL score with log(step + 1), which no head computes: "
      f"{curve_correlation(icl, torch.log1p(steps.double()).float()):+.2f}")
print(f"ICL score with the held-out loss at position 12, which copying cannot help: "
      f"{curve_correlation(icl, run.held_out_loss[:, early - 1]):+.2f}")

# %% [markdown]
# What each piece of evidence lets you claim:
#
# | evidence | it shows | it does not show |
# |---|---|---|
# | the ICL score and the induction scores change in the same interval, on every seed | they co-occur, reproducibly | that one causes the other: both could follow a third change |
# | the one-layer control has no induction head and no jump | the jump needs what a second layer gives | which part of the second layer |
# | the smeared key gives one layer induction heads, and the jump comes with them, earlier | the architecture change that enables induction heads moves the jump | that nothing else changed with it |
# | mean-ablating the induction heads together removes the ICL score; of two heads with the same previous-token score, ablating one removes most of it and the other none | the trained model's ICL runs through those heads, and attention alone would have picked the wrong one | how it was learned |
# | K-composition into the induction head rises at the jump, and stays only for the head the ablation singled out | the circuit is wired in the weights then | that it is the only route |
#
# Each row closes a gap the one above leaves open. Olsson et al.'s argument for small
# attention-only models is this table; for large models with MLPs, they could run fewer of
# the interventions, and say that their evidence there is weaker.
