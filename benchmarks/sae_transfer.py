"""The course's SAEs on text like their training text and on text families they never saw.

    python benchmarks/sae_transfer.py [--rows 32]

For each committed SmolLM2 SAE: its metrics on held-out text of its training corpus (from its
manifest, measured when it was trained), then `readheads.sae_eval.evaluate_sae` on `--rows`
rows of e-mail (`load_corpus("email", split="held-out")`) and of the plain-text docs of
Python's standard library (`load_corpus("python-docs")`: two rows of 128 tokens from each of
16 modules), two families no course SAE trained on, each with the SAE's own norm limit (the
default) and with none (every token through the SAE). Not a test: it prints what it measures.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from readheads import load_model  # noqa: E402
from readheads.corpus import held_out_rows  # noqa: E402
from readheads.sae import committed_saes, load_sae  # noqa: E402
from readheads.sae_eval import evaluate_sae  # noqa: E402

FAMILIES = {"e-mail": "email", "Python docs": "python-docs"}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=32, help="rows of each family (default 32)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model("smollm2-135m", device="cpu")
    texts = {label: held_out_rows(model.tokenizer, name, args.rows) for label, name in FAMILIES.items()}
    print(f"{'SAE':34} {'text':36} {'norm limit':>10} {'tokens':>7} {'var. expl.':>10} "
          f"{'CE recovered':>12} {'L0':>6}")
    for name in committed_saes():
        sae = load_sae(name)
        recorded = sae.manifest["metrics_on_held_out_rows"]
        recorded = recorded.get("all_sources", recorded)
        corpus = sae.manifest["data"]["corpus"].split(" (")[0]
        print(f"{name:34} {corpus + ' held out (manifest)':36} {sae.norm_limit:>10.6} {recorded['tokens']:>7} "
              f"{recorded['variance_explained']:>10.3f} {recorded['ce_loss_recovered']:>12.3f} {recorded['l0']:>6.1f}")
        for text, rows in texts.items():
            for limit in (sae.norm_limit, None):
                m = evaluate_sae(model, sae, rows, norm_limit=limit, progress=False)
                print(f"{name:34} {text + ' (never trained on)':36} {limit or 'none':>10.6} {m['tokens']:>7} "
                      f"{m['variance_explained']:>10.3f} {m['ce_loss_recovered']:>12.3f} {m['l0']:>6.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
