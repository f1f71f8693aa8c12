"""Reading Attention Heads: course helpers (model loading, plots)."""

from .display import (attention_view, model_banner, plot_head_scores, plot_pattern, show_model,
                      show_source, top_heads)
from .models import ModelInfo, ModelUnavailableError, load_model

__all__ = ["ModelInfo", "ModelUnavailableError", "attention_view", "load_model", "model_banner",
           "plot_head_scores", "plot_pattern", "show_model", "show_source", "top_heads"]
