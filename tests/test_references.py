"""Reference files: manifests say what they hold; corruption is caught; what is committed is
exactly what the solutions and the generator produce today."""

import dataclasses
import json
import shutil

import pytest
import torch

from autograder import notebooks, references, registry
from autograder.sync import references_out_of_sync

from .conftest import ROOT

CHAPTER = "ch1_attention"


def test_pure_manifest_describes_every_pure_exercise():
    manifest = json.loads((references.COMMITTED_DIR / CHAPTER / "pure.json").read_text())
    pure = {e.id: e for e in registry.exercises(CHAPTER) if not e.needs_model}
    assert set(manifest["exercises"]) == set(pure)
    for exercise_id, entry in manifest["exercises"].items():
        assert entry["atol"] == pure[exercise_id].atol and entry["rtol"] == pure[exercise_id].rtol
        assert entry["inputs"] and entry["cases"] >= 2
    assert manifest["model"] is None and set(manifest["versions"]) == {"torch", "transformers", "transformer_lens"}


def test_model_manifest_records_model_and_fingerprint(smollm2):
    refs = references.load(CHAPTER, smollm2)
    model = refs.manifest["model"]
    assert model["name"] == "smollm2-135m" and model["fingerprint"] == smollm2.course_info.fingerprint
    assert refs.path.parent.parent == references.COMMITTED_DIR
    assert set(refs.manifest["exercises"]) == {e.id for e in registry.exercises(CHAPTER) if e.needs_model}


def test_corrupted_reference_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / CHAPTER
    shutil.copytree(references.COMMITTED_DIR / CHAPTER, copy)
    data = bytearray((copy / "pure.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (copy / "pure.safetensors").write_bytes(bytes(data))
    monkeypatch.setattr(references, "COMMITTED_DIR", tmp_path)
    with pytest.raises(ValueError, match="does not match the checksum"):
        references.load(CHAPTER)


def test_missing_pure_references_say_how_to_build(tmp_path, monkeypatch):
    monkeypatch.setattr(references, "COMMITTED_DIR", tmp_path)
    monkeypatch.setattr(references, "cache_dir", lambda: tmp_path)
    with pytest.raises(FileNotFoundError, match="python -m autograder build"):
        references.load(CHAPTER)


def test_committed_references_are_reproduced_by_the_solutions(smollm2, gpt2_test):
    assert references_out_of_sync(["smollm2-135m", "gpt2-test"]) == []


def test_a_changed_solution_is_detected_as_out_of_sync(monkeypatch):
    def attention_scores(q, k):  # an edited solution, no longer matching the stored tensors
        return torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1]

    module = registry.chapter_module(CHAPTER)
    exercise = registry.find("attention_scores")[1]
    changed = [e if e is not exercise else dataclasses.replace(e, solution=attention_scores)
               for e in module.EXERCISES]
    monkeypatch.setattr(module, "EXERCISES", changed)
    problems = [p for p in references_out_of_sync([]) if "pure.safetensors:" in p]
    assert problems and all("attention_scores" in p for p in problems)


def test_committed_notebooks_are_generated_from_the_master_and_solutions():
    assert notebooks.out_of_sync(ROOT, CHAPTER) == []


def test_stale_reference_files_are_reported(tmp_path, monkeypatch):
    shutil.copytree(references.COMMITTED_DIR / CHAPTER, tmp_path / CHAPTER)
    shutil.copy(tmp_path / CHAPTER / "pure.safetensors", tmp_path / CHAPTER / "oldmodel-123.safetensors")
    monkeypatch.setattr(references, "COMMITTED_DIR", tmp_path)
    assert any("oldmodel-123.safetensors is stale" in p for p in references_out_of_sync([]))
