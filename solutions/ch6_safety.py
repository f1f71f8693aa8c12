"""Chapter 6, "The safety case, and how interpretability claims fail": reading truth from the
residual stream with linear probes, testing the reading by steering, a toy deception test, and
the antipatterns as measurements — reference solutions, known mistakes, exercise list.

The data are `readheads.truth`'s items (a prefix, a true and a false one-token completion) and
statements (prefix + completion + full stop). Activations for probes are [n, d_model] rows,
or [layer, n, d_model]; labels are bool (True: a true statement).

A *difference-of-means* (DoM) probe's direction is mean(true rows) - mean(false rows); it
scores a row by its projection on the direction, minus the projection of the midpoint between
the two class means, so that a positive score says "true".
"""

import torch

from autograder.authoring.spec import Exercise, Mistake
from readheads.truth import FAMILIES, select, truth_items, truth_statements

PURE_TOL = dict(atol=1e-5, rtol=1e-4)
FIT_TOL = dict(atol=1e-4, rtol=1e-3)  # a few hundred gradient steps in float32
MODEL_TOL = dict(atol=2e-3, rtol=1e-3)  # logits and residual streams (norms up to ~1e3)
EXERCISES: list[Exercise] = []


def _randint(generator, low, high) -> int:
    return int(torch.randint(low, high, (1,), generator=generator))


def _some_items(model, generator, n_low, n_high):
    """A seeded handful of items (any family, one false completion each): the model need not
    know them, the exercises compute the same thing either way."""
    items = truth_items(model, seed=_randint(generator, 0, 10**6))
    rows = torch.randperm(len(items.texts), generator=generator)[:_randint(generator, n_low, n_high)]
    return items._replace(prefix_tokens=items.prefix_tokens[rows], end_pos=items.end_pos[rows],
                          true_ids=items.true_ids[rows], false_ids=items.false_ids[rows],
                          family=items.family[rows], texts=[items.texts[i] for i in rows])


def _visible_items(model):
    """Three capitals and three sums: the first of each family."""
    items = truth_items(model, ("capitals", "addition"))
    first_three = torch.zeros(len(items.texts), dtype=torch.bool)
    for family in ("capitals", "addition"):
        first_three[(items.family == FAMILIES.index(family)).nonzero().flatten()[:3]] = True
    return select(items, first_three)


def _item_arguments(items) -> dict:
    width = int(items.end_pos.max()) + 1  # no padding column that nothing uses
    return dict(prefix_tokens=items.prefix_tokens[:, :width], end_pos=items.end_pos,
                true_ids=items.true_ids, false_ids=items.false_ids)


# --- Exercise 1: which items the model knows ------------------------------------------------


def completion_margins(model, prefix_tokens: torch.Tensor, end_pos: torch.Tensor,
                       true_ids: torch.Tensor, false_ids: torch.Tensor) -> torch.Tensor:
    """The model's logit for each item's true completion minus its logit for the false one,
    read at the prefix's last token (`end_pos`; rows are right-padded). Positive where the
    model *knows* the item. prefix_tokens [n, pos]; end_pos, true_ids, false_ids [n].
    Returns [n].
    """
    ### BEGIN SOLUTION
    logits = model(prefix_tokens.to(model.cfg.device))
    rows = torch.arange(len(end_pos))
    final = logits[rows, end_pos.to(logits.device)].cpu()
    return final[rows, true_ids] - final[rows, false_ids]
    ### END SOLUTION


def _margins_last_column(model, prefix_tokens, end_pos, true_ids, false_ids):
    return completion_margins(model, prefix_tokens, torch.full_like(end_pos, prefix_tokens.shape[1] - 1),
                              true_ids, false_ids)


def _margins_swapped(model, prefix_tokens, end_pos, true_ids, false_ids):
    return -completion_margins(model, prefix_tokens, end_pos, true_ids, false_ids)


def _margins_probabilities(model, prefix_tokens, end_pos, true_ids, false_ids):
    logits = model(prefix_tokens.to(model.cfg.device))
    rows = torch.arange(len(end_pos))
    final = logits[rows, end_pos.to(logits.device)].softmax(-1).cpu()
    return final[rows, true_ids] - final[rows, false_ids]


def _margin_cases(model, generator):
    return [dict(model=model, **_item_arguments(_visible_items(model))),
            dict(model=model, **_item_arguments(_some_items(model, generator, 4, 9)))]


EXERCISES.append(Exercise(
    completion_margins, ("item",), _margin_cases,
    "the first three capitals and sums and, hidden, 4 to 8 seeded items of any family",
    **MODEL_TOL, needs_model=True, answered_by=("readheads.truth.completion_margin",), mistakes=(
        Mistake("last_column", "read the logits at the last column; rows are right-padded, so "
                "read each row at its end_pos", _margins_last_column),
        Mistake("swapped", "took the false completion's logit minus the true one's", _margins_swapped),
        Mistake("probabilities", "subtracted probabilities; the margin is a difference of logits",
                _margins_probabilities),
    )))


# --- Exercise 2: the residual stream at one position per row, by layer ----------------------


def residual_at(model, tokens: torch.Tensor, positions: torch.Tensor, layers: list[int]) -> torch.Tensor:
    """The residual stream after each layer in `layers` (``blocks.{layer}.hook_resid_post``)
    at one position per row (`positions` [n]), from one forward pass that caches only those
    hooks and stops after the last of them (``stop_at_layer=max(layers) + 1``: the later
    layers and the unembedding are the slow part). `layers` may come in any order and repeat
    a layer: entry i of the result is layer ``layers[i]``. Returns [len(layers), n, d_model]
    on the CPU.
    """
    ### BEGIN SOLUTION
    names = [f"blocks.{layer}.hook_resid_post" for layer in layers]
    _, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=lambda name: name in names,
                                    stop_at_layer=max(layers) + 1)
    rows = torch.arange(len(positions))
    return torch.stack([cache[name][rows, positions.to(cache[name].device)].cpu() for name in names])
    ### END SOLUTION


def _residual_pre(model, tokens, positions, layers):
    names = [f"blocks.{layer}.hook_resid_pre" for layer in layers]
    _, cache = model.run_with_cache(tokens.to(model.cfg.device))
    rows = torch.arange(len(positions))
    return torch.stack([cache[name][rows, positions.to(cache[name].device)].cpu() for name in names])


def _residual_last_column(model, tokens, positions, layers):
    return residual_at(model, tokens, torch.full_like(positions, tokens.shape[1] - 1), layers)


def _residual_cases(model, generator):
    visible = truth_statements(model, _visible_items(model))
    hidden = truth_statements(model, _some_items(model, generator, 2, 5))
    last = model.cfg.n_layers - 1
    layers = sorted(torch.randperm(model.cfg.n_layers, generator=generator)[:_randint(generator, 1, 4)].tolist())
    # unsorted, with a repeat: the result follows `layers` as given (no sorting, no de-duplication)
    low, high = sorted(torch.randperm(model.cfg.n_layers, generator=generator)[:2].tolist())
    few = truth_statements(model, _some_items(model, generator, 2, 3))
    return [dict(model=model, tokens=visible.tokens, positions=visible.end_pos - 1, layers=[0, last // 2, last]),
            dict(model=model, tokens=hidden.tokens, positions=hidden.end_pos, layers=layers),
            dict(model=model, tokens=few.tokens, positions=few.end_pos, layers=[high, low, high])]


EXERCISES.append(Exercise(
    residual_at, ("layer", "row", "d_model"), _residual_cases,
    "the statements of the first three capitals and sums at their completion, three layers, "
    "and, hidden, 2 to 4 seeded items' statements at their full stop, 1 to 3 seeded layers, "
    "and 2 seeded items' statements at two seeded layers listed unsorted with a repeat",
    **MODEL_TOL, needs_model=True, equivalent_mutants={
        "_, cache = model.run_with_cache(tokens.to(model.cfg.device), stop_at_layer=max(layers) + 1)":
            "without names_filter the run caches every hook: the same values, more memory",
        "_, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=lambda name: name in names)":
            "without stop_at_layer the run goes on to the logits: the same cached values, more time",
        "_, cache = model.run_with_cache(tokens.to(model.cfg.device), names_filter=lambda name: name not in names,":
            "the filter also sees each hook's canonical name (blocks.{layer}.hook_out, of which "
            "hook_resid_post is an alias): that is cached and the alias reads it, more memory",
        "stop_at_layer=max(layers) + 2)":
            "one layer more than needed (no error where max(layers) is the last layer, as the "
            "visible case checks): the same cached values, more time",
    }, mistakes=(
        Mistake("resid_pre", "read hook_resid_pre, the stream *entering* the layer (the "
                "previous layer's output); read hook_resid_post", _residual_pre),
        Mistake("last_column", "read the last column; rows are right-padded, so read each row "
                "at its position", _residual_last_column),
    )))


# --- Exercise 3: the difference-of-means direction ------------------------------------------


def mean_difference(acts: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """The mean of the true rows of `acts` [n, d] minus the mean of the false rows (labels:
    bool [n]). Returns [d]."""
    ### BEGIN SOLUTION
    return acts[labels].mean(0) - acts[~labels].mean(0)
    ### END SOLUTION


def _difference_false_minus_true(acts, labels):
    return -mean_difference(acts, labels)


def _difference_from_overall_mean(acts, labels):
    return acts[labels].mean(0) - acts.mean(0)


def _planted(generator, n, d, strength=1.0):
    """Rows with a planted direction: label True adds it, False subtracts it, plus noise and
    an offset shared by every row (which a probe must not mistake for truth)."""
    labels = torch.rand(n, generator=generator) < 0.5
    labels[0], labels[1] = True, False
    direction = torch.randn(d, generator=generator)
    offset = 2 * torch.randn(d, generator=generator)
    noise = torch.randn(n, d, generator=generator) * 2
    return offset + noise + strength * (2 * labels[:, None].float() - 1) * direction, labels


def _difference_cases(generator):
    cases = []
    for n, d in ((10, 6), (_randint(generator, 12, 40), _randint(generator, 4, 20))):
        acts, labels = _planted(generator, n, d)
        cases.append(dict(acts=acts, labels=labels))
    return cases


EXERCISES.append(Exercise(
    mean_difference, ("d",), _difference_cases,
    "seeded rows with a planted truth direction and a shared offset", **PURE_TOL, mistakes=(
        Mistake("false_minus_true", "took mean(false) - mean(true)", _difference_false_minus_true),
        Mistake("overall_mean", "subtracted the mean of every row instead of the false rows' mean",
                _difference_from_overall_mean),
    )))


# --- Exercise 4: scoring rows with a difference-of-means probe ------------------------------


def dom_probe_scores(train_acts: torch.Tensor, train_labels: torch.Tensor, test_acts: torch.Tensor) -> torch.Tensor:
    """Fit a DoM probe on the training rows and score the test rows: with direction
    ``mean_difference(train_acts, train_labels)`` and the midpoint between the training
    classes' means, score = (row - midpoint) · direction. Positive: the probe says true.
    Returns [n_test].
    """
    ### BEGIN SOLUTION
    direction = mean_difference(train_acts, train_labels)
    midpoint = (train_acts[train_labels].mean(0) + train_acts[~train_labels].mean(0)) / 2
    return (test_acts - midpoint) @ direction
    ### END SOLUTION


def _scores_no_midpoint(train_acts, train_labels, test_acts):
    return test_acts @ mean_difference(train_acts, train_labels)


def _scores_test_midpoint(train_acts, train_labels, test_acts):
    return (test_acts - test_acts.mean(0)) @ mean_difference(train_acts, train_labels)


def _score_cases(generator):
    cases = []
    for n, m, d in ((10, 6, 6), (_randint(generator, 12, 40), _randint(generator, 5, 20), _randint(generator, 4, 20))):
        acts, labels = _planted(generator, n + m, d)
        # the test rows lean towards true, so their own mean is not the training midpoint
        test = acts[n:] + 0.5 * mean_difference(acts[:n], labels[:n])
        cases.append(dict(train_acts=acts[:n], train_labels=labels[:n], test_acts=test))
    return cases


EXERCISES.append(Exercise(
    dom_probe_scores, ("test_row",), _score_cases,
    "seeded training and test rows with a planted truth direction and a shared offset",
    **PURE_TOL, mistakes=(
        Mistake("no_midpoint", "projected the rows without subtracting the midpoint: a shared "
                "offset then decides the sign", _scores_no_midpoint),
        Mistake("test_midpoint", "centred on the test rows' mean: the threshold is part of the "
                "probe, fitted on the training rows", _scores_test_midpoint),
    )))


# --- Exercise 5: a logistic-regression probe -----------------------------------------------


def logistic_probe(acts: torch.Tensor, labels: torch.Tensor, steps: int, lr: float,
                   weight_decay: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Logistic regression by full-batch gradient descent: from weight = 0 [d] and bias = 0,
    take `steps` steps of size `lr` on the mean binary cross-entropy of the logits
    ``acts @ weight + bias`` against `labels`, plus ``weight_decay / 2 * |weight|²`` (not on
    the bias). ``torch.nn.functional.binary_cross_entropy_with_logits`` computes the loss.
    Returns (weight, bias).
    """
    ### BEGIN SOLUTION
    weight = torch.zeros(acts.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    targets = labels.float()
    with torch.enable_grad():
        for _ in range(steps):
            logits = acts @ weight + bias
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, targets)
            loss = loss + weight_decay / 2 * weight.pow(2).sum()
            grad_weight, grad_bias = torch.autograd.grad(loss, [weight, bias])
            with torch.no_grad():
                weight -= lr * grad_weight
                bias -= lr * grad_bias
    return weight.detach(), bias.detach()
    ### END SOLUTION


def _logistic(acts, labels, steps, lr, weight_decay, *, use_bias=True, reduction="mean"):
    weight = torch.zeros(acts.shape[1], requires_grad=True)
    bias = torch.zeros((), requires_grad=True)
    with torch.enable_grad():
        for _ in range(steps):
            logits = acts @ weight + (bias if use_bias else 0)
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels.float(), reduction=reduction)
            loss = loss + weight_decay / 2 * weight.pow(2).sum()
            grad_weight, grad_bias = torch.autograd.grad(loss, [weight, bias], allow_unused=True)
            with torch.no_grad():
                weight -= lr * grad_weight
                if grad_bias is not None:
                    bias -= lr * grad_bias
    return weight.detach(), bias.detach()


def _logistic_no_bias(acts, labels, steps, lr, weight_decay):
    return _logistic(acts, labels, steps, lr, weight_decay, use_bias=False)


def _logistic_summed(acts, labels, steps, lr, weight_decay):
    return _logistic(acts, labels, steps, lr, weight_decay, reduction="sum")


def _logistic_cases(generator):
    cases = []
    for n, d, steps in ((24, 6, 50), (_randint(generator, 20, 60), _randint(generator, 4, 16), _randint(generator, 20, 80))):
        acts, labels = _planted(generator, n, d, strength=0.5)
        acts = acts / acts.std()
        labels[2] = True  # more true rows than false ones, so the bias matters
        cases.append(dict(acts=acts, labels=labels, steps=steps, lr=0.1,
                          weight_decay=float(torch.empty(1).uniform_(0.01, 0.1, generator=generator))))
    return cases


EXERCISES.append(Exercise(
    logistic_probe, {"weight": ("d",), "bias": ()}, _logistic_cases,
    "seeded standardised rows with a planted truth direction, 50 steps of 0.1 and, hidden, "
    "20 to 79 steps and a seeded weight decay", **FIT_TOL, mistakes=(
        Mistake("no_bias", "left out the bias: the probe's boundary must pass through the "
                "origin", _logistic_no_bias),
        Mistake("summed", "summed the loss over rows: its gradient, and so each step, grows "
                "with the number of rows; take the mean", _logistic_summed),
    )))


# --- Exercise 6: probe accuracy by layer, on held-out rows ----------------------------------


def accuracy_by_layer(acts: torch.Tensor, labels: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """For each layer of `acts` [layer, n, d]: fit a DoM probe (`dom_probe_scores`) on the
    rows where `train` (bool [n]) is True and return its accuracy on the other rows (a score
    above 0 says true). Returns [layer].
    """
    ### BEGIN SOLUTION
    accuracies = []
    for layer_acts in acts:
        scores = dom_probe_scores(layer_acts[train], labels[train], layer_acts[~train])
        accuracies.append(((scores > 0) == labels[~train]).float().mean())
    return torch.stack(accuracies)
    ### END SOLUTION


def _accuracy_on_training_rows(acts, labels, train):
    return torch.stack([((dom_probe_scores(a[train], labels[train], a[train]) > 0) == labels[train]).float().mean()
                        for a in acts])


def _accuracy_no_midpoint(acts, labels, train):
    return torch.stack([((_scores_no_midpoint(a[train], labels[train], a[~train]) > 0) == labels[~train]).float().mean()
                        for a in acts])


def _layered(generator, n_layers, n, d):
    """Rows whose planted direction is strong in some layers and absent in others, and a
    training split that the probe overfits (few rows, many dimensions)."""
    labels = torch.rand(n, generator=generator) < 0.5
    labels[:2] = torch.tensor([True, False])
    layers = []
    for layer in range(n_layers):
        direction = torch.randn(d, generator=generator) * (layer % 3) / 2
        offset = 3 * torch.randn(d, generator=generator)
        layers.append(offset + 2 * torch.randn(n, d, generator=generator)
                      + (2 * labels[:, None].float() - 1) * direction)
    train = torch.rand(n, generator=generator) < 0.5
    train[:2], train[2:4] = True, False
    return torch.stack(layers), labels, train


def _boundary_rows(generator):
    """Exact rows in 2 dimensions for a score at the threshold: 8 training rows on the corners
    (±2, ±2), each corner twice (label: x > 0, control: y > 0), so each DoM probe has 4 rows
    per class, its midpoint is the shared integer offset and its score is 4x (labels) or 4y
    (control), exactly however it is computed. 4 held-out rows: (0, 3) true (score exactly 0:
    not "true"), (1/8, -3) true (score 1/2), (3, 3) true and (-3, -3) false; seeded order.
    Returns acts [12, 2], labels, control, train."""
    corners = torch.tensor([[2.0, 2.0], [2.0, -2.0], [-2.0, 2.0], [-2.0, -2.0]]).repeat(2, 1)
    held_out = torch.tensor([[0.0, 3.0], [0.125, -3.0], [3.0, 3.0], [-3.0, -3.0]])
    acts = torch.cat([corners, held_out]) + torch.randint(-3, 4, (2,), generator=generator).float()
    labels = torch.cat([corners[:, 0] > 0, torch.tensor([True, True, True, False])])
    control = torch.cat([corners[:, 1] > 0, torch.tensor([True, False, True, False])])
    train = torch.arange(12) < 8
    order = torch.randperm(12, generator=generator)
    return acts[order], labels[order], control[order], train[order]


def _layer_cases(generator):
    cases = [dict(zip(("acts", "labels", "train"), _layered(generator, *shape)))
             for shape in ((4, 16, 12), (_randint(generator, 3, 7), _randint(generator, 16, 40), _randint(generator, 8, 30)))]
    # a held-out score of exactly 0 (says false) in layer 0; layer 1 scales it by 2 (scores 16x)
    acts, labels, _, train = _boundary_rows(generator)
    cases.append(dict(acts=torch.stack([acts, 2 * acts - 1]), labels=labels, train=train))
    return cases


EXERCISES.append(Exercise(
    accuracy_by_layer, ("layer",), _layer_cases,
    "seeded rows whose truth direction is strong in some layers and absent in others, a "
    "seeded training split and, hidden, exact rows with a held-out score of exactly 0",
    **PURE_TOL, mistakes=(
        Mistake("on_training_rows", "measured the accuracy on the training rows: a probe "
                "with more dimensions than rows fits them whatever they mean", _accuracy_on_training_rows),
        Mistake("no_midpoint", "scored without subtracting the midpoint (use dom_probe_scores)",
                _accuracy_no_midpoint),
    )))


# --- Exercise 7: held-out templates ---------------------------------------------------------


def held_out_family_accuracy(acts: torch.Tensor, labels: torch.Tensor, family: torch.Tensor) -> torch.Tensor:
    """Leave one family (template) out: for each family in ``family.unique()`` (sorted, whatever
    order the rows come in), fit a DoM probe on the rows of every *other* family and return its
    accuracy on this family's rows (a score above 0 says true). acts [n, d], labels bool [n],
    family int64 [n]. Returns [n_families].
    """
    ### BEGIN SOLUTION
    accuracies = []
    for name in family.unique():
        held_out = family == name
        scores = dom_probe_scores(acts[~held_out], labels[~held_out], acts[held_out])
        accuracies.append(((scores > 0) == labels[held_out]).float().mean())
    return torch.stack(accuracies)
    ### END SOLUTION


def _families_included(acts, labels, family):
    return torch.stack([((dom_probe_scores(acts, labels, acts[family == f]) > 0) == labels[family == f]).float().mean()
                        for f in family.unique()])


def _families_on_the_rest(acts, labels, family):
    accuracies = []
    for name in family.unique():
        rest = family != name
        scores = dom_probe_scores(acts[rest], labels[rest], acts[rest])
        accuracies.append(((scores > 0) == labels[rest]).float().mean())
    return torch.stack(accuracies)


def _family_cases(generator):
    """Each family has its own offset and its own way of marking truth, plus a shared truth
    direction: a probe that learns a family's template fails on the held-out family."""
    cases = []
    for n_families, per_family, d in ((3, 6, 8), (_randint(generator, 3, 6), _randint(generator, 4, 10), _randint(generator, 6, 20))):
        shared = torch.randn(d, generator=generator)
        acts, labels, family = [], [], []
        for index in range(n_families):
            label = torch.arange(per_family) % 2 == 0
            own = torch.randn(d, generator=generator) * 2
            sign = 2 * label[:, None].float() - 1
            acts.append(3 * torch.randn(d, generator=generator) + torch.randn(per_family, d, generator=generator)
                        + sign * (0.5 * shared + own))
            labels.append(label)
            family.append(torch.full((per_family,), index * 2))  # family ids need not be 0..n-1
        cases.append(dict(acts=torch.cat(acts), labels=torch.cat(labels), family=torch.cat(family)))
    cases.append(_exact_families(generator))
    return cases


def _exact_families(generator):
    """Three families (ids 4, 0, 2; the rows start with family 4, so the order of first
    appearance is not the sorted one) of 2 true and 2 false rows in 2 dimensions, with a
    seeded integer offset. Any two families have true rows averaging x = 2, false rows x = -2
    and y = 0 in both classes, so each held-out family's scores are exactly 4x: family 4 has a
    true row at score 0 (says false), accuracies 3/4 (family 4), 1 (family 0), 1/2 (family 2)."""
    rows = torch.tensor([[4.0, 1.0], [0.0, -1.0], [-2.0, 1.0], [-2.0, -1.0],  # family 4
                         [2.0, 1.0], [2.0, -1.0], [-1.0, 1.0], [-3.0, -1.0],  # family 0
                         [5.0, 1.0], [-1.0, -1.0], [1.0, 1.0], [-5.0, -1.0]])  # family 2
    labels = torch.tensor([True, True, False, False] * 3)
    family = torch.tensor([4] * 4 + [0] * 4 + [2] * 4)
    order = torch.randperm(12, generator=generator)
    first = int((family[order] == 4).nonzero()[0])
    order[[0, first]] = order[[first, 0]]  # a row of family 4 first
    acts = rows + torch.randint(-3, 4, (2,), generator=generator).float()
    return dict(acts=acts[order], labels=labels[order], family=family[order])


EXERCISES.append(Exercise(
    held_out_family_accuracy, ("family",), _family_cases,
    "seeded families that each mark truth their own way, plus a weaker shared direction and, "
    "hidden, three exact families whose rows come unsorted by family, one score exactly 0",
    **PURE_TOL, mistakes=(
        Mistake("family_included", "fitted the probe on every row, the held-out family's "
                "too: that measures fit, not transfer to a new template", _families_included),
        Mistake("on_the_rest", "measured the accuracy on the other families' rows (the "
                "training rows); measure it on the held-out family", _families_on_the_rest),
    )))


# --- Exercise 8: control task and selectivity ----------------------------------------------


def selectivity(acts: torch.Tensor, labels: torch.Tensor, control: torch.Tensor, train: torch.Tensor) -> torch.Tensor:
    """How much better a DoM probe reads the real labels than a control task's (Hewitt and
    Liang 2019): its held-out accuracy (fit on the `train` rows, measured on the others, a
    score above 0 saying true) on `labels`, minus its held-out accuracy on `control` (bool
    [n]: labels that follow something other than truth, e.g. a random label per completion
    word). Returns 0-dim.
    """
    ### BEGIN SOLUTION
    def held_out_accuracy(targets):
        scores = dom_probe_scores(acts[train], targets[train], acts[~train])
        return ((scores > 0) == targets[~train]).float().mean()

    return held_out_accuracy(labels) - held_out_accuracy(control)
    ### END SOLUTION


def _selectivity_ratio(acts, labels, control, train):
    real = accuracy_by_layer(acts[None], labels, train)[0]
    return real / accuracy_by_layer(acts[None], control, train)[0]


def _selectivity_control_on_training(acts, labels, control, train):
    real = accuracy_by_layer(acts[None], labels, train)[0]
    scores = dom_probe_scores(acts[train], control[train], acts[train])
    return real - ((scores > 0) == control[train]).float().mean()


def _selectivity_cases(generator):
    cases = []
    for n, d in ((20, 8), (_randint(generator, 20, 50), _randint(generator, 6, 24))):
        acts, labels = _planted(generator, n, d)
        control = torch.rand(n, generator=generator) < 0.5
        control[:2] = torch.tensor([True, False])
        train = torch.arange(n) % 3 != 0
        cases.append(dict(acts=acts, labels=labels, control=control, train=train))
    # exact scores: one held-out score of exactly 0 (says false) and one of 1/2 (says true)
    cases.append(dict(zip(("acts", "labels", "control", "train"), _boundary_rows(generator))))
    return cases


EXERCISES.append(Exercise(
    selectivity, (), _selectivity_cases,
    "seeded rows with a planted truth direction, random control labels, every third row held "
    "out and, hidden, exact rows with held-out scores of exactly 0 and 1/2",
    **PURE_TOL, mistakes=(
        Mistake("ratio", "divided the accuracies; selectivity is their difference", _selectivity_ratio),
        Mistake("control_on_training", "measured the control task on the training rows: a "
                "probe can fit random labels there, so measure both on held-out rows",
                _selectivity_control_on_training),
    )))


# --- Exercise 9: steering along a direction -------------------------------------------------


def steered_margins(model, prefix_tokens: torch.Tensor, end_pos: torch.Tensor, true_ids: torch.Tensor,
                    false_ids: torch.Tensor, layer: int, vector: torch.Tensor) -> torch.Tensor:
    """`completion_margins` with `vector` [d_model] added to the residual stream after
    `layer` (``blocks.{layer}.hook_resid_post``) at each row's last prefix token (`end_pos`)
    only. Returns [n].
    """
    ### BEGIN SOLUTION
    rows = torch.arange(len(end_pos))

    def add(resid, hook):
        resid[rows, end_pos.to(resid.device)] += vector.to(resid.device)
        return resid

    with model.hooks(fwd_hooks=[(f"blocks.{layer}.hook_resid_post", add)]):
        return completion_margins(model, prefix_tokens, end_pos, true_ids, false_ids)
    ### END SOLUTION


def _steer(model, prefix_tokens, end_pos, true_ids, false_ids, hook_name, vector, everywhere=False):
    rows = torch.arange(len(end_pos))

    def add(resid, hook):
        if everywhere:
            return resid + vector.to(resid.device)
        resid[rows, end_pos.to(resid.device)] += vector.to(resid.device)
        return resid

    with model.hooks(fwd_hooks=[(hook_name, add)]):
        return completion_margins(model, prefix_tokens, end_pos, true_ids, false_ids)


def _steered_every_position(model, prefix_tokens, end_pos, true_ids, false_ids, layer, vector):
    return _steer(model, prefix_tokens, end_pos, true_ids, false_ids, f"blocks.{layer}.hook_resid_post",
                  vector, everywhere=True)


def _steered_resid_pre(model, prefix_tokens, end_pos, true_ids, false_ids, layer, vector):
    return _steer(model, prefix_tokens, end_pos, true_ids, false_ids, f"blocks.{layer}.hook_resid_pre", vector)


def _steered_subtracted(model, prefix_tokens, end_pos, true_ids, false_ids, layer, vector):
    return steered_margins(model, prefix_tokens, end_pos, true_ids, false_ids, layer, -vector)


def _steering_cases(model, generator):
    cases = []
    for items, layer in ((_visible_items(model), model.cfg.n_layers // 2),
                         (_some_items(model, generator, 3, 7), _randint(generator, 0, model.cfg.n_layers))):
        vector = torch.randn(model.cfg.d_model, generator=generator)
        cases.append(dict(model=model, **_item_arguments(items), layer=layer, vector=20 * vector / vector.norm()))
    return cases


EXERCISES.append(Exercise(
    steered_margins, ("item",), _steering_cases,
    "the first three capitals and sums steered at the middle layer and, hidden, 3 to 6 seeded "
    "items at a seeded layer; seeded vectors of norm 20", **MODEL_TOL, needs_model=True, mistakes=(
        Mistake("every_position", "added the vector at every position; add it at each row's "
                "end_pos only", _steered_every_position),
        Mistake("wrong_layer", "steered hook_resid_pre, the stream entering the layer (one "
                "layer early); the probe read hook_resid_post", _steered_resid_pre),
        Mistake("subtracted", "subtracted the vector", _steered_subtracted),
    )))


# --- Exercise 10: the toy deception test's table -------------------------------------------


def deception_table(output_true: torch.Tensor, probe_true: torch.Tensor) -> torch.Tensor:
    """Count the items by what the model *says* and what the probe *reads*: output_true (bool
    [n]) whether the model prefers the true completion, probe_true (bool [n]) whether the
    probe scores the item's true statement above its false one. Returns int64 [2, 2]: [said, read], index 0 for
    false and 1 for true, so [0, 1] counts the items where the model says the false thing
    and the probe still reads the truth.
    """
    ### BEGIN SOLUTION
    table = torch.zeros(2, 2, dtype=torch.int64)
    table.index_put_((output_true.long(), probe_true.long()), torch.ones(len(output_true), dtype=torch.int64),
                     accumulate=True)
    return table
    ### END SOLUTION


def _table_transposed(output_true, probe_true):
    return deception_table(output_true, probe_true).T


def _table_true_first(output_true, probe_true):
    return deception_table(output_true, probe_true).flip(0, 1)


def _table_cases(generator):
    # visible: 12 items, counts 1, 3, 2 and 6 in shuffled order (all four cells differ)
    said, read = torch.tensor([0] * 4 + [1] * 8), torch.tensor([0] + [1] * 3 + [0] * 2 + [1] * 6)
    order = torch.randperm(12, generator=generator)
    cases = [dict(output_true=said[order].bool(), probe_true=read[order].bool())]
    n = _randint(generator, 20, 60)
    cases.append(dict(output_true=torch.rand(n, generator=generator) < 0.4,
                      probe_true=torch.rand(n, generator=generator) < 0.8))
    # an empty cell, the last one: the probe never reads the truth where the model says it
    n = _randint(generator, 6, 20)
    said = torch.rand(n, generator=generator) < 0.5
    said[:3] = torch.tensor([False, False, True])
    read = (torch.rand(n, generator=generator) < 0.6) & ~said
    read[:2] = torch.tensor([False, True])
    order = torch.randperm(n, generator=generator)
    cases.append(dict(output_true=said[order], probe_true=read[order]))
    return cases


EXERCISES.append(Exercise(
    deception_table, ("said", "read"), _table_cases,
    "12 shuffled verdicts whose four counts differ and, hidden, 20 to 59 seeded verdicts (the "
    "model says the truth for about 40% of items, the probe reads it for 80%) and 6 to 19 "
    "seeded verdicts that leave the cell [1, 1] empty",
    atol=0, rtol=0, mistakes=(
        Mistake("transposed", "put the probe's reading in the rows; rows are what the model says",
                _table_transposed),
        Mistake("true_first", "put true at index 0; index 0 is false, 1 is true", _table_true_first),
    )))


# --- Exercise 11: antipattern "cherry-picked layer" ----------------------------------------


def honest_layer_accuracy(validation: torch.Tensor, test: torch.Tensor) -> torch.Tensor:
    """Choose the layer on one split, report it on another. validation and test: accuracies
    [seed, layer] of probes fitted with different seeds (splits). For each seed, the test
    accuracy at the layer with the best validation accuracy (the first such layer on ties).
    Returns [seed].
    """
    ### BEGIN SOLUTION
    best = validation.argmax(dim=1)
    return test[torch.arange(len(test)), best]
    ### END SOLUTION


def _honest_chosen_on_test(validation, test):
    return test.max(dim=1).values


def _honest_validation_value(validation, test):
    return validation.max(dim=1).values


def _honest_cases(generator):
    cases = []
    for seeds, layers in ((3, 6), (_randint(generator, 2, 8), _randint(generator, 5, 30))):
        signal = torch.linspace(0.6, 0.8, layers)
        cases.append(dict(validation=signal + 0.1 * torch.rand(seeds, layers, generator=generator),
                          test=signal + 0.1 * torch.rand(seeds, layers, generator=generator)))
    # ties: each seed's best validation accuracy (exactly 3/4) at two seeded layers
    seeds, layers = _randint(generator, 2, 6), _randint(generator, 4, 12)
    validation = torch.randint(0, 3, (seeds, layers), generator=generator) / 4
    for seed in range(seeds):
        validation[seed, torch.randperm(layers, generator=generator)[:2]] = 0.75
    cases.append(dict(validation=validation, test=0.6 + 0.2 * torch.rand(seeds, layers, generator=generator)))
    return cases


EXERCISES.append(Exercise(
    honest_layer_accuracy, ("seed",), _honest_cases,
    "seeded accuracies that rise with depth, plus noise that differs between the splits and, "
    "hidden, accuracies in quarters where each seed's best validation accuracy is tied at two layers",
    **PURE_TOL, mistakes=(
        Mistake("chosen_on_test", "chose the layer on the test accuracies: the best of many "
                "noisy numbers is an optimistic estimate", _honest_chosen_on_test),
        Mistake("validation_value", "reported the validation accuracy of the chosen layer; "
                "report its test accuracy", _honest_validation_value),
    )))


# --- Exercise 12: which SAE features point along the truth direction -----------------------


def feature_alignment(W_dec: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
    """The cosine similarity of each SAE feature's decoder row (W_dec [feature, d_model]) with
    `direction` [d_model]. Returns [feature]."""
    ### BEGIN SOLUTION
    return torch.nn.functional.cosine_similarity(W_dec, direction[None], dim=1)
    ### END SOLUTION


def _alignment_dot(W_dec, direction):
    return W_dec @ (direction / direction.norm())


def _alignment_unnormalised(W_dec, direction):
    return (W_dec / W_dec.norm(dim=1, keepdim=True)) @ direction


def _alignment_cases(generator):
    cases = []
    for features, d in ((8, 6), (_randint(generator, 10, 60), _randint(generator, 4, 32))):
        W_dec = torch.randn(features, d, generator=generator) * torch.rand(features, 1, generator=generator) * 3
        cases.append(dict(W_dec=W_dec, direction=5 * torch.randn(d, generator=generator)))
    return cases


EXERCISES.append(Exercise(
    feature_alignment, ("feature",), _alignment_cases,
    "seeded decoder rows of different norms and a direction of norm about 5", **PURE_TOL,
    equivalent_mutants={
        "return torch.nn.functional.cosine_similarity(W_dec, direction[None])":
            "dim=1 is cosine_similarity's default; the inputs are 2-D",
    }, mistakes=(
        Mistake("dot_product", "took the dot product with the decoder rows as they are; "
                "normalise them too", _alignment_dot),
        Mistake("unnormalised_direction", "did not normalise the direction", _alignment_unnormalised),
    )))
