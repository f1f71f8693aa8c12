"""Chapter 5's reference implementations and the library parts it stands on: the ready-made
IOI data and exact sweeps agree with Chapter 3's graded solutions, gradients agree with
finite differences, attribution tracks exact patching on the offline model, and pruning
behaves at its extremes."""

import pytest
import torch

from readheads import ioi, sweeps
from solutions import ch3_circuits as ch3
from solutions.ch5_discovery import (attribution_head_outputs, metric_gradients, metric_with_heads_removed,
                                     pearson_correlation, prune_heads)


@pytest.fixture(autouse=True)
def no_grad():
    with torch.no_grad():
        yield


@pytest.mark.parametrize("kind", ["abc", "swapped"])
def test_library_ioi_data_is_chapter_3s(course_model, kind):
    ours = ioi.patching_setup(course_model, 6, seed=5, kind=kind)
    theirs = ch3.patching_setup(course_model, 6, seed=5, kind=kind)
    for a, b in zip(ours[:2], theirs[:2]):
        assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert torch.allclose(ours[2].clean, theirs[2].clean) and torch.allclose(ours[2].corrupted, theirs[2].corrupted)


def test_library_sweeps_are_chapter_3s(gpt2_test):
    clean, corrupted, metric = ioi.patching_setup(gpt2_test, 3, seed=2)
    assert torch.allclose(sweeps.head_output_sweep(gpt2_test, clean, corrupted, metric),
                          ch3.patch_head_output_sweep(gpt2_test, clean, corrupted, metric).cpu(), atol=1e-5)
    assert torch.allclose(sweeps.layer_output_sweep(gpt2_test, clean, corrupted, metric),
                          ch3.patch_layer_output_sweep(gpt2_test, clean, corrupted, metric).cpu(), atol=1e-5)
    assert torch.allclose(sweeps.residual_sweep(gpt2_test, clean, corrupted, metric),
                          ch3.patch_residual_sweep(gpt2_test, clean, corrupted, metric), atol=1e-5)


def test_metric_gradients_match_finite_differences(course_model):
    _, corrupted, metric = ioi.patching_setup(course_model, 3, seed=0)
    layer = course_model.cfg.n_layers // 2
    names = [f"blocks.{layer}.hook_resid_pre", f"blocks.{layer}.attn.hook_z"]
    generator = torch.Generator().manual_seed(0)
    for index, name in enumerate(names):
        gradient = metric_gradients(course_model, corrupted.tokens, metric, [name])[0]
        direction = torch.randn(gradient.shape, generator=generator).to(gradient.device)
        step = 1e-3  # per element, against activations of order 1 and more
        nudged = course_model.run_with_hooks(corrupted.tokens, fwd_hooks=[
            (name, lambda activation, hook: activation + step * direction)])
        finite = (metric(nudged) - metric(course_model(corrupted.tokens))) / step
        assert float(finite) == pytest.approx(float((gradient * direction).sum()), rel=0.05, abs=1e-3)


def test_attribution_tracks_exact_patching_of_heads_on_the_offline_model(smollm2):
    clean, corrupted, metric = ioi.patching_setup(smollm2, 4, seed=0)
    exact = sweeps.head_output_sweep(smollm2, clean, corrupted, metric)
    estimate = attribution_head_outputs(smollm2, clean, corrupted, metric).cpu()
    assert float(pearson_correlation(exact, estimate)) > 0.5
    # the sign matters: the most helpful head by the estimate helps when patched exactly
    assert exact.flatten()[estimate.flatten().argmax()] > 0


def test_pruning_keeps_everything_at_threshold_zero_and_nothing_at_a_huge_one(gpt2_test):
    clean, corrupted, metric = ioi.patching_setup(gpt2_test, 3, seed=0)
    layers = [gpt2_test.cfg.n_layers - 1]
    everything = prune_heads(gpt2_test, clean, corrupted, metric, 0.0, layers)
    assert everything.all()
    nothing_in_layer = prune_heads(gpt2_test, clean, corrupted, metric, 1e9, layers)
    assert not nothing_in_layer[layers].any() and nothing_in_layer[:-1].all()
    _, cache = gpt2_test.run_with_cache(corrupted.tokens)
    removed_all = torch.ones(gpt2_test.cfg.n_layers, gpt2_test.cfg.n_heads, dtype=torch.bool)
    # every head corrupted: the clean run becomes the corrupted one up to the MLPs, which see
    # clean tokens, so the metric moves far from the clean run's 1
    assert float(metric_with_heads_removed(gpt2_test, clean, cache, metric, removed_all)) != pytest.approx(1, abs=1e-3)
    assert float(metric_with_heads_removed(gpt2_test, clean, cache, metric, ~removed_all)) == pytest.approx(1, abs=1e-4)
