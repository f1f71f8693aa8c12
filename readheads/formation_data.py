"""A seeded synthetic token stream on which both bigram statistics and copying pay off.

Each sequence is BOS (token 0) and then tokens of a fixed random "language": every token has
`successors` likely next tokens with Zipf-skewed probabilities. The next token follows the
current token, or with probability `skip` the token before it (as trigram statistics do in
text, this rewards a previous-token head on its own), or with probability `noise` is any
token. At each position a copy starts with probability `repeat_rate`: the next
`min_span`..`max_span` tokens repeat the tokens `offset` positions back, offset drawn
uniformly from `min_offset`..(position - 1); after a copy the chain continues from its last
token. So a model first learns the bigram table, and only copying predicts a repeated span's
tokens: copies are more common late in a sequence, so once the model copies, the loss on late
tokens falls below the loss on early ones (the in-context-learning score of Olsson et al.).

Why synthetic rather than the offline corpus at a reduced vocabulary: natural text repeats
spans too rarely for a small model to form induction heads within a few minutes of CPU
training, and how often copying pays off is a setting here, not an accident of the corpus.
The whole stream is integer draws and gathers (no floating-point sampling), so a seed gives
the same tokens on every machine, and generating a batch costs far less than training on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import torch


@dataclass(frozen=True)
class StreamConfig:
    d_vocab: int = 256  # token 0 is BOS and never drawn after position 0
    n_ctx: int = 128
    successors: int = 8  # likely next tokens of each token
    zipf: float = 1.0  # successor k (0-based) has weight 1 / (k + 1) ** zipf
    noise: float = 0.05  # chance that any token comes next instead
    skip: float = 0.5  # chance that the next token follows the token before the current one
    repeat_rate: float = 0.1  # chance per position (outside a copy) that a copy starts
    min_span: int = 8
    max_span: int = 32
    min_offset: int = 8  # a copy reads at least this far back
    language_seed: int = 0  # the successor table: the same for every training seed


@lru_cache(maxsize=4)
def successor_table(cfg: StreamConfig) -> torch.Tensor:
    """[d_vocab, successors]: each token's likely next tokens, most likely first (distinct,
    never BOS)."""
    generator = torch.Generator().manual_seed(cfg.language_seed)
    order = torch.stack([torch.randperm(cfg.d_vocab - 1, generator=generator)[:cfg.successors]
                         for _ in range(cfg.d_vocab)])
    return order + 1


def _choices(cfg: StreamConfig, shape, generator) -> torch.Tensor:
    """Successor ranks drawn with Zipf weights, by inverse CDF on integer draws."""
    weights = 1 / torch.arange(1, cfg.successors + 1, dtype=torch.float64) ** cfg.zipf
    resolution = 2**24
    cdf = (weights.cumsum(0) / weights.sum() * resolution).round().long()
    return torch.searchsorted(cdf, torch.randint(0, resolution, shape, generator=generator),
                              right=True).clamp(max=cfg.successors - 1)


def _below(probability: float, shape, generator) -> torch.Tensor:
    """Bernoulli(probability) draws, as integer comparisons."""
    return torch.randint(0, 2**24, shape, generator=generator) < round(probability * 2**24)


def sample_batch(cfg: StreamConfig, batch: int, generator: torch.Generator) -> torch.Tensor:
    """int64 [batch, n_ctx] sequences of the stream."""
    shape = (batch, cfg.n_ctx)
    table = successor_table(cfg)
    choice = _choices(cfg, shape, generator)
    noisy = _below(cfg.noise, shape, generator)
    uniform = torch.randint(1, cfg.d_vocab, shape, generator=generator)
    skipping = _below(cfg.skip, shape, generator)
    start = _below(cfg.repeat_rate, shape, generator)
    span = torch.randint(cfg.min_span, cfg.max_span + 1, shape, generator=generator)
    reach = torch.randint(0, 2**31 - 1, shape, generator=generator)  # picks the offset

    tokens = torch.zeros(shape, dtype=torch.long)
    rows = torch.arange(batch)
    remaining = torch.zeros(batch, dtype=torch.long)  # tokens left to copy in each row
    offset = torch.ones(batch, dtype=torch.long)
    tokens[:, 1] = uniform[:, 1]
    for t in range(2, cfg.n_ctx):
        if t > cfg.min_offset:
            starts = (remaining == 0) & start[:, t]
            offset = torch.where(starts, cfg.min_offset + reach[:, t] % (t - cfg.min_offset), offset)
            remaining = torch.where(starts, span[:, t], remaining)
        before = torch.where(skipping[:, t], tokens[:, t - 2], tokens[:, t - 1])
        fresh = torch.where(noisy[:, t], uniform[:, t], table[before, choice[:, t]])
        copying = remaining > 0
        tokens[:, t] = torch.where(copying, tokens[rows, t - offset], fresh)
        remaining -= copying.long()
    return tokens


def stream(cfg: StreamConfig, batch: int, seed: int, chunk: int = 64):
    """An endless, seeded iterator of [batch, n_ctx] batches, drawn `chunk` batches at a time
    (one loop over positions serves them all)."""
    generator = torch.Generator().manual_seed(seed)
    while True:
        yield from sample_batch(cfg, batch * chunk, generator).split(batch)
