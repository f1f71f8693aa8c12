"""Time limits follow the solution's time, scaled to the grading machine (autograder/timing.py)."""

import textwrap

import pytest

from autograder import timing
from autograder.authoring.build import build
from autograder.sealed import grade_answers

from .conftest import isolated


def test_limits_scale_with_the_solution_and_the_machine(monkeypatch):
    monkeypatch.setattr(timing, "_probe", [0.2])  # this machine now: twice as slow as the build's 0.1
    assert timing.slowdown(0.1) == pytest.approx(2.0)
    assert timing.slowdown(0.4) == 1.0  # a faster machine never shortens the limit
    assert timing.slowdown(None) == 1.0  # references built before timings were recorded
    # two reference sets: 3 s of solution time on one, 1 s on the other, both built at 0.1 s
    assert timing.exercise_limit([(3.0, 0.1), (1.0, 0.1)], floor=60) == pytest.approx(80.0)
    assert timing.exercise_limit([(0.1, 0.1), (None, None)], floor=60) == 60.0


def test_a_slow_solution_gets_a_longer_limit_than_the_floor(tmp_path):
    """With a floor of 1 s, an answer as slow as a solution recorded at 0.2 s per case passes,
    and one three times slower than its limit fails, saying what the limit was."""
    isolated()
    references = build("ch1_attention")
    for exercise in references.exercises.values():
        for case in exercise.cases:
            case.seconds = 0.2
    references.save(tmp_path / "ch1_attention")
    slow = textwrap.dedent("""
        import time
        def attention_scores(q, k):
            time.sleep(0.5)
            return torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
        def apply_causal_mask(scores):
            time.sleep(6)
            return scores
        """)
    results = grade_answers([{"source": slow, "kind": "answer"}], ["attention_scores", "apply_causal_mask"],
                            model_name=None, hidden_dir=tmp_path, check_timeout=1.0, log=lambda *_: None)
    assert results["attention_scores"].passed, results["attention_scores"].message
    assert not results["apply_causal_mask"].passed
    assert "ran past its time limit (its limit here:" in results["apply_causal_mask"].message
