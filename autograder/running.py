"""Run a student's function on one stored case, and notice what it did besides answering.

`materialize` turns a case's stored arguments into keyword arguments (fresh copies, so a
function cannot spoil the references); `run_case` calls the function and reports its answer,
the error it raised, and side effects that would spoil later work: inputs or the activation
cache edited in place, the model's weights changed, hooks or model settings (split per-head
inputs...) left on the model (removed or switched back here).
"""

from __future__ import annotations

import copy
import traceback
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.hooks import RemovableHandle

from readheads.formation import load_course_checkpoint, load_course_run
from readheads.ioi import IOIPrompts, PatchingMetric
from readheads.sae import SAEWeights

from .references import Argument, Case

_PACKAGE_DIR = str(Path(__file__).resolve().parent)
# The named tuples a case argument may be (kind "record"), by class name.
RECORD_TYPES = {cls.__name__: cls for cls in (IOIPrompts, PatchingMetric, SAEWeights)}


@dataclass
class Outcome:
    """What one call of the student's function gave."""

    answer: Any = None
    error: str | None = None  # the exception it raised, as a sentence
    side_effect: str | None = None  # what it changed that it should not have


def materialize(arguments: dict[str, Argument], model=None, caches: dict | None = None) -> dict:
    """Keyword arguments for the function: tensors copied (onto the model's device for model
    exercises), plain values copied, the model itself, activation caches run on the model,
    committed training runs and their models loaded afresh.

    caches: a dict to reuse activation caches in (keyed by the tokens' identity); a cache
    that a function edited must be dropped from it (see `run_case`).
    """
    device = model.cfg.device if model is not None else "cpu"
    kwargs = {}
    for name, argument in arguments.items():
        if argument.kind == "tensor":
            kwargs[name] = argument.value.clone().to(device)
        elif argument.kind == "value":
            kwargs[name] = copy.deepcopy(argument.value)
        elif argument.kind == "model":
            kwargs[name] = model
        elif argument.kind == "run":
            kwargs[name] = load_course_run(**argument.value)
        elif argument.kind == "checkpoint":
            kwargs[name] = load_course_checkpoint(**argument.value)
        elif argument.kind == "record":
            record_type = RECORD_TYPES[argument.value["type"]]
            kwargs[name] = record_type(**{f: t.clone().to(device)
                                          for f, t in argument.value["fields"].items()})
        elif argument.kind == "cache":
            memo_key = (id(argument), id(model))
            if caches is None or memo_key not in caches:
                cache = _run_cached(model, argument)
                if caches is None:
                    kwargs[name] = cache
                    continue
                caches[memo_key] = cache
            kwargs[name] = caches[memo_key]
        else:
            raise ValueError(f"unknown kind of case argument {argument.kind!r} for {name}")
    return kwargs


def _run_cached(model, argument: Argument):
    with torch.no_grad():
        _, cache = model.run_with_cache(argument.value.to(model.cfg.device))
    for hook_name, factor in argument.scales.items():
        cache.cache_dict[hook_name] = cache.cache_dict[hook_name] * factor
    return cache


def run_case(function, case: Case, model=None, caches: dict | None = None) -> Outcome:
    """Call `function` on `case` and report what happened (never raises for the student's
    errors, nor for sys.exit(); KeyboardInterrupt, the user stopping the check, goes through)."""
    kwargs = materialize(case.arguments, model, caches)
    watch = _Watch(kwargs, model)
    try:
        with torch.no_grad():
            answer = function(**kwargs)
    except NotImplementedError:
        return Outcome(error="not implemented yet: replace `raise NotImplementedError()` with "
                             "your code.", side_effect=watch.changes(caches))
    except (Exception, SystemExit) as error:  # the student's code: report, never crash the caller
        return Outcome(error=f"your function raised {type(error).__name__}: {error}"
                             f"{_where(error)}", side_effect=watch.changes(caches))
    return Outcome(answer, side_effect=watch.changes(caches))


class _Watch:
    """Snapshots of what a function may change by mistake: tensor arguments, the activation
    cache (by version counters, which every in-place operation bumps), the model's weights
    and the hooks on its modules."""

    def __init__(self, kwargs: dict, model):
        self.kwargs, self.model = kwargs, model
        self.tensors = {name: _stamp(v) for name, v in _tensors(kwargs)}
        self.caches = {name: _cache_stamp(v) for name, v in kwargs.items() if hasattr(v, "cache_dict")}
        if model is not None:
            self.parameters = _parameters(model)
            self.weights = [_stamp(p) for p in self.parameters]
            self.switches = {name: getattr(model.cfg, name, None) for name in MODEL_SWITCHES}
            # Every hook registered from now on gets a handle id at least this large.
            self.first_hook_id = RemovableHandle.next_id

    def changes(self, caches: dict | None) -> str | None:
        problems = []
        now = dict(_tensors(self.kwargs))
        for name, stamp in self.tensors.items():
            if _stamp(now[name]) != stamp:
                problems.append(f"changed its argument `{name}` in place (work on a copy: use "
                                "out-of-place operations such as x * 2, not x.mul_(2) or x[...] = ...)")
        for name, stamp in self.caches.items():
            if _cache_stamp(self.kwargs[name]) != stamp:
                problems.append(f"changed the activation cache `{name}` in place (read cached "
                                "activations; never write into them)")
                if caches is not None:  # never reuse a spoiled cache
                    for key in [k for k, v in caches.items() if v is self.kwargs[name]]:
                        del caches[key]
        if self.model is not None:
            if [_stamp(p) for p in self.parameters] != self.weights:
                problems.append("changed the model's weights (reload the model before going on: "
                                "model = load_model(...))")
            if _remove_hooks_since(self.model, self.first_hook_id):
                problems.append("left a hook on the model (it was removed; use "
                                "model.run_with_hooks(...) or remove your hooks before returning)")
            for name, before in self.switches.items():
                if getattr(self.model.cfg, name, None) != before:
                    getattr(self.model, f"set_{name}")(before)
                    problems.append(f"left model.cfg.{name} switched to {not before} (it was switched "
                                    f"back; set it back before returning, e.g. `with "
                                    f"split_qkv_inputs(model):` for use_split_qkv_input)")
        return "; ".join(problems) or None


def _tensors(kwargs: dict):
    """(name, tensor) for tensor arguments and the tensors in records ("clean.tokens")."""
    for name, value in kwargs.items():
        if isinstance(value, torch.Tensor):
            yield name, value
        elif type(value).__name__ in RECORD_TYPES:
            yield from ((f"{name}.{f}", t) for f, t in zip(value._fields, value))


def _stamp(tensor: torch.Tensor):
    try:
        return (id(tensor), tensor.data_ptr(), tensor._version)
    except RuntimeError:  # inference tensors keep no version counter: compare values
        return (id(tensor), float(tensor.double().sum()))


def _cache_stamp(cache) -> dict:
    return {name: _stamp(value) for name, value in cache.cache_dict.items()}


HOOK_KINDS = ("_forward_hooks", "_forward_pre_hooks", "_backward_hooks")
# Model settings an answer may switch on for its own work (model.set_use_...) but must restore.
MODEL_SWITCHES = ("use_split_qkv_input", "use_attn_result", "use_attn_in", "use_hook_mlp_in")
# Hooks that transformers and the TransformerLens bridge add themselves, on first use.
LIBRARY_HOOKS = ("transformers.", "transformer_lens.model_bridge.")


def _remove_hooks_since(model, first_id: int) -> bool:
    """Remove the hooks registered on the model since handle id `first_id` and still there
    (a function's leftovers; those its libraries add on first use are kept). Whether there
    were any. Walks the modules only if some hook was registered at all."""
    if RemovableHandle.next_id == first_id:
        return False
    removed = False
    for module in model.modules():
        attributes = vars(module)  # not getattr: some bridge modules compute missing attributes
        for kind in HOOK_KINDS:
            hooks = attributes.get(kind, {})
            for key in [k for k, hook in hooks.items() if k >= first_id and not _library(hook)]:
                del hooks[key]
                removed = True
    return removed


def _library(hook) -> bool:
    function = getattr(getattr(hook, "__func__", hook), "func", hook)
    return str(getattr(function, "__module__", "")).startswith(LIBRARY_HOOKS)


_parameter_lists: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _parameters(model) -> list:
    """The model's parameters, listed once per model (walking its modules takes ms)."""
    if model not in _parameter_lists:
        _parameter_lists[model] = list(model.parameters())
    return _parameter_lists[model]


def _where(error: BaseException) -> str:
    """' (line N: code)' for the innermost frame of the student's code."""
    frames = [f for f in traceback.extract_tb(error.__traceback__)
              if not f.filename.startswith(_PACKAGE_DIR)]
    if not frames:
        return ""
    frame = frames[-1]
    return f" (line {frame.lineno}: {frame.line})" if frame.line else f" (line {frame.lineno})"
