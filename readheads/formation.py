"""Train attention-only transformers on the synthetic stream, keeping checkpoints on a
log-spaced schedule and the held-out loss on every token position at each ("How induction
heads form").

    python -m readheads.formation --layers 2 --seed 0 --out DIR     one run, written to DIR
    python -m readheads.formation --layers 1 --smeared-key ...      the smeared-key variant
    python -m readheads.formation --course [NAME ...]               retrain the committed runs

A run folder holds ``checkpoints.safetensors`` (the weights in float16 under
``<step>/<name>``, at every checkpoint or only the last; and, per checkpoint, in float32:
``held_out_loss`` [checkpoint, position], ``previous_token_scores`` and ``induction_scores``
[checkpoint, layer, head] and ``repeated_loss`` [checkpoint], the measures of `measure`) and
``manifest.json`` (config, data, training settings, seed, steps, seconds, the command).

The course's runs (`COURSE_RUNS`) are committed in ``readheads/formation_runs/`` and read with
`load_course_run`: the two-layer model of seed 0 with every checkpoint's weights, the others
(seeds 1-4, 2 and 8 heads, the one-layer control and the smeared key) with their measures at
every checkpoint and the last checkpoint's weights.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, replace
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from tqdm.auto import tqdm

from .attn_only import BOS, AttnOnlyConfig, AttnOnlyTransformer
from .formation_data import StreamConfig, sample_batch, stream

HELD_OUT_SEED = 10**9 + 7  # training seeds are small integers: held-out sequences are unseen
REPEATED_SEED = 10**9 + 9  # the repeated random tokens that the head scores are measured on
WEIGHTS_FILE, MANIFEST_FILE = "checkpoints.safetensors", "manifest.json"
RUNS_DIR = Path(__file__).parent / "formation_runs"
MEASURES = ("previous_token_scores", "induction_scores", "repeated_loss")


@dataclass(frozen=True)
class TrainingSettings:
    steps: int = 2000
    batch_size: int = 32
    lr: float = 1e-2
    warmup: int = 100  # steps of linear learning-rate warm-up; constant after
    n_checkpoints: int = 60  # at most: log-spaced steps that round to the same step merge
    held_out: int = 1024  # sequences the per-token loss is measured on


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
    states: dict[int, dict[str, torch.Tensor]]  # weights by step (every checkpoint, or some)
    held_out_loss: torch.Tensor  # [checkpoint, n_ctx - 1]: entry j is the loss on token j + 1
    measures: dict[str, torch.Tensor]  # `measure`'s results, stacked over checkpoints
    seconds: float  # training time, checkpoints included
    name: str = ""  # a course run's name
    command: str = ""  # the command that trained it (from its manifest)

    def model_at(self, step: int) -> AttnOnlyTransformer:
        """The model as it was after `step` optimizer steps (a step in `steps` whose weights
        the run keeps: `weight_steps`)."""
        if step not in self.states:
            raise KeyError(f"run {self.name or self.seed!r} keeps weights at steps "
                           f"{self.weight_steps} only, not at step {step!r}")
        model = AttnOnlyTransformer(self.config)
        model.load_state_dict({k: v.float() for k, v in self.states[step].items()})
        return model.eval()

    @property
    def weight_steps(self) -> list[int]:
        return sorted(self.states)

    def select(self, indices) -> TrainingRun:
        """The same run with only these checkpoints (indices into `steps`, in this order)."""
        indices = list(indices)
        steps = [self.steps[i] for i in indices]
        kept = {s: self.states[s] for s in steps if s in self.states}
        return replace(self, steps=steps, states=kept, held_out_loss=self.held_out_loss[indices],
                       measures={k: v[indices] for k, v in self.measures.items()})


def checkpoint_steps(steps: int, n_checkpoints: int) -> list[int]:
    """Step 0 and up to n_checkpoints - 1 steps spaced evenly in log(step) up to `steps`."""
    spaced = torch.logspace(0, torch.log10(torch.tensor(float(steps))), n_checkpoints - 1)
    return sorted({0, *spaced.round().long().tolist()})


def in_context_learning_score(held_out_loss: torch.Tensor, n_ctx: int) -> torch.Tensor:
    """Loss on a late token minus loss on an early one: Olsson et al.'s token 500 minus token
    50 of 512, scaled to n_ctx. held_out_loss: [..., n_ctx - 1] (entry j: token j + 1)."""
    early, late = round(50 / 512 * n_ctx), round(500 / 512 * n_ctx)
    return held_out_loss[..., late - 1] - held_out_loss[..., early - 1]


def repeated_tokens(d_vocab: int, seq_len: int, batch: int, seed: int) -> torch.Tensor:
    """int64 [batch, 1 + 2 * seq_len]: BOS, seq_len random tokens (never BOS), the same again."""
    half = torch.randint(1, d_vocab, (batch, seq_len), generator=torch.Generator().manual_seed(seed))
    return torch.cat([torch.full((batch, 1), BOS), half, half], dim=1)


def measure(model: AttnOnlyTransformer, tokens: torch.Tensor) -> dict[str, torch.Tensor]:
    """On repeated random tokens [batch, 1 + 2 * seq_len]: each head's previous-token score
    (attention from i to i - 1, averaged over queries i >= 1) and induction score (from each
    query i of the second half to i - seq_len + 1) [layer, head], as Chapter 2 defines them,
    and the mean loss on the second half's tokens 2..seq_len (those copying predicts)."""
    seq_len = (tokens.shape[1] - 1) // 2
    with torch.no_grad():
        logits, cache = model.run_with_cache(tokens, names_filter=lambda n: n.endswith("hook_pattern"))
    patterns = torch.stack([cache["pattern", layer] for layer in range(model.cfg.n_layers)])
    previous = patterns.diagonal(offset=-1, dim1=-2, dim2=-1).mean(dim=(1, -1))
    induction = patterns.diagonal(offset=-(seq_len - 1), dim1=-2, dim2=-1)[..., 2:].mean(dim=(1, -1))
    losses = F.cross_entropy(logits[:, :-1].transpose(1, 2), tokens[:, 1:], reduction="none")
    return {"previous_token_scores": previous, "induction_scores": induction,
            "repeated_loss": losses[:, seq_len + 1:].mean()}


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
    repeated = repeated_tokens(config.d_vocab, (config.n_ctx - 1) // 2, 32, REPEATED_SEED)
    repeated = repeated.to(config.device)
    schedule = checkpoint_steps(training.steps, training.n_checkpoints)
    states, losses, measures = {}, [], []

    def keep_checkpoint():
        states[step] = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        with torch.no_grad():
            losses.append(model(held_out, return_type="loss", loss_per_token=True).mean(0).cpu())
        measures.append({k: v.cpu() for k, v in measure(model, repeated).items()})

    start, step = time.perf_counter(), 0
    keep_checkpoint()
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
    stacked = {k: torch.stack([m[k] for m in measures]) for k in MEASURES}
    return TrainingRun(config, data, training, seed, schedule, states, torch.stack(losses),
                       stacked, time.perf_counter() - start)


def save_run(run: TrainingRun, folder: Path, command: str, weights: str = "all") -> Path:
    """Write the run's checkpoints (float16; weights "all" or only the "last" checkpoint's),
    its measures and its manifest into `folder`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    kept = run.weight_steps if weights == "all" else run.weight_steps[-1:]
    tensors = {f"{step}/{name}": value.to(torch.float16).contiguous()
               for step in kept for name, value in run.states[step].items()}
    tensors["held_out_loss"] = run.held_out_loss.float().contiguous()
    tensors.update({k: v.float().contiguous() for k, v in run.measures.items()})
    save_file(tensors, str(folder / WEIGHTS_FILE))
    manifest = {"config": asdict(run.config), "data": asdict(run.data),
                "training": asdict(run.training), "seed": run.seed, "steps": run.steps,
                "weight_steps": kept, "seconds": round(run.seconds, 1),
                "threads": torch.get_num_threads(), "torch": torch.__version__, "command": command}
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=1) + "\n")
    return folder


def load_run(folder: Path, device: str = "cpu") -> TrainingRun:
    """A run written by `save_run`; weights come back as float32 on `device` (new tensors
    each time: a caller may change them)."""
    manifest, tensors = _stored(Path(folder).resolve())
    states = {step: {name[len(f"{step}/"):]: value.float().to(device)
                     for name, value in tensors.items() if name.startswith(f"{step}/")}
              for step in manifest["weight_steps"]}
    return TrainingRun(AttnOnlyConfig(**{**manifest["config"], "device": device}),
                       StreamConfig(**manifest["data"]), TrainingSettings(**manifest["training"]),
                       manifest["seed"], list(manifest["steps"]), states,
                       tensors["held_out_loss"].clone(), {k: tensors[k].clone() for k in MEASURES},
                       manifest["seconds"], Path(folder).name, manifest["command"])


@lru_cache(maxsize=16)
def _stored(folder: Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """A run folder's manifest and tensors as stored, read once (never handed out)."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    return manifest, load_file(str(folder / WEIGHTS_FILE))


# The committed runs: name -> the options that train it (and which weights are kept).
COURSE_RUNS = {
    "2l-seed0": ("--layers 2 --seed 0", "all"),
    **{f"2l-seed{seed}": (f"--layers 2 --seed {seed}", "last") for seed in range(1, 5)},
    "2l-heads2-seed0": ("--layers 2 --heads 2 --seed 0", "last"),
    "2l-heads8-seed0": ("--layers 2 --heads 8 --seed 0", "last"),
    "1l-seed0": ("--layers 1 --seed 0", "last"),
    "1l-smeared-seed0": ("--layers 1 --smeared-key --seed 0", "last"),
}


def load_course_run(name: str, checkpoints=None) -> TrainingRun:
    """A committed run (`COURSE_RUNS`), on the CPU; checkpoints: indices to keep (all: None)."""
    if name not in COURSE_RUNS:
        raise KeyError(f"There is no course run called {name!r}; runs: {', '.join(COURSE_RUNS)}")
    run = load_run(RUNS_DIR / name)
    return run if checkpoints is None else run.select(checkpoints)


def load_course_checkpoint(name: str, step: int) -> AttnOnlyTransformer:
    """The model of a committed run after `step` training steps."""
    return load_course_run(name).model_at(step)


def run_arguments(parser: argparse.ArgumentParser, threads: int | None = None) -> None:
    """The options that pick a run: --layers, --smeared-key, --seed, --steps, --threads."""
    parser.add_argument("--layers", type=int, default=MODEL.n_layers)
    parser.add_argument("--heads", type=int, default=MODEL.n_heads)
    parser.add_argument("--smeared-key", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=TRAINING.steps)
    default = threads or "torch's own"
    parser.add_argument("--threads", type=int, default=threads, help=f"torch threads (default: {default})")


def run_settings(args) -> tuple[AttnOnlyConfig, TrainingSettings]:
    """The model and training settings `run_arguments`' options pick (and torch's threads)."""
    if args.threads:
        torch.set_num_threads(args.threads)
    return (replace(MODEL, n_layers=args.layers, n_heads=args.heads, smeared_key=args.smeared_key),
            replace(TRAINING, steps=args.steps))


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    run_arguments(parser)
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--out", type=Path, help="train the run the options pick, into OUT")
    where.add_argument("--course", nargs="*", metavar="NAME", choices=list(COURSE_RUNS),
                       help="retrain these committed runs (all: no name) into " + str(RUNS_DIR))
    args = parser.parse_args(argv)
    if args.out:
        config, training = run_settings(args)
        run = train(config, DATA, training, seed=args.seed)
        command = "python -m readheads.formation " + " ".join(sys.argv[1:] if argv is None else argv)
        print("wrote", save_run(run, args.out, command))
        return
    one_run = argparse.ArgumentParser()
    run_arguments(one_run, threads=args.threads)
    for name in args.course or COURSE_RUNS:
        options, weights = COURSE_RUNS[name]
        chosen = one_run.parse_args(options.split())
        config, training = run_settings(chosen)
        run = train(config, DATA, training, seed=chosen.seed)
        command = f"python -m readheads.formation --course {name}  # = {options}"
        print("wrote", save_run(run, RUNS_DIR / name, command, weights))


if __name__ == "__main__":
    main()
