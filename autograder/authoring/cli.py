"""Course maintenance commands (`python -m autograder ...`).

    python -m autograder generate          rewrite the notebooks and the committed references
                                           (the only command that changes committed files);
                                           --chapter C rewrites only C's references
    python -m autograder build --model M   references for model M, in the user cache, or in
                                           --out DIR to distribute with a release; --seed S
                                           draws other (hidden) cases, for graders
    python -m autograder verify            fail if anything generated is out of sync: every
                                           reference set whose digest changed, and a seeded
                                           sample of the others (--sample N, --seed S);
                                           --all recomputes every set; --record stores
                                           today's digest in each set proven in sync
    python -m autograder grade SUBMITTED --assignment A --hidden DIR [--jobs N]
                                           grade a class with the sealed grader: nbgrader's
                                           SUBMITTED/<student>/A/*.ipynb -> a gradebook CSV;
                                           model exercises also on --second-models (gqa-test, gpt2-mini-test)
    python -m autograder gradescope --assignment A --hidden DIR --out autograder.zip
                                           a Gradescope autograder bundle for assignment A
    python -m autograder wheel --out DIR [--with-gpt2-small] [--references R] [--without-solutions]
                                           the course as a wheel, with GPT-2 small's
                                           references (built here: needs the Hub) or those
                                           in R added; without solutions, for credit
    python -m autograder student-book --out DIR
                                           the book with each exercise shown as its stub
    python -m autograder mutants [--chapter C] [--exercise E]
                                           mutation-test the checks: which small bugs in the
                                           solutions pass every case (authoring/mutants.py)
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from functools import partial
from pathlib import Path

from tqdm import tqdm

from .. import references
from ..check import BUILD_PROGRESS, advance
from ..sealed import SECOND_MODELS
from . import notebooks, registry
from .build import build
from .sync import references_out_of_sync

ROOT = Path(__file__).resolve().parents[2]
COMMITTED_MODELS = ("smollm2-135m", "gpt2-test")
MUTATION_SCORE_GOAL = 0.99


def rebuild_committed(chapters) -> None:
    """Rewrite the exercise index and the committed references of `chapters` from scratch (no
    stale file stays). Rebuilding a chapter whose solutions did not change only adds rounding
    noise, so pass the chapters you changed."""
    from readheads import load_model

    references.COMMITTED_DIR.mkdir(exist_ok=True)
    (references.COMMITTED_DIR / "index.json").write_text(json.dumps(registry.index(), indent=1) + "\n")
    for chapter in chapters:
        shutil.rmtree(references.COMMITTED_DIR / chapter, ignore_errors=True)
        build(chapter).save(references.COMMITTED_DIR / chapter)
    for name in COMMITTED_MODELS:
        model = load_model(name, device="cpu")
        for chapter in chapters:
            print("wrote", build(chapter, model).save(references.COMMITTED_DIR / chapter))


def build_references(model_names, out: Path | None, chapters, seed: int | None = None,
                     lines: bool = False) -> None:
    """References for each model in `out` (default: the user cache); pure ones too with out.
    A progress bar on stderr for each model set, or with `lines`, progress lines on stdout
    for the process that started this one (`autograder.check` draws the bar)."""
    from readheads import load_model

    directory = out or references.cache_dir() / "references"
    if directory.resolve().is_relative_to(references.COMMITTED_DIR.resolve()):
        raise SystemExit(f"{directory} holds the committed references: only "
                         "`python -m autograder generate` may write there. Choose another --out.")
    if out is not None:
        for chapter in chapters:
            _timed_build(out / chapter, chapter, seed=seed)
    for name in model_names:
        model = load_model(name, device="cpu")
        for chapter in chapters:
            _timed_build(directory / chapter, chapter, model, seed=seed, lines=lines)


def _timed_build(directory: Path, chapter: str, model=None, seed: int | None = None,
                 lines: bool = False) -> None:
    started = time.perf_counter()
    if model is None:
        path = build(chapter, seed=seed).save(directory)
    elif lines:
        path = build(chapter, model, seed=seed, progress=_progress_line).save(directory)
    else:
        with tqdm(desc=f"{chapter} on {model.course_info.name}", unit="run", leave=False) as bar:
            path = build(chapter, model, seed=seed, progress=partial(advance, bar)).save(directory)
    print(f"wrote {path} ({time.perf_counter() - started:.1f} s)", flush=True)


def _progress_line(done: int, total: int, exercise_id: str) -> None:
    print(f"{BUILD_PROGRESS} {done} {total} {exercise_id}", flush=True)


def _wheel(args) -> int:
    import tempfile

    from .edition import course_wheel

    with tempfile.TemporaryDirectory(prefix="gpt2-small-references-") as built:
        added = list(args.references)
        if args.with_gpt2_small:
            build_references(["gpt2-small"], Path(built), registry.chapters())
            added.append(Path(built))
        print("wrote", course_wheel(args.out, added, solutions=not args.without_solutions))
    return 0


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    generate = sub.add_parser("generate", help="regenerate notebooks and committed references")
    generate.add_argument("--chapter", action="append", choices=registry.chapters(),
                          help="rebuild only this chapter's references (default: all)")
    build = sub.add_parser("build", help="build reference tensors for a model")
    build.add_argument("--model", action="append", required=True)
    build.add_argument("--out", type=Path, help="folder to write to (default: see above)")
    build.add_argument("--chapter", action="append", choices=registry.chapters(),
                       help="only this chapter (default: all)")
    build.add_argument("--seed", type=int, help="draw other cases than the published ones")
    build.add_argument("--progress-lines", action="store_true", help=argparse.SUPPRESS)
    verify = sub.add_parser("verify", help="check generated notebooks and references are in sync")
    verify.add_argument("--all", action="store_true", help="recompute every reference set")
    verify.add_argument("--sample", type=int, default=2,
                        help="reference sets with unchanged digests recomputed anyway (default 2)")
    verify.add_argument("--seed", type=int, help="which ones (default: drawn at random)")
    verify.add_argument("--record", action="store_true",
                        help="store today's digest in every recomputed set found in sync")
    grade = sub.add_parser("grade", help="grade a class's notebooks with the sealed grader")
    grade.add_argument("submitted", type=Path, help="nbgrader's submitted/ folder")
    grade.add_argument("--assignment", required=True, choices=registry.chapters())
    _grader_options(grade)
    grade.add_argument("--jobs", type=int, default=1, help="notebooks graded side by side")
    grade.add_argument("--check-timeout", type=float, default=120.0,
                       help="the least time limit of one exercise, in seconds (default 120; "
                            "more where the solution is slow: ten times its time here)")
    grade.add_argument("--out", type=Path, default=Path("grades.csv"))
    bundle = sub.add_parser("gradescope", help="write a Gradescope autograder bundle")
    bundle.add_argument("--assignment", required=True, choices=registry.chapters())
    _grader_options(bundle)
    bundle.add_argument("--out", type=Path, default=Path("autograder.zip"))
    wheel = sub.add_parser("wheel", help="the course as a wheel, to host for pip install")
    wheel.add_argument("--out", type=Path, default=Path("dist"))
    wheel.add_argument("--with-gpt2-small", action="store_true",
                       help="build GPT-2 small's references (downloads it) and add them")
    wheel.add_argument("--references", type=Path, action="append", default=[],
                       help="add the reference sets in this folder (written by `build --out`)")
    wheel.add_argument("--without-solutions", action="store_true",
                       help="leave out the solutions and the authoring tools (graded courses)")
    book = sub.add_parser("student-book", help="the book with exercises shown as stubs")
    book.add_argument("--out", type=Path, default=Path("dist-student/book"))
    mutants = sub.add_parser("mutants", help="mutation-test the checks of a chapter")
    mutants.add_argument("--chapter", action="append", choices=registry.chapters(),
                         help="this chapter (default: all)")
    mutants.add_argument("--exercise", action="append", default=[], help="only this exercise")
    mutants.add_argument("--model", action="append",
                         help="the models to run model exercises on (default: the grader's "
                              "second models, then smollm2-135m)")
    return parser


def _grader_options(command) -> None:
    command.add_argument("--hidden", type=Path, required=True,
                         help="the hidden references (python -m autograder build --seed ...)")
    command.add_argument("--model", default="smollm2-135m")
    command.add_argument("--second-models", nargs="*", default=list(SECOND_MODELS), metavar="M",
                         help="model exercises must also pass these models' hidden cases "
                              f"(default: {' '.join(SECOND_MODELS)}; none: give the flag alone)")
    command.add_argument("--allow-unisolated", action="store_true",
                         help="grade even where workers cannot be sandboxed (no bubblewrap): "
                              "submissions could then read the hidden references")


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    if args.command == "generate":
        for chapter in registry.chapters():
            notebooks.generate(ROOT, chapter)
        notebooks.generate_book_index(ROOT)
        rebuild_committed(args.chapter or registry.chapters())
        return 0
    if args.command == "grade":
        from ..classroom import grade_class, submitted_notebooks, write_gradebook

        notebooks_found = submitted_notebooks(args.submitted, args.assignment)
        if not notebooks_found:
            raise SystemExit(f"No notebooks in {args.submitted}/<student>/{args.assignment}/")
        grades = grade_class(notebooks_found, args.assignment, jobs=args.jobs,
                             hidden_dir=args.hidden, model=args.model,
                             second_models=args.second_models, check_timeout=args.check_timeout,
                             allow_unisolated=args.allow_unisolated)
        write_gradebook(grades, args.out)
        print(f"wrote {args.out} ({len(grades)} students)")
        return 0
    if args.command == "gradescope":
        from .bundle import make_bundle

        print("wrote", make_bundle(args.out, args.assignment, args.model, args.hidden,
                                  args.second_models, args.allow_unisolated))
        return 0
    if args.command == "wheel":
        return _wheel(args)
    if args.command == "student-book":
        from .edition import student_book

        print("wrote", student_book(args.out), f"(build it: jupyter-book build {args.out})")
        return 0
    if args.command == "mutants":
        from .mutants import MODELS, run, score

        passed = True
        for chapter in args.chapter or registry.chapters():
            reports = run(chapter, args.exercise, args.model or MODELS)
            passed &= all(not r.stale for r in reports) and score(reports) >= MUTATION_SCORE_GOAL
        return 0 if passed else 1
    if args.command == "build":
        if args.seed is not None and args.out is None:
            raise SystemExit("--seed builds hidden references: give --out DIR for them")
        build_references(args.model, args.out, args.chapter or registry.chapters(), args.seed,
                         args.progress_lines)
        return 0
    stale = [p for c in registry.chapters() for p in notebooks.out_of_sync(ROOT, c)]
    stale += notebooks.book_index_out_of_sync(ROOT)
    stale += references_out_of_sync(COMMITTED_MODELS, everything=args.all, sample=args.sample,
                                    seed=args.seed, record=args.record, log=print)
    for problem in stale:
        print("OUT OF SYNC:", problem)
    print("run `make generate` and commit the result" if stale else "everything is in sync")
    return 1 if stale else 0

