"""Mutation testing of the checks: does every small bug in a solution fail some case?

    python -m autograder mutants --chapter ch4_saes [--exercise sae_encode] [--quick]

Each mutant changes one thing in the code between an exercise's ``### BEGIN SOLUTION`` and
``### END SOLUTION`` markers (an operator, a comparison, a constant, a dimension, a keyword
argument, a slice bound, a reduction, two neighbouring einsum indices, a statement deleted;
see `_variants`). It is run through the same comparison `check` uses (`compare.judge`) on
the exercise's cases: the published ones and a grader's hidden ones (seed 7), pure
exercises on their own and model exercises on the
grader's second models and the offline model, cheapest first. A mutant is *killed* when some
case fails it (wrong answer, error or more than its time limit), else it *survives*.

A survivor is a hole in the cases (fix it with a case maker or a tolerance) or an equivalent
program (the same answer on every legal input). Equivalents are recorded in the exercise's
declaration, ``equivalent_mutants={"<mutated line>": "why it is equivalent"}``, keyed by the
mutated line as the report prints it. The score is killed / (mutants - recorded equivalents).
"""

from __future__ import annotations

import ast
import contextlib
import copy
import difflib
import inspect
import os
import signal
import time
import warnings
from dataclasses import dataclass, field

from ..compare import judge
from ..running import run_case
from .build import build
from .spec import Exercise

MODELS = ("gpt2-mini-test", "gqa-test", "smollm2-135m")  # cheapest first
SEEDS = (None, 7)  # the published cases, then a grader's hidden ones
BEGIN, END = "### BEGIN SOLUTION", "### END SOLUTION"

SWAPPED_OPERATORS = {ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.Div, ast.Div: ast.Mult,
                     ast.FloorDiv: ast.Div, ast.Pow: ast.Mult, ast.Mod: ast.FloorDiv,
                     ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd}
SWAPPED_COMPARISONS = {ast.Lt: ast.LtE, ast.LtE: ast.Lt, ast.Gt: ast.GtE, ast.GtE: ast.Gt,
                       ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.In: ast.NotIn, ast.NotIn: ast.In,
                       ast.Is: ast.IsNot, ast.IsNot: ast.Is}
SWAPPED_NAMES = {"max": "min", "min": "max", "argmax": "argmin", "argmin": "argmax",
                 "amax": "amin", "amin": "amax", "sum": "mean", "mean": "sum",
                 "softmax": "log_softmax", "log_softmax": "softmax", "any": "all", "all": "any",
                 "maximum": "minimum", "minimum": "maximum", "cumsum": "cumprod"}
# Functions and methods of one tensor whose call a mutant replaces by that tensor.
DROPPABLE_CALLS = {"relu", "exp", "log", "abs", "sqrt", "sigmoid", "tanh", "softmax",
                   "log_softmax", "sort", "flip", "unique", "sorted", "round", "floor", "ceil"}


@dataclass
class Mutant:
    line: str  # the first mutated line, as the report prints it (the key of an equivalent)
    diff: str
    function: object


@dataclass
class ExerciseReport:
    exercise_id: str
    killed: int = 0
    equivalent: list[str] = field(default_factory=list)
    survivors: list[Mutant] = field(default_factory=list)
    stale: list[str] = field(default_factory=list)  # recorded equivalents no mutant has

    @property
    def counted(self) -> int:
        return self.killed + len(self.survivors)


def mutants(exercise: Exercise, module) -> list[Mutant]:
    """Every distinct mutant of the exercise's solution block, compiled in its module."""
    source = inspect.getsource(exercise.solution)
    lines = source.splitlines(keepends=True)
    begin, end = _block(lines, exercise.id)
    original = ast.dump(ast.parse(source))
    seen, found = {original}, []
    for node in ast.walk(ast.parse(source)):
        if not begin < getattr(node, "lineno", 0) <= getattr(node, "end_lineno", 0) < end:
            continue
        if isinstance(node, ast.JoinedStr):
            continue
        for replacement in _variants(node):
            text = _replace(lines, node, replacement)
            try:
                dumped = ast.dump(ast.parse(text))
            except SyntaxError:
                continue
            if dumped in seen:
                continue
            seen.add(dumped)
            namespace = dict(vars(module))
            exec(compile(text, f"<mutant of {exercise.id}>", "exec"), namespace)  # noqa: S102
            found.append(Mutant(_changed_line(source, text), _diff(source, text),
                                namespace[exercise.id]))
    return found


def _block(lines: list[str], exercise_id: str) -> tuple[int, int]:
    """Line numbers (1-based) of the BEGIN and END markers."""
    marks = [i + 1 for i, line in enumerate(lines) if line.strip() in (BEGIN, END)]
    if len(marks) != 2:
        raise ValueError(f"{exercise_id}: the solution needs one {BEGIN!r} and one {END!r} line")
    return marks[0], marks[1]


def _variants(node: ast.AST):
    """Replacement nodes for `node`, one per mutation (a statement replaced by `pass` is a
    deletion)."""
    if isinstance(node, ast.BinOp):
        if type(node.op) in SWAPPED_OPERATORS:
            yield _with(node, op=SWAPPED_OPERATORS[type(node.op)]())
        if isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div)):
            yield node.left
            yield node.right
    elif isinstance(node, ast.AugAssign) and type(node.op) in SWAPPED_OPERATORS:
        yield _with(node, op=SWAPPED_OPERATORS[type(node.op)]())
    elif isinstance(node, ast.Compare):
        for i, op in enumerate(node.ops):
            if type(op) in SWAPPED_COMPARISONS:
                ops = list(node.ops)
                ops[i] = SWAPPED_COMPARISONS[type(op)]()
                yield _with(node, ops=ops)
    elif isinstance(node, ast.BoolOp):
        yield _with(node, op=ast.Or() if isinstance(node.op, ast.And) else ast.And())
    elif isinstance(node, ast.UnaryOp) and not isinstance(node.op, ast.UAdd):
        if not (isinstance(node.op, ast.USub) and isinstance(node.operand, ast.Constant)):
            yield node.operand
    elif isinstance(node, ast.Constant) and type(node.value) in (int, float, bool):
        yield from (ast.Constant(v) for v in _other_values(node.value))
    elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "->" in node.value:
        yield from (ast.Constant(spec) for spec in _transposed_subscripts(node.value))
    elif isinstance(node, ast.Call):
        yield from _call_variants(node)
    elif isinstance(node, ast.Attribute) and node.attr in SWAPPED_NAMES:
        yield _with(node, attr=SWAPPED_NAMES[node.attr])
    elif isinstance(node, ast.Name) and node.id in ("max", "min"):
        yield _with(node, id=SWAPPED_NAMES[node.id])
    elif isinstance(node, ast.Slice):
        if node.lower is not None:
            yield _with(node, lower=None)
        if node.upper is not None:
            yield _with(node, upper=None)
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign, ast.Expr, ast.Continue,
                         ast.Break, ast.Assert)):
        yield ast.Pass()


def _other_values(value):
    if isinstance(value, bool):
        return [not value]
    if isinstance(value, int):
        return [value + 1, value - 1] if value > 0 else [value + 1]
    return [0.0 if value != 0 else 1.0]


def _transposed_subscripts(spec: str):
    """An einsum spec with two neighbouring indices of one term swapped, one mutant per pair:
    "bhqk,bkhd->bqhd" gives "hbqk,bkhd->bqhd", "bqhk,bkhd->bqhd", ..., "bhqk,bkhd->bqdh"."""
    for i in range(len(spec) - 1):
        first, second = spec[i], spec[i + 1]
        if first.isalpha() and second.isalpha() and first != second:
            yield spec[:i] + second + first + spec[i + 2:]


def _call_variants(node: ast.Call):
    for i in range(len(node.keywords)):
        yield _with(node, keywords=node.keywords[:i] + node.keywords[i + 1:])
    name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
    if name in DROPPABLE_CALLS:
        if len(node.args) == 1 and isinstance(node.func, (ast.Name, ast.Attribute)) and (
                isinstance(node.func, ast.Name) or _is_module(node.func.value)):
            yield node.args[0]  # torch.relu(x) -> x
        elif isinstance(node.func, ast.Attribute) and not _is_module(node.func.value):
            yield node.func.value  # x.relu() -> x


def _is_module(node: ast.AST) -> bool:
    return isinstance(node, ast.Name) and node.id in ("torch", "F", "math", "np", "einops")


def _with(node: ast.AST, **changes) -> ast.AST:
    changed = copy.deepcopy(node)
    for name, value in changes.items():
        setattr(changed, name, value)
    return changed


PRECEDENCE_GROUPS = ({ast.Add, ast.Sub}, {ast.Mult, ast.Div, ast.FloorDiv, ast.Mod})


def _replace(lines: list[str], node: ast.AST, replacement: ast.AST) -> str:
    """The source with `node`'s text replaced by `replacement`'s (in parentheses where
    precedence could change its meaning). ast columns count UTF-8 bytes."""
    text = ast.unparse(replacement)
    if (isinstance(replacement, (ast.BinOp, ast.BoolOp, ast.Compare, ast.UnaryOp, ast.IfExp))
            and not _same_precedence(node, replacement)):
        text = f"({text})"
    encoded = [line.encode() for line in lines]
    start, stop = node.lineno - 1, node.end_lineno - 1
    head = encoded[start][:node.col_offset].decode()
    tail = encoded[stop][node.end_col_offset:].decode()
    return "".join(lines[:start]) + head + text + tail + "".join(lines[stop + 1:])


def _same_precedence(node: ast.AST, replacement: ast.AST) -> bool:
    if isinstance(node, ast.Compare) and isinstance(replacement, ast.Compare):
        return True
    return (isinstance(node, ast.BinOp) and isinstance(replacement, ast.BinOp)
            and any({type(node.op), type(replacement.op)} <= group for group in PRECEDENCE_GROUPS))


def _changed_line(before: str, after: str) -> str:
    """The first line the mutant changed, as it reads after the change ("deleted: <line>"
    where a statement became `pass`)."""
    for old, new in zip(before.splitlines(), after.splitlines()):
        if old != new:
            return f"deleted: {old.strip()}" if new.strip() == "pass" else new.strip()
    raise ValueError("the mutant changed nothing")


def _diff(before: str, after: str) -> str:
    lines = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
    return "\n".join(line for line in lines if line[:1] in "+-" and line[:3] not in ("+++", "---"))


# --- Running them ---------------------------------------------------------------------------


class _TimeLimit(Exception):
    pass


def _alarm(signum, frame):
    raise _TimeLimit()


class CaseSet:
    """The cases of one chapter on one model (None: pure) and seed, each exercise's built on
    first use, expected outputs only: most mutants die on the cheap sets, so the offline
    model's cases are often never needed."""

    def __init__(self, chapter: str, model_name: str | None, seed: int | None):
        self.chapter, self.model_name, self.seed = chapter, model_name, seed
        self._references: dict = {}  # exercise id -> its ExerciseReferences (None: not here)

    @property
    def model(self):
        """The model (shared by its case sets; reloaded after a mutant spoils it)."""
        if self.model_name is None:
            return None
        if self.model_name not in _loaded:
            from readheads import load_model

            _loaded[self.model_name] = load_model(self.model_name, device="cpu")
        return _loaded[self.model_name]

    def references(self, exercise: Exercise):
        """The exercise's cases on this set's model (None for an exercise of the other kind)."""
        if (self.model_name is not None) != exercise.needs_model:
            return None
        if exercise.id not in self._references:
            built = build(self.chapter, self.model, seed=self.seed, only=(exercise.id,), mistakes=False)
            self._references[exercise.id] = built.exercises[exercise.id]
        return self._references[exercise.id]

    def reload_if_spoiled(self, outcome) -> None:
        """A mutant that edited the model's weights leaves it broken for the next: reload."""
        if self.model_name is not None and "model's weights" in (outcome.side_effect or ""):
            del _loaded[self.model_name]


_loaded: dict = {}  # model name -> the model, shared by its case sets


def case_sets(chapter: str, model_names=MODELS, seeds=SEEDS) -> list[CaseSet]:
    """The chapter's cases to run mutants on: pure, then each model's, cheapest first."""
    return [CaseSet(chapter, name, seed) for name in (None, *model_names) for seed in seeds]


class Limits:
    """Seconds a mutant may take on each case: `margin` times the solution's time there (at
    least `floor`); past it the mutant counts as killed, as the grader would stop it too. The
    solution must pass every case it is timed on."""

    def __init__(self, exercise: Exercise, margin: float = 10.0, floor: float = 2.0):
        self.exercise, self.margin, self.floor, self.seconds = exercise, margin, floor, {}

    def of(self, case_set: CaseSet, index: int, case, references) -> float:
        key = (id(case_set), index)
        if key not in self.seconds:
            started = time.perf_counter()
            outcome = run_case(self.exercise.solution, case, case_set.model, {})
            self.seconds[key] = max(self.floor, self.margin * (time.perf_counter() - started))
            problem = judge(outcome, references, case, "cpu")
            if problem:
                raise AssertionError(f"{self.exercise.id}: the solution fails its own case "
                                     f"{index} on {case_set.model_name or 'pure'}: {problem}")
        return self.seconds[key]


def kills(function, exercise: Exercise, sets: list[CaseSet], limits: Limits) -> bool:
    """Whether some case fails `function` (a wrong answer, an error, or past its time limit)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    warnings.simplefilter("ignore")  # mutants trip the libraries' warnings by the hundred
    try:
        for case_set in sets:
            references = case_set.references(exercise)
            if references is None:
                continue
            caches: dict = {}
            for index, case in enumerate(references.cases):
                signal.setitimer(signal.ITIMER_REAL, limits.of(case_set, index, case, references))
                try:
                    outcome = run_case(function, case, case_set.model, caches)
                except _TimeLimit:
                    return True
                finally:
                    signal.setitimer(signal.ITIMER_REAL, 0)
                case_set.reload_if_spoiled(outcome)
                if judge(outcome, references, case, "cpu"):
                    return True
    finally:
        signal.signal(signal.SIGALRM, previous)
    return False


def mutation_test(exercise: Exercise, module, sets: list[CaseSet]) -> ExerciseReport:
    report, limits = ExerciseReport(exercise.id), Limits(exercise)
    for mutant in mutants(exercise, module):
        if mutant.line in exercise.equivalent_mutants:
            report.equivalent.append(mutant.line)
        elif kills(mutant.function, exercise, sets, limits):
            report.killed += 1
        else:
            report.survivors.append(mutant)
    report.stale = [line for line in exercise.equivalent_mutants if line not in report.equivalent]
    return report


def run(chapter: str, exercise_ids=(), model_names=MODELS, log=print) -> list[ExerciseReport]:
    """Mutation-test a chapter's exercises (or the named ones) and print the report."""
    from . import registry

    module = registry.chapter_module(chapter)
    chosen = [e for e in registry.exercises(chapter) if not exercise_ids or e.id in exercise_ids]
    sets = case_sets(chapter, model_names)
    reports = []
    for exercise in chosen:
        started = time.perf_counter()
        with open(os.devnull, "w") as nowhere, contextlib.redirect_stderr(nowhere):
            report = mutation_test(exercise, module, sets)  # quiet: the solutions' progress bars
        reports.append(report)
        log(f"{exercise.id}: {report.killed}/{report.counted} killed, "
            f"{len(report.equivalent)} recorded equivalent ({time.perf_counter() - started:.0f} s)")
        for mutant in report.survivors:
            log(f"  SURVIVED {mutant.line!r}\n" + _indent(mutant.diff))
        for line in report.stale:
            log(f"  STALE equivalent (no such mutant any more): {line!r}")
    killed, counted = sum(r.killed for r in reports), sum(r.counted for r in reports)
    log(f"{chapter}: mutation score {killed}/{counted} = {score(reports):.1%} "
        f"({sum(len(r.equivalent) for r in reports)} recorded equivalent)")
    return reports


def score(reports: list[ExerciseReport]) -> float:
    counted = sum(r.counted for r in reports)
    return sum(r.killed for r in reports) / counted if counted else 1.0


def _indent(text: str) -> str:
    return "\n".join("      " + line for line in text.splitlines())
