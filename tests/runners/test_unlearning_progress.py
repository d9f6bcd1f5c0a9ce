"""Intermediate results of an unlearning run: each method measured while it unlearns, for ASHA to read."""

from __future__ import annotations

import json

import pytest
import yaml

from memorylab.runners.contract import RunContext
from memorylab.runners.unlearning.progress import probe_steps
from memorylab.runners.unlearning.run import run
from memorylab.scenario import KINDS
from memorylab.scenario_loader import load_named, load_scenario
from memorylab.tune.analysis import load_trials
from memorylab.tune.experiment import run_sweep
from memorylab.tune.paths import with_values
from tests.tune.conftest import WRAPPED, shared_models  # noqa: F401  (the module's target and retrain)


@pytest.mark.parametrize("steps, points, expected", [
    (8, 3, (2, 4, 6)), (100, 4, (20, 40, 60, 80)), (5, 3, (1, 2, 4)), (2, 3, (1,)), (1, 3, ()), (10, 1, (5,))])
def test_probe_steps_are_evenly_spaced_inside_the_run(steps, points, expected):
    assert probe_steps(steps, points) == expected


def _scenario(shared_models, **values):
    methods = [{"method": "grad_diff", "label": "m", "steps": 6, "batch_size": 4, "seq_len": 64, "lr": 3e-3},
               {"method": "uld", "label": "u", "layers": 1, "steps": 4, "batch_size": 4, "seq_len": 64}]
    raw = with_values({**WRAPPED, "methods": methods, "progress_points": 2}, {**shared_models, **values})
    return KINDS["unlearning"].schema.model_validate(raw)


def test_partial_reports_come_at_each_point_and_change_nothing(tmp_path, shared_models, ray_cluster):
    scenario = _scenario(shared_models)
    partials = []
    report = run(scenario, tmp_path / "probed", RunContext(on_progress=lambda p, step: partials.append((step, p))))
    assert [step for step, _ in partials] == [1, 2]
    for step, partial in partials:
        assert set(partial["models"]) == {"target", "retrain", "m", "u"}
        # The same figures as the final report, compared against the same retrain (PrivLeak included).
        assert set(partial["models"]["m"]) == set(report["models"]["m"])
        assert partial["models"]["target"] == report["models"]["target"]
        assert partial["progress"] == {"point": step, "of": 3, "steps": {"m": 2 * step, "u": [1, 3][step - 1]}}
    # The probes measured models on the way: the grad_diff model after 2 steps is not the final one.
    assert partials[0][1]["models"]["m"]["ppl_holdout"] != report["models"]["m"]["ppl_holdout"]
    # ... and left no trace: a run without them ends with the same models, hence the same figures.
    plain = run(scenario, tmp_path / "plain", RunContext())
    assert plain["models"] == report["models"]
    assert plain["methods"]["m"]["final_loss"] == report["methods"]["m"]["final_loss"]


def test_probes_measure_only_the_figures_their_reader_names(tmp_path, shared_models, ray_cluster):
    partials = []

    def on_progress(partial, step):
        partials.append(partial)

    context = RunContext(on_progress=on_progress, progress_figures=frozenset({"knowmem_forget", "privleak"}))
    report = run(_scenario(shared_models), tmp_path / "run", context)
    assert len(partials) == 2
    for partial in partials:
        # KnowMem on the forget set, and the MIA that PrivLeak is computed from; nothing else was measured.
        assert set(partial["models"]["m"]) == {"knowmem_forget", "mia_auc_forget_holdout", "mia_auc_min_k_pp",
                                               "mia_auc_loss", "mia_auc_zlib", "privleak"}
        assert partial["models"]["target"] == report["models"]["target"]  # the references in full
    assert set(report["models"]["m"]) > set(partials[0]["models"]["m"])  # the final measurement in full


def test_asha_stops_an_unlearning_trial_on_intermediate_results(tmp_path, shared_models, ray_cluster):
    """Trial 1 (a small learning rate) keeps perplexity low; trial 2's large one wrecks it by the first point,
    so ASHA (reduction factor 2: a trial goes on only in the better half of its rung) stops trial 2 there."""
    wrapped = with_values({**WRAPPED, "progress_points": 3}, {"methods.0.steps": 8})
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "asha", "kind": "sweep", "scenario": wrapped,
        "space": {"methods.0.lr": {"grid": [1e-5, 5e-2]}},
        "objectives": [{"name": "ppl", "minimize": "models.m.ppl_holdout"}],
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
        "trial_resources": {"num_cpus": 1}, "max_concurrent_trials": 1}))
    sweep = load_scenario(path)
    _, raw, wrapped_path = load_named(sweep.scenario, path)
    raw = with_values(raw, shared_models)  # the module's target and retrain: no training here
    record = run_sweep(sweep, KINDS["unlearning"].schema.model_validate(raw), raw, tmp_path / "exp",
                       scenario_path=wrapped_path)
    assert record["errored"] == 0, record["errors"]
    _, trials = load_trials(tmp_path / "exp")
    by_lr = {t.params["methods.0.lr"]: t for t in trials}
    assert by_lr[1e-5].status == "DONE" and by_lr[5e-2].status == "STOPPED"
    reports = {}
    for result in (tmp_path / "exp").glob("trial_*/result.json"):
        lines = [json.loads(line) for line in result.read_text().splitlines() if line.strip()]
        reports[lines[0]["config"]["methods.0.lr"]] = lines
    # The finished trial reported at steps 2, 4 and 6 and then its final result; the stopped one, once.
    assert [r["final"] for r in reports[1e-5]] == [False, False, False, True]
    assert [r["final"] for r in reports[5e-2]] == [False]
    assert reports[5e-2][0]["ppl"] > reports[1e-5][0]["ppl"]
