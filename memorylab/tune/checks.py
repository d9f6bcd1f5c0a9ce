"""Checks of a sweep against the scenario it wraps, run when the sweep file is loaded.

Each swept path must name a field of the wrapped scenario and every value of its domain must validate there;
each objective may only read figures the wrapped kind's report holds; early stopping needs a runner that
reports intermediate results. Problems are reported like any other scenario problem, on the sweep file's line.
"""

from __future__ import annotations

import difflib
import itertools
import math
from typing import Any, Optional

from pydantic import BaseModel, ValidationError

from memorylab.scenario import KINDS, kind_of, validate_scenario
from memorylab.scenario_problems import CheckContext, strip_union_tags
from memorylab.schema.common import ActorResources
from memorylab.tune.objectives import Expression, ExpressionError, dotted
from memorylab.tune.paths import field_problem, with_values


def report_fields(scenario: BaseModel) -> set[str]:
    """Dotted paths of every number the report of `scenario`'s kind will hold for it."""
    return set(kind_of(scenario).load("report_fields")(scenario))


def load_wrapped(sweep: Any, context: CheckContext) -> Optional[tuple[BaseModel, dict]]:
    """The wrapped scenario's model and raw mapping, or None after adding its problems to the context."""
    loaded = context.nested(sweep.scenario, "scenario", "the wrapped scenario")
    if loaded is None:
        return None
    model, raw = loaded
    if not kind_of(model).sweepable:
        sweepable = ", ".join(k.name for k in KINDS.values() if k.sweepable)
        context.add(("scenario",), f"a {model.kind} scenario cannot be swept; sweepable kinds: {sweepable}")
        return None
    return model, raw


def check_sweep(sweep: Any, context: CheckContext) -> None:
    """Kind `sweep`'s load-time check (memorylab.scenario.KINDS): the sweep against the scenario it wraps."""
    add = context.add
    wrapped = load_wrapped(sweep, context)
    if wrapped is None:
        return
    model, raw = wrapped
    fields = report_fields(model)
    lost: dict[str, str] = {}  # figure -> the swept value whose report lacks it
    fits = True  # every value of every path on its own
    for path, domain in sweep.space.items():
        problem = field_problem(model, path)
        probes = [] if problem else [_probe(raw, {path: value}) for value in domain.probe_values()]
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
    problem = _corner_problem(raw, sweep.space) if fits and len(sweep.space) > 1 else None
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
    if sweep.scheduler.name == "asha" and not kind_of(model).reports_progress:
        add(("scheduler", "name"), f"asha stops trials early on intermediate results, and the {model.kind} "
                                   "runner reports only at the end; use fifo")


def _outgrows_trial(model: Any, trial: Any) -> Optional[str]:
    """Why an actor or task of the wrapped scenario could never start inside a trial's reservation, or None."""
    reserved = {"num_cpus": trial.num_cpus, "num_gpus": trial.num_gpus, **trial.resources}
    # Each actor and task of its runner, by role (`resources.<role>`), runs inside the trial's reservation.
    roles = model.resources if "resources" in type(model).model_fields else ()
    for role, res in roles:
        if not isinstance(res, ActorResources):
            continue
        for name, amount in {"num_cpus": res.num_cpus, "num_gpus": res.num_gpus, **res.resources}.items():
            if amount > reserved.get(name, 0):
                return (f"the wrapped scenario's resources.{role} ask {name} {amount:g}, more than each trial "
                        f"reserves ({reserved.get(name, 0):g}): its runner's tasks run inside that reservation "
                        "and could never start; raise trial_resources or lower the wrapped scenario's")
    return None


def _probe(raw: dict, values: dict[str, Any]) -> Any:
    """The wrapped scenario with each path set to its value, or a sentence saying why the values do not fit."""
    shown = (f"value {next(iter(values.values()))!r}" if len(values) == 1 else
             "values " + ", ".join(f"{path}={value!r}" for path, value in values.items()))
    try:
        return validate_scenario(with_values(raw, values), joins_ray=True)
    except ValidationError as e:
        err = e.errors(include_url=False)[0]
        where = ".".join(strip_union_tags(tuple(str(p) for p in err["loc"]), raw))
        together = "" if len(values) == 1 else " together"
        return f"{shown} do{'es' if len(values) == 1 else ''} not fit the wrapped scenario{together}: {where}: {err['msg']}"
    except (IndexError, ValueError, TypeError, AttributeError) as e:
        return f"{shown} cannot be set at {', '.join(values)}: {e}"


MAX_CORNERS = 256  # combinations tried at load; a larger space is checked path by path only


def _corner_problem(raw: dict, space: dict) -> Optional[str]:
    """Why some combination of the space's extreme values does not fit, or None: a range's two bounds and a
    list's every value, all combinations, when there are at most MAX_CORNERS of them."""
    options = [[(path, value) for value in (domain.values if domain.kind in ("uniform", "loguniform", "randint")
                                             else domain.probe_values())] for path, domain in space.items()]
    if math.prod(len(o) for o in options) > MAX_CORNERS:
        return None
    for combination in itertools.product(*options):
        probed = _probe(raw, dict(combination))
        if isinstance(probed, str):
            return probed
    return None
