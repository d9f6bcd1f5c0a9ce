"""Starting a ULD model as two actors: a start that fails part-way leaves nothing reserved behind."""

from __future__ import annotations

from pathlib import Path

import pytest

import memorylab.runners.unlearning.run as unlearning
from memorylab.scenario_loader import load_scenario
from memorylab.unlearn.method import AssistantDecoding

UNLEARN = Path(__file__).parents[2] / "scenarios" / "unlearn.yaml"


def test_a_failed_two_actor_start_frees_its_actors_and_group(monkeypatch):
    freed = []
    monkeypatch.setattr(unlearning, "ready_group", lambda bundles, strategy: "group")
    monkeypatch.setattr(unlearning, "remove_group", lambda group: freed.append(("group", group)))
    monkeypatch.setattr(unlearning.ray, "kill", lambda actor: freed.append(("actor", actor)))

    def create(role, path, *args, **kwargs):  # the assistant starts first: the target's actor links to it
        if role == "target":
            raise RuntimeError("the target failed to load")
        return f"{role} actor"

    monkeypatch.setattr(unlearning, "create_model_actor", create)
    model = unlearning.Measured("target", AssistantDecoding("assistant", 1.0, 0.1, "two_actors"))
    with pytest.raises(RuntimeError, match="failed to load"):
        unlearning.start_lm(load_scenario(UNLEARN), model)
    assert freed == [("actor", "assistant actor"), ("group", "group")]
