"""Hostile and buggy submissions, graded through the real nbgrader pipeline with the sealed
grader (Chapter 1). Each attack or bug must cost exactly the exercise it is written into:
no attack gains a point, no grading crashes, and nobody else's grade changes — including
that of a correct submission graded right after one that rewrote the course's files."""

import textwrap

import nbformat
import pytest

from autograder.authoring import registry
from autograder.check import verify

from .conftest import ROOT, isolated
from .test_nbgrader import LIMITS, answer_cells, feedback, make_course, solution_source

pytestmark = pytest.mark.slow
CHAPTER = "ch1_attention"
MODEL = "smollm2-135m"  # sam's answer fits its sizes, not gqa-test's
REAL_RUNNING = ROOT / "autograder" / "running.py"

# Each entry replaces one answer cell. Every one of them must score 0 for that exercise.
MALLORY = {
    # (a) rebind check and patch the comparison code, then answer wrongly
    "attention_scores": """
        import autograder, autograder.check, autograder.compare
        autograder.compare.diagnose = lambda *args, **kwargs: None
        autograder.compare.judge = lambda *args, **kwargs: None
        autograder.check.check = check = lambda *args, **kwargs: print("passed")
        def attention_scores(q, k):
            return torch.zeros(1)
        """,
    # (b) call the shipped solution
    "apply_causal_mask": "from solutions.ch1_attention import apply_causal_mask\n",
    # (c) read the stored expected tensors and return them
    "attention_pattern": """
        def attention_pattern(masked_scores):
            from autograder.references import COMMITTED_DIR, ReferenceSet
            refs = ReferenceSet.load(COMMITTED_DIR / "ch1_attention" / "pure.safetensors")
            for case in refs.exercises["attention_pattern"].cases:
                if torch.equal(case.arguments["masked_scores"].value, masked_scores):
                    return case.expected["output"]
            return masked_scores * 0
        """,
    # (d) inspect the caller's frames for an expected answer
    "expand_kv_heads": """
        def expand_kv_heads(kv, n_heads):
            import inspect
            for info in inspect.stack():
                for value in info.frame.f_locals.values():
                    expected = getattr(value, "expected", None)
                    if isinstance(expected, dict) and "output" in expected:
                        return expected["output"]
            return kv
        """,
    # in-place edit of an input (the values returned are right)
    "weighted_values": """
        def weighted_values(pattern, v):
            pattern.mul_(1.0)
            return torch.einsum("bhqk,bkhd->bqhd", pattern, v)
        """,
    # kill the process the worker was forked from (the zygote), then os._exit: the grader
    # starts workers another way, then a new zygote for the next notebook
    "per_head_outputs": """
        def per_head_outputs(z, W_O):
            import os, signal
            os.kill(os.getppid(), signal.SIGKILL)
            os._exit(0)
        """,
    # an endless loop
    "attention_output": """
        def attention_output(z, W_O, b_O):
            while True:
                pass
        """,
    # a cached activation returned instead of the recomputation
    "layer_attention_output": """
        def layer_attention_output(model, cache, layer):
            return cache[f"blocks.{layer}.hook_attn_out"]
        """,
    # sys.exit inside the function
    "score_previous_token": """
        def score_previous_token(patterns):
            import sys
            sys.exit(1)
        """,
    # NaN
    "score_current_token": """
        def score_current_token(patterns):
            return patterns.diagonal(dim1=-2, dim2=-1).mean(dim=-1) * float("nan")
        """,
    # wrong dtype
    "score_first_token": """
        def score_first_token(patterns):
            return patterns[..., 1:, 0].mean(dim=-1).double()
        """,
    # a function that depends on one answered wrongly (score_previous_token exits)
    "head_type_scores": "",
}


def mallory_sources():
    sources = {name: textwrap.dedent(code) for name, code in MALLORY.items()}
    sources["head_type_scores"] = solution_source("head_type_scores")
    return sources


def oscar_sources():
    """Correct answers whose only faults are side effects: layer_attention_output leaves a
    hook on the model and head_type_scores changes its weights (both return right values);
    everything graded after them must still pass."""
    sources = {e.id: solution_source(e.id) for e in registry.exercises(CHAPTER)}
    sources["layer_attention_output"] = before("    hooks = f\"blocks.{layer}.attn\"", (
        "    model.blocks[0].attn.hook_pattern.add_hook(lambda pattern, hook: pattern * 0)"),
        sources["layer_attention_output"])
    sources["head_type_scores"] = before("    tokens = model.to_tokens(prompt)",
                                         "    model.blocks[0].attn.W_Q.mul_(1.0)",
                                         sources["head_type_scores"])
    return sources


def before(anchor: str, line: str, source: str) -> str:
    """`source` with `line` inserted before the line `anchor`."""
    assert anchor in source, anchor
    return source.replace(anchor, f"{line}\n{anchor}", 1)


def nora_sources():
    """Correct answers, except that head_type_scores' cell ends the process at top level (so
    it is left out); layer_attention_output's cell loops forever at top level, after its
    definition (which stays); an added cell defines a helper that expand_kv_heads uses and
    replaces the global model; and weighted_values' cell rewrites the installed course code
    to sabotage whoever is graded next."""
    sources = {e.id: solution_source(e.id) for e in registry.exercises(CHAPTER)}
    sources["head_type_scores"] += "\nimport os\nos._exit(0)\n"
    sources["layer_attention_output"] += "\nwhile True:\n    pass\n"
    sources["expand_kv_heads"] = ("def expand_kv_heads(kv, n_heads):\n"
                                  "    return repeat_each(kv, n_heads // kv.shape[2])\n")
    sources["weighted_values"] += (
        f"\nwith open({str(REAL_RUNNING)!r}, 'a') as sabotage:\n"
        "    sabotage.write('\\ndef run_case(*args, **kwargs):\\n    raise SystemExit(1)\\n')\n")
    return sources


def sam_sources():
    """Correct answers, except that layer_attention_output shares key/value heads by SmolLM2's
    sizes (9 query heads over 3 key/value heads: groups of 3) instead of the model's."""
    sources = {e.id: solution_source(e.id) for e in registry.exercises(CHAPTER)}
    fitted = sources["layer_attention_output"].replace("expand_kv_heads(k, n_heads)",
                                                       "k.repeat_interleave(3, dim=2)")
    sources["layer_attention_output"] = fitted.replace(
        'expand_kv_heads(cache[f"{hooks}.hook_v"], n_heads)',
        'cache[f"{hooks}.hook_v"].repeat_interleave(3, dim=2)')
    assert "expand_kv_heads" not in sources["layer_attention_output"]
    return sources


ADDED_CELL = ("def repeat_each(kv, times):\n    return kv.repeat_interleave(times, dim=2)\n\n"
              "model = None\n")


def filled(release, sources, added_cell=None):
    notebook = nbformat.from_dict(release)
    cells = answer_cells(notebook)
    for exercise_id, source in sources.items():
        cells[exercise_id].source = source
    if added_cell:
        notebook.cells.insert(notebook.cells.index(cells["attention_scores"]),
                              nbformat.v4.new_code_cell(added_cell))
    return notebook


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, hidden_references):
    original = REAL_RUNNING.read_bytes()

    def submissions(chapter, source, release):
        return {"mallory": filled(release, mallory_sources()),
                "nora": filled(release, nora_sources(), ADDED_CELL),
                "oscar": filled(release, oscar_sources()),
                "sam": filled(release, sam_sources()),
                "zed": source}  # graded after the others

    try:
        graded = make_course(tmp_path_factory, [CHAPTER], hidden_references(MODEL, (CHAPTER,)), submissions,
                             MODEL, LIMITS)
        yield {**graded, "scores": {s: v for (_, s), v in graded["scores"].items()}}
    finally:
        if REAL_RUNNING.read_bytes() != original:  # only if the grader failed to restore it
            REAL_RUNNING.write_bytes(original)
            pytest.fail("the sealed grader did not restore autograder/running.py")


def test_no_attack_or_bug_gains_a_point(corpus):
    assert corpus["scores"]["mallory"] == 0.0


def test_each_attack_costs_only_its_own_exercise(corpus):
    total = sum(e.points for e in registry.exercises(CHAPTER))
    assert corpus["scores"]["nora"] == total - 1  # head_type_scores' cell ended the process
    assert corpus["scores"]["oscar"] == total - 2  # the hook and the weights
    assert "left out: it ended the process" in feedback(corpus, "nora", CHAPTER)


def test_an_answer_that_fits_only_the_notebook_model_fails_on_the_second_model(corpus, smollm2):
    import solutions.ch1_attention

    namespace = dict(vars(solutions.ch1_attention))  # the earlier answers it calls
    exec(sam_sources()["layer_attention_output"], namespace)
    # On SmolLM2 alone (committed hidden cases) the hard-coded grouping passes...
    assert "passed" in verify("layer_attention_output", function=namespace["layer_attention_output"],
                              model=smollm2, hidden=True)
    # ...but the sealed grader also grades it on gqa-test (8 query heads over 2 key/value heads).
    total = sum(e.points for e in registry.exercises(CHAPTER))
    assert corpus["scores"]["sam"] == total - 1
    assert "second model gqa-test" in feedback(corpus, "sam", CHAPTER)


def test_a_correct_submission_after_a_saboteur_keeps_full_marks(corpus):
    assert corpus["scores"]["zed"] == sum(e.points for e in registry.exercises(CHAPTER))
    isolated()  # nora's cell cannot even reach the installed course: nothing to restore
    assert "restored" not in corpus["log"]
    assert "could read the hidden references" not in feedback(corpus, "zed", CHAPTER)


def test_feedback_says_what_each_attack_did(corpus):
    page = feedback(corpus, "mallory", CHAPTER) + feedback(corpus, "oscar", CHAPTER)
    for expected in ["changed its argument `pattern` in place", "left a hook on the model",
                     "changed the model", "ran past its time limit",
                     "ended the process", "raised SystemExit", "are NaN", "wrong dtype",
                     "not available while grading", "cached attention output"]:
        assert expected in page, expected
