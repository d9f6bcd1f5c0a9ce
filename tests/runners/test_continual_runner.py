"""The runner on a tiny scenario: report shape, report_fields, on_progress, probe insertion, and a base model
prepared once (prepare_shared) giving the same numbers as one trained by the run itself."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import ray

from memorylab.cluster import ray_session
from memorylab.runners.continual import run as runner
from memorylab.runners.continual.report import report_fields
from memorylab.runners.contract import RunContext
from memorylab.scenario import KINDS
from memorylab.schema.continual import ContinualScenario

TINY = {
    "name": "c", "kind": "continual", "seed": 0,
    "world": {"num_people": 12, "forget": 2, "holdout": 2, "canaries": 0, "paraphrases": 1},
    "model": {"tiny": {"hidden_size": 32, "num_layers": 2, "num_heads": 2, "intermediate_size": 64,
                       "max_position_embeddings": 128, "vocab_size": 400}},
    "train": {"steps": 20, "batch_size": 8, "seq_len": 64, "warmup_steps": 2, "checkpoint_every": 1000},
    "eval": {"knowmem_max_new_tokens": 6, "knowmem_shots": 1},
    "new_data": {"people": 4, "paraphrases": 1},
    "continual": {"steps": 8, "batch_size": 4, "seq_len": 64, "eval_every": 4, "eval_questions": 8,
                  "eval_documents": 8},
    "arms": [{"name": "rewarm", "max_lr": 3e-3, "warmup_steps": 2},
             {"name": "replay50", "replay": 0.5, "max_lr": 3e-3, "warmup_steps": 2, "schedule": "infinite"}],
    "retention": {"probes": 3, "insert_at": 2, "repeats": [1, 2]},
    "ray": {"num_cpus": 2},
}


def scenario(**changes) -> ContinualScenario:
    return ContinualScenario.model_validate({**TINY, **changes})


def numeric_paths(node, prefix: str = "") -> set[str]:
    """Dotted paths of the numbers (or nulls: NaN) below `node`, lists (curves) left out."""
    if isinstance(node, dict):
        return set().union(*(numeric_paths(v, f"{prefix}{k}.") for k, v in node.items()))
    if node is None or (isinstance(node, (int, float)) and not isinstance(node, bool)):
        return {prefix.rstrip(".")}
    return set()


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """One run that trains its base (with on_progress), and one that reuses a base from prepare_shared."""
    folder = tmp_path_factory.mktemp("continual")
    calls = []
    with ray_session(num_cpus=2):
        own = runner.run(scenario(), folder / "own",
                         RunContext(on_progress=lambda partial, step: calls.append((partial, step))))
        overrides = runner.prepare_shared(scenario(), folder / "shared", None)
        shared = runner.run(scenario(reference={"base": overrides["reference.base"]}), folder / "reuse",
                            RunContext())
    assert not ray.is_initialized()
    return {"own": own, "shared": shared, "overrides": overrides, "calls": calls, "folder": folder}


def figures(report):
    """Everything measured, without the wall-clock seconds."""
    arms = {n: {k: v for k, v in a.items() if k != "seconds"} for n, a in report["arms"].items()}
    return arms, report["retention"], report["findings"]


def test_a_shared_base_gives_the_same_numbers(runs):
    assert set(runs["overrides"]) == {"reference.base"}
    assert Path(runs["overrides"]["reference.base"]).is_absolute()
    assert runs["shared"]["base"]["trained_here"] is False and runs["own"]["base"]["trained_here"] is True
    assert figures(runs["shared"]) == figures(runs["own"])
    assert set(KINDS["continual"].shared_setup.prefixes) >= {"seed", "world", "model", "train"}


def test_report_fields_match_the_report(runs):
    report = runs["own"]
    assert report_fields(scenario()) == numeric_paths(report["arms"], "arms.") | numeric_paths(
        report["retention"], "retention.")
    assert "arms.replay50.forgetting" in report_fields(scenario())
    assert "retention.arms.rewarm.x2.recall_final" in report_fields(scenario())
    assert not any(f.startswith("retention") for f in report_fields(scenario(retention=None)))


def test_report_shape(runs):
    report, folder = runs["own"], runs["folder"] / "own"
    arm = report["arms"]["replay50"]
    assert {"replay", "max_lr", "schedule", "old_knowmem_before", "old_knowmem_final", "new_knowmem_final",
            "forgetting"} <= set(arm)
    assert arm["forgetting"] == pytest.approx(arm["old_knowmem_before"] - arm["old_knowmem_final"])
    # measured at 0, the step before insertion (2), after each group's last one (x1: 3, x2: 4 = 3 + 1, also an
    # eval step) and 8
    assert arm["curves"]["step"] == [0, 2, 3, 4, 8] and len(arm["curves"]["lr"]) == 8
    group = report["retention"]["arms"]["rewarm"]["x1"]
    assert group["step"] == [0, 2, 3, 4, 8] and group["recognition"][0] == 0.5  # step 0 calibrates itself
    assert set(report["findings"]) >= {"replay_reduces_forgetting", "rewarm_no_replay_forgets_most",
                                       "recall_falls_faster_than_recognition", "sentences"}
    for name in ("report.json", "report.md", "continual_curves.png", "lr_schedules.png", "retention.png"):
        assert (folder / name).exists(), name


def test_on_progress_gets_every_point_of_every_arm(runs):
    calls = runs["calls"]
    assert len(calls) == 2 * 5  # two arms, five points each
    assert sorted(step for _, step in calls) == [0, 0, 2, 2, 3, 3, 4, 4, 8, 8]
    last, _ = calls[-1]
    for name, partial in last["arms"].items():
        final = runs["own"]["arms"][name]
        if partial["step"] == 8:
            assert partial["forgetting"] == final["forgetting"] and partial["old_loss"] == final["old_loss_final"]
        assert {"old_knowmem_before", "old_knowmem_final", "new_knowmem_final", "forgetting", "old_loss",
                "new_loss"} <= set(partial)
    assert all(math.isfinite(p["arms"][n]["old_loss"]) for p, _ in calls for n in p["arms"])
