"""The broad offline corpus: its sources read from their pinned archives, its splits and
proportions, and the download that checks each archive's hash."""

import gzip
import hashlib
import io
import re
import tarfile
from pathlib import Path

import pytest

from readheads import corpus_sources
from readheads.corpus import (BROAD_MIX, HELD_OUT_CHARS, OFFLINE_CORPUS, load_corpus)
from readheads.corpus_sources import HELD_OUT_SOURCES, SOURCES, Source, fetch

from .conftest import require

ALL_SOURCES = SOURCES + HELD_OUT_SOURCES


def _fetched(source: Source) -> bool:
    try:
        fetch(source, progress=False)
    except ConnectionError:
        return False
    return True


@pytest.fixture(scope="module")
def mix_parts():
    require(all(_fetched(source) for source in ALL_SOURCES),
            "the broad corpus's sources could not be downloaded (python -m readheads.corpus --fetch)")
    names = [OFFLINE_CORPUS, *(source.name for source in ALL_SOURCES)]
    return {name: {split: load_corpus(name, split=split) for split in ("all", "train", "held-out")}
            for name in names}


def test_every_source_splits_into_disjoint_held_out_and_training_documents(mix_parts):
    for name, splits in mix_parts.items():
        held_out, train, every = splits["held-out"], splits["train"], splits["all"]
        assert held_out and train, name
        first = every[:len(every) - len(train)]  # the held-out documents come first
        assert train == every[len(first):] and set(held_out) <= set(first), name
        assert not {d.text for d in held_out} & {d.text for d in train}, name  # nor copies of them
        assert {d.source for d in every} == {name}
        assert sum(len(d.text) for d in first[:-1]) < HELD_OUT_CHARS <= sum(len(d.text) for d in first)
        assert all(d.text.strip() for d in every), name
    # Readers that parse markup leave none of it.
    brown = " ".join(d.text for d in mix_parts["brown"]["all"][:20])
    assert "/at " not in brown and "/nn" not in brown and "``" not in brown
    assert not any("{" in d.text for d in mix_parts["wordnet"]["all"][:50])
    assert {d.label for d in mix_parts["austen"]["all"]} >= {"EMMA", "PRIDE AND PREJUDICE"}
    assert not any("Received:" in d.text for d in mix_parts["email"]["all"][:200])


def test_the_mix_takes_each_source_up_to_its_cap_and_never_the_held_out_text(mix_parts):
    mix = load_corpus(BROAD_MIX, split="train")
    held_out = load_corpus(BROAD_MIX, split="held-out")
    caps = {OFFLINE_CORPUS: None} | {source.name: source.max_chars for source in SOURCES}
    assert {d.source for d in mix} == {d.source for d in held_out} == set(caps)
    assert not {d.text for d in mix} & {d.text for d in held_out}
    for name, cap in caps.items():
        taken = [d for d in mix if d.source == name]
        train = mix_parts[name]["train"]
        assert set(taken) == set(train[:len(taken)]), name  # the first of the source's training documents
        size = sum(len(d.text) for d in taken)
        if cap is None:
            assert len(taken) == len(train), name
        else:  # up to the first that reaches the cap
            last = train[len(taken) - 1]
            assert size - len(last.text) < cap <= size or len(taken) == len(train), name
    # Sources interleaved (not one after the other), in the same order every time.
    assert len({d.source for d in mix[:100]}) >= 8
    assert [d.text[:50] for d in load_corpus(BROAD_MIX, n_documents=30, split="train")] == \
           [d.text[:50] for d in mix[:30]]
    # The held-out family is in neither split of the mix.
    assert "email" not in caps
    assert sum(len(d.text) for d in mix) > 40_000_000  # about 10M tokens (about 4 characters each)


def test_the_readme_lists_every_source_with_its_licence():
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    assert corpus_sources.markdown_table() in readme, "update the README's table of sources"


def test_unknown_corpora_and_splits_are_named(mix_parts):
    with pytest.raises(ValueError, match="'bbc-news', 'broad-mix', 'python-docs', 'brown'"):
        load_corpus("news")
    with pytest.raises(ValueError, match="split 'test'.*'all', 'train', 'held-out'"):
        load_corpus(BROAD_MIX, split="test")


def _deb(files: dict[str, bytes]) -> bytes:
    """A minimal .deb: an ar archive holding debian-binary, control.tar.gz and data.tar.xz."""
    def tar(mode, members):
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode=mode) as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    members = {"debian-binary": b"2.0\n", "control.tar.gz": tar("w:gz", {"./control": b"Package: x\n"}),
               "data.tar.xz": tar("w:xz", files)}
    out = b"!<arch>\n"
    for name, data in members.items():
        out += f"{name + '/':<16}{0:<12}{0:<6}{0:<6}{'100644':<8}{len(data):<10}`\n".encode() + data
        out += b"\n" if len(data) % 2 else b""
    return out


def _base64(number: int) -> str:
    """dictd's numbers: base 64, most significant digit first."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    digits = ""
    while True:
        digits = alphabet[number % 64] + digits
        number //= 64
        if not number:
            return digits


def test_a_deb_is_read_in_python_and_a_download_must_match_its_pinned_hash(tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    entries = {"apple": "APPLE, n. A fruit.\n    Crisp.", "bee": "BEE, n. An insect {honey}."}
    text, index = "", ""
    for word, entry in entries.items():
        index += f"{word}\t{_base64(len(text))}\t{_base64(len(entry))}\n"
        text += entry
    deb = tmp_path / "dict-test_1_all.deb"
    deb.write_bytes(_deb({"./usr/share/dictd/test.index": index.encode(),
                          "./usr/share/dictd/test.dict.dz": gzip.compress(text.encode()),
                          "./usr/share/doc/dict-test/copyright": b"PD"}))
    digest = hashlib.sha256(deb.read_bytes()).hexdigest()
    source = Source("test", "dictionary", "a test", deb.as_uri(), digest, "PD",
                    lambda archive: corpus_sources._dictd(archive, "test", 1))
    path = fetch(source, progress=False)
    assert path.parent == tmp_path / "cache" / "corpus" and path.read_bytes() == deb.read_bytes()
    assert source.read(path) == [("APPLE, n. A fruit.\nCrisp.", "test"), ("BEE, n. An insect honey.", "test")]

    path.unlink()
    wrong = Source("test", "dictionary", "a test", deb.as_uri(), "0" * 64, "PD", source.read)
    with pytest.raises(ValueError, match="did not match its pinned SHA-256"):
        fetch(wrong, progress=False)
    assert not path.exists() and not list(path.parent.glob("*.part"))
    gone = Source("test", "dictionary", "a test", (tmp_path / "gone.deb").as_uri(), digest, "PD", source.read)
    with pytest.raises(ConnectionError, match=re.escape(f"place that file at {path.parent / 'gone.deb'}")):
        fetch(gone, progress=False)
