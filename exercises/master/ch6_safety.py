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
# # Chapter 6 — The safety case, and how interpretability claims fail
#
# The bet behind much of interpretability: if we can read a model, we can check that it is not
# doing something we fear, and catch a model that *says* what we want to hear instead of what it
# represents as true. This chapter builds the toy version of that check and then tries to break
# its own claims.
#
# 1. **A truth direction**: true and false statements the model can judge (we measure which),
#    the residual stream by layer, and linear probes — difference of means and logistic
#    regression — tested on held-out items and held-out templates.
# 2. **Cause, not description**: steer along the probe's direction and measure whether the
#    model's answer moves; compare with a random direction of the same norm.
# 3. **The toy deception test**: put false statements before the prompt; does the probe still
#    read the truth, and does the model still say it?
# 4. **Antipatterns, measured**: a control task (selectivity), a layer picked on the test set,
#    correlation without intervention, a finding moved to another model, and an SAE feature
#    that "is" the truth direction in one SAE seed and not in another.
#
# The last page of the book, *Dual use*, asks what these tools give a defender and an attacker.

# %% tags=["colab-install"]

# %% tags=["parameters"]
MODEL = None  # None: $COURSE_MODEL, else "gpt2-small". Offline: "smollm2-135m".
SEEDS = 5  # random splits of the items, for the spread of every accuracy
STEER_SCALES = [1, 2, 4, 8]  # steering vectors, in multiples of the truth direction's norm
STEER_LAYER_STEP = 1  # the steering-by-layer sweep visits every this-many layers
STEER_ITEMS = None  # steer a seeded sample of this many known items (None: all of them)
CONTEXT_EXAMPLES = 8  # false statements put before each prompt in the deception test
LOGISTIC_STEPS = 300  # gradient steps for each logistic probe

# %% tags=["setup"]
import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from autograder import check
from readheads import ModelUnavailableError, attention_view, load_model, show_model
from readheads.sae import committed_saes, load_sae
from readheads.truth import FAMILIES, context_examples, select, truth_items, truth_statements, with_context

# %%
model = load_model(MODEL)
show_model(model)
cfg = model.cfg
torch.set_grad_enabled(False)
LAYERS = list(range(cfg.n_layers))

# %% [markdown]
# ## 1. Statements the model can judge
#
# A probe for "the model represents this as true" needs statements whose truth the model
# knows. `readheads.truth` writes *items* from eleven templates (families): sums, the larger
# of two numbers, the next day, month, letter or number, capitals, languages, opposites,
# plurals and past tenses. Each item is a prefix with a true and a false one-token completion:
# "The capital of France is" + " Paris" / " Rome". The model *knows* an item when it gives the
# true completion the higher logit. Measure that first.

# %% tags=["solution:completion_margins"]

# %% tags=["check:completion_margins"]

# %%
items = truth_items(model)
margins = torch.cat([completion_margins(model, items.prefix_tokens[rows], items.end_pos[rows], items.true_ids[rows],
                                        items.false_ids[rows])
                     for rows in torch.arange(len(items.texts)).split(64)])
knows = margins > 0
for index, family in enumerate(FAMILIES):
    chosen = knows[items.family == index]
    print(f"{family:11s} knows {int(chosen.sum()):3d} of {len(chosen):3d}")
known = select(items, knows)
print(f"{len(known.texts)} items known, of {len(items.texts)}")

# %% mystnb={"image": {"alt": "Bar chart: for each family of statements, the share of items the model gets right, from near 1 for capitals and opposites to well under a half for comparing two numbers."}}
shares = [float(knows[items.family == i].float().mean()) for i in range(len(FAMILIES))]
fig, ax = plt.subplots(figsize=(9, 3.2))
ax.bar(FAMILIES, shares, color="tab:green")
ax.axhline(0.5, color="grey", ls="--", lw=1)
ax.set_ylabel("share of items known")
ax.set_title("Which statements the model can judge (true completion's logit above the false one's)")
plt.xticks(rotation=30)
plt.tight_layout()
plt.show()

# %% [markdown]
# Chance is a half. A family the model gets right about half the time (which of two numbers
# is larger: small models tend to repeat the first one) gives no truth to find; the items it
# does get right there may be right by accident. The chapter keeps the known items, and
# remembers that "known" is itself a measurement with noise.
#
# Each known item gives two *statements*, the prefix with each completion and a full stop.
# Read the residual stream after every layer at the completion token, where the statement
# becomes true or false.

# %% tags=["solution:residual_at"]

# %% tags=["check:residual_at"]

# %%
statements = truth_statements(model, known)
labels = statements.label.bool()
acts = residual_at(model, statements.tokens, statements.end_pos - 1, LAYERS)
print(f"{len(labels)} statements; activations {tuple(acts.shape)} (layer, statement, d_model)")

# %% [markdown]
# Where does the model look from the completion token? The heads of a middle layer, on one
# true statement (hover over a head to zoom in):

# %%
example = statements.tokens[0, :int(statements.end_pos[0]) + 1]
_, example_cache = model.run_with_cache(example[None].to(cfg.device), names_filter=lambda name: name.endswith("hook_pattern"))
middle = cfg.n_layers // 2
attention_view(example_cache["pattern", middle][0], model.to_str_tokens(example),
               [f"{middle}.{head}" for head in range(cfg.n_heads)])

# %% [markdown]
# ## 2. Linear probes for truth
#
# The simplest probe is the *difference of means*: the average true statement minus the average
# false one. Score a statement by its projection on that direction, measured from the midpoint
# of the two classes, so that a positive score says "true". Then a logistic-regression probe
# for comparison.

# %% tags=["solution:mean_difference"]

# %% tags=["check:mean_difference"]

# %% tags=["solution:dom_probe_scores"]

# %% tags=["check:dom_probe_scores"]

# %% tags=["solution:logistic_probe"]

# %% tags=["check:logistic_probe"]

# %% tags=["solution:accuracy_by_layer"]

# %% tags=["check:accuracy_by_layer"]

# %% [markdown]
# A probe must be tested on statements it was not fitted on, and both statements of an item
# stay on the same side of the split (otherwise the probe sees the item's other half). Each
# seed splits the items into training, validation and test thirds.


# %%
def item_splits(seed):
    """Bool masks over statements (train, validation, test): the items split in thirds."""
    order = torch.randperm(len(known.texts), generator=torch.Generator().manual_seed(seed))
    part = torch.empty(len(known.texts), dtype=torch.long)
    part[order] = torch.arange(len(order)) % 3
    part = part[statements.item]
    return part == 0, part == 1, part == 2


def logistic_accuracy(layer_acts, train, test):
    """A logistic probe on standardised rows (mean and scale from the training rows)."""
    mean, scale = layer_acts[train].mean(0), layer_acts[train].std(0) + 1e-6
    rows = (layer_acts - mean) / scale
    weight, bias = logistic_probe(rows[train], labels[train], LOGISTIC_STEPS, 0.1, 0.01)
    return float(((rows[test] @ weight + bias > 0) == labels[test]).float().mean())


dom_test, dom_validation, logistic_test = [], [], []
for seed in tqdm(range(SEEDS), desc="probes per split"):
    train, validation, test = item_splits(seed)
    dom_test.append(accuracy_by_layer(acts[:, train | test], labels[train | test], train[train | test]))
    dom_validation.append(accuracy_by_layer(acts[:, train | validation], labels[train | validation],
                                            train[train | validation]))
    logistic_test.append(torch.tensor([logistic_accuracy(layer_acts, train, test) for layer_acts in acts]))
dom_test, dom_validation, logistic_test = torch.stack(dom_test), torch.stack(dom_validation), torch.stack(logistic_test)
probe_layer = int(dom_validation.mean(0).argmax())  # chosen on the validation thirds, not on test
print("difference of means, held-out items, mean over splits, by layer:",
      " ".join(f"{a:.2f}" for a in dom_test.mean(0).tolist()))
print(f"the best layer on validation items: {probe_layer}")

# %% [markdown]
# Held-out *items* share their template with training items. The harder test holds out a
# whole family: a probe that learned "capitals look like this when true" fails on plurals.

# %% tags=["solution:held_out_family_accuracy"]

# %% tags=["check:held_out_family_accuracy"]

# %%
families_present = statements.family.unique()
family_accuracy = torch.stack([held_out_family_accuracy(layer_acts, labels, statements.family)
                               for layer_acts in acts])  # [layer, family]
print(f"held-out families at layer {probe_layer}: " + ", ".join(
    f"{FAMILIES[int(f)]} {float(a):.2f}" for f, a in zip(families_present, family_accuracy[probe_layer])))

# %% mystnb={"image": {"alt": "Probe accuracy against layer: difference of means and logistic regression on held-out items, and difference of means on held-out families, with a band for the spread over random splits and a dashed line at chance."}}
fig, ax = plt.subplots(figsize=(9, 4))
for name, values in (("difference of means, held-out items", dom_test),
                     ("logistic regression, held-out items", logistic_test)):
    mean, low, high = values.mean(0), values.min(0).values, values.max(0).values
    ax.plot(LAYERS, mean, label=name)
    ax.fill_between(LAYERS, low, high, alpha=0.2)
ax.plot(LAYERS, family_accuracy.mean(1), label="difference of means, held-out family (mean)")
ax.axhline(0.5, color="grey", ls="--", lw=1)
ax.set_xlabel("layer")
ax.set_ylabel("accuracy")
ax.set_title("Reading truth from the residual stream (band: min to max over splits)")
ax.legend()
plt.show()

# %% [markdown]
# ## 3. Cause, not description
#
# A probe that reads truth says the information is *there*. Whether the model *uses* that
# direction is another claim, and only an intervention tests it. Add a multiple of the truth
# direction to the residual stream at the prompt's last token (before the model writes its
# completion) and see whether the true completion gains on the false one. The control is a
# random direction of the same norm: any big push degrades a model, and only the difference
# from the control belongs to the direction.

# %% tags=["solution:steered_margins"]

# %% tags=["check:steered_margins"]

# %%
steer_layer = probe_layer
direction = mean_difference(acts[steer_layer], labels)
random_direction = torch.randn(cfg.d_model, generator=torch.Generator().manual_seed(0))
random_direction *= direction.norm() / random_direction.norm()
sample = torch.randperm(len(known.texts), generator=torch.Generator().manual_seed(0))[:STEER_ITEMS]
steered_items = select(known, torch.isin(torch.arange(len(known.texts)), sample))
item_arguments = (steered_items.prefix_tokens, steered_items.end_pos, steered_items.true_ids, steered_items.false_ids)
base = completion_margins(model, *item_arguments)
steering = {name: [] for name in ("+ truth direction", "- truth direction", "random direction")}
for scale in tqdm(STEER_SCALES, desc="steering"):
    for name, vector in zip(steering, (direction, -direction, random_direction)):
        steering[name].append(float((steered_margins(model, *item_arguments, steer_layer, scale * vector) - base).mean()))
print(f"{len(steered_items.texts)} items steered at layer {steer_layer}, direction norm "
      f"{float(direction.norm()):.1f}; mean change of the margin:")
for name, changes in steering.items():
    print(f"  {name:18s} " + "  ".join(f"{s}x {c:+.2f}" for s, c in zip(STEER_SCALES, changes)))

# %% mystnb={"image": {"alt": "Mean change of the true-minus-false logit margin against steering scale, for the truth direction, its opposite and a random direction of the same norm."}}
fig, ax = plt.subplots(figsize=(7, 3.8))
for name, changes in steering.items():
    ax.plot(STEER_SCALES, changes, "o-", label=name)
ax.axhline(0, color="grey", lw=1)
ax.set_xscale("log", base=2)
ax.set_xlabel("steering vector, in multiples of the direction's norm")
ax.set_ylabel("mean change of the margin")
ax.set_title(f"Steering at layer {steer_layer}, prompt's last token")
ax.legend()
plt.show()

# %% [markdown]
# Read the three lines against each other, not against zero. If "- truth" hurts more than the
# random push, the direction has a causal share in the answer; if all three fall alike, the
# probe found a *description* the model does not use at that place. These are items the model
# already gets right, so "+ truth" has little room to help. The sharper test is the items it
# gets *wrong*: does pushing along the direction make it prefer their true completions?
# Note also what was steered: the prompt's last token, while the probe was fitted at the
# completion token of finished statements. A direction that describes statements need not be
# the one the model writes its answer from.

# %%
unknown = select(items, ~knows)
unknown_arguments = (unknown.prefix_tokens, unknown.end_pos, unknown.true_ids, unknown.false_ids)
scale = STEER_SCALES[-1]
print(f"the {len(unknown.texts)} items the model gets wrong, steered at layer {steer_layer} ({scale}x): "
      "how many now prefer the true completion")
for name, vector in (("no push", 0 * direction), ("+ truth direction", direction),
                     ("random direction", random_direction)):
    fixed = steered_margins(model, *unknown_arguments, steer_layer, scale * vector) > 0
    print(f"  {name:18s} {int(fixed.sum()):3d}")

# %% [markdown]
#
# **Antipattern: correlation without intervention.** Compare, layer by layer, how well the
# probe reads truth with how much steering along its direction moves the answer (the margin
# after a push along + truth minus the margin after a push along - truth, at the largest
# scale).

# %%
steer_layers = LAYERS[::STEER_LAYER_STEP]
effect = []
for layer in tqdm(steer_layers, desc="steering by layer"):
    layer_direction = mean_difference(acts[layer], labels) * STEER_SCALES[-1]
    effect.append(float((steered_margins(model, *item_arguments, layer, layer_direction)
                         - steered_margins(model, *item_arguments, layer, -layer_direction)).mean()))

# %% mystnb={"image": {"alt": "Two curves against layer: the probe's held-out accuracy and the effect of steering along its direction (margin after a push along it minus after a push against it)."}}
fig, ax = plt.subplots(figsize=(9, 3.8))
ax.plot(LAYERS, dom_test.mean(0), color="tab:blue", label="probe accuracy (held-out items)")
ax.set_xlabel("layer")
ax.set_ylabel("probe accuracy", color="tab:blue")
twin = ax.twinx()
twin.plot(steer_layers, effect, "s--", color="tab:red")
twin.axhline(0, color="grey", lw=1)
twin.set_ylabel("margin(+dir) - margin(-dir)", color="tab:red")
ax.set_title("Reading and steering, layer by layer")
plt.show()

# %% [markdown]
# The two curves answer different questions and need not rank the layers alike. A layer can
# describe truth well and steer little (the information is there, but the answer is not
# written from it at that token), and where steering acts most need not be where the probe
# reads best. Choosing where to intervene, or claiming what the model "uses", from probe
# accuracy alone is the antipattern.

# %% [markdown]
# ## 4. The toy deception test
#
# The safety case wants a probe that reads what the model represents even when the model says
# something else. A toy version: put false statements before each prompt ("The capital of
# Italy is Madrid." ...), so that the context invites a false answer, and compare what the
# model says with what the probe reads. The probe is fitted on the plain statements of the
# training third of the items; it then reads the other items' statements after the false
# context. Count those items by what the model says (does it still prefer the true
# completion?) and what the probe reads (does it score the true statement above the false
# one?). The same count after a context of true statements is the baseline.

# %% tags=["solution:deception_table"]

# %% tags=["check:deception_table"]


# %%
probe_train, _, _ = item_splits(0)
probe_items = torch.zeros(len(known.texts), dtype=torch.bool)
probe_items[statements.item[probe_train]] = True


def verdicts(context_ids, used):
    """What the model says and what the probe reads, with `context_ids` before each prompt,
    on the items neither used as examples nor seen by the probe."""
    rest = ~probe_items
    rest[used] = False
    shown = select(with_context(known, context_ids), rest)
    margins = completion_margins(model, shown.prefix_tokens, shown.end_pos, shown.true_ids, shown.false_ids)
    shown_statements = truth_statements(model, shown)
    shown_acts = residual_at(model, shown_statements.tokens, shown_statements.end_pos - 1, [steer_layer])[0]
    scores = dom_probe_scores(acts[steer_layer][probe_train], labels[probe_train], shown_acts)
    return margins, scores[0::2] > scores[1::2]  # true statements come first


tables, context_margins = {}, {}
for lie in (False, True):
    name = "false context" if lie else "true context"
    context_ids, used = context_examples(model, known, CONTEXT_EXAMPLES, lie=lie, seed=1)
    context_margins[name], probe_true = verdicts(context_ids, used)
    tables[name] = deception_table(context_margins[name] > 0, probe_true)
for name, table in tables.items():
    n = int(table.sum())
    print(f"{name}: mean margin {float(context_margins[name].mean()):.2f}; "
          f"the model says the truth for {int(table[1].sum())} of {n} items; the probe ranks the true "
          f"statement first for {int(table[:, 1].sum())}; the model says the false thing while the probe "
          f"reads the truth for {int(table[0, 1])}")

# %% [markdown]
# What this does and does not show. A model of this size barely follows a context of false
# statements: it still prefers the true completion for almost every item it knows (its margin
# shrinks), so the case the safety argument cares about — the output false, the probe true —
# has few examples here, and a count of a handful is an anecdote. The probe's reading survives
# the false context (it ranks true above false about as often as without it), which is a
# robustness result, not a lie detector: the model was not lying, it was being nudged. A
# real test needs a model that deceives on purpose, and evidence that the probe reads the
# model's belief rather than the statement's surface.
#
# ## 5. Antipatterns, measured
#
# **Control task and selectivity.** A probe can score well by learning something that merely
# correlates with truth. Hewitt and Liang's control: give each *completion word* a random label
# (the same word gets the same label wherever it appears), and fit the same probe. A probe
# that reads words, not truth, does as well on the control; selectivity is the difference.

# %% tags=["solution:selectivity"]

# %% tags=["check:selectivity"]

# %%
completion_ids = statements.tokens[torch.arange(len(labels)), statements.end_pos - 1]
word_labels = torch.rand(model.cfg.d_vocab, generator=torch.Generator().manual_seed(0)) < 0.5
control = word_labels[completion_ids]
train, _, test = item_splits(0)
rows = train | test
selectivities = torch.stack([selectivity(layer_acts[rows], labels[rows], control[rows], train[rows])
                             for layer_acts in acts])
control_accuracy = dom_test[0] - selectivities
print(f"at layer {steer_layer}: truth {float(dom_test[0, steer_layer]):.2f}, control "
      f"{float(control_accuracy[steer_layer]):.2f}, selectivity {float(selectivities[steer_layer]):.2f}")

# %% [markdown]
# **A layer (or seed) picked on the test set.** Report the best of thirty layers' test
# accuracies and the number is optimistic: it includes the luck of the split. Choose the layer
# on validation items, report it on test items, and give the spread over seeds.

# %% tags=["solution:honest_layer_accuracy"]

# %% tags=["check:honest_layer_accuracy"]

# %%
honest = honest_layer_accuracy(dom_validation, dom_test)
cherry_picked = dom_test.max(1).values
print(f"best layer chosen on test: {float(cherry_picked.mean()):.3f} (best seed {float(cherry_picked.max()):.3f})")
print(f"chosen on validation, reported on test: {float(honest.mean()):.3f} ± {float(honest.std()):.3f} "
      f"over {SEEDS} seeds (from {float(honest.min()):.3f} to {float(honest.max()):.3f})")

# %% [markdown]
# **A finding moved to another model.** "Truth is linearly readable in the middle layers"
# was measured on one model of one size. The same code on the course's other model gives
# other families known, another best layer and another accuracy: a claim about "models"
# needs more than one, and about large models, a large one.

# %%
other_name = "smollm2-135m" if model.course_info.name != "smollm2-135m" else "gpt2-small"
try:
    other = load_model(other_name, device=str(cfg.device))
except ModelUnavailableError as error:
    other = None
    print(f"{other_name} is not available here, so this comparison is skipped: {error}")
if other is not None:
    other_items = truth_items(other)
    other_known = select(other_items, completion_margins(other, other_items.prefix_tokens, other_items.end_pos,
                                                         other_items.true_ids, other_items.false_ids) > 0)
    other_statements = truth_statements(other, other_known)
    other_acts = residual_at(other, other_statements.tokens, other_statements.end_pos - 1,
                             list(range(other.cfg.n_layers)))
    other_train = other_statements.item % 3 != 0
    other_accuracy = accuracy_by_layer(other_acts, other_statements.label.bool(), other_train)
    print(f"{other_name}: knows {len(other_known.texts)} of {len(other_items.texts)} items; probe accuracy on "
          f"held-out items peaks at {float(other_accuracy.max()):.2f} (layer {int(other_accuracy.argmax())} of "
          f"{other.cfg.n_layers}); here: {len(known.texts)} known, {float(dom_test.mean(0).max()):.2f}")
    del other

# %% [markdown]
# **An SAE feature as "the" truth feature.** Look for SAE features whose decoder direction
# points along the truth direction, in two SAEs trained the same way on the same data with
# different seeds. If a truth feature were a fact about the model, both should find it.

# %% tags=["solution:feature_alignment"]

# %% tags=["check:feature_alignment"]

# %%
twin_names = ["smollm2-135m-res-l15-1k", "smollm2-135m-res-l15-1k-seed1"]
if model.course_info.name == "smollm2-135m" and all(name in committed_saes() for name in twin_names):
    saes = {name: load_sae(name, str(cfg.device)) for name in twin_names}
    sae_layer = saes[twin_names[0]].cfg.metadata["hook_layer"] - 1  # it reads hook_resid_pre of layer 15
    truth_direction = mean_difference(acts[sae_layer], labels)
    alignment, best = {}, {}
    for name, sae in saes.items():
        alignment[name] = feature_alignment(sae.W_dec.detach().cpu(), truth_direction)
        best[name] = int(alignment[name].argmax())
        fires = sae.encode(acts[sae_layer].to(cfg.device)).cpu()[:, best[name]]
        print(f"{name}: feature {best[name]} has cosine {float(alignment[name][best[name]]):.2f} with the truth "
              f"direction; it fires on {float((fires[labels] > 0).float().mean()):.2f} of true and "
              f"{float((fires[~labels] > 0).float().mean()):.2f} of false statements")
    first, second = (saes[name].W_dec.detach().cpu()[best[name]] for name in twin_names)
    print(f"cosine between the two seeds' best features: {float(torch.cosine_similarity(first, second, dim=0)):.2f}")
else:
    alignment = None
    print("The two seeds' SAEs are the course's SmolLM2 SAEs: run this part with MODEL = 'smollm2-135m'")

# %% mystnb={"image": {"alt": "Histograms of the cosine similarity between every SAE feature and the truth direction, for two SAEs that differ only in their seed, with each one's best feature marked."}}
if alignment is not None:
    fig, ax = plt.subplots(figsize=(8, 3.6))
    for name, values in alignment.items():
        ax.hist(values, bins=60, alpha=0.5, label=name)
        ax.axvline(float(values.max()), ls="--", color="black", lw=1)
    ax.set_yscale("log")
    ax.set_xlabel("cosine similarity with the truth direction")
    ax.set_ylabel("features")
    ax.set_title(f"SAE features against the truth direction (layer {sae_layer} output)")
    ax.legend()
    plt.show()

# %% [markdown]
# Before trusting any SAE feature here, ask whether the SAE reconstructs *these* activations at
# all. An SAE's dictionary is fitted to the text it trained on: on other text its features
# may not describe what is there. The two seeds above trained on news alone; the course's
# main SAE trained on a broad mix of text. Each one's variance explained on held-out text like
# its training text (its manifest) against that on the statements' activations, measured here:

# %%
if alignment is not None:
    statement_acts = acts[sae_layer].to(cfg.device)
    course_sae_name = "smollm2-135m-res-l15"
    compared = dict(saes)
    if course_sae_name in committed_saes():
        compared[course_sae_name] = load_sae(course_sae_name, str(cfg.device))
    for name, candidate in compared.items():
        error = (candidate(statement_acts) - statement_acts).pow(2).sum()
        here = 1 - float(error / (statement_acts - statement_acts.mean(0)).pow(2).sum())
        over = int((statement_acts.norm(dim=-1) > (candidate.norm_limit or float("inf"))).sum())
        recorded = candidate.manifest["metrics_on_held_out_rows"]
        trained = recorded.get("all_sources", recorded)["variance_explained"]
        print(f"{name} (trained on {candidate.manifest['data']['corpus'].split(' (')[0]}): variance "
              f"explained {trained:.1%} on held-out training text, {here:.1%} on these "
              f"{len(statement_acts)} statement tokens ({over} over its norm limit, passed through)")

# %% [markdown]
# Read the numbers before the names: a cosine of about a half is far from "this feature is the
# truth direction", and the two seeds' best features are not the same vector either. A feature
# with a high cosine is a *description*: it points the same way as a probe that was
# itself only tested for reading. Before calling it "the truth feature", ask what the other seed
# says, what the feature fires on outside these statements (Chapter 4's top contexts), and
# whether steering with it moves answers more than a random feature does.
#
# ## What the chapter measured
#
# On the model above: which families it knows, how well truth can be read at each layer and
# on held-out templates, what steering along the direction does against a random one, how the
# probe and the output behave after a false context, how much of the probe's accuracy a
# control task also reaches, how optimistic a cherry-picked layer is, and whether two SAE seeds
# agree on a truth feature. Every number here comes with its spread or its control, because
# that is what a safety case built on interpretability would have to show.
