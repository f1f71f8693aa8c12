"""Train one attention-only model as the published runs are trained (readheads.formation), and
print its speed against this machine's measured float32 matmul peak and when it changed phase.

    python benchmarks/formation_training.py                    2 layers, seed 0, 2 threads
    python benchmarks/formation_training.py --layers 1 [--smeared-key] [--seed S] [--threads T]

Not a test: nothing here can fail on a slow machine. The phase change is read from the
checkpoints: the in-context-learning score (readheads.formation.in_context_learning_score) and
the best induction score of the last layer's heads on repeated random tokens (Chapter 2's
`induction_scores`, unchanged): for each, the two checkpoints between which it moved most,
and the first checkpoint by which it had covered half of its change from the first to the last.
"""

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from readheads.formation import (DATA, in_context_learning_score, run_arguments,  # noqa: E402
                                 run_settings, train)
from solutions.ch2_induction import induction_scores, repeated_random_tokens  # noqa: E402


def matmul_peak_flops(size: int = 1024, repeats: int = 10) -> float:
    """float32 FLOP/s of a size x size @ size x size matmul on the CPU, best of `repeats`.
    (benchmarks/run.py's SAE benchmark times its peak the same way, inline, at the SAE's shape.)"""
    a, b = torch.randn(size, size), torch.randn(size, size)
    for _ in range(3):
        a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best


def training_flops_per_token(cfg) -> float:
    """Matmul FLOPs per trained token: forward (QKV, scores over the full context, pattern @ V,
    W_O, unembedding) times 3 for the backward pass."""
    width = cfg.n_heads * cfg.d_head
    per_layer = 2 * cfg.d_model * 3 * width + 2 * 2 * cfg.n_ctx * width + 2 * width * cfg.d_model
    return 3 * (cfg.n_layers * per_layer + 2 * cfg.d_model * cfg.d_vocab)


def half_change_step(steps, values: torch.Tensor) -> int:
    """The first checkpoint step at which `values` covered half its first-to-last change."""
    middle = (values[0] + values[-1]) / 2
    past = values >= middle if values[-1] > values[0] else values <= middle
    return steps[int(past.nonzero()[0])]


def steepest_interval(steps, values: torch.Tensor) -> tuple[int, int]:
    """The two consecutive checkpoint steps between which `values` moved furthest in the
    direction of its overall change."""
    moves = values.diff() * (1 if values[-1] > values[0] else -1)
    index = int(moves.argmax())
    return steps[index], steps[index + 1]


def describe(name: str, steps, values: torch.Tensor) -> str:
    start, end = steepest_interval(steps, values)
    before, after = values[steps.index(start)], values[steps.index(end)]
    return (f"{name}: {values[0]:+.2f} -> {values[-1]:+.2f}, steepest between steps {start} and "
            f"{end} ({before:+.2f} -> {after:+.2f}), half of the change by step "
            f"{half_change_step(steps, values)}")


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    run_arguments(parser, threads=2)
    args = parser.parse_args(argv)
    config, training = run_settings(args)

    peak = matmul_peak_flops()
    cpu_start = time.process_time()
    run = train(config, DATA, training, seed=args.seed)
    cpu_share = (time.process_time() - cpu_start) / run.seconds / args.threads
    tokens = training.steps * training.batch_size * config.n_ctx
    flops = training_flops_per_token(config) * tokens / run.seconds
    print(f"{config.n_layers}-layer{' smeared-key' if config.smeared_key else ''} model, seed "
          f"{args.seed}, {training.steps} steps of {training.batch_size} x {config.n_ctx} tokens "
          f"on {args.threads} threads: {run.seconds:.1f} s (checkpoints included), "
          f"{tokens / run.seconds:,.0f} tokens/s = {flops / 1e9:.1f} GFLOP/s, "
          f"{flops / peak:.0%} of the measured float32 matmul "
          f"peak ({peak / 1e9:.1f} GFLOP/s, 1024^3); CPU time / (wall x threads) {cpu_share:.2f}")

    icl = in_context_learning_score(run.held_out_loss, config.n_ctx)
    induction = []
    for step in run.steps:
        model = run.model_at(step)
        tokens = repeated_random_tokens(model, (config.n_ctx - 1) // 2, 16, seed=0, low=1,
                                        high=config.d_vocab)
        with torch.no_grad():
            induction.append(induction_scores(model, tokens)[-1].max())
    induction = torch.stack(induction)
    print("step  held-out loss  ICL score  best last-layer induction score")
    for step, loss, score, best in zip(run.steps, run.held_out_loss.mean(1), icl, induction):
        print(f"{step:5d}  {loss:13.3f}  {score:+9.3f}  {best:8.3f}")
    print(describe("ICL score", run.steps, icl))
    print(describe("best last-layer induction score", run.steps, induction))

if __name__ == "__main__":
    main()
