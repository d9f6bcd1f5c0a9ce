"""The trial: one run of the wrapped scenario, with the trial's values set, through the same runner code as
`memorylab run`; its objectives are read from the report the runner returns.

A runner that reports intermediate results (on_progress) lets a scheduler such as ASHA stop a weak trial
early: each intermediate report is scored with the same objectives, whatever figures it already holds.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from memorylab.report import write_json
from memorylab.tune.objectives import Expression

RUN_FOLDER = "run"  # the wrapped run's folder inside each trial's folder
RESULT_FILE = "trial_result.json"  # a finished trial's final result, next to its run folder


@dataclass(frozen=True)
class TrialSpec:
    """Everything a trial needs besides its config; plain data, so Ray can ship it to the trial's worker."""

    raw: dict[str, Any]  # the wrapped scenario's mapping (its `kind` picks the schema)
    fixed: dict[str, Any] = field(default_factory=dict)  # dotted path -> value for every trial (shared setup)
    objectives: tuple[tuple[str, str], ...] = ()  # (name, expression)
    scenario_path: Optional[str] = None  # resolves relative paths the wrapped scenario holds
    reports_progress: bool = False  # pass on the runner's intermediate results (the scheduler reads them)
    # The experiment's folder (Tune's storage): trial folders are synced there from a per-Ray-session staging
    # folder, so it is the only place a resumed experiment (a new Ray session) finds what a trial left.
    experiment_dir: Optional[str] = None


def score(objectives: dict[str, Expression], report: dict[str, Any]) -> dict[str, float]:
    """Objective values of a report; NaN for one the report cannot give (a missing figure, a zero divisor)."""
    values = {name: expr.value(report) for name, expr in objectives.items()}
    return {name: (math.nan if v is None else v) for name, v in values.items()}


def _stored_result(trial_dir: Path, spec: TrialSpec) -> Optional[Path]:
    """The final result an earlier run of this trial left, in this session's folder or the experiment's."""
    places = [trial_dir / RESULT_FILE]
    if spec.experiment_dir is not None:
        places.append(Path(spec.experiment_dir) / trial_dir.name / RESULT_FILE)
    return next((p for p in places if p.is_file()), None)


def run_trial(config: dict[str, Any], spec: TrialSpec) -> None:
    """Ray Tune function trainable."""
    from ray import tune

    from memorylab.runners import RunContext, run_scenario
    from memorylab.scenario import validate_scenario
    from memorylab.tune.paths import with_values

    trial_dir = Path(tune.get_context().get_trial_dir())
    finished = trial_dir / RESULT_FILE
    stored = _stored_result(trial_dir, spec)
    if stored is not None:
        # The trial ran to the end before the experiment was interrupted, but Tune's last saved state
        # predates that: report the stored result rather than running the same configuration twice.
        tune.report(json.loads(stored.read_text()))
        return
    raw = with_values(spec.raw, {**spec.fixed, **config})
    scenario = validate_scenario(raw, joins_ray=True)  # it runs in the sweep's Ray
    objectives = {name: Expression(text) for name, text in spec.objectives}
    out_dir = trial_dir / RUN_FOLDER
    began = time.perf_counter()

    def on_progress(partial: dict[str, Any], step: int) -> None:
        values = score(objectives, partial)
        if not all(math.isnan(v) for v in values.values()):
            tune.report({**values, "step": step, "final": False,
                         "trial_work_s": round(time.perf_counter() - began, 3)})

    # The metric names the objectives read (the last part of each path): measuring on the way, a runner
    # can skip the rest of its evaluation.
    figures = frozenset(path[-1] for expr in objectives.values() for path in expr.paths)
    context = RunContext(raw_config=raw, scenario_path=Path(spec.scenario_path) if spec.scenario_path else None,
                         on_progress=on_progress if spec.reports_progress else None,
                         progress_figures=figures if spec.reports_progress else None)
    report = run_scenario(scenario, out_dir, context, overwrite=True)
    result = {**score(objectives, report), "final": True,
              "trial_work_s": round(time.perf_counter() - began, 3), "run_dir": str(out_dir)}
    write_json(finished, result)
    tune.report(result)
