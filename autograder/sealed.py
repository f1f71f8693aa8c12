"""Graded mode, sealed: grade answers where the student's code cannot reach the comparison.

A student's notebook runs in a Jupyter kernel, where its code can replace anything: `check`,
the comparison, the reference files. So graded mode does not trust the kernel at all. The
grader (this module, in the nbgrader or `python -m autograder grade` process) starts a worker
process (`sealed_child`; on the CPU forked from a zygote that has loaded the models once per
grading run) in a sandbox (`isolation`) that shows it no hidden references, no solutions, no
other student's work and no network. The worker runs the notebook's set-up code, the
student's answers and the definitions from cells they added, then calls each exercise's
function (each in a fresh fork, on the CPU) on the grader's cases and saves the answers. The
grader compares them here with the hidden references, which the worker never receives. Each
exercise has a time limit (`timing`: ten times the solution's time, scaled to this machine's
speed now, at least `check_timeout`); a worker that hangs, exits or crashes costs the exercise it was
running and is restarted for the rest. Before and after each notebook the grader checks the
course package and the hidden references against copies taken when it started, and restores
anything a submission rewrote (which only an unisolated worker can). See docs/grading.md.
"""

from __future__ import annotations

import ast
import atexit
import dataclasses
import itertools
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import torch
from safetensors.torch import load_file

from readheads.models import DISPLAY_NAMES

from . import catalog, isolation, timing
from .check import CheckResult, tolerance_text
from .compare import judge
from .references import ReferenceSet
from .running import Outcome

PACKAGE_DIRS = [Path(__file__).resolve().parent,
                Path(__file__).resolve().parent.parent / "readheads"]
MODEL_LOAD_TIMEOUT = 600.0
# Model exercises are graded on these too: sizes unlike any course model's (4 layers, 8 query
# heads in 2 groups of 4), so an answer that hard-codes its notebook model's sizes fails.
SECOND_MODELS = ("gqa-test", "gpt2-mini-test")


class GradingError(RuntimeError):
    """The grading machine, not the submission, is at fault (a missing or mismatched model,
    missing hidden references); the message says what to fix."""


# --- Hidden references, pinned in memory ----------------------------------------------------

_pinned: dict[tuple, list[ReferenceSet]] = {}
_pinning = threading.Lock()


def graded_models(model_name: str | None, second_models=SECOND_MODELS) -> tuple[str, ...]:
    """The models answers are graded on: the notebook's, then the second ones (not twice)."""
    if model_name is None:
        return ()
    return (model_name, *[m for m in second_models if m != model_name])


def hidden_references(chapter: str, model_names: tuple[str, ...], directory: Path) -> list[ReferenceSet]:
    """The instructor's reference sets of `chapter` (pure, and one per model of
    `model_names`), read once per process, before any submission runs, and kept in memory:
    nothing written to disk later (a new file included) changes what later submissions are
    graded against."""
    key = (directory.resolve(), chapter, tuple(model_names))
    with _pinning:
        if key not in _pinned:
            found = []
            for path in sorted((directory / chapter).glob("*.safetensors")):
                refs = ReferenceSet.load(path)
                model = refs.sources.get("model")
                if model is None or model["name"] in model_names:
                    found.append(refs)
            needs_model = any(e.needs for e in catalog.exercises(chapter))
            built = {r.sources["model"]["name"] for r in found if r.sources.get("model")}
            if not found or (needs_model and built != set(model_names)):
                raise GradingError(
                    f"No hidden references for {chapter} and the models "
                    f"{', '.join(sorted(set(model_names) - built))} in {directory}. Build them "
                    f"once, with a seed only you know: python -m autograder build "
                    f"{' '.join('--model ' + m for m in model_names or ('smollm2-135m',))} "
                    f"--seed SEED --out {directory}")
            _pinned[key] = found
    return _pinned[key]


# --- The course files a submission must not change ------------------------------------------


class CourseFiles:
    """The course package and hidden references as they were before any submission ran.

    Every worker imports the course from its own copy, written from these bytes, so a
    submission that rewrites the installed files changes nothing for anybody else's grading;
    `restore` then puts the installed files back and says what was changed.
    """

    def __init__(self, directories: list[Path]):
        self.directories = [d for d in directories if d.is_dir()]
        self.files = {p: p.read_bytes() for d in self.directories for p in d.rglob("*")
                      if p.is_file() and "__pycache__" not in p.parts}

    def write_packages(self, target: Path, withheld: dict[str, str]) -> None:
        """A private copy of the course's Python packages (for a worker's sys.path), without
        the authoring tools (they import the solutions) and with the `withheld` library
        functions (dotted name -> the exercise it answers) replaced by an error."""
        for path, data in self.files.items():
            for directory in self.directories:
                if (path.is_relative_to(directory) and (directory / "__init__.py").is_file()
                        and not path.is_relative_to(directory / "authoring")):
                    relative = path.relative_to(directory)
                    module = ".".join((directory.name, *relative.with_suffix("").parts))
                    answers = {n.rpartition(".")[2]: e for n, e in withheld.items()
                               if n.rpartition(".")[0] == module}
                    copy = target / directory.name / relative
                    copy.parent.mkdir(parents=True, exist_ok=True)
                    copy.write_bytes(_without(data, answers) if answers else data)

    def restore(self) -> list[str]:
        changed = []
        for path, data in self.files.items():
            if not path.is_file() or path.read_bytes() != data:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_bytes(data)
                changed.append(str(path))
        for directory in self.directories:
            for path in directory.rglob("*"):
                if path.is_file() and path not in self.files and "__pycache__" not in path.parts:
                    path.unlink()
                    changed.append(f"{path} (added)")
        return changed


def _without(source: bytes, answers: dict[str, str]) -> bytes:
    """A module's source with the bodies of these functions (name -> the exercise they
    answer) replaced by an error that says why."""
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name in answers:
            chapter, _, exercise = answers[node.name].partition(".")
            message = (f"{node.name} computes the answer to the exercise {exercise}; it is not "
                       f"available while {chapter} is graded: write your own")
            node.body = [ast.Raise(ast.Call(ast.Name("RuntimeError", ast.Load()),
                                            [ast.Constant(message)], []), None)]
    return ast.unparse(ast.fix_missing_locations(tree)).encode()


_snapshots: dict[Path, CourseFiles] = {}


def course_files(hidden_dir: Path) -> CourseFiles:
    """One snapshot per grading process, taken before the first submission is graded."""
    key = hidden_dir.resolve()
    if key not in _snapshots:
        _snapshots[key] = CourseFiles(PACKAGE_DIRS + [key])
    return _snapshots[key]


# --- Grading one notebook -------------------------------------------------------------------


def grade_answers(cells: list[dict], exercise_ids: list[str], *, model_name: str | None,
                  hidden_dir: Path, second_models=SECOND_MODELS, device: str = "cpu",
                  check_timeout: float = 120.0, cell_timeout: float = 60.0,
                  threads: int | None = None, allow_unisolated: bool = False,
                  log=print) -> dict[str, CheckResult]:
    """Grade one notebook's answers in a sealed worker.

    cells: the student's code, in notebook order: {"source", "kind": "answer" | "added"}
        ("added": only its imports and function/class definitions run). The chapter's
        set-up code (from the course's index, never from the notebook) runs first.
    second_models: model exercises pass only if they also pass these models' hidden cases.
    check_timeout: the least time limit of an exercise, in seconds (see `timing`).
    threads: CPU threads for the worker's torch (default: all); split the cores between
        workers that run side by side.
    allow_unisolated: grade even where workers cannot be sandboxed (`isolation`); every
        verdict then says so.
    Returns a result per exercise; raises GradingError for problems of the grading machine
    (IsolationUnavailable where workers cannot be isolated and that was not allowed).
    """
    isolated = isolation.require(allow_unisolated)
    chapters = {catalog.find(i).chapter for i in exercise_ids}
    needs_model = any(catalog.find(i).needs for i in exercise_ids)
    model_names = graded_models(model_name, second_models) if needs_model else ()
    sets = [s for chapter in sorted(chapters)
            for s in hidden_references(chapter, model_names, hidden_dir)]
    order = {None: -1, **{m: i for i, m in enumerate(model_names)}}  # the notebook's model first,
    sets.sort(key=lambda s: order[_model_of(s)])  # then the second ones in the order given
    parts = {}  # exercise id -> [(index of its reference set, its references, model name)]
    for n, refs in enumerate(sets):
        for exercise_id, exercise in refs.exercises.items():
            if exercise_id in exercise_ids:
                parts.setdefault(exercise_id, []).append((n, exercise, _model_of(refs)))
    missing = set(exercise_ids) - set(parts)
    if missing:
        raise GradingError(f"The hidden references in {hidden_dir} lack {sorted(missing)}: "
                           "rebuild them with the current course")
    limits = {i: timing.exercise_limit([(e.solution_seconds, sets[n].probe_seconds) for n, e, _ in parts[i]],
                                       check_timeout) for i in exercise_ids}
    models = [{"name": m, "key": next(s.key for s in sets if _model_of(s) == m)} for m in model_names]
    cells = [{"source": catalog.setup_code(c), "kind": "setup"} for c in sorted(chapters)] + cells
    results: dict[str, CheckResult] = {}
    zygote = _zygote_for(models, course_files(hidden_dir), isolated, log) if device == "cpu" else None
    worker_id = _next_worker_id() if isolated and isolation.as_root() else None
    with tempfile.TemporaryDirectory(prefix="sealed-", dir=zygote and zygote.jobs) as scratch:
        scratch = Path(scratch)
        course_files(hidden_dir).write_packages(scratch / "packages", catalog.withheld(chapters))
        cases = [{"path": str(s.without_answers().save(scratch / "cases" / str(n))),
                  "model": _model_of(s)} for n, s in enumerate(sets)]
        (scratch / "results").mkdir()
        remaining, skipped = list(exercise_ids), {}  # cell index -> what it did
        for _attempt in range(len(cells) + len(exercise_ids) + 2):
            if not remaining:
                break
            plan = {"models": models, "device": device, "cases": cases,
                    "results": str(scratch / "results"),
                    "threads": threads or torch.get_num_threads(), "worker_id": worker_id,
                    "cell_timeout": cell_timeout, "exercises": remaining,
                    "cells": [dict(c, index=i) for i, c in enumerate(cells) if i not in skipped],
                    "skipped": [dict(cells[i], skipped=how) for i, how in skipped.items()]}
            (scratch / "plan.json").write_text(json.dumps(plan))
            (scratch / "progress").write_text("")  # the worker's progress lines, this attempt's only
            _hand_over(scratch, worker_id)
            state = _run_worker(scratch, cell_timeout, limits, zygote, isolated)
            if state.kind == "cell":  # a cell killed or hung the worker: go on without it
                skipped[plan["cells"][state.position]["index"]] = state.how
                log(f"sealed grader: cell {plan['cells'][state.position]['index']} {state.how}; "
                    "running the notebook again without it")
                continue
            stopped = dict(state.crashed, **({state.exercise: state.how} if state.kind == "exercise" else {}))
            for exercise_id, how in stopped.items():
                results[exercise_id] = CheckResult(exercise_id, False, (
                    f"{exercise_id} failed the hidden test: your function {how} (its limit "
                    f"here: {limits[exercise_id]:.0f} s, {timing.FACTOR:g} times the solution's "
                    f"time on this machine and at least {check_timeout:g} s)"
                    if how == "ran past its time limit" else
                    f"{exercise_id} failed the hidden test: your code {how} while this "
                    "exercise ran (sys.exit, os._exit or a crash end the grading of an exercise)"))
            done = [i for i in remaining if (scratch / "results" / f"{i}.json").is_file()]
            for exercise_id in done:
                results[exercise_id] = _judge(exercise_id, parts[exercise_id], scratch, device,
                                              model_name)
            remaining = [i for i in remaining if i not in results]
            if state.kind == "model-mismatch":
                name, _, key = state.how.partition(" ")
                expected = next(m["key"] for m in models if m["name"] == name)
                raise GradingError(f"The model {name} on this machine has other weights "
                                   f"[{key}] than the hidden references [{expected}]")
            if state.kind == "load":
                raise GradingError(f"The grading worker failed before running any code of the "
                                   f"notebook: {state.how}")
    for exercise_id in exercise_ids:
        results.setdefault(exercise_id, CheckResult(exercise_id, False, f"{exercise_id} was not "
                                                    "graded: the notebook's code kept stopping the grader"))
    if not isolated:
        results = {i: CheckResult(i, r.passed, f"{r.message} ({isolation.NOT_ISOLATED})")
                   for i, r in results.items()}
    return results


_worker_ids = itertools.cycle(isolation.WORKER_IDS)
_worker_ids_lock = threading.Lock()


def _next_worker_id() -> int:
    """A user id for the next notebook's worker (the grader is root): no two notebooks
    graded near each other share one."""
    with _worker_ids_lock:
        return next(_worker_ids)


def _hand_over(scratch: Path, worker_id: int | None) -> None:
    """Make the scratch folder the worker's alone."""
    if worker_id is not None:
        for path in [scratch, *scratch.rglob("*")]:
            os.chown(path, worker_id, worker_id)
    scratch.chmod(0o700)


def _model_of(refs: ReferenceSet) -> str | None:
    """The name of the model a reference set was built on (None: pure)."""
    return refs.sources["model"]["name"] if refs.sources.get("model") else None


class _State:
    """Where the worker was when it stopped. kind: "load" (before running any cell), "cell"
    (running cell `position` of the plan), "between" (between exercises), "exercise" (running
    `exercise`), "finished" or "model-mismatch"; how: what happened; crashed: the exercises
    whose own process ended before it saved answers."""

    def __init__(self, kind: str, how: str = "", position: int = -1, exercise: str = ""):
        self.kind, self.how, self.position, self.exercise = kind, how, position, exercise
        self.crashed: dict[str, str] = {}  # exercises whose process ended -> how


def _run_worker(scratch: Path, cell_timeout: float, limits: dict[str, float],
                zygote: _Zygote | None, isolated: bool) -> _State:
    """Run the plan in scratch and follow the worker's progress; each exercise may take its
    own limit (seconds)."""
    worker = (zygote and zygote.fork(scratch)) or _Spawned(scratch, isolated)
    state, crashed = _State("load"), {}
    deadline = time.monotonic() + MODEL_LOAD_TIMEOUT
    in_flight: dict[str, float] = {}  # exercises running (several on the CPU) -> deadline
    while True:
        now = time.monotonic()
        limit = min(in_flight.values(), default=deadline)
        try:
            line = worker.lines.get(timeout=max(0.0, limit - now))
        except queue.Empty:
            if in_flight:  # the exercise that ran out of time; the others are graded again
                state = _State("exercise", exercise=min(in_flight, key=in_flight.get))
            state.how = "ran past its time limit"
            break
        if line is None:
            code = worker.wait()
            if in_flight:
                state = _State("exercise", exercise=min(in_flight, key=in_flight.get))
            elif code == 0 and state.kind == "between":
                state.kind = "finished"
            state.how = f"ended the process (exit status {code})"
            break
        word, _, rest = line.strip().partition(" ")
        now = time.monotonic()
        if word == "cell":
            state, deadline = _State("cell", position=int(rest)), now + cell_timeout + 5
        elif word == "ready":
            state, deadline = _State("between"), now + max(limits.values())
        elif word == "exercise":
            in_flight[rest] = now + limits[rest]
        elif word in ("done", "crashed"):  # "crashed EXERCISE STATUS": its fork ended first
            exercise, _, code = rest.partition(" ")
            in_flight.pop(exercise, None)
            if word == "crashed":
                crashed[exercise] = f"ended the process (exit status {code})"
            deadline = now + max(limits.values())
        elif word == "model-mismatch":
            state = _State("model-mismatch", rest)
            break
    worker.kill()
    state.crashed = crashed
    if state.kind == "load" and (scratch / "worker.log").is_file():
        state.how += "\n" + (scratch / "worker.log").read_text(errors="replace")[-2000:]
    return state


_START = ("import sys, runpy; sys.path.insert(0, sys.argv[1]); "
          "runpy.run_module('autograder.sealed_child', run_name='__main__')")


def _environment(home: Path) -> dict:
    """The worker's environment: the grader's, less nbgrader's, with a home and caches of
    its own (the course's model cache stays where the models are)."""
    from readheads.paths import CACHE_ENV_VAR, cache_dir

    keep = {k: v for k, v in os.environ.items() if not k.startswith("NBGRADER")}
    return {**keep, "HOME": str(home), "TMPDIR": str(home), "MPLCONFIGDIR": str(home / ".matplotlib"),
            CACHE_ENV_VAR: str(cache_dir().resolve())}


class _Spawned:
    """A worker started as a process of its own (it loads the models itself).

    lines: its progress lines, then None when it has ended."""

    def __init__(self, scratch: Path, isolated: bool):
        # -I: no user site, no PYTHON* variables, no current folder on sys.path; the course
        # is imported from the worker's private copy.
        argv = [sys.executable, "-I", "-c", _START, str(scratch / "packages"), str(scratch / "plan.json")]
        if isolated:
            models = [m["name"] for m in json.loads((scratch / "plan.json").read_text())["models"]]
            argv = isolation.command(argv, read_only=isolation.model_files(models), writable=[scratch],
                                     workdir=scratch)
        with open(scratch / "worker.log", "ab") as log:
            self.process = subprocess.Popen(argv, cwd=scratch, env=_environment(scratch),
                                            stdout=subprocess.PIPE, stderr=log, text=True,
                                            start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [self.lines.put(x) for x in self.process.stdout]
                         + [self.lines.put(None)], daemon=True).start()

    def wait(self) -> int:
        return self.process.wait()

    def kill(self) -> None:
        _kill_group(self.process.pid)
        self.process.wait()


class _Forked:
    """A worker forked from a zygote. Its progress lines come through a file (its last one,
    "exit N", gives its exit status); the zygote says when it has ended."""

    def __init__(self, zygote: _Zygote, pid: int, progress: Path):
        self.zygote, self.pid, self.code, self.lines = zygote, pid, None, queue.Queue()
        threading.Thread(target=self._follow, args=(progress,), daemon=True).start()

    def _follow(self, progress: Path) -> None:
        with open(progress, errors="replace") as stream:
            pending = ""
            while True:
                alive = self.zygote.running(self.pid)
                pending += stream.read()
                *complete, pending = pending.split("\n")
                for line in complete:
                    if line.startswith("exit "):
                        self.code = int(line[5:]) if line[5:].isdigit() else 1
                    else:
                        self.lines.put(line)
                if not alive:
                    self.lines.put(None)
                    return
                time.sleep(0.02)

    def wait(self) -> int:
        return 1 if self.code is None else self.code

    def kill(self) -> None:
        self.zygote.kill(self.pid)


class _Zygote:
    """A process that has imported the course and loaded the models, and forks a worker per
    notebook (see `sealed_child.serve`): a worker then starts in a fraction of a second
    instead of loading the models again. CPU only (CUDA cannot be used in a forked child).

    Isolated, it runs in a sandbox (`isolation.command`) that shows it its read-only package
    copy, the models and `jobs`, where each notebook's scratch folder is made. Process ids are
    the sandbox's own, so the grader asks the zygote to kill a worker; the zygote says when
    one has ended."""

    def __init__(self, models: list[dict], files: CourseFiles, isolated: bool):
        self.directory = Path(tempfile.mkdtemp(prefix="sealed-zygote-"))
        self.directory.chmod(0o711)  # the sandbox's path to `jobs` keeps these modes
        self.lock, self.ended, self.isolated = threading.Lock(), {}, isolated
        home, self.jobs = self.directory / "zygote", self.directory / "jobs"
        files.write_packages(home / "packages", catalog.withheld())  # every chapter's answers
        (self.directory / "home").mkdir()  # the zygote's caches (matplotlib's, torch's)
        self.jobs.mkdir(mode=0o711)
        self.jobs.chmod(0o711)  # workers may enter their own folder here, not list the others
        spec = {"models": models, "setup": [catalog.setup_code(c) for c in catalog.chapters()],
                "alone": isolated and not isolation.as_root()}  # see _zygote_for
        (home / "spec.json").write_text(json.dumps(spec))
        argv = [sys.executable, "-I", "-c", _START, str(home / "packages"), "--serve", str(home / "spec.json")]
        if isolated:
            argv = isolation.command(argv, read_only=[home, *isolation.model_files(m["name"] for m in models)],
                                     writable=[self.jobs, self.directory / "home"], workdir=self.jobs)
        with open(self.directory / "zygote.log", "ab") as log:
            self.process = subprocess.Popen(argv, cwd=self.jobs, env=_environment(self.directory / "home"),
                                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                            stderr=log, text=True, start_new_session=True)
        self.answers: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        if self._answer(MODEL_LOAD_TIMEOUT) != "ready":
            self.close()
            raise RuntimeError("the zygote did not start: "
                               + (self.directory / "zygote.log").read_text(errors="replace")[-2000:])

    def _read(self) -> None:
        for line in self.process.stdout:
            word, _, rest = line.strip().partition(" ")
            if word == "ended":  # "ended PID STATUS"
                pid, _, code = rest.partition(" ")
                self.ended[int(pid)] = code
            else:
                self.answers.put(line.strip())
        self.answers.put(None)

    def _answer(self, timeout: float) -> str | None:
        try:
            return self.answers.get(timeout=timeout)
        except queue.Empty:
            return None

    def _send(self, *words) -> bool:
        try:
            self.process.stdin.write("\t".join(str(w) for w in words) + "\n")
            self.process.stdin.flush()
            return True
        except (BrokenPipeError, OSError):
            return False

    def fork(self, scratch: Path) -> _Forked | None:
        """A worker for the plan in `scratch` (None if the zygote has died)."""
        progress = scratch / "progress"
        with self.lock:
            if not self._send("fork", scratch / "plan.json", progress, scratch / "worker.log"):
                return None
            answer = self._answer(60.0)
        return _Forked(self, int(answer), progress) if answer and answer.isdigit() else None

    def running(self, pid: int) -> bool:
        return pid not in self.ended and self.alive()

    def kill(self, pid: int) -> None:
        """Kill a worker and everything it started."""
        with self.lock:
            self._send("kill", pid)
        deadline = time.monotonic() + 10
        while self.running(pid) and time.monotonic() < deadline:
            time.sleep(0.01)

    def alive(self) -> bool:
        return self.process.poll() is None

    def close(self) -> None:
        _kill_group(self.process.pid)
        self.process.wait()


_zygotes: dict[tuple, _Zygote] = {}
_zygotes_lock = threading.Lock()


def _zygote_for(models: list[dict], files: CourseFiles, isolated: bool, log) -> _Zygote | None:
    """The zygote for these models (started on first use, again if it died); None where it
    cannot start (then each worker loads the models itself). Where the grader is not root,
    workers cannot get users of their own, so each grading thread gets a zygote (and a
    sandbox) of its own and the zygote kills whatever a worker left running before the next."""
    key = tuple((m["name"], m["key"]) for m in models)
    if isolated and not isolation.as_root():
        key += (threading.get_ident(),)
    with _zygotes_lock:
        zygote = _zygotes.get(key)
        if zygote is None or not zygote.alive():
            try:
                zygote = _zygotes[key] = _Zygote(models, files, isolated)
            except RuntimeError as error:
                log(f"sealed grader: {error}; workers will load the models themselves")
                _zygotes.pop(key, None)
                return None
    return zygote


@atexit.register
def _close_zygotes() -> None:
    for zygote in _zygotes.values():
        zygote.close()
        shutil.rmtree(zygote.directory, ignore_errors=True)


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _judge(exercise_id: str, parts: list, scratch: Path, device: str, model_name: str | None) -> CheckResult:
    record = json.loads((scratch / "results" / f"{exercise_id}.json").read_text())
    tensors = load_file(str(scratch / "results" / f"{exercise_id}.safetensors"))
    verdicts = []  # (exercise, case, model, outcome, problem) for every case, notebook model first
    for n, exercise, model in parts:
        for index, case in enumerate(exercise.cases):
            label = f"{n}/{index}"
            entry = record.get(label, {"kind": "error", "message": "no answer was recorded"})
            case_device = device if any(a.kind == "model" for a in case.arguments.values()) else "cpu"
            outcome = _outcome(entry, label, tensors, case)
            problem = _device_problem(entry, case_device) or judge(outcome, exercise, case, "cpu")
            verdicts.append((exercise, case, model, outcome, problem))
    failure = first_failure(verdicts)
    if failure:
        problem, model = failure
        if model not in (None, model_name):
            problem = (f"on the grader's second model {model} ({DISPLAY_NAMES[model]}): "
                       f"{problem}. Your function must work for any model: read sizes "
                       "(layers, heads, key/value heads) from the model or the tensors, and "
                       "use the model it is given, not a global one")
        return CheckResult(exercise_id, False, f"{exercise_id} failed the hidden test: {problem}")
    n_cases = sum(len(exercise.cases) for _, exercise, _ in parts)
    on = f" on {len(parts)} models" if sum(m is not None for _, _, m in parts) > 1 else ""
    return CheckResult(exercise_id, True, f"✔ {exercise_id} passed ({n_cases} hidden cases{on}, "
                                          f"{tolerance_text(parts[0][1])}, graded by the sealed grader)")


def first_failure(verdicts: list) -> tuple[str, str | None] | None:
    """The first failed case's problem and model, from (exercise, case, model, outcome,
    problem) per case, notebook model first. A mistake is named only where the answer makes
    it on every case (of every model) that records it: one case can meet another bug's answer
    by chance (on a random-weight model two bugs may pick the same layer), and naming the
    wrong bug sends the student the wrong way. Otherwise the problem is said plainly."""
    for exercise, case, model, outcome, problem in verdicts:
        if not problem:
            continue
        mistake = _named_mistake(problem, exercise, case)
        if mistake and not all(p == _mistake_verdict(e, mistake) for e, c, _, _, p in verdicts
                               if mistake in c.mistakes):
            problem = judge(outcome, exercise, dataclasses.replace(case, mistakes={}), "cpu")
        return problem, model
    return None


def _named_mistake(problem: str, exercise, case) -> str | None:
    """The mistake of `case` that the verdict `problem` names, if any."""
    return next((m for m in case.mistakes if problem == _mistake_verdict(exercise, m)), None)


def _mistake_verdict(exercise, mistake: str) -> str:
    return f"it looks like you {exercise.mistake_messages[mistake]}."


def _outcome(entry: dict, label: str, tensors: dict, case) -> Outcome:
    side_effect = entry.get("side_effect") or _changed_arguments(label, tensors, case)
    kind = entry["kind"]
    if kind == "error":
        return Outcome(error=entry["message"], side_effect=side_effect)
    if kind == "tensor":
        answer = tensors.get(f"{label}/0", _Named("complex tensor"))
    elif kind == "tuple":
        parts = [tensors.get(f"{label}/{i}", _Named("complex tensor")) for i in range(len(entry["parts"]))]
        answer = tuple(parts) if entry["type"] == "tuple" else parts
    elif kind == "none":
        answer = None
    else:
        answer = _Named(entry["type"])
    return Outcome(answer, side_effect=side_effect)


def _changed_arguments(label: str, tensors: dict, case) -> str | None:
    """The tensor arguments the call left changed, compared here with the case's own (the
    worker's watch runs beside the student's code, which can switch it off)."""
    originals = {}
    for name, argument in case.arguments.items():
        if argument.kind == "tensor":
            originals[name] = argument.value
        elif argument.kind == "record":
            originals.update((f"{name}.{f}", t) for f, t in argument.value["fields"].items())
    changed = [name for name, original in originals.items()
               if f"{label}/argument/{name}" in tensors
               and not _same(tensors[f"{label}/argument/{name}"], original)]
    return (f"left its argument `{changed[0]}` changed (the grader compared it after the "
            "call): work on a copy, e.g. x * 2 rather than x.mul_(2)") if changed else None


def _same(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and torch.equal(a.isnan(), b.isnan()) and torch.equal(
        a.nan_to_num(), b.nan_to_num())


def _Named(type_name: str):
    """A stand-in for a returned object that is not a tensor, so messages name its type."""
    return type(type_name, (), {})()


def _device_problem(entry: dict, device: str) -> str | None:
    devices = [p["device"] for p in entry.get("parts", [])] or [entry.get("device")]
    wrong = [d for d in devices if d is not None and d != torch.device(device).type]
    if wrong:
        return (f"wrong device: the answer is on {wrong[0]} but the inputs were on {device} "
                "(create new tensors with device=<input>.device)")
    return None


# --- nbgrader ---------------------------------------------------------------------------------


def notebook_cells(nb) -> tuple[list[dict], list[str]]:
    """A notebook's answers and the cells the student added (the worker runs these), and the
    exercises it grades (its nbgrader check cells). Cells of the course's own text are left
    out: the set-up comes from the course's index, never from a submission."""
    cells, exercise_ids = [], []
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        meta = cell.metadata.get("nbgrader", {})
        grade_id = meta.get("grade_id", "")
        if meta.get("grade") and grade_id.endswith("_check"):
            exercise_ids.append(grade_id.removesuffix("_check"))
        elif meta.get("solution"):
            cells.append({"source": cell.source, "kind": "answer"})
        elif not meta:
            cells.append({"source": cell.source, "kind": "added"})
    return cells, exercise_ids


def set_verdicts(nb, results: dict[str, CheckResult]) -> None:
    """Replace each check cell's outputs with the sealed grader's verdict (an error output
    loses the cell's points in nbgrader)."""
    import nbformat

    for cell in nb.cells:
        grade_id = cell.metadata.get("nbgrader", {}).get("grade_id", "")
        result = results.get(grade_id.removesuffix("_check")) if grade_id.endswith("_check") else None
        if result is None or cell.cell_type != "code":
            continue
        cell.execution_count = None
        if result.passed:
            cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text=result.message + "\n")]
        else:
            cell.outputs = [nbformat.v4.new_output("error", ename="CheckFailed",
                                                   evalue=result.message,
                                                   traceback=[f"✘ {result.message}"])]
