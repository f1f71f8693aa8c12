"""Attacks on graded mode, spread over the chapters (the defences do not depend on the
chapter): eve's answers. Each one earns its exercise's point only if the attack works: it
answers right only with what it should not be able to reach (the hidden references, the
solutions, another student's work, a library function that computes the answer, the
network), and raises otherwise, or spoils its input after switching off the worker's watch. Graded through nbgrader (tests/test_nbgrader.py)."""

import inspect
import re
from pathlib import Path

from autograder.authoring import registry

from .conftest import ROOT

HOME_FILE = Path.home() / ".readheads-eve-test"  # written while eve is graded

# Finds the hidden reference set of a chapter through the grader's working folder
# (/proc/<pid>/cwd: nbgrader runs in the course folder) or the absolute path pytest gives it,
# and returns the expected output for the arguments it was called with.
STEAL = '''
import glob, os, torch
from pathlib import Path

def _steal(chapter, exercise, arguments, where):
    from autograder.references import ReferenceSet
    patterns = {"proc": ["/proc/*/cwd/hidden_references"],
                "tmp": ["/tmp/pytest-of-*/pytest-*/course*/hidden_references"],
                "gradescope": ["/autograder/source/hidden_references",
                               "/tmp/pytest-of-*/pytest-*/*/autograder/source/hidden_references"]}[where]
    for path in [p for pattern in patterns for p in glob.glob(f"{pattern}/{chapter}/*.safetensors")]:
        stored = ReferenceSet.load(Path(path)).exercises.get(exercise)
        for case in stored.cases if stored else ():
            if all(torch.equal(a.value, arguments[n]) if isinstance(a.value, torch.Tensor) else a.value == arguments[n]
                   for n, a in case.arguments.items()):
                outputs = list(case.expected.values())
                return outputs[0] if len(outputs) == 1 else tuple(outputs)
    raise LookupError(f"no hidden references found by {where}")
'''


def _signature(exercise_id: str) -> str:
    """The solution's parameters, without annotations."""
    signature = inspect.signature(registry.find(exercise_id)[1].solution)
    return str(signature.replace(parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
                                 return_annotation=signature.empty))


def _solution(exercise_id: str) -> str:
    from .test_nbgrader import solution_source

    return solution_source(exercise_id)


def stealing(chapter: str, exercise_id: str, where: str) -> str:
    names = list(inspect.signature(registry.find(exercise_id)[1].solution).parameters)
    return STEAL + (f"\ndef {exercise_id}{_signature(exercise_id)}:\n"
                    f"    return _steal({chapter!r}, {exercise_id!r}, "
                    f"{{{', '.join(f'{n!r}: {n}' for n in names)}}}, {where!r})\n")


def _first_before(exercise_id: str, lines: str) -> str:
    """The solution with `lines` run first in its body (it then answers right)."""
    source = _solution(exercise_id)
    head, _, body = source.partition(":\n")
    indented = "".join(f"    {line}\n" for line in lines.splitlines())
    return f"{head}:\n{indented}{body}"


def _watch_off_then_spoil(exercise_id: str, argument: str) -> str:
    """Switch off the side-effect watch in the worker, answer right, then zero `argument` in
    place: earns the point only if the worker's own report is believed."""
    right = _solution(exercise_id).replace(f"def {exercise_id}(", "def _right(", 1)
    return ("import autograder.running\n"
            "autograder.running._Watch.changes = lambda self, caches: None\n"
            f"{right}\n"
            f"def {exercise_id}{_signature(exercise_id)}:\n"
            f"    answer = _right{_signature(exercise_id)}\n"
            f"    {argument}.zero_()\n"
            "    return answer\n")


def eve(port: int) -> dict[str, dict[str, str]]:
    """{chapter: {exercise: attacking source}}; port: a TCP server on the grader's machine."""
    return {
        "ch1_attention": {
            "attention_scores": stealing("ch1_attention", "attention_scores", "proc"),
            "apply_causal_mask": _first_before("apply_causal_mask", (
                "import socket\n"
                f"socket.create_connection(('127.0.0.1', {port}), timeout=5).close()")),
            "weighted_values": _watch_off_then_spoil("weighted_values", "pattern"),
        },
        "ch2_induction": {
            "loss_by_half": stealing("ch2_induction", "loss_by_half", "tmp"),
            "diagonal_attention_score": _first_before("diagonal_attention_score", (
                "import glob\n"
                "[target] = glob.glob('/tmp/pytest-of-*/pytest-*/course*/submitted/alice/"
                "ch2_induction/ch2_induction.ipynb')\n"
                "open(target, 'a').write('x')  # another student's submission")),
        },
        "ch2b_formation": {
            "smear_keys": stealing("ch2b_formation", "smear_keys", "proc"),
            "head_score_curves": ("import torch\n"
                                  "from readheads.formation import measure\n"
                                  f"def head_score_curves{_signature('head_score_curves')}:\n"
                                  "    logged = [measure(run.model_at(step), tokens) for step in run.steps]\n"
                                  "    return (torch.stack([m['previous_token_scores'] for m in logged]),\n"
                                  "            torch.stack([m['induction_scores'] for m in logged]))\n"),
        },
        "ch3_circuits": {
            "ioi_dataset": ("from readheads.ioi import ioi_prompts\n"
                            f"def ioi_dataset{_signature('ioi_dataset')}:\n"
                            "    return ioi_prompts(model, n_prompts, seed, families)\n"),
            "patch_head_output_sweep": ("import readheads.sweeps\n"
                                        f"def patch_head_output_sweep{_signature('patch_head_output_sweep')}:\n"
                                        "    swept = readheads.sweeps.head_output_sweep(model, clean, corrupted, metric)\n"
                                        "    return swept if layers is None else swept[list(layers)]\n"),
        },
        "ch4_saes": {
            "topk_activation": _first_before("topk_activation", (
                "import sys\n"
                "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_Blocked']\n"
                "namespace = {}\n"
                f"exec(open({str(ROOT / 'solutions' / 'ch4_saes.py')!r}).read(), namespace)\n"
                "return namespace['topk_activation'](pre, k)")),
            "feature_density": _first_before("feature_density", (
                "import sys\n"
                "sys.meta_path[:] = [f for f in sys.meta_path if type(f).__name__ != '_Blocked']\n"
                "from solutions.ch4_saes import feature_density as answer\n"
                "return answer(features, dense_above)")),
        },
        "ch5_discovery": {
            "pearson_correlation": _first_before("pearson_correlation", (
                "import glob\n"
                "[gradebook] = glob.glob('/proc/*/cwd/gradebook.db')\n"
                "open(gradebook, 'ab').write(b'')  # the instructor's gradebook, writable?")),
            "circuit_overlaps": _first_before("circuit_overlaps", (
                "import glob, json\n"
                "[alice] = glob.glob('/proc/*/cwd/submitted/alice/ch5_discovery/ch5_discovery.ipynb')\n"
                "json.load(open(alice))  # another student's work")),
        },
        "ch6_safety": {
            "completion_margins": ("from readheads.truth import TruthItems, completion_margin\n"
                                   f"def completion_margins{_signature('completion_margins')}:\n"
                                   "    items = TruthItems(prefix_tokens, end_pos, true_ids, false_ids, None, [])\n"
                                   "    return completion_margin(model, items)\n"),
            "mean_difference": _first_before("mean_difference", (
                "import os\n"
                f"open({str(HOME_FILE)!r}).read()  # a file in the grader's home")),
        },
    }


def lost(chapter: str, attacked) -> set[str]:
    """The exercises eve loses: those attacked and those whose solutions call them."""
    lost, grown = set(attacked), True
    while grown:
        callers = {e.id for e in registry.exercises(chapter) if e.id not in lost and any(
            re.search(rf"\b{name}\(", inspect.getsource(e.solution)) for name in lost)}
        lost, grown = lost | callers, bool(callers)
    return lost
