"""The sealed grader's worker: runs one student's code and records its answers, nothing more.

Started by `autograder.sealed` with ``python -I`` in a scratch folder, in the sandbox of
`autograder.isolation`, importing the course from the notebook's private copy (argv: that
copy's folder, the plan), or, on the CPU, forked from a zygote that has loaded the models
already (`serve`), so that it starts at once. Where the grader is root it first becomes the
notebook's own user. With the models (the notebook's, then the grader's second ones) it
executes the notebook's set-up cells, the student's answer cells and the definitions
(imports, functions, classes) of cells the student added, then calls each exercise's
function on the grader's cases (on the CPU each exercise in a fresh fork), each model
exercise on every model, and saves what came back. It never sees expected answers (the
grader keeps those), and its copy of the course has no solutions. Progress goes to the grader
as lines on the original standard output (a forked worker writes them to a file); the
student's prints go to the worker's log.
"""

from __future__ import annotations

import ast
import importlib.abc
import json
import os
import signal
import sys
import traceback
from pathlib import Path

BLOCKED = ("solutions", "autograder.authoring")


class _Blocked(importlib.abc.MetaPathFinder):
    """Refuse to import the solutions (and the authoring tools that import them)."""

    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} is not available while grading")
        return None


class CellTimeout(BaseException):
    """A cell ran past its time limit."""


def _on_alarm(signum, frame):
    raise CellTimeout()


def main(plan_path: str) -> int:
    """A worker of its own: load the models, then run the plan."""
    plan = json.loads(Path(plan_path).read_text())
    progress = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the student's prints must not mix with the progress lines
    sys.meta_path.insert(0, _Blocked())

    import torch

    # On the CPU each exercise runs in a fork of this process, on one thread (see `run_plan`
    # and `serve`). CUDA cannot be forked: there the exercises share this process.
    torch.set_num_threads(1 if plan["device"] == "cpu" else plan["threads"])
    from readheads import load_model

    models = {spec["name"]: _with_weights_kept(load_model(spec["name"], device=plan["device"], quiet=True))
              for spec in plan["models"]}  # the notebook's model first, then the second ones
    _become(plan["worker_id"])  # after reading the model files, which may be the grader's alone
    return run_plan(plan, models, progress)


def _with_weights_kept(model):
    """The model, with a copy of its weights to restore after an answer changes them."""
    model.course_weights = {k: v.detach().clone() for k, v in model.state_dict().items()}
    return model


def _become(worker_id: int | None) -> None:
    """Run as the notebook's own user (where the grader is root) with no way back."""
    if worker_id is not None:
        os.setgroups([])
        os.setgid(worker_id)
        os.setuid(worker_id)


def serve(spec_path: str) -> int:
    """The zygote: import the course, load the models, then fork a worker per request.

    Requests come on standard input, one line each, tab-separated: ``fork PLAN PROGRESS LOG``
    (the plan, the file the worker writes its progress lines to, its log for the student's
    prints) is answered with the worker's process id; ``kill PID`` kills that worker and
    everything its user started. When a worker ends, the zygote says ``ended PID STATUS``.
    The zygote runs no student code and holds no expected answers. Its torch stays on one
    thread until the fork: a process that has started OpenMP threads hangs in a forked
    child's first parallel operation.
    """
    spec = json.loads(Path(spec_path).read_text())
    sys.meta_path.insert(0, _Blocked())

    import torch

    torch.set_num_threads(1)
    from readheads import load_model

    from . import running  # noqa: F401  (imported here, before any fork, like everything a worker uses)
    from .references import ReferenceSet  # noqa: F401

    models = {m["name"]: _with_weights_kept(load_model(m["name"], device="cpu", quiet=True))
              for m in spec["models"]}
    for code in spec["setup"]:  # the chapters' set-up imports, so workers start with them done
        tree = ast.parse(code)
        tree.body = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
        exec(compile(tree, "<setup>", "exec"), {"__name__": "__setup__"})
    for model in models.values():  # what a first run sets up lazily, done once for all workers
        tokens = torch.tensor([[1, 2, 3, 4]])
        model.run_with_cache(tokens)
        model.run_with_hooks(tokens, return_type="loss", loss_per_token=True,
                             fwd_hooks=[("blocks.0.attn.hook_z", lambda z, hook: z)])
    workers: dict[int, int | None] = {}  # pid -> the user it runs as

    def say(line: str) -> None:  # os.write: safe from the signal handler too
        os.write(1, (line + "\n").encode())

    def reap(signum, frame):
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid in workers:
                say(f"ended {pid} {os.waitstatus_to_exitcode(status)}")

    signal.signal(signal.SIGCHLD, reap)
    say("ready")
    for request in sys.stdin:
        word, *args = request.rstrip("\n").split("\t")
        if word == "kill" and int(args[0]) in workers:
            _kill_worker(int(args[0]), workers[int(args[0])], spec["alone"])
            continue
        plan_path, progress_path, log_path = args
        worker_id = json.loads(Path(plan_path).read_text())["worker_id"]
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = _forked_worker(plan_path, progress_path, log_path, models, torch)
            except BaseException:  # noqa: BLE001 (into the worker's log; the grader sees it end)
                traceback.print_exc()
            finally:
                os._exit(code)
        workers[pid] = worker_id
        say(str(pid))
    return 0


def _kill_worker(pid: int, worker_id: int | None, alone: bool) -> None:
    """Kill a worker with all it started: every process of its user (where it has one of its
    own); else, where the zygote is alone in its sandbox with one worker at a time (`alone`),
    every process of the sandbox but the zygote; else the worker's process group."""
    if worker_id is None and alone:
        os.kill(-1, signal.SIGKILL)  # in a PID namespace of its own: spares this process and init
        return
    if worker_id is None:
        try:
            os.killpg(pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return
    killer = os.fork()
    if killer == 0:
        try:
            _become(worker_id)
            os.kill(-1, signal.SIGKILL)  # every process this user may signal: its own
        finally:
            os._exit(0)
    try:
        os.waitpid(killer, 0)
    except ChildProcessError:  # already reaped by the SIGCHLD handler
        pass


def _import_course_from(packages: Path) -> None:
    """Import the course afresh from the notebook's own copy: the zygote's lacks every
    chapter's answering library functions, this one only those of the graded chapter."""
    for name in [n for n in sys.modules if n.partition(".")[0] in ("autograder", "readheads")]:
        del sys.modules[name]
    sys.path[0] = str(packages)


def _forked_worker(plan_path: str, progress_path: str, log_path: str, models: dict, torch) -> int:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    os.setsid()  # its own process group: the grader kills it, and what it started, as one
    plan = json.loads(Path(plan_path).read_text())
    _become(plan["worker_id"])
    scratch = Path(plan_path).parent
    os.chdir(scratch)
    os.environ.update(HOME=str(scratch), TMPDIR=str(scratch), MPLCONFIGDIR=str(scratch / ".matplotlib"))
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.dup2(os.open(os.devnull, os.O_RDONLY), 0)  # never the zygote's requests
    os.dup2(log, 1)  # nor its answers: the student's prints go to the log
    os.dup2(log, 2)
    progress = open(progress_path, "a", buffering=1)
    _import_course_from(scratch / "packages")
    code = run_plan(plan, dict(models), progress)
    progress.write(f"exit {code}\n")
    progress.flush()
    return code


def run_plan(plan: dict, models: dict, progress) -> int:
    """Run the notebook's cells, then each exercise's function on the grader's cases, saving
    the answers; progress lines go to `progress`."""
    import torch

    from .references import ReferenceSet

    def say(*words):
        progress.write(" ".join(str(w) for w in words) + "\n")

    for spec in plan["models"]:
        if models[spec["name"]].course_info.key != spec["key"]:
            say("model-mismatch", spec["name"], models[spec["name"]].course_info.key)
            return 3
    main_model = plan["models"][0]["name"] if plan["models"] else None
    case_sets = [(ReferenceSet.load(Path(c["path"])).exercises, c["model"]) for c in plan["cases"]]
    namespace = {"__name__": "__main__", "model": models.get(main_model), "MODEL": main_model}
    signal.signal(signal.SIGALRM, _on_alarm)
    errors = [f"{_label(cell)} was left out: it {cell['skipped']}" for cell in plan["skipped"]]
    for index, cell in enumerate(plan["cells"]):
        say("cell", index)
        error = _run_cell(cell, namespace, plan["cell_timeout"])
        if error and cell["kind"] != "added":
            errors.append(f"{_label(cell)}: {error}")
    say("ready")
    if plan["device"] != "cpu":  # CUDA cannot be forked: the exercises share this process
        for exercise_id in plan["exercises"]:
            say("exercise", exercise_id)
            _grade_exercise(exercise_id, plan, namespace, models, case_sets, errors)
            say("done", exercise_id)
        return 0
    # On the CPU each exercise runs in a fresh fork of this process, so what its code changes
    # dies with it. Forks stay on one torch thread (a fork's first threads cost more than
    # they save: measured, benchmarks/sealed_grading.py); as many run at once as there are
    # threads to use.
    pending, running = list(plan["exercises"]), {}
    while pending or running:
        while pending and len(running) < max(1, plan["threads"]):
            exercise_id = pending.pop(0)
            say("exercise", exercise_id)
            child = os.fork()
            if child == 0:
                code = 1
                try:
                    _grade_exercise(exercise_id, plan, namespace, models, case_sets, errors)
                    say("done", exercise_id)
                    code = 0
                except BaseException:  # noqa: BLE001 (into the log; the grader sees no answers)
                    traceback.print_exc()
                finally:
                    progress.flush()
                    os._exit(code)
            running[child] = exercise_id
        child, status = os.wait()
        exercise_id = running.pop(child, None)
        if exercise_id and not (Path(plan["results"]) / f"{exercise_id}.json").is_file():
            say("crashed", exercise_id, os.waitstatus_to_exitcode(status))
    return 0


def _grade_exercise(exercise_id: str, plan: dict, namespace: dict, models: dict,
                    case_sets: list, errors: list[str]) -> None:
    """Call the student's function on every case of the exercise; save what came back."""
    import torch
    from safetensors.torch import save_file

    from .running import _tensors, run_case

    function = namespace.get(exercise_id)
    record, answers, given = {}, {}, {}

    def called(**kwargs):  # keeps the arguments, so the grader can see what the call left in them
        given.update(kwargs)
        return function(**kwargs)

    for n, (exercises, model_name) in enumerate(case_sets):
        if exercise_id not in exercises:
            continue
        for index, case in enumerate(exercises[exercise_id].cases):
            label = f"{n}/{index}"
            if not callable(function):
                raised = f" (your cells raised: {'; '.join(errors)[:500]})" if errors else ""
                record[label] = {"kind": "error", "message": f"no function called "
                                 f"`{exercise_id}` is defined in your notebook{raised}"}
                continue
            given.clear()
            outcome = run_case(called, case, models.get(model_name), caches={})
            record[label] = _describe(outcome, label, answers, torch)
            for name, tensor in _tensors(given):
                _store(tensor, f"{label}/argument/{name}", answers, torch)
            if outcome.side_effect and "weights" in outcome.side_effect:
                models[model_name].load_state_dict(models[model_name].course_weights)
    results = Path(plan["results"])
    save_file(answers, str(results / f"{exercise_id}.safetensors"))
    (results / f"{exercise_id}.json").write_text(json.dumps(record))


def _label(cell: dict) -> str:
    """A cell as a student recognises it: its first line of code."""
    lines = [line for line in cell["source"].splitlines() if line.strip() and not line.startswith("#")]
    return f"the cell starting `{lines[0][:60]}`" if lines else "an empty cell"


def _run_cell(cell: dict, namespace: dict, timeout: float) -> str | None:
    """Run one cell (an "added" cell: only its definitions); the error it raised, if any."""
    source = cell["source"]
    if cell["kind"] == "added":  # a cell the student added: only its definitions
        try:
            tree = ast.parse(source)
        except SyntaxError:
            return None
        keep = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
        tree.body = [node for node in tree.body if isinstance(node, keep)]
        code = compile(tree, f"<cell {cell['index']}>", "exec")
    else:
        lines = [line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))]
        try:
            code = compile("\n".join(lines), f"<cell {cell['index']}>", "exec")
        except SyntaxError as error:
            return f"SyntaxError: {error}"
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        exec(code, namespace)
    except CellTimeout:
        return f"a cell ran past its {timeout:g} s limit"
    except BaseException as error:  # the student's code: note it and go on
        return f"{type(error).__name__}: {error}"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
    return None


def _describe(outcome, label: str, answers: dict, torch) -> dict:
    """What the function gave, as JSON; its tensors go into `answers`."""
    if outcome.error:
        return {"kind": "error", "message": outcome.error, "side_effect": outcome.side_effect}
    answer = outcome.answer
    parts = list(answer) if isinstance(answer, (tuple, list)) else None
    record = {"side_effect": outcome.side_effect}
    if isinstance(answer, torch.Tensor):
        record.update(kind="tensor", **_store(answer, f"{label}/0", answers, torch))
    elif parts is not None and parts and all(isinstance(p, torch.Tensor) for p in parts):
        record.update(kind="tuple", type=type(answer).__name__,
                      parts=[_store(p, f"{label}/{i}", answers, torch) for i, p in enumerate(parts)])
    elif answer is None:
        record.update(kind="none")
    else:
        record.update(kind="other", type=type(answer).__name__)
    return record


def _store(tensor, name: str, answers: dict, torch) -> dict:
    plain = tensor.as_subclass(torch.Tensor)
    if plain.is_complex():
        return {"device": tensor.device.type, "complex": True}
    answers[name] = plain.detach().to("cpu").clone().contiguous()
    return {"device": tensor.device.type}


if __name__ == "__main__":
    sys.exit(serve(sys.argv[-1]) if sys.argv[-2] == "--serve" else main(sys.argv[-1]))
