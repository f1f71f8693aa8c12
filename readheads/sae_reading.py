"""Read an SAE feature: where it fires, what it writes, what changes without it.

`feature_dashboard` puts a feature's evidence in one HTML block (no script, no external
file, so it shows the same in Jupyter, on Colab and in the built book): its activation
histogram, its top contexts with every token shaded by the activation there, and the tokens
its decoder direction promotes and suppresses. `generate` samples greedily with hooks (for
steering). `best_label` is the automatic labelling score's front end; `LLMLabeller` is where
an online user plugs in a language model to write labels.
"""

from __future__ import annotations

import html
from typing import Callable, Protocol

import torch

from .display import _Html


def _token_text(model, token: int) -> str:
    return html.escape(model.to_string(torch.tensor([token]))).replace("\n", "⏎") or "∅"


def _histogram_svg(values: torch.Tensor, bins: int = 30, width: int = 320, height: int = 90) -> str:
    """Inline SVG bars of the nonzero activations' histogram."""
    values = values[values > 0].float().cpu()
    if len(values) == 0:
        return "<i>never fires on these tokens</i>"
    counts = torch.histc(values, bins=bins, min=0, max=float(values.max()))
    bar = width / bins
    rects = "".join(f'<rect x="{i * bar:.1f}" y="{height - 14 - h:.1f}" width="{bar - 1:.1f}" '
                    f'height="{h:.1f}" fill="#e08020"/>'
                    for i, h in enumerate((counts / counts.max() * (height - 18)).tolist()))
    return (f'<svg width="{width}" height="{height}" role="img" aria-label="histogram of the '
            f'feature\'s nonzero activations">{rects}<text x="0" y="{height - 2}" '
            f'font-size="10">0</text><text x="{width}" y="{height - 2}" font-size="10" '
            f'text-anchor="end">{float(values.max()):.3g}</text></svg>')


def context_html(model, tokens: torch.Tensor, activations: torch.Tensor, position: int,
                 before: int = 12, after: int = 3) -> str:
    """A row's tokens around `position`, each shaded by its activation (the maximum of the
    row's window darkest), the token at `position` underlined."""
    start, end = max(1, position - before), min(len(tokens), position + after + 1)
    top = float(activations[start:end].max()) or 1.0
    spans = []
    for p in range(start, end):
        alpha = max(0.0, float(activations[p]) / top)
        style = f"background:rgba(224,128,32,{alpha:.2f})" + (";border-bottom:2px solid #000" if p == position else "")
        spans.append(f'<span style="{style}" title="{float(activations[p]):.3g}">{_token_text(model, int(tokens[p]))}</span>')
    return "".join(spans)


def top_contexts_html(model, tokens: torch.Tensor, activations: torch.Tensor, k: int) -> str:
    """The k contexts where a feature (activations [row, pos]; BOS skipped) fires hardest,
    as table rows: the activation, then the shaded context."""
    body = activations[:, 1:]
    count = min(k, int((body > 0).sum()))
    if not count:
        return "<tr><td></td><td><i>never fires on these tokens</i></td></tr>"
    values, flat = body.flatten().topk(count)
    rows_html = ""
    for value, index in zip(values.tolist(), flat.tolist()):
        row, position = index // body.shape[1], index % body.shape[1] + 1
        rows_html += (f'<tr><td style="text-align:right;padding-right:8px">{value:.3g}</td>'
                      f'<td style="font-family:monospace;white-space:pre-wrap">'
                      f'{context_html(model, tokens[row], activations[row], position)}</td></tr>')
    return rows_html


def contexts_table(model, tokens: torch.Tensor, features: dict[str, torch.Tensor], k: int = 3):
    """Related features side by side: for each (title -> activations [row, pos]), its k top
    contexts. To see, say, how one feature of a small SAE splits in a larger one."""
    sections = "".join(f'<tr><th colspan="2" style="text-align:left;padding-top:6px">'
                       f'{html.escape(title)}</th></tr>{top_contexts_html(model, tokens, acts, k)}'
                       for title, acts in features.items())
    return _Html(f'<table style="font-size:13px">{sections}</table>')


def feature_dashboard(model, sae, feature: int, tokens: torch.Tensor, activations: torch.Tensor,
                      k: int = 8, n_logits: int = 8, title: str | None = None):
    """One feature's dashboard.

    tokens: [row, pos] the model read; activations: [row, pos] this feature's activation at
    each token (position 0, BOS, is skipped). Shows the histogram of its nonzero activations,
    its k top contexts, and the n_logits tokens its decoder row promotes and suppresses most
    through the unembedding.
    """
    body = activations[:, 1:]
    frequency = float((body > 0).float().mean())
    rows_html = top_contexts_html(model, tokens, activations, k) if (body > 0).any() else ""
    effects = sae.W_dec[feature].to(model.W_U.device) @ model.W_U
    up, down = effects.topk(n_logits), effects.topk(n_logits, largest=False)

    def token_list(top, colour):
        return "".join(f'<div><span style="background:{colour}">{_token_text(model, t)}</span> '
                       f'{v:+.2f}</div>' for v, t in zip(top.values.tolist(), top.indices.tolist()))

    heading = html.escape(title or f"Feature {feature}")
    return _Html(
        f'<div style="border:1px solid #bbb;border-radius:6px;padding:10px;margin:8px 0;font-size:13px">'
        f'<div style="font-weight:bold;font-size:15px">{heading}</div>'
        f'<div>fires on {frequency:.2%} of {body.numel():,} tokens; hook '
        f'<code>{html.escape(sae.cfg.hook_name)}</code></div>'
        f'<div style="display:flex;gap:24px;flex-wrap:wrap;margin-top:6px">'
        f'<div><div><b>Activations</b> (nonzero)</div>{_histogram_svg(body.flatten())}</div>'
        f'<div><div><b>Promotes</b></div>{token_list(up, "#cfe8cf")}</div>'
        f'<div><div><b>Suppresses</b></div>{token_list(down, "#f3d0d0")}</div></div>'
        f'<div style="margin-top:6px"><b>Top contexts</b> (the shaded token is where it fires; '
        f'underlined: the top activation)</div><table>{rows_html}</table></div>')


@torch.no_grad()
def generate(model, prompt: str, n_tokens: int = 20, fwd_hooks=()) -> str:
    """Greedy continuation of `prompt` (BOS prepended), with hooks on every forward pass."""
    ids = [model.tokenizer.bos_token_id] + model.tokenizer.encode(prompt, add_special_tokens=False)
    tokens = torch.tensor([ids], device=model.cfg.device)
    with model.hooks(fwd_hooks=list(fwd_hooks)):
        for _ in range(n_tokens):
            next_token = model(tokens)[0, -1].argmax()
            tokens = torch.cat([tokens, next_token.view(1, 1)], dim=1)
    return model.to_string(tokens[0, len(ids):])


class Labeller(Protocol):
    """Writes a label from a feature's top contexts (strings with the firing token marked)."""

    def __call__(self, contexts: list[str]) -> str: ...


class LLMLabeller:
    """A labeller backed by a language model you can reach (online): `complete` takes a prompt
    and returns the model's reply, e.g. a thin wrapper around your provider's client. The
    label is only a hypothesis: score it with `label_score` on held-out tokens."""

    PROMPT = ("Below are text snippets where one feature of a language model is active; the "
              "token where it is most active is marked with [[ ]]. In at most six words, say what "
              "the feature detects.\n\n{snippets}\n\nLabel:")

    def __init__(self, complete: Callable[[str], str]):
        self.complete = complete

    def __call__(self, contexts: list[str]) -> str:
        snippets = "\n".join(f"- {context}" for context in contexts)
        return self.complete(self.PROMPT.format(snippets=snippets)).strip().splitlines()[0]


def best_label(fires: torch.Tensor, labels: dict[str, torch.Tensor], score) -> tuple[str, tuple]:
    """The candidate label (name -> bool [tokens]) that best predicts where a feature fires,
    by the F1 of `score(fires, label_says)` -> (precision, recall, f1)."""
    scored = {name: tuple(float(v) for v in score(fires, says)) for name, says in labels.items()}
    name = max(scored, key=lambda n: scored[n][2])
    return name, scored[name]
