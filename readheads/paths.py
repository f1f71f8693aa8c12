"""Where the course keeps files it makes: converted models and built reference tensors."""

import os
from pathlib import Path

CACHE_ENV_VAR = "COURSE_CACHE_DIR"


def cache_dir() -> Path:
    """$COURSE_CACHE_DIR, else ~/.cache/reading-attention-heads (created on demand)."""
    path = Path(os.environ.get(CACHE_ENV_VAR) or Path.home() / ".cache" / "reading-attention-heads")
    path.mkdir(parents=True, exist_ok=True)
    return path
