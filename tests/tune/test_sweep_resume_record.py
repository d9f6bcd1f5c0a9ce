"""`tune --resume` keeps the experiment's record, and refuses a sweep other than the recorded one (no Ray)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memorylab.cli import app
from memorylab.scenario_loader import ScenarioError, load_named, load_scenario
from memorylab.tune.analysis import SWEEP_FILE
from memorylab.tune.resume import check_same_sweep, resume_record
from tests.tune.conftest import write_sweep


def finished_experiment(tmp_path: Path) -> tuple[Path, Path]:
    """A sweep file and a folder holding the record of a finished run of it (as run_sweep writes it)."""
    path = write_sweep(tmp_path)
    sweep = load_scenario(path)
    wrapped, _, _ = load_named(sweep.scenario, path)
    exp = tmp_path / "exp"
    exp.mkdir()
    (exp / ".memorylab-run").write_text("sweep\n")
    record = {"scenario": "s", "config": sweep.model_dump(mode="json"),
              "wrapped": {"kind": wrapped.kind, "config": wrapped.model_dump(mode="json")},
              "trials": 2, "errored": 0, "wall_s": 12.5, "finished": True}
    (exp / SWEEP_FILE).write_text(json.dumps(record))
    return path, exp


@pytest.mark.parametrize("setting, names", [
    ("num_samples=5", "num_samples is 5 but"),
    ("search.seed=7", "search.seed is 7 but"),
    ("scenario.methods.0.lr=0.5", "scenario.methods.0.lr is 0.5 but"),
    ("objectives.0.maximize=models.m.knowmem_forget", "objectives.0.maximize is"),
])
def test_a_resume_that_asks_for_another_sweep_is_refused_in_one_line(tmp_path, setting, names):
    path, exp = finished_experiment(tmp_path)
    before = (exp / SWEEP_FILE).read_text()
    result = CliRunner().invoke(app, ["tune", str(path), "--out", str(exp), "--resume", "--set", setting])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and names in lines[0] and "--resume" in lines[0], lines
    assert "Traceback" not in result.output
    assert (exp / SWEEP_FILE).read_text() == before  # the record is untouched


def test_the_same_sweep_passes_and_keeps_its_record_with_the_resume_added(tmp_path):
    path, exp = finished_experiment(tmp_path)
    # Where and how it runs may change on a resume.
    sweep = load_scenario(path, ["ray.num_cpus=3", "trial_resources.num_cpus=2"])
    wrapped, _, _ = load_named(sweep.scenario, path)
    check_same_sweep(exp, sweep, wrapped)
    record = resume_record(exp, {"fresh": True})
    assert record["wall_s"] == 12.5 and record["config"]["num_samples"] == 1 and "fresh" not in record
    assert len(record["resumes"]) == 1 and {"when", "versions"} <= set(record["resumes"][0])


def test_a_differing_wrapped_scenario_is_refused_by_the_check_itself(tmp_path):
    path, exp = finished_experiment(tmp_path)
    sweep = load_scenario(path)
    wrapped, _, _ = load_named(sweep.scenario, path)
    with pytest.raises(ScenarioError, match="scenario.train.steps"):
        check_same_sweep(exp, sweep, wrapped.model_copy(update={"train": wrapped.train.model_copy(
            update={"steps": 41})}))


def test_a_resumed_trial_finds_the_result_its_first_run_synced_to_the_experiment(tmp_path, monkeypatch):
    # A resume runs in a new Ray session, so a trial's working folder is a new, empty staging folder; the
    # result the first run left is only in the experiment's folder (Tune synced it there before the kill).
    from ray import tune

    from memorylab.tune.trainable import RESULT_FILE, TrialSpec, run_trial

    name = "trial_0_lr=0.001"
    staging = tmp_path / "ray-session-2" / name
    staging.mkdir(parents=True)
    stored = {"forget": 0.25, "final": True, "trial_work_s": 3.5}
    (tmp_path / "exp" / name).mkdir(parents=True)
    (tmp_path / "exp" / name / RESULT_FILE).write_text(json.dumps(stored))
    reported = []
    monkeypatch.setattr(tune, "get_context", lambda: type("Context", (), {"get_trial_dir": lambda _: str(staging)})())
    monkeypatch.setattr(tune, "report", reported.append)
    # raw={} is no scenario: running the trial again would fail to validate it.
    run_trial({}, TrialSpec(raw={}, experiment_dir=str(tmp_path / "exp")))
    assert reported == [stored]
