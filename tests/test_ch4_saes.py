"""Chapter 4's library (corpus, harvest, SAE files, training, metrics, dashboards) and its
reference solutions, against each other and against the committed SAE's manifest."""

import json
import re

import pytest
import torch
from safetensors.torch import save_file

from readheads import sae as sae_module
from readheads.corpus import PYTHON_DOCS_MODULES, held_out_rows, load_corpus, token_rows
from readheads.corpus_sources import SOURCES
from readheads.harvest import ActivationShards, ActivationsInMemory, activations_at, harvest
from readheads.models import ModelUnavailableError
from readheads.sae import (SAEConfig, default_sae, fingerprint, load_sae,
                           load_sae_folder, weights_of)
from readheads.sae_eval import evaluate_sae, reconstruct_below, splice_hook
from readheads.sae_reading import feature_dashboard
from readheads.sae_training import (TrainingConfig, initialise, project_out_parallel_gradient,
                                    sae_losses, train_sae)
from solutions import ch4_saes as ch4

from .conftest import require

COURSE_SAE = "smollm2-135m-res-l15"


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


def random_sae(d_in=6, d_sae=10, architecture="standard", k=None, seed=0):
    generator = torch.Generator().manual_seed(seed)
    cfg = SAEConfig(d_in=d_in, d_sae=d_sae, architecture=architecture, k=k,
                    metadata={"hook_name": "blocks.1.hook_resid_pre"})
    sae = initialise(cfg, torch.randn(32, d_in, generator=generator), generator)
    with torch.no_grad():
        sae.b_enc.copy_(torch.randn(d_sae, generator=generator) * 0.1)
    return sae


# --- Files: SAELens' format ----------------------------------------------------------------


def write_saelens_folder(folder, sae, flat: bool):
    """An SAE folder as SAELens writes it: v6 nests the hook in "metadata", older files are flat."""
    folder.mkdir()
    save_file({n: p.detach().clone() for n, p in sae.named_parameters()},
              str(folder / "sae_weights.safetensors"))
    config = {"d_in": sae.cfg.d_in, "d_sae": sae.cfg.d_sae, "dtype": "float32", "device": "cpu",
              "apply_b_dec_to_input": True, "normalize_activations": "none"}
    where = {"model_name": "gpt2-small", "hook_name": "blocks.8.hook_resid_pre", "hook_layer": 8,
             "context_size": 128}
    if flat:  # e.g. jbloom/GPT2-Small-SAEs-Reformatted
        config.update(where, activation_fn_str="relu")
    else:
        config.update(architecture="standard", metadata=where)
    (folder / "cfg.json").write_text(json.dumps(config))


@pytest.mark.parametrize("flat", [True, False], ids=["flat-config", "saelens6-config"])
def test_an_saelens_folder_loads_and_encodes_as_the_formulas_say(tmp_path, flat):
    original = random_sae()
    write_saelens_folder(tmp_path / "sae", original, flat)
    sae = load_sae(str(tmp_path / "sae"))
    assert sae.cfg.hook_name == "blocks.8.hook_resid_pre" and sae.cfg.metadata["hook_layer"] == 8
    x = torch.randn(5, 6)
    features = torch.relu((x - original.b_dec) @ original.W_enc + original.b_enc)
    assert torch.allclose(sae.encode(x), features, atol=1e-6)
    assert torch.allclose(sae(x), features @ original.W_dec + original.b_dec, atol=1e-6)
    assert sae.course_info.fingerprint == fingerprint(original)
    assert sae.norm_limit is None  # no manifest: applied to every token


def test_our_files_round_trip_and_float16_files_load_as_float32(tmp_path):
    original = random_sae(architecture="topk", k=3)
    original.save(tmp_path / "a")
    again = load_sae_folder(tmp_path / "a")
    assert again.cfg == original.cfg and fingerprint(again) == fingerprint(original)
    original.save(tmp_path / "b", dtype=torch.float16)
    half = load_sae_folder(tmp_path / "b")
    assert half.W_enc.dtype == torch.float32
    assert torch.allclose(half.W_dec, original.W_dec, atol=1e-3)
    assert (half.encode(torch.randn(4, 6)) > 0).sum(-1).max() <= 3


def test_an_sae_leaves_tokens_over_its_norm_limit_alone_unless_told_otherwise():
    sae = random_sae(d_in=6, d_sae=10)
    x = torch.randn(2, 5, 6, generator=torch.Generator().manual_seed(4))  # [row, pos, d_in]
    x[0, 2] *= 1000 / x[0, 2].norm()  # one token of massive norm
    everywhere = sae(x, norm_limit=None)
    assert sae.norm_limit is None and torch.equal(sae(x), everywhere)  # built in memory: no limit
    sae.norm_limit = 100.0
    over = torch.zeros(2, 5, dtype=torch.bool)
    over[0, 2] = True
    spliced = splice_hook(sae)(x, None)
    assert torch.equal(spliced[0, 2], x[0, 2])  # passed through unchanged
    assert torch.allclose(spliced[:, 1:][~over[:, 1:]], everywhere[:, 1:][~over[:, 1:]])
    assert torch.equal(spliced[:, 0], x[:, 0])  # BOS, as before
    features = sae.encode(x)
    assert not features[0, 2].any() and sae.encode(x, norm_limit=None)[0, 2].any()
    assert torch.equal(features[~over], sae.encode(x, norm_limit=None)[~over])
    assert torch.equal(reconstruct_below(sae)(x), sae(x))
    for off in (None, 2000.0):  # switched off, or a limit above the token
        assert torch.equal(reconstruct_below(sae, off)(x), everywhere)
        assert torch.equal(sae.encode(x, norm_limit=off), sae.encode(x, norm_limit=None))
    assert torch.equal(sae(x, norm_limit=0.0), x)  # a limit below every token


def test_broken_sae_folders_say_what_is_wrong(tmp_path):
    write_saelens_folder(tmp_path / "sae", random_sae(), flat=False)
    config = json.loads((tmp_path / "sae" / "cfg.json").read_text())
    (tmp_path / "sae" / "cfg.json").write_text(json.dumps({**config, "d_sae": 11}))
    with pytest.raises(ValueError, match=r"W_enc .* has shape \(6, 10\); cfg.json says \(6, 11\)"):
        load_sae_folder(tmp_path / "sae")
    (tmp_path / "sae" / "cfg.json").write_text(json.dumps({**config, "architecture": "jumprelu"}))
    with pytest.raises(ValueError, match="architecture is 'jumprelu'"):
        load_sae_folder(tmp_path / "sae")
    (tmp_path / "sae" / "cfg.json").unlink()
    with pytest.raises(FileNotFoundError, match="cfg.json is missing"):
        load_sae_folder(tmp_path / "sae")
    with pytest.raises(ValueError, match="Unknown SAE 'nonsense'"):
        load_sae("nonsense")


def test_the_gpt2_small_sae_comes_from_the_hub_and_offline_says_what_to_do(tmp_path, monkeypatch):
    import huggingface_hub

    asked = []

    def fake_download(repo_id, filename):
        asked.append((repo_id, filename))
        path = tmp_path / filename
        if not path.parent.exists():
            write_saelens_folder(path.parent, random_sae(), flat=True)
        return str(path)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    sae = load_sae("gpt2-small-res-jb-l8")
    assert asked[-1] == ("jbloom/GPT2-Small-SAEs-Reformatted",
                         "blocks.8.hook_resid_pre/sae_weights.safetensors")
    assert sae.course_info.name == "gpt2-small-res-jb-l8"

    def offline(repo_id, filename):
        raise OSError("We couldn't connect to 'https://huggingface.co'")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", offline)
    with pytest.raises(ModelUnavailableError, match="load_sae\\('smollm2-135m-res-l15'\\)"):
        load_sae("gpt2-small-res-jb-l3")


# --- Corpus and harvest ----------------------------------------------------------------------


def test_the_offline_corpus_is_over_a_million_tokens_of_labelled_prose(smollm2):
    documents = load_corpus()
    assert len(documents) == 2225
    assert {d.label for d in documents} == {"business", "entertainment", "politics", "sports", "tech"}
    rows = token_rows(smollm2.tokenizer, documents, 128)
    assert rows.tokens.numel() > 1_000_000
    assert (rows.tokens[:, 0] == smollm2.tokenizer.bos_token_id).all()
    assert (rows.document[:, 0] == -1).all() and (rows.document[:, 1:] >= 0).all()
    first = rows.document[0, 1]
    text = smollm2.to_string(rows.tokens[0, 1:][rows.document[0, 1:] == first])
    assert documents[first].text.startswith(text[:40])


def test_python_docs_are_a_text_family_the_saes_never_saw():
    documents = load_corpus("python-docs")
    assert [d.label for d in documents] == list(PYTHON_DOCS_MODULES)
    assert all(d.text.startswith("Python Library Documentation: ") and f"NAME\n    {d.label}" in d.text
               for d in documents)
    with pytest.raises(ValueError, match="Unknown corpus 'python'.*'python-docs'.*'hub:<dataset>'"):
        load_corpus("python")


def test_a_bfloat16_harvest_is_float32_activations_within_a_few_percent(gpt2_test):
    tokens = torch.randint(0, 50_000, (2, 24), generator=torch.Generator().manual_seed(0))
    exact = activations_at(gpt2_test, tokens, "blocks.6.hook_resid_pre")
    fast = activations_at(gpt2_test, tokens, "blocks.6.hook_resid_pre", autocast="bfloat16")
    assert fast.dtype == torch.float32 and not torch.equal(fast, exact)  # bfloat16 matmuls ran
    relative = (fast - exact).norm(dim=-1) / exact.norm(dim=-1)
    assert relative.median() < 0.02 and relative.max() < 0.1


def test_harvest_stops_at_the_hook_resumes_and_refuses_another_model(gpt2_test, tmp_path, monkeypatch):
    hook = "blocks.3.hook_resid_pre"
    tokens = torch.randint(0, 1000, (10, 9), generator=torch.Generator().manual_seed(0))
    tokens[2, 5] = gpt2_test.tokenizer.eos_token_id  # a document boundary: not harvested
    kept = torch.ones(10, 9, dtype=torch.bool)
    kept[:, 0] = kept[2, 5] = False
    _, cache = gpt2_test.run_with_cache(tokens, names_filter=hook)
    assert torch.equal(activations_at(gpt2_test, tokens, hook), cache[hook])

    import readheads.harvest as harvest_module

    real_save, saved = harvest_module.save_file, []

    def interrupted(tensors, path):
        if len(saved) == 2:
            raise KeyboardInterrupt
        saved.append(path)
        real_save(tensors, path)

    monkeypatch.setattr(harvest_module, "save_file", interrupted)
    with pytest.raises(KeyboardInterrupt):
        harvest(gpt2_test, tokens, hook, tmp_path / "h", batch_size=3, shard_rows=4, progress=False)
    with pytest.raises(ValueError, match="partial harvest \\(2 of 3 shards\\)"):
        ActivationShards(tmp_path / "h")
    monkeypatch.setattr(harvest_module, "save_file", real_save)
    manifest = harvest(gpt2_test, tokens, hook, tmp_path / "h", batch_size=3, shard_rows=4, progress=False)
    assert manifest["tokens"] == 10 * 8 - 1 and len(manifest["shards"]) == 3
    shards = ActivationShards(tmp_path / "h")
    stored = torch.cat([shards.shard(i) for i in range(len(shards))])
    assert torch.allclose(stored, cache[hook][kept], atol=1e-2, rtol=1e-3)  # float16
    with pytest.raises(ValueError, match="differs in hook_name"):
        harvest(gpt2_test, tokens, "blocks.2.hook_resid_pre", tmp_path / "h", progress=False)
    with pytest.raises(KeyError, match="blocks.99.hook_resid_pre"):
        activations_at(gpt2_test, tokens, "blocks.99.hook_resid_pre")


# --- Training ----------------------------------------------------------------------------------


def planted_features(seed=0, n=32, d=8, points=50_000, p=0.04):
    generator = torch.Generator().manual_seed(seed)
    true = torch.randn(n, d, generator=generator)
    true /= true.norm(dim=1, keepdim=True)
    features = (torch.rand(points, n, generator=generator) < p) * torch.rand(points, n, generator=generator)
    return true, features @ true


def test_training_recovers_planted_features_and_a_too_strong_penalty_does_not():
    true, x = planted_features()
    results = {}
    for l1 in (1.0, 30.0):
        config = TrainingConfig(d_sae=64, l1_coefficient=l1, lr=3e-3, batch_size=1024, epochs=20,
                                dead_after=20_000, resample_every=25)
        with torch.enable_grad():
            sae, history = train_sae(ActivationsInMemory(x), config, SAEConfig(d_in=8, d_sae=64),
                                     progress=False)
        results[l1] = (float(ch4.mean_max_cosine_similarity(sae.W_dec, true)), history)
        assert torch.allclose(sae.W_dec.norm(dim=1), torch.ones(64), atol=1e-5)
    good, bad = results[1.0], results[30.0]
    assert good[0] > 0.9, f"MMCS {good[0]:.3f}: the SAE should recover the planted features"
    assert bad[0] < good[0] - 0.1 and bad[1].resampled[-1] > 0
    assert good[1].mse[-1] < good[1].mse[0] / 3


def test_tokens_of_massive_norm_are_left_out_and_data_init_starts_on_the_data():
    true, x = planted_features()
    x = x.clone()
    median = float(x.norm(dim=-1).median())
    massive = torch.randn(7, 8, generator=torch.Generator().manual_seed(3))
    x[:7] = massive / massive.norm(dim=1, keepdim=True) * 100 * median  # far beyond 10x the median
    config = TrainingConfig(d_sae=16, l1_coefficient=1.0, batch_size=len(x), epochs=2,
                            outlier_norm_ratio=10.0)
    with torch.enable_grad():
        sae, history = train_sae(ActivationsInMemory(x), config, SAEConfig(d_in=8, d_sae=16),
                                 progress=False)
    assert history.left_out == 7 * 2  # once per epoch
    assert 5 * median < history.norm_limit < 20 * median
    assert sae.norm_limit == history.norm_limit  # the SAE carries it
    sample = torch.randn(64, 8, generator=torch.Generator().manual_seed(1)) + 3.0
    sae = initialise(SAEConfig(d_in=8, d_sae=16), sample, torch.Generator().manual_seed(2), "data")
    directions = (sample - sample.mean(0)) / (sample - sample.mean(0)).norm(dim=1, keepdim=True)
    assert torch.allclose((sae.W_dec @ directions.T).amax(1), torch.ones(16), atol=1e-5)
    assert torch.allclose(sae.W_enc, sae.W_dec.T)


def test_library_training_pieces_match_the_exercise_solutions():
    sae = random_sae(d_in=6, d_sae=10)
    x = torch.randn(16, 6)
    weights = weights_of(sae)
    assert torch.allclose(sae.encode(x), ch4.sae_encode(x, weights))
    mse, l1, features = sae_losses(sae, x)
    expected = ch4.sae_loss(x, features, sae.decode(features), sae.W_dec, 2.0)
    assert torch.allclose(mse, expected[0]) and torch.allclose(l1, expected[1])
    topk = random_sae(d_in=6, d_sae=10, architecture="topk", k=3)
    pre = (x - topk.b_dec) @ topk.W_enc + topk.b_enc
    assert torch.equal(topk.encode(x), ch4.topk_activation(pre, 3))
    with torch.enable_grad():
        sae.requires_grad_(True)
        sae_losses(sae, x)[0].backward()
    expected_grad = ch4.project_decoder_gradient(sae.W_dec.detach(), sae.W_dec.grad.clone())
    project_out_parallel_gradient(sae)
    assert torch.allclose(sae.W_dec.grad, expected_grad, atol=1e-6)


# --- The committed SAE -------------------------------------------------------------------------


# Rows 199, 202 and 204 of the news corpus's last 256 start with a token of massive norm
# (1,600-5,600).
MASSIVE_ROWS = slice(199, 207)


@pytest.fixture(scope="module")
def news_rows(smollm2):
    return token_rows(smollm2.tokenizer, load_corpus(), 128).tokens[-256:]


@pytest.fixture(scope="module")
def course_sae(smollm2):
    require(COURSE_SAE in sae_module.committed_saes(), f"the course SAE {COURSE_SAE} is not committed")
    return default_sae(smollm2)


def test_the_committed_sae_is_the_one_its_manifest_describes_and_still_measures_so(smollm2, course_sae):
    manifest = course_sae.manifest
    assert manifest["model"] == smollm2.course_info.key
    assert manifest["hook_name"] == course_sae.cfg.hook_name == "blocks.15.hook_resid_pre"
    assert manifest["fingerprint"] == course_sae.course_info.fingerprint
    assert manifest["data"]["corpus"].startswith("broad-mix") and manifest["data"]["training_tokens"] > 10_000_000
    # It was trained and measured without tokens of massive norm, and carries that limit.
    assert course_sae.norm_limit == manifest["outliers"]["norm_limit"]
    metrics = manifest["metrics_on_held_out_rows"]
    # What the course promises of it: on every source's held-out text, and on text families it
    # never trained on.
    assert set(metrics["per_source"]) == {"bbc-news", *(source.name for source in SOURCES)}
    for name, recorded in metrics["per_source"].items():
        assert recorded["variance_explained"] >= 0.6 and recorded["ce_loss_recovered"] >= 0.85, name
        assert 10 <= recorded["l0"] <= 100, name
    for name, recorded in metrics["held_out_families"].items():
        assert recorded["variance_explained"] >= 0.5 and recorded["ce_loss_recovered"] >= 0.75, name
    # The manifest tells the truth: one source measured again, on the same rows.
    recorded = metrics["per_source"]["austen"]
    measured = evaluate_sae(smollm2, course_sae, held_out_rows(smollm2.tokenizer, "austen"), progress=False)
    assert measured["tokens"] == recorded["tokens"]
    for key in ("variance_explained", "ce_loss_recovered", "l0", "ce_with_sae"):
        assert measured[key] == pytest.approx(recorded[key], rel=1e-3), key


def test_the_docs_and_the_readme_give_the_committed_sae_s_own_numbers():
    from pathlib import Path

    from readheads.sae_training import metrics_summary, metrics_table

    path = sae_module.SAE_DIR / COURSE_SAE / "manifest.json"
    require(path.is_file(), f"the course SAE {COURSE_SAE} is not committed")
    manifest = json.loads(path.read_text())
    root = Path(__file__).resolve().parent.parent
    assert metrics_table(manifest) in (root / "docs" / "chapters.md").read_text(), "update docs/chapters.md"
    assert metrics_summary(manifest) in " ".join((root / "README.md").read_text().split()), "update the README"


def test_the_committed_sae_passes_a_real_massive_token_through_unless_told_otherwise(
        smollm2, course_sae, news_rows):
    rows = news_rows[MASSIVE_ROWS][:1, :16]  # position 1: norm ~4,300
    x = activations_at(smollm2, rows, course_sae.cfg.hook_name)
    assert x[0, 1].norm() > course_sae.norm_limit > x[0, 2:].norm(dim=-1).max()
    spliced = splice_hook(course_sae)(x, None)
    assert torch.equal(spliced[0, 1], x[0, 1]) and not torch.equal(spliced[0, 2], x[0, 2])
    assert (course_sae(x, norm_limit=None)[0, 1] - x[0, 1]).norm() > 1000  # far off
    own = evaluate_sae(smollm2, course_sae, rows, progress=False)
    off = evaluate_sae(smollm2, course_sae, rows, norm_limit=None, baseline=own, progress=False)
    above = evaluate_sae(smollm2, course_sae, rows, norm_limit=5000.0, baseline=own, progress=False)
    assert off["tokens"] == above["tokens"] == own["tokens"] + 1
    # The one massive token outweighs all the others: variance explained collapses.
    assert off["variance_explained"] == above["variance_explained"] < own["variance_explained"] - 0.3
    assert off["ce_with_sae"] > own["ce_with_sae"]


def test_exercise_measures_agree_with_the_library_on_the_committed_sae(smollm2, course_sae):
    rows = token_rows(smollm2.tokenizer, load_corpus(), 64).tokens[-4:]
    hook, weights = course_sae.cfg.hook_name, weights_of(course_sae)
    # every token, as the exercises do (these rows have none over the SAE's norm limit)
    library = evaluate_sae(smollm2, course_sae, rows, norm_limit=None, progress=False)
    clean, with_sae, zero = ch4.spliced_losses(smollm2, weights, rows, hook)
    assert abs(float(ch4.ce_loss_recovered(clean, with_sae, zero)) - library["ce_loss_recovered"]) < 1e-3
    x = activations_at(smollm2, rows, hook)[:, 1:].flatten(0, 1)
    features = ch4.sae_encode(x, weights)
    l0, mse, explained = ch4.reconstruction_metrics(x, course_sae.decode(features), features)
    assert abs(float(l0) - library["l0"]) < 1e-3 and abs(float(explained) - library["variance_explained"]) < 1e-4
    activations = ch4.sae_feature_activations(smollm2, weights, rows, hook)
    assert torch.allclose(activations[:, 1:].flatten(0, 1), features, atol=1e-4)
    feature = int(activations[:, 1:].amax((0, 1)).argmax())
    html = str(feature_dashboard(smollm2, course_sae, feature, rows, activations[..., feature]))
    assert "<script" not in html and not re.search(r"(src|href)=\"https?:", html)
    firing = int((activations[:, 1:, feature] > 0).sum())
    assert html.count("<tr>") == min(8, firing) > 0 and "Promotes" in html and "<svg" in html


def test_the_training_command_writes_a_manifest_with_metrics_per_source(tmp_path, monkeypatch):
    """`python -m readheads.sae_training` end to end on a small model and a few rows: harvest
    (bfloat16 autocast), training, the metrics per source and per held-out family, the seed
    twin and the L1 sweep, all in the manifest."""
    from readheads import sae_training

    monkeypatch.setenv("COURSE_CACHE_DIR", str(tmp_path / "cache"))
    generator = torch.Generator().manual_seed(0)

    def rows(n):
        return torch.cat([torch.zeros(n, 1, dtype=torch.long), torch.randint(1000, 9000, (n, 31), generator=generator)], 1)

    held_out = {"first": rows(4), "second": rows(4)}
    monkeypatch.setattr(sae_training, "course_tokens", lambda *args: (rows(96), held_out, {"family": rows(4)}))
    out = tmp_path / "sae"
    sae_training.main(["--model", "gpt2-mini-test", "--layer", "2", "--d-sae", "32", "--context-size", "32",
                       "--epochs", "1", "--batch-size", "128", "--l1-coefficient", "2", "--twin-seed", "1",
                       "--l1-sweep", "8",
                       "--out", str(out), "--device", "cpu"])
    manifest = json.loads((out / "manifest.json").read_text())
    metrics = manifest["metrics_on_held_out_rows"]
    assert set(metrics["per_source"]) == set(held_out) and set(metrics["held_out_families"]) == {"family"}
    # The pooled metrics are those of all the sources' rows together.
    assert metrics["all_sources"]["tokens"] == sum(m["tokens"] for m in metrics["per_source"].values())
    assert manifest["data"]["harvest_autocast"] == "bfloat16" and manifest["training"]["autocast"] == "bfloat16"
    assert [run["l1_coefficient"] for run in manifest["l1_sweep"]] == [2.0, 8.0]
    assert manifest["l1_sweep"][0] == {"l1_coefficient": 2.0, **metrics["all_sources"]}
    assert manifest["l1_sweep"][1]["l0"] < manifest["l1_sweep"][0]["l0"]  # a stronger penalty, fewer features
    assert 0 <= manifest["seed_twin"]["fraction_matched"] <= 1
    sae = load_sae_folder(out)
    assert sae.norm_limit == manifest["outliers"]["norm_limit"] and sae.cfg.d_sae == 32
