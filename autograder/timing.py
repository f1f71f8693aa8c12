"""Time limits relative to the solution's time, calibrated to the machine that grades.

A reference set records how long the solution took on each case where it was built, and how
long a fixed piece of work (`probe_seconds`) took there then. The sealed grader runs the same
probe once per process: if this machine is slower now (a slower CPU, or one loaded by other
work), the limits grow in proportion, so a loaded machine does not fail honest work. Each
exercise may take `FACTOR` times the solution's (scaled) time, and never less than the
grader's floor (`check_timeout`).
"""

from __future__ import annotations

import statistics
import time

import torch

FACTOR = 10.0
_probe: list[float] = []  # this process's measurement, taken once


def probe_seconds() -> float:
    """Seconds a fixed mix of small matrix products and Python takes here, now (the median of
    five runs of about 10 ms each, on this process's torch threads)."""
    matrix = torch.randn(192, 192, generator=torch.Generator().manual_seed(0))
    runs = []
    for _ in range(5):
        started = time.perf_counter()
        x = matrix
        for _ in range(12):
            x = torch.tanh(x @ matrix / 14.0)
        sum(i * i for i in range(20_000))
        runs.append(time.perf_counter() - started)
    return statistics.median(runs)


def slowdown(built_probe: float | None) -> float:
    """How much slower this machine is now than where references were built (at least 1)."""
    if not built_probe:
        return 1.0
    if not _probe:
        _probe.append(probe_seconds())
    return max(1.0, _probe[0] / built_probe)


def exercise_limit(solution_seconds: list[tuple[float | None, float | None]], floor: float) -> float:
    """The time limit of one exercise graded on several reference sets: solution_seconds holds
    (the solution's seconds on that set's cases, that set's probe seconds) per set."""
    scaled = sum(seconds * slowdown(probe) for seconds, probe in solution_seconds if seconds)
    return max(floor, FACTOR * scaled)
