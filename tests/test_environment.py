"""The environment check at the top of every notebook names what would break the course and
how to fix it: versions outside the tested ranges, no GPU on Colab, little free memory."""

import importlib.metadata

import pytest

from readheads import environment


def test_this_environment_is_a_tested_one(capsys):
    assert environment.environment_problems(on_colab=False) == []
    environment.check_environment()
    assert "Environment: tested versions" in capsys.readouterr().out


@pytest.mark.parametrize("package", list(environment.TESTED))
def test_a_version_outside_the_tested_range_says_what_to_install(package, monkeypatch):
    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version",
                        lambda name: "1.0" if name == package else real(name))
    lowest, untested = environment.TESTED[package]
    [problem] = environment.environment_problems(on_colab=False)
    assert f"{package} 1.0 is outside" in problem and f"pip install '{package}>={lowest},<{untested}'" in problem


def test_a_missing_package_no_colab_gpu_and_low_memory_are_reported(monkeypatch):
    real = importlib.metadata.version

    def version(name):
        if name == "transformers":
            raise importlib.metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    monkeypatch.setattr(environment, "_has_gpu", lambda: False)
    monkeypatch.setattr(environment, "free_memory_gb", lambda: 1.2)
    problems = environment.environment_problems(on_colab=True)
    assert len(problems) == 3
    assert "transformers is not installed" in problems[0]
    assert "Change runtime type > GPU" in problems[1]
    assert "Only 1.2 GB of memory is free" in problems[2]
    assert len(environment.environment_problems(on_colab=False)) == 2  # no GPU needed locally


def test_every_notebook_checks_its_environment_before_loading_a_model():
    from autograder.authoring import notebooks, registry

    for chapter in registry.chapters():
        for path in notebooks.outputs(notebooks.ROOT, chapter).values():
            text = path.read_text()
            first_load = text.find("load_model(")  # Chapter 2b loads no course model
            assert -1 < text.index("check_environment()") < (first_load if first_load > -1 else len(text)), path
