"""Course maintenance commands.

    python -m autograder generate          notebooks + committed references, all chapters
    python -m autograder build --model M   references for model M (gpt2-small: user cache,
                                           or --out DIR to distribute with a release)
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


def build_references(model_names, out: Path | None) -> None:
    from readheads import load_model

    for chapter in registry.CHAPTERS:
        if out is None:  # rebuilding the committed set: start clean, so no stale file stays
            shutil.rmtree(references.COMMITTED_DIR / chapter, ignore_errors=True)
            references.save(references.COMMITTED_DIR / chapter, *references.build(chapter))
    for name in model_names:
        model = load_model(name, device="cpu")
        for chapter in registry.CHAPTERS:
            directory = out or (references.COMMITTED_DIR if name in COMMITTED_MODELS
                                else references.cache_dir() / "references")
            print("wrote", references.save(directory / chapter, *references.build(chapter, model)))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("generate", help="regenerate notebooks and committed references")
    build = sub.add_parser("build", help="build reference tensors for a model")
    build.add_argument("--model", action="append", required=True)
    build.add_argument("--out", type=Path, help="folder to write to (default: see above)")
    sub.add_parser("verify", help="check generated notebooks and references are in sync")
    args = parser.parse_args(argv)

    if args.command == "generate":
        for chapter in registry.CHAPTERS:
            notebooks.generate(ROOT, chapter)
        build_references(COMMITTED_MODELS, None)
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
