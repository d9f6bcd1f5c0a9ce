"""The quickstart scenario end to end, at reduced size: memorization must show, and numbers must repeat."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import ray

from memorylab.cluster import ray_session
from memorylab.errors import MemorylabError
from memorylab.runners import run_scenario
from memorylab.scenario_loader import load_scenario

pytestmark = pytest.mark.e2e
QUICKSTART = Path(__file__).parents[2] / "scenarios" / "quickstart.yaml"

# A smaller world and model than the quickstart; trained long enough (per document) to memorize.
REDUCED = ["world.num_people=16", "world.forget=3", "world.holdout=3", "world.canaries=2",
           "world.canary_candidates=99", "model.tiny.hidden_size=64", "model.tiny.intermediate_size=192",
           "model.tiny.vocab_size=1024", "train.batch_size=8", "train.steps=400", "train.checkpoint_every=100"]
# Smaller still, for checks that need two runs but no memorization.
MINUTE = REDUCED[:-2] + ["train.steps=30", "train.checkpoint_every=10", "world.canary_candidates=19",
                         "eval.verbmem_max_new_tokens=16", "eval.knowmem_max_new_tokens=8"]


@pytest.fixture
def local_ray():
    with ray_session(num_cpus=2):
        yield
    assert not ray.is_initialized()


def test_quickstart_exhibits_memorization(local_ray, tmp_path):
    scenario = load_scenario(QUICKSTART, REDUCED)
    report = run_scenario(scenario, tmp_path / "run")
    target, retrain = report["models"]["target"], report["models"]["retrain"]
    assert target["verbmem_forget"] >= 0.5
    assert target["verbmem_forget"] - retrain["verbmem_forget"] >= 0.3
    assert target["canary_exposure_mean"] - retrain["canary_exposure_mean"] >= 3.0
    assert abs(target["knowmem_retain"] - retrain["knowmem_retain"]) <= 0.1
    assert target["mia_auc_forget_holdout"] > retrain["mia_auc_forget_holdout"]
    assert retrain["privleak"] == 0.0 and target["privleak"] < 0  # MUSE's sign: the target under-unlearns

    saved = json.loads((tmp_path / "run" / "report.json").read_text())
    assert {"scenario", "kind", "config", "versions", "seed", "timings_s", "models"} <= set(saved)
    assert saved["config"]["train"]["steps"] == 400 and saved["versions"]["torch"]
    for name in ("report.md", "memorization.png", "training_loss.png", "models/target/final/config.json"):
        assert (tmp_path / "run" / name).exists(), name
    assert "memorized" in (tmp_path / "run" / "report.md").read_text()


def test_same_seed_same_numbers_whatever_the_ray_size(tmp_path):
    """Run once on a 2-CPU Ray and once on a 1-CPU Ray (tasks then run one after another)."""
    scenario = load_scenario(QUICKSTART, MINUTE)
    reports = []
    for cpus, folder in ((2, "a"), (1, "b")):
        with ray_session(num_cpus=cpus):
            reports.append(run_scenario(scenario, tmp_path / folder))
    assert reports[0]["models"] == reports[1]["models"]
    other = run_scenario(load_scenario(QUICKSTART, MINUTE + ["seed=1"]), tmp_path / "c")
    assert other["models"] != reports[0]["models"]


def test_resume_reuses_finished_models(local_ray, tmp_path):
    scenario = load_scenario(QUICKSTART, MINUTE)
    first = run_scenario(scenario, tmp_path / "run")
    again = run_scenario(scenario, tmp_path / "run", resume=True)
    assert all(t["resumed_from"] == "finished" for t in again["training"].values())
    assert again["models"] == first["models"]
    # Resumed with another learning rate, the run must not pass the old models off as trained with it.
    changed = load_scenario(QUICKSTART, MINUTE + ["train.lr=0.02"])
    with pytest.raises(MemorylabError, match=r"train\.lr was 0\.003, now 0\.02.*--overwrite"):
        run_scenario(changed, tmp_path / "run", resume=True)
    assert json.loads((tmp_path / "run" / "report.json").read_text())["models"] == first["models"]
