"""Edges between attention heads, for Chapter 5's edge attribution and edge pruning.

An edge runs from a *sender* head's output to one input of a later *receiver*: a head's
query, key or value input, or the final residual stream that the unembedding reads (the
logits). Normally every head of a layer reads the same residual stream; with
`split_qkv_inputs` each one reads its own copy (``blocks.{layer}.hook_q_input``,
[batch, pos, head, d_model]), so that one edge can be changed, or differentiated, alone.
In a model with grouped-query attention (SmolLM2: 9 query heads, 3 key/value heads a layer)
the key and value inputs belong to the key/value heads, each shared by several query heads.

An edge is a row of five ints: (kind, sender layer, sender head, receiver layer, receiver
head), kind 0 query, 1 key, 2 value, 3 the logits (whose receiver is (n_layers, 0)).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

KINDS = ("q", "k", "v", "logits")
LOGITS = KINDS.index("logits")


@contextmanager
def split_qkv_inputs(model):
    """Give each head its own query, key and value input hook while inside the block."""
    before = model.cfg.use_split_qkv_input
    model.set_use_split_qkv_input(True)
    try:
        yield model
    finally:
        model.set_use_split_qkv_input(before)


def n_key_value_heads(model) -> int:
    """Heads with their own key and value input: fewer than the query heads under GQA."""
    return model.cfg.n_key_value_heads or model.cfg.n_heads


def receiver_head(model, kind: str, head: int) -> int:
    """Which receiver a query head's `kind` input is: itself for q, its key/value head for k
    and v."""
    return head if kind == "q" else head // (model.cfg.n_heads // n_key_value_heads(model))


def candidate_edges(model, heads: list[tuple[int, int]]) -> torch.Tensor:
    """Every edge among `heads` ((layer, head) pairs) and from each of them to the logits, in
    the order an ACDC-style search visits them: receivers from the output backwards (the
    logits first, then the latest layer), and each receiver's senders from the latest.
    Returns int64 [n_edges, 5]."""
    heads = sorted(set(heads), reverse=True)
    rows = [(LOGITS, layer, head, model.cfg.n_layers, 0) for layer, head in heads]
    receivers = sorted({(layer, kind, receiver_head(model, kind, head))
                        for layer, head in heads for kind in ("q", "k", "v")},
                       key=lambda r: (-r[0], KINDS.index(r[1]), r[2]))
    for layer, kind, receiver in receivers:
        rows += [(KINDS.index(kind), s_layer, s_head, layer, receiver)
                 for s_layer, s_head in heads if s_layer < layer]
    return torch.tensor(rows, dtype=torch.int64).reshape(-1, 5)


def edge_label(edge) -> str:
    """'24.5 -> 29.1 q' (a key or value receiver is a key/value head: '29.kv0 k')."""
    kind, s_layer, s_head, r_layer, r_head = (int(x) for x in edge)
    if kind == LOGITS:
        return f"{s_layer}.{s_head} -> logits"
    receiver = f"{r_layer}.{r_head}" if kind == 0 else f"{r_layer}.kv{r_head}"
    return f"{s_layer}.{s_head} -> {receiver} {KINDS[kind]}"
