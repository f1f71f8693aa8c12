"""Runs a notebook's cells the way a Colab runtime does, inside the simulated Colab environment
of test_colab.py: `google.colab` is imported before any cell (the stand-in), and IPython runs
the cells, so `%pip` works. Uses only what a fresh Colab runtime has (IPython); the course
itself arrives with the install cell.

    python colab_session.py CELLS.json REPORT.json

CELLS.json: [cell source, ...]. REPORT.json: [{"seconds", "output", "error"}, ...], one per cell
run; the run stops at the first failing cell.
"""

import contextlib
import io
import json
import sys
import time

import google.colab  # noqa: F401  (Colab imports it before the first cell)
from IPython.core.interactiveshell import InteractiveShell


def run_cells(shell: InteractiveShell, cells: list[str]) -> list[dict]:
    results = []
    for source in cells:
        output = io.StringIO()
        start = time.perf_counter()
        with contextlib.redirect_stdout(output):
            outcome = shell.run_cell(source)
        error = outcome.error_before_exec or outcome.error_in_exec
        results.append({"seconds": time.perf_counter() - start, "output": output.getvalue(),
                        "error": None if error is None else f"{type(error).__name__}: {error}"})
        if error is not None:
            break
    return results


def main(cells_path: str, report_path: str) -> None:
    cells = json.load(open(cells_path))
    json.dump(run_cells(InteractiveShell.instance(), cells), open(report_path, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
