"""A sweep that cannot work fails when it is loaded, one line per problem, on the sweep file's line."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memorylab.cli import app
from memorylab.scenario_loader import ScenarioError, load_scenario

WRAPPED = """\
  name: inner
  kind: unlearning
  methods:
    - method: npo
      label: m
"""
GOOD_SPACE = "space:\n  methods.0.lr: {loguniform: [1.0e-4, 1.0e-2]}\n"
GOOD_OBJECTIVES = "objectives:\n  - name: forget\n    maximize: 1 - models.m.knowmem_forget / models.target.knowmem_forget\n"


def sweep(space: str = GOOD_SPACE, objectives: str = GOOD_OBJECTIVES, extra: str = "",
          scenario: str = "scenario:\n" + WRAPPED) -> str:
    return "name: s\nkind: sweep\n" + scenario + space + objectives + extra


def problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "s.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as e:
        load_scenario(path)
    return e.value.problems


def test_a_good_sweep_loads(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(sweep())
    assert load_scenario(path).kind == "sweep"


CASES = [
    ("empty-space", sweep(space="space: {}\n"), "s.yaml:9: space", "search space is empty"),
    ("path-names-no-field", sweep(space="space:\n  methods.0.lerning_rate: {uniform: [0.1, 0.2]}\n"),
     "s.yaml:10: space.methods.0.lerning_rate", "has no 'lerning_rate'"),
    ("index-past-the-end", sweep(space="space:\n  methods.3.lr: {uniform: [0.1, 0.2]}\n"),
     "s.yaml:10: space.methods.3.lr", "is a list of 1"),
    ("value-does-not-fit", sweep(space="space:\n  methods.0.beta: {choice: [0.1, -1]}\n"),
     "s.yaml:10: space.methods.0.beta", "value -1 does not fit the wrapped scenario: methods.0.beta"),
    ("objective-not-produced", sweep(objectives="objectives:\n  - name: x\n    maximize: models.m.accuracy\n"),
     "s.yaml:13: objectives.0.maximize", "models.m.accuracy is not a figure of the unlearning report"),
    ("objective-renamed-by-a-swept-method", sweep(
        scenario="scenario:\n" + WRAPPED.replace("      label: m\n", ""),
        space="space:\n  methods.0.method: {grid: [npo, grad_diff]}\n",
        objectives="objectives:\n  - name: x\n    maximize: models.npo.knowmem_retain\n"),
     "s.yaml:12: objectives.0.maximize", "missing from the report of trials with methods.0.method='grad_diff'"),
    ("objective-code", sweep(objectives="objectives:\n  - name: x\n    maximize: __import__('os').getpid()\n"),
     "s.yaml:13: objectives.0.maximize", "is not allowed in an objective"),
    ("objective-both-directions", sweep(objectives="objectives:\n  - name: x\n    maximize: models.m.ppl_holdout\n"
                                                    "    minimize: models.m.ppl_holdout\n"),
     "s.yaml:12: objectives.0", "exactly one of maximize"),
    ("asha-without-intermediate-results", sweep(
        scenario="scenario:\n  name: inner\n  kind: memorization\n", space="space:\n  train.lr: {uniform: [0.001, 0.01]}\n",
        objectives="objectives:\n  - name: x\n    minimize: models.target.ppl_holdout\n",
        extra="scheduler: {name: asha}\n"), "s.yaml:11: scheduler.name", "reports only at the end"),
    ("asha-with-two-objectives", sweep(
        objectives=GOOD_OBJECTIVES + "  - name: utility\n    maximize: models.m.knowmem_retain\n",
        extra="scheduler: {name: asha}\n"), "s.yaml:1: ", "several objectives"),
    ("optuna-on-a-grid", sweep(space="space:\n  methods.0.lr: {grid: [1.0e-4, 1.0e-3]}\n",
                               extra="search: {algorithm: optuna}\n"), "s.yaml:1: ", "optuna cannot search a grid"),
    ("two-domain-kinds", sweep(space="space:\n  methods.0.lr: {uniform: [0.1, 0.2], choice: [1]}\n"),
     "s.yaml:10: space.methods.0.lr", "exactly one of"),
    ("loguniform-from-zero", sweep(space="space:\n  methods.0.lr: {loguniform: [0, 0.1]}\n"),
     "s.yaml:10: space.methods.0.lr", "positive low bound"),
    ("inline-wrapped-invalid", sweep(scenario="scenario:\n" + WRAPPED.replace("npo", "forgetall")),
     "s.yaml:7: scenario.methods.0", "forgetall"),
    ("wrapped-file-missing", sweep(scenario="scenario: nowhere.yaml\n"),
     "s.yaml:3: scenario", "nowhere.yaml:1: file: no such file"),
    ("wrapped-kind-not-sweepable", sweep(scenario="scenario:\n  name: a\n  kind: memory_agent\n"),
     "s.yaml:3: scenario", "cannot be swept"),
    ("no-trial-resources", sweep(extra="trial_resources: {num_cpus: 0}\n"), "s.yaml:1: ", "reserve nothing"),
]


@pytest.mark.parametrize("text,where,says", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_sweeps_fail_with_the_line_and_field(tmp_path, text, where, says):
    found = problems(tmp_path, text)
    assert any(p.startswith(str(tmp_path / where)) and says in p for p in found), found
    assert all("\n" not in p for p in found)


def test_a_wrapped_file_is_read_relative_to_the_sweep(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.yaml").write_text("\n".join(line[2:] for line in WRAPPED.splitlines()) + "\n")
    path = tmp_path / "sub" / "s.yaml"
    path.write_text(sweep(scenario="scenario: inner.yaml\n"))
    assert load_scenario(path).scenario == "inner.yaml"


def test_a_continuous_range_on_an_integer_field_is_refused(tmp_path):
    found = problems(tmp_path, sweep(space="space:\n  methods.0.steps: {uniform: [10, 50]}\n"))
    assert any("space.methods.0.steps" in p and "value 30.00000000000000" in p and "integer" in p for p in found), found
    assert load_scenario_ok(tmp_path, sweep(space="space:\n  methods.0.steps: {randint: [10, 50]}\n"))
    found = problems(tmp_path, sweep(space="space:\n  methods.0.steps: {uniform: [1, 1001]}\n"))  # a whole midpoint
    assert any("space.methods.0.steps" in p and "integer" in p for p in found), found


def load_scenario_ok(tmp_path: Path, text: str) -> bool:
    path = tmp_path / "ok.yaml"
    path.write_text(text)
    return load_scenario(path) is not None


def test_sweeps_wrapping_each_other_in_a_loop_are_refused(tmp_path):
    assert any("s.yaml leads back to itself" in p for p in problems(tmp_path, sweep(scenario="scenario: s.yaml\n")))
    (tmp_path / "b.yaml").write_text(sweep(scenario="scenario: s.yaml\n"))
    assert any("leads back to itself" in p for p in problems(tmp_path, sweep(scenario="scenario: b.yaml\n")))


def test_cli_validate_and_tune_refuse_a_bad_sweep_without_a_traceback(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(sweep(space="space:\n  methods.0.lerning_rate: {uniform: [0.1, 0.2]}\n"))
    for args in (["validate", str(path)], ["tune", str(path), "--out", str(tmp_path / "exp")]):
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 2, result.output
        assert "lerning_rate" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "exp").exists()


def test_run_points_a_sweep_to_tune(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(sweep())
    result = CliRunner().invoke(app, ["run", str(path)])
    assert result.exit_code == 2 and "memorylab tune" in result.output


def test_tune_refuses_a_folder_in_the_way(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(sweep())
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["tune", str(path), "--out", str(tmp_path / "exp")])
    assert result.exit_code == 2 and "--resume" in result.output
    result = CliRunner().invoke(app, ["tune", str(path), "--out", str(tmp_path / "exp"), "--overwrite", "--resume"])
    assert result.exit_code == 2 and "contradict" in result.output
    assert (tmp_path / "exp" / "notes.txt").read_text() == "mine"


def test_analyze_says_what_is_wrong_with_a_folder(tmp_path):
    result = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert result.exit_code == 1
    assert "is not a sweep experiment" in result.output and "Traceback" not in result.output


def test_analyze_says_a_damaged_sweep_record_is_damaged(tmp_path):
    (tmp_path / "sweep.json").write_text('{"scenario": ')
    result = CliRunner().invoke(app, ["analyze", str(tmp_path)])
    assert result.exit_code == 1 and "sweep.json is damaged" in result.output
    assert "Traceback" not in result.output


def test_resuming_where_no_experiment_is_fails_before_ray_starts(tmp_path):
    import ray

    path = tmp_path / "s.yaml"
    path.write_text(sweep())
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "notes.txt").write_text("mine")
    result = CliRunner().invoke(app, ["tune", str(path), "--out", str(tmp_path / "exp"), "--resume"])
    assert result.exit_code == 1 and "holds no Tune experiment to resume" in result.output, result.output
    assert not ray.is_initialized() and "Traceback" not in result.output
    # Left as it was: no memorylab marker either, which would make someone else's folder deletable by --overwrite.
    assert [p.name for p in (tmp_path / "exp").iterdir()] == ["notes.txt"]
    result = CliRunner().invoke(app, ["tune", str(path), "--out", str(tmp_path / "exp"), "--overwrite"])
    assert result.exit_code == 1 and "was not written by memorylab; refusing to delete it" in result.output
    assert (tmp_path / "exp" / "notes.txt").read_text() == "mine"


def test_values_that_fit_one_by_one_but_not_together_are_refused(tmp_path):
    uld = "scenario:\n  name: inner\n  kind: unlearning\n  methods:\n    - method: uld\n      label: m\n"
    space = "space:\n  model.tiny.num_layers: {choice: [2, 4]}\n  methods.0.layers: {randint: [1, 3]}\n"
    found = problems(tmp_path, sweep(scenario=uld, space=space))
    assert any("s.yaml:9: space: values model.tiny.num_layers=2, methods.0.layers=3 do not fit the wrapped "
               "scenario together" in p and "uld layers (3) must be fewer" in p for p in found), found
    assert load_scenario_ok(tmp_path, sweep(scenario=uld, space=space.replace("[1, 3]", "[1, 1]")))


def test_storage_path_is_an_output_taken_from_the_working_directory_with_home_expanded(tmp_path, monkeypatch):
    path = tmp_path / "s.yaml"
    path.write_text(sweep(extra="storage_path: ./newexp\n"))
    assert load_scenario(path).storage_path == "newexp"  # need not exist, and is not the sweep file's folder
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    assert load_scenario(path, ["storage_path=~/exps"]).storage_path == str(home / "exps")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["tune", str(path), "--set", "storage_path=~/exps", "--resume"])
    assert result.exit_code == 1 and f"{home / 'exps' / 's'} holds no Tune experiment" in result.output
    assert not (tmp_path / "~").exists()
