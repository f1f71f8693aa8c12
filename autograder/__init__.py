"""Check exercise answers against stored reference tensors; glue for nbgrader."""

from .check import CheckFailed, check

__all__ = ["CheckFailed", "check"]
