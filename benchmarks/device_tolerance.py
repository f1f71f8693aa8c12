"""Do the committed (CPU-built) references hold on another device? Run on a CUDA machine:

    python benchmarks/device_tolerance.py cuda smollm2-135m

For every exercise it runs the solution on the device (model exercises on the model moved
there, pure exercises on their stored inputs moved there) and prints the largest error as a
fraction of the exercise's tolerance (must be < 1 for a check to pass).
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder.authoring import registry  # noqa: E402
from autograder.authoring.build import outputs_of  # noqa: E402
from autograder.check import load_references  # noqa: E402
from autograder.compare import distinguishability  # noqa: E402
from autograder.running import materialize  # noqa: E402
from readheads import load_model  # noqa: E402


def to_device(value, device: str):
    """A tensor, or a record of tensors (e.g. SAEWeights), on `device`; anything else as is."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple) and hasattr(value, "_fields"):
        return type(value)(*(to_device(part, device) for part in value))
    return value


def main(device: str, model_name: str) -> int:
    model = load_model(model_name, device=device)
    failures = 0
    for chapter in registry.chapters():
        for exercise in registry.exercises(chapter):
            sources = {"model": model} if exercise.needs_model else {}
            refs = load_references(chapter, sources).exercises[exercise.id]
            worst = 0.0
            for case in refs.cases:
                kwargs = materialize(case.arguments, model if exercise.needs_model else None)
                kwargs = {k: to_device(v, device) for k, v in kwargs.items()}
                with torch.no_grad():
                    answer = outputs_of(exercise, exercise.solution(**kwargs))
                for name, expected in case.expected.items():
                    worst = max(worst, distinguishability(answer[name], [expected],
                                                          exercise.atol, exercise.rtol))
            failures += worst >= 1
            print(f"{chapter:14s} {exercise.id:34s} worst error / tolerance {worst:.3g}")
    print(f"{failures} exercise(s) out of tolerance on {device}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
