"""Exact activation-patching sweeps on IOI prompts, as Chapter 3 builds them: the ground truth
that the later chapters' faster methods (attribution patching, pruning) are compared with.

Each sweep *denoises*: it runs the corrupted prompts and patches in one clean activation at a
time, measuring the metric (`readheads.ioi.PatchingMetric`) on the patched logits. Runs are
batched and start at the patched layer (`readheads.patching`).
"""

from __future__ import annotations

import torch
from tqdm.auto import tqdm

from .ioi import as_tokens
from .patching import patch_positions, patched_runs


def _caches(model, clean, corrupted, suffixes: tuple[str, ...]):
    wanted = lambda name: name.endswith(suffixes + ("hook_resid_pre",))  # noqa: E731
    _, clean_cache = model.run_with_cache(as_tokens(clean), names_filter=wanted)
    corrupted_logits, corrupted_cache = model.run_with_cache(as_tokens(corrupted), names_filter=wanted)
    return clean_cache, corrupted_cache, corrupted_logits


@torch.no_grad()
def residual_sweep(model, clean, corrupted, metric) -> torch.Tensor:
    """[layer, pos]: the metric with the clean residual stream entering each layer
    (``hook_resid_pre``) patched in at one position."""
    clean_cache, corrupted_cache, corrupted_logits = _caches(model, clean, corrupted, ())
    n_positions = as_tokens(clean).shape[1]
    results = torch.as_tensor(metric(corrupted_logits)).repeat(model.cfg.n_layers, n_positions)
    for layer in tqdm(range(model.cfg.n_layers), desc="exact sweep: residual stream"):
        clean_resid, corrupted_resid = clean_cache["resid_pre", layer], corrupted_cache["resid_pre", layer]
        changed = [p for p in range(n_positions) if not torch.equal(clean_resid[:, p], corrupted_resid[:, p])]
        results[layer, changed] = patch_positions(model, corrupted_resid, layer, clean_resid, changed, metric)
    return results


@torch.no_grad()
def layer_output_sweep(model, clean, corrupted, metric) -> torch.Tensor:
    """[2, layer]: the metric with one layer's clean attention output (row 0) or MLP output
    (row 1) patched in at every position."""
    clean_cache, corrupted_cache, _ = _caches(model, clean, corrupted, ("hook_attn_out", "hook_mlp_out"))
    results = torch.zeros(2, model.cfg.n_layers)
    for layer in tqdm(range(model.cfg.n_layers), desc="exact sweep: layer outputs"):
        for row, kind in enumerate(("attn_out", "mlp_out")):
            clean_output = clean_cache[kind, layer]
            results[row, layer] = patched_runs(model, corrupted_cache["resid_pre", layer], layer,
                                               f"blocks.{layer}.hook_{kind}",
                                               [lambda output: output.copy_(clean_output)], metric)[0]
    return results


@torch.no_grad()
def head_output_sweep(model, clean, corrupted, metric) -> torch.Tensor:
    """[layer, head]: the metric with one head's clean output (``attn.hook_z``) patched in at
    every position."""
    clean_cache, corrupted_cache, _ = _caches(model, clean, corrupted, ("hook_z",))
    rows = []
    for layer in tqdm(range(model.cfg.n_layers), desc="exact sweep: head outputs"):
        clean_z = clean_cache["z", layer]

        def patch_head(head):
            def patch(z):
                z[:, :, head] = clean_z[:, :, head]
            return patch

        rows.append(patched_runs(model, corrupted_cache["resid_pre", layer], layer,
                                 f"blocks.{layer}.attn.hook_z",
                                 [patch_head(h) for h in range(model.cfg.n_heads)], metric))
    return torch.stack(rows).cpu()
