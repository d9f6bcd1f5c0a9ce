"""Resources that a local Ray or a trial's reservation cannot hold are refused at load; a failed trial's
error is kept as one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from memorylab.errors import MemorylabError
from memorylab.scenario_loader import ScenarioError, load_scenario
from tests.tune.conftest import WRAPPED, write_sweep

LOCAL_2 = {"num_cpus": 2}


def refused(path: Path, *overrides: str) -> str:
    with pytest.raises(ScenarioError) as e:
        load_scenario(path, overrides)
    assert len(e.value.problems) == 1, e.value.problems
    return e.value.problems[0]


def test_an_actor_asking_more_cpus_than_the_local_ray_is_refused(tmp_path):
    path = tmp_path / "u.yaml"
    path.write_text(yaml.safe_dump({**WRAPPED, "ray": LOCAL_2, "resources": {"unlearner": {"num_cpus": 4}}}))
    assert "resources.unlearner.num_cpus is 4, more than the 2 CPUs of the local Ray" in refused(path)
    # Joining a cluster (or a local Ray with every CPU) is not checked: the cluster may well have them.
    load_scenario(path, ["ray.address=auto"])
    load_scenario(path, ["ray.num_cpus=null"])
    load_scenario(path, joins_ray=True)  # --address on the command line, or $RAY_ADDRESS


def test_a_command_line_address_or_ray_address_lifts_the_local_ray_check(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from memorylab.cli import app

    path = tmp_path / "u.yaml"
    path.write_text(yaml.safe_dump({**WRAPPED, "ray": LOCAL_2, "resources": {"unlearner": {"num_cpus": 4}}}))
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    refused_here = CliRunner().invoke(app, ["validate", str(path)])
    assert refused_here.exit_code == 2 and "more than the 2 CPUs of the local Ray" in refused_here.output
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert CliRunner().invoke(app, ["validate", str(path)]).exit_code == 0
    monkeypatch.delenv("RAY_ADDRESS")
    # `run --address` gets past loading to connecting (nothing listens on port 1), not refused at load.
    joined = CliRunner().invoke(app, ["run", str(path), "--out", str(tmp_path / "run"), "--address", "127.0.0.1:1"])
    assert joined.exit_code == 1 and "could not reach the Ray cluster at '127.0.0.1:1'" in joined.output


def test_a_sweep_whose_trials_cannot_fit_is_refused(tmp_path):
    path = write_sweep(tmp_path, ray=LOCAL_2)
    assert "trial_resources.num_cpus is 3, more than the 2 CPUs" in refused(path, "trial_resources.num_cpus=3")
    problem = refused(path, "scenario.resources.trainer.num_cpus=2")
    assert "resources.trainer ask num_cpus 2, more than each trial reserves (1)" in problem
    problem = refused(path, "scenario.resources.model.resources={accel: 1}")
    assert "resources.model ask accel 1, more than each trial reserves (0)" in problem
    load_scenario(path, ["scenario.resources.trainer.num_cpus=2", "trial_resources.num_cpus=2"])


def test_a_wrapped_scenario_s_own_ray_section_is_not_checked(tmp_path):
    # Its trials run in the sweep's Ray: the wrapped file's ray.num_cpus starts nothing, so a wrapped scenario
    # written to run alone on one CPU still sweeps with two-CPU trials.
    inner = {**WRAPPED, "ray": {"num_cpus": 1}, "resources": {"trainer": {"num_cpus": 2}}}
    (tmp_path / "inner.yaml").write_text(yaml.safe_dump(inner))
    for scenario in (inner, "inner.yaml"):
        path = write_sweep(tmp_path, scenario=scenario, trial_resources={"num_cpus": 2})
        assert load_scenario(path).trial_resources.num_cpus == 2
    from memorylab.scenario_loader import load_named

    model, _, _ = load_named(load_scenario(path).scenario, path)
    assert model.resources.trainer.num_cpus == 2


def test_error_line_is_the_last_meaningful_line_without_colours():
    from memorylab.tune.errors import error_line, last_line

    text = "\x1b[36mray::ImplicitFunc.train()\x1b[39m (pid=1)\nTraceback:\n  x = f()\n      ^^^\nTypeError: bad\n\n"
    assert last_line(text) == "TypeError: bad"
    assert error_line(MemorylabError("line one\nline two")) == "line one line two"


def test_a_failed_trial_is_told_by_its_error_not_by_ray_s_coloured_header():
    import traceback

    from ray.exceptions import RayTaskError

    from memorylab.tune.errors import error_line

    try:
        max(3)
    except TypeError as e:
        text = "".join(traceback.format_exception(e))
        with_cause = RayTaskError("ImplicitFunc.train", text, e, proctitle="ray::ImplicitFunc.train()")
        without = RayTaskError("ImplicitFunc.train", text, None, proctitle="ray::ImplicitFunc.train()")
    assert str(with_cause).startswith("\x1b[36mray::")  # what sweep.json used to keep
    assert error_line(with_cause) == error_line(without) == "TypeError: 'int' object is not iterable"
