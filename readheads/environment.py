"""Check the Python environment before any model loads: versions the course was tested
with, a GPU where a workshop expects one, enough free memory. Each problem comes with what
to do about it; nothing here stops the notebook."""

from __future__ import annotations

import importlib.metadata
import os
import sys

# The versions the course was tested with: (lowest, first untested).
TESTED = {"torch": ("2.4", "3"), "transformer_lens": ("4.3", "5"), "transformers": ("5.0", "6")}
# The offline model in fp32 with its activation caches; GPT-2 small needs less.
MIN_FREE_GB = 3.0


def environment_problems(on_colab: bool | None = None) -> list[str]:
    """What in this environment is likely to break the course, each with its fix."""
    from packaging.version import Version

    problems = []
    for package, (lowest, untested) in TESTED.items():
        try:
            version = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{package} is not installed: run the install cell above "
                            f"(or pip install '{package}>={lowest},<{untested}').")
            continue
        if not Version(lowest) <= Version(version) < Version(untested):
            problems.append(f"{package} {version} is outside the tested range "
                            f"{lowest} <= version < {untested}: pip install "
                            f"'{package}>={lowest},<{untested}', then restart the runtime.")
    on_colab = "google.colab" in sys.modules if on_colab is None else on_colab
    if on_colab and not _has_gpu():
        problems.append("No GPU in this Colab runtime: Runtime > Change runtime type > GPU "
                        "(the notebook also runs on the CPU, several times slower).")
    free = free_memory_gb()
    if free is not None and free < MIN_FREE_GB:
        problems.append(f"Only {free:.1f} GB of memory is free; the course models need about "
                        f"{MIN_FREE_GB:g} GB: close other notebooks or use a larger runtime.")
    return problems


def check_environment() -> None:
    """Print what to fix in this environment, or that it is one the course was tested in."""
    problems = environment_problems()
    if not problems:
        print("Environment: tested versions of torch, transformer_lens and transformers; "
              "enough memory.")
    for problem in problems:
        print(f"Environment warning: {problem}")


def _has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def free_memory_gb() -> float | None:
    """Memory available to new allocations (Linux: MemAvailable), None where unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    if hasattr(os, "sysconf") and "SC_AVPHYS_PAGES" in os.sysconf_names:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
    return None
