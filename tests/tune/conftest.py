"""A tiny unlearning scenario to sweep, with its target and retrain models trained once for the module."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

WRAPPED = {
    "name": "inner", "kind": "unlearning", "seed": 0,
    "world": {"num_people": 10, "forget": 2, "holdout": 2, "paraphrases": 1, "canaries": 1, "canary_repeats": 2,
              "canary_candidates": 20},
    "model": {"name": "tiny", "tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                                       "vocab_size": 300, "max_position_embeddings": 512}},
    "train": {"steps": 40, "batch_size": 8, "seq_len": 64, "warmup_steps": 4, "checkpoint_every": 40},
    "eval": {"verbmem_max_new_tokens": 6, "knowmem_max_new_tokens": 6, "knowmem_shots": 1},
    "methods": [{"method": "grad_diff", "label": "m", "steps": 4, "batch_size": 4, "seq_len": 64}],
}
OBJECTIVES = [{"name": "forget", "maximize": "1 - models.m.knowmem_forget / models.target.knowmem_forget"},
              {"name": "ppl", "minimize": "models.m.ppl_holdout"}]


def write_sweep(folder: Path, **fields) -> Path:
    """A sweep file over WRAPPED (plus `fields`), with the space and objectives most tests use."""
    sweep = {"name": "s", "kind": "sweep", "scenario": WRAPPED,
             "space": {"methods.0.lr": {"grid": [1e-4, 3e-3]}},
             "objectives": OBJECTIVES, "trial_resources": {"num_cpus": 1}, **fields}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def shared_models(tmp_path_factory, ray_cluster) -> dict:
    """prepare_shared run once: target, retrain and an evaluation cache that every sweep here points at."""
    from memorylab.runners.unlearning.shared import prepare_shared
    from memorylab.scenario import KINDS

    folder = tmp_path_factory.mktemp("shared")
    return prepare_shared(KINDS["unlearning"].schema.model_validate(WRAPPED), folder, None)
