"""`memorylab tune`: run (or resume) a sweep as a Ray Tune experiment kept in one folder.

setup:  load the wrapped scenario; when no swept field changes what its trials would train first (the target
        and retrain models of an unlearning run, the base model of a continual run), train that once into
        <experiment>/shared and point every trial at it.
run:    a Tuner over the trainable of memorylab/tune/trainable.py, with the searcher and scheduler the file
        names; each trial reserves `trial_resources`, and the wrapped runner's tasks run inside that
        reservation (Tune's placement groups capture child tasks).
report: sweep.json (config, versions, seeds, shared setup, wall time; a resume keeps it and adds itself to
        `resumes`), then the analysis (analysis.csv/md,
        pareto.png) as `memorylab analyze` writes it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

from memorylab.errors import MemorylabError
from memorylab.lazy import load_target
from memorylab.report import versions, write_json
from memorylab.scenario import kind_of
from memorylab.schema.sweep import SweepScenario
from memorylab.tune.analysis import SWEEP_FILE
from memorylab.tune.errors import error_line
from memorylab.tune.resume import check_same_sweep, resume_record
from memorylab.tune.space import param_space
from memorylab.tune.trainable import TrialSpec, run_trial

SHARED_FOLDER = "shared"


def shared_setup(sweep: SweepScenario, wrapped: Any, folder: Path, scenario_path: Optional[Path]) -> dict[str, Any]:
    """Overrides that point every trial at models trained once here, or {} when trials must train their own
    (a swept field changes them) or the wrapped kind has nothing to share."""
    setup = kind_of(wrapped).shared_setup
    if setup is None or any(path == p or path.startswith(p + ".") for path in sweep.space for p in setup.prefixes):
        return {}
    return dict(load_target(setup.prepare)(wrapped, folder, scenario_path))


def _searcher(sweep: SweepScenario) -> Any:
    if sweep.search.algorithm == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        names = [o.name for o in sweep.objectives]
        modes = [o.mode for o in sweep.objectives]
        one = len(names) == 1
        # TPE handles several objectives too (Optuna's multi-objective mode); seeded for reproducible draws.
        return OptunaSearch(metric=names[0] if one else names, mode=modes[0] if one else modes,
                            sampler=optuna.samplers.TPESampler(seed=sweep.searcher_seed))
    from ray.tune.search.basic_variant import BasicVariantGenerator

    # Tune ignores TuneConfig.max_concurrent_trials for a generator passed in; it must be told itself.
    return BasicVariantGenerator(random_state=sweep.searcher_seed, max_concurrent=sweep.max_concurrent_trials or 0)


def _scheduler(sweep: SweepScenario) -> Any:
    if sweep.scheduler.name != "asha":
        return None
    from ray.tune.schedulers import ASHAScheduler

    objective = sweep.objectives[0]
    s = sweep.scheduler
    return ASHAScheduler(metric=objective.name, mode=objective.mode, time_attr="training_iteration",
                         grace_period=s.grace_period, reduction_factor=s.reduction_factor,
                         max_t=s.max_t or 10**9)


def _trainable(sweep: SweepScenario, spec: TrialSpec) -> Any:
    from functools import partial

    from ray import tune

    bundle = {"CPU": sweep.trial_resources.num_cpus, "GPU": sweep.trial_resources.num_gpus,
              **sweep.trial_resources.resources}
    # An empty head bundle: the trainable itself only waits on its runner's tasks, so the whole reservation
    # is left to them, and two trials of one CPU each fit two CPUs.
    groups = [{}, {k: v for k, v in bundle.items() if v}]
    function = partial(run_trial, spec=spec)
    function.__name__ = "trial"  # type: ignore[attr-defined]  (Tune names trials after the trainable)
    return tune.with_resources(function, tune.PlacementGroupFactory(groups))


def _reporter(sweep: SweepScenario) -> Any:
    from ray.tune import CLIReporter

    return CLIReporter(parameter_columns=list(sweep.space), metric_columns=[o.name for o in sweep.objectives],
                       max_report_frequency=15, sort_by_metric=False)


def run_sweep(sweep: SweepScenario, wrapped: Any, wrapped_raw: dict, folder: Path, *,
              scenario_path: Optional[Path], address: Optional[str] = None, resume: bool = False,
              raw_config: Optional[dict] = None) -> dict[str, Any]:
    """Run or resume the experiment in `folder`; returns the sweep record (also written as sweep.json)."""
    from ray import tune

    from memorylab.cluster import ray_session

    folder = folder.absolute()
    # Before Ray and the shared setup (which trains): a resume that asks for another sweep than the one recorded,
    # or a mistyped --out, must not cost a training first.
    if resume:
        check_same_sweep(folder, sweep, wrapped)
    if resume and not tune.Tuner.can_restore(str(folder)):
        raise MemorylabError(f"{folder} holds no Tune experiment to resume; run without --resume")
    folder.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    record: dict[str, Any] = {
        "scenario": sweep.name, "kind": sweep.kind, "config": sweep.model_dump(mode="json"),
        "wrapped": {"kind": wrapped.kind, "config": wrapped.model_dump(mode="json")},
        "versions": versions(), "seed": sweep.seed, "searcher_seed": sweep.searcher_seed,
        "raw_config": raw_config, "finished": False,
    }
    if resume:  # the recorded sweep's record is kept, with this resume noted in it
        record = resume_record(folder, record)
    # Tune saves the experiment's state at most every 10 s by default; every 2 s keeps what an interruption
    # loses small (a trial that finished in between is not re-run anyway: see trainable.RESULT_FILE).
    os.environ.setdefault("TUNE_GLOBAL_CHECKPOINT_S", "2")
    with ray_session(address or sweep.ray.address, sweep.ray.num_cpus):
        # Written before any trial, so an interrupted experiment can be analysed; but only once Ray is there,
        # so a sweep that could not even connect leaves its folder empty (the CLI then removes it).
        write_json(folder / SWEEP_FILE, record)
        fixed = shared_setup(sweep, wrapped, folder / SHARED_FOLDER, scenario_path)
        spec = TrialSpec(raw=wrapped_raw, fixed=fixed,
                         objectives=tuple((o.name, o.expr) for o in sweep.objectives),
                         scenario_path=str(scenario_path.absolute()) if scenario_path else None,
                         # Intermediate results cost a run measurements; only a scheduler reads them.
                         reports_progress=sweep.scheduler.name == "asha" and kind_of(wrapped).reports_progress,
                         experiment_dir=str(folder))
        trainable = _trainable(sweep, spec)
        if resume:
            tuner = tune.Tuner.restore(str(folder), trainable=trainable, resume_unfinished=True,
                                       resume_errored=True)
        else:
            tuner = tune.Tuner(
                trainable, param_space=param_space(sweep.space),
                tune_config=tune.TuneConfig(search_alg=_searcher(sweep), scheduler=_scheduler(sweep),
                                            num_samples=sweep.num_samples,
                                            # One trainable process serves trial after trial: a new process
                                            # per trial would pay a worker's start-up (torch, Ray) each time.
                                            reuse_actors=True,
                                            max_concurrent_trials=sweep.max_concurrent_trials),
                run_config=tune.RunConfig(name=folder.name, storage_path=str(folder.parent),
                                          progress_reporter=_reporter(sweep), verbose=1,
                                          failure_config=tune.FailureConfig(max_failures=0)))
        grid = tuner.fit()
    errors = [error_line(r.error) for r in grid if r.error is not None]  # one line each, the error itself
    wall_s = round(time.perf_counter() - began, 3)
    record.update(shared=fixed, trials=len(grid), errored=len(errors), errors=errors[:5], finished=True)
    # A resume keeps the first run's wall time (absent when that run was interrupted) and notes its own.
    (record["resumes"][-1] if resume else record)["wall_s"] = wall_s
    write_json(folder / SWEEP_FILE, record)
    return record
