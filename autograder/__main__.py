"""Course maintenance commands.

    python -m autograder generate          rewrite the notebooks and the committed references
                                           (the only command that changes committed files)
    python -m autograder build --model M   references for model M, in the user cache, or in
                                           --out DIR to distribute with a release
    python -m autograder verify            fail if anything generated is out of sync
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

from . import notebooks, references, registry
from .sync import references_out_of_sync

ROOT = Path(__file__).resolve().parent.parent
COMMITTED_MODELS = ("smollm2-135m", "gpt2-test")


def rebuild_committed() -> None:
    """Rewrite the committed references from scratch, so that no stale file stays."""
    from readheads import load_model

    for chapter in registry.CHAPTERS:
        shutil.rmtree(references.COMMITTED_DIR / chapter, ignore_errors=True)
        references.save(references.COMMITTED_DIR / chapter, *references.build(chapter))
    for name in COMMITTED_MODELS:
        model = load_model(name, device="cpu")
        for chapter in registry.CHAPTERS:
            path = references.save(references.COMMITTED_DIR / chapter,
                                   *references.build(chapter, model))
            print("wrote", path)


def build_references(model_names, out: Path | None) -> None:
    """References for each model in `out` (default: the user cache); pure ones too with out."""
    from readheads import load_model

    directory = out or references.cache_dir() / "references"
    if directory.resolve().is_relative_to(references.COMMITTED_DIR.resolve()):
        raise SystemExit(f"{directory} holds the committed references: only "
                         "`python -m autograder generate` may write there. Choose another --out.")
    if out is not None:
        for chapter in registry.CHAPTERS:
            print("wrote", references.save(out / chapter, *references.build(chapter)))
    for name in model_names:
        model = load_model(name, device="cpu")
        for chapter in registry.CHAPTERS:
            print("wrote", references.save(directory / chapter, *references.build(chapter, model)))


def parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="regenerate notebooks and committed references")
    build = sub.add_parser("build", help="build reference tensors for a model")
    build.add_argument("--model", action="append", required=True)
    build.add_argument("--out", type=Path, help="folder to write to (default: see above)")
    sub.add_parser("verify", help="check generated notebooks and references are in sync")
    return parser


def main(argv=None) -> int:
    args = parser().parse_args(argv)

    if args.command == "generate":
        for chapter in registry.CHAPTERS:
            notebooks.generate(ROOT, chapter)
        rebuild_committed()
        return 0
    if args.command == "build":
        build_references(args.model, args.out)
        return 0
    stale = [p for c in registry.CHAPTERS for p in notebooks.out_of_sync(ROOT, c)]
    stale += references_out_of_sync(COMMITTED_MODELS)
    for problem in stale:
        print("OUT OF SYNC:", problem)
    print("run `make generate` and commit the result" if stale else "everything is in sync")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
