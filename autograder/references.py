"""Reference sets: everything a check needs, in one safetensors file and a JSON manifest.

A reference set covers the exercises of one chapter that depend on the same things: nothing
(key ``pure``) or a model (key ``<model>-<fingerprint>``; the key joins the keys of every
source an answer depends on, e.g. a model and an SAE). For each exercise it holds its test
cases — the arguments (tensors stored, the rest described), the expected outputs and the
outputs of known mistakes — and the tolerance, output names and dimensions, and mistake
messages. Checking an answer needs nothing else: the runtime never imports the solutions.

Tensor names in the file (made and parsed here only): ``<exercise>/<case>/argument/<name>``
(``.../argument/<name>/<field>`` for a record's fields),
``<exercise>/<case>/expected/<output>`` and ``<exercise>/<case>/mistake/<mistake>/<output>``.

Where reference sets are looked for, in order: the committed ones (this package), the folder
in $COURSE_REFERENCES_DIR (e.g. built by an instructor and distributed), and the user cache.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from readheads.paths import cache_dir

COMMITTED_DIR = Path(__file__).parent / "references"
REFERENCES_ENV_VAR = "COURSE_REFERENCES_DIR"
PURE_KEY = "pure"
FORMAT = 2


@dataclass
class Argument:
    """One argument of a case. kind: "tensor" (value is the tensor), "value" (a plain JSON
    value), "model" (the model the check runs on), "cache" (value: the tokens to run the
    model on; scales: activations to multiply afterwards), "record" (a named tuple of
    tensors from `readheads`, e.g. a dataset; value: {"type": its class name, "fields":
    {field: tensor}}), "run" (a committed training run; value: {"name", "checkpoints"}) or
    "checkpoint" (a committed run's model; value: {"name", "step"})."""

    kind: str
    value: Any = None
    scales: dict[str, float] = field(default_factory=dict)


@dataclass
class Case:
    arguments: dict[str, Argument]
    expected: dict[str, torch.Tensor]  # by output name
    mistakes: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)
    seconds: float | None = None  # the solution's time on this case where it was built


@dataclass
class ExerciseReferences:
    id: str
    description: str  # what the inputs are
    outputs: dict[str, list[str]]  # output name -> dimension names
    atol: float
    rtol: float
    mistake_messages: dict[str, str]
    cases: list[Case]
    points: int = 1

    @property
    def solution_seconds(self) -> float | None:
        """The solution's time on every case, where it was built (None: not recorded)."""
        times = [c.seconds for c in self.cases]
        return None if None in times else sum(times)


@dataclass
class ReferenceSet:
    chapter: str
    key: str
    sources: dict[str, dict]  # what the answers depend on, e.g. {"model": {name, fingerprint}}
    versions: dict[str, str]  # library versions that built it
    exercises: dict[str, ExerciseReferences]
    path: Path | None = None  # where it was loaded from
    digest: str | None = None  # of everything the tensors depend on (authoring/digest.py)
    probe_seconds: float | None = None  # timing.probe_seconds() where it was built

    def describe(self) -> str:
        """E.g. "smollm2-135m-5e2de176e604 (course package)"; a path if stored elsewhere."""
        committed = self.path is not None and self.path.parent.parent == COMMITTED_DIR
        return f"{self.key} ({'course package' if committed else self.path})"

    def without_answers(self) -> ReferenceSet:
        """The same cases with no expected or mistake outputs (for code that must not see them)."""
        exercises = {i: ExerciseReferences(e.id, e.description, e.outputs, e.atol, e.rtol, {},
                                           [Case(c.arguments, {}) for c in e.cases], e.points)
                     for i, e in self.exercises.items()}
        return ReferenceSet(self.chapter, self.key, self.sources, self.versions, exercises,
                            probe_seconds=self.probe_seconds)

    def save(self, directory: Path) -> Path:
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / f"{self.key}.safetensors"
        tensors, entries = {}, {}
        for exercise in self.exercises.values():
            entries[exercise.id] = _exercise_entry(exercise, tensors)
        save_file(tensors, str(path))
        manifest = {"format": FORMAT, "chapter": self.chapter, "key": self.key,
                    "sources": self.sources, "versions": self.versions, "exercises": entries,
                    "sha256": file_sha256(path)}
        if self.digest:
            manifest["digest"] = self.digest
        if self.probe_seconds:
            manifest["probe_seconds"] = round(self.probe_seconds, 6)
        path.with_suffix(".json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
        return path

    @classmethod
    def load(cls, path: Path) -> ReferenceSet:
        manifest = json.loads(path.with_suffix(".json").read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"{path} is in an older reference format; rebuild it with: "
                             f"{rebuild_command(manifest.get('key', PURE_KEY))}")
        if manifest.get("sha256") != file_sha256(path):
            raise ValueError(f"{path} does not match the checksum in its manifest: it is "
                             f"corrupted or was edited. Rebuild it with: "
                             f"{rebuild_command(manifest['key'])}")
        tensors = load_file(str(path))
        exercises = {exercise_id: _exercise_from(exercise_id, entry, tensors)
                     for exercise_id, entry in manifest["exercises"].items()}
        return cls(manifest["chapter"], manifest["key"], manifest["sources"],
                   manifest["versions"], exercises, path, manifest.get("digest"),
                   manifest.get("probe_seconds"))


def _exercise_entry(exercise: ExerciseReferences, tensors: dict) -> dict:
    cases = []
    for index, case in enumerate(exercise.cases):
        prefix = f"{exercise.id}/{index}"
        arguments = {}
        for name, argument in case.arguments.items():
            entry = {"kind": argument.kind}
            if argument.kind in ("tensor", "cache"):
                tensors[f"{prefix}/argument/{name}"] = _owned(argument.value)
            elif argument.kind in ("value", "run", "checkpoint"):
                entry["value"] = argument.value
            elif argument.kind == "record":
                entry["type"] = argument.value["type"]
                entry["fields"] = list(argument.value["fields"])
                for field_name, tensor in argument.value["fields"].items():
                    tensors[f"{prefix}/argument/{name}/{field_name}"] = _owned(tensor)
            if argument.scales:
                entry["scales"] = argument.scales
            arguments[name] = entry
        for output, tensor in case.expected.items():
            tensors[f"{prefix}/expected/{output}"] = _owned(tensor)
        for mistake, outputs in case.mistakes.items():
            for output, tensor in outputs.items():
                tensors[f"{prefix}/mistake/{mistake}/{output}"] = _owned(tensor)
        cases.append({"arguments": arguments, "mistakes": sorted(case.mistakes)})
        if case.seconds is not None:
            cases[-1]["seconds"] = round(case.seconds, 6)
    entry = {"description": exercise.description, "outputs": exercise.outputs,
             "atol": exercise.atol, "rtol": exercise.rtol, "points": exercise.points,
             "mistakes": exercise.mistake_messages, "cases": cases}
    if len(exercise.outputs) > 1:  # the manifest's keys are sorted: keep the tuple's order
        entry["output_order"] = list(exercise.outputs)
    return entry


def _exercise_from(exercise_id: str, entry: dict, tensors: dict) -> ExerciseReferences:
    cases = []
    for index, case in enumerate(entry["cases"]):
        prefix = f"{exercise_id}/{index}"
        arguments = {}
        for name, argument in case["arguments"].items():
            if argument["kind"] == "record":
                value = {"type": argument["type"], "fields": {
                    f: tensors[f"{prefix}/argument/{name}/{f}"] for f in argument["fields"]}}
            elif argument["kind"] in ("tensor", "cache"):
                value = tensors[f"{prefix}/argument/{name}"]
            else:
                value = argument.get("value")
            arguments[name] = Argument(argument["kind"], value, argument.get("scales", {}))
        expected = {o: tensors[f"{prefix}/expected/{o}"] for o in entry["outputs"]
                    if f"{prefix}/expected/{o}" in tensors}
        mistakes = {m: {o: tensors[f"{prefix}/mistake/{m}/{o}"] for o in entry["outputs"]}
                    for m in case["mistakes"]}
        cases.append(Case(arguments, expected, mistakes, case.get("seconds")))
    outputs = {name: entry["outputs"][name] for name in entry.get("output_order", entry["outputs"])}
    return ExerciseReferences(exercise_id, entry["description"], outputs, entry["atol"],
                              entry["rtol"], entry["mistakes"], cases, entry.get("points", 1))


def _owned(tensor: torch.Tensor) -> torch.Tensor:
    """A CPU copy that shares memory with nothing (safetensors refuses shared storage)."""
    return tensor.detach().to("cpu").clone().contiguous()


def file_sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def reference_key(sources: dict[str, Any]) -> str:
    """The key of the references for answers that depend on `sources` (name -> a loaded model,
    SAE...; each carries `course_info.key`): "pure" for none."""
    keys = []
    for name, source in sorted(sources.items()):
        info = getattr(source, "course_info", None)
        if info is None:
            raise ValueError(f"This {name} was not loaded by the course's loader, so it has no "
                             "fingerprint to pick references by. Load it with the course's "
                             "function (e.g. readheads.load_model()).")
        keys.append(info.key)
    return "+".join(keys) or PURE_KEY


def rebuild_command(key: str) -> str:
    """The command that builds the references with this key."""
    if key == PURE_KEY:
        return "python -m autograder generate (in a checkout of the course)"
    return f"python -m autograder build --model {key.split('+')[0].rsplit('-', 1)[0]}"


def search_dirs() -> list[Path]:
    extra = os.environ.get(REFERENCES_ENV_VAR)
    return [COMMITTED_DIR] + ([Path(extra)] if extra else []) + [cache_dir() / "references"]


def locate(chapter: str, key: str) -> Path | None:
    for directory in search_dirs():
        path = directory / chapter / f"{key}.safetensors"
        if path.is_file() and path.with_suffix(".json").is_file():
            return path
    return None
