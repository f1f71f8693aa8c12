"""Check exercise answers against stored reference sets; glue for nbgrader.

The runtime (this package's top level) imports neither the solutions nor the authoring tools
in `autograder.authoring`."""

from .check import CheckFailed, check

__all__ = ["CheckFailed", "check"]
