"""Chapter 5, "Automated circuit discovery": attribution patching (a linear estimate of every
activation-patching result from one forward and one backward pass), an ACDC-style pruning
search over heads, and the measures that compare circuits — reference solutions, known
mistakes, exercise list.

The task is Chapter 3's IOI, built by the library (`readheads.ioi.patching_setup`): clean and
corrupted `IOIPrompts` and a `PatchingMetric` (1 on the clean run, 0 on the corrupted one).
Like Chapter 3's sweeps, attribution *denoises*: it estimates what patching one clean
activation into the corrupted run does. Pruning *noises*, as ACDC does: it runs the clean
prompts and replaces removed heads' outputs with their corrupted ones.
"""

import torch
from tqdm.auto import tqdm

from autograder.authoring.spec import CachedRun, Exercise, Mistake
from readheads.edges import KINDS, LOGITS, candidate_edges, n_key_value_heads, split_qkv_inputs
from readheads.ioi import as_tokens, patching_setup

GRAD_TOL = dict(atol=1e-4, rtol=1e-3)  # gradients: elements up to ~10, median ~1e-2; CUDA differs by ~3e-6
SUM_TOL = dict(atol=2e-3, rtol=1e-3)  # attribution scores: sums of ~1e4 products, order 0.01..1
PURE_TOL = dict(atol=1e-5, rtol=1e-4)
EXERCISES: list[Exercise] = []


def _randint(generator, low, high) -> int:
    return int(torch.randint(low, high, (1,), generator=generator))


def _seed(generator) -> int:
    return _randint(generator, 0, 10**6)


def _setup_cases(model, generator, **extra):
    """Visible: 3 ABC-corrupted prompts of seed 0. Hidden: 2 to 4 seeded prompts, an ABC or a
    swapped-names corruption."""
    clean, corrupted, metric = patching_setup(model, 3, 0)
    cases = [dict(model=model, clean=clean, corrupted=corrupted, metric=metric, **extra)]
    kind = ("abc", "swapped")[_randint(generator, 0, 2)]
    clean, corrupted, metric = patching_setup(model, _randint(generator, 2, 5), _seed(generator), kind)
    cases.append(dict(model=model, clean=clean, corrupted=corrupted, metric=metric, **extra))
    return cases


# Mutants that leave out a cached run's names_filter, equivalent for every exercise that makes
# these runs (recorded in each declaration below).
UNFILTERED = "without names_filter the run caches every hook: the same values, more memory"
UNFILTERED_CORRUPTED_CACHE = {"_, corrupted_cache = model.run_with_cache(as_tokens(corrupted))": UNFILTERED}
UNFILTERED_CACHES = {"_, clean_cache = model.run_with_cache(as_tokens(clean))": UNFILTERED,
                     **UNFILTERED_CORRUPTED_CACHE}


def _from_clean(metric):
    """`metric` turned round: 0 on the clean run and 1 on the corrupted one, a distance from
    the whole model's behaviour (as ACDC's KL divergence from the clean model is, 0 for the
    whole model). Its changes are the same size; a change *relative* to it has no meaning."""
    return metric._replace(clean=metric.corrupted, corrupted=metric.clean)


def _two_figures(value: float) -> float:
    """`value` to two significant figures: a threshold found from a model's outputs must be
    the same number on every CPU, which rounds those outputs differently."""
    return float(f"{value:.2g}")


# --- Exercise 1: the gradient of the metric at many activations, in one backward pass -----


def metric_gradients(model, tokens: torch.Tensor, metric, hook_names: list[str]) -> torch.Tensor:
    """The gradient of `metric` (on the model's logits for `tokens`) with respect to the
    activation at each of `hook_names` (activations of one shape, e.g. every layer's
    ``hook_resid_pre``), from one forward and one backward pass.

    The model's weights need no gradient: in a hook, add to the activation a tensor of zeros
    that requires one (``torch.zeros_like(activation, requires_grad=True)``) and return the
    sum. The gradient with respect to that zero tensor is the gradient with respect to the
    activation, and the sum keeps the activation connected to what came before it, so
    gradients flow through every later layer. Run under ``torch.enable_grad()`` (the chapter
    turns gradients off). Returns [len(hook_names), *activation shape].
    """
    ### BEGIN SOLUTION
    zeros = {}

    def add_zeros(activation, hook, name):
        zeros[name] = torch.zeros_like(activation, requires_grad=True)
        return activation + zeros[name]

    hooks = [(name, lambda activation, hook, name=name: add_zeros(activation, hook, name))
             for name in hook_names]
    with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        value = metric(model(as_tokens(tokens)))
        gradients = torch.autograd.grad(value, [zeros[name] for name in hook_names])
    return torch.stack(gradients)
    ### END SOLUTION


def _gradients_detached(model, tokens, metric, hook_names):
    leaves = {}

    def replace(activation, hook, name):
        leaves[name] = activation.detach().requires_grad_(True)
        return leaves[name]

    hooks = [(name, lambda activation, hook, name=name: replace(activation, hook, name)) for name in hook_names]
    with torch.enable_grad(), model.hooks(fwd_hooks=hooks):
        value = metric(model(as_tokens(tokens)))
        gradients = torch.autograd.grad(value, [leaves[name] for name in hook_names], allow_unused=True)
    return torch.stack([torch.zeros_like(leaves[n]) if g is None else g for n, g in zip(hook_names, gradients)])


def _gradients_of_minus(model, tokens, metric, hook_names):
    return -metric_gradients(model, tokens, metric, hook_names)


def _gradient_cases(model, generator):
    last = model.cfg.n_layers - 1
    cases = []
    for case in _setup_cases(model, generator):
        cases.append(dict(model=model, tokens=case["corrupted"].tokens, metric=case["metric"],
                          hook_names=[f"blocks.{layer}.hook_resid_pre" for layer in (0, last // 2, last)]))
    layer = _randint(generator, 0, model.cfg.n_layers)
    cases[1]["hook_names"] = [f"blocks.{layer}.attn.hook_z", f"blocks.{last}.attn.hook_z"]
    return cases


EXERCISES.append(Exercise(
    metric_gradients, ("hook", "batch", "pos", "d"), _gradient_cases,
    "the corrupted tokens of 3 ABC-corrupted prompts of seed 0 at three residual streams and, "
    "hidden, 2 to 4 seeded prompts at two heads' outputs (hook_z)", **GRAD_TOL, needs_model=True,
    mistakes=(
        Mistake("detached", "replaced each activation by a detached copy "
                "(activation.detach().requires_grad_()): that cuts the graph, so a gradient "
                "only reaches the last hooked activation. Add a zero tensor that requires a "
                "gradient instead", _gradients_detached),
        Mistake("minus", "took the gradient of minus the metric", _gradients_of_minus),
    )))


# --- Exercise 2: attribution patching of the residual stream ------------------------------


def attribution_residual(model, clean, corrupted, metric) -> torch.Tensor:
    """Attribution patching of the residual stream entering each layer (``hook_resid_pre``),
    by position: the linear estimate of what patching the clean stream into the corrupted run
    at (layer, position) changes the metric by,

        gradient of the metric on the corrupted run · (clean activation - corrupted activation),

    the dot product taken over d_model and summed over prompts (the metric is already a mean
    over prompts). The gradient comes from `metric_gradients` on the corrupted tokens.
    Returns [n_layers, pos]: an estimate of Chapter 3's residual sweep (whose unpatched value,
    the corrupted run's, is 0).
    """
    ### BEGIN SOLUTION
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    wanted = lambda name: name in names  # noqa: E731
    _, clean_cache = model.run_with_cache(as_tokens(clean), names_filter=wanted)
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted), names_filter=wanted)
    difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
    gradients = metric_gradients(model, as_tokens(corrupted), metric, names)
    return (gradients * difference).sum(dim=(1, 3))  # over prompts and d_model
    ### END SOLUTION


def _residual_clean_gradient(model, clean, corrupted, metric):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(model.cfg.n_layers)]
    _, clean_cache = model.run_with_cache(as_tokens(clean))
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted))
    difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
    return (metric_gradients(model, as_tokens(clean), metric, names) * difference).sum(dim=(1, 3))


def _residual_sign(model, clean, corrupted, metric):
    return -attribution_residual(model, clean, corrupted, metric)


def _residual_batch_mean(model, clean, corrupted, metric):
    return attribution_residual(model, clean, corrupted, metric) / as_tokens(clean).shape[0]


EXERCISES.append(Exercise(
    attribution_residual, ("layer", "pos"), _setup_cases,
    "3 ABC-corrupted prompts of seed 0 and, hidden, 2 to 4 seeded prompts (ABC or swapped names)",
    **SUM_TOL, needs_model=True, equivalent_mutants={**UNFILTERED_CACHES,
        "wanted = lambda name: name not in names  # noqa: E731":
            "the filter also sees each hook's canonical name (blocks.{layer}.hook_in, of which "
            "hook_resid_pre is an alias): that is cached and the alias reads it, more memory",
    }, mistakes=(
        Mistake("clean_gradient", "took the gradient on the clean run; the estimate of patching "
                "into the corrupted run uses the corrupted run's gradient", _residual_clean_gradient),
        Mistake("sign", "used corrupted - clean; patching moves the activation from the "
                "corrupted value to the clean one", _residual_sign),
        Mistake("batch_mean", "averaged over prompts; the metric is already a mean over them, "
                "so its gradient carries the 1/batch: sum over prompts", _residual_batch_mean),
    )))


# --- Exercise 3: attribution patching of attention and MLP outputs -----------------------


def attribution_layer_outputs(model, clean, corrupted, metric) -> torch.Tensor:
    """Attribution patching of each layer's attention output (``hook_attn_out``) and MLP output
    (``hook_mlp_out``), patched at every position: gradient · (clean - corrupted), summed over
    prompts, positions and d_model. Returns [2, n_layers]: row 0 attention, row 1 MLP (the
    estimate of Chapter 3's layer-output sweep).
    """
    ### BEGIN SOLUTION
    rows = []
    for kind in ("attn_out", "mlp_out"):
        names = [f"blocks.{layer}.hook_{kind}" for layer in range(model.cfg.n_layers)]
        wanted = lambda name: name in names  # noqa: E731
        _, clean_cache = model.run_with_cache(as_tokens(clean), names_filter=wanted)
        _, corrupted_cache = model.run_with_cache(as_tokens(corrupted), names_filter=wanted)
        difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
        gradients = metric_gradients(model, as_tokens(corrupted), metric, names)
        rows.append((gradients * difference).sum(dim=(1, 2, 3)))
    return torch.stack(rows)
    ### END SOLUTION


def _layers_mlp_first(model, clean, corrupted, metric):
    return attribution_layer_outputs(model, clean, corrupted, metric).flip(0)


def _layers_last_position(model, clean, corrupted, metric):
    rows = []
    prompts = torch.arange(as_tokens(clean).shape[0])
    for kind in ("attn_out", "mlp_out"):
        names = [f"blocks.{layer}.hook_{kind}" for layer in range(model.cfg.n_layers)]
        _, clean_cache = model.run_with_cache(as_tokens(clean))
        _, corrupted_cache = model.run_with_cache(as_tokens(corrupted))
        difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
        gradients = metric_gradients(model, as_tokens(corrupted), metric, names)
        products = (gradients * difference).sum(-1)[:, prompts, clean.end_pos]
        rows.append(products.sum(1))
    return torch.stack(rows)


EXERCISES.append(Exercise(
    attribution_layer_outputs, ("component", "layer"), _setup_cases,
    "3 ABC-corrupted prompts of seed 0 and, hidden, 2 to 4 seeded prompts (ABC or swapped names)",
    **SUM_TOL, needs_model=True, equivalent_mutants=UNFILTERED_CACHES, mistakes=(
        Mistake("mlp_first", "put the MLP outputs in row 0; row 0 is attention, row 1 MLP",
                _layers_mlp_first),
        Mistake("last_position", "summed at each prompt's last token only; the output is "
                "patched at every position, so sum over all of them", _layers_last_position),
    )))


# --- Exercise 4: attribution patching of each head's output ------------------------------


def attribution_head_outputs(model, clean, corrupted, metric) -> torch.Tensor:
    """Attribution patching of each head's output (``attn.hook_z``, [batch, pos, head,
    d_head]) at every position: gradient · (clean - corrupted), summed over prompts,
    positions and d_head. Returns [n_layers, n_heads] (the estimate of Chapter 3's head sweep).
    """
    ### BEGIN SOLUTION
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    wanted = lambda name: name in names  # noqa: E731
    _, clean_cache = model.run_with_cache(as_tokens(clean), names_filter=wanted)
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted), names_filter=wanted)
    difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
    gradients = metric_gradients(model, as_tokens(corrupted), metric, names)
    return (gradients * difference).sum(dim=(1, 2, 4))  # over prompts, positions and d_head
    ### END SOLUTION


def _heads_clean_gradient(model, clean, corrupted, metric):
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, clean_cache = model.run_with_cache(as_tokens(clean))
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted))
    difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
    return (metric_gradients(model, as_tokens(clean), metric, names) * difference).sum(dim=(1, 2, 4))


def _heads_absolute(model, clean, corrupted, metric):
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, clean_cache = model.run_with_cache(as_tokens(clean))
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted))
    difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
    return (metric_gradients(model, as_tokens(corrupted), metric, names) * difference).abs().sum(dim=(1, 2, 4))


EXERCISES.append(Exercise(
    attribution_head_outputs, ("layer", "head"), _setup_cases,
    "3 ABC-corrupted prompts of seed 0 and, hidden, 2 to 4 seeded prompts (ABC or swapped names)",
    **SUM_TOL, needs_model=True, equivalent_mutants=UNFILTERED_CACHES, mistakes=(
        Mistake("clean_gradient", "took the gradient on the clean run; use the corrupted run's",
                _heads_clean_gradient),
        Mistake("absolute", "summed the absolute values of the products; the estimate is the "
                "signed sum (a head can push the metric down)", _heads_absolute),
    )))


# --- Exercise 5: how well the estimate agrees ---------------------------------------------


def pearson_correlation(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The Pearson correlation of two score tensors of the same shape (e.g. exact and
    attribution patching of every head), over all their elements: the covariance of the
    centred values over the product of their standard deviations. Returns a 0-dim tensor.
    """
    ### BEGIN SOLUTION
    x, y = x.flatten().double(), y.flatten().double()
    x, y = x - x.mean(), y - y.mean()
    return ((x * y).sum() / (x.norm() * y.norm())).float()
    ### END SOLUTION


def _pearson_uncentred(x, y):
    x, y = x.flatten(), y.flatten()
    return (x * y).sum() / (x.norm() * y.norm())


def _pearson_first_row(x, y):
    return torch.corrcoef(torch.stack([x[0].flatten(), y[0].flatten()]))[0, 1]


def _pearson_cases(generator):
    def pair(*shape, offset=0.0):
        x = torch.randn(*shape, generator=generator) + offset
        return dict(x=x, y=0.5 * x + torch.randn(*shape, generator=generator) + 2 * offset)
    return [pair(6, 4, offset=1.0), pair(12, 9, offset=3.0), pair(30, 12, offset=-2.0)]


EXERCISES.append(Exercise(
    pearson_correlation, (), _pearson_cases, "seeded scores with a nonzero mean and a noisy copy",
    **PURE_TOL, equivalent_mutants={
        "deleted: x, y = x.flatten().double(), y.flatten().double()":
            "the same formula over all elements (mean, sum and norm of the unflattened tensors), "
            "in the inputs' float32: the double is for precision, which the tolerance grants a "
            "float32 answer",
    }, mistakes=(
        Mistake("uncentred", "did not subtract the means: that is the cosine similarity, not the "
                "correlation", _pearson_uncentred),
        Mistake("first_row", "correlated only the first row (layer); flatten both tensors first",
                _pearson_first_row),
    )))


# --- Exercise 6: where the linear estimate fails -----------------------------------------


def largest_disagreements(exact: torch.Tensor, estimate: torch.Tensor, k: int) -> torch.Tensor:
    """The k components where the estimate is furthest from the exact result (the largest
    |exact - estimate|), as int64 [k, exact.ndim] indices (e.g. rows of (layer, head)),
    furthest first.
    """
    ### BEGIN SOLUTION
    flat = (exact - estimate).abs().flatten().topk(k).indices
    return torch.stack(torch.unravel_index(flat, exact.shape), dim=1)
    ### END SOLUTION


def _disagreements_signed(exact, estimate, k):
    flat = (exact - estimate).flatten().topk(k).indices
    return torch.stack(torch.unravel_index(flat, exact.shape), dim=1)


def _disagreements_largest_exact(exact, estimate, k):
    flat = exact.abs().flatten().topk(k).indices
    return torch.stack(torch.unravel_index(flat, exact.shape), dim=1)


def _disagreement_cases(generator):
    def pair(layers, heads, k):
        exact = torch.randn(layers, heads, generator=generator)
        estimate = exact + 0.3 * torch.randn(layers, heads, generator=generator) ** 3
        return dict(exact=exact, estimate=estimate, k=k)
    cases = [pair(6, 4, 3), pair(12, 9, 5), pair(30, 9, 8)]
    # any number of dimensions: scores by (layer, position, head)
    shape = (_randint(generator, 2, 5), _randint(generator, 3, 7), _randint(generator, 2, 6))
    exact = torch.randn(shape, generator=generator)
    cases.append(dict(exact=exact, estimate=exact + 0.3 * torch.randn(shape, generator=generator) ** 3,
                      k=_randint(generator, 2, 7)))
    return cases


EXERCISES.append(Exercise(
    largest_disagreements, ("component", "index"), _disagreement_cases,
    "seeded exact scores [layer, head] and a noisy estimate, k 3 to 8 and, hidden, 3-D scores "
    "[layer, position, head], k 2 to 6", atol=0, rtol=0, mistakes=(
        Mistake("signed", "took the largest signed difference; an estimate that is too high is "
                "as wrong as one too low: use the absolute difference", _disagreements_signed),
        Mistake("largest_exact", "took the components with the largest exact effect, not the "
                "largest disagreement", _disagreements_largest_exact),
    )))


# --- Exercise 7: a circuit's metric: every head outside it gets its corrupted output -------


def metric_with_heads_removed(model, clean, corrupted_cache, metric, removed: torch.Tensor) -> torch.Tensor:
    """Run the clean prompts with every head in `removed` (bool [n_layers, n_heads]) given its
    output (``attn.hook_z``) from the corrupted run (`corrupted_cache`, its activation cache),
    at every position, and return the metric on the logits (0-dim). With nothing removed this
    is the clean run's metric (1); a circuit is the heads that are not removed.
    """
    ### BEGIN SOLUTION
    def replace(z, hook, layer):
        heads = removed[layer].to(z.device)
        z[:, :, heads] = corrupted_cache["z", layer][:, :, heads]
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: replace(z, hook, layer))
             for layer in range(model.cfg.n_layers) if removed[layer].any()]
    with model.hooks(fwd_hooks=hooks):
        return torch.as_tensor(metric(model(as_tokens(clean))))
    ### END SOLUTION


def _removed_zeroed(model, clean, corrupted_cache, metric, removed):
    def zero(z, hook, layer):
        z[:, :, removed[layer].to(z.device)] = 0
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: zero(z, hook, layer))
             for layer in range(model.cfg.n_layers)]
    with model.hooks(fwd_hooks=hooks):
        return torch.as_tensor(metric(model(as_tokens(clean))))


def _removed_kept(model, clean, corrupted_cache, metric, removed):
    return metric_with_heads_removed(model, clean, corrupted_cache, metric, ~removed)


def _removed_end_only(model, clean, corrupted_cache, metric, removed):
    prompts = torch.arange(as_tokens(clean).shape[0])

    def replace(z, hook, layer):
        heads = removed[layer].to(z.device)
        ends = clean.end_pos.to(z.device)
        z[prompts[:, None], ends[:, None], heads] = corrupted_cache["z", layer][prompts[:, None], ends[:, None], heads]
        return z

    hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: replace(z, hook, layer))
             for layer in range(model.cfg.n_layers) if removed[layer].any()]
    with model.hooks(fwd_hooks=hooks):
        return torch.as_tensor(metric(model(as_tokens(clean))))


def _removed_cases(model, generator):
    cases = []
    shape = (model.cfg.n_layers, model.cfg.n_heads)
    for case in _setup_cases(model, generator):
        cases.append(dict(model=model, clean=case["clean"], corrupted_cache=CachedRun(case["corrupted"].tokens),
                          metric=case["metric"]))
    cases[0]["removed"] = torch.zeros(shape, dtype=torch.bool)
    cases[0]["removed"][-2:] = True  # the last two layers' heads
    cases[1]["removed"] = torch.rand(shape, generator=generator) < 0.3
    return cases


EXERCISES.append(Exercise(
    metric_with_heads_removed, (), _removed_cases,
    "3 ABC-corrupted prompts of seed 0 without the last two layers' heads and, hidden, 2 to 4 "
    "seeded prompts (ABC or swapped names) without a seeded 30% of the heads", **SUM_TOL,
    needs_model=True, mistakes=(
        Mistake("zeroed", "set the removed heads' outputs to zero; remove them by giving them "
                "their corrupted-run outputs (zero is far from anything the model saw)",
                _removed_zeroed),
        Mistake("inverted", "removed the heads that are kept (removed is True for the heads to "
                "take out)", _removed_kept),
        Mistake("end_only", "replaced the removed heads' outputs at the last token only; "
                "replace them at every position", _removed_end_only),
    )))


# --- Exercise 8: ACDC-style pruning -------------------------------------------------------


def prune_heads(model, clean, corrupted, metric, threshold: float, layers: list[int]) -> torch.Tensor:
    """An ACDC-style search over the heads of `layers` (the others always stay): start from the
    whole model; visit the heads from the last layer to the first (within a layer, head 0
    first); remove a head for good if removing it changes the metric of the current circuit
    (`metric_with_heads_removed`, with the corrupted run's cache made once) by less than
    `threshold` in absolute value (strictly: with threshold 0 every head stays).

    Returns bool [n_layers, n_heads]: True for the heads kept (the circuit).
    """
    ### BEGIN SOLUTION
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted), names_filter=lambda name: name.endswith("hook_z"))
    removed = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    current = metric_with_heads_removed(model, clean, corrupted_cache, metric, removed)
    for layer in tqdm(sorted(layers, reverse=True), desc="pruning heads"):
        for head in range(model.cfg.n_heads):
            removed[layer, head] = True
            value = metric_with_heads_removed(model, clean, corrupted_cache, metric, removed)
            if abs(float(value - current)) < threshold:
                current = value
            else:
                removed[layer, head] = False
    return ~removed
    ### END SOLUTION


def _prune(model, clean, corrupted, metric, threshold, layers, *, order=True, signed=False, against_full=False):
    _, cache = model.run_with_cache(as_tokens(corrupted))
    removed = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    full = current = metric_with_heads_removed(model, clean, cache, metric, removed)
    for layer in sorted(layers, reverse=order):
        for head in range(model.cfg.n_heads):
            removed[layer, head] = True
            value = metric_with_heads_removed(model, clean, cache, metric, removed)
            change = float(value - (full if against_full else current))
            if (change if signed else abs(change)) < threshold:
                current = value
            else:
                removed[layer, head] = False
    return ~removed


def _prune_first_layer_first(model, clean, corrupted, metric, threshold, layers):
    return _prune(model, clean, corrupted, metric, threshold, layers, order=False)


def _prune_signed(model, clean, corrupted, metric, threshold, layers):
    return _prune(model, clean, corrupted, metric, threshold, layers, signed=True)


def _prune_against_full(model, clean, corrupted, metric, threshold, layers):
    return _prune(model, clean, corrupted, metric, threshold, layers, against_full=True)


def _prune_cases(model, generator):
    """Layers in the model's second half, where the IOI heads are and where the order of
    the visits and the reference metric change the result."""
    cases = _setup_cases(model, generator)
    n_layers = model.cfg.n_layers
    cases[0].update(threshold=0.05, layers=[round(0.57 * n_layers), round(0.77 * n_layers), n_layers - 1])
    second_half = n_layers // 2 + torch.randperm(n_layers - n_layers // 2, generator=generator)[:3]
    threshold = float(torch.empty(1).uniform_(0.02, 0.1, generator=generator))
    cases[1].update(threshold=threshold, layers=sorted(second_half.tolist()))
    cases.append(_head_order_case(model, generator))
    # nothing corrupted (no removal changes anything) and threshold 0: every head stays
    last = cases[-1]
    cases.append(dict(last, corrupted=last["clean"], threshold=0.0))
    return cases


def _prune_one_layer(model, clean, cache, metric, threshold, layer, heads):
    """`prune_heads` over one layer, visiting `heads` in the order given: (the heads kept,
    the |change| of each visit)."""
    removed = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    current = metric_with_heads_removed(model, clean, cache, metric, removed)
    changes = []
    for head in heads:
        removed[layer, head] = True
        value = metric_with_heads_removed(model, clean, cache, metric, removed)
        changes.append(abs(float(value - current)))
        if changes[-1] < threshold:
            current = value
        else:
            removed[layer, head] = False
    return ~removed, changes


def _order_matters(values, threshold) -> bool:
    """Whether a search over two heads a, b removes other heads visiting a first than visiting
    b first. values: the metric with nothing, a, b and both removed."""
    nothing, a, b, both = values

    def search(first, second):
        removed, current = set(), nothing
        if abs(first[1] - current) < threshold:
            removed, current = {first[0]}, first[1]
        if abs((both if removed else second[1]) - current) < threshold:
            removed.add(second[0])
        return removed

    return search(("a", a), ("b", b)) != search(("b", b), ("a", a))


def _head_order_case(model, generator):
    """2 seeded prompts, the metric from the clean run (`_from_clean`) and one layer of the
    second half with a threshold at which the order of the visits within the layer matters:
    visiting its heads from the last one removes other heads than visiting them from head 0,
    and every |change| either search meets is at least 5% away from the threshold. Found from
    the pairs of the layer's 5 most important heads whose effects interact (each alone matters
    less than both together, or more); where no layer of two has one, the case is one layer
    with a threshold between two heads' effects."""
    n_layers, n_heads = model.cfg.n_layers, model.cfg.n_heads
    kind = ("abc", "swapped")[_randint(generator, 0, 2)]
    clean, corrupted, metric = patching_setup(model, 2, _seed(generator), kind)
    metric = _from_clean(metric)
    _, cache = model.run_with_cache(as_tokens(corrupted), names_filter=lambda name: name.endswith("hook_z"))

    def value(layer, heads):
        removed = torch.zeros(n_layers, n_heads, dtype=torch.bool)
        for head in heads:
            removed[layer, head] = True
        return float(metric_with_heads_removed(model, clean, cache, metric, removed))

    nothing, fallback = value(0, []), None
    for layer in (n_layers // 2 + torch.randperm(n_layers - n_layers // 2, generator=generator))[:2].tolist():
        single = [value(layer, [head]) for head in range(n_heads)]
        effects = sorted(abs(v - nothing) for v in single)
        fallback = fallback or dict(layers=[layer], threshold=_two_figures((effects[-2] * effects[-1]) ** 0.5))
        important = sorted(range(n_heads), key=lambda head: -abs(single[head] - nothing))[:5]
        options = []
        for a, b in ((a, b) for a in important for b in important if a < b):
            values = (nothing, single[a], single[b], value(layer, [a, b]))
            changes = sorted({abs(x - y) for x in values for y in values} - {0.0})
            for low, high in zip(changes, changes[1:]):
                threshold = _two_figures((low * high) ** 0.5)
                if min(threshold / low, high / threshold) > 1.05 and _order_matters(values, threshold):
                    options.append((high / low, threshold))
        for _, threshold in sorted(options, reverse=True)[:2]:
            kept, forward = _prune_one_layer(model, clean, cache, metric, threshold, layer, range(n_heads))
            kept_backward, backward = _prune_one_layer(model, clean, cache, metric, threshold, layer,
                                                       reversed(range(n_heads)))
            if (kept != kept_backward).any() and all(abs(c - threshold) > 0.05 * threshold for c in forward + backward):
                return dict(model=model, clean=clean, corrupted=corrupted, metric=metric, threshold=threshold,
                            layers=[layer])
    return dict(model=model, clean=clean, corrupted=corrupted, metric=metric, **fallback)


EXERCISES.append(Exercise(
    prune_heads, ("layer", "head"), _prune_cases,
    "3 ABC-corrupted prompts of seed 0, threshold 0.05 over three layers of the second half "
    "and, hidden, 2 to 4 seeded prompts (ABC or swapped names), a seeded threshold (0.02 to "
    "0.1) over 3 seeded layers of the second half, and 2 seeded prompts with the metric "
    "turned round (0 on the clean run) over one layer, at a threshold where the order of the "
    "visits within the layer matters (found from the model's outputs), then with nothing "
    "corrupted at threshold 0",
    atol=0, rtol=0, needs_model=True, equivalent_mutants={**UNFILTERED_CORRUPTED_CACHE,
        "for layer in tqdm(sorted(layers, reverse=True)):":
            "only the progress bar's label",
    }, mistakes=(
        Mistake("first_layer_first", "visited the layers from the first; ACDC works back from "
                "the output, so visit the last layer first", _prune_first_layer_first),
        Mistake("signed", "compared the signed change with the threshold, which removes every "
                "head whose removal lowers the metric, however much: compare |change|",
                _prune_signed),
        Mistake("against_full", "compared with the whole model's metric; compare with the "
                "current circuit's (the metric after the removals so far)", _prune_against_full),
    )))


# --- Exercise 9: edge attribution, head to head --------------------------------------------


def edge_attribution(model, clean, corrupted, metric, kind: str) -> torch.Tensor:
    """Attribution patching of every edge from a sender head to a later receiver's `kind`
    input ("q", "k" or "v"): the linear estimate of patching the sender's clean output into
    that one input of the corrupted run,

        gradient of the metric (corrupted run) at the receiver's own input
            · (the sender's clean output - its corrupted output),

    summed over prompts, positions and d_model. A head's output in the residual stream is
    ``z[:, :, head] @ model.W_O[layer, head]``. Inside ``split_qkv_inputs(model)`` each
    receiver has its own input, ``blocks.{layer}.hook_{kind}_input`` ([batch, pos, receiver,
    d_model]; for k and v the receivers are the key/value heads). An edge exists only from an
    earlier layer: score 0 where the sender's layer >= the receiver's.
    Returns [n_layers, n_heads, n_layers, n_receivers].
    """
    ### BEGIN SOLUTION
    n_layers = model.cfg.n_layers
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(n_layers)]
    wanted = lambda name: name in names  # noqa: E731
    _, clean_cache = model.run_with_cache(as_tokens(clean), names_filter=wanted)
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted), names_filter=wanted)
    z_difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
    sent = torch.einsum("lbphd,lhdm->lbphm", z_difference, model.W_O)  # each head's output
    with split_qkv_inputs(model):
        inputs = [f"blocks.{layer}.hook_{kind}_input" for layer in range(n_layers)]
        gradients = metric_gradients(model, as_tokens(corrupted), metric, inputs)
    scores = torch.einsum("lbphm,rbpqm->lhrq", sent, gradients)
    layers = torch.arange(n_layers, device=scores.device)
    earlier = layers[:, None] < layers[None, :]  # [sender layer, receiver layer]
    return scores * earlier[:, None, :, None]
    ### END SOLUTION


def _edge_scores(model, clean, corrupted, metric, kind, *, gradient_run=None, hook=None, mask=True):
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, clean_cache = model.run_with_cache(as_tokens(clean))
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted))
    sent = torch.einsum("lbphd,lhdm->lbphm", torch.stack([clean_cache[n] - corrupted_cache[n] for n in names]),
                        model.W_O)
    receivers = model.cfg.n_heads if kind == "q" else n_key_value_heads(model)
    with split_qkv_inputs(model):
        inputs = [f"blocks.{layer}.{hook or f'hook_{kind}_input'}" for layer in range(model.cfg.n_layers)]
        gradients = metric_gradients(model, as_tokens(gradient_run or corrupted), metric, inputs)
    if hook:  # one gradient for the whole layer: every receiver gets it
        gradients = gradients[:, :, :, None].expand(-1, -1, -1, receivers, -1)
    scores = torch.einsum("lbphm,rbpqm->lhrq", sent, gradients)
    if mask:
        layers = torch.arange(model.cfg.n_layers, device=scores.device)
        scores = scores * (layers[:, None] < layers[None, :])[:, None, :, None]
    return scores


def _edges_layer_gradient(model, clean, corrupted, metric, kind):
    return _edge_scores(model, clean, corrupted, metric, kind, hook="hook_resid_pre")


def _edges_unmasked(model, clean, corrupted, metric, kind):
    return _edge_scores(model, clean, corrupted, metric, kind, mask=False)


def _edges_clean_gradient(model, clean, corrupted, metric, kind):
    return _edge_scores(model, clean, corrupted, metric, kind, gradient_run=clean)


def _edge_attribution_cases(model, generator):
    cases = _setup_cases(model, generator, kind="q")
    cases[1]["kind"] = ("k", "v")[_randint(generator, 0, 2)]
    return cases


EXERCISES.append(Exercise(
    edge_attribution, ("sender_layer", "sender_head", "receiver_layer", "receiver"),
    _edge_attribution_cases,
    "3 ABC-corrupted prompts of seed 0, query edges and, hidden, 2 to 4 seeded prompts (ABC or "
    "swapped names), key or value edges", **SUM_TOL, needs_model=True,
    equivalent_mutants={**UNFILTERED_CACHES,
        "layers = torch.arange(n_layers)":
            "the same mask where graded, on the CPU (on a GPU the CPU mask meets the scores "
            "there and the call raises, which the check reports)",
    }, mistakes=(
        Mistake("layer_gradient", "took the gradient at the receiver layer's residual stream "
                "(hook_resid_pre), which every head, input and the MLP of that layer share: "
                "inside split_qkv_inputs, take it at the receiver's own input "
                "(hook_q_input, hook_k_input or hook_v_input)", _edges_layer_gradient),
        Mistake("unmasked", "kept scores for senders in the receiver's layer or later; a head "
                "can only send to later layers, so those edges score 0", _edges_unmasked),
        Mistake("clean_gradient", "took the gradient on the clean run; use the corrupted run's",
                _edges_clean_gradient),
    )))


# --- Exercise 10: edges to the logits ------------------------------------------------------


def edge_attribution_logits(model, clean, corrupted, metric) -> torch.Tensor:
    """Attribution patching of every head's edge to the logits: its *direct* path, through
    the final residual stream (``ln_final.hook_in``, before the final normalisation) and
    nothing else. Gradient of the metric there (corrupted run) · (the head's clean output -
    its corrupted output, in the residual stream), summed over prompts, positions and
    d_model. Returns [n_layers, n_heads].
    """
    ### BEGIN SOLUTION
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    wanted = lambda name: name in names  # noqa: E731
    _, clean_cache = model.run_with_cache(as_tokens(clean), names_filter=wanted)
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted), names_filter=wanted)
    z_difference = torch.stack([clean_cache[name] - corrupted_cache[name] for name in names])
    sent = torch.einsum("lbphd,lhdm->lbphm", z_difference, model.W_O)
    gradient = metric_gradients(model, as_tokens(corrupted), metric, ["ln_final.hook_in"])[0]
    return torch.einsum("lbphm,bpm->lh", sent, gradient)
    ### END SOLUTION


def _logit_edges_after_norm(model, clean, corrupted, metric):
    names = [f"blocks.{layer}.attn.hook_z" for layer in range(model.cfg.n_layers)]
    _, clean_cache = model.run_with_cache(as_tokens(clean))
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted))
    sent = torch.einsum("lbphd,lhdm->lbphm", torch.stack([clean_cache[n] - corrupted_cache[n] for n in names]),
                        model.W_O)
    gradient = metric_gradients(model, as_tokens(corrupted), metric, ["ln_final.hook_out"])[0]
    return torch.einsum("lbphm,bpm->lh", sent, gradient)


def _logit_edges_every_path(model, clean, corrupted, metric):
    return attribution_head_outputs(model, clean, corrupted, metric)


EXERCISES.append(Exercise(
    edge_attribution_logits, ("layer", "head"), _setup_cases,
    "3 ABC-corrupted prompts of seed 0 and, hidden, 2 to 4 seeded prompts (ABC or swapped names)",
    **SUM_TOL, needs_model=True, equivalent_mutants=UNFILTERED_CACHES, mistakes=(
        Mistake("after_norm", "took the gradient after the final normalisation "
                "(ln_final.hook_out); the heads write to its input, ln_final.hook_in",
                _logit_edges_after_norm),
        Mistake("every_path", "scored each head's whole effect (every path, as in "
                "attribution_head_outputs); the edge to the logits is the direct path only",
                _logit_edges_every_path),
    )))


# --- Exercise 11: a circuit's metric with edges removed ------------------------------------


def metric_with_edges_removed(model, clean, corrupted_cache, metric, removed: torch.Tensor) -> torch.Tensor:
    """Run the clean prompts with each edge in `removed` (int64 [n_edges, 5] rows, as
    `readheads.edges.candidate_edges` makes) cut: its receiver's input gets the sender's
    corrupted output (from `corrupted_cache`) instead of its output in this run, so the input
    changes by -(sender's output in this run - its corrupted output). Everything else reads
    the stream unchanged. The receiver input is ``blocks.{layer}.hook_{q,k,v}_input`` inside
    ``split_qkv_inputs(model)``, or ``ln_final.hook_in`` for the logits (kind 3). Record each
    head's ``hook_z`` on the way: an earlier cut may have changed a sender. Read ``model.W_O``
    once (each access stacks every layer's weights). Returns the metric (0-dim).
    """
    ### BEGIN SOLUTION
    removed = removed.tolist()
    W_O = model.W_O
    outputs = {}  # this run's hook_z by layer

    def record(z, hook, layer):
        outputs[layer] = z
        return z

    def cut(x, hook, kind, layer):  # the logits' "layer" is n_layers
        change = torch.zeros_like(x)
        for edge_kind, s_layer, s_head, r_layer, r_head in removed:
            if edge_kind == kind and r_layer == layer:
                z = outputs[s_layer][:, :, s_head] - corrupted_cache["z", s_layer][:, :, s_head]
                sent = z @ W_O[s_layer, s_head]
                if kind == LOGITS:
                    change -= sent
                else:
                    change[:, :, r_head] -= sent
        return x + change

    n_layers = model.cfg.n_layers
    hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: record(z, hook, layer))
             for layer in range(n_layers)]
    hooks += [(f"blocks.{layer}.hook_{name}_input",
               lambda x, hook, kind=kind, layer=layer: cut(x, hook, kind, layer))
              for layer in range(n_layers) for kind, name in enumerate(KINDS[:LOGITS])]
    hooks.append(("ln_final.hook_in", lambda x, hook: cut(x, hook, LOGITS, n_layers)))
    with split_qkv_inputs(model), model.hooks(fwd_hooks=hooks):
        return torch.as_tensor(metric(model(as_tokens(clean))))
    ### END SOLUTION


def _cut_edges(model, clean, corrupted_cache, metric, removed, *, sign=-1.0, sender_cache=None):
    W_O, outputs = model.W_O, {}

    def record(z, hook, layer):
        outputs[layer] = z
        return z

    def cut(x, hook, kind, layer):
        change = torch.zeros_like(x)
        for edge_kind, s_layer, s_head, r_layer, r_head in removed.tolist():
            if edge_kind == kind and r_layer == layer:
                source = sender_cache["z", s_layer] if sender_cache is not None else outputs[s_layer]
                sent = (source[:, :, s_head] - corrupted_cache["z", s_layer][:, :, s_head]) @ W_O[s_layer, s_head]
                if kind == LOGITS:
                    change += sign * sent
                else:
                    change[:, :, r_head] += sign * sent
        return x + change

    n_layers = model.cfg.n_layers
    hooks = [(f"blocks.{layer}.attn.hook_z", lambda z, hook, layer=layer: record(z, hook, layer))
             for layer in range(n_layers)]
    hooks += [(f"blocks.{layer}.hook_{name}_input", lambda x, hook, kind=kind, layer=layer: cut(x, hook, kind, layer))
              for layer in range(n_layers) for kind, name in enumerate(KINDS[:LOGITS])]
    hooks.append(("ln_final.hook_in", lambda x, hook: cut(x, hook, LOGITS, n_layers)))
    with split_qkv_inputs(model), model.hooks(fwd_hooks=hooks):
        return torch.as_tensor(metric(model(as_tokens(clean))))


def _edges_removed_added(model, clean, corrupted_cache, metric, removed):
    return _cut_edges(model, clean, corrupted_cache, metric, removed, sign=1.0)


def _edges_removed_whole_heads(model, clean, corrupted_cache, metric, removed):
    heads = torch.zeros(model.cfg.n_layers, model.cfg.n_heads, dtype=torch.bool)
    heads[removed[:, 1], removed[:, 2]] = True
    return metric_with_heads_removed(model, clean, corrupted_cache, metric, heads)


def _edges_removed_clean_senders(model, clean, corrupted_cache, metric, removed):
    _, clean_cache = model.run_with_cache(as_tokens(clean))
    return _cut_edges(model, clean, corrupted_cache, metric, removed, sender_cache=clean_cache)


def _circuit_heads(model, case, k):
    """The k heads with the largest |attribution| on the case's prompts: where the edges
    that matter are."""
    scores = attribution_head_outputs(model, case["clean"], case["corrupted"], case["metric"]).abs().cpu()
    return [tuple(divmod(int(i), model.cfg.n_heads)) for i in scores.flatten().topk(k).indices]


def _removed_edges_cases(model, generator):
    cases = _setup_cases(model, generator)
    for case, k in zip(cases, (4, _randint(generator, 4, 7))):
        edges = candidate_edges(model, _circuit_heads(model, case, k))
        keep = torch.rand(len(edges), generator=generator) < (0.5 if case is cases[0] else 0.3)
        case.update(corrupted_cache=CachedRun(case.pop("corrupted").tokens), removed=edges[~keep])
    return cases


EXERCISES.append(Exercise(
    metric_with_edges_removed, (), _removed_edges_cases,
    "3 ABC-corrupted prompts of seed 0 with half the edges among its 4 most attributed heads "
    "cut and, hidden, 2 to 4 seeded prompts (ABC or swapped names) with 70% of the edges "
    "among its 4 to 6 most attributed heads cut", **SUM_TOL, needs_model=True, mistakes=(
        Mistake("added", "added the sender's difference (this run - corrupted) to the "
                "receiver's input; subtract it, so the input holds the corrupted output",
                _edges_removed_added),
        Mistake("whole_heads", "replaced the senders' whole outputs, which cuts every path out "
                "of them (into the MLPs and every head), not the listed edges",
                _edges_removed_whole_heads),
        Mistake("clean_senders", "used the senders' clean-run outputs; an edge cut earlier can "
                "change a sender, so use its output in this run (record hook_z)",
                _edges_removed_clean_senders),
    )))


# --- Exercise 12: ACDC over edges ----------------------------------------------------------


def prune_edges(model, clean, corrupted, metric, threshold: float, edges: torch.Tensor) -> torch.Tensor:
    """ACDC over `edges` (int64 [n_edges, 5], already in ACDC's order: from the output
    backwards, as `candidate_edges` makes them); every other edge stays. Visit the rows in
    order and cut an edge for good if cutting it changes the metric of the current circuit
    (`metric_with_edges_removed`, with the corrupted run's cache made once) by less than
    `threshold` in absolute value (strictly: with threshold 0 every edge stays). Returns bool
    [n_edges]: True for the edges kept.
    """
    ### BEGIN SOLUTION
    _, corrupted_cache = model.run_with_cache(as_tokens(corrupted), names_filter=lambda name: name.endswith("hook_z"))
    cut = torch.zeros(len(edges), dtype=torch.bool)
    current = metric_with_edges_removed(model, clean, corrupted_cache, metric, edges[cut])
    for index in tqdm(range(len(edges)), desc="pruning edges"):
        cut[index] = True
        value = metric_with_edges_removed(model, clean, corrupted_cache, metric, edges[cut])
        if abs(float(value - current)) < threshold:
            current = value
        else:
            cut[index] = False
    return ~cut
    ### END SOLUTION


def _prune_edges(model, clean, corrupted, metric, threshold, edges, *, reverse=False, signed=False, against_full=False):
    _, cache = model.run_with_cache(as_tokens(corrupted))
    cut = torch.zeros(len(edges), dtype=torch.bool)
    full = current = metric_with_edges_removed(model, clean, cache, metric, edges[cut])
    for index in reversed(range(len(edges))) if reverse else range(len(edges)):
        cut[index] = True
        value = metric_with_edges_removed(model, clean, cache, metric, edges[cut])
        change = float(value - (full if against_full else current))
        if (change if signed else abs(change)) < threshold:
            current = value
        else:
            cut[index] = False
    return ~cut


def _prune_edges_reversed(model, clean, corrupted, metric, threshold, edges):
    return _prune_edges(model, clean, corrupted, metric, threshold, edges, reverse=True)


def _prune_edges_signed(model, clean, corrupted, metric, threshold, edges):
    return _prune_edges(model, clean, corrupted, metric, threshold, edges, signed=True)


def _prune_edges_against_full(model, clean, corrupted, metric, threshold, edges):
    return _prune_edges(model, clean, corrupted, metric, threshold, edges, against_full=True)


def _prune_edges_cases(model, generator):
    cases = _setup_cases(model, generator)
    cases[0].update(threshold=0.02, edges=candidate_edges(model, _circuit_heads(model, cases[0], 4)))
    heads = _circuit_heads(model, cases[1], _randint(generator, 3, 6))
    threshold = float(torch.empty(1).uniform_(0.01, 0.05, generator=generator))
    cases[1].update(threshold=threshold, edges=candidate_edges(model, heads))
    cases += _edge_threshold_cases(model, generator)
    return cases


def _edge_threshold_cases(model, generator):
    """Two cases on 2 seeded prompts and the edges among their 3 most attributed heads:

    - the metric turned round (`_from_clean`: 0 for the whole model, so a threshold on the
      change relative to the metric cuts nothing) and a threshold between two edges' effects
      at which the search cuts some edges, every |change| it meets at least 5% away from it;
    - nothing corrupted (the corrupted prompts are the clean ones: no cut changes anything)
      and threshold 0: no change is below 0, so every edge stays.
    """
    kind = ("abc", "swapped")[_randint(generator, 0, 2)]
    clean, corrupted, metric = patching_setup(model, 2, _seed(generator), kind)
    edges = candidate_edges(model, _circuit_heads(model, dict(clean=clean, corrupted=corrupted, metric=metric), 3))
    turned = _from_clean(metric)
    _, cache = model.run_with_cache(as_tokens(corrupted), names_filter=lambda name: name.endswith("hook_z"))
    nothing = metric_with_edges_removed(model, clean, cache, turned, edges[:0])
    effects = sorted(abs(float(metric_with_edges_removed(model, clean, cache, turned, edges[i:i + 1]) - nothing))
                     for i in range(len(edges)))
    candidates = [_two_figures((low * high) ** 0.5) for low, high in zip(effects, effects[1:]) if high > 1.2 * low]
    threshold = candidates[0] if candidates else _two_figures(effects[-1] * 1.5)
    for candidate in candidates[:3]:
        cut = torch.zeros(len(edges), dtype=torch.bool)
        current, clear = nothing, True
        for index in range(len(edges)):
            cut[index] = True
            value = metric_with_edges_removed(model, clean, cache, turned, edges[cut])
            clear = clear and abs(abs(float(value - current)) - candidate) > 0.05 * candidate
            if abs(float(value - current)) < candidate:
                current = value
            else:
                cut[index] = False
        if cut.any() and clear:
            threshold = candidate
            break
    return [dict(model=model, clean=clean, corrupted=corrupted, metric=turned, threshold=threshold, edges=edges),
            dict(model=model, clean=clean, corrupted=clean, metric=metric, threshold=0.0, edges=edges)]


EXERCISES.append(Exercise(
    prune_edges, ("edge",), _prune_edges_cases,
    "3 ABC-corrupted prompts of seed 0, threshold 0.02 over the edges among its 4 most "
    "attributed heads and, hidden, 2 to 4 seeded prompts (ABC or swapped names), a seeded "
    "threshold (0.01 to 0.05) over the edges among 3 to 5 most attributed heads, and 2 "
    "seeded prompts over the edges among their 3 most attributed heads, with the metric "
    "turned round (0 on the clean run) at a threshold where some edges are cut (found from "
    "the model's outputs), and with nothing corrupted at threshold 0",
    atol=0, rtol=0, needs_model=True, equivalent_mutants={**UNFILTERED_CORRUPTED_CACHE,
        "for index in tqdm(range(len(edges))):":
            "only the progress bar's label",
    }, mistakes=(
        Mistake("reversed", "visited the edges from the last row; the rows come from the output "
                "backwards, the order ACDC visits them in", _prune_edges_reversed),
        Mistake("signed", "compared the signed change with the threshold: compare |change|",
                _prune_edges_signed),
        Mistake("against_full", "compared with the whole model's metric; compare with the "
                "current circuit's", _prune_edges_against_full),
    )))


# --- Exercise 13: which heads a method recovers ---------------------------------------------


def head_precision_recall(found: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Precision and recall of the heads `found` (bool [n_layers, n_heads]) against the
    `reference` circuit (same shape): precision = |found and reference| / |found|,
    recall = |found and reference| / |reference| (0 where the denominator is 0).
    Returns float [2]: (precision, recall).
    """
    ### BEGIN SOLUTION
    both = (found & reference).sum().float()
    precision = both / found.sum() if found.any() else both * 0
    recall = both / reference.sum() if reference.any() else both * 0
    return torch.stack([precision, recall])
    ### END SOLUTION


def _precision_recall_swapped(found, reference):
    return head_precision_recall(found, reference).flip(0)


def _precision_recall_over_all(found, reference):
    both = (found & reference).sum().float()
    return torch.stack([both / found.numel(), both / reference.sum().clamp_min(1)])


def _precision_recall_cases(generator):
    def pair(layers, heads, p_found, p_reference):
        reference = torch.rand(layers, heads, generator=generator) < p_reference
        found = (torch.rand(layers, heads, generator=generator) < p_found) | (
            reference & (torch.rand(layers, heads, generator=generator) < 0.6))
        return dict(found=found, reference=reference)
    cases = [pair(6, 4, 0.2, 0.3), pair(12, 12, 0.1, 0.15), pair(30, 9, 0.05, 0.08)]
    # nothing found and an empty reference (both 0/0, defined as 0), then one head found that
    # is the reference's only head (precision and recall 1)
    layers, heads = _randint(generator, 2, 8), _randint(generator, 2, 8)
    empty = torch.zeros(layers, heads, dtype=torch.bool)
    cases.append(dict(found=empty, reference=empty.clone()))
    one = torch.zeros(layers, heads, dtype=torch.bool)
    one.view(-1)[_randint(generator, 0, layers * heads)] = True
    cases.append(dict(found=one, reference=one.clone()))
    return cases


EXERCISES.append(Exercise(
    head_precision_recall, ("measure",), _precision_recall_cases,
    "seeded reference circuits and found sets that share part of them and, hidden, empty "
    "sets (0/0) and single heads", **PURE_TOL, equivalent_mutants={
        "precision = both / found.sum() if found.any() else both":
            "where nothing is found, both = |found and reference| is 0 already",
        "precision = both / found.sum() if found.any() else both * 1":
            "where nothing is found, both = |found and reference| is 0 already",
        "recall = both / reference.sum() if reference.any() else both":
            "where the reference is empty, both = |found and reference| is 0 already",
        "recall = both / reference.sum() if reference.any() else both * 1":
            "where the reference is empty, both = |found and reference| is 0 already",
    }, mistakes=(
        Mistake("swapped", "returned (recall, precision); precision divides by the heads found",
                _precision_recall_swapped),
        Mistake("over_all", "divided by every head for precision; divide by the heads found",
                _precision_recall_over_all),
    )))


# --- Exercise 14: antipattern "one circuit" — how much do circuits overlap? ----------------


def circuit_overlaps(circuits: torch.Tensor) -> torch.Tensor:
    """The Jaccard overlap of every pair of circuits (bool [n, n_layers, n_heads]):
    |A and B| / |A or B| (1 where both are empty). Returns float [n, n].
    """
    ### BEGIN SOLUTION
    flat = circuits.flatten(1).float()
    both = flat @ flat.T
    either = flat.sum(1)[:, None] + flat.sum(1)[None, :] - both
    return torch.where(either > 0, both / either.clamp_min(1), torch.ones_like(both))
    ### END SOLUTION


def _overlaps_over_smaller(circuits):
    flat = circuits.flatten(1).float()
    both = flat @ flat.T
    smaller = torch.minimum(flat.sum(1)[:, None], flat.sum(1)[None, :])
    return torch.where(smaller > 0, both / smaller.clamp_min(1), torch.ones_like(both))


def _overlaps_shared_count(circuits):
    flat = circuits.flatten(1).float()
    return flat @ flat.T


def _overlap_cases(generator):
    def circuits(n, layers, heads):
        base = torch.rand(layers, heads, generator=generator) < 0.2
        flips = torch.rand(n, layers, heads, generator=generator) < 0.1
        return dict(circuits=base ^ flips)
    cases = [circuits(3, 6, 4), circuits(5, 12, 12), circuits(4, 30, 9)]
    # two empty circuits (overlap 1), a single head (overlap 0 with an empty one) and two heads
    layers, heads = _randint(generator, 2, 8), _randint(generator, 2, 8)
    small = torch.zeros(4, layers * heads, dtype=torch.bool)
    first, second = torch.randperm(layers * heads, generator=generator)[:2].tolist()
    small[1, first] = small[2, first] = small[2, second] = True
    order = torch.randperm(4, generator=generator)
    cases.append(dict(circuits=small[order].view(4, layers, heads)))
    return cases


EXERCISES.append(Exercise(
    circuit_overlaps, ("circuit", "circuit"), _overlap_cases,
    "seeded circuits that differ from a shared one by random flips and, hidden, two empty "
    "circuits, one of a single head and one of two heads", **PURE_TOL, equivalent_mutants={
        "return torch.where(either > 0, both / either.clamp_min(0), torch.ones_like(both))":
            "where either is 0 torch.where takes the ones, so the 0/0 it computes there is unused",
    }, mistakes=(
        Mistake("over_smaller", "divided by the smaller circuit's size; the Jaccard overlap "
                "divides by the union", _overlaps_over_smaller),
        Mistake("shared_count", "returned the number of shared heads; divide by the union",
                _overlaps_shared_count),
    )))
