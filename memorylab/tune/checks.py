"""Checks of a sweep against the scenario it wraps, run when the sweep file is loaded.

Each swept path must name a field of the wrapped scenario and every value of its domain must validate there;
each objective may only read figures the wrapped kind's report holds; early stopping needs a runner that
reports intermediate results. Problems are reported like any other scenario problem, on the sweep file's line.
"""

from __future__ import annotations

import difflib
import itertools
import math
from pathlib import Path
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from memorylab.scenario import KINDS
from memorylab.schema.common import IN_JOINED_RAY
from memorylab.scenario_nested import load_nested
from memorylab.tune.fields import SWEEPABLE, report_fields, reports_progress
from memorylab.tune.objectives import Expression, ExpressionError, dotted
from memorylab.tune.paths import field_problem, with_values

Loc = tuple[str, ...]


def load_wrapped(sweep: Any, lines: dict, set_paths: set, out: Any, base: Path) -> Optional[tuple[BaseModel, dict]]:
    """The wrapped scenario's model and raw mapping, or None after adding its problems to `out`."""
    from memorylab import scenario_loader as loader

    loaded = load_nested(sweep.scenario, "scenario", "the wrapped scenario", lines, set_paths, out, base)
    if loaded is None:
        return None
    model, raw = loaded
    here = ("scenario",)
    if model.kind not in SWEEPABLE:
        out.add(loader._line_of(here, lines, set_paths), "scenario",
                f"a {model.kind} scenario cannot be swept; sweepable kinds: {', '.join(SWEEPABLE)}")
        return None
    return model, raw


def check_sweep(sweep: Any, lines: dict, set_paths: set, out: Any, base: Path) -> None:
    from memorylab import scenario_loader as loader

    def add(loc: Loc, message: str) -> None:
        out.add(loader._line_of(loc, lines, set_paths), ".".join(loc), message)

    wrapped = load_wrapped(sweep, lines, set_paths, out, base)
    if wrapped is None:
        return
    model, raw = wrapped
    fields = report_fields(model)
    lost: dict[str, str] = {}  # figure -> the swept value whose report lacks it
    fits = True  # every value of every path on its own
    for path, domain in sweep.space.items():
        problem = field_problem(model, path)
        probes = [] if problem else [_probe(model.kind, raw, {path: value}) for value in domain.probe_values()]
        problem = problem or next((p for p in probes if isinstance(p, str)), None)
        if problem is not None:
            add(("space", path), problem)
            fits = False
            continue
        # A swept value can rename figures (a method's default label is its name): objectives may read
        # only figures that every trial's report holds.
        for value, probed in zip(domain.probe_values(), probes):
            kept = report_fields(probed)
            lost.update({f: f"{path}={value!r}" for f in fields - kept if f not in lost})
            fields &= kept

    # Values that fit one by one may not together (a warm-up longer than the steps): try the space's corners.
    problem = _corner_problem(model.kind, raw, sweep.space) if fits and len(sweep.space) > 1 else None
    if problem is not None:
        add(("space",), problem)

    for i, objective in enumerate(sweep.objectives):
        loc = ("objectives", str(i), "maximize" if objective.mode == "max" else "minimize")
        try:
            expression = Expression(objective.expr)
        except ExpressionError as e:
            add(loc, str(e))
            continue
        for path in expression.paths:
            if dotted(path) in lost:
                add(loc, f"{dotted(path)} is missing from the report of trials with {lost[dotted(path)]}; "
                         "objectives must read figures every trial has (give a swept method a fixed `label`)")
            elif dotted(path) not in fields:
                close = difflib.get_close_matches(dotted(path), sorted(fields), n=3, cutoff=0.6)
                hint = f"; close: {', '.join(close)}" if close else f"; figures look like {min(fields)}"
                add(loc, f"{dotted(path)} is not a figure of the {model.kind} report{hint}")
    problem = _outgrows_trial(model, sweep.trial_resources)
    if problem is not None:
        add(("trial_resources",), problem)
    if sweep.scheduler.name == "asha" and not reports_progress(model.kind):
        add(("scheduler", "name"), f"asha stops trials early on intermediate results, and the {model.kind} "
                                   "runner reports only at the end; use fifo")


# The wrapped kind's actors and tasks, by their resources field; each runs inside its trial's reservation.
ROLES: dict[str, tuple[str, ...]] = {"memorization": ("trainer", "model"), "continual": ("trainer",),
                                     "unlearning": ("trainer", "model", "unlearner")}


def _outgrows_trial(model: Any, trial: Any) -> Optional[str]:
    """Why an actor or task of the wrapped scenario could never start inside a trial's reservation, or None."""
    reserved = {"num_cpus": trial.num_cpus, "num_gpus": trial.num_gpus, **trial.resources}
    for role in ROLES.get(model.kind, ()):
        res = getattr(model.resources, role)
        for name, amount in {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus, **res.resources}.items():
            if amount > reserved.get(name, 0):
                return (f"the wrapped scenario's resources.{role} ask {name} {amount:g}, more than each trial "
                        f"reserves ({reserved.get(name, 0):g}): its runner's tasks run inside that reservation "
                        "and could never start; raise trial_resources or lower the wrapped scenario's")
    return None


def _probe(kind: str, raw: dict, values: dict[str, Any]) -> Any:
    """The wrapped scenario with each path set to its value, or a sentence saying why the values do not fit."""
    from memorylab.scenario_loader import _strip_union_tags

    shown = (f"value {next(iter(values.values()))!r}" if len(values) == 1 else
             "values " + ", ".join(f"{path}={value!r}" for path, value in values.items()))
    try:
        return KINDS[kind].model_validate(with_values(raw, values), context=IN_JOINED_RAY)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(_strip_union_tags(tuple(str(p) for p in err["loc"]), raw))
        together = "" if len(values) == 1 else " together"
        return f"{shown} do{'es' if len(values) == 1 else ''} not fit the wrapped scenario{together}: {where}: {err['msg']}"
    except (IndexError, ValueError, TypeError, AttributeError) as e:
        return f"{shown} cannot be set at {', '.join(values)}: {e}"


MAX_CORNERS = 256  # combinations tried at load; a larger space is checked path by path only


def _corner_problem(kind: str, raw: dict, space: dict) -> Optional[str]:
    """Why some combination of the space's extreme values does not fit, or None: a range's two bounds and a
    list's every value, all combinations, when there are at most MAX_CORNERS of them."""
    options = [[(path, value) for value in (domain.values if domain.kind in ("uniform", "loguniform", "randint")
                                             else domain.probe_values())] for path, domain in space.items()]
    if math.prod(len(o) for o in options) > MAX_CORNERS:
        return None
    for combination in itertools.product(*options):
        probed = _probe(kind, raw, dict(combination))
        if isinstance(probed, str):
            return probed
    return None


def wrapped_scenario(sweep: Any, sweep_path: Path) -> tuple[BaseModel, dict, Path]:
    """The wrapped scenario of a sweep that loaded cleanly: its model, raw mapping, and the file whose folder
    resolves its relative paths (its own file, or the sweep's for an inline one)."""
    import copy

    from memorylab.scenario_loader import load_scenario_and_dict

    if isinstance(sweep.scenario, str):
        path = Path(sweep.scenario).expanduser()
        path = path if path.is_absolute() else sweep_path.absolute().parent / path
        model, raw = load_scenario_and_dict(path, joins_ray=True)
        return model, raw, path
    raw = copy.deepcopy(sweep.scenario)
    return KINDS[raw["kind"]].model_validate(raw, context=IN_JOINED_RAY), raw, sweep_path
