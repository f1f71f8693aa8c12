"""Reference tensors: computed from the solutions once, stored as safetensors with a manifest.

One file per chapter and "reference key": ``pure`` for model-independent exercises (their
inputs are stored too), or ``<model>-<fingerprint>`` for exercises that run on a model.
Each ``<key>.safetensors`` has a ``<key>.json`` manifest beside it: exercise ids, input
descriptions, cases, tolerances, mistakes, the model and its fingerprint, library versions and
the file's sha256. Tensor names are ``<exercise>/<case>/expected``,
``<exercise>/<case>/input/<argument>`` and ``<exercise>/<case>/mistake/<name>``.

Where references are looked for, in order: the committed ones (this package), the folder in
$COURSE_REFERENCES_DIR (e.g. built by an instructor and distributed), and the user cache,
where references for a model without committed ones are built on first use.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from readheads.paths import cache_dir

from . import registry
from .compare import distinguishability
from .spec import Exercise

COMMITTED_DIR = Path(__file__).parent / "references"
REFERENCES_ENV_VAR = "COURSE_REFERENCES_DIR"
PURE_KEY = "pure"


@dataclass
class References:
    chapter: str
    key: str
    tensors: dict[str, torch.Tensor]
    manifest: dict
    path: Path

    def describe(self) -> str:
        """E.g. "smollm2-135m-b4fbc286029f (course package)"; a path if built elsewhere."""
        committed = self.path.parent.parent == COMMITTED_DIR
        return f"{self.key} ({'course package' if committed else self.path})"


def reference_key(model) -> str:
    if model is None:
        return PURE_KEY
    info = getattr(model, "course_info", None)
    if info is None:
        raise ValueError("This model was not loaded with readheads.load_model(), so its weights "
                         "have no fingerprint to pick references by. Load it with load_model().")
    return info.key


def search_dirs() -> list[Path]:
    extra = os.environ.get(REFERENCES_ENV_VAR)
    return [COMMITTED_DIR] + ([Path(extra)] if extra else []) + [cache_dir() / "references"]


def seed_for(chapter: str, exercise: Exercise) -> int:
    return zlib.crc32(f"{chapter}/{exercise.id}".encode())


def pure_cases(chapter: str, exercise: Exercise) -> list[dict]:
    generator = torch.Generator().manual_seed(seed_for(chapter, exercise))
    return exercise.make_cases(generator)


def build(chapter: str, model=None, *, stored: tuple[dict, dict] | None = None
          ) -> tuple[dict[str, torch.Tensor], dict]:
    """Run the solutions (and mistakes) of one chapter: pure exercises if model is None.

    stored: (tensors, manifest) of a pure reference file, to recompute its outputs on its own
    stored inputs instead of drawing them again.
    """
    tensors, entries = {}, {}
    for exercise in registry.exercises(chapter):
        if exercise.needs_model != (model is not None):
            continue
        if model is not None:
            cases = exercise.make_cases(model)
        elif stored is not None:
            entry = stored[1]["exercises"][exercise.id]
            cases = [stored_case(stored[0], entry, exercise.id, i) for i in range(entry["cases"])]
        else:
            cases = pure_cases(chapter, exercise)
        entry = {"inputs": exercise.inputs, "cases": len(cases), "atol": exercise.atol,
                 "rtol": exercise.rtol, "output_dims": list(exercise.output_dims),
                 "mistakes": {}, "arguments": []}
        for index, kwargs in enumerate(cases):
            prefix = f"{exercise.id}/{index}"
            expected = exercise.solution(**kwargs).detach().cpu().contiguous()
            tensors[f"{prefix}/expected"] = expected
            if model is None:
                entry["arguments"].append(_store_inputs(prefix, kwargs, tensors))
            seen = [expected]
            for mistake in exercise.mistakes:
                wrong = mistake.fn(**kwargs).detach().cpu().contiguous()
                # A mistake that gives the right answer here (e.g. "forgot the bias" on a model
                # without biases), or the same answer as an earlier mistake, cannot be
                # diagnosed on this case: leave it out.
                if distinguishability(wrong, seen, exercise.atol, exercise.rtol) > 1:
                    seen.append(wrong)
                    tensors[f"{prefix}/mistake/{mistake.name}"] = wrong
                    entry["mistakes"].setdefault(mistake.name, mistake.message)
        entries[exercise.id] = entry
    manifest = {"chapter": chapter, "key": reference_key(model), "exercises": entries,
                "model": _model_entry(model),
                "versions": {p: version(p) for p in ("torch", "transformers", "transformer_lens")},
                "built_with": "python -m autograder build"}
    return tensors, manifest


def stored_case(tensors: dict, entry: dict, exercise_id: str, index: int) -> dict:
    """The keyword arguments of a pure exercise's case `index`, from a reference file (copies:
    in-place edits by the function under test cannot spoil the references)."""
    prefix = f"{exercise_id}/{index}/input/"
    kwargs = {name[len(prefix):]: tensor.clone()
              for name, tensor in tensors.items() if name.startswith(prefix)}
    kwargs.update(entry["arguments"][index])
    return kwargs


def _store_inputs(prefix: str, kwargs: dict, tensors: dict) -> dict:
    """Keep tensor arguments in the file; return the others (ints) for the manifest."""
    plain = {}
    for name, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            tensors[f"{prefix}/input/{name}"] = value.contiguous()
        else:
            plain[name] = value
    return plain


def _model_entry(model) -> dict | None:
    if model is None:
        return None
    info = model.course_info
    return {"name": info.name, "display_name": info.display_name,
            "fingerprint": info.fingerprint, "source": info.source}


def save(directory: Path, tensors: dict, manifest: dict) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{manifest['key']}.safetensors"
    save_file(tensors, str(path))
    manifest = dict(manifest, sha256=_sha256(path))
    path.with_suffix(".json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return path


def rebuild_command(key: str) -> str:
    """The command that rebuilds the references with this key."""
    if key == PURE_KEY:
        return "python -m autograder generate (in a checkout of the course)"
    return f"python -m autograder build --model {key.rsplit('-', 1)[0]}"


def read_manifest(path: Path) -> dict:
    return json.loads(path.with_suffix(".json").read_text())


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def find_file(chapter: str, key: str) -> Path | None:
    for directory in search_dirs():
        path = directory / chapter / f"{key}.safetensors"
        if path.is_file() and path.with_suffix(".json").is_file():
            return path
    return None


def load(chapter: str, model=None, *, build_missing: bool = True) -> References:
    """The references of `chapter` for `model` (None: the pure ones), built if missing."""
    key = reference_key(model)
    path = find_file(chapter, key)
    if path is None:
        if model is None or not build_missing:
            raise FileNotFoundError(f"No references {chapter}/{key}. Build them with: "
                                    f"{rebuild_command(key)}")
        print(f"No stored references for {model.course_info.display_name} [{key}]: building "
              "them once from the course solutions (this runs the model)...")
        path = save(cache_dir() / "references" / chapter, *build(chapter, model))
    manifest = read_manifest(path)
    if manifest.get("sha256") != _sha256(path):
        raise ValueError(f"{path} does not match the checksum in its manifest: it is corrupted "
                         f"or was edited. Rebuild it with: {rebuild_command(key)}")
    return References(chapter, key, load_file(str(path)), manifest, path)
