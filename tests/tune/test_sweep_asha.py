"""ASHA reads a continual runner's intermediate results: every trial reports at each measurement point."""

from __future__ import annotations

import yaml

from memorylab.scenario_loader import load_named, load_scenario
from memorylab.tune.analysis import load_trials
from memorylab.tune.experiment import run_sweep

CONTINUAL = {
    "name": "c", "kind": "continual", "seed": 0,
    "world": {"num_people": 12, "forget": 2, "holdout": 2, "paraphrases": 1, "canaries": 0},
    "model": {"name": "tiny", "tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                                       "vocab_size": 400, "max_position_embeddings": 256}},
    "train": {"steps": 20, "batch_size": 8, "seq_len": 64, "checkpoint_every": 20},
    "eval": {"knowmem_max_new_tokens": 6},
    "new_data": {"people": 4},
    "continual": {"steps": 24, "batch_size": 8, "seq_len": 64, "eval_every": 8, "eval_questions": 12,
                  "eval_documents": 12},
    "arms": [{"name": "a", "replay": 0.0, "max_lr": 3e-3, "schedule": "cosine"}],
    "retention": {"probes": 3, "insert_at": 8, "repeats": [1]},
}


def test_asha_stops_on_intermediate_results(tmp_path, ray_cluster):
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({
        "name": "asha", "kind": "sweep", "scenario": CONTINUAL,
        "space": {"arms.0.replay": {"grid": [0.0, 0.5]}, "arms.0.max_lr": {"grid": [1e-4, 3e-3]}},
        "objectives": [{"name": "forgetting", "minimize": "arms.a.forgetting"}],
        "scheduler": {"name": "asha", "grace_period": 1, "reduction_factor": 2},
        "trial_resources": {"num_cpus": 1}, "max_concurrent_trials": 1}))
    sweep = load_scenario(path)
    wrapped, raw, wrapped_path = load_named(sweep.scenario, path)
    record = run_sweep(sweep, wrapped, raw, tmp_path / "exp", scenario_path=wrapped_path)
    assert record["errored"] == 0, record["errors"]
    assert set(record["shared"]) == {"reference.base"}  # the base model was trained once for all trials
    _, trials = load_trials(tmp_path / "exp")
    assert len(trials) == 4 and {t.status for t in trials} <= {"DONE", "STOPPED"}
    # Measurements at steps 0, 8, 16 and 24 reach Tune as they are taken: a trial that ran to the end
    # reported more than once, and a trial ASHA stopped has no final report.
    for result in (tmp_path / "exp").glob("trial_*/result.json"):
        lines = [line for line in result.read_text().splitlines() if line.strip()]
        assert len(lines) >= 2
