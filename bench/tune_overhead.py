"""What a Ray Tune sweep costs beyond its trials' own work: start-up, scheduling, placement, reporting.

Run: .venv/bin/python bench/tune_overhead.py [--trials 8] [--concurrent 1]

A sweep of short unlearning trials (a tiny world and model; target and retrain trained once beforehand, so
every trial only unlearns and measures one model) runs twice in this process:
  baseline: the same trial configurations through `run_scenario` in a plain loop, one after another, in one
            local Ray;
  project:  `memorylab tune`'s run_sweep on the same configurations, with its own local Ray.
Each trial reports the seconds its runner worked (trial_work_s). The figure is the share of the sweep's
wall time spent outside trial work: overhead_share = 1 - sum(trial work) / (wall * concurrent trials);
goal <= 0.10. ratio = sweep wall / loop wall (Ray start-up included in both).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import yaml

from memorylab.cluster import ray_session
from memorylab.runners import run_scenario
from memorylab.runners.unlearning.shared import prepare_shared
from memorylab.scenario import KINDS
from memorylab.scenario_loader import load_named, load_scenario
from memorylab.tune.analysis import load_trials
from memorylab.tune.experiment import run_sweep
from memorylab.tune.paths import with_values

WRAPPED = {
    "name": "trial", "kind": "unlearning", "seed": 0,
    "world": {"num_people": 12, "forget": 2, "holdout": 2, "paraphrases": 2, "canaries": 1, "canary_repeats": 2,
              "canary_candidates": 50},
    "model": {"name": "tiny", "tiny": {"hidden_size": 64, "num_layers": 2, "num_heads": 4, "intermediate_size": 128,
                                       "vocab_size": 512, "max_position_embeddings": 512}},
    "train": {"steps": 150, "batch_size": 8, "seq_len": 96, "warmup_steps": 10, "checkpoint_every": 150},
    "eval": {"verbmem_max_new_tokens": 16, "knowmem_max_new_tokens": 8},
    "methods": [{"method": "npo", "label": "m", "steps": 20, "batch_size": 8, "seq_len": 96}],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--concurrent", type=int, default=1)
    args = parser.parse_args()
    lrs = [round(1e-4 * 1.6 ** i, 7) for i in range(args.trials)]

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        with ray_session(num_cpus=2):
            shared = prepare_shared(KINDS["unlearning"].schema.model_validate(WRAPPED), tmp / "shared", None)
        wrapped = with_values(WRAPPED, shared)

        began = time.perf_counter()
        loop_work = []
        with ray_session(num_cpus=2):
            for i, lr in enumerate(lrs):
                scenario = KINDS["unlearning"].schema.model_validate(with_values(wrapped, {"methods.0.lr": lr}))
                t = time.perf_counter()
                run_scenario(scenario, tmp / "loop" / str(i))
                loop_work.append(time.perf_counter() - t)
        loop_wall = time.perf_counter() - began
        print(f"loop: {loop_wall:.1f} s for {len(lrs)} trials (work {sum(loop_work):.1f} s)", file=sys.stderr)

        path = tmp / "sweep.yaml"
        path.write_text(yaml.safe_dump({
            "name": "bench", "kind": "sweep", "scenario": wrapped, "space": {"methods.0.lr": {"grid": lrs}},
            "objectives": [{"name": "utility", "maximize": "models.m.knowmem_retain"}],
            "trial_resources": {"num_cpus": 1}, "max_concurrent_trials": args.concurrent}))
        sweep = load_scenario(path)
        model, raw, wrapped_path = load_named(sweep.scenario, path)
        began = time.perf_counter()
        record = run_sweep(sweep, model, raw, tmp / "exp", scenario_path=wrapped_path)
        sweep_wall = time.perf_counter() - began
        _, trials = load_trials(tmp / "exp")
        work = sum(t.work_s or 0.0 for t in trials)
        print(f"sweep: {sweep_wall:.1f} s for {len(trials)} trials (work {work:.1f} s, {record['errored']} failed)",
              file=sys.stderr)

    share = 1 - work / (sweep_wall * args.concurrent)
    print(json.dumps({"bench": "tune_overhead", "ratio": round(sweep_wall / loop_wall, 3),
                      "overhead_share": round(share, 3), "goal_overhead_share": 0.10,
                      "sweep_wall_s": round(sweep_wall, 2), "trial_work_s": round(work, 2),
                      "loop_wall_s": round(loop_wall, 2), "loop_work_s": round(sum(loop_work), 2),
                      "trials": len(trials), "concurrent": args.concurrent}))


if __name__ == "__main__":
    main()
