"""Harvest a model's activations at one hook point over a corpus, into shards on disk.

The forward pass stops at the hook (nothing after it is computed), so harvesting the
residual stream entering layer 15 of 30 costs about half a forward pass. Activations go to
float16 shards of a fixed number of rows; a manifest records the model's fingerprint, the
hook, the tokens' hash and every finished shard, so an interrupted harvest resumes where it
stopped and a folder harvested from another model or other tokens is refused. Memory stays
bounded by one shard.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

MANIFEST = "manifest.json"


class _Stop(Exception):
    """Raised by the hook once it has the activation: ends the forward pass there."""


def activations_at(model, tokens: torch.Tensor, hook_name: str,
                   autocast: str | None = None) -> torch.Tensor:
    """The activation at `hook_name` for `tokens` [batch, pos], computing nothing after it.

    autocast: "bfloat16" runs the matrix multiplications in bfloat16 (weights and the
    residual stream stay float32): on CPUs with AMX or AVX-512 BF16 and on GPUs, about twice
    as fast a harvest, with activations about 1% off (`benchmarks/harvest_speed.py`)."""
    taken = {}

    def take(activation, hook):
        taken["value"] = activation.detach().float()
        raise _Stop

    device_type = torch.device(model.cfg.device).type
    precision = torch.autocast(device_type, dtype=getattr(torch, autocast or "bfloat16"),
                               enabled=autocast is not None)
    with torch.no_grad(), precision, model.hooks(fwd_hooks=[(hook_name, take)]):
        try:
            model(tokens.to(model.cfg.device))
        except _Stop:
            pass
    if "value" not in taken:
        raise KeyError(f"The model has no hook point {hook_name!r} (e.g. blocks.15.hook_resid_pre)")
    return taken["value"]


def harvest(model, tokens: torch.Tensor, hook_name: str, folder: Path, *, batch_size: int = 32,
            shard_rows: int = 1024, skip_bos: bool = True, skip_special: bool = True,
            autocast: str | None = None, progress: bool = True) -> dict:
    """Store the activations at `hook_name` for every row of `tokens` [row, pos] in `folder`.

    skip_bos: leave out position 0 (the BOS token). skip_special: leave out every special
    token (e.g. the end-of-text token between documents). Their residual streams have norms
    about a hundred times those of words: kept in, a few of them would make up nearly all of an
    SAE's loss. autocast: see `activations_at`. Returns the manifest. Running again with the same model and tokens finishes an
    interrupted harvest and redoes nothing.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {"model": model.course_info.key, "hook_name": hook_name,
              "tokens_sha256": hashlib.sha256(tokens.cpu().numpy().tobytes()).hexdigest(),
              "rows": tokens.shape[0], "context_size": tokens.shape[1], "skip_bos": skip_bos,
              "skip_special": skip_special, "shard_rows": shard_rows, "dtype": "float16",
              "autocast": autocast}
    manifest = _read_manifest(folder)
    if manifest is not None and {k: manifest.get(k) for k in wanted} != wanted:
        differs = [k for k in wanted if manifest.get(k) != wanted[k]]
        raise ValueError(f"{folder} holds another harvest (it differs in {', '.join(differs)}): "
                         "use another folder, or delete this one to start again")
    manifest = manifest or {**wanted, "shards": [], "d_in": None}
    done = {shard["file"] for shard in manifest["shards"]}
    starts = range(0, tokens.shape[0], shard_rows)
    bar = tqdm(total=tokens.shape[0], desc=f"harvest {hook_name}", unit="row", disable=not progress)
    for index, start in enumerate(starts):
        file = f"shard_{index:05d}.safetensors"
        rows = tokens[start:start + shard_rows]
        if file in done:
            bar.update(len(rows))
            continue
        parts = []
        for batch in rows.split(batch_size):
            activation = activations_at(model, batch, hook_name, autocast).half().cpu()
            parts.append(activation[kept_positions(model, batch, skip_bos, skip_special)])
            bar.update(len(batch))
        shard = torch.cat(parts)
        save_file({"activations": shard}, str(folder / (file + ".tmp")))
        (folder / (file + ".tmp")).rename(folder / file)
        manifest["d_in"] = shard.shape[-1]
        manifest["shards"].append({"file": file, "first_row": start, "rows": len(rows),
                                   "tokens": shard.shape[0]})
        _write_manifest(folder, manifest)
    bar.close()
    manifest["tokens"] = sum(shard["tokens"] for shard in manifest["shards"])
    _write_manifest(folder, manifest)
    return manifest


def kept_positions(model, tokens: torch.Tensor, skip_bos: bool = True,
                   skip_special: bool = True) -> torch.Tensor:
    """bool [row, pos]: the positions a harvest keeps (see `harvest`)."""
    keep = torch.ones(tokens.shape, dtype=torch.bool)
    if skip_special:
        keep &= ~torch.isin(tokens.cpu(), torch.tensor(model.tokenizer.all_special_ids))
    if skip_bos:
        keep[:, 0] = False
    return keep


def _read_manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def _write_manifest(folder: Path, manifest: dict) -> None:
    (folder / (MANIFEST + ".tmp")).write_text(json.dumps(manifest, indent=1) + "\n")
    (folder / (MANIFEST + ".tmp")).rename(folder / MANIFEST)


class ActivationShards:
    """A finished harvest, read back shard by shard (float32 on `device`)."""

    def __init__(self, folder: Path, device: str = "cpu"):
        self.folder, self.device = Path(folder), device
        self.manifest = _read_manifest(self.folder)
        if self.manifest is None:
            raise FileNotFoundError(f"{self.folder} has no {MANIFEST}: harvest into it first")
        expected = -(-self.manifest["rows"] // self.manifest["shard_rows"])
        if len(self.manifest["shards"]) != expected:
            raise ValueError(f"{self.folder} is a partial harvest ({len(self.manifest['shards'])}"
                             f" of {expected} shards): run harvest() again to finish it")

    def __len__(self) -> int:
        return len(self.manifest["shards"])

    @property
    def tokens(self) -> int:
        return sum(shard["tokens"] for shard in self.manifest["shards"])

    def shard(self, index: int) -> torch.Tensor:
        path = self.folder / self.manifest["shards"][index]["file"]
        return load_file(str(path))["activations"].to(self.device, torch.float32)

    def batches(self, batch_size: int, generator: torch.Generator, shards_in_buffer: int = 4):
        """Shuffled batches [batch_size, d_in] over one pass of every activation: shards in a
        random order, mixed `shards_in_buffer` at a time (memory: that many shards)."""
        order = torch.randperm(len(self), generator=generator).tolist()
        for group in range(0, len(order), shards_in_buffer):
            buffer = torch.cat([self.shard(i) for i in order[group:group + shards_in_buffer]])
            buffer = buffer[torch.randperm(len(buffer), generator=generator).to(buffer.device)]
            yield from buffer.split(batch_size)[:len(buffer) // batch_size]


class ActivationsInMemory:
    """Activations [n, d_in] held in memory, read like `ActivationShards` (for toy data)."""

    def __init__(self, activations: torch.Tensor):
        self.activations, self.device = activations, activations.device

    @property
    def tokens(self) -> int:
        return len(self.activations)

    def shard(self, index: int) -> torch.Tensor:
        return self.activations

    def batches(self, batch_size: int, generator: torch.Generator, shards_in_buffer: int = 4):
        order = torch.randperm(len(self.activations), generator=generator).to(self.device)
        yield from self.activations[order].split(batch_size)[:len(order) // batch_size]
