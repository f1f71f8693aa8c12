"""Model loading: the GPT-2 small code path offline (real tokenizer and config, random
weights), the offline model, the grader's second model, choosing a model, and failing fast
without the Hub."""

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from readheads.models import MODEL_ENV_VAR, _smollm2_checkpoint, load_model, resolve_model_name

from .conftest import ROOT, model_key_on_plain_cpu_path


def test_gpt2_architecture_and_tokenizer(gpt2_test):
    cfg = gpt2_test.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.d_head, cfg.d_model) == (12, 12, 64, 768)
    assert gpt2_test.to_tokens("Hello world").tolist() == [[50256, 15496, 995]]
    _, cache = gpt2_test.run_with_cache(gpt2_test.to_tokens("Hello world"))
    assert cache["blocks.11.attn.hook_pattern"].shape == (1, 12, 3, 3)
    assert cache["blocks.0.attn.hook_q"].shape == (1, 3, 12, 64)
    assert gpt2_test.course_info.name == "gpt2-test"


def test_gpt2_attention_model_holds_the_real_attention_weights(gpt2_attention, gpt2_test):
    from safetensors.torch import load_file

    from .conftest import ATTENTION_WEIGHTS

    from readheads.models import _gpt2_attention_checkpoint

    real = load_file(ATTENTION_WEIGHTS)
    hf = load_file(Path(_gpt2_attention_checkpoint()[0]) / "model.safetensors")
    for key in ("transformer.h.4.attn.c_attn.weight", "transformer.h.11.attn.c_proj.bias",
                "transformer.h.7.ln_1.weight"):
        assert hf[key].equal(real[key]), key
    assert gpt2_attention.course_info.fingerprint != gpt2_test.course_info.fingerprint


def test_offline_model_architecture(smollm2):
    cfg = smollm2.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads, cfg.d_head) == (30, 9, 3, 64)
    _, cache = smollm2.run_with_cache(smollm2.to_tokens("The capital of France is"))
    assert cache["blocks.0.attn.hook_rot_k"].shape[2] == 3
    assert smollm2.to_tokens("Hi")[0, 0].item() == 1  # BOS <|im_start|>


def test_offline_model_is_a_real_trained_model(smollm2):
    logits = smollm2(smollm2.to_tokens("The capital of France is"))
    assert smollm2.to_string(logits[0, -1].argmax()) == " Paris"


def test_model_choice(monkeypatch):
    monkeypatch.delenv(MODEL_ENV_VAR, raising=False)
    assert resolve_model_name() == "gpt2-small"
    monkeypatch.setenv(MODEL_ENV_VAR, "smollm2-135m")
    assert resolve_model_name() == "smollm2-135m"
    assert resolve_model_name("gpt2-test") == "gpt2-test"  # the notebook argument wins
    with pytest.raises(ValueError, match="Unknown course model 'gpt3'.*gpt2-small, smollm2-135m"):
        resolve_model_name("gpt3")


def run_python(code: str, env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env={**os.environ, **env},
                          capture_output=True, text=True, timeout=timeout, cwd=ROOT)


@pytest.mark.parametrize("offline_flag", ["1", ""])
def test_gpt2_small_without_hub_fails_fast_naming_the_offline_model(tmp_path, offline_flag):
    start = time.perf_counter()
    result = run_python("""
        from readheads import load_model
        load_model("gpt2-small")
    """, {"HF_HOME": str(tmp_path), "HF_HUB_OFFLINE": offline_flag})
    elapsed = time.perf_counter() - start
    assert result.returncode != 0
    assert "ModelUnavailableError" in result.stderr
    assert "load_model('smollm2-135m')" in result.stderr and "COURSE_MODEL" in result.stderr
    print(f"gpt2-small failed after {elapsed:.1f} s (HF_HUB_OFFLINE={offline_flag!r})")


def stand_in_hub_cache(hf_home, checkpoint):
    """A Hugging Face cache in which the name "gpt2" resolves to `checkpoint` (random weights)."""
    revision = "0" * 40
    repo = hf_home / "hub" / "models--gpt2"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    shutil.copytree(checkpoint, repo / "snapshots" / revision)
    config_path = repo / "snapshots" / revision / "config.json"
    config = json.loads(config_path.read_text())
    config["n_ctx"] = 1024  # present in the Hub's gpt2 config
    config_path.write_text(json.dumps(config))


@pytest.mark.slow
def test_gpt2_small_loads_by_name_and_builds_references_on_first_use(gpt2_test, tmp_path):
    """The real `load_model("gpt2-small")` path, through a stand-in Hub cache; a model with
    no committed references gets them built once into the user cache, and the check says so."""
    from readheads.models import _gpt2_test_checkpoint

    stand_in_hub_cache(tmp_path / "hf", _gpt2_test_checkpoint()[0])
    result = run_python("""
        import torch
        from autograder.check import verify
        from readheads import load_model
        from solutions.ch1_attention import head_type_scores

        model = load_model("gpt2-small", device="cpu")
        info = model.course_info
        print("INFO", info.name, info.fingerprint, model.cfg.n_layers, model.cfg.n_heads)
        print(verify("head_type_scores", function=head_type_scores, model=model))
        print(verify("head_type_scores", function=head_type_scores, model=model))
    """, {"HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1",
          "COURSE_CACHE_DIR": str(tmp_path / "cache")})
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"INFO gpt2-small {gpt2_test.course_info.fingerprint} 12 12" in result.stdout
    assert result.stdout.count("building them once") == 1
    # the build's progress, exercise by exercise, to the end (tqdm, with its time estimate)
    bars = re.findall(r"building references: *(\d+)%\|[^|]*\| (\d+)/(\d+) \[[^<]*<[^,]*,", result.stderr)
    assert bars and bars[-1][0] == "100" and bars[-1][1] == bars[-1][2], result.stderr[-2000:]
    built = tmp_path / "cache" / "references" / "ch1_attention"
    assert result.stdout.count("passed (visible case; references: gpt2-small-") == 2
    assert str(built) in result.stdout
    assert len(list(built.glob("gpt2-small-*.safetensors"))) == 1


def test_the_gpt2_second_model_grades_what_only_gpt2_has(smollm2, tmp_path, monkeypatch):
    """gpt2-mini-test has GPT-2's attention output bias, drawn at random: an answer that
    negates it passes on SmolLM2 (which has none) and fails on gpt2-mini-test."""
    import solutions.ch1_attention as ch1
    from autograder.authoring.build import build
    from autograder.check import evaluate

    model = load_model("gpt2-mini-test", device="cpu", quiet=True)
    assert (model.cfg.n_layers, model.cfg.n_heads, model.cfg.d_model) == (4, 8, 128)
    assert model.cfg.d_vocab == 50257  # GPT-2's tokenizer
    assert float(model.blocks[0].attn.b_O.abs().max()) > 0.01
    build("ch1_attention", model, seed=3).save(tmp_path / "ch1_attention")
    monkeypatch.setenv("COURSE_REFERENCES_DIR", str(tmp_path))

    def negated_bias(model, cache, layer):
        bias = model.blocks[layer].attn.b_O
        output = ch1.layer_attention_output(model, cache, layer)
        return output if bias is None else output - 2 * bias

    def graded(function, on):
        return evaluate("layer_attention_output", function=function, model=on, hidden=True).passed

    assert graded(negated_bias, smollm2) and graded(ch1.layer_attention_output, model)
    assert not graded(negated_bias, model)


def test_grader_second_model_has_other_sizes_and_the_same_weights_on_every_vector_path(smollm2, tmp_path):
    """gqa-test groups its query heads unlike SmolLM2 (so hard-coded groups fail on it), and
    its fingerprint, which picks the hidden references, must not depend on how a CPU rounds."""
    model = load_model("gqa-test", device="cpu", quiet=True)
    cfg = model.cfg
    assert (cfg.n_layers, cfg.n_heads, cfg.n_key_value_heads) == (4, 8, 2)
    assert cfg.n_heads // cfg.n_key_value_heads not in (1, smollm2.cfg.n_key_value_heads,
                                                        cfg.n_key_value_heads)
    assert model.to_tokens("Hi").tolist() == smollm2.to_tokens("Hi").tolist()
    base = Path(_smollm2_checkpoint()[0])  # reuse the converted offline model, rebuild the rest
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / base.name).symlink_to(base)
    assert model_key_on_plain_cpu_path("gqa-test", tmp_path) == model.course_info.key
