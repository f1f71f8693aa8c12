"""Where the course is published is set in one place (pyproject.toml); the notebooks' install
cell and the book's Colab badges come from it, and an unset place gives a clear message on
Colab instead of a failing pip."""

import sys
import types

import nbformat
import pytest

from autograder.authoring import notebooks, registry

from .conftest import ROOT

SPEC = "reading-attention-heads @ git+https://github.com/someone/attention-course"


def install_source(notebook) -> str:
    return next(c.source for c in notebook.cells if c.cell_type == "code")


def run_on_colab(source: str, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
    exec(source, {})


@pytest.mark.parametrize("chapter", registry.chapters())
def test_unpublished_notebooks_say_what_to_set_on_colab_and_do_nothing_locally(chapter, monkeypatch):
    assert notebooks.publishing()["install"] == "", "this test describes the unpublished course"
    release = nbformat.read(ROOT / "exercises" / "release" / chapter / f"{chapter}.ipynb", as_version=4)
    source = install_source(release)
    exec(source, {})  # not on Colab: nothing happens
    with pytest.raises(RuntimeError, match=r"\[tool.reading-attention-heads\] in pyproject.toml"):
        run_on_colab(source, monkeypatch)


def test_no_generated_file_points_at_an_address_nobody_publishes():
    generated = [ROOT / "pyproject.toml"] + [p for c in registry.chapters()
                                             for p in notebooks.outputs(ROOT, c).values()]
    for path in generated:
        assert "github.com/reading-attention-heads" not in path.read_text(), path


def test_published_notebooks_install_from_the_setting_and_the_book_links_to_colab(monkeypatch):
    monkeypatch.setattr(notebooks, "publishing", lambda: {
        "install": SPEC, "repository": "https://github.com/someone/attention-course"})
    chapter = registry.chapters()[0]
    source = notebooks.render(ROOT, chapter, "source")
    assert f"%pip install -q '{SPEC}'" in install_source(source)
    book = notebooks.render(ROOT, chapter, "book")
    badge = book.cells[1].source
    assert "colab.research.google.com/github/someone/attention-course/blob/main/" in badge
    assert f"exercises/release/{chapter}/{chapter}.ipynb" in badge
    assert not any("colab-badge" in c.source for c in source.cells)  # the book's, not the notebook's
    monkeypatch.setattr(notebooks, "publishing", lambda: {"install": SPEC, "repository": ""})
    assert not any("colab-badge" in c.source for c in notebooks.render(ROOT, chapter, "book").cells)


def test_the_book_gets_launch_buttons_only_once_published(monkeypatch):
    import yaml

    config = (ROOT / "book" / "_config.yml").read_text()
    assert notebooks.launch_settings() in config  # the committed book: not published
    assert "launch_buttons" not in yaml.safe_load(config)
    monkeypatch.setattr(notebooks, "publishing", lambda: {
        "install": SPEC, "repository": "https://github.com/someone/attention-course"})
    published = yaml.safe_load(notebooks.launch_settings())
    assert published["repository"]["url"] == "https://github.com/someone/attention-course"
    assert published["repository"]["path_to_book"] == "book"
    assert published["launch_buttons"]["colab_url"] == "https://colab.research.google.com"
    assert published["launch_buttons"]["binderhub_url"] == "https://mybinder.org"
