"""True and false statements for Chapter 6's truth probes, from templates whose answers a
model can be checked to know.

An *item* is a prefix and two one-token completions, a true one and a false one ("The
capital of France is" + " Paris" / " Rome"). Its two *statements* are the prefix with each
completion and a full stop. The model *knows* an item when, after the prefix, it gives the
true completion a higher logit than the false one (`knows`). Chapter 6 keeps the items the
model knows, so that a probe for truth has something to find, and holds out whole families
(templates) to test whether a probe learned truth or a template.
"""

from __future__ import annotations

import itertools
from typing import NamedTuple

import torch

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
CAPITALS = {"France": "Paris", "Germany": "Berlin", "Italy": "Rome", "Spain": "Madrid",
            "Japan": "Tokyo", "Russia": "Moscow", "England": "London", "China": "Beijing",
            "Egypt": "Cairo", "Greece": "Athens", "Ireland": "Dublin", "Norway": "Oslo",
            "Portugal": "Lisbon", "Austria": "Vienna", "Poland": "Warsaw", "Sweden": "Stockholm",
            "Cuba": "Havana", "Peru": "Lima", "Kenya": "Nairobi", "Canada": "Ottawa"}
OPPOSITES = {"hot": "cold", "big": "small", "up": "down", "day": "night", "fast": "slow",
             "happy": "sad", "left": "right", "black": "white", "light": "dark", "wet": "dry",
             "hard": "soft", "early": "late", "full": "empty", "high": "low", "rich": "poor",
             "strong": "weak", "long": "short", "good": "bad", "first": "last", "north": "south",
             "east": "west", "win": "lose", "love": "hate", "open": "closed", "old": "young"}

PLURALS = {"cat": "cats", "dog": "dogs", "car": "cars", "book": "books", "tree": "trees",
           "house": "houses", "bird": "birds", "girl": "girls", "boy": "boys", "hand": "hands",
           "day": "days", "year": "years", "friend": "friends", "door": "doors", "game": "games",
           "man": "men", "woman": "women", "child": "children", "mouse": "mice", "foot": "feet",
           "tooth": "teeth", "box": "boxes", "city": "cities", "baby": "babies", "story": "stories"}
PAST_TENSES = {"walk": "walked", "play": "played", "jump": "jumped", "look": "looked",
               "call": "called", "work": "worked", "open": "opened", "start": "started",
               "help": "helped", "want": "wanted", "go": "went", "see": "saw", "eat": "ate",
               "take": "took", "give": "gave", "come": "came", "run": "ran", "write": "wrote",
               "speak": "spoke", "buy": "bought", "think": "thought", "find": "found",
               "sing": "sang", "drink": "drank", "sit": "sat"}
LANGUAGES = {"France": "French", "Germany": "German", "Italy": "Italian", "Spain": "Spanish",
             "Japan": "Japanese", "Russia": "Russian", "China": "Chinese", "Greece": "Greek",
             "Portugal": "Portuguese", "Poland": "Polish", "Sweden": "Swedish", "Norway": "Norwegian",
             "Turkey": "Turkish", "Brazil": "Portuguese", "Mexico": "Spanish", "England": "English"}
NUMBER_WORDS = ["one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
                "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
                "eighteen", "nineteen", "twenty"]


def _pairs(table: dict, template: str) -> list[tuple[str, str, list[str]]]:
    return [(template.format(key), value, sorted({v for v in table.values() if v != value}))
            for key, value in table.items()]


def _successor(words: list[str], template: str) -> list[tuple[str, str, list[str]]]:
    return [(template.format(word), words[(i + 1) % len(words)],
             [w for w in words if w not in (word, words[(i + 1) % len(words)])])
            for i, word in enumerate(words)]


def _families() -> dict[str, list[tuple[str, str, list[str]]]]:
    """Each family: (prefix, true completion, false completions) without leading spaces."""
    letters = [chr(c) for c in range(ord("A"), ord("Z") + 1)]
    numbers = range(1, 10)
    return {
        "addition": [(f"{a} + {b} =", str(a + b), [str(a + b + d) for d in (-2, -1, 1, 2) if a + b + d > 0])
                     for a, b in itertools.product(numbers, numbers)],
        "larger": [(f"The larger number of {a} and {b} is", str(max(a, b)), [str(min(a, b))])
                   for a, b in itertools.permutations(numbers, 2)],
        "days": _successor(DAYS, "The day after {} is"),
        "months": _successor(MONTHS, "The month after {} is"),
        "letters": [(f"The letter after {x} is", y, [z for z in letters if z not in (x, y)])
                    for x, y in zip(letters, letters[1:])],
        "numbers": _successor(NUMBER_WORDS, "The number after {} is")[:-1],
        "capitals": _pairs(CAPITALS, "The capital of {} is"),
        "languages": _pairs(LANGUAGES, "The language spoken in {} is"),
        "opposites": [(f"The opposite of {a} is", b, [w for pair in OPPOSITES.items() for w in pair if w not in (a, b)])
                      for a, b in OPPOSITES.items()],
        "plurals": _pairs(PLURALS, "The plural of {} is"),
        "past_tense": _pairs(PAST_TENSES, "The past tense of {} is"),
    }


FAMILIES = tuple(_families())


class TruthItems(NamedTuple):
    """Items of one or more families, for one tokenizer. prefix_tokens [n, pos]: BOS and the
    prefix, right-padded; end_pos [n]: the prefix's last token; true_ids / false_ids [n]: the
    completions; family [n]: index into `FAMILIES`."""

    prefix_tokens: torch.Tensor
    end_pos: torch.Tensor
    true_ids: torch.Tensor
    false_ids: torch.Tensor
    family: torch.Tensor
    texts: list  # (prefix, true completion, false completion) of each item


def _completion(tokenizer, word: str) -> tuple[tuple[int, ...], int] | None:
    """How `word` follows a prefix, as (tokens that end the prefix, the completion's one
    token): GPT-2 writes " 5" as one token, SmolLM2 as a space token and "5"."""
    ids = tokenizer.encode(" " + word, add_special_tokens=False)
    if len(ids) == 1:
        return (), ids[0]
    if len(ids) == 2 and tokenizer.decode(ids[:1]) == " ":
        return (ids[0],), ids[1]
    return None


def _pad(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(row) for row in rows)
    tokens = torch.tensor([row + [pad_id] * (width - len(row)) for row in rows])
    return tokens, torch.tensor([len(row) - 1 for row in rows])


def _bos_and(tokenizer, text: str) -> list[int]:
    return [tokenizer.bos_token_id] + tokenizer.encode(text, add_special_tokens=False)


def truth_items(model, families=FAMILIES, seed: int = 0) -> TruthItems:
    """Every item of `families` whose completions are one token each for the model's
    tokenizer, each with one false completion drawn (seeded) from the family's."""
    all_families = _families()
    unknown = [family for family in families if family not in all_families]
    if unknown:
        raise ValueError(f"Unknown family {unknown[0]!r}: choose from {', '.join(FAMILIES)}")
    tokenizer, generator = model.tokenizer, torch.Generator().manual_seed(seed)
    rows, true_ids, false_ids, family_ids, texts = [], [], [], [], []
    for family in families:
        for prefix, true_word, false_words in all_families[family]:
            true = _completion(tokenizer, true_word)
            false_options = [(w, c[1]) for w in false_words
                             if true and (c := _completion(tokenizer, w)) and c[0] == true[0]]
            if not false_options:
                continue
            false_word, false_id = false_options[int(torch.randint(len(false_options), (1,), generator=generator))]
            rows.append(_bos_and(tokenizer, prefix) + list(true[0]))
            true_ids.append(true[1])
            false_ids.append(false_id)
            family_ids.append(FAMILIES.index(family))
            texts.append((prefix, true_word, false_word))
    if not rows:
        raise ValueError(f"No item of {families} has one-token completions for this tokenizer")
    tokens, end_pos = _pad(rows, tokenizer.pad_token_id or 0)
    return TruthItems(tokens, end_pos, torch.tensor(true_ids), torch.tensor(false_ids),
                      torch.tensor(family_ids), texts)


def completion_margin(model, items: TruthItems, batch_size: int = 64) -> torch.Tensor:
    """The logit of the true completion minus the false one's, after each prefix: [n_items].
    Positive where the model knows the item."""
    margins = []
    for start in range(0, len(items.end_pos), batch_size):
        rows = slice(start, start + batch_size)
        logits = model(items.prefix_tokens[rows].to(model.cfg.device))
        final = logits[torch.arange(logits.shape[0]), items.end_pos[rows].to(logits.device)].cpu()
        index = torch.arange(final.shape[0])
        margins.append(final[index, items.true_ids[rows]] - final[index, items.false_ids[rows]])
    return torch.cat(margins)


class TruthStatements(NamedTuple):
    """Both statements of each item, true first: 2n rows. tokens [2n, pos]: BOS, prefix,
    completion, full stop, right-padded; end_pos [2n]: the full stop; label [2n]: 1 true,
    0 false; family [2n] and item [2n]: which family and item each came from."""

    tokens: torch.Tensor
    end_pos: torch.Tensor
    label: torch.Tensor
    family: torch.Tensor
    item: torch.Tensor


def truth_statements(model, items: TruthItems) -> TruthStatements:
    """The statements of `items`, as the token ids the items were judged with."""
    full_stop = model.tokenizer.encode(".", add_special_tokens=False)
    rows = []
    for prefix, end, true_id, false_id in zip(items.prefix_tokens, items.end_pos, items.true_ids, items.false_ids):
        stem = prefix[:end + 1].tolist()
        rows += [stem + [int(true_id)] + full_stop, stem + [int(false_id)] + full_stop]
    tokens, end_pos = _pad(rows, model.tokenizer.pad_token_id or 0)
    n = len(items.end_pos)
    return TruthStatements(tokens, end_pos, torch.tensor([1, 0]).repeat(n),
                           items.family.repeat_interleave(2), torch.arange(n).repeat_interleave(2))


def select(items: TruthItems, keep: torch.Tensor) -> TruthItems:
    """The items where `keep` (bool [n]) is True, e.g. those the model knows."""
    rows = keep.nonzero().flatten()
    return TruthItems(*(field[rows] for field in items[:5]), [items.texts[int(i)] for i in rows])


def with_context(items: TruthItems, context_ids: list[int]) -> TruthItems:
    """The items with `context_ids` (tokens) between BOS and each prefix."""
    tokens = items.prefix_tokens
    context = torch.tensor(context_ids, dtype=tokens.dtype).expand(len(tokens), -1)
    return items._replace(prefix_tokens=torch.cat([tokens[:, :1], context, tokens[:, 1:]], dim=1),
                          end_pos=items.end_pos + len(context_ids))


def context_examples(model, items: TruthItems, n_examples: int, lie: bool, seed: int = 0) -> tuple[list[int], list[int]]:
    """Few-shot examples to put before a prompt: `n_examples` of the items (seeded), each
    written as a statement with its false completion (`lie`) or its true one, one a line. Returns the
    token ids and which items were used (keep them out of what is measured)."""
    generator = torch.Generator().manual_seed(seed)
    used = torch.randperm(len(items.texts), generator=generator)[:n_examples].tolist()
    lines = [f"{prefix} {false if lie else true}.\n" for prefix, true, false in (items.texts[i] for i in used)]
    return model.tokenizer.encode("".join(lines), add_special_tokens=False), used
