"""Chapter 4, "Sparse autoencoders": reference solutions, known mistakes, exercise list.

Activations are [batch, d_in] rows (tokens flattened), features [batch, d_sae]. An SAE is
given as its weights (`readheads.sae.SAEWeights`: W_enc [d_in, d_sae], b_enc [d_sae],
W_dec [d_sae, d_in], b_dec [d_in]); a loaded `SparseAutoencoder` has the same attributes.
The model exercises get small SAEs (a few dozen features) drawn for the case, so their
references depend on the model and the case, not on a trained SAE.
"""

import torch

from autograder.authoring.spec import Exercise, Mistake
from readheads.harvest import activations_at
from readheads.sae import SAEWeights
from readheads.sae_eval import splice_hook

PURE_TOL = dict(atol=1e-5, rtol=1e-4)
STEP_TOL = dict(atol=1e-4, rtol=1e-3)  # one optimisation step: sums over thousands of terms
MODEL_TOL = dict(atol=1e-3, rtol=1e-3)
EXERCISES: list[Exercise] = []


def _randint(generator, low, high) -> int:
    return int(torch.randint(low, high, (1,), generator=generator))


def _randn(generator, *shape):
    return torch.randn(*shape, generator=generator)


def _unit_rows(matrix):
    return matrix / matrix.norm(dim=1, keepdim=True)


def _sparse(generator, batch, n, probability=0.2):
    """Non-negative sparse activations: each entry nonzero with `probability`."""
    on = torch.rand(batch, n, generator=generator) < probability
    return torch.rand(batch, n, generator=generator) * on


def _random_sae(generator, d_in, d_sae, scale=1.0):
    """Random weights with unit decoder rows and an encoder that lets about half fire."""
    W_dec = _unit_rows(_randn(generator, d_sae, d_in))
    return SAEWeights(W_dec.T * scale + 0.1 * _randn(generator, d_in, d_sae),
                      0.1 * _randn(generator, d_sae), W_dec, 0.5 * _randn(generator, d_in))


# --- Section 1: superposition in miniature -----------------------------------------------


def toy_model_forward(features: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The toy model of superposition: squeeze n features into d_hidden < n dimensions and
    read them back out.

    features: [batch, n_features], W: [d_hidden, n_features], b: [n_features].
    hidden = features @ W.T ([batch, d_hidden]); output = ReLU(hidden @ W + b).
    """
    ### BEGIN SOLUTION
    hidden = features @ W.T
    return torch.relu(hidden @ W + b)
    ### END SOLUTION


def _toy_no_relu(features, W, b):
    return features @ W.T @ W + b


def _toy_no_bias(features, W, b):
    return torch.relu(features @ W.T @ W)


def _toy_cases(generator):
    cases = []
    for batch, n, d in [(8, 5, 2), (_randint(generator, 5, 12), _randint(generator, 6, 20), 3),
                        (_randint(generator, 5, 12), _randint(generator, 20, 40), 7)]:
        cases.append(dict(features=_sparse(generator, batch, n), W=_randn(generator, d, n),
                          b=_randn(generator, n) - 0.5))
    return cases


EXERCISES.append(Exercise(
    toy_model_forward, ("batch", "feature"), _toy_cases,
    "sparse non-negative features; W, b: seeded normal", **PURE_TOL, mistakes=(
        Mistake("no_relu", "left out the ReLU: output = ReLU(hidden @ W + b)", _toy_no_relu),
        Mistake("no_bias", "left out the bias b", _toy_no_bias),
    )))


def mean_max_cosine_similarity(learned: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """How well learned directions recover true ones: for each true feature (row of `true`,
    [n_true, d]), the largest cosine similarity with any learned direction (row of `learned`,
    [n_learned, d]); the mean of those over the true features. A scalar; 1 means every true
    feature has an exact copy among the learned ones."""
    ### BEGIN SOLUTION
    true = true / true.norm(dim=1, keepdim=True)
    learned = learned / learned.norm(dim=1, keepdim=True)
    similarity = true @ learned.T  # [n_true, n_learned]
    return similarity.max(dim=1).values.mean()
    ### END SOLUTION


def _mmcs_unnormalised(learned, true):
    return (true @ learned.T).max(dim=1).values.mean()


def _mmcs_wrong_axis(learned, true):
    return (_unit_rows(true) @ _unit_rows(learned).T).max(dim=0).values.mean()


def _mmcs_cases(generator):
    cases = []
    for n_learned, n_true, d in [(6, 4, 3), (_randint(generator, 8, 16), _randint(generator, 3, 7), 5),
                                 (_randint(generator, 10, 30), _randint(generator, 4, 9), 8)]:
        cases.append(dict(learned=_randn(generator, n_learned, d) * 3,
                          true=_randn(generator, n_true, d) * 2))
    return cases


EXERCISES.append(Exercise(
    mean_max_cosine_similarity, (), _mmcs_cases, "seeded normal directions of various norms",
    **PURE_TOL, mistakes=(
        Mistake("unnormalised", "compared dot products, not cosines: normalise each row to unit "
                "length first", _mmcs_unnormalised),
        Mistake("wrong_axis", "took, for each learned direction, its best true feature; the "
                "question is, for each true feature, its best learned direction", _mmcs_wrong_axis),
    )))


# --- Section 2: the SAE ------------------------------------------------------------------


def sae_encode(x: torch.Tensor, sae: SAEWeights) -> torch.Tensor:
    """Feature activations of a standard (ReLU) SAE: ReLU((x - b_dec) @ W_enc + b_enc).

    x: [batch, d_in]. Returns [batch, d_sae].
    """
    ### BEGIN SOLUTION
    return torch.relu((x - sae.b_dec) @ sae.W_enc + sae.b_enc)
    ### END SOLUTION


def _encode_no_pre_bias(x, sae):
    return torch.relu(x @ sae.W_enc + sae.b_enc)


def _encode_no_relu(x, sae):
    return (x - sae.b_dec) @ sae.W_enc + sae.b_enc


def _sae_cases(generator, make_x=None):
    cases = []
    for batch, d_in, d_sae in [(6, 4, 10), (_randint(generator, 5, 12), _randint(generator, 4, 9), 24),
                               (_randint(generator, 5, 12), 16, _randint(generator, 30, 60))]:
        sae = _random_sae(generator, d_in, d_sae)
        cases.append(dict(x=_randn(generator, batch, d_in) + sae.b_dec, sae=sae))
    return cases


EXERCISES.append(Exercise(
    sae_encode, ("batch", "feature"), _sae_cases, "x: seeded normal; sae: random weights",
    **PURE_TOL, mistakes=(
        Mistake("no_pre_bias", "did not subtract b_dec from x before encoding (the decoder bias "
                "is the activations' centre; the encoder reads x - b_dec)", _encode_no_pre_bias),
        Mistake("no_relu", "left out the ReLU: feature activations are never negative",
                _encode_no_relu),
    )))


def topk_activation(pre: torch.Tensor, k: int) -> torch.Tensor:
    """The TopK SAE's activation: in each row of pre-activations [batch, d_sae], keep the k
    largest values, passed through a ReLU, and set every other entry to 0."""
    ### BEGIN SOLUTION
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, torch.relu(values))
    ### END SOLUTION


def _topk_over_batch(pre, k):
    values, indices = pre.topk(min(k, pre.shape[0]), dim=0)
    return torch.zeros_like(pre).scatter(0, indices, torch.relu(values))


def _topk_no_relu(pre, k):
    values, indices = pre.topk(k, dim=-1)
    return torch.zeros_like(pre).scatter(-1, indices, values)


def _topk_cases(generator):
    cases = []
    for batch, d_sae, k in [(5, 12, 3), (_randint(generator, 6, 12), _randint(generator, 20, 40), 8),
                            (_randint(generator, 3, 6), _randint(generator, 10, 16), 9)]:
        cases.append(dict(pre=_randn(generator, batch, d_sae) - 0.5, k=k))
    return cases


EXERCISES.append(Exercise(
    topk_activation, ("batch", "feature"), _topk_cases,
    "pre: seeded normal, mostly negative; k up to most of d_sae", **PURE_TOL, mistakes=(
        Mistake("topk_over_batch", "took the top k over the batch dimension; each token keeps "
                "its own k largest features (dim=-1)", _topk_over_batch),
        Mistake("no_relu", "kept negative values among the top k: apply a ReLU to them",
                _topk_no_relu),
    ), equivalent_mutants={
        "values, indices = pre.topk(k)": "topk's default dim is -1, the feature dimension",
    }))


def sae_loss(x: torch.Tensor, features: torch.Tensor, x_hat: torch.Tensor, W_dec: torch.Tensor,
             l1_coefficient: float):
    """The training loss of a standard SAE and its parts.

    mse: squared error summed over d_in, averaged over the batch: (x_hat - x)² .sum(-1).mean().
    l1: each feature's activation weighted by the norm of its decoder row, summed over
    features, averaged over the batch (so shrinking activations while growing decoder rows
    does not cheat the penalty). loss = mse + l1_coefficient * l1.
    Returns (mse, l1, loss), three scalars.
    """
    ### BEGIN SOLUTION
    mse = (x_hat - x).pow(2).sum(-1).mean()
    l1 = (features * W_dec.norm(dim=1)).sum(-1).mean()
    return mse, l1, mse + l1_coefficient * l1
    ### END SOLUTION


def _loss_unweighted_l1(x, features, x_hat, W_dec, l1_coefficient):
    mse = (x_hat - x).pow(2).sum(-1).mean()
    l1 = features.sum(-1).mean()
    return mse, l1, mse + l1_coefficient * l1


def _loss_mse_mean_over_all(x, features, x_hat, W_dec, l1_coefficient):
    mse = (x_hat - x).pow(2).mean()
    l1 = (features * W_dec.norm(dim=1)).sum(-1).mean()
    return mse, l1, mse + l1_coefficient * l1


def _loss_cases(generator):
    cases = []
    for batch, d_in, d_sae in [(6, 4, 10), (_randint(generator, 5, 12), _randint(generator, 4, 9), 24),
                               (_randint(generator, 5, 12), 16, _randint(generator, 30, 60))]:
        cases.append(dict(x=_randn(generator, batch, d_in), features=_sparse(generator, batch, d_sae),
                          x_hat=_randn(generator, batch, d_in),
                          W_dec=_randn(generator, d_sae, d_in) * (0.5 + torch.rand(d_sae, 1, generator=generator)),
                          l1_coefficient=round(float(torch.rand(1, generator=generator)) * 3 + 0.1, 3)))
    return cases


EXERCISES.append(Exercise(
    sae_loss, {"mse": (), "l1": (), "loss": ()}, _loss_cases,
    "seeded x, x_hat, sparse features, decoder rows of various norms", **PURE_TOL,
    answered_by=("readheads.sae_training.sae_losses",), mistakes=(
        Mistake("l1_unweighted", "did not weight each feature's L1 by its decoder row's norm "
                "(W_dec.norm(dim=1))", _loss_unweighted_l1),
        Mistake("mse_mean_over_all", "averaged the squared error over d_in too; sum over d_in, "
                "average over the batch", _loss_mse_mean_over_all),
    )))


def normalize_decoder_rows(W_dec: torch.Tensor) -> torch.Tensor:
    """W_dec [d_sae, d_in] with every row (a feature's direction) scaled to unit norm."""
    ### BEGIN SOLUTION
    return W_dec / W_dec.norm(dim=1, keepdim=True)
    ### END SOLUTION


def _normalize_columns(W_dec):
    return W_dec / W_dec.norm(dim=0, keepdim=True)


def _decoder_cases(generator):
    return [dict(W_dec=_randn(generator, d_sae, d_in) * 3)
            for d_sae, d_in in [(8, 4), (_randint(generator, 10, 30), _randint(generator, 3, 9)),
                                (_randint(generator, 10, 30), 12)]]


EXERCISES.append(Exercise(
    normalize_decoder_rows, ("feature", "d_in"), _decoder_cases, "seeded normal W_dec",
    **PURE_TOL, mistakes=(
        Mistake("columns", "normalised the columns; each feature's direction is a row of W_dec "
                "[d_sae, d_in] (norm over dim=1)", _normalize_columns),
    )))


def project_decoder_gradient(W_dec: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient of W_dec without its component along each row.

    With decoder rows held at unit norm, the part of a row's gradient parallel to the row
    would only change its norm, which renormalising undoes; Adam would still count it. For
    each row r of W_dec (not necessarily unit norm: use its direction u = r / |r|) remove
    (grad_row · u) u from that row's gradient. W_dec, grad: [d_sae, d_in].
    """
    ### BEGIN SOLUTION
    unit = W_dec / W_dec.norm(dim=1, keepdim=True)
    return grad - (grad * unit).sum(dim=1, keepdim=True) * unit
    ### END SOLUTION


def _project_unnormalised(W_dec, grad):
    return grad - (grad * W_dec).sum(dim=1, keepdim=True) * W_dec


def _project_columns(W_dec, grad):
    unit = W_dec / W_dec.norm(dim=0, keepdim=True)
    return grad - (grad * unit).sum(dim=0, keepdim=True) * unit


def _gradient_cases(generator):
    return [dict(W_dec=_randn(generator, d_sae, d_in) * 2, grad=_randn(generator, d_sae, d_in))
            for d_sae, d_in in [(8, 4), (_randint(generator, 10, 30), _randint(generator, 3, 9)),
                                (_randint(generator, 10, 30), 12)]]


EXERCISES.append(Exercise(
    project_decoder_gradient, ("feature", "d_in"), _gradient_cases,
    "seeded normal W_dec (rows not unit norm) and grad", **PURE_TOL,
    answered_by=("readheads.sae_training.project_out_parallel_gradient",), mistakes=(
        Mistake("unnormalised", "projected on the rows without normalising them first",
                _project_unnormalised),
        Mistake("columns", "projected on the columns; each feature's direction is a row",
                _project_columns),
    )))


def sae_training_step(x: torch.Tensor, sae: SAEWeights, l1_coefficient: float, lr: float):
    """One step of plain gradient descent on `sae_loss`, keeping decoder rows at unit norm.

    Encode with `sae_encode`, decode with x_hat = features @ W_dec + b_dec, take the loss of
    `sae_loss`, and its gradients with autograd (checks run under torch.no_grad(): wrap your
    computation in ``with torch.enable_grad():`` and work on copies made with
    ``.clone().requires_grad_()``). Project W_dec's gradient with `project_decoder_gradient`,
    update every weight by w - lr * grad, then `normalize_decoder_rows`.
    Returns the new (W_enc, b_enc, W_dec, b_dec); leave the inputs unchanged.
    """
    ### BEGIN SOLUTION
    with torch.enable_grad():
        weights = [w.detach().clone().requires_grad_() for w in sae]
        W_enc, b_enc, W_dec, b_dec = weights
        features = sae_encode(x, SAEWeights(W_enc, b_enc, W_dec, b_dec))
        x_hat = features @ W_dec + b_dec
        _, _, loss = sae_loss(x, features, x_hat, W_dec, l1_coefficient)
        grads = torch.autograd.grad(loss, weights)
    g_enc, g_b_enc, g_dec, g_b_dec = grads
    g_dec = project_decoder_gradient(W_dec.detach(), g_dec)
    new_W_dec = normalize_decoder_rows(W_dec.detach() - lr * g_dec)
    return (W_enc.detach() - lr * g_enc, b_enc.detach() - lr * g_b_enc, new_W_dec,
            b_dec.detach() - lr * g_b_dec)
    ### END SOLUTION


def _step_variant(x, sae, l1_coefficient, lr, project=True, renormalize=True, weighted=True):
    with torch.enable_grad():
        weights = [w.detach().clone().requires_grad_() for w in sae]
        W_enc, b_enc, W_dec, b_dec = weights
        features = torch.relu((x - b_dec) @ W_enc + b_enc)
        mse = (features @ W_dec + b_dec - x).pow(2).sum(-1).mean()
        norms = W_dec.norm(dim=1) if weighted else 1.0
        loss = mse + l1_coefficient * (features * norms).sum(-1).mean()
        g_enc, g_b_enc, g_dec, g_b_dec = torch.autograd.grad(loss, weights)
    if project:
        g_dec = project_decoder_gradient(W_dec.detach(), g_dec)
    new_W_dec = W_dec.detach() - lr * g_dec
    if renormalize:
        new_W_dec = normalize_decoder_rows(new_W_dec)
    return (W_enc.detach() - lr * g_enc, b_enc.detach() - lr * g_b_enc, new_W_dec,
            b_dec.detach() - lr * g_b_dec)


def _step_no_projection(x, sae, l1_coefficient, lr):
    return _step_variant(x, sae, l1_coefficient, lr, project=False)


def _step_no_renormalize(x, sae, l1_coefficient, lr):
    return _step_variant(x, sae, l1_coefficient, lr, renormalize=False)


def _step_unweighted(x, sae, l1_coefficient, lr):
    return _step_variant(x, sae, l1_coefficient, lr, weighted=False)


def _step_cases(generator):
    cases = []
    for case in _sae_cases(generator):
        sae = case["sae"]  # decoder rows of uneven norms, as in an SAE trained without the constraint
        norms = 0.5 + torch.rand(sae.W_dec.shape[0], 1, generator=generator)
        case["sae"] = sae._replace(W_dec=sae.W_dec * norms)
        cases.append(dict(case, l1_coefficient=round(float(torch.rand(1, generator=generator)) + 0.2, 3),
                          lr=round(float(torch.rand(1, generator=generator)) * 0.1 + 0.05, 3)))
    return cases


EXERCISES.append(Exercise(
    sae_training_step, {"W_enc": ("d_in", "feature"), "b_enc": ("feature",),
                        "W_dec": ("feature", "d_in"), "b_dec": ("d_in",)},
    _step_cases, "x: seeded normal; sae: random weights, decoder rows of uneven norms; lr 0.05-0.15",
    **STEP_TOL, mistakes=(
        Mistake("no_projection", "did not project W_dec's gradient (project_decoder_gradient) "
                "before the update", _step_no_projection),
        Mistake("no_renormalize", "did not renormalise the decoder rows after the update",
                _step_no_renormalize),
        Mistake("l1_unweighted", "the L1 penalty is not weighted by the decoder rows' norms "
                "(use sae_loss)", _step_unweighted),
    )))


# --- Section 3: the training loop --------------------------------------------------------


def training_schedule(steps: torch.Tensor, total_steps: int, lr: float, l1_coefficient: float,
                      l1_warmup_steps: int, lr_decay_steps: int):
    """The learning rate and L1 coefficient at each step in `steps` (int64 [n], counted from 0;
    runs are at most 2**24 steps long, so every step count is exact in float32).

    The L1 coefficient warms up linearly: l1_coefficient * min(1, (step + 1) / l1_warmup_steps)
    (a penalty at full strength from the first step kills features before they find data).
    The learning rate is constant, then falls linearly to 0 over the last lr_decay_steps:
    lr * min(1, (total_steps - step) / lr_decay_steps). Returns (lr [n], l1 [n]), float32.
    """
    ### BEGIN SOLUTION
    steps = steps.float()
    l1 = l1_coefficient * torch.clamp((steps + 1) / l1_warmup_steps, max=1.0)
    rate = lr * torch.clamp((total_steps - steps) / lr_decay_steps, max=1.0)
    return rate, l1
    ### END SOLUTION


def _schedule_decay_from_start(steps, total_steps, lr, l1_coefficient, l1_warmup_steps, lr_decay_steps):
    _, l1 = training_schedule(steps, total_steps, lr, l1_coefficient, l1_warmup_steps, lr_decay_steps)
    return lr * (total_steps - steps.float()) / total_steps, l1


def _schedule_no_warmup(steps, total_steps, lr, l1_coefficient, l1_warmup_steps, lr_decay_steps):
    rate, _ = training_schedule(steps, total_steps, lr, l1_coefficient, l1_warmup_steps, lr_decay_steps)
    return rate, torch.full_like(rate, l1_coefficient)


def _schedule_cases(generator):
    cases = []
    for total in (100, _randint(generator, 200, 1000), _randint(generator, 1000, 5000)):
        cases.append(dict(steps=torch.randint(0, total, (_randint(generator, 8, 20),), generator=generator),
                          total_steps=total, lr=round(float(torch.rand(1, generator=generator)) * 1e-3, 6),
                          l1_coefficient=round(float(torch.rand(1, generator=generator)) * 5 + 1, 3),
                          l1_warmup_steps=max(1, total // _randint(generator, 5, 20)),
                          lr_decay_steps=max(1, total // _randint(generator, 3, 6))))
    cases[0]["steps"] = torch.tensor([0, 1, 4, 5, 10, 50, 79, 80, 90, 99])
    cases[0].update(l1_warmup_steps=5, lr_decay_steps=20)
    return cases


EXERCISES.append(Exercise(
    training_schedule, {"lr": ("step",), "l1": ("step",)}, _schedule_cases,
    "random steps of runs of 100 to 5000 steps, seeded rates and lengths", **PURE_TOL, mistakes=(
        Mistake("decay_from_start", "decayed the learning rate over the whole run; it stays "
                "constant until the last lr_decay_steps", _schedule_decay_from_start),
        Mistake("no_warmup", "used the full L1 coefficient from the first step; it rises "
                "linearly over l1_warmup_steps", _schedule_no_warmup),
    ), equivalent_mutants={
        "deleted: steps = steps.float()": "int64 / int already gives float32, and with runs of "
        "at most 2**24 steps (docstring) step + 1 and total_steps - step are exact either way",
    }))


def tokens_since_fired(previous: torch.Tensor, features: torch.Tensor) -> torch.Tensor:
    """Update each feature's count of tokens since it last fired, after a batch.

    previous: int64 [d_sae], the counts before this batch; features: [batch, d_sae]. A feature
    that fired (> 0) on any token of the batch goes back to 0; the others add the batch's
    token count. A feature is *dead* once its count passes a threshold of many batches: one
    batch is too few tokens to call a rare feature dead. Returns int64 [d_sae].
    """
    ### BEGIN SOLUTION
    fired = (features > 0).any(dim=0)
    return torch.where(fired, torch.zeros_like(previous), previous + features.shape[0])
    ### END SOLUTION


def _since_fired_one_batch(previous, features):
    fired = (features > 0).any(dim=0)
    return torch.where(fired, 0, features.shape[0]).to(previous.dtype)


def _since_fired_steps(previous, features):
    fired = (features > 0).any(dim=0)
    return torch.where(fired, torch.zeros_like(previous), previous + 1)


def _since_fired_cases(generator):
    cases = []
    for batch, d_sae in [(6, 10), (_randint(generator, 5, 40), _randint(generator, 10, 40)),
                         (_randint(generator, 5, 40), _randint(generator, 10, 40))]:
        cases.append(dict(previous=torch.randint(0, 500, (d_sae,), generator=generator),
                          features=_sparse(generator, batch, d_sae, probability=0.03)))
    return cases


EXERCISES.append(Exercise(
    tokens_since_fired, ("feature",), _since_fired_cases,
    "previous counts: seeded ints; features: very sparse", atol=0, rtol=0, mistakes=(
        Mistake("one_batch", "counted only this batch: add the batch's tokens to `previous`",
                _since_fired_one_batch),
        Mistake("steps_not_tokens", "counted batches, not tokens: add features.shape[0]",
                _since_fired_steps),
    )))


def resample_dead_features(x: torch.Tensor, x_hat: torch.Tensor, sae: SAEWeights,
                           dead: torch.Tensor, seed: int):
    """Give dead features a second life, pointed at what the SAE reconstructs worst.

    dead: bool [d_sae]. Draw one input per dead feature (in order of their indices), with
    replacement, with probability proportional to its squared reconstruction error
    |x - x_hat|², drawn on the CPU so that every device draws the same inputs:
    ``torch.multinomial(errors.cpu(), n_dead, replacement=True,
    generator=torch.Generator().manual_seed(seed))``. For a dead feature given input x_i:
    its decoder row becomes (x_i - b_dec) normalised to unit length; its encoder column the
    same direction times 0.2 × the mean norm of the live features' encoder columns; its
    encoder bias 0. Live features are unchanged. Returns new (W_enc, b_enc, W_dec).
    """
    ### BEGIN SOLUTION
    errors = (x - x_hat).pow(2).sum(-1)
    chosen = torch.multinomial(errors.cpu(), int(dead.sum()), replacement=True,
                               generator=torch.Generator().manual_seed(seed)).to(x.device)
    directions = x[chosen] - sae.b_dec
    directions = directions / directions.norm(dim=1, keepdim=True)
    scale = 0.2 * sae.W_enc[:, ~dead].norm(dim=0).mean()
    W_enc, b_enc, W_dec = sae.W_enc.clone(), sae.b_enc.clone(), sae.W_dec.clone()
    W_dec[dead] = directions
    W_enc[:, dead] = directions.T * scale
    b_enc[dead] = 0.0
    return W_enc, b_enc, W_dec
    ### END SOLUTION


def _resample_variant(x, x_hat, sae, dead, seed, uniform=False, centre=True, scale_by=0.2):
    errors = torch.ones(len(x)) if uniform else (x - x_hat).pow(2).sum(-1).cpu()
    chosen = torch.multinomial(errors, int(dead.sum()), replacement=True,
                               generator=torch.Generator().manual_seed(seed)).to(x.device)
    directions = x[chosen] - (sae.b_dec if centre else 0)
    directions = directions / directions.norm(dim=1, keepdim=True)
    scale = scale_by * sae.W_enc[:, ~dead].norm(dim=0).mean()
    W_enc, b_enc, W_dec = sae.W_enc.clone(), sae.b_enc.clone(), sae.W_dec.clone()
    W_dec[dead] = directions
    W_enc[:, dead] = directions.T * scale
    b_enc[dead] = 0.0
    return W_enc, b_enc, W_dec


def _resample_uniform(x, x_hat, sae, dead, seed):
    return _resample_variant(x, x_hat, sae, dead, seed, uniform=True)


def _resample_not_centred(x, x_hat, sae, dead, seed):
    return _resample_variant(x, x_hat, sae, dead, seed, centre=False)


def _resample_full_scale(x, x_hat, sae, dead, seed):
    return _resample_variant(x, x_hat, sae, dead, seed, scale_by=1.0)


def _resample_cases(generator):
    cases = []
    for case in _sae_cases(generator):
        batch, d_sae = case["x"].shape[0], case["sae"].b_enc.shape[0]
        errors = torch.rand(batch, generator=generator) ** 4  # a few inputs carry most error
        x_hat = case["x"] + _unit_rows(_randn(generator, batch, case["x"].shape[1])) * errors[:, None] * 3
        dead = torch.rand(d_sae, generator=generator) < 0.3
        dead[0], dead[1] = True, False
        cases.append(dict(case, x_hat=x_hat, dead=dead, seed=_randint(generator, 0, 10_000)))
    return cases


EXERCISES.append(Exercise(
    resample_dead_features, {"W_enc": ("d_in", "feature"), "b_enc": ("feature",),
                             "W_dec": ("feature", "d_in")},
    _resample_cases, "random SAE weights, reconstructions with uneven errors, ~30% dead",
    **PURE_TOL, answered_by=("readheads.sae_training.resample_dead",), mistakes=(
        Mistake("uniform", "drew the inputs uniformly; draw them with probability proportional "
                "to their squared reconstruction error", _resample_uniform),
        Mistake("not_centred", "used x_i itself; the decoder row points along x_i - b_dec",
                _resample_not_centred),
        Mistake("full_scale", "gave the new encoder columns the live features' full mean norm; "
                "use 0.2 × that, so new features start small", _resample_full_scale),
    ), equivalent_mutants={
        "errors = (x - x_hat).pow(2).mean(-1)": "the mean is the sum / d_in and multinomial "
        "normalises its weights: a draw could change only by rounding at a CDF boundary (none "
        "of 300k draws tried did)",
    }))


# --- Section 4: measuring an SAE ---------------------------------------------------------


def reconstruction_metrics(x: torch.Tensor, x_hat: torch.Tensor, features: torch.Tensor):
    """Sparsity and reconstruction quality on a batch of activations x [batch, d_in].

    l0: the mean number of active (> 0) features per token.
    mse: squared error summed over d_in, averaged over tokens.
    variance_explained: 1 - Σ|x - x_hat|² / Σ|x - mean(x)|², sums over tokens and d_in,
    mean(x) the mean activation over the batch. Returns (l0, mse, variance_explained).
    """
    ### BEGIN SOLUTION
    l0 = (features > 0).sum(-1).float().mean()
    squared_error = (x - x_hat).pow(2).sum(-1)
    variance = (x - x.mean(0)).pow(2).sum()
    return l0, squared_error.mean(), 1 - squared_error.sum() / variance
    ### END SOLUTION


def _metrics_not_centred(x, x_hat, features):
    l0, mse, _ = reconstruction_metrics(x, x_hat, features)
    return l0, mse, 1 - (x - x_hat).pow(2).sum() / x.pow(2).sum()


def _metrics_per_dimension(x, x_hat, features):
    l0, mse, _ = reconstruction_metrics(x, x_hat, features)
    per_dim = 1 - (x - x_hat).pow(2).sum(0) / (x - x.mean(0)).pow(2).sum(0)
    return l0, mse, per_dim.mean()


def _metrics_cases(generator):
    cases = []
    for batch, d_in, d_sae in [(16, 6, 20), (_randint(generator, 20, 60), _randint(generator, 4, 12), 30),
                               (_randint(generator, 20, 60), 16, _randint(generator, 20, 80))]:
        x = _randn(generator, batch, d_in) * (1 + 3 * torch.rand(d_in, generator=generator)) + 2
        cases.append(dict(x=x, x_hat=x + 0.5 * _randn(generator, batch, d_in),
                          features=_sparse(generator, batch, d_sae, probability=0.1)))
    return cases


EXERCISES.append(Exercise(
    reconstruction_metrics, {"l0": (), "mse": (), "variance_explained": ()}, _metrics_cases,
    "activations with an offset and uneven variances, noisy reconstructions, sparse features",
    **PURE_TOL, mistakes=(
        Mistake("not_centred", "divided by Σ|x|², not the variance Σ|x - mean(x)|²: an offset "
                "in x then looks explained", _metrics_not_centred),
        Mistake("per_dimension", "averaged a per-dimension fraction; pool the errors and the "
                "variances over all dimensions first", _metrics_per_dimension),
    )))


def ce_loss_recovered(ce_clean: torch.Tensor, ce_with_sae: torch.Tensor,
                      ce_zero_ablation: torch.Tensor) -> torch.Tensor:
    """The share of the loss the SAE keeps when spliced in, compared with deleting the
    activation: (CE_zero - CE_sae) / (CE_zero - CE_clean). Scalars in, a scalar out: 1 for a
    perfect SAE, 0 for one no better than zero-ablation."""
    ### BEGIN SOLUTION
    return (ce_zero_ablation - ce_with_sae) / (ce_zero_ablation - ce_clean)
    ### END SOLUTION


def _recovered_inverted(ce_clean, ce_with_sae, ce_zero_ablation):
    return (ce_with_sae - ce_clean) / (ce_zero_ablation - ce_clean)


def _recovered_cases(generator):
    cases = []
    for _ in range(3):
        clean = 2 + torch.rand((), generator=generator) * 2
        zero = clean + 1 + torch.rand((), generator=generator) * 6
        cases.append(dict(ce_clean=clean, ce_with_sae=clean + (zero - clean) * torch.rand((), generator=generator) * 0.6,
                          ce_zero_ablation=zero))
    return cases


EXERCISES.append(Exercise(
    ce_loss_recovered, (), _recovered_cases, "seeded losses, clean < with SAE < zero-ablated",
    **PURE_TOL, mistakes=(
        Mistake("inverted", "computed the fraction lost, (CE_sae - CE_clean) / (CE_zero - "
                "CE_clean); recovered is 1 minus that", _recovered_inverted),
    )))


def feature_density(features: torch.Tensor, dense_above: float):
    """How often each feature fires over many tokens, and the dead and dense fractions.

    features: [tokens, d_sae]. frequency: the fraction of tokens on which each feature is > 0
    ([d_sae]). dead_fraction: the fraction of features that never fire; dense_fraction: the
    fraction that fire on more than `dense_above` of the tokens. Returns (frequency,
    dead_fraction, dense_fraction).
    """
    ### BEGIN SOLUTION
    frequency = (features > 0).float().mean(0)
    return frequency, (frequency == 0).float().mean(), (frequency > dense_above).float().mean()
    ### END SOLUTION


def _density_from_values(features, dense_above):
    frequency = features.mean(0)
    return frequency, (frequency == 0).float().mean(), (frequency > dense_above).float().mean()


def _density_cases(generator):
    cases = []
    for tokens, d_sae in [(50, 12), (_randint(generator, 40, 200), _randint(generator, 10, 40)),
                          (_randint(generator, 40, 200), _randint(generator, 10, 40))]:
        rates = torch.rand(d_sae, generator=generator) ** 3
        rates[torch.rand(d_sae, generator=generator) < 0.25] = 0.0
        on = torch.rand(tokens, d_sae, generator=generator) < rates
        cases.append(dict(features=on * (0.5 + 3 * torch.rand(tokens, d_sae, generator=generator)),
                          dense_above=round(float(torch.rand(1, generator=generator)) * 0.3 + 0.05, 3)))
    # Features that fire on exactly `dense_above` of the tokens are not dense ("more than"):
    # 64 tokens and a limit of 16/64, so every way of computing the frequency is exact.
    counts = torch.tensor([0, 16, 16, 17, 15, 64, 1, 0])
    on = torch.stack([torch.randperm(64, generator=generator) < count for count in counts], 1)
    cases.append(dict(features=on * (0.5 + 3 * torch.rand(64, len(counts), generator=generator)),
                      dense_above=0.25))
    return cases


EXERCISES.append(Exercise(
    feature_density, {"frequency": ("feature",), "dead_fraction": (), "dense_fraction": ()},
    _density_cases, "sparse features with seeded firing rates, some never firing (hidden: features "
    "firing on exactly dense_above of the tokens)",
    **PURE_TOL, mistakes=(
        Mistake("from_values", "averaged activation values; a feature's frequency is the "
                "fraction of tokens where it is > 0", _density_from_values),
    )))


# --- Section 5: reading a feature --------------------------------------------------------


def top_activations(activations: torch.Tensor, k: int):
    """Where a feature fires most: its k largest activations over a batch of rows.

    activations: [row, pos], one feature's activation at every token; position 0 (BOS) is
    not a real context and must be skipped. Returns (values [k], rows [k], positions [k]),
    largest first, rows and positions int64.
    """
    ### BEGIN SOLUTION
    body = activations[:, 1:]
    values, flat = body.flatten().topk(k)
    return values, flat // body.shape[1], flat % body.shape[1] + 1
    ### END SOLUTION


def _top_with_bos(activations, k):
    values, flat = activations.flatten().topk(k)
    return values, flat // activations.shape[1], flat % activations.shape[1]


def _top_position_unshifted(activations, k):
    body = activations[:, 1:]
    values, flat = body.flatten().topk(k)
    return values, flat // body.shape[1], flat % body.shape[1]


def _top_cases(generator):
    cases = []
    for rows, pos, k in [(4, 10, 3), (_randint(generator, 3, 9), _randint(generator, 8, 30), 5),
                         (_randint(generator, 3, 9), _randint(generator, 8, 30), 8)]:
        activations = torch.relu(_randn(generator, rows, pos))
        activations[:, 0] = 5 + torch.rand(rows, generator=generator)  # BOS outliers
        cases.append(dict(activations=activations, k=k))
    return cases


EXERCISES.append(Exercise(
    top_activations, {"values": ("k",), "rows": ("k",), "positions": ("k",)}, _top_cases,
    "ReLU of seeded normals, with large activations at BOS", **PURE_TOL, mistakes=(
        Mistake("with_bos", "included position 0 (BOS), where activations are outliers, not "
                "contexts", _top_with_bos),
        Mistake("unshifted", "gave positions in the sliced tensor; after skipping position 0, "
                "add 1 to get positions in the row", _top_position_unshifted),
    )))


def feature_logit_effects(sae: SAEWeights, feature: int, W_U: torch.Tensor) -> torch.Tensor:
    """What a feature, when it fires, does to the next-token logits, read from the weights:
    its decoder row (the direction it writes) through the unembedding W_U [d_in, vocab].
    Returns [vocab]. (The final norm rescales the residual stream; this is the direction's
    effect up to that scale, as in direct logit attribution.)"""
    ### BEGIN SOLUTION
    return sae.W_dec[feature] @ W_U
    ### END SOLUTION


def _logit_effects_encoder(sae, feature, W_U):
    return sae.W_enc[:, feature] @ W_U


def _logit_cases(generator):
    cases = []
    for d_in, d_sae, vocab in [(6, 12, 20), (_randint(generator, 4, 12), _randint(generator, 10, 30), 50),
                               (16, _randint(generator, 10, 30), _randint(generator, 30, 90))]:
        cases.append(dict(sae=_random_sae(generator, d_in, d_sae), feature=_randint(generator, 0, d_sae),
                          W_U=_randn(generator, d_in, vocab)))
    return cases


EXERCISES.append(Exercise(
    feature_logit_effects, ("vocab",), _logit_cases, "random SAE weights and unembedding",
    **PURE_TOL, mistakes=(
        Mistake("encoder", "used the encoder column (what the feature reads); its effect on "
                "the output is the decoder row W_dec[feature] (what it writes)",
                _logit_effects_encoder),
    )))


# --- Section 7: are features ground truth? -----------------------------------------------


def match_features(W_dec_a: torch.Tensor, W_dec_b: torch.Tensor):
    """Match each feature of SAE A with its nearest feature of SAE B by decoder direction.

    W_dec_a [d_sae_a, d_in], W_dec_b [d_sae_b, d_in]. For each feature of A: the largest
    cosine similarity with any feature of B, and which feature that is.
    Returns (similarity [d_sae_a], match [d_sae_a] int64).
    """
    ### BEGIN SOLUTION
    a = W_dec_a / W_dec_a.norm(dim=1, keepdim=True)
    b = W_dec_b / W_dec_b.norm(dim=1, keepdim=True)
    similarity = a @ b.T
    best = similarity.max(dim=1)
    return best.values, best.indices
    ### END SOLUTION


def _match_unnormalised(W_dec_a, W_dec_b):
    best = (W_dec_a @ W_dec_b.T).max(dim=1)
    return best.values, best.indices


def _match_cases(generator):
    cases = []
    for a, b, d in [(6, 8, 4), (_randint(generator, 8, 20), _randint(generator, 8, 40), 6),
                    (_randint(generator, 8, 20), _randint(generator, 8, 40), 12)]:
        W_b = _randn(generator, b, d) * (0.3 + 3 * torch.rand(b, 1, generator=generator))
        copies = W_b[torch.randint(0, b, (a,), generator=generator)]
        cases.append(dict(W_dec_a=copies * 2 + 0.8 * _randn(generator, a, d), W_dec_b=W_b))
    return cases


EXERCISES.append(Exercise(
    match_features, {"similarity": ("feature_a",), "match": ("feature_a",)}, _match_cases,
    "B: directions of uneven norms; A: noisy copies of some of them", **PURE_TOL, mistakes=(
        Mistake("unnormalised", "matched by dot product; normalise the decoder rows first "
                "(cosine similarity), or long rows match everything", _match_unnormalised),
    )))


# --- Sections 4-6 on the model: splicing, reading and intervening ------------------------


def _corpus_rows(model, generator, rows, context_size):
    """Rows of the offline corpus's tokens, drawn for a case."""
    from readheads.corpus import load_corpus, token_rows

    tokens = token_rows(model.tokenizer, load_corpus(n_documents=40), context_size).tokens
    return tokens[torch.randperm(len(tokens), generator=generator)[:rows]]


def _model_sae(model, generator, hook_name, tokens, n_features):
    """A small SAE fitted to this model's activations: random unit decoder rows, the encoder
    their transpose, b_dec the mean activation and each b_enc set so the feature fires on
    about a fifth of the tokens."""
    acts = activations_at(model, tokens, hook_name)[:, 1:].flatten(0, 1).float().cpu()
    W_dec = _unit_rows(_randn(generator, n_features, acts.shape[1]))
    b_dec = acts.mean(0)
    pre = (acts - b_dec) @ W_dec.T
    return SAEWeights(W_dec.T.clone(), -pre.quantile(0.8, dim=0), W_dec, b_dec)


def _model_cases(model, generator, **extra):
    cases = []
    layers = model.cfg.n_layers
    for index, (rows, context) in enumerate([(2, 12), (_randint(generator, 2, 4), _randint(generator, 8, 16)),
                                             (_randint(generator, 1, 3), _randint(generator, 8, 16))]):
        layer = layers // 2 if index == 0 else _randint(generator, 1, layers)
        hook_name = f"blocks.{layer}.hook_resid_pre"
        tokens = _corpus_rows(model, generator, rows, context)
        sae = _model_sae(model, generator, hook_name, tokens, _randint(generator, 16, 40))
        case = dict(model=model, sae=sae, tokens=tokens, hook_name=hook_name)
        for name, draw in extra.items():
            case[name] = draw(generator, sae)
        cases.append(case)
    return cases


def sae_feature_activations(model, sae: SAEWeights, tokens: torch.Tensor, hook_name: str) -> torch.Tensor:
    """The SAE's feature activations at every token of `tokens` [batch, pos].

    Read the activation at `hook_name` (``model.run_with_cache(tokens, names_filter=hook_name)``)
    and encode it with `sae_encode`. The SAE was trained without the BOS position, whose
    activation is an outlier: give position 0 all-zero features.
    Returns [batch, pos, d_sae].
    """
    ### BEGIN SOLUTION
    _, cache = model.run_with_cache(tokens, names_filter=hook_name)
    features = sae_encode(cache[hook_name], sae)
    features[:, 0] = 0.0
    return features
    ### END SOLUTION


def _activations_with_bos(model, sae, tokens, hook_name):
    _, cache = model.run_with_cache(tokens, names_filter=hook_name)
    return sae_encode(cache[hook_name], sae)


EXERCISES.append(Exercise(
    sae_feature_activations, ("batch", "pos", "feature"), _model_cases,
    "rows of the offline corpus; a small SAE fitted to the activations at a middle layer "
    "(hidden: other layers and sizes)", **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("with_bos", "encoded position 0 (BOS) too; its features must be 0",
                _activations_with_bos),
    ), equivalent_mutants={
        "_, cache = model.run_with_cache(tokens)": "names_filter only saves memory: "
        "cache[hook_name] is the same activation",
    }))


def spliced_losses(model, sae: SAEWeights, tokens: torch.Tensor, hook_name: str):
    """The model's loss with the SAE spliced in, and the two runs that frame it.

    Mean next-token cross-entropy (``model(tokens, return_type="loss")``) of three runs:
    clean; with the activation at `hook_name` replaced by the SAE's reconstruction
    (decode(encode(x)), x_hat = features @ W_dec + b_dec); and with it replaced by zeros.
    Replace positions 1.. only: leave position 0 (BOS) as it is in every run. Use a hook
    (``model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, fn)])``)
    that returns a new tensor. Returns (ce_clean, ce_with_sae, ce_zero_ablation).
    """
    ### BEGIN SOLUTION
    def splice_sae(activation, hook):
        out = activation.clone()
        out[:, 1:] = sae_encode(activation[:, 1:], sae) @ sae.W_dec + sae.b_dec
        return out

    def zero_ablate(activation, hook):
        out = activation.clone()
        out[:, 1:] = 0.0
        return out

    clean = model(tokens, return_type="loss")
    with_sae = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, splice_sae)])
    zero = model.run_with_hooks(tokens, return_type="loss", fwd_hooks=[(hook_name, zero_ablate)])
    return clean, with_sae, zero
    ### END SOLUTION


def _spliced_with_bos(model, sae, tokens, hook_name):
    def reconstruct(x):
        return sae_encode(x, sae) @ sae.W_dec + sae.b_dec

    clean = model(tokens, return_type="loss")
    with_sae = model.run_with_hooks(tokens, return_type="loss",
                                    fwd_hooks=[(hook_name, splice_hook(reconstruct, 0))])
    zero = model.run_with_hooks(tokens, return_type="loss",
                                fwd_hooks=[(hook_name, splice_hook(torch.zeros_like, 0))])
    return clean, with_sae, zero


EXERCISES.append(Exercise(
    spliced_losses, {"ce_clean": (), "ce_with_sae": (), "ce_zero_ablation": ()}, _model_cases,
    "rows of the offline corpus; a small SAE fitted at a middle layer (hidden: other layers)",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("with_bos", "replaced position 0 (BOS) too; leave it as it is in every run",
                _spliced_with_bos),
    )))


def _draw_feature(generator, sae):
    return _randint(generator, 0, sae.b_enc.shape[0])


def feature_ablation_loss_change(model, sae: SAEWeights, tokens: torch.Tensor, hook_name: str,
                                 feature: int) -> torch.Tensor:
    """What removing one feature does to the loss, token by token.

    At `hook_name`, positions 1..: subtract the feature's contribution, its activation times
    its decoder row (f[feature] * W_dec[feature]), from the activation itself (not from the
    SAE's reconstruction: the SAE's error stays in, so only this feature changes). Returns the
    per-token loss of that run minus the clean run's, [batch, pos - 1]
    (``return_type="loss", loss_per_token=True``).
    """
    ### BEGIN SOLUTION
    def remove_feature(activation, hook):
        out = activation.clone()
        strength = sae_encode(activation[:, 1:], sae)[..., feature, None]  # [batch, pos - 1, 1]
        out[:, 1:] -= strength * sae.W_dec[feature]
        return out

    clean = model(tokens, return_type="loss", loss_per_token=True)
    ablated = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True,
                                   fwd_hooks=[(hook_name, remove_feature)])
    return ablated - clean
    ### END SOLUTION


def _ablation_in_reconstruction(model, sae, tokens, hook_name, feature):
    def reconstruct_without(x):
        features = sae_encode(x, sae)
        features[..., feature] = 0.0
        return features @ sae.W_dec + sae.b_dec

    clean = model(tokens, return_type="loss", loss_per_token=True)
    ablated = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True,
                                   fwd_hooks=[(hook_name, splice_hook(reconstruct_without))])
    return ablated - clean


def _ablation_unscaled(model, sae, tokens, hook_name, feature):
    def remove(x):
        fires = (sae_encode(x, sae)[..., feature, None] > 0).float()
        return x - fires * sae.W_dec[feature]

    clean = model(tokens, return_type="loss", loss_per_token=True)
    ablated = model.run_with_hooks(tokens, return_type="loss", loss_per_token=True,
                                   fwd_hooks=[(hook_name, splice_hook(remove))])
    return ablated - clean


def _ablation_cases(model, generator):
    return _model_cases(model, generator, feature=_draw_feature)


EXERCISES.append(Exercise(
    feature_ablation_loss_change, ("batch", "prediction"), _ablation_cases,
    "rows of the offline corpus; a small SAE fitted at a middle layer; a seeded feature",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("in_reconstruction", "replaced the activation with the SAE's reconstruction "
                "minus the feature; subtract the feature from the activation itself, so the "
                "SAE's error stays in", _ablation_in_reconstruction),
        Mistake("unscaled", "subtracted the decoder row itself where the feature fires; "
                "subtract activation × decoder row", _ablation_unscaled),
    )))


def steering_log_prob_change(model, sae: SAEWeights, tokens: torch.Tensor, hook_name: str,
                             feature: int, scale: float, token_ids: torch.Tensor) -> torch.Tensor:
    """Steer the model with a feature: add scale × the feature's decoder row to the activation
    at `hook_name` at every position from 1 on, and return how the next-token log
    probabilities at the last position change, steered minus clean, for the tokens
    `token_ids` (int64 [n]; ``torch.arange(model.cfg.d_vocab)`` for all): [batch, n]."""
    ### BEGIN SOLUTION
    def steer(activation, hook):
        out = activation.clone()
        out[:, 1:] += scale * sae.W_dec[feature]
        return out

    clean = model(tokens)[:, -1].log_softmax(-1)
    steered = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, steer)])[:, -1].log_softmax(-1)
    return (steered - clean)[:, token_ids]
    ### END SOLUTION


def _steer_encoder(model, sae, tokens, hook_name, feature, scale, token_ids):
    def steer(x):
        return x + scale * sae.W_enc[:, feature]

    clean = model(tokens)[:, -1].log_softmax(-1)
    steered = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, splice_hook(steer))])
    return (steered[:, -1].log_softmax(-1) - clean)[:, token_ids]


def _steer_last_position(model, sae, tokens, hook_name, feature, scale, token_ids):
    def steer(x):
        out = x.clone()
        out[:, -1] += scale * sae.W_dec[feature]
        return out

    clean = model(tokens)[:, -1].log_softmax(-1)
    steered = model.run_with_hooks(tokens, fwd_hooks=[(hook_name, splice_hook(steer))])
    return (steered[:, -1].log_softmax(-1) - clean)[:, token_ids]


def _steering_cases(model, generator):
    def scale(generator, sae):
        return round(float(sae.b_dec.norm()) * (0.5 + float(torch.rand(1, generator=generator))), 2)

    def token_ids(generator, sae):
        return torch.randint(0, model.cfg.d_vocab, (_randint(generator, 10, 30),), generator=generator)

    return _model_cases(model, generator, feature=_draw_feature, scale=scale, token_ids=token_ids)


EXERCISES.append(Exercise(
    steering_log_prob_change, ("batch", "token"), _steering_cases,
    "rows of the offline corpus; a small SAE at a middle layer; a seeded feature, scale and "
    "token ids",
    **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("encoder", "added the encoder column; a feature writes its decoder row "
                "W_dec[feature]", _steer_encoder),
        Mistake("last_position", "steered the last position only; add the direction at every "
                "position from 1 on", _steer_last_position),
    )))


# --- Section 8: labelling ----------------------------------------------------------------


def label_score(fires: torch.Tensor, label_says: torch.Tensor):
    """How well a label predicts where a feature fires, token by token.

    fires: bool [tokens], where the feature is active; label_says: bool [tokens], where the
    label says it should be (e.g. "sport articles": the tokens of sport articles).
    precision: of the tokens the label picks, the fraction where the feature fires; recall:
    of the tokens where it fires, the fraction the label picks; f1: their harmonic mean
    (0 when both are 0). An empty set gives 0, not 0/0: precision is 0 when the label picks
    no token, recall 0 when the feature never fires. Returns (precision, recall, f1), float32
    scalars.
    """
    ### BEGIN SOLUTION
    both = (fires & label_says).sum().float()
    precision = both / label_says.sum().clamp_min(1)
    recall = both / fires.sum().clamp_min(1)
    f1 = 2 * precision * recall / (precision + recall) if both > 0 else both * 0
    return precision, recall, f1
    ### END SOLUTION


def _label_swapped(fires, label_says):
    precision, recall, f1 = label_score(fires, label_says)
    return recall, precision, f1


def _label_cases(generator):
    cases = []
    for tokens in (40, _randint(generator, 50, 300), _randint(generator, 50, 300)):
        label = torch.rand(tokens, generator=generator) < 0.3
        noise = torch.rand(tokens, generator=generator)
        fires = (label & (noise < 0.7)) | (~label & (noise < 0.1))
        cases.append(dict(fires=fires, label_says=label))
    # The edges: a feature that never fires and a label that never says yes (0/0 gives 0,
    # never NaN); then a label and a feature that pick the same single token (divide by 1).
    tokens = _randint(generator, 20, 60)
    cases.append(dict(fires=torch.zeros(tokens, dtype=torch.bool),
                      label_says=torch.zeros(tokens, dtype=torch.bool)))
    one = torch.zeros(tokens, dtype=torch.bool)
    one[_randint(generator, 0, tokens)] = True
    cases.append(dict(fires=one, label_says=one.clone()))
    return cases


EXERCISES.append(Exercise(
    label_score, {"precision": (), "recall": (), "f1": ()}, _label_cases,
    "seeded labels on 30% of tokens; the feature fires on most of them and a few others "
    "(hidden: neither ever says yes; both pick the same single token)",
    **PURE_TOL, mistakes=(
        Mistake("swapped", "swapped precision and recall: precision is over the tokens the "
                "label picks, recall over the tokens where the feature fires", _label_swapped),
    ), equivalent_mutants={
        "f1 = 2 * precision * recall / (precision + recall) if both > 0 else both":
            "the else branch runs only when the count `both` is 0, so both == both * 0",
        "f1 = 2 * precision * recall / (precision + recall) if both > 0 else both * 1":
            "the else branch runs only when the count `both` is 0, so both * 1 == both * 0",
    }))
