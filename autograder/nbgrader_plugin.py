"""nbgrader's autograde step for this course: the sealed grader (see autograder/sealed.py).

exercises/nbgrader_config.py puts `SealedGrading` in place of nbgrader's `Execute`: the
notebook is not run in a kernel; every check cell gets the sealed grader's verdict.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from nbgrader.preprocessors import NbGraderPreprocessor
from traitlets import Bool, Float, List, Unicode

from .sealed import SECOND_MODELS, course_files, grade_answers, notebook_cells, set_verdicts


class SealedGrading(NbGraderPreprocessor):
    """Grades every check cell with the sealed grader. Configure in nbgrader_config.py."""

    model = Unicode(os.environ.get("COURSE_MODEL", "smollm2-135m"),
                    help="course model to grade on").tag(config=True)
    second_models = List(Unicode(), default_value=list(SECOND_MODELS),
                         help="model exercises must also pass these models' hidden cases "
                         "(sizes unlike the course model's); [] to switch off").tag(config=True)
    references_dir = Unicode("hidden_references", help="the instructor's hidden references "
                             "(python -m autograder build --seed ...)").tag(config=True)
    device = Unicode("", help="cpu or cuda (default: cuda when available)").tag(config=True)
    check_timeout = Float(120.0, help="the least time limit of one exercise, all cases, in "
                          "seconds (more where the solution is slow: ten times its time, "
                          "scaled to this machine)").tag(config=True)
    cell_timeout = Float(60.0, help="seconds for each cell of the notebook").tag(config=True)
    allow_unisolated = Bool(False, help="grade even where workers cannot be sandboxed (no "
                            "bubblewrap): submissions could then read the hidden references; "
                            "every verdict says so").tag(config=True)

    def preprocess(self, nb, resources):
        files = course_files(Path(self.references_dir))
        for changed in files.restore():
            self.log.warning("sealed grader: restored %s, changed by an earlier submission", changed)
        cells, exercise_ids = notebook_cells(nb)
        device = self.device or ("cuda" if torch.cuda.is_available() else "cpu")
        results = grade_answers(cells, exercise_ids, model_name=self.model,
                                hidden_dir=Path(self.references_dir), device=device,
                                second_models=self.second_models,
                                check_timeout=self.check_timeout, cell_timeout=self.cell_timeout,
                                allow_unisolated=self.allow_unisolated, log=self.log.info)
        set_verdicts(nb, results)
        for changed in files.restore():
            self.log.warning("sealed grader: restored %s, changed by the submission of %s",
                             changed, resources.get("nbgrader", {}).get("student"))
        return nb, resources
