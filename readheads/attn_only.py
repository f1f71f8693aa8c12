"""Attention-only transformers, small enough to train on a CPU (the "How induction heads form"
chapter).

Token and position embeddings, `n_layers` blocks of multi-head attention, an unembedding:
no MLPs, no LayerNorm, no biases. Without LayerNorm the logits are exactly the sum of the
direct path (W_E, W_pos to W_U) and one term per head and path through the heads (Elhage et
al. 2021), so a forward pass written from the weights, the QK/OV circuits and composition
scores need no folding; at one or two layers and these widths training is stable without it.
Chapter 2's direct logit attribution reads ``ln_final.hook_scale``, which this model lacks.

The model is a TransformerLens ``HookedRootModule`` with the hook names and weight layouts of
the course's other models, so Chapters 1-2's code runs on it unchanged: ``run_with_cache``
(returning an ``ActivationCache``: ``cache["pattern", layer]``), ``run_with_hooks``,
``model.hooks(...)``, ``model.cfg.n_layers``, ``model.W_Q`` [layer, head, d_model, d_head],
``model.blocks[layer].attn.W_O``/``b_O`` (None), ``model.tokenizer.bos_token_id`` (token 0).

Hooks: ``hook_embed``, ``hook_pos_embed``; per block ``blocks.L.hook_resid_pre``,
``blocks.L.attn.hook_q/hook_k/hook_v`` [batch, pos, head, d_head], with the smeared key
``blocks.L.attn.hook_smeared_k`` (the keys the scores use), ``hook_attn_scores`` (masked with
-inf) and ``hook_pattern`` [batch, head, query_pos, key_pos], ``hook_z``,
``blocks.L.hook_attn_out`` and ``blocks.L.hook_resid_post``.

The smeared key (Olsson et al. 2022): each head mixes the previous position's key into every
key, k'_j = sigmoid(alpha_h) k_j + (1 - sigmoid(alpha_h)) k_{j-1} (position 0 unchanged),
with alpha_h learned. Then a single layer can attend to the token *after* an earlier copy of
the current one: an induction head without a previous-token head in a layer below.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn
from transformer_lens import ActivationCache, HookedRootModule
from transformer_lens.hook_points import HookPoint

BOS = 0  # every training sequence starts with token 0


@dataclass(frozen=True)
class AttnOnlyConfig:
    d_vocab: int = 256
    n_ctx: int = 128
    d_model: int = 64
    n_layers: int = 2
    n_heads: int = 4
    d_head: int = 16
    smeared_key: bool = False
    device: str = "cpu"  # Chapters 1-2 move their inputs to model.cfg.device


class Attention(nn.Module):
    def __init__(self, cfg: AttnOnlyConfig):
        super().__init__()
        shape = (cfg.n_heads, cfg.d_model, cfg.d_head)
        self.W_Q, self.W_K, self.W_V = (nn.Parameter(torch.empty(shape)) for _ in range(3))
        self.W_O = nn.Parameter(torch.empty(cfg.n_heads, cfg.d_head, cfg.d_model))
        self.register_parameter("b_O", None)  # no biases (Chapter 1 reads attn.b_O)
        # alpha_h of the smeared key; sigmoid(0) = 1/2: keys start half smeared
        self.smear = nn.Parameter(torch.zeros(cfg.n_heads)) if cfg.smeared_key else None
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_smeared_k = HookPoint() if cfg.smeared_key else None
        self.hook_attn_scores, self.hook_pattern, self.hook_z = HookPoint(), HookPoint(), HookPoint()
        future = torch.ones(cfg.n_ctx, cfg.n_ctx, dtype=torch.bool).triu(1)
        self.register_buffer("future_mask", torch.zeros(cfg.n_ctx, cfg.n_ctx).masked_fill(
            future, float("-inf")), persistent=False)

    def forward(self, resid: torch.Tensor) -> torch.Tensor:  # [batch, pos, d_model]
        batch, n, _ = resid.shape
        n_heads, d_head = self.W_Q.shape[0], self.W_Q.shape[2]
        # One matmul for all heads' queries, keys and values: [batch, pos, 3 * head, d_head].
        W_QKV = torch.cat([self.W_Q, self.W_K, self.W_V]).transpose(0, 1).flatten(1)
        q, k, v = (resid @ W_QKV).unflatten(-1, (3 * n_heads, d_head)).split(n_heads, dim=2)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        if self.smear is not None:
            keep = torch.sigmoid(self.smear)[:, None]  # [head, 1]
            previous = torch.cat([k[:, :1], k[:, :-1]], dim=1)  # position 0 mixes with itself
            k = self.hook_smeared_k(keep * k + (1 - keep) * previous)
        # Scores q.k / sqrt(d_head) plus the causal mask (-inf on future keys) in one batched
        # matmul over (batch, head): the [batch, head, pos, pos] tensors dominate the cost.
        def by_head(x):  # [batch, pos, head, d_head] -> [batch * head, pos, d_head]
            return x.transpose(1, 2).reshape(batch * n_heads, n, d_head)

        scores = torch.baddbmm(self.future_mask[:n, :n], by_head(q), by_head(k).transpose(1, 2),
                               alpha=d_head**-0.5)
        scores = self.hook_attn_scores(scores.view(batch, n_heads, n, n))
        pattern = self.hook_pattern(scores.softmax(dim=-1))
        z = (pattern.flatten(0, 1) @ by_head(v)).view(batch, n_heads, n, d_head).transpose(1, 2)
        z = self.hook_z(z)  # [batch, pos, head, d_head]
        return z.reshape(batch, n, n_heads * d_head) @ self.W_O.flatten(0, 1)


class Block(nn.Module):
    def __init__(self, cfg: AttnOnlyConfig):
        super().__init__()
        self.attn = Attention(cfg)
        self.hook_resid_pre, self.hook_attn_out = HookPoint(), HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        return self.hook_resid_post(resid + self.hook_attn_out(self.attn(resid)))


class AttnOnlyTransformer(HookedRootModule):
    """logits = W_U applied to the residual stream after the last block; the weights are drawn
    with a generator seeded by `seed`."""

    def __init__(self, cfg: AttnOnlyConfig, seed: int = 0):
        super().__init__()
        self.cfg = cfg
        self.tokenizer = SimpleNamespace(bos_token_id=BOS)  # what Chapter 2's token maker reads
        self.W_E = nn.Parameter(torch.empty(cfg.d_vocab, cfg.d_model))
        self.W_pos = nn.Parameter(torch.empty(cfg.n_ctx, cfg.d_model))
        self.hook_embed, self.hook_pos_embed = HookPoint(), HookPoint()
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.W_U = nn.Parameter(torch.empty(cfg.d_model, cfg.d_vocab))
        # Embeddings of unit scale and the heads' weights scaled by 1 / sqrt(d_model), so that
        # attention scores start at order 1 and attention learns from the first steps. W_U starts
        # at zero: the untrained model predicts the uniform distribution at every position.
        generator = torch.Generator().manual_seed(seed)
        for name, parameter in self.named_parameters():
            if name in ("W_E", "W_pos"):
                nn.init.normal_(parameter, std=1.0, generator=generator)
            elif name.startswith("blocks.") and not name.endswith("smear"):
                nn.init.normal_(parameter, std=cfg.d_model**-0.5, generator=generator)
        nn.init.zeros_(self.W_U)
        self.to(cfg.device)
        self.setup()

    def forward(self, tokens: torch.Tensor, return_type: str | None = "logits",
                loss_per_token: bool = False):
        """tokens: int [batch, pos]. return_type "logits" ([batch, pos, d_vocab]), "loss" (mean
        next-token cross-entropy, or [batch, pos - 1] with loss_per_token) or None."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        resid = self.hook_embed(self.W_E[tokens]) + self.hook_pos_embed(self.W_pos[positions])
        for block in self.blocks:
            resid = block(resid)
        if return_type is None:
            return None
        logits = resid @ self.W_U
        if return_type == "logits":
            return logits
        losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
        return losses if loss_per_token else losses.mean()

    def run_with_cache(self, *args, **kwargs) -> tuple[torch.Tensor, ActivationCache]:
        out, cache = super().run_with_cache(*args, **kwargs)
        return out, ActivationCache(cache, self)

    # The course's weight layout: stacked over layers.
    @property
    def W_Q(self) -> torch.Tensor:  # [layer, head, d_model, d_head]
        return torch.stack([block.attn.W_Q for block in self.blocks])

    @property
    def W_K(self) -> torch.Tensor:
        return torch.stack([block.attn.W_K for block in self.blocks])

    @property
    def W_V(self) -> torch.Tensor:
        return torch.stack([block.attn.W_V for block in self.blocks])

    @property
    def W_O(self) -> torch.Tensor:  # [layer, head, d_head, d_model]
        return torch.stack([block.attn.W_O for block in self.blocks])
