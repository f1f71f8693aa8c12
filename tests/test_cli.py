"""The maintenance CLI: only `generate` touches committed files, and every command the course
tells a user to run is one the CLI accepts."""

import hashlib
import re
import shlex

import pytest

from autograder import references
from autograder.authoring import cli


def committed_digest() -> str:
    digest = hashlib.sha256()
    for path in sorted(references.COMMITTED_DIR.rglob("*")):
        if path.is_file():
            digest.update(str(path).encode() + path.read_bytes())
    return digest.hexdigest()


@pytest.mark.slow
def test_build_writes_to_the_cache_or_out_and_never_touches_committed_files(
        gpt2_test, tmp_path, monkeypatch):
    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    before = committed_digest()
    cheap = ["--chapter", "ch1_attention"]
    assert cli.main(["build", "--model", "gpt2-test", *cheap]) == 0
    assert (tmp_path / "cache" / "references" / "ch1_attention"
            / f"{gpt2_test.course_info.key}.safetensors").is_file()
    assert cli.main(["build", "--model", "gpt2-test", "--out", str(tmp_path / "bundle"), *cheap]) == 0
    assert {p.name for p in (tmp_path / "bundle" / "ch1_attention").iterdir()} == {
        "pure.safetensors", "pure.json", f"{gpt2_test.course_info.key}.safetensors",
        f"{gpt2_test.course_info.key}.json"}
    assert committed_digest() == before


def test_build_refuses_to_write_into_the_committed_references(tmp_path):
    before = committed_digest()
    with pytest.raises(SystemExit, match="only `python -m autograder generate` may write there"):
        cli.main(["build", "--model", "gpt2-test", "--out",
                  str(references.COMMITTED_DIR / "ch1_attention")])
    assert committed_digest() == before


def commands_in(text: str) -> list[str]:
    """The arguments of every `python -m autograder ...` command in a text (inline code spans
    and shell blocks, lines joined where they wrap)."""
    text = text.replace("\\\n", " ")
    blocks = re.findall(r"```.*?\n(.*?)```", text, re.DOTALL)
    prose = re.sub(r"```.*?```", "", text, flags=re.DOTALL)
    spans = [" ".join(span.split()) for span in re.findall(r"`([^`]+)`", prose)]
    spans += [line for block in blocks for line in block.splitlines()]
    found = []
    for span in spans:
        match = re.search(r"python -m autograder ([a-z][^`#()]*)", span)
        if match:
            found.append(match.group(1).strip().rstrip("."))
    return found


@pytest.mark.parametrize("key", ["pure", "gpt2-small-0123456789ab", "smollm2-135m-5e2de176e604"])
def test_rebuild_messages_name_commands_the_cli_accepts(key):
    message = references.rebuild_command(key)
    arguments = commands_in(f"`{message}`")
    assert arguments, message
    args = cli.parser().parse_args(shlex.split(arguments[0]))
    if key != "pure":
        assert args.model == [key.rsplit("-", 1)[0]]


def test_readme_and_docs_commands_are_accepted_by_the_cli():
    root = references.COMMITTED_DIR.parent.parent
    for page in [root / "README.md", *sorted((root / "docs").glob("*.md"))]:
        found = commands_in(page.read_text())
        if page.name in ("README.md", "grading.md"):  # an instructor's commands
            assert any(a.startswith("grade ") for a in found), page.name
            assert any(a.startswith("gradescope ") for a in found), page.name
            assert any(a.startswith("build ") for a in found), page.name
        for arguments in found:
            cli.parser().parse_args(shlex.split(arguments))


def test_missing_hidden_references_message_names_a_command_that_builds_them(tmp_path):
    from autograder.sealed import GradingError, graded_models, hidden_references

    with pytest.raises(GradingError) as error:
        hidden_references("ch1_attention", graded_models("smollm2-135m"), tmp_path)
    arguments = commands_in(f"`{error.value}`")[0].replace("SEED", "918273")  # the instructor's
    args = cli.parser().parse_args(shlex.split(arguments))
    assert args.model == list(graded_models("smollm2-135m")) and args.seed == 918273
