"""Print the course's speed numbers (not a test: nothing here can fail on a slow machine).

    python benchmarks/run.py            # all
    python benchmarks/run.py checks     # one group: checks, first-check, loading, grading,
                                        # ablation, patching, sae, discovery, truth
"""

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COURSE_GPT2_TOKENIZER_DIR", str(ROOT.parent / "shared" / "gpt2-tokenizer"))


def median_seconds(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_checks():
    from autograder.authoring import registry
    from autograder.check import load_references, verify
    from autograder.running import materialize
    from readheads import load_model

    model = load_model("smollm2-135m", device="cpu", quiet=True)
    print("check call (visible case), median of 20, the solution as the answer; for model "
          "exercises against one call of the solution on the same case:")
    for chapter in registry.chapters():
        for exercise in registry.exercises(chapter):
            sources = {"model": model} if exercise.needs_model else {}
            verify(exercise.id, function=exercise.solution, **sources)  # warm: load references
            check = median_seconds(lambda: verify(exercise.id, function=exercise.solution,
                                                  **sources), 5 if exercise.needs_model else 20)
            line = f"  {exercise.id:34s} check {check * 1000:9.1f} ms"
            if exercise.needs_model:
                case = load_references(chapter, sources).exercises[exercise.id].cases[0]
                kwargs = materialize(case.arguments, model, {})
                call = median_seconds(lambda: exercise.solution(**kwargs), 5)
                line += f"   solution {call * 1000:9.1f} ms   ratio {check / call:5.2f}"
            print(line)


def timed_run(command, **kwargs) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, **kwargs)
    return time.perf_counter() - start


def bench_loading():
    code = "from readheads import load_model; load_model('{}', device='cpu', quiet=True)"
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "COURSE_CACHE_DIR": cache}
        for name in ("smollm2-135m", "gpt2-test"):
            first = timed_run([sys.executable, "-c", code.format(name)], env=env)
            cached = timed_run([sys.executable, "-c", code.format(name)], env=env)
            print(f"load {name:13s} first (convert/build + boot): {first:5.1f} s   "
                  f"cached: {cached:5.1f} s   (each in a fresh Python process)")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HOME": tempfile.mkdtemp()}
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code.format("gpt2-small")], env=env, capture_output=True)
    print(f"gpt2-small without the Hub fails after {time.perf_counter() - start:.1f} s")


def bench_first_check():
    """What a chapter's first check costs where no references are stored for the model (GPT-2
    small on a fresh runtime, unless the published wheel carries them): the builder's process,
    timed per chapter on gpt2-test (GPT-2 small's shape, random weights; BENCH_MODEL for
    another), model load included."""
    from autograder.authoring import registry

    model = os.environ.get("BENCH_MODEL", "gpt2-test")
    print(f"first check's reference build on {model}, per chapter (a fresh process each):")
    for chapter in registry.chapters():
        with tempfile.TemporaryDirectory() as out:
            seconds = timed_run([sys.executable, "-m", "autograder", "build", "--model", model,
                                 "--chapter", chapter, "--out", out], cwd=ROOT)
        print(f"  {chapter:14s} {seconds:6.1f} s")


def bench_grading():
    """Executing Chapter 1's solution notebook vs grading it with nbgrader and the sealed
    grader; then a class of students graded one at a time vs two side by side."""
    chapter = "ch1_attention"
    source = ROOT / "exercises" / "source" / chapter / f"{chapter}.ipynb"
    from autograder.authoring.notebooks import tool_env

    env = tool_env(COURSE_MODEL="smollm2-135m")
    bin_dir = Path(sys.executable).parent
    with tempfile.TemporaryDirectory() as course:
        course = Path(course)
        execute = timed_run([bin_dir / "jupyter", "nbconvert", "--to", "notebook", "--execute",
                             str(source), "--output-dir", str(course / "executed")], env=env)
        shutil.copy(ROOT / "exercises" / "nbgrader_config.py", course)
        shutil.copytree(source.parent, course / "source" / chapter)
        nbgrader = [sys.executable, "-m", "nbgrader"]
        timed_run(nbgrader + ["generate_assignment", chapter], cwd=course, env=env)
        timed_run([sys.executable, "-m", "autograder", "build", "--model", "smollm2-135m",
                   "--model", "gqa-test", "--model", "gpt2-mini-test", "--seed", "1", "--chapter", chapter,
                   "--out", str(course / "hidden_references")], env=env)
        students = [f"student{i}" for i in range(6)]
        for student in students:
            submitted = course / "submitted" / student / chapter
            submitted.mkdir(parents=True)
            shutil.copy(source, submitted)
        timed_run(nbgrader + ["db", "student", "add", "student0"], cwd=course, env=env)
        grade = timed_run(nbgrader + ["autograde", chapter, "--student", "student0"],
                          cwd=course, env=env)
        print(f"Chapter 1 solution notebook on smollm2-135m: execute {execute:.1f} s, "
              f"nbgrader autograde (sealed) {grade:.1f} s (ratio {grade / execute:.2f})")
        grade_class = [sys.executable, "-m", "autograder", "grade", str(course / "submitted"),
                       "--assignment", chapter, "--hidden", str(course / "hidden_references")]
        one = timed_run(grade_class + ["--jobs", "1", "--out", str(course / "g1.csv")], env=env)
        two = timed_run(grade_class + ["--jobs", "2", "--out", str(course / "g2.csv")], env=env)
    n = len(students)
    print(f"grading {n} students (python -m autograder grade): --jobs 1 {one:.1f} s "
          f"({n / one * 60:.1f}/min), --jobs 2 {two:.1f} s ({n / two * 60:.1f}/min): "
          f"throughput x{one / two:.2f} on {os.cpu_count()} cores")


def bench_ablation():
    from readheads import load_model
    from solutions.ch2_induction import (head_ablation_loss_increase,
                                         head_ablation_loss_increase_slow, repeated_random_tokens)

    model = load_model("smollm2-135m", device="cpu", quiet=True)
    tokens = repeated_random_tokens(model, 50, 2, seed=0)  # as in the Chapter 2 notebook
    layers = [0, 15, 29]
    start = time.perf_counter()
    slow = head_ablation_loss_increase_slow(model, tokens, "zero", layers=layers)
    slow_seconds = time.perf_counter() - start
    start = time.perf_counter()
    fast = head_ablation_loss_increase(model, tokens, "zero", layers=layers)
    fast_seconds = time.perf_counter() - start
    start = time.perf_counter()
    head_ablation_loss_increase(model, tokens, "zero")
    full_seconds = time.perf_counter() - start
    n_layers = model.cfg.n_layers
    print(f"ablation sweep, smollm2-135m, {tuple(tokens.shape)} tokens, zero ablation:")
    print(f"  {len(layers)} layers: one head at a time {slow_seconds:.1f} s, batched "
          f"{fast_seconds:.1f} s: speed-up {slow_seconds / fast_seconds:.2f}x, largest difference "
          f"{(slow - fast).abs().max().item():.1e}")
    print(f"  all {n_layers} layers batched: {full_seconds:.0f} s (one head at a time, "
          f"extrapolated: {slow_seconds / len(layers) * n_layers:.0f} s)")


def bench_patching():
    """Chapter 3's sweeps against the plain loop (one full forward pass per patch), on the
    GPU when there is one, with the Chapter 3 notebook's sizes (8 prompts)."""
    import torch

    from readheads import load_model
    from solutions.ch3_circuits import (patch_residual_sweep, patching_setup,
                                        residual_sweep_one_patch_per_forward)

    torch.set_grad_enabled(False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    model = load_model("smollm2-135m", device=device, quiet=True)
    name = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"residual stream sweep [layer, position], smollm2-135m, 8 prompts, all layers, on {name}:")
    for kind in ("abc", "swapped"):
        clean, corrupted, metric = patching_setup(model, 8, 0, kind)
        patch_residual_sweep(model, clean, corrupted, metric, layers=[0])  # warm up
        timings, results = {}, {}
        for label, sweep in (("one patch per forward", residual_sweep_one_patch_per_forward),
                             ("batched", patch_residual_sweep)):
            if device == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            results[label] = sweep(model, clean, corrupted, metric)
            if device == "cuda":
                torch.cuda.synchronize()
            timings[label] = time.perf_counter() - start
        loop, batched = timings.values()
        difference = (results["batched"] - results["one patch per forward"]).abs().max().item()
        print(f"  {kind:8s} corruption {tuple(clean.tokens.shape)}: one patch per forward {loop:7.1f} s, "
              f"batched {batched:6.1f} s: speed-up {loop / batched:5.1f}x, largest difference {difference:.1e}")


def _peak_memory_mib(function) -> tuple[float, float]:
    """(seconds, peak memory in MiB) of function(): the GPU allocator's peak on CUDA; on the
    CPU, this process's peak resident set during the call above what it held before (Linux:
    the peak is reset through /proc/self/clear_refs)."""
    import torch

    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    before = _resident_mib("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := current resident set
    start = time.perf_counter()
    function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
        return time.perf_counter() - start, torch.cuda.max_memory_allocated() / 2**20
    return time.perf_counter() - start, _resident_mib("VmHWM") - before


def _resident_mib(field: str) -> float:
    """VmRSS (now) or VmHWM (peak since the last reset) of this process, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise KeyError(field)


def _matmul_peak(shape: tuple[int, int, int], dtype, device: str, synchronize) -> float:
    """FLOP/s of one (m x k) @ (k x n) multiply in dtype, repeated: this machine's peak."""
    import torch

    m, k, n = shape
    a, b = torch.randn(m, k, device=device, dtype=dtype), torch.randn(k, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    synchronize()
    start, repeats = time.perf_counter(), 20 if device == "cpu" else 200
    for _ in range(repeats):
        a @ b
    synchronize()
    return 2 * m * k * n * repeats / (time.perf_counter() - start)


def bench_sae():
    """Chapter 4: harvesting against the forward pass it stops early, and SAE training, each
    in float32 and with bfloat16 autocast, against this machine's measured matrix-multiply
    peak in that precision. BENCH_MODEL picks the model (default smollm2-135m; gpt2-test is
    GPT-2 small's shape with random weights)."""
    import torch

    from readheads import load_model
    from readheads.corpus import load_corpus, token_rows
    from readheads.harvest import ActivationsInMemory, activations_at, harvest
    from readheads.sae import SAEConfig
    from readheads.sae_training import COURSE_SAE, TrainingConfig, train_sae

    device = "cuda" if torch.cuda.is_available() else "cpu"
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    name = os.environ.get("BENCH_MODEL", "smollm2-135m")
    model = load_model(name, device=device, quiet=True)
    layer = COURSE_SAE["layer"] if name == COURSE_SAE["model"] else model.cfg.n_layers // 2
    hook = f"blocks.{layer}.hook_resid_pre"
    rows = token_rows(model.tokenizer, load_corpus(n_documents=400), 128).tokens[:512 if device == "cuda" else 64]
    torch.set_grad_enabled(False)
    activations_at(model, rows[:8], hook)  # warm up
    synchronize = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    # Per token, a multiply-add for each weight of the blocks before the hook (attention's
    # scores over 128 positions add about 2%).
    weights = sum(p.numel() for block in model.blocks[:layer] for p in block.parameters() if p.dim() == 2)

    def tokens_per_second(function, batch=32):
        start = time.perf_counter()
        for part in rows.split(batch):
            function(part)
        synchronize()
        return rows[:, 1:].numel() / (time.perf_counter() - start)

    print(f"harvest at {hook} (layer {layer} of {model.cfg.n_layers}), {name}, {where}:")
    full = tokens_per_second(lambda t: model(t.to(device)))
    for autocast in (None, "bfloat16"):
        dtype = getattr(torch, autocast or "float32")
        peak = _matmul_peak((4096, model.cfg.d_model, model.cfg.d_model * 3), dtype, device, synchronize)
        stopped = tokens_per_second(lambda t: activations_at(model, t, hook, autocast))
        print(f"  {autocast or 'float32':8}: stopped at the hook {stopped:8.0f} tokens/s "
              f"({stopped / full:.2f}x the full float32 pass); {2 * weights * stopped / 1e9:6.0f} "
              f"GFLOP/s of a {peak / 1e9:5.0f} GFLOP/s matmul peak: {2 * weights * stopped / peak:.0%}")
    with tempfile.TemporaryDirectory() as folder:
        seconds, memory = _peak_memory_mib(lambda: harvest(model, rows, hook, Path(folder),
                                                           autocast="bfloat16", progress=False))
    print(f"  harvest() to disk (bfloat16 autocast, float16 shards): "
          f"{rows[:, 1:].numel() / seconds:8.0f} tokens/s, peak memory +{memory:.0f} MiB")

    d_in, d_sae = model.cfg.d_model, COURSE_SAE["d_sae"]
    print(f"SAE training, {d_in} -> {d_sae} features, Adam, {where}:")
    for autocast in (None, "bfloat16"):
        for batch in (COURSE_SAE["batch_size"], 4096):
            peak = _matmul_peak((batch, d_in, d_sae), getattr(torch, autocast or "float32"), device, synchronize)
            data = torch.randn(batch * (20 if device == "cpu" else 400), d_in, device=device) * 5
            config = TrainingConfig(d_sae=d_sae, l1_coefficient=3.0, batch_size=batch, lr=1e-3,
                                    normalize_inputs=True, autocast=autocast)
            with torch.enable_grad():
                train_sae(ActivationsInMemory(data[:batch * 5]), config, SAEConfig(d_in=d_in, d_sae=d_sae), progress=False)
                seconds, memory = _peak_memory_mib(lambda: train_sae(
                    ActivationsInMemory(data), config, SAEConfig(d_in=d_in, d_sae=d_sae), progress=False))
            # Per token, five matmuls of d_in x d_sae: encoder and decoder forward, the decoder's
            # gradients (input and weight) and the encoder's weight gradient (the input needs none).
            flops = 5 * 2 * d_in * d_sae * len(data) / seconds
            print(f"  {autocast or 'float32':8} batch {batch:5d}: {len(data) / seconds:9.0f} tokens/s = "
                  f"{flops / 1e9:7.1f} GFLOP/s; matmul peak {peak / 1e9:7.1f} GFLOP/s "
                  f"({batch}x{d_in} @ {d_in}x{d_sae}): {flops / peak:.0%} of peak; peak memory +{memory:.0f} MiB")


def bench_discovery():
    """Chapter 5: attribution patching against the exact sweeps it estimates (Chapter 3's,
    batched), and one pruning search, on the GPU when there is one. BENCH_MODEL picks the
    model (default smollm2-135m)."""
    import torch

    from readheads import load_model
    from readheads.ioi import patching_setup
    from readheads.sweeps import head_output_sweep, layer_output_sweep, residual_sweep
    from readheads.edges import KINDS, candidate_edges
    from solutions.ch5_discovery import (attribution_head_outputs, attribution_layer_outputs,
                                         attribution_residual, edge_attribution, edge_attribution_logits,
                                         metric_with_edges_removed, pearson_correlation, prune_edges,
                                         prune_heads)

    torch.set_grad_enabled(False)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    name = os.environ.get("BENCH_MODEL", "smollm2-135m")
    model = load_model(name, device=device, quiet=True)
    where = torch.cuda.get_device_name() if device == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    clean, corrupted, metric = patching_setup(model, 8, 0)
    print(f"attribution patching against exact activation patching, {name}, 8 prompts, on {where}:")

    def timed(function):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = function(model, clean, corrupted, metric)
        if device == "cuda":
            torch.cuda.synchronize()
        return result.cpu(), time.perf_counter() - start

    attribution_head_outputs(model, clean, corrupted, metric)  # warm up
    for label, exact_sweep, attribution in (("residual stream", residual_sweep, attribution_residual),
                                            ("layer outputs", layer_output_sweep, attribution_layer_outputs),
                                            ("head outputs", head_output_sweep, attribution_head_outputs)):
        (exact, exact_seconds), (estimate, seconds) = timed(exact_sweep), timed(attribution)
        print(f"  {label:16s} exact {exact_seconds:6.1f} s, attribution {seconds:5.2f} s: "
              f"{exact_seconds / seconds:5.1f}x faster; correlation {float(pearson_correlation(exact, estimate)):.3f}")
    layers = list(range(model.cfg.n_layers))
    circuit, seconds = timed(lambda *args: prune_heads(*args, 0.02, layers))
    print(f"  pruning all {model.cfg.n_layers * model.cfg.n_heads} heads at threshold 0.02: {seconds:.1f} s, "
          f"{int(circuit.sum())} heads kept")

    # Edges: every edge scored at once, against cutting each candidate edge alone.
    scores, seconds = timed(lambda *args: torch.cat([edge_attribution(*args, kind).flatten() for kind in KINDS[:3]]
                                                    + [edge_attribution_logits(*args).flatten()]))
    top = attribution_head_outputs(model, clean, corrupted, metric).abs().flatten().topk(8).indices
    edges = candidate_edges(model, [divmod(int(i), model.cfg.n_heads) for i in top])
    _, corrupted_cache = model.run_with_cache(corrupted.tokens)
    cut_one, cut_seconds = timed(lambda *args: torch.stack([
        metric_with_edges_removed(model, clean, corrupted_cache, metric, edge[None]) for edge in edges]))
    print(f"  edge attribution, all {int((scores != 0).sum())} edges: {seconds:.2f} s; cutting each of the "
          f"{len(edges)} edges among the 8 most attributed heads alone: {cut_seconds:.1f} s "
          f"({cut_seconds / len(edges) * 1000:.0f} ms an edge; all edges would take "
          f"{cut_seconds / len(edges) * int((scores != 0).sum()) / 60:.0f} min)")
    kept, seconds = timed(lambda *args: prune_edges(*args, 0.02, edges))
    print(f"  pruning those {len(edges)} edges at threshold 0.02: {seconds:.1f} s, {int(kept.sum())} edges kept")


def bench_truth():
    """Chapter 6's raw material on SmolLM2: which families of statements the model knows, and
    how well a difference-of-means probe on the residual stream separates true from false
    statements of the items it knows (held-out items, held-out families)."""
    import torch

    from readheads import load_model, truth

    torch.set_grad_enabled(False)
    model = load_model("smollm2-135m", device="cpu", quiet=True)
    items = truth.truth_items(model)
    knows = truth.completion_margin(model, items) > 0
    print("items the model knows (true completion's logit above the false one's):")
    for index, name in enumerate(truth.FAMILIES):
        chosen = knows[items.family == index]
        print(f"  {name:10s} {int(chosen.sum()):3d} of {len(chosen):3d}")
    known = truth.select(items, knows)
    keep = knows.nonzero().flatten()
    statements = truth.truth_statements(model, known)
    names = [f"blocks.{layer}.hook_resid_post" for layer in range(model.cfg.n_layers)]
    _, cache = model.run_with_cache(statements.tokens, names_filter=lambda name: name in names)
    label, family, rows = statements.label.bool(), statements.family, torch.arange(len(statements.label))
    held_out_items = torch.isin(statements.item, torch.randperm(len(keep), generator=torch.Generator().manual_seed(0))[: len(keep) // 2])

    def accuracy(acts, train, test):
        true_mean, false_mean = acts[train & label].mean(0), acts[train & ~label].mean(0)
        direction = true_mean - false_mean
        scores = (acts - (true_mean + false_mean) / 2) @ direction
        return float(((scores > 0) == label)[test].float().mean())

    print(f"difference-of-means probe on {len(rows)} statements, accuracy by layer "
          "(held-out items | held-out family, mean over families | the same, each family centred):")
    for offset, where in ((1, "the completion token"), (0, "the full stop")):
        print(f"  read at {where}:")
        for layer in range(0, model.cfg.n_layers, 3):
            acts = cache[names[layer]][rows, statements.end_pos - offset]
            centred = acts.clone()
            for f in family.unique():
                centred[family == f] -= acts[family == f].mean(0)
            items_split = accuracy(acts, ~held_out_items, held_out_items)
            by_family = [accuracy(acts, family != f, family == f) for f in family.unique()]
            by_family_centred = [accuracy(centred, family != f, family == f) for f in family.unique()]
            print(f"    layer {layer:2d}: {items_split:.2f} | {sum(by_family) / len(by_family):.2f} | "
                  f"{sum(by_family_centred) / len(by_family_centred):.2f}")

    # Cause, not description: add the layer-12 direction (read at the completion token) at the
    # prefix's last token, and see whether the model prefers true completions more or less.
    layer = 12
    acts = cache[names[layer]][rows, statements.end_pos - 1]
    direction = acts[label].mean(0) - acts[~label].mean(0)
    random_direction = torch.randn(direction.shape, generator=torch.Generator().manual_seed(0))
    random_direction *= direction.norm() / random_direction.norm()
    base = truth.completion_margin(model, known)

    def steered_margin(vector):
        def add(resid, hook):
            resid = resid.clone()
            resid[torch.arange(resid.shape[0]), known.end_pos[:resid.shape[0]]] += vector
            return resid
        with model.hooks(fwd_hooks=[(names[layer], add)]):
            return truth.completion_margin(model, known, batch_size=len(known.end_pos))

    print(f"steering the {len(base)} known items at layer {layer} (direction norm {float(direction.norm()):.1f}, "
          f"residual norm {float(acts.norm(dim=-1).mean()):.0f}): share still preferring the true "
          "completion, and the mean change of its logit margin")
    for scale in (1, 2, 4):
        for name, vector in (("+ truth", direction), ("- truth", -direction), ("random", random_direction)):
            margin = steered_margin(scale * vector)
            print(f"  {scale} x {name:7s}: {float((margin > 0).float().mean()):.2f}, {float((margin - base).mean()):+.2f}")

    # The toy deception test's first question: told to lie, does the model's answer change?
    for instruction in ("Always complete sentences with a false answer. ",
                        "<|im_start|>system\nYou always lie. Every answer you give is false.<|im_end|>\n"
                        "<|im_start|>user\nComplete the sentence.<|im_end|>\n<|im_start|>assistant\n"):
        told = truth.with_context(known, model.tokenizer.encode(instruction, add_special_tokens=False))
        margin = truth.completion_margin(model, told)
        print(f"told to lie ({instruction[:30]!r}...): prefers the true completion on "
              f"{float((margin > 0).float().mean()):.2f} of the items it knows")


GROUPS = {"checks": bench_checks, "first-check": bench_first_check, "loading": bench_loading,
          "grading": bench_grading, "ablation": bench_ablation, "patching": bench_patching,
          "sae": bench_sae, "discovery": bench_discovery, "truth": bench_truth}

if __name__ == "__main__":
    for name in sys.argv[1:] or GROUPS:
        GROUPS[name]()
