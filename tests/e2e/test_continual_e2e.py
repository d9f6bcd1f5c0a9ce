"""The continual example end to end through `memorylab run`, at reduced size: the report's shape and plots.

(The example's scientific claims need its full size; its report states whether they hold.)
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memorylab.cli import app

pytestmark = pytest.mark.e2e
EXAMPLE = Path(__file__).parents[2] / "scenarios" / "continual_replay.yaml"

REDUCED = ["world.num_people=12", "world.forget=2", "world.holdout=2", "world.paraphrases=1",
           "model.tiny.hidden_size=32", "model.tiny.intermediate_size=64", "model.tiny.num_layers=2",
           "model.tiny.num_heads=2", "model.tiny.vocab_size=400", "train.steps=20", "train.batch_size=8",
           "eval.knowmem_max_new_tokens=6", "new_data.people=4", "continual.steps=24", "continual.batch_size=8",
           "continual.eval_every=8", "continual.eval_questions=12", "continual.eval_documents=12",
           "retention.probes=3", "retention.insert_at=8", "retention.repeats=[1,2]", "ray.num_cpus=2"]


@pytest.fixture(autouse=True)
def own_ray():
    """`memorylab run` starts and stops its own Ray; a Ray left by an earlier test would be joined instead."""
    import ray

    ray.shutdown()
    yield
    ray.shutdown()


def test_continual_example_runs_from_the_cli(tmp_path, monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    out = tmp_path / "run"
    args = ["run", str(EXAMPLE), "--out", str(out)] + [a for s in REDUCED for a in ("--set", s)]
    result = CliRunner().invoke(app, args, prog_name="memorylab")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(str(out / "report.json"))

    report = json.loads((out / "report.json").read_text())
    assert report["kind"] == "continual" and report["config"]["continual"]["steps"] == 24
    assert list(report["arms"]) == ["rewarm", "replay25", "replay50_infinite", "low_lr"]
    for arm in report["arms"].values():
        assert {"replay", "max_lr", "schedule", "old_knowmem_before", "old_knowmem_final", "new_knowmem_final",
                "forgetting"} <= set(arm)
        assert arm["forgetting"] == pytest.approx(arm["old_knowmem_before"] - arm["old_knowmem_final"])
        assert arm["curves"]["step"] == [0, 8, 9, 10, 16, 24] and len(arm["curves"]["lr"]) == 24  # x1 peaks at 9
    assert set(report["retention"]["arms"]["rewarm"]) == {"x1", "x2"}
    findings = report["findings"]
    for claim in ("replay_reduces_forgetting", "rewarm_no_replay_forgets_most", "recall_falls_faster_than_recognition"):
        assert findings[claim] in (True, False, None)
    assert findings["sentences"] and "## Findings" in (out / "report.md").read_text()
    for name in ("continual_curves.png", "lr_schedules.png", "retention.png", "arms/rewarm/final/config.json"):
        assert (out / name).exists(), name
