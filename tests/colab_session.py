"""Runs notebooks' cells the way a Colab runtime does, inside the simulated Colab environment
of test_colab.py: `google.colab` is imported before any cell (the stand-in), and IPython runs
the cells, so `%pip` works. Uses only what a fresh Colab runtime has (IPython); the course
itself arrives with the first notebook's install cell. Each notebook starts with an empty
namespace (as after a restart; imported modules stay, as they would not on Colab).

    python colab_session.py CELLS.json REPORT.json

CELLS.json: {notebook: [cell source, ...]}. REPORT.json: {notebook: [{"seconds", "output",
"error"}, ...]}, one entry per cell run; a notebook's run stops at its first failing cell.
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
    shell, report = InteractiveShell.instance(), {}
    for notebook, cells in json.load(open(cells_path)).items():
        shell.reset(new_session=False)
        report[notebook] = run_cells(shell, cells)
    json.dump(report, open(report_path, "w"), indent=1)


if __name__ == "__main__":
    main(*sys.argv[1:])
