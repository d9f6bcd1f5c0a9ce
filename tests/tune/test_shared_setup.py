"""A sweep trains the wrapped scenario's first models once only when no swept field changes them."""

from __future__ import annotations

import pytest

from memorylab.runners.unlearning import shared
from memorylab.scenario import KINDS
from memorylab.tune.experiment import shared_setup
from tests.tune.conftest import WRAPPED


class _Sweep:
    def __init__(self, *paths: str) -> None:
        self.space = dict.fromkeys(paths)


@pytest.fixture
def prepared(monkeypatch):
    calls = []
    monkeypatch.setattr(shared, "prepare_shared",
                        lambda scenario, folder, scenario_path: calls.append(folder) or {"reference.target": "t"})
    return calls


@pytest.mark.parametrize("paths", [("methods.0.lr",), ("methods.0.lr", "eval.knowmem_shots"),
                                   ("resources.model.num_cpus",)])
def test_trials_share_models_no_swept_field_changes(tmp_path, prepared, paths):
    wrapped = KINDS["unlearning"].schema.model_validate(WRAPPED)
    assert shared_setup(_Sweep(*paths), wrapped, tmp_path, None) == {"reference.target": "t"}
    assert prepared == [tmp_path]


@pytest.mark.parametrize("path", ["seed", "world.forget", "train.lr", "model.tiny.hidden_size", "data.source",
                                  "resources.trainer.num_cpus"])
def test_trials_train_their_own_when_a_swept_field_changes_them(tmp_path, prepared, path):
    wrapped = KINDS["unlearning"].schema.model_validate(WRAPPED)
    assert shared_setup(_Sweep("methods.0.lr", path), wrapped, tmp_path, None) == {}
    assert prepared == []
