"""Real Ray Tune sweeps over a tiny unlearning scenario: results independent of concurrency, resuming after
a kill runs each configuration once, optuna's multi-objective search, and the analysis files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memorylab.cli import app
from memorylab.scenario_loader import load_named, load_scenario
from memorylab.tune.analysis import load_trials
from memorylab.tune.experiment import run_sweep
from memorylab.tune.paths import with_values
from tests.tune.conftest import WRAPPED, write_sweep

MEMORYLAB = Path(sys.executable).parent / "memorylab"


def referencing(shared: dict) -> dict:
    """WRAPPED pointing at the module's trained models, so a sweep trains nothing."""
    return with_values(WRAPPED, shared)


def sweep_in_process(folder: Path, **fields) -> dict[tuple, dict]:
    path = write_sweep(folder, **fields)
    sweep = load_scenario(path)
    wrapped, raw, wrapped_path = load_named(sweep.scenario, path)
    record = run_sweep(sweep, wrapped, raw, folder / "exp", scenario_path=wrapped_path)
    assert record["errored"] == 0, record["errors"]
    _, trials = load_trials(folder / "exp")
    return {tuple(sorted(t.params.items())): t.objectives for t in trials}


def test_trial_results_do_not_depend_on_how_many_run_at_once(tmp_path, shared_models):
    one = sweep_in_process(tmp_path / "one", scenario=referencing(shared_models), max_concurrent_trials=1)
    two = sweep_in_process(tmp_path / "two", scenario=referencing(shared_models), max_concurrent_trials=2)
    assert len(one) == 2 and one == two
    assert len({v["ppl"] for v in one.values()}) > 1  # the swept values do change the figures

    result = CliRunner().invoke(app, ["analyze", str(tmp_path / "two" / "exp")])
    assert result.exit_code == 0, result.output
    assert "forget (max)" in result.output and "ppl (min)" in result.output
    for name in ("analysis.csv", "analysis.md", "pareto.png"):
        assert (tmp_path / "two" / "exp" / name).stat().st_size > 0
    text = (tmp_path / "two" / "exp" / "analysis.md").read_text()
    assert "## Pareto front" in text and "## Best trial per objective" in text


def test_optuna_searches_several_objectives(tmp_path, shared_models):
    import optuna

    fields = dict(scenario=referencing(shared_models), space={"methods.0.lr": {"loguniform": [1e-4, 1e-2]}},
                  num_samples=2, search={"algorithm": "optuna", "seed": 3}, max_concurrent_trials=1)
    found = sweep_in_process(tmp_path, **fields)
    # The first draws of a seeded TPE sampler are its random start-up trials: the same with Optuna alone.
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.TPESampler(seed=3))
    expected = sorted(study.ask({"methods.0.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)})
                      .params["methods.0.lr"] for _ in range(2))
    assert sorted(dict(config)["methods.0.lr"] for config in found) == pytest.approx(expected)
    assert all(set(v) == {"forget", "ppl"} for v in found.values())


def _finished(exp: Path) -> dict[str, str]:
    # The result's content, not its file's mtime: Tune's syncing of trial folders may copy a file again
    # without the trial running again, while a second run would give another trial_work_s.
    return {p.parent.name: p.read_text() for p in exp.glob("trial_*/trial_result.json")}


def test_a_killed_sweep_resumes_and_runs_each_configuration_once(tmp_path, shared_models):
    path = write_sweep(tmp_path, scenario=referencing(shared_models), max_concurrent_trials=1,
                       space={"methods.0.lr": {"grid": [1e-4, 1e-3, 3e-3]}})
    exp = tmp_path / "exp"
    command = [str(MEMORYLAB), "tune", str(path), "--out", str(exp)]
    env = {**os.environ, "RAY_ADDRESS": ""}  # its own local Ray, not the tests' one
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while not _finished(exp) and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)  # the driver and the local Ray it started
        proc.wait()
    before = _finished(exp)
    assert 1 <= len(before) < 3, before

    resumed = subprocess.run(command + ["--resume"], capture_output=True, text=True, env=env, timeout=400)
    assert resumed.returncode == 0, resumed.stdout[-2000:] + resumed.stderr[-2000:]
    record, trials = load_trials(exp)
    configs = [tuple(sorted(t.params.items())) for t in trials]
    assert len(trials) == 3 and len(set(configs)) == 3 and {t.status for t in trials} == {"DONE"}
    after = _finished(exp)
    assert {name: after[name] for name in before} == before  # finished trials were not run again
    assert len(record["resumes"]) == 1 and record["finished"] is True
