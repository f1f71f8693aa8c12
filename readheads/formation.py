"""Train attention-only transformers on the synthetic stream, keeping checkpoints on a
log-spaced schedule and the held-out loss on every token position at each ("How induction
heads form").

    python -m readheads.formation --layers 2 --seed 0 --out DIR     one run, written to DIR
    python -m readheads.formation --layers 1 --smeared-key ...      the smeared-key variant

A run folder holds ``checkpoints.safetensors`` (every checkpoint's weights in float16 under
``<step>/<name>``, and ``held_out_loss`` [checkpoint, position] in float32) and
``manifest.json`` (config, data, training settings, seed, steps, seconds, the command).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .attn_only import AttnOnlyConfig, AttnOnlyTransformer
from .formation_data import StreamConfig, sample_batch, stream

HELD_OUT_SEED = 10**9 + 7  # training seeds are small integers: held-out sequences are unseen
WEIGHTS_FILE, MANIFEST_FILE = "checkpoints.safetensors", "manifest.json"


@dataclass(frozen=True)
class TrainingSettings:
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-2
    warmup: int = 100  # steps of linear learning-rate warm-up; constant after
    n_checkpoints: int = 30  # at most: log-spaced steps that round to the same step merge
    held_out: int = 512  # sequences the per-token loss is measured on


# The course's runs: d_vocab and n_ctx are shared by the model and the data.
MODEL = AttnOnlyConfig()
DATA = StreamConfig(d_vocab=MODEL.d_vocab, n_ctx=MODEL.n_ctx)
TRAINING = TrainingSettings()


@dataclass
class TrainingRun:
    config: AttnOnlyConfig
    data: StreamConfig
    training: TrainingSettings
    seed: int
    steps: list[int]  # of the checkpoints: optimizer steps taken before each
    states: list[dict[str, torch.Tensor]]  # each checkpoint's weights
    held_out_loss: torch.Tensor  # [checkpoint, n_ctx - 1]: entry j is the loss on token j + 1
    seconds: float  # training time, checkpoints included

    def model_at(self, index: int) -> AttnOnlyTransformer:
        model = AttnOnlyTransformer(self.config)
        model.load_state_dict({k: v.float() for k, v in self.states[index].items()})
        return model.eval()


def checkpoint_steps(steps: int, n_checkpoints: int) -> list[int]:
    """Step 0 and up to n_checkpoints - 1 steps spaced evenly in log(step) up to `steps`."""
    spaced = torch.logspace(0, torch.log10(torch.tensor(float(steps))), n_checkpoints - 1)
    return sorted({0, *spaced.round().long().tolist()})


def in_context_learning_score(held_out_loss: torch.Tensor, n_ctx: int) -> torch.Tensor:
    """Loss on a late token minus loss on an early one: Olsson et al.'s token 500 minus token
    50 of 512, scaled to n_ctx. held_out_loss: [..., n_ctx - 1] (entry j: token j + 1)."""
    early, late = round(50 / 512 * n_ctx), round(500 / 512 * n_ctx)
    return held_out_loss[..., late - 1] - held_out_loss[..., early - 1]


def train(config: AttnOnlyConfig = MODEL, data: StreamConfig = DATA,
          training: TrainingSettings = TRAINING, seed: int = 0, progress: bool = True) -> TrainingRun:
    """Train from seeded weights on the seeded stream with AdamW (torch's default betas and
    weight decay), the learning rate warmed up linearly; torch's thread count is the caller's."""
    if (data.d_vocab, data.n_ctx) != (config.d_vocab, config.n_ctx):
        raise ValueError(f"the data's vocabulary and context ({data.d_vocab}, {data.n_ctx}) "
                         f"must match the model's ({config.d_vocab}, {config.n_ctx})")
    model = AttnOnlyTransformer(config, seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=training.lr)
    warm_up = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: min(1.0, (step + 1) / training.warmup))
    batches = stream(data, training.batch_size, seed)
    held_out = sample_batch(data, training.held_out, torch.Generator().manual_seed(HELD_OUT_SEED))
    held_out = held_out.to(config.device)
    schedule = checkpoint_steps(training.steps, training.n_checkpoints)
    states, losses = [], []

    def keep_checkpoint():
        states.append({k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
        with torch.no_grad():
            losses.append(model(held_out, return_type="loss", loss_per_token=True).mean(0).cpu())

    start = time.perf_counter()
    keep_checkpoint()  # step 0
    bar = tqdm(range(1, training.steps + 1), desc=f"train {config.n_layers}-layer, seed {seed}",
               unit="step", disable=not progress)
    for step in bar:
        loss = model(next(batches).to(config.device), return_type="loss")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        warm_up.step()
        if step in schedule:
            keep_checkpoint()
            bar.set_postfix(held_out_loss=f"{float(losses[-1].mean()):.3f}")
    return TrainingRun(config, data, training, seed, schedule, states, torch.stack(losses),
                       time.perf_counter() - start)


def save_run(run: TrainingRun, folder: Path, command: str) -> Path:
    """Write the run's checkpoints (float16) and manifest into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"{step}/{name}": value.to(torch.float16).contiguous()
               for step, state in zip(run.steps, run.states) for name, value in state.items()}
    tensors["held_out_loss"] = run.held_out_loss.float().contiguous()
    save_file(tensors, str(folder / WEIGHTS_FILE))
    manifest = {"config": asdict(run.config), "data": asdict(run.data),
                "training": asdict(run.training), "seed": run.seed, "steps": run.steps,
                "seconds": round(run.seconds, 1), "threads": torch.get_num_threads(),
                "torch": torch.__version__, "command": command}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


def load_run(folder: Path, device: str = "cpu") -> TrainingRun:
    """A run written by `save_run`; weights come back as float32 on `device`."""
    folder = Path(folder)
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    tensors = load_file(str(folder / WEIGHTS_FILE))
    states = [{name[len(f"{step}/"):]: value.float().to(device) for name, value in tensors.items()
               if name.startswith(f"{step}/")} for step in manifest["steps"]]
    return TrainingRun(AttnOnlyConfig(**{**manifest["config"], "device": device}),
                       StreamConfig(**manifest["data"]), TrainingSettings(**manifest["training"]),
                       manifest["seed"], manifest["steps"], states, tensors["held_out_loss"],
                       manifest["seconds"])


def run_arguments(parser: argparse.ArgumentParser, threads: int | None = None) -> None:
    """The options that pick a run: --layers, --smeared-key, --seed, --steps, --threads."""
    parser.add_argument("--layers", type=int, default=MODEL.n_layers)
    parser.add_argument("--smeared-key", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=TRAINING.steps)
    default = threads or "torch's own"
    parser.add_argument("--threads", type=int, default=threads, help=f"torch threads (default: {default})")


def run_settings(args) -> tuple[AttnOnlyConfig, TrainingSettings]:
    """The model and training settings `run_arguments`' options pick (and torch's threads)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return (replace(MODEL, n_layers=args.layers, smeared_key=args.smeared_key),
            replace(TRAINING, steps=args.steps))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    run_arguments(parser)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    config, training = run_settings(args)
    run = train(config, DATA, training, seed=args.seed)
    command = "python -m readheads.formation " + " ".join(sys.argv[1:] if argv is None else argv)
    print("wrote", save_run(run, args.out, command))


if __name__ == "__main__":
    main()
