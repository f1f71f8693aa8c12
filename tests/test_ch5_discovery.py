"""Chapter 5's reference implementations and the library parts it stands on: the ready-made
IOI data and exact sweeps agree with Chapter 3's graded solutions, gradients agree with
finite differences, attribution tracks exact patching on the offline model, and pruning
behaves at its extremes."""

import pytest
import torch

from readheads import edges as edge_lib
from readheads import ioi, sweeps
from solutions import ch3_circuits as ch3
from solutions.ch5_discovery import (attribution_head_outputs, edge_attribution, edge_attribution_logits,
                                     metric_gradients, metric_with_edges_removed, metric_with_heads_removed,
                                     pearson_correlation, prune_edges, prune_heads)


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


def test_candidate_edges_run_from_the_output_backwards_and_only_forwards_in_layers(smollm2):
    heads = [(3, 4), (3, 5), (7, 0), (12, 8), (12, 2)]
    edges = edge_lib.candidate_edges(smollm2, heads)
    kinds, senders, receivers = edges[:, 0], edges[:, 1], edges[:, 3]
    assert (kinds[:5] == edge_lib.LOGITS).all() and (receivers[:5] == smollm2.cfg.n_layers).all()
    assert (senders < receivers).all() and (receivers.diff() <= 0).all()
    assert len({tuple(edge) for edge in edges.tolist()}) == len(edges)
    # query edges into each query head, key/value edges into its key/value head (SmolLM2:
    # head // 3): 12.2 reads key/value head 0, 12.8 reads key/value head 2
    into_12 = edges[receivers == 12]
    assert sorted(set(into_12[into_12[:, 0] == 0, 4].tolist())) == [2, 8]
    assert sorted(set(into_12[into_12[:, 0] == 1, 4].tolist())) == [0, 2]
    # 5 to the logits; into layer 12: 3 kinds x 2 receivers x 3 senders; into 7: 3 x 1 x 2
    assert len(edges) == 5 + 3 * 2 * 3 + 3 * 1 * 2
    assert edge_lib.edge_label(edges[0]) == "12.8 -> logits"


def test_cutting_one_edge_changes_only_its_receivers_input(course_model):
    """The edge (2.0 -> layer 5's key/value head 1, k) moves that key and nothing else in
    layer 5: not the queries, values or other keys; layers before 5 see nothing."""
    clean, corrupted, metric = ioi.patching_setup(course_model, 2, seed=1)
    _, corrupted_cache = course_model.run_with_cache(corrupted.tokens)
    names = ["blocks.5.attn.hook_q", "blocks.5.attn.hook_k", "blocks.5.attn.hook_v", "blocks.4.attn.hook_z"]
    recorded = []

    def run(removed):
        seen = {}
        hooks = [(name, lambda x, hook, name=name: seen.__setitem__(name, x.clone())) for name in names]
        with course_model.hooks(fwd_hooks=hooks):
            metric_with_edges_removed(course_model, clean, corrupted_cache, metric, removed)
        recorded.append(seen)

    run(torch.zeros(0, 5, dtype=torch.int64))
    run(torch.tensor([[1, 2, 0, 5, 1]]))
    changed = {name: (recorded[0][name] - recorded[1][name]).abs().amax(dim=(0, 1, 3)) > 0 for name in names}
    assert changed["blocks.5.attn.hook_k"].nonzero().flatten().tolist() == [1]
    assert not any(changed[name].any() for name in names if name != "blocks.5.attn.hook_k")


def test_edge_attribution_tracks_cutting_each_edge_on_the_offline_model(smollm2):
    clean, corrupted, metric = ioi.patching_setup(smollm2, 4, seed=0)
    scores = {kind: edge_attribution(smollm2, clean, corrupted, metric, kind) for kind in "qkv"}
    scores["logits"] = edge_attribution_logits(smollm2, clean, corrupted, metric)
    heads = attribution_head_outputs(smollm2, clean, corrupted, metric).abs().flatten().topk(5).indices
    edges = edge_lib.candidate_edges(smollm2, [divmod(int(i), smollm2.cfg.n_heads) for i in heads])
    _, corrupted_cache = smollm2.run_with_cache(corrupted.tokens)
    exact, estimate = [], []
    for edge in edges:
        kind, *cell = edge.tolist()
        exact.append(1 - float(metric_with_edges_removed(smollm2, clean, corrupted_cache, metric, edge[None])))
        estimate.append(float(scores[edge_lib.KINDS[kind]][tuple(cell[:2] if kind == edge_lib.LOGITS else cell)]))
    # Cutting an edge of the clean run (noising) against patching it into the corrupted run
    # (the estimate, denoising): equal to first order. The page measures r = 0.97 over the 48
    # edges among the 6 most attributed heads.
    assert float(pearson_correlation(torch.tensor(exact), torch.tensor(estimate))) > 0.8


def test_edge_pruning_keeps_everything_at_threshold_zero_and_nothing_at_a_huge_one(gpt2_test):
    clean, corrupted, metric = ioi.patching_setup(gpt2_test, 2, seed=0)
    edges = edge_lib.candidate_edges(gpt2_test, [(9, 1), (10, 2), (11, 3)])
    assert prune_edges(gpt2_test, clean, corrupted, metric, 0.0, edges).all()
    assert not prune_edges(gpt2_test, clean, corrupted, metric, 1e9, edges).any()
    _, cache = gpt2_test.run_with_cache(corrupted.tokens)
    assert float(metric_with_edges_removed(gpt2_test, clean, cache, metric, edges[:0])) == pytest.approx(1, abs=1e-4)
