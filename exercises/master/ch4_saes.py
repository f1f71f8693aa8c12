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
# # Chapter 4 — Sparse autoencoders
#
# Chapters 2 and 3 started from a behaviour (copying, naming the indirect object) and searched
# for the heads behind it. That does not scale: most of what a model computes has no behaviour
# anyone thought to test. **Sparse autoencoders** (SAEs) go the other way. They take the
# activations at one place in the model and rewrite each as a sparse sum of directions learned
# from data, hoping each direction is one human-readable *feature* (Bricken et al. 2023,
# "Towards Monosemanticity"; Templeton et al. 2024).
#
# Why should that work? Models seem to represent more features than they have dimensions, in
# **superposition**: almost-orthogonal directions, each used rarely. A dictionary wider than
# the activation, with a penalty on how many entries are used at once, can pull them apart.
#
# In this chapter you:
#
# 1. watch an SAE recover features planted in superposition in a toy model;
# 2. build the SAE: encoder, ReLU and TopK activations, the loss, the unit-norm decoder;
# 3. train it: warm-ups, dead features, resampling, and curves that tell a good run from a bad one;
# 4. measure an SAE: L0, variance explained, the loss recovered when it replaces the activation;
# 5. read a feature: where it fires, what it writes, a dashboard;
# 6. test a feature by intervention: ablate it, steer with it;
# 7. ask whether features are ground truth (two seeds, two sizes);
# 8. label features automatically, and score the labels.
#
# The model's SAE is pretrained (on the model offline; on GPT-2 small, the public one), so
# nothing long is trained here. Its training script is `python -m readheads.sae_training`.

# %% tags=["colab-install"]

# %% tags=["parameters"]
MODEL = None  # None: $COURSE_MODEL, else "gpt2-small". Offline: "smollm2-135m".
N_ROWS = 48  # held-out rows of 128 tokens to measure and read the SAE on; more is steadier
TOY_EPOCHS = 40  # passes over the toy data per toy SAE

# %% tags=["setup"]
import matplotlib.pyplot as plt
import torch
from tqdm.auto import tqdm

from autograder import check
from readheads import load_model, show_model
from readheads.corpus import PYTHON_DOCS, held_out_rows, load_corpus, token_rows
from readheads.harvest import ActivationsInMemory, activations_at
from readheads.sae import SAEConfig, SAEWeights, committed_saes, default_sae, load_sae, weights_of
from readheads.sae_eval import evaluate_sae, ordinary_tokens
from readheads.sae_reading import LLMLabeller, best_label, contexts_table, feature_dashboard, generate
from readheads.sae_training import TrainingConfig, train_sae

# %%
model = load_model(MODEL)
show_model(model)
torch.set_grad_enabled(False)
sae = default_sae(model)
hook = sae.cfg.hook_name
print(f"SAE {sae.course_info.key}: {sae.cfg.d_sae} features reading {sae.cfg.d_in}-dim "
      f"activations at {hook} ({sae.course_info.source})")

# %% [markdown]
# ## 1. Superposition in miniature
#
# A toy first, where we know the answer. Take 32 feature directions in an 8-dimensional space
# (far more than fit orthogonally) and let each be active rarely, with a random strength.
# Every data point is the sum of the few active features' directions. Elhage et al. (2022)
# showed that a small model asked to store and recover such features puts them in
# superposition like this. The toy model squeezes features into d_hidden dimensions with a
# matrix W and reads them back out with W's transpose and a ReLU, whose bias can clip the
# small interference from other features.

# %% tags=["solution:toy_model_forward"]

# %% tags=["check:toy_model_forward"]

# %%
generator = torch.Generator().manual_seed(0)
n_features, d_toy, p_active = 32, 8, 0.04
true_directions = torch.randn(n_features, d_toy, generator=generator)
true_directions /= true_directions.norm(dim=1, keepdim=True)
active = torch.rand(50_000, n_features, generator=generator) < p_active
toy_features = active * torch.rand(50_000, n_features, generator=generator)
toy_x = toy_features @ true_directions  # the activations an SAE will see
readout = toy_model_forward(toy_features[:2000], true_directions.T, torch.full((n_features,), -0.3))
error = (readout - toy_features[:2000]).abs()
print(f"{n_features} features in {d_toy} dimensions, {p_active:.0%} active each: "
      f"{active.sum(1).float().mean():.2f} active per point")
print(f"reading them back with W = the true directions and bias -0.3: mean error {error.mean():.3f} "
      f"(features are 0-1)")

# %% [markdown]
# To say whether an SAE found the true features we need a number: for each true feature, the
# cosine similarity of the closest learned direction; averaged, the **mean max cosine
# similarity** (MMCS). 1 means every true feature was found exactly.

# %% tags=["solution:mean_max_cosine_similarity"]

# %% tags=["check:mean_max_cosine_similarity"]

# %%
random_guess = torch.randn(64, d_toy, generator=generator)
print(f"MMCS of 64 random directions: {mean_max_cosine_similarity(random_guess, true_directions):.3f}")

# %% [markdown]
# ## 2. The SAE
#
# An SAE reads an activation x (d_in numbers) and writes it as a sparse combination of d_sae
# learned directions, the rows of the decoder W_dec, plus a bias b_dec:
#
# $$f = \mathrm{ReLU}\big((x - b_\text{dec}) W_\text{enc} + b_\text{enc}\big), \qquad
#   \hat x = f\, W_\text{dec} + b_\text{dec}.$$
#
# b_dec is the centre of the data: subtracting it before encoding (the *pre-encoder bias*)
# lets the encoder see deviations from it. SAELens stores exactly these four tensors, and
# this course reads and writes its file format.

# %% tags=["solution:sae_encode"]

# %% tags=["check:sae_encode"]

# %% [markdown]
# A **TopK** SAE (Gao et al. 2024) replaces the ReLU-and-penalty by a hard rule: keep each
# token's k largest pre-activations, zero the rest. Sparsity is then set, not trained.

# %% tags=["solution:topk_activation"]

# %% tags=["check:topk_activation"]

# %% [markdown]
# A standard SAE is trained to reconstruct well (mean squared error) while using few features
# (an L1 penalty on the activations). The penalty has a loophole: shrink an activation and
# grow its decoder row, and the reconstruction is the same with a smaller L1. Two fixes, used
# together here: weight each feature's L1 by its decoder row's norm, and keep decoder rows at
# unit norm.

# %% tags=["solution:sae_loss"]

# %% tags=["check:sae_loss"]

# %% tags=["solution:normalize_decoder_rows"]

# %% tags=["check:normalize_decoder_rows"]

# %% [markdown]
# Renormalising after each step undoes any change of a row's length, but the optimiser still
# spends effort on it: Adam's moments track that useless gradient component. Remove it first.

# %% tags=["solution:project_decoder_gradient"]

# %% tags=["check:project_decoder_gradient"]

# %% [markdown]
# Put the pieces together into one step of gradient descent.

# %% tags=["solution:sae_training_step"]

# %% tags=["check:sae_training_step"]

# %%
toy_weights = SAEWeights(torch.randn(d_toy, 64, generator=generator) * 0.3, torch.zeros(64),
                         torch.randn(64, d_toy, generator=generator), torch.zeros(d_toy))
toy_weights = toy_weights._replace(W_dec=normalize_decoder_rows(toy_weights.W_dec))
batch = toy_x[:1024]
for step in range(301):
    if step % 100 == 0:
        features = sae_encode(batch, toy_weights)
        mse, l1, loss = sae_loss(batch, features, features @ toy_weights.W_dec + toy_weights.b_dec,
                                 toy_weights.W_dec, 0.3)
        print(f"step {step:3d}: loss {loss:.4f} (mse {mse:.4f}, l1 {l1:.3f})")
    toy_weights = SAEWeights(*sae_training_step(batch, toy_weights, l1_coefficient=0.3, lr=0.05))

# %% [markdown]
# ## 3. Training, and telling a good run from a bad one
#
# Real training adds three things to that step (`readheads.sae_training.train_sae` does all
# of them, with Adam):
#
# - **schedules**: the L1 coefficient warms up from zero (a full penalty from step one kills
#   features before they find data) and the learning rate decays to zero at the end;
# - **dead-feature tracking**: a feature that has not fired for many tokens is dead; it
#   costs compute and explains nothing;
# - **resampling**: dead features are re-initialised towards inputs the SAE reconstructs badly.

# %% tags=["solution:training_schedule"]

# %% tags=["check:training_schedule"]

# %% tags=["solution:tokens_since_fired"]

# %% tags=["check:tokens_since_fired"]

# %% tags=["solution:resample_dead_features"]

# %% tags=["check:resample_dead_features"]

# %% [markdown]
# Now train toy SAEs with the course's loop. A good run and two bad ones: an L1 penalty far
# too strong (most features die, and resampling cannot save them), and one far too weak
# (everything fires, nothing is sparse).

# %% mystnb={"image": {"alt": "Three rows of training curves for three toy SAEs (L1 coefficient 1, 10 and 0.03): reconstruction error, active features per point, and fraction of dead features against training steps."}}
def toy_sae(l1_coefficient, seed=0, d_sae=64):
    config = TrainingConfig(d_sae=d_sae, l1_coefficient=l1_coefficient, lr=3e-3, batch_size=1024,
                            epochs=TOY_EPOCHS, dead_after=20_000, resample_every=25, seed=seed)
    return train_sae(ActivationsInMemory(toy_x), config, SAEConfig(d_in=d_toy, d_sae=d_sae),
                     progress=False)


runs = {"good (λ = 1)": toy_sae(1.0), "λ too large (10)": toy_sae(10.0), "λ too small (0.03)": toy_sae(0.03)}
fig, axes = plt.subplots(1, 3, figsize=(14, 3.6))
for name, (toy, history) in runs.items():
    axes[0].plot(history.step, history.mse, label=name)
    axes[1].plot(history.step, history.l0, label=name)
    axes[2].plot(history.step, history.dead_fraction, label=name)
    print(f"{name:20} MMCS {mean_max_cosine_similarity(toy.W_dec, true_directions):.3f}, "
          f"L0 {history.l0[-1]:.2f}, dead {history.dead_fraction[-1]:.0%}, resampled {history.resampled[-1]}")
for ax, title in zip(axes, ["reconstruction error (MSE)", "L0 (active features)", "dead fraction"]):
    ax.set_title(title)
    ax.set_xlabel("step")
axes[0].set_yscale("log")
axes[1].set_yscale("log")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The good run finds the planted features (MMCS near 1) with about as many active features
# per point as were planted. Read curves like these for every real run: a falling MSE with an
# L0 that settles, few dead features, resampling that stops being needed.
#
# The model's SAE was trained the same way on the model's residual stream, over the course's
# broad offline mix of text (about 10.8M tokens; section 4 says what it holds). Its manifest
# keeps the run's curves:

# %% mystnb={"image": {"alt": "Training curves of the model's pretrained SAE: reconstruction error, active features per token and dead fraction against tokens seen."}}
manifest = getattr(sae, "manifest", None)
if manifest is None:
    print(f"{sae.course_info.source}: no training manifest (a public SAE); see its model card")
else:
    history = manifest["history"]
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.4))
    for ax, key, title in zip(axes, ["mse", "l0", "dead_fraction"], ["MSE", "L0", "dead fraction"]):
        ax.plot(history["tokens"], history[key])
        ax.set_title(f"{title} (model's SAE)")
        ax.set_xlabel("tokens")
    plt.tight_layout()
    plt.show()
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in manifest["training"].items()})

# %% [markdown]
# ## 4. Measuring an SAE
#
# Three families of numbers, always reported together:
#
# - **sparsity**: L0, the mean number of active features per token;
# - **reconstruction**: MSE, and the fraction of the activations' variance explained;
# - **downstream**: reconstruction error in a direction the model ignores is harmless, and a
#   small error in the wrong direction can ruin it. So splice the SAE into the model (replace
#   the activation by its reconstruction) and compare the loss with the clean model and with
#   the activation deleted (zeroed): the **cross-entropy loss recovered**.
#
# And the health of the dictionary: **dead** features (never fire) and **dense** ones (fire on
# more than 10% of tokens, often not a readable feature).

# %% tags=["solution:reconstruction_metrics"]

# %% tags=["check:reconstruction_metrics"]

# %% tags=["solution:ce_loss_recovered"]

# %% tags=["check:ce_loss_recovered"]

# %% tags=["solution:feature_density"]

# %% tags=["check:feature_density"]

# %% tags=["solution:spliced_losses"]

# %% tags=["check:spliced_losses"]

# %%
documents = load_corpus(split="held-out")  # news articles the course's SAE never trained on
corpus = token_rows(model.tokenizer, documents, 128, n_rows=N_ROWS)  # rows of BOS + 127 tokens
rows = corpus.tokens.to(model.cfg.device)
weights = weights_of(sae)
x = activations_at(model, rows, hook)[:, 1:].flatten(0, 1)
# Special tokens (the end-of-text token between articles) have residual norms ~100x larger
# than words: left in, they would dominate every sum below. Measure on ordinary tokens.
x = x[ordinary_tokens(model, rows[:, 1:]).flatten()]
# A few ordinary tokens carry massive activations too (norms ~35x the median); the course's
# SAE was trained without them (its manifest's "outliers"), so measure it without them.
norm_limit = (manifest or {}).get("outliers", {}).get("norm_limit")
if norm_limit is not None:
    print(f"left out: {int((x.norm(dim=-1) > norm_limit).sum())} tokens with norms over {norm_limit:.0f}")
    x = x[x.norm(dim=-1) <= norm_limit]
features = sae_encode(x, weights)
l0, mse, variance_explained = reconstruction_metrics(x, features @ weights.W_dec + weights.b_dec, features)
ce = spliced_losses(model, weights, rows, hook)
frequency, dead, dense = feature_density(features, 0.1)
print(f"on {len(x):,} held-out tokens: L0 {l0:.1f}, variance explained {variance_explained:.1%}, "
      f"CE loss recovered {ce_loss_recovered(*ce):.1%}")
print(f"loss: clean {ce[0]:.3f}, SAE spliced in {ce[1]:.3f}, activation zeroed {ce[2]:.3f}")
print(f"dead on these tokens: {dead:.1%} (rare features need more tokens to show), dense: {dense:.1%}")
if manifest is not None:
    recorded = manifest["metrics_on_held_out_rows"]["per_source"].get("bbc-news")
    if recorded:
        print(f"measured when it was trained, on the first {manifest['data']['held_out_rows_per_source']} "
              f"rows of these articles ({recorded['tokens']:,} tokens): "
              f"L0 {recorded['l0']:.1f}, variance explained {recorded['variance_explained']:.1%}, "
              f"CE loss recovered {recorded['ce_loss_recovered']:.1%}")

# %% [markdown]
# Those numbers hold for news. An SAE's metrics are a property of the SAE *and the text*: its
# dictionary is fitted to the activations it was trained on. The course's SAE trained on a mix
# of six families of text (news, speeches, books, dictionaries, documentation, code; the
# README lists the sources), and its manifest records its metrics on held-out text of every
# source, and on two kinds of text it never saw: e-mail, and the plain-text docs of Python's
# standard library. An earlier course SAE, trained on news alone, explained a third of the
# variance on those docs and recovered half the loss. Before reading features on any text,
# check that the SAE reconstructs *that* text.

# %% mystnb={"image": {"alt": "Bar charts of the course SAE's variance explained and cross-entropy loss recovered on held-out text of each training source and of two text families it never trained on."}}
if manifest is None or "per_source" not in manifest["metrics_on_held_out_rows"]:
    print(f"{sae.course_info.source}: no per-source metrics recorded; measure it on your own text "
          "with readheads.sae_eval.evaluate_sae")
else:
    measured = manifest["metrics_on_held_out_rows"]
    texts = {**measured["per_source"], **{f"{name} (never trained on)": m
                                           for name, m in measured["held_out_families"].items()}}
    colours = ["tab:blue"] * len(measured["per_source"]) + ["tab:orange"] * len(measured["held_out_families"])
    fig, axes = plt.subplots(1, 2, figsize=(13, 4), sharey=True)
    for ax, key, title in [(axes[0], "variance_explained", "variance explained"),
                           (axes[1], "ce_loss_recovered", "CE loss recovered")]:
        ax.barh(list(texts), [m[key] for m in texts.values()], color=colours)
        ax.set_xlim(0, 1)
        ax.set_title(title)
    axes[0].invert_yaxis()
    plt.suptitle(f"{sae.course_info.name} on held-out text ({manifest['data']['held_out_rows_per_source']} "
                 "rows of 128 tokens each)")
    plt.tight_layout()
    plt.show()
    for name, m in texts.items():
        print(f"{name:32} L0 {m['l0']:5.1f}, variance explained {m['variance_explained']:.1%}, "
              f"CE loss recovered {m['ce_loss_recovered']:.1%}")

# %% mystnb={"image": {"alt": "Histogram of the SAE's features by how often they fire, on a log scale from one in a million to one (the fraction of tokens where each fires)."}}
plt.figure(figsize=(7, 3.5))
plt.hist(torch.log10(frequency[frequency > 0].cpu()), bins=50)
plt.xlabel("log10(fraction of tokens where the feature fires)")
plt.ylabel("features")
plt.title(f"Feature density ({int((frequency == 0).sum())} features never fired on these tokens)")
plt.show()

# %% [markdown]
# Sparsity and reconstruction trade off: a stronger L1 penalty gives a smaller L0 and a worse
# reconstruction. An SAE is only good or bad *at its L0*. Sweep the penalty on the toy data:

# %% mystnb={"image": {"alt": "Scatter plot of reconstruction error against L0 for toy SAEs trained with five L1 coefficients, joined in order of the coefficient: error falls as L0 rises; the planted number of active features is marked, and a legend gives each coefficient with its MMCS."}}
trained = {1.0: runs["good (λ = 1)"], 10.0: runs["λ too large (10)"], 0.03: runs["λ too small (0.03)"]}
for l1_coefficient in tqdm([0.3, 3.0], desc="two more L1 coefficients"):
    trained[l1_coefficient] = toy_sae(l1_coefficient)
sweep = {l1_coefficient: (history.l0[-1], history.mse[-1], float(mean_max_cosine_similarity(toy.W_dec, true_directions)))
         for l1_coefficient, (toy, history) in sorted(trained.items())}
plt.figure(figsize=(8, 4))
# Labels go in the legend, not beside the points: strong penalties put their points on top of
# each other.
plt.plot([l0_run for l0_run, _, _ in sweep.values()], [mse_run for _, mse_run, _ in sweep.values()],
         color="lightgrey", zorder=0)
for l1_coefficient, (l0_run, mse_run, mmcs) in sweep.items():
    plt.scatter(l0_run, mse_run, label=f"λ={l1_coefficient:g}, MMCS {mmcs:.2f}")
plt.axvline(float(active.sum(1).float().mean()), color="grey", ls="--", label="planted L0")
plt.xscale("log")
plt.yscale("log")
plt.xlabel("L0")
plt.ylabel("MSE")
plt.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1))
plt.title("The L0-MSE trade-off (toy SAEs)")
plt.tight_layout()
plt.show()

# %% [markdown]
# The same trade-off on the model. The course ships a smaller SAE beside the main one (1,024
# features, the course's earlier recipe, trained on news alone: 1.1M tokens of BBC articles), and its
# training run swept the L1 coefficient: five SAEs, each measured on the same 256 held-out news
# rows (its manifest; `python -m readheads.sae_training` with `--l1-sweep`). The square is the
# main SAE on held-out news. Nothing is trained here.

# %% mystnb={"image": {"alt": "Two panels for SAEs on the model's residual stream, 1,024 features trained with five L1 coefficients plus the course's 4,096-feature SAE: MSE against L0 (error falls as L0 rises) and cross-entropy loss recovered against L0."}}
small_name = f"{sae.course_info.name}-1k"
small = load_sae(small_name, model.cfg.device) if small_name in committed_saes() else None
if small is None or not small.manifest.get("l1_sweep"):
    print(f"no L1 sweep for {sae.course_info.name} (the course trains one for its own SAE, on "
          f"the offline model): see the toy plot above")
else:
    fig, axes = plt.subplots(1, 2, figsize=(12, 4))
    sweep_runs = small.manifest["l1_sweep"]
    main_metrics = manifest["metrics_on_held_out_rows"]["per_source"]["bbc-news"]
    for ax, key, label in [(axes[0], "mse", "MSE"), (axes[1], "ce_loss_recovered", "CE loss recovered")]:
        ax.plot([run["l0"] for run in sweep_runs], [run[key] for run in sweep_runs], "o-",
                label=f"{small.cfg.d_sae:,} features, trained on news")
        # Labels on the side of the curve away from the 4,096-feature SAE's square.
        offset = (-6, -12) if key == "mse" else (-6, 6)
        for run in sweep_runs:
            ax.annotate(f"λ={run['l1_coefficient']:g}", (run["l0"], run[key]), fontsize=8,
                        xytext=offset, textcoords="offset points", ha="right")
        recipe = manifest["training"]
        penalty = f"TopK, k={recipe['k']}" if recipe["architecture"] == "topk" else f"λ={recipe['l1_coefficient']:g}"
        ax.plot(main_metrics["l0"], main_metrics[key], "s",
                label=f"{sae.cfg.d_sae:,} features, trained on the broad mix ({penalty})")
        ax.set_xscale("log")
        ax.margins(x=0.1, y=0.1)  # room for the labels of the end points
        ax.set_xlabel("L0")
        ax.set_ylabel(label)
    axes[0].legend()
    fig.suptitle("The L0-MSE trade-off on the model (held-out news)")
    plt.tight_layout()
    plt.show()
    for run in sweep_runs:
        print(f"λ={run['l1_coefficient']:<4g} L0 {run['l0']:6.1f}, variance explained "
              f"{run['variance_explained']:.1%}, CE loss recovered {run['ce_loss_recovered']:.1%}, "
              f"dead {run['dead_fraction']:.1%}")

# %% [markdown]
# ## 5. Reading a feature
#
# A feature is a hypothesis until it is read. Three kinds of evidence: **where it fires**
# (its activations on real text and the contexts where they are largest), **what it writes**
# (its decoder direction through the unembedding: which next tokens it promotes), and, in the
# next section, **what happens without it**.

# %% tags=["solution:sae_feature_activations"]

# %% tags=["check:sae_feature_activations"]

# %% tags=["solution:top_activations"]

# %% tags=["check:top_activations"]

# %% tags=["solution:feature_logit_effects"]

# %% tags=["check:feature_logit_effects"]

# %%
activations = sae_feature_activations(model, weights, rows, hook)  # [row, pos, feature]
# Position 1, the first token after BOS, has a residual stream many times larger than other
# tokens' in this model, and many features fire hardest there, whatever the text: read
# features on the positions after it.
reading = activations.clone()
reading[:, :2] = 0
# Which features to read? Two ways to pick, both automatic.
body = activations[:, 2:].flatten(0, 1)  # [token, feature]
fires_body = body > 0
owner = corpus.document[:, 2:].flatten()  # the article each token comes from
sections = sorted({d.label for d in documents})
section_of = torch.tensor([sections.index(d.label) for d in documents])[owner]
# (1) topic features: the best F1 between "fires" and "this token is in a <section> article"
in_section = torch.stack([section_of == i for i in range(len(sections))], 1).float()  # [token, section]
both = fires_body.float().T.cpu() @ in_section  # [feature, section]
f1 = 2 * both / (fires_body.sum(0).cpu()[:, None] + in_section.sum(0)).clamp_min(1)
topic_feature = int(f1.max(1).values.argmax())
# (2) the strongest among features that fire on 0.5-5% of tokens, usually readable
frequency_here = fires_body.float().mean(0)
candidates = torch.where((frequency_here > 0.005) & (frequency_here < 0.05))[0]
peak = body.amax(0)[candidates]
chosen = [topic_feature] + [f for f in candidates[peak.argsort(descending=True)].tolist()
                            if f != topic_feature][:2]
print(f"topic feature {topic_feature}: fires most in {sections[int(f1[topic_feature].argmax())]} "
      f"articles (F1 {float(f1[topic_feature].max()):.2f})")
for feature in chosen:
    values, top_rows, positions = top_activations(reading[..., feature], 3)
    promoted = feature_logit_effects(weights, feature, model.W_U).topk(5).indices
    print(f"feature {feature}: top activation {values[0]:.2f}; promotes "
          f"{model.to_str_tokens(promoted)}")

# %% [markdown]
# The dashboard puts this evidence side by side: the activation histogram, the top contexts
# with each token shaded by the activation there, and the tokens the feature promotes and
# suppresses. It is plain HTML, so it works offline, on Colab and in this book.

# %%
for feature in chosen[:2]:
    display(feature_dashboard(model, sae, feature, rows, reading[..., feature]))

# %% [markdown]
# ## 6. Testing a feature by intervention
#
# Where a feature fires describes it; whether the model *uses* it is a different question.
# Remove it and see whether the loss moves, on the very tokens where it fires. Then push the
# other way: add its direction and see what the model does.

# %% tags=["solution:feature_ablation_loss_change"]

# %% tags=["check:feature_ablation_loss_change"]

# %% tags=["solution:steering_log_prob_change"]

# %% tags=["check:steering_log_prob_change"]

# %%
effects = {}
for feature in chosen:
    used = (activations[:, 1:-1, feature] > 0).any(1)  # only the rows where it fires
    change = feature_ablation_loss_change(model, weights, rows[used], hook, feature)  # [row, pos - 1]
    fires = activations[used, 1:-1, feature] > 0  # the predictions made at tokens where it fires
    effects[feature] = (float(change[:, 1:][fires].mean()), int(fires.sum()))
    print(f"feature {feature}: ablating it changes the loss by {effects[feature][0]:+.4f} nats "
          f"on average where it fires ({effects[feature][1]} tokens)")

# %%
feature = topic_feature
scale = 4 * float(reading[..., feature].max())  # four times its largest activation after position 1


def add_feature(activation, hook):
    out = activation.clone()
    out[:, 1:] += scale * sae.W_dec[feature]
    return out


for prompt in ["The government said on Monday that", "In the second half of the match,"]:
    print(f"{prompt!r}\n  before: {generate(model, prompt, 12)!r}"
          f"\n  steered with feature {feature}: {generate(model, prompt, 12, [(hook, add_feature)])!r}")
prompt_tokens = model.to_tokens("The government said on Monday that")
change = steering_log_prob_change(model, weights, prompt_tokens, hook, feature, scale,
                                  torch.arange(model.cfg.d_vocab, device=model.cfg.device))[0]
print("most promoted next tokens:", model.to_str_tokens(change.topk(8).indices))

# %% [markdown]
# **Description is not cause.** A feature can fire on a clean, meaningful set of contexts and
# still not matter to the model's output at that point: the model may not read it, or may
# read the same information elsewhere. Among the features above, the one whose ablation
# changes the loss least:

# %%
weakest = min(effects, key=lambda f: abs(effects[f][0]))
print(f"feature {weakest}: ablation changes the loss by {effects[weakest][0]:+.5f} nats where it "
      f"fires; its dashboard still tells a story:")
display(feature_dashboard(model, sae, weakest, rows, reading[..., weakest], k=5))

# %% [markdown]
# ## 7. Antipattern: "SAE features are ground truth"
#
# An SAE's dictionary is one solution of an optimisation problem, not a list of the model's
# features. Train two that differ only in their seed and match their features by decoder
# cosine similarity: how many have a twin? Then train a larger dictionary: features
# **split**, one broad feature of the small SAE becoming several narrower ones.

# %% tags=["solution:match_features"]

# %% tags=["check:match_features"]

# %%
def live(toy):
    """The features that fire on the toy data (the rest are dead: random directions)."""
    return (toy.encode(toy_x[:10_000]) > 0).any(0)


toy_a = runs["good (λ = 1)"][0]
toy_b, _ = toy_sae(1.0, seed=1)
toy_big, _ = toy_sae(1.0, seed=2, d_sae=256)
similarity, _ = match_features(toy_a.W_dec[live(toy_a)], toy_b.W_dec[live(toy_b)])
print(f"toy, seeds 0 and 1: {int(live(toy_a).sum())} and {int(live(toy_b).sum())} live features; "
      f"{(similarity > 0.9).float().mean():.0%} of the first's have a twin with cosine > 0.9")
truth_to_big, _ = match_features(true_directions, toy_big.W_dec[live(toy_big)])
copies = (match_features(toy_big.W_dec[live(toy_big)], true_directions)[0] > 0.9).sum()
print(f"toy, 256 features: {int(live(toy_big).sum())} live, {int(copies)} of them within cosine 0.9 "
      f"of a true feature; true features found: {(truth_to_big > 0.9).float().mean():.0%}")
twin_name = f"{sae.course_info.name}-1k-seed1"
if small is not None and twin_name in committed_saes():
    small_twin = load_sae(twin_name, model.cfg.device)
    best_cosine, _ = match_features(small.W_dec, small_twin.W_dec)
    print(f"the model's {small.cfg.d_sae:,}-feature SAE and its twin trained with seed 1: "
          f"{(best_cosine > 0.9).float().mean():.0%} of features have a twin with cosine > 0.9 "
          f"(mean best cosine {best_cosine.mean():.2f})")

# %% [markdown]
# On the toy data there is an answer key, so both questions have answers above: how many
# features two seeds share, and whether a wider dictionary finds the true features or spends
# its extra capacity elsewhere (more training helps the wider one most). On the model there
# is no key: the last line compares the course's 1,024-feature SAE with a twin trained on the
# same text with another seed (both committed). Where few features
# have a twin, a feature you read is one SAE's cut of the space, not *the* feature: check that
# another SAE finds it before building on it.
#
# **Two sizes on the model.** Give each feature of the 4,096-feature SAE a *parent*: its
# nearest feature (by decoder cosine) in the 1,024-feature SAE (the earlier recipe, on news
# alone: a news feature of the small SAE may have children, and text it never saw none). A parent
# with several close children has **split**: the larger dictionary cut its direction into
# narrower ones. Read a parent beside its children:

# %%
SPLIT_COSINE = 0.6  # a child's decoder cosine with its parent at least this
if small is None:
    print(f"no smaller SAE for {sae.course_info.name}: the course ships one for its own SAE")
else:
    to_parent, parent = match_features(sae.W_dec, small.W_dec)  # for each of the 4,096 features
    to_large, _ = match_features(small.W_dec, sae.W_dec)  # for each of the 1,024
    child = to_parent >= SPLIT_COSINE
    n_children = torch.bincount(parent[child], minlength=small.cfg.d_sae)
    print(f"{(to_large > 0.9).float().mean():.1%} of the {small.cfg.d_sae:,} features have a near "
          f"copy (cosine > 0.9) among the {sae.cfg.d_sae:,}; {child.float().mean():.0%} of the "
          f"{sae.cfg.d_sae:,} have a parent at cosine >= {SPLIT_COSINE}")
    print("parents by number of children:", {n: int((n_children == n).sum()) for n in range(5)},
          f"5 or more: {int((n_children >= 5).sum())}")
    small_reading = sae_feature_activations(model, weights_of(small), rows, hook)
    small_reading[:, :2] = 0  # read after position 1, as above
    small_fires = (small_reading > 0).flatten(0, 1)  # [token, 1,024 features]
    large_fires = (reading > 0).flatten(0, 1)  # [token, 4,096 features]

    def split_measures(parent_feature):
        """For a parent's children that fire here: the share of each child's tokens where the
        parent fires too, and the mean Jaccard overlap between the children's tokens."""
        kids = torch.where(child & (parent == parent_feature) & large_fires.any(0))[0]
        fires = large_fires[:, kids].float()  # [token, child]
        inside = (fires * small_fires[:, parent_feature, None]).sum(0) / fires.sum(0)
        shared = fires.T @ fires
        jaccard = shared / (fires.sum(0)[:, None] + fires.sum(0)[None, :] - shared)
        between = jaccard[~torch.eye(len(kids), dtype=torch.bool)]
        return kids, inside, between.mean() if len(between) else torch.tensor(1.0)

    # a split: a parent that fires here, with children that fire mostly where it does
    # (inside it) but on different tokens from each other (little overlap)
    candidates = {}
    for p in torch.where((n_children >= 2) & small_fires.any(0))[0].tolist():
        kids, inside, between = split_measures(p)
        if len(kids) >= 2 and bool((inside >= 0.5).all()):
            candidates[p] = float(inside.mean() - between)
    print(f"{len(candidates)} parents that fire on these tokens have two or more children firing "
          f"mostly inside them")
    if candidates:
        split = max(candidates, key=candidates.get)
        kids, inside, between = split_measures(split)
        order = inside.argsort(descending=True)[:3]
        print(f"parent {split}: its children fire where it fires on "
              f"{', '.join(f'{share:.0%}' for share in inside[order].tolist())} of their tokens; "
              f"mean overlap between children (Jaccard) {float(between):.2f}")
        display(contexts_table(model, rows, {
            f"parent: feature {split} of the {small.cfg.d_sae:,}-feature SAE": small_reading[..., split],
            **{f"child: feature {c} of the {sae.cfg.d_sae:,}-feature SAE (cosine {to_parent[c]:.2f})":
               reading[..., c] for c in kids[order].tolist()}}))

# %% [markdown]
# The children of such a parent fire inside it, on different tokens from each other: one
# direction of the small SAE is cut into narrower ones by the large SAE. Neither SAE is wrong: the size of the dictionary decides how finely the space is
# cut, so "the model has a feature for X" depends on a choice made when the SAE was trained.
#
# **The text it was trained on.** A third choice: the training text. An SAE fitted to one kind
# of text reconstructs it, and may not reconstruct another; its features are then a poor
# description of what the model holds there, however readable their dashboards. Measure each
# of the model's SAEs on the news rows above (held out of the main SAE's training; the
# news-only SAE trained on them) and on the plain-text docs of Python's standard library,
# which no course SAE trained on:

# %% mystnb={"image": {"alt": "Grouped bars of variance explained and CE loss recovered for the model's SAEs on news and on Python documentation none of them trained on: the news-only SAE drops far more on the documentation."}}
other_rows = held_out_rows(model.tokenizer, PYTHON_DOCS, min(N_ROWS, 32)).to(model.cfg.device)
measured_saes = {f"{sae.course_info.name} ({sae.cfg.d_sae:,} features)": sae}
if small is not None:
    measured_saes[f"{small.course_info.name} (trained on news alone)"] = small
shift, first = {}, {}  # the clean and zeroed losses, measured once per text
for name, candidate in measured_saes.items():
    shift[name] = {}
    for text, text_rows in [("news", rows), ("Python docs", other_rows)]:
        shift[name][text] = evaluate_sae(model, candidate, text_rows, progress=False, baseline=first.get(text))
        first.setdefault(text, shift[name][text])
fig, axes = plt.subplots(1, 2, figsize=(12, 3.6))
for ax, key, title in [(axes[0], "variance_explained", "variance explained"),
                       (axes[1], "ce_loss_recovered", "CE loss recovered")]:
    for i, (name, by_text) in enumerate(shift.items()):
        ax.bar([j + 0.4 * i for j in range(2)], [m[key] for m in by_text.values()], width=0.4, label=name)
    ax.set_xticks([0.2, 1.2], list(next(iter(shift.values()))))
    ax.set_ylim(min(0, *(m[key] for b in shift.values() for m in b.values())), 1)
    ax.set_title(title)
axes[0].legend(fontsize=8)
plt.tight_layout()
plt.show()
for name, by_text in shift.items():
    print(name + ": " + "; ".join(f"{text} variance explained {m['variance_explained']:.2f}, CE loss "
                                  f"recovered {m['ce_loss_recovered']:.2f}" for text, m in by_text.items()))

# %% [markdown]
# A feature read on text its SAE does not reconstruct is a description of the reconstruction,
# not of the model: before reading features on a new kind of text, measure the SAE there.
#
# ## 8. Labelling features
#
# Reading dashboards by hand does not scale to thousands of features. Automatic labelling
# (Bills et al. 2023) has a language model write a label from the top contexts; a second step
# *scores* the label by how well it predicts where the feature fires on other text. Here the
# corpus comes with a cheap source of candidate labels, each article's section, so every
# feature can be scored against "fires in sport articles", "fires in politics articles"...

# %% tags=["solution:label_score"]

# %% tags=["check:label_score"]

# %%
labels = {f"{name} articles": section_of == i for i, name in enumerate(sections)}
for feature in chosen:
    fires = fires_body[:, feature].cpu()
    name, (precision, recall, f1) = best_label(fires, labels, label_score)
    print(f"feature {feature}: best section label {name!r}: precision {precision:.2f}, "
          f"recall {recall:.2f}, F1 {f1:.2f}")

# %% [markdown]
# Section labels are coarse: the topic feature was picked for scoring well against one, and
# token-level features score low against all of them, which is itself informative. To write richer labels, plug in a
# language model you can reach (online). `LLMLabeller` builds the prompt from top contexts;
# give it any function that sends a prompt and returns the reply, then score its label with
# `label_score` on held-out tokens:
#
# ```python
# labeller = LLMLabeller(lambda prompt: my_client.complete(prompt))  # your provider's call
# label = labeller(["... the [[match]] ended ...", "... in the [[second]] half ..."])
# ```

# %%
contexts = []
values, top_rows, positions = top_activations(reading[..., chosen[0]], 5)
for row, position in zip(top_rows.tolist(), positions.tolist()):
    text = model.to_str_tokens(rows[row, max(1, position - 10):position + 1])
    contexts.append("".join(text[:-1]) + f"[[{text[-1]}]]")
print("what a labeller is shown:", *contexts, sep="\n  ")
