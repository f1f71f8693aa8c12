"""Run a model from the middle: the residual stream entering one layer in, logits out.

A patching sweep re-runs the model hundreds of times, and every run that patches layer l
recomputes layers 0 .. l-1 exactly as the cached run did. `run_from_layer` skips them: it
feeds a residual stream (e.g. ``cache["resid_pre", l]``) to block l and runs the rest. Hooks
on the later blocks fire as in a full run, so it combines with ``model.hooks(...)``.

(TransformerBridge's own ``start_at_layer`` swaps the residual in at block l but still runs
blocks 0 .. l-1, so it saves no time.)
"""

from __future__ import annotations

import torch


def run_from_layer(model, resid: torch.Tensor, layer: int, positions: torch.Tensor | None = None) -> torch.Tensor:
    """Logits [batch, pos, vocab] of running blocks `layer` .. n_layers-1, the final norm and
    the unembedding on `resid` [batch, pos, d_model], the residual stream entering `layer`.

    positions: if given ([batch] ints), unembed only position positions[b] of row b (the
    unembedding is a large share of a run from a late layer); the other logits are NaN, so
    reading them by mistake shows.
    """
    if resid.ndim != 3 or resid.shape[-1] != model.cfg.d_model:
        raise ValueError(f"resid must be [batch, pos, d_model={model.cfg.d_model}], got {tuple(resid.shape)}")
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer must be in 0 .. {model.cfg.n_layers - 1}, got {layer}")
    args, kwargs = _block_inputs(model, resid.shape[1], resid.device)
    for block in model.blocks[layer:]:
        out = block(resid, *args, **kwargs)
        resid = out[0] if isinstance(out, tuple) else out
    if positions is None:
        return model.unembed(model.ln_final(resid))
    rows = torch.arange(resid.shape[0], device=resid.device)
    positions = positions.to(resid.device)
    read = model.unembed(model.ln_final(resid[rows, positions][:, None]))[:, 0]
    logits = read.new_full((*resid.shape[:2], read.shape[-1]), float("nan"))
    logits[rows, positions] = read
    return logits


class _Captured(Exception):
    """Stops the capturing run before block 0 computes anything."""


def _block_inputs(model, n_positions: int, device) -> tuple[tuple, dict]:
    """What the model passes its blocks besides the residual stream (position ids, the causal
    mask, rotary embeddings...) for sequences of `n_positions`: read from a one-row run that
    stops on entering block 0 (before any block hook fires). Key/value caches are dropped:
    each run here starts afresh."""
    seen = {}

    def record(module, args, kwargs):
        seen["args"], seen["kwargs"] = args[1:], kwargs
        raise _Captured

    handle = model.blocks[0].register_forward_pre_hook(record, with_kwargs=True)
    try:
        model(torch.zeros(1, n_positions, dtype=torch.long, device=device))
    except _Captured:
        pass
    finally:
        handle.remove()
    args = tuple(None if _is_kv_cache(a) else a for a in seen["args"])
    kwargs = {k: None if _is_kv_cache(v) else v for k, v in seen["kwargs"].items()}
    if "use_cache" in kwargs:
        kwargs["use_cache"] = False
    return args, kwargs


def _is_kv_cache(value) -> bool:
    return type(value).__name__.endswith("Cache")


def patched_runs(model, resid: torch.Tensor, layer: int, hook_name: str, patches: list,
                 metric, max_rows: int = 64) -> torch.Tensor:
    """The metric of one run per patch, many runs per forward pass.

    Every run starts from `resid` [batch, pos, d_model] entering `layer`; in run i,
    ``patches[i](activation)`` edits, in place, that run's activation at `hook_name` (a hook
    in block `layer` or later; shape [batch, ...]). Runs are stacked along the batch, at most
    `max_rows` sequences per forward pass, so memory stays bounded. Returns [len(patches)].

    A metric that reads only one position per prompt may say which in ``metric.reads_positions``
    ([batch], as `readheads.ioi.PatchingMetric` does): only those positions are unembedded.
    """
    batch = resid.shape[0]
    positions = getattr(metric, "reads_positions", None)
    per_pass = max(1, max_rows // batch)
    results = []
    for start in range(0, len(patches), per_pass):
        chunk = patches[start:start + per_pass]

        def apply(activation, hook):
            runs = activation.clone().unflatten(0, (len(chunk), batch))
            for run, patch in zip(runs, chunk):
                patch(run)
            return runs.flatten(0, 1)

        with model.hooks(fwd_hooks=[(hook_name, apply)]):
            logits = run_from_layer(model, resid.repeat(len(chunk), 1, 1), layer,
                                    None if positions is None else positions.repeat(len(chunk)))
        results += [torch.as_tensor(metric(run_logits), dtype=resid.dtype, device=resid.device)
                    for run_logits in logits.unflatten(0, (len(chunk), batch))]
    return torch.stack(results) if results else resid.new_zeros(0)
