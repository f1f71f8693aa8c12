"""The sealed worker's sandbox and its copy of the course, checked directly (the attacks
graded through nbgrader are in tests/attacks.py)."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest

from autograder import catalog, isolation
from autograder.sealed import CourseFiles, PACKAGE_DIRS

from .conftest import ROOT, isolated


def test_every_withheld_library_function_exists():
    """A misspelt `answered_by` would withhold nothing."""
    assert catalog.withheld(), "no exercise declares the library functions that answer it"
    for name, exercise in catalog.withheld().items():
        module, _, function = name.rpartition(".")
        assert callable(getattr(importlib.import_module(module), function, None)), (name, exercise)


def test_the_workers_copy_lacks_the_graded_chapters_answers_and_the_solutions(tmp_path):
    CourseFiles(PACKAGE_DIRS).write_packages(tmp_path, catalog.withheld(["ch3_circuits"]))
    assert not (tmp_path / "solutions").exists() and not (tmp_path / "autograder" / "authoring").exists()
    code = ("import sys; sys.path.insert(0, sys.argv[1])\n"
            "from readheads import ioi, sweeps, truth\n"
            "for withheld in (ioi.ioi_prompts, sweeps.head_output_sweep):\n"
            "    try: withheld(None, None, None, None)\n"
            "    except RuntimeError as error: print(error)\n"
            "print(callable(truth.completion_margin), ioi.as_tokens.__name__)")
    run = subprocess.run([sys.executable, "-I", "-c", code, str(tmp_path)], capture_output=True,
                         text=True, check=True)
    lines = run.stdout.splitlines()
    assert "exercise ioi_dataset; it is not available while ch3_circuits is graded" in lines[0]
    assert "exercise patch_head_output_sweep" in lines[1]
    assert lines[2] == "True as_tokens"  # Chapter 6's answer and the helpers stay


@pytest.mark.parametrize("attempt, reached", [
    ("open({secret!r}).read()", "read a file outside the sandbox"),
    ("open({home_file!r}).read()", "read a file in the home folder"),
    ("__import__('socket').create_connection(('127.0.0.1', {port}), timeout=5)", "connected"),
    ("[p for p in __import__('os').listdir('/proc') if p == {pid!r}][0]", "saw the grader's process"),
])
def test_the_sandbox_shows_nothing_of_the_machine(tmp_path, attempt, reached):
    isolated()
    import os
    import socket

    secret = tmp_path / "hidden.txt"
    secret.write_text("expected answers")
    home_file = Path.home() / f".readheads-sandbox-test-{os.getpid()}"
    home_file.write_text("the grader's own")
    with socket.create_server(("127.0.0.1", 0)) as server:
        code = attempt.format(secret=str(secret), home_file=str(home_file),
                              port=server.getsockname()[1], pid=str(os.getpid()))
        command = isolation.command([sys.executable, "-I", "-c", code], read_only=[], writable=[])
        run = subprocess.run(command, capture_output=True, text=True, timeout=60)
        assert run.returncode != 0, f"the sandboxed process {reached}"
        # the same code outside the sandbox does reach it (the attempt can succeed)
        outside = subprocess.run([sys.executable, "-I", "-c", code], cwd=ROOT, capture_output=True)
    home_file.unlink()
    assert outside.returncode == 0
