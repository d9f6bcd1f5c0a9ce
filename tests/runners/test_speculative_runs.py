"""eval.speculative.drafter 'train' in the memorization and unlearning runners: a 1-layer drafter trained beside
the target, used by every measured model, and reports whose metrics equal those of plain decoding (greedy
speculative decoding emits the model's own tokens). Tiny world and model, 200 training steps."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from memorylab.runners import run_scenario
from memorylab.runners.unlearning.shared import prepare_shared
from memorylab.scenario import KINDS
from memorylab.scenario_loader import ScenarioError, load_scenario
from memorylab.tune.paths import with_values
from tests.tune.conftest import WRAPPED

SPECULATIVE = {"drafter": "train", "gamma": 3}
# The sweep tests' tiny world and model, trained long enough to say different things (after 40 steps every
# model answers blanks, which any drafter guesses), generating a little longer so that drafts can be kept.
TRAIN = {**WRAPPED["train"], "steps": 200, "checkpoint_every": 200}
EVAL = {**WRAPPED["eval"], "verbmem_max_new_tokens": 12}
MEMORIZATION = {"name": "mem", "kind": "memorization", "seed": 0, "world": WRAPPED["world"],
                "model": WRAPPED["model"], "train": TRAIN, "eval": EVAL}
ULD = {"method": "uld", "layers": 1, "steps": 6, "batch_size": 4, "seq_len": 64}
UNLEARNING = {**WRAPPED, "name": "unl", "train": TRAIN, "eval": EVAL, "methods": [*WRAPPED["methods"], ULD],
              "resources": {"model": {"num_cpus": 0.5}}}  # the four models' actors start (import torch) together


def scenario(raw: dict, speculative: bool):
    eval_cfg = {**raw["eval"], **({"speculative": SPECULATIVE} if speculative else {})}
    return KINDS[raw["kind"]].schema.model_validate({**raw, "eval": eval_cfg})


def assert_drafted(report: dict, models: set[str], run: Path) -> None:
    section = report["speculative"]
    drafter = section["drafter"]
    assert drafter["path"] == str((run / "models" / "drafter" / "final").resolve()) and drafter["trained_here"]
    assert (run / "models" / "drafter" / "final" / "token_counts.json").exists()  # VocabTrim can trim it
    assert drafter["steps"] == TRAIN["steps"] and drafter["final_loss"] > 0
    assert json.loads((run / "models" / "drafter" / "final" / "config.json").read_text())["num_hidden_layers"] == 1
    assert set(section["models"]) == models
    for figures in section["models"].values():
        assert figures["drafted"] > 0 and 0 <= figures["acceptance_rate"] <= 1 and figures["tokens_per_s"] > 0
    assert "## Speculative decoding" in (run / "report.md").read_text()


def test_memorization_with_a_trained_drafter_reports_the_plain_metrics(ray_cluster, tmp_path):
    run = tmp_path / "run"
    drafted = run_scenario(scenario(MEMORIZATION, True), run)
    assert_drafted(drafted, {"target", "retrain"}, run)
    target_parameters = drafted["training"]["target"]["parameters"]
    assert drafted["speculative"]["drafter"]["parameters"] < target_parameters
    # Drafts are kept and rejected (the equality below is not that of a drafter that always guesses right),
    # and the models say something (not the blanks that any drafter guesses).
    assert 0 < drafted["speculative"]["models"]["target"]["acceptance_rate"] < 1
    assert any(s["output"].strip() for s in drafted["samples"]["target"]["verbmem_forget"])
    # The same folder: target and retrain are reused (same steps), only the evaluation runs again, plainly.
    plain = run_scenario(scenario(MEMORIZATION, False), run)
    assert plain["speculative"] is None
    assert all(t["resumed_from"] == "finished" for t in plain["training"].values())
    assert drafted["models"] == plain["models"]
    assert drafted["samples"] == plain["samples"]  # VerbMem and KnowMem generations, token for token


def test_unlearning_with_a_trained_drafter_and_a_sweep_sharing_it(ray_cluster, tmp_path):
    run = tmp_path / "run"
    drafted = run_scenario(scenario(UNLEARNING, True), run)
    assert_drafted(drafted, {"target", "retrain", "m", "uld"}, run)  # the ULD model drafts with it too

    # A sweep's shared setup finds the three models finished in its folder and points trials at them, so
    # that trials name the drafter instead of training one each.
    log = run / "models" / "drafter" / "final" / "train_log.json"
    trained_at = log.stat().st_mtime_ns
    overrides = prepare_shared(scenario(UNLEARNING, True), run, None)
    assert log.stat().st_mtime_ns == trained_at  # reused, not trained again
    assert overrides["eval.speculative.drafter"] == str((run / "models" / "drafter" / "final").absolute())
    assert overrides["reference.target"] == str((run / "models" / "target" / "final").absolute())
    trial = KINDS["unlearning"].schema.model_validate(with_values(scenario(UNLEARNING, True).model_dump(), overrides))
    assert trial.eval.speculative.drafter == overrides["eval.speculative.drafter"]


def test_runs_without_a_drafter_say_so_at_load():
    two_actors = {**UNLEARNING, "methods": [{"method": "uld", "layers": 1, "placement": "two_actors"}]}
    with pytest.raises(ValueError, match="two_actors cannot decode speculatively"):
        scenario(two_actors, True)
    assert scenario(two_actors, False)
    # A continual run measures with eval.speculative too but trains no drafter.
    continual = Path(__file__).parents[2] / "scenarios" / "continual_replay.yaml"
    with pytest.raises(ScenarioError, match="for memorization and unlearning runs, not continual"):
        load_scenario(continual, ["eval.speculative={drafter: train}"])
