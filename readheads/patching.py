"""Run a model from the middle: the residual stream entering one layer in, logits out.

A patching sweep re-runs the model hundreds of times, and every run that patches layer l
recomputes layers 0 .. l-1 exactly as the cached run did. `run_from_layer` skips them: it
feeds a residual stream (e.g. ``cache["resid_pre", l]``) to block l and runs the rest. Hooks
on the later blocks fire as in a full run, so it combines with ``model.hooks(...)``. Likewise
a run that patches position p computes positions before p exactly as the unpatched run did:
`patch_positions` computes only the positions from the first patched one on
(`EarlierPositions`).

(TransformerBridge's own ``start_at_layer`` swaps the residual in at block l but still runs
blocks 0 .. l-1, so it saves no time.)
"""

from __future__ import annotations

import torch


def run_from_layer(model, resid: torch.Tensor, layer: int, positions: torch.Tensor | None = None,
                   earlier: EarlierPositions | None = None) -> torch.Tensor:
    """Logits [batch, pos, vocab] of running blocks `layer` .. n_layers-1, the final norm and
    the unembedding on `resid` [batch, pos, d_model], the residual stream entering `layer`.

    positions: if given ([batch] ints), unembed only position positions[b] of row b (the
        unembedding is a large share of a run from a late layer); the other logits are NaN,
        so reading them by mistake shows.
    earlier: the keys and values of positions 0 .. s-1 from another run (`EarlierPositions`);
        `resid` then holds positions s.. only, which attend to those instead of recomputed
        ones. Positions count from 0 all the same: logits of positions before s are NaN.
    """
    if resid.ndim != 3 or resid.shape[-1] != model.cfg.d_model:
        raise ValueError(f"resid must be [batch, pos, d_model={model.cfg.d_model}], got {tuple(resid.shape)}")
    if not 0 <= layer < model.cfg.n_layers:
        raise ValueError(f"layer must be in 0 .. {model.cfg.n_layers - 1}, got {layer}")
    start = earlier.start if earlier is not None else 0
    args, kwargs = _block_inputs(model, start + resid.shape[1], resid.device)
    if earlier is not None:
        kwargs = earlier.block_kwargs(kwargs, rows=resid.shape[0])
    resid = _run_blocks(model, resid, layer, args, kwargs)
    if positions is None and start == 0:
        return model.unembed(model.ln_final(resid))
    rows = torch.arange(resid.shape[0], device=resid.device)
    positions = (torch.arange(start, start + resid.shape[1], device=resid.device)[None].expand(len(rows), -1)
                 if positions is None else positions.to(resid.device)[:, None])
    if (positions < start).any():
        raise ValueError(f"positions before {start} are not computed in a run that starts there")
    read = model.unembed(model.ln_final(resid[rows[:, None], positions - start]))
    logits = read.new_full((len(rows), start + resid.shape[1], read.shape[-1]), float("nan"))
    logits[rows[:, None], positions] = read
    return logits


class EarlierPositions:
    """The keys and values every layer computed for the first `start` positions of one run,
    for runs that change nothing before `start`: in a causal model those positions stay
    exactly as they were, in every layer, so such a run computes positions start.. only and
    attends to these (`run_from_layer(..., earlier=...)`).

    Record them with `record_earlier_positions`. They reach each attention layer as a key/value
    cache (TransformerLens's bridge reads one passed as ``layer_past``), whose ``update``
    puts them before the layer's own keys and values.
    """

    def __init__(self, by_layer: dict, start: int):
        self.by_layer, self.start = by_layer, start

    def starting_at(self, start: int) -> EarlierPositions:
        """The same run, for runs that change nothing before `start` (≤ the recorded length)."""
        return EarlierPositions(self.by_layer, start)

    def block_kwargs(self, kwargs: dict, rows: int) -> dict:
        """What a block gets for positions start.. of `rows` runs (a multiple of the batch)."""
        kwargs = dict(kwargs, layer_past=_Prepend(self.by_layer, self.start, rows))
        if kwargs.get("position_embeddings") is not None:  # rotary: cos and sin by position
            kwargs["position_embeddings"] = tuple(t[:, self.start:] for t in kwargs["position_embeddings"])
        if kwargs.get("position_ids") is not None:
            kwargs["position_ids"] = kwargs["position_ids"][:, self.start:]
        return kwargs  # the causal mask stays whole: the attention takes the rows it needs


class _Record:
    """A stand-in key/value cache that keeps what each layer computed and changes nothing."""

    def __init__(self):
        self.by_layer = {}

    def update(self, keys, values, layer, *args, **kwargs):
        self.by_layer[layer] = (keys, values)
        return keys, values


class _Prepend:
    """A stand-in key/value cache that puts recorded keys and values (of positions before
    `start`, repeated for stacked runs) before each layer's own."""

    def __init__(self, by_layer: dict, start: int, rows: int):
        self.by_layer, self.start, self.rows = by_layer, start, rows

    def update(self, keys, values, layer, *args, **kwargs):
        recorded_keys, recorded_values = self.by_layer[layer]
        repeats = self.rows // recorded_keys.shape[0]
        return (torch.cat([recorded_keys[..., :self.start, :].repeat(repeats, 1, 1, 1), keys], dim=-2),
                torch.cat([recorded_values[..., :self.start, :].repeat(repeats, 1, 1, 1), values], dim=-2))


def record_earlier_positions(model, resid: torch.Tensor, layer: int = 0) -> EarlierPositions:
    """Run blocks `layer`.. on `resid` [batch, pos, d_model] and keep every layer's keys and
    values (for all positions: pick the start with ``.starting_at(s)``)."""
    record = _Record()
    args, kwargs = _block_inputs(model, resid.shape[1], resid.device)
    kwargs = dict(kwargs, layer_past=record)
    resid = _run_blocks(model, resid, layer, args, kwargs)
    if len(record.by_layer) != model.cfg.n_layers - layer:
        raise RuntimeError("the attention layers did not hand over their keys and values "
                           "(this TransformerLens version ignores `layer_past`): start at 0")
    return EarlierPositions(record.by_layer, resid.shape[1])


def patch_positions(model, resid: torch.Tensor, layer: int, replacement: torch.Tensor,
                    positions: list[int], metric, max_rows: int = 64,
                    earlier: EarlierPositions | None = None) -> torch.Tensor:
    """The metric of one run per position p of `positions`: `resid` [batch, pos, d_model]
    entering `layer` with position p replaced by ``replacement[:, p]``. Returns [len(positions)].

    Runs are stacked along the batch (at most `max_rows` sequences per pass). Patching
    position p leaves positions before p as they were, so each pass starts at its smallest
    patched position and attends to the unpatched run's keys and values before it (`earlier`:
    recorded here if not given, e.g. once for all layers with `record_earlier_positions`).
    That needs a metric that says which position of each prompt it reads
    (``metric.reads_positions``, as `readheads.ioi.PatchingMetric` does), and no pass starts
    after it; without one, every pass starts at position 0.
    """
    batch = resid.shape[0]
    reads = getattr(metric, "reads_positions", None)
    latest_start = int(reads.min()) if reads is not None else 0
    if earlier is None and latest_start > 0 and positions:
        earlier = record_earlier_positions(model, resid, layer)
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    per_pass = max(1, max_rows // batch)
    results = [None] * len(positions)
    for first in range(0, len(order), per_pass):
        chunk = order[first:first + per_pass]
        start = min(positions[chunk[0]], latest_start)
        runs = resid[:, start:].repeat(len(chunk), 1, 1)
        for run, i in enumerate(chunk):
            runs[run * batch:(run + 1) * batch, positions[i] - start] = replacement[:, positions[i]]
        logits = run_from_layer(model, runs, layer, None if reads is None else reads.repeat(len(chunk)),
                                earlier.starting_at(start) if start > 0 else None)
        for run, i in enumerate(chunk):
            results[i] = torch.as_tensor(metric(logits[run * batch:(run + 1) * batch]),
                                         dtype=resid.dtype, device=resid.device)
    return torch.stack(results) if results else resid.new_zeros(0)


def _run_blocks(model, resid: torch.Tensor, layer: int, args: tuple, kwargs: dict) -> torch.Tensor:
    """The residual stream after blocks `layer` .. n_layers-1."""
    for block in model.blocks[layer:]:
        out = block(resid, *args, **kwargs)
        resid = out[0] if isinstance(out, tuple) else out
    return resid


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
