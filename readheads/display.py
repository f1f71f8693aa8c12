"""Say which model produced a notebook's outputs, and show attention: matplotlib plots and
interactive circuitsvis views that work offline."""

from __future__ import annotations

import matplotlib.pyplot as plt
import torch


def model_banner(model) -> str:
    """An HTML box naming the model whose outputs follow; shown at the top of every chapter."""
    info = model.course_info
    note = ("" if info.name == "gpt2-small" else
            "<br>The course text is written for <b>GPT-2 small</b>; head indices and numbers "
            "below come from this model instead and will differ from GPT-2's.")
    return _banner(info.display_name, f"<code>[{info.key}]</code>, {info.source}.{note}")


def _banner(source: str, detail: str) -> str:
    return (f'<div style="border:2px solid #c60;padding:8px;margin:8px 0;background:#fff6ea">'
            f"<b>Outputs on this page come from: {source}</b> {detail}</div>")


def show_model(model) -> None:
    """Display `model_banner` in Jupyter (print it elsewhere)."""
    _show(model_banner(model), model.course_info.display_name)


def show_source(source: str, detail: str = "") -> None:
    """The same box for a page whose outputs come from something other than a course model
    (e.g. the committed training runs of "How induction heads form")."""
    _show(_banner(source, detail), source)


def _show(html: str, source: str) -> None:
    try:
        from IPython.display import HTML, display

        display(HTML(html))
    except ImportError:
        print(f"Outputs come from: {source}")


def plot_pattern(pattern: torch.Tensor, tokens: list[str], title: str = "", ax=None):
    """Heatmap of one head's attention pattern [query_pos, key_pos], labelled by token."""
    ax = ax or plt.subplots(figsize=(0.35 * len(tokens) + 2, 0.35 * len(tokens) + 1.5))[1]
    image = ax.imshow(pattern.detach().cpu(), cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=8)
    ax.set_yticks(range(len(tokens)), tokens, fontsize=8)
    ax.set_xlabel("key (attended to)")
    ax.set_ylabel("query (attending)")
    ax.set_title(title)
    plt.colorbar(image, ax=ax, fraction=0.046)
    return ax


class _Html:
    """HTML that Jupyter, Colab and the book show as it is (and `str` gives the source)."""

    def __init__(self, html: str):
        self.html = html

    def _repr_html_(self) -> str:
        return self.html

    def __str__(self) -> str:
        return self.html


def attention_view(patterns: torch.Tensor, tokens: list[str], head_names: list[str] | None = None):
    """Interactive view of several heads' attention patterns [head, query_pos, key_pos]: hover
    over a head to zoom in, click a head to keep it (circuitsvis).

    The view carries circuitsvis' JavaScript in the page (about 1.3 MB) instead of loading it
    from a CDN, so it works offline: in Jupyter, on Colab and in the built book."""
    import circuitsvis as cv

    patterns = patterns.detach().float().cpu()
    if patterns.ndim != 3 or patterns.shape[1:] != (len(tokens), len(tokens)):
        raise ValueError(f"attention_view wants patterns [head, query_pos, key_pos] for "
                         f"{len(tokens)} tokens, got shape {tuple(patterns.shape)}")
    view = cv.attention.attention_heads(attention=patterns, tokens=tokens,
                                        attention_head_names=head_names)
    return _Html(view.local_src)


def plot_head_scores(scores: torch.Tensor, title: str, ax=None, cmap: str = "viridis"):
    """Layer x head heatmap of one score per head, e.g. a previous-token score."""
    scores = scores.detach().cpu()
    ax = ax or plt.subplots(figsize=(0.4 * scores.shape[1] + 2, 0.22 * scores.shape[0] + 1.5))[1]
    image = ax.imshow(scores, cmap=cmap, aspect="auto")
    ax.set_xlabel("head")
    ax.set_ylabel("layer")
    ax.set_title(title)
    plt.colorbar(image, ax=ax)
    return ax


def top_heads(scores: torch.Tensor, k: int = 5) -> list[tuple[str, float]]:
    """The k highest-scoring heads as ("layer.head", score), best first."""
    values, flat = scores.flatten().topk(k)
    n_heads = scores.shape[1]
    return [(f"{i // n_heads}.{i % n_heads}", round(v, 3)) for i, v in zip(flat.tolist(), values.tolist())]
