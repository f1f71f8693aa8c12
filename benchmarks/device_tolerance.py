"""Do the committed (CPU-built) references hold on another device? Run on a CUDA machine:

    python benchmarks/device_tolerance.py cuda smollm2-135m

For every exercise it runs the solution on the device (model exercises on the model moved
there, pure exercises on their stored inputs moved there), compares with the committed
reference as a student's check would, and prints the largest error as a fraction of the
exercise's tolerance (must be < 1 for a check to pass).
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from autograder import references, registry  # noqa: E402
from autograder.compare import diagnose  # noqa: E402
from readheads import load_model  # noqa: E402


def to_device(value, device):
    return value.to(device) if isinstance(value, torch.Tensor) else value


def main(device: str, model_name: str) -> int:
    model = load_model(model_name, device=device)
    failures = 0
    for chapter in registry.CHAPTERS:
        for exercise in registry.exercises(chapter):
            refs = references.load(chapter, model if exercise.needs_model else None,
                                   build_missing=False)
            entry = refs.manifest["exercises"][exercise.id]
            if exercise.needs_model:
                cases = exercise.make_cases(model)
            else:
                cases = references.pure_cases(chapter, exercise)
                cases = [{k: to_device(v, device) for k, v in case.items()} for case in cases]
            worst = 0.0
            for index, kwargs in enumerate(cases):
                with torch.no_grad():
                    answer = exercise.solution(**kwargs)
                expected = refs.tensors[f"{exercise.id}/{index}/expected"]
                problem = diagnose(answer, expected, dims=entry["output_dims"], atol=entry["atol"],
                                   rtol=entry["rtol"], device=torch.device(device), mistakes={})
                finite = torch.isfinite(expected)
                error = (answer.detach().cpu() - expected)[finite].abs()
                allowed = entry["atol"] + entry["rtol"] * expected[finite].abs()
                worst = max(worst, (error / allowed).max().item() if error.numel() else 0.0)
                failures += problem is not None
                if problem:
                    print(f"  FAIL {exercise.id} case {index}: {problem}")
            print(f"{chapter}/{exercise.id:32s} worst error / tolerance = {worst:.4f}")
    print(f"{failures} failing cases on {device} ({torch.cuda.get_device_name() if device == 'cuda' else device})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
