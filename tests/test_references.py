"""Reference sets: self-contained (cases, tolerances, outputs, mistakes), corruption is caught,
and what is committed is exactly what the solutions and the generator produce today."""

import dataclasses
import importlib
import json
import os
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from autograder import catalog, references
from autograder.authoring import notebooks, registry
from autograder.authoring.sync import references_out_of_sync
from autograder.check import load_references
from autograder.authoring.build import build_case
from autograder.authoring.build import describe
from autograder.authoring.digest import sources_digest
from autograder.authoring.spec import Exercise, Mistake
from autograder.compare import judge
from autograder.references import ExerciseReferences, ReferenceSet
from autograder.running import Outcome

from .conftest import ROOT

CHAPTER = "ch1_attention"
# Reference sets recomputed by the sync check although their digests are unchanged (CI: 2;
# `make test-fast` sets 0).
SYNC_SAMPLE = int(os.environ.get("COURSE_SYNC_SAMPLE", "2"))


def test_pure_reference_set_describes_every_pure_exercise_and_its_cases():
    refs = ReferenceSet.load(references.COMMITTED_DIR / CHAPTER / "pure.safetensors")
    pure = {e.id: e for e in registry.exercises(CHAPTER) if not e.needs_model}
    assert set(refs.exercises) == set(pure) and refs.sources == {}
    for exercise_id, exercise in refs.exercises.items():
        assert (exercise.atol, exercise.rtol) == (pure[exercise_id].atol, pure[exercise_id].rtol)
        assert exercise.description and len(exercise.cases) >= 2
        assert list(exercise.outputs) == ["output"]
        for case in exercise.cases:
            assert set(case.expected) == {"output"} and case.arguments
            assert set(case.mistakes) <= set(exercise.mistake_messages)
    assert set(refs.versions) == {"torch", "transformers", "transformer_lens"}


def test_model_reference_set_stores_its_cases_and_fingerprint(smollm2):
    refs = load_references(CHAPTER, {"model": smollm2})
    assert refs.sources["model"]["name"] == "smollm2-135m"
    assert refs.sources["model"]["fingerprint"] == smollm2.course_info.fingerprint
    assert refs.path.parent.parent == references.COMMITTED_DIR
    assert set(refs.exercises) == {e.id for e in registry.exercises(CHAPTER) if e.needs_model}
    layer_cases = refs.exercises["layer_attention_output"].cases
    assert {a.kind for c in layer_cases for a in c.arguments.values()} == {"model", "cache", "value"}
    assert any(a.scales for c in layer_cases for a in c.arguments.values())


def test_exercise_index_lists_every_declared_exercise():
    assert catalog.chapters() == list(registry.chapters())
    for chapter in registry.chapters():
        assert {e.id for e in catalog.exercises(chapter)} == {e.id for e in registry.exercises(chapter)}
    assert catalog.find("head_type_scores").needs == ("model",)
    assert catalog.find("attention_scores").needs == ()


def test_corrupted_reference_file_is_refused(tmp_path):
    shutil.copytree(references.COMMITTED_DIR / CHAPTER, tmp_path / CHAPTER)
    path = tmp_path / CHAPTER / "pure.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the checksum"):
        ReferenceSet.load(path)


def test_missing_references_say_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setattr(importlib.import_module("autograder.check"), "_loaded", {})
    monkeypatch.setattr(references, "COMMITTED_DIR", tmp_path)
    monkeypatch.setattr(references, "cache_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m autograder generate"):
        load_references("ch2_induction", {})


def test_committed_references_are_reproduced_by_the_solutions(smollm2, gpt2_test):
    """Every set whose digest changed is recomputed, and SYNC_SAMPLE of the others (drawn
    anew each run; `make verify-all` recomputes them all)."""
    log = []
    problems = references_out_of_sync(["smollm2-135m", "gpt2-test"], everything=False,
                                      sample=SYNC_SAMPLE, log=log.append)
    assert problems == [], "\n".join(log)
    assert sum("recomputing" in line for line in log) >= SYNC_SAMPLE, log


def test_committed_digests_are_current():
    """What the committed sets depend on has not changed since their digests were stored
    (otherwise every verify recomputes them: `python -m autograder verify --record`)."""
    for path in sorted(references.COMMITTED_DIR.glob("*/*.json")):
        if path.name == "index.json":
            continue
        manifest = json.loads(path.read_text())
        current = sources_digest(manifest["chapter"], manifest["key"])
        assert (manifest.get("digest") or {}).get("sources") == current, (
            f"{path}: the digest is stale: run `python -m autograder verify --record` (or "
            "`python -m autograder generate --chapter` where the tensors changed)")


def pure_problems(problems: list[str]) -> list[str]:
    """Those about the pure sets (with no model named, the model sets read as stale)."""
    return [p for p in problems if "pure.safetensors:" in p or "index.json" in p]


def _replaced(monkeypatch, exercise_id, **changes):
    """Replace an exercise's declaration for the test."""
    chapter, exercise = registry.find(exercise_id)
    module = registry.chapter_module(chapter)
    changed = [e if e is not exercise else dataclasses.replace(e, **changes) for e in module.EXERCISES]
    monkeypatch.setattr(module, "EXERCISES", changed)
    return exercise


def _edited_copy(module, tmp_path, monkeypatch):
    """Point `module` at a copy of its file with one line of code changed."""
    source = Path(module.__file__).read_text()
    line = next(line for line in source.splitlines() if line.strip().startswith("return "))
    copy = tmp_path / Path(module.__file__).name
    copy.write_text(source.replace(line, line + "  # edited", 1))
    monkeypatch.setattr(module, "__file__", str(copy))


@pytest.mark.parametrize("change", ["solution file", "library module", "solution", "case maker",
                                    "mistake", "tolerance"])
def test_the_digest_changes_with_what_the_tensors_depend_on(change, tmp_path, monkeypatch):
    import readheads.patching
    import solutions.ch3_circuits

    chapters = ("ch1_attention", "ch3_circuits")
    before = {c: sources_digest(c, "pure") for c in chapters}
    exercise = registry.find("logit_diff")[1]
    if change == "solution file":
        _edited_copy(solutions.ch3_circuits, tmp_path, monkeypatch)
    elif change == "library module":  # ch3's solutions import readheads.patching; ch1's do not
        _edited_copy(readheads.patching, tmp_path, monkeypatch)
    elif change == "solution":
        _replaced(monkeypatch, exercise.id, solution=lambda *args: exercise.solution(*args) * 1)
    elif change == "case maker":
        _replaced(monkeypatch, exercise.id, make_cases=lambda *args: exercise.make_cases(*args))
    elif change == "mistake":
        _replaced(monkeypatch, exercise.id, mistakes=exercise.mistakes[1:])
    else:
        _replaced(monkeypatch, exercise.id, atol=exercise.atol * 2)
    after = {c: sources_digest(c, "pure") for c in chapters}
    assert after["ch3_circuits"] != before["ch3_circuits"]
    assert after["ch1_attention"] == before["ch1_attention"]
    assert sources_digest("ch3_circuits", "gpt2-test-1") != sources_digest("ch3_circuits", "pure")


def test_a_changed_solution_is_recomputed_by_its_digest_and_caught(monkeypatch):
    def attention_scores(q, k):  # an edited solution, no longer matching the stored tensors
        return torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1]

    log = []
    assert pure_problems(references_out_of_sync([], everything=False, sample=0, log=log.append)) == []
    assert not any("recomputing" in line for line in log), log
    _replaced(monkeypatch, "attention_scores", solution=attention_scores)
    log.clear()
    problems = pure_problems(references_out_of_sync([], everything=False, sample=0, log=log.append))
    assert problems and all("attention_scores" in p for p in problems)
    assert [line for line in log if "recomputing" in line] == [
        f"recomputing {CHAPTER}/pure.safetensors (its digest changed)"]


def test_a_stored_digest_that_differs_makes_verify_recompute(tmp_path, monkeypatch):
    """Another machine class or library version (the digest's environment part) recomputes."""
    shutil.copytree(references.COMMITTED_DIR, tmp_path / "references")
    path = tmp_path / "references" / CHAPTER / "pure.json"
    manifest = json.loads(path.read_text())
    manifest["digest"]["environment"]["platform"] = "riscv64/DEFAULT"
    path.write_text(json.dumps(manifest))
    monkeypatch.setattr(references, "COMMITTED_DIR", tmp_path / "references")
    log = []
    assert pure_problems(references_out_of_sync([], everything=False, sample=0, log=log.append)) == []
    assert [line for line in log if "recomputing" in line] == [
        f"recomputing {CHAPTER}/pure.safetensors (its digest changed)"]


@pytest.mark.slow
def test_committed_notebooks_and_book_index_are_generated_from_the_sources():
    for chapter in registry.chapters():
        assert notebooks.out_of_sync(ROOT, chapter) == []
    assert notebooks.book_index_out_of_sync(ROOT) == []
    toc = (ROOT / "book" / "_toc.yml").read_text()
    assert all(f"file: {chapter}" in toc for chapter in registry.chapters())


def test_stale_reference_files_and_index_are_reported(tmp_path, monkeypatch):
    shutil.copytree(references.COMMITTED_DIR, tmp_path / "references")
    committed = tmp_path / "references"
    shutil.copy(committed / CHAPTER / "pure.safetensors", committed / CHAPTER / "oldmodel-123.safetensors")
    index = json.loads((committed / "index.json").read_text())
    index["exercises"]["attention_scores"]["points"] = 2
    (committed / "index.json").write_text(json.dumps(index))
    monkeypatch.setattr(references, "COMMITTED_DIR", committed)
    problems = references_out_of_sync([])
    assert any("oldmodel-123.safetensors is stale" in p for p in problems)
    assert any("index.json differs" in p for p in problems)


def test_an_exercise_with_several_outputs_round_trips_and_is_judged_per_output(tmp_path):
    """The format carries exercises that return several tensors, and keys that join the
    fingerprints of everything an answer depends on (here a model and an SAE)."""
    def row_stats(x):
        return x.std(dim=-1), x.mean(dim=-1)

    def swapped(x):
        return x.mean(dim=-1), x.std(dim=-1)

    # Output names out of alphabetical order: the manifest (sorted keys) must keep the order.
    exercise = Exercise(row_stats, {"std": ("row",), "mean": ("row",)}, None, "x: normal",
                        atol=1e-5, rtol=1e-4, mistakes=(Mistake("swapped", "returned (mean, std)", swapped),))
    messages = {}
    x = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    case = build_case(exercise, describe(exercise, {"x": x}, None), None, messages)
    sources = {"model": SimpleNamespace(course_info=SimpleNamespace(key="toy-model-1")),
               "sae": SimpleNamespace(course_info=SimpleNamespace(key="toy-sae-2"))}
    entry = ExerciseReferences("row_stats", "x: normal", {"std": ["row"], "mean": ["row"]},
                               exercise.atol, exercise.rtol, messages, [case])
    saved = ReferenceSet("toy", references.reference_key(sources), {}, {}, {"row_stats": entry})
    loaded = ReferenceSet.load(saved.save(tmp_path))
    assert loaded.key == "toy-model-1+toy-sae-2"
    entry, case = loaded.exercises["row_stats"], loaded.exercises["row_stats"].cases[0]
    assert list(entry.outputs) == ["std", "mean"]
    assert judge(Outcome(row_stats(x)), entry, case, "cpu") is None
    assert "returned (mean, std)" in judge(Outcome(swapped(x)), entry, case, "cpu")
    assert "should return 2 tensors" in judge(Outcome(x.mean(dim=-1)), entry, case, "cpu")
    std, mean = row_stats(x)
    assert judge(Outcome((std * 2, mean)), entry, case, "cpu").startswith("std: 3 of 3 values")


def test_regenerated_inputs_may_round_at_their_scale_but_not_change():
    """Inputs computed from activations with norms in the thousands (an SAE's b_dec) round
    at that scale on another vector path or thread count; a real change is far larger."""
    from autograder.authoring.sync import _close_input

    large = torch.linspace(-1500.0, 1500.0, 101)
    assert _close_input(large, large + 1500 * 3e-7)
    assert not _close_input(large, large * 1.001)
    small = torch.linspace(-1.0, 1.0, 101)
    assert not _close_input(small, small + 1e-4)
