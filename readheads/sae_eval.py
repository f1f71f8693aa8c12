"""How good an SAE is: sparsity, reconstruction, and what splicing it into the model costs.

- L0: features active per token (sparsity).
- MSE and the fraction of variance explained, 1 - Σ|x - x_hat|² / Σ|x - mean(x)|².
- Cross-entropy loss recovered: run the model with the SAE's reconstruction in place of the
  activation (the SAE "spliced in"), and with the activation zeroed;
  (CE_zero - CE_sae) / (CE_zero - CE_clean) is 1 for a perfect SAE and 0 for one no better
  than deleting the activation.
- Dead features (never fired on the tokens) and dense ones (fire on more than 10% of them).

Position 0 (BOS) is left alone: the course's SAEs are trained without it. The activation
statistics (L0, MSE, variance, density) count ordinary tokens only: special tokens (the
end-of-text token between articles) have residual norms a hundred times larger and would
dominate every sum. The spliced runs replace every position from 1 on.

norm_limit: an SAE trained without tokens of massive norm (`TrainingConfig.outlier_norm_ratio`)
is measured without them too: they are left out of the statistics and kept as they are in
the spliced run, as BOS is. By default the limit is the SAE's own (``sae.norm_limit``, read
from its manifest by `load_sae`); pass a number for another, or None to apply the SAE to
every token.
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .harvest import activations_at
from .sae import OWN_LIMIT, resolve_norm_limit

DENSE_ABOVE = 0.1


def ordinary_tokens(model, tokens: torch.Tensor) -> torch.Tensor:
    """bool, same shape as `tokens`: True where the token is not a special token."""
    special = torch.tensor(model.tokenizer.all_special_ids, device=tokens.device)
    return ~torch.isin(tokens, special)


def splice_hook(replacement, first: int = 1):
    """A hook that replaces positions first.. of the activation with replacement(them)
    (default: all but BOS). ``splice_hook(sae)`` splices an SAE in: ``sae(x)`` leaves the
    tokens over its norm limit as they are (`reconstruct_below` for another limit)."""
    def hook(activation, hook):
        out = activation.clone()
        out[:, first:] = replacement(activation[:, first:])
        return out
    return hook


def next_token_loss(model, tokens: torch.Tensor, fwd_hooks=()) -> torch.Tensor:
    """The model's mean next-token cross-entropy on `tokens` (every prediction), with hooks."""
    with torch.no_grad(), model.hooks(fwd_hooks=list(fwd_hooks)):
        return model(tokens.to(model.cfg.device), return_type="loss")


def reconstruct_below(sae, norm_limit=OWN_LIMIT):
    """x -> the SAE's reconstruction of x, except where |x| > norm_limit (kept as it is).
    Default: the SAE's own limit; None: reconstruct every token."""
    return lambda x: sae(x, norm_limit=norm_limit)


@torch.no_grad()
def evaluate_sae(model, sae, tokens: torch.Tensor, batch_size: int = 16,
                 norm_limit=OWN_LIMIT, progress: bool = True,
                 baseline: dict | None = None) -> dict:
    """An SAE's metrics on `tokens` [row, pos] (see the module's docstring).

    norm_limit: tokens of a larger norm are left out of the statistics and kept as they are
    in the spliced run; default the SAE's own (``sae.norm_limit``), None: no limit.
    baseline: metrics of another SAE on the same tokens, whose clean and zero-ablation losses
    are reused instead of recomputed (they do not depend on the SAE)."""
    norm_limit = resolve_norm_limit(sae, norm_limit)
    hook = sae.cfg.hook_name
    totals = dict(l0=0.0, squared_error=0.0, count=0, clean=0.0, sae=0.0, zero=0.0)
    sums, squares = 0.0, 0.0
    fired = torch.zeros(sae.cfg.d_sae, device=sae.W_enc.device)
    for batch in tqdm(tokens.split(batch_size), desc="evaluate SAE", disable=not progress):
        x = activations_at(model, batch, hook)[:, 1:].flatten(0, 1).to(sae.W_enc.device)
        x = x[ordinary_tokens(model, batch[:, 1:]).flatten().to(x.device)]
        x = x[x.norm(dim=-1) <= norm_limit] if norm_limit is not None else x
        features = sae.encode(x, norm_limit=None)  # those over the limit are left out above
        totals["l0"] += float((features > 0).sum())
        totals["squared_error"] += float((sae.decode(features) - x).pow(2).sum())
        sums = sums + x.sum(0)
        squares += float(x.pow(2).sum())
        totals["count"] += len(x)
        fired += (features > 0).sum(0)
        rows = len(batch)
        spliced = splice_hook(reconstruct_below(sae, norm_limit))
        totals["sae"] += rows * float(next_token_loss(model, batch, [(hook, spliced)]))
        if baseline is None:
            totals["clean"] += rows * float(next_token_loss(model, batch))
            zeroed = splice_hook(torch.zeros_like)
            totals["zero"] += rows * float(next_token_loss(model, batch, [(hook, zeroed)]))
    n, rows = totals["count"], len(tokens)
    variance = squares - float(sums.pow(2).sum()) / n
    clean, with_sae, zero = (totals[k] / rows for k in ("clean", "sae", "zero"))
    if baseline is not None:
        clean, zero = baseline["ce_clean"], baseline["ce_zero_ablation"]
    frequency = fired / n
    return {"tokens": n, "l0": totals["l0"] / n, "mse": totals["squared_error"] / n,
            "variance_explained": 1 - totals["squared_error"] / variance,
            "ce_clean": clean, "ce_with_sae": with_sae, "ce_zero_ablation": zero,
            "ce_loss_recovered": (zero - with_sae) / (zero - clean),
            "dead_fraction": float((frequency == 0).float().mean()),
            "dense_fraction": float((frequency > DENSE_ABOVE).float().mean())}
