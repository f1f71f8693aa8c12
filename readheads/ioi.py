"""Indirect object identification (IOI): the prompts' raw material and the records that carry
a dataset and a patching metric around.

A prompt names two people, then repeats one of them (the subject, S) and asks for the other
(the indirect object, IO): "When Mary and John went to the store, John gave a drink to" ->
" Mary". Templates come in two orders: ABBA (IO named first) and BABA (S named first).

Names, places and objects are kept only where they are a single token *for the loaded
model's tokenizer* (with the leading space they have in a sentence), so every prompt of one
template has the same length on that model.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

NAMES = ["Mary", "John", "Alice", "Bob", "Sarah", "James", "Emma", "Michael", "Anna", "David",
         "Laura", "Daniel", "Rachel", "Thomas", "Kate", "Paul", "Lisa", "Mark", "Julia", "Peter",
         "Jessica", "Andrew", "Sophie", "Robert", "Claire", "Steven", "Helen", "George", "Maria",
         "Chris", "Amy", "Kevin", "Nancy", "Brian", "Grace", "Eric", "Rose", "Adam", "Jane", "Sam"]
PLACES = ["store", "park", "school", "garden", "station", "market", "library", "beach",
          "office", "hospital", "restaurant", "museum", "church", "bank", "house"]
OBJECTS = ["drink", "book", "ring", "bag", "ball", "key", "letter", "cake", "phone", "pen",
           "card", "gift", "hat", "box", "coin"]
# {A} is named first, {B} second; {B} is repeated, so in ABBA templates A is the IO.
_TEMPLATES = [
    "When {A} and {B} went to the {place}, {B} gave a {object} to",
    "After {A} and {B} arrived at the {place}, {B} handed the {object} to",
    "Then, {A} and {B} spent the day at the {place}. {B} gave the {object} to",
    "While {A} and {B} were waiting at the {place}, {B} passed a {object} to",
]
# (family, template, IO letter): each template in both orders.
TEMPLATES = ([("ABBA", t, "A") for t in _TEMPLATES]
             + [("BABA", t.replace("{A} and {B}", "{B} and {A}", 1), "A") for t in _TEMPLATES])


class IOIPrompts(NamedTuple):
    """A batch of IOI prompts, right-padded to one length. All int64 [batch] except tokens.

    tokens [batch, pos]: BOS, the prompt, then padding after end_pos. io_ids / s_ids: the
    tokens of the indirect object and the subject. io_pos, s1_pos, s2_pos: where the IO, the
    first and the second mention of the subject sit. end_pos: the last prompt token (" to"),
    where the model predicts the IO. template: the index into `TEMPLATES`.
    """

    tokens: torch.Tensor
    io_ids: torch.Tensor
    s_ids: torch.Tensor
    io_pos: torch.Tensor
    s1_pos: torch.Tensor
    s2_pos: torch.Tensor
    end_pos: torch.Tensor
    template: torch.Tensor


def as_tokens(prompts) -> torch.Tensor:
    """The tokens of an `IOIPrompts` record; a tensor of tokens is returned as it is."""
    return prompts.tokens if isinstance(prompts, IOIPrompts) else prompts


class PromptText(NamedTuple):
    text: str
    io: str  # the IO's name
    s: str  # the subject's name
    template: int


def single_token_words(tokenizer, words: list[str]) -> list[str]:
    """The words that are one token with a leading space (" Mary") for this tokenizer."""
    return [w for w in words if len(tokenizer.encode(" " + w, add_special_tokens=False)) == 1]


def _pick(items: list, generator: torch.Generator):
    return items[int(torch.randint(len(items), (1,), generator=generator))]


def draw_prompts(tokenizer, n_prompts: int, seed: int, families=("ABBA", "BABA")) -> list[PromptText]:
    """`n_prompts` seeded IOI prompts as text: for each, a template (of the given families),
    two different names, a place and an object, drawn in that order from a CPU generator."""
    generator = torch.Generator().manual_seed(seed)
    names = single_token_words(tokenizer, NAMES)
    places, objects = single_token_words(tokenizer, PLACES), single_token_words(tokenizer, OBJECTS)
    allowed = [i for i, (family, _, _) in enumerate(TEMPLATES) if family in families]
    if len(names) < 3 or not places or not objects or not allowed:
        raise ValueError(f"Too few single-token words for this tokenizer (names {len(names)}, "
                         f"places {len(places)}, objects {len(objects)}) or no template of {families}.")
    prompts = []
    for _ in range(n_prompts):
        index = _pick(allowed, generator)
        io, s = (names[int(i)] for i in torch.randperm(len(names), generator=generator)[:2])
        text = TEMPLATES[index][1].format(A=io, B=s, place=_pick(places, generator),
                                          object=_pick(objects, generator))
        prompts.append(PromptText(text, io, s, index))
    return prompts


def name_token_ids(tokenizer) -> torch.Tensor:
    """The token ids of the single-token names (" Mary", ...), in `NAMES` order."""
    return torch.tensor([tokenizer.encode(" " + n, add_special_tokens=False)[0]
                         for n in single_token_words(tokenizer, NAMES)])


class PatchingMetric(NamedTuple):
    """The normalised logit difference as a callable: 0 for the corrupted run, 1 for the clean.

    metric(logits) takes logits [batch, pos, vocab] of the prompts described by io_ids, s_ids
    and end_pos, and returns a scalar: (mean logit difference - corrupted) / (clean - corrupted).
    """

    io_ids: torch.Tensor
    s_ids: torch.Tensor
    end_pos: torch.Tensor
    clean: torch.Tensor  # the clean run's mean logit difference (0-dim)
    corrupted: torch.Tensor  # the corrupted run's

    @property
    def reads_positions(self) -> torch.Tensor:
        """The one position per prompt whose logits this metric reads (see `patched_runs`)."""
        return self.end_pos

    def __call__(self, logits: torch.Tensor) -> torch.Tensor:
        rows = torch.arange(logits.shape[0], device=logits.device)
        final = logits[rows, self.end_pos.to(logits.device)]
        diff = final[rows, self.io_ids.to(logits.device)] - final[rows, self.s_ids.to(logits.device)]
        return (diff.mean() - self.corrupted.to(logits.device)) / (self.clean - self.corrupted).to(logits.device)


# --- Ready-made datasets, for the chapters after Chapter 3 (which builds these itself) -----


def ioi_prompts(model, n_prompts: int, seed: int, families=("ABBA", "BABA")) -> IOIPrompts:
    """`n_prompts` seeded IOI prompts as an `IOIPrompts` batch on the model's device: BOS,
    then each prompt, right-padded with the pad token (Chapter 3's `ioi_dataset`)."""
    tokenizer = model.tokenizer
    prompts = draw_prompts(tokenizer, n_prompts, seed, families)
    rows = [[tokenizer.bos_token_id] + tokenizer.encode(p.text, add_special_tokens=False) for p in prompts]
    length = max(len(row) for row in rows)
    tokens = torch.tensor([row + [tokenizer.pad_token_id] * (length - len(row)) for row in rows])
    io_ids = [tokenizer.encode(" " + p.io, add_special_tokens=False)[0] for p in prompts]
    s_ids = [tokenizer.encode(" " + p.s, add_special_tokens=False)[0] for p in prompts]
    io_pos = [row.index(io) for row, io in zip(rows, io_ids)]
    s1_pos = [row.index(s) for row, s in zip(rows, s_ids)]
    s2_pos = [row.index(s, first + 1) for row, s, first in zip(rows, s_ids, s1_pos)]
    columns = [torch.tensor(c) for c in (io_ids, s_ids, io_pos, s1_pos, s2_pos,
                                         [len(row) - 1 for row in rows], [p.template for p in prompts])]
    return IOIPrompts(*(c.to(model.cfg.device) for c in [tokens] + columns))


def corrupted_prompts(model, clean: IOIPrompts, kind: str, seed: int) -> IOIPrompts:
    """A corrupted copy of `clean` (answers and positions unchanged; Chapter 3's
    `corrupted_tokens`). kind "abc": the subject's second mention becomes a third name, drawn
    with a generator seeded `seed`; "swapped": the IO and subject names trade places."""
    tokens = clean.tokens.clone()
    rows = torch.arange(tokens.shape[0], device=tokens.device)
    if kind == "swapped":
        tokens[rows, clean.io_pos] = clean.s_ids
        tokens[rows, clean.s1_pos] = clean.io_ids
        tokens[rows, clean.s2_pos] = clean.io_ids
    elif kind == "abc":
        generator = torch.Generator().manual_seed(seed)
        names = name_token_ids(model.tokenizer).tolist()
        for row, (io, s) in enumerate(zip(clean.io_ids.tolist(), clean.s_ids.tolist())):
            others = [n for n in names if n not in (io, s)]
            tokens[row, clean.s2_pos[row]] = others[int(torch.randint(len(others), (1,), generator=generator))]
    else:
        raise ValueError(f"kind must be 'abc' or 'swapped', not {kind!r}")
    return clean._replace(tokens=tokens)


def mean_logit_diff(logits: torch.Tensor, prompts: IOIPrompts) -> torch.Tensor:
    """The mean over prompts of logit(IO) - logit(S) at each prompt's last token."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    final = logits[rows, prompts.end_pos]
    return (final[rows, prompts.io_ids] - final[rows, prompts.s_ids]).mean()


@torch.no_grad()
def patching_setup(model, n_prompts: int, seed: int, kind: str = "abc", families=("ABBA", "BABA")):
    """(clean, corrupted, metric): `n_prompts` IOI prompts, a corrupted copy (prompts drawn
    with `seed`, the corruption with seed + 1) and the normalised logit difference between
    them (`PatchingMetric`: 1 on the clean run, 0 on the corrupted one)."""
    clean = ioi_prompts(model, n_prompts, seed, families)
    corrupted = corrupted_prompts(model, clean, kind, seed + 1)
    metric = PatchingMetric(clean.io_ids, clean.s_ids, clean.end_pos,
                            mean_logit_diff(model(clean.tokens), clean),
                            mean_logit_diff(model(corrupted.tokens), clean))
    return clean, corrupted, metric
