"""The book builds offline with Jupyter Book 1, executing the chapters on the offline model,
says which model produced the outputs, and fails when a notebook errors."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder.authoring import registry

from .conftest import ROOT

pytestmark = pytest.mark.slow


def build(book: Path, model: str = "smollm2-135m") -> subprocess.CompletedProcess:
    jupyter_book = Path(sys.executable).parent / "jupyter-book"
    return subprocess.run([str(jupyter_book), "build", str(book), "--warningiserror"],
                          env={**os.environ, "COURSE_MODEL": model}, capture_output=True,
                          text=True, timeout=1800)


def copy_book(tmp_path) -> Path:
    book = tmp_path / "book"
    shutil.copytree(ROOT / "book", book, ignore=shutil.ignore_patterns("_build"))
    return book


def test_book_builds_with_figures_and_names_its_model(tmp_path, smollm2):
    book = copy_book(tmp_path)
    result = build(book)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    for chapter in registry.chapters():
        page = (book / "_build" / "html" / f"{chapter}.html").read_text()
        assert "Outputs on this page come from: SmolLM2-135M-Instruct" in page
        assert "The course text is written for <b>GPT-2 small</b>" in page
        assert page.count("<img") >= 4
        assert page.count("passed (visible case") == len(registry.exercises(chapter))


def test_book_build_fails_when_a_notebook_errors(tmp_path):
    book = copy_book(tmp_path)
    broken = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Broken"),
                                             nbformat.v4.new_code_cell("raise RuntimeError('boom')")])
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(broken, book / "broken.ipynb")
    (book / "_toc.yml").write_text("format: jb-book\nroot: intro\nchapters:\n  - file: broken\n")
    result = build(book)
    assert result.returncode != 0
    assert "boom" in (book / "_build" / "html" / "reports" / "broken.err.log").read_text()
