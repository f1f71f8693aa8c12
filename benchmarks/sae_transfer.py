"""The course's SAEs on text they were trained on and on text they never saw.

    python benchmarks/sae_transfer.py [--rows 32]

Measures each committed SmolLM2 SAE (`readheads.sae_eval.evaluate_sae`) on `--rows` held-out
rows of the news corpus it was trained on (the last rows, as its manifest's metrics are) and
on the plain-text docs of Python's standard library (`load_corpus("python-docs")`: two rows
of 128 tokens from each of 16 modules), each with the SAE's own norm limit (the default) and
with none (every token through the SAE). Not a test: it prints what it measures.
"""

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from readheads import load_model  # noqa: E402
from readheads.corpus import PYTHON_DOCS, load_corpus, token_rows  # noqa: E402
from readheads.sae import committed_saes, load_sae  # noqa: E402
from readheads.sae_eval import evaluate_sae  # noqa: E402

CONTEXT = 128


def python_docs_rows(tokenizer, per_module: int = 2) -> torch.Tensor:
    """The first `per_module` rows of each module's docs, so every module counts equally."""
    return torch.cat([token_rows(tokenizer, [document], CONTEXT, n_rows=per_module).tokens
                      for document in load_corpus(PYTHON_DOCS)])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=32, help="held-out news rows (default 32)")
    args = parser.parse_args(argv)
    torch.set_num_threads(2)
    model = load_model("smollm2-135m", device="cpu")
    news = token_rows(model.tokenizer, load_corpus(), CONTEXT).tokens[-args.rows:]
    texts = {"news (held out)": news, "Python docs (never trained on)": python_docs_rows(model.tokenizer)}
    print(f"{'SAE':34} {'text':32} {'norm limit':>10} {'tokens':>7} {'var. expl.':>10} "
          f"{'CE recovered':>12} {'L0':>6}")
    for name in committed_saes():
        sae = load_sae(name)
        for text, rows in texts.items():
            for limit in (sae.norm_limit, None):
                m = evaluate_sae(model, sae, rows, norm_limit=limit, progress=False)
                print(f"{name:34} {text:32} {limit or 'none':>10.6} {m['tokens']:>7} "
                      f"{m['variance_explained']:>10.3f} {m['ce_loss_recovered']:>12.3f} {m['l0']:>6.1f}",
                      flush=True)


if __name__ == "__main__":
    main()
