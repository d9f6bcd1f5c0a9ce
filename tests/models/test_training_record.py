"""A resumed run reuses a trained model (or its checkpoints) only when this run would train the same one."""

from __future__ import annotations

import json

import pytest

from memorylab.errors import MemorylabError
from memorylab.models.documents import Example
from memorylab.models.training_record import RECORD, check_training_record, training_record
from memorylab.schema.common import ModelSpec, TrainConfig

DOCS = ["Ada was born in Lisbon.", Example("Question: Where?\nAnswer:", " Lisbon")]


def record(**changes):
    train = TrainConfig(**changes.pop("train", {}))
    return training_record(ModelSpec(**changes.pop("model", {})), train, changes.pop("seed", 0),
                           changes.pop("docs", DOCS))


def test_the_first_run_writes_the_record_and_the_same_settings_pass(tmp_path):
    folder = tmp_path / "models" / "target"
    check_training_record(folder, record())
    assert json.loads((folder / RECORD).read_text())["seed"] == 0
    check_training_record(folder, record())
    check_training_record(folder, record(train={"checkpoint_every": 7}))  # when checkpoints land: not training


@pytest.mark.parametrize("changes, says", [
    ({"train": {"lr": 0.02}}, "train.lr was 0.003, now 0.02"),
    ({"seed": 3}, "seed was 0, now 3"),
    ({"model": {"tiny": {"num_layers": 2}}}, "model.tiny.num_layers was 4, now 2"),
    ({"docs": DOCS[:1] + ["Bo was born in Oslo."]}, "the training documents differ"),
    ({"docs": [DOCS[0], Example("Question: Where?\nAnswer: Lisbon", "")]}, "the training documents differ"),
])
def test_other_settings_are_refused_naming_what_differs(tmp_path, changes, says):
    folder = tmp_path / "target"
    check_training_record(folder, record())
    with pytest.raises(MemorylabError) as info:
        check_training_record(folder, record(**changes))
    message = str(info.value)
    assert says in message and "--overwrite" in message and "\n" not in message


def test_a_folder_trained_before_records_existed_is_trusted_and_left_as_it_is(tmp_path):
    folder = tmp_path / "target"
    (folder / "final").mkdir(parents=True)
    check_training_record(folder, record())
    assert not (folder / RECORD).exists()


def test_a_setting_the_record_lacks_is_no_difference(tmp_path):
    # A record written before `loss` existed: that model was trained the only way there was.
    folder = tmp_path / "target"
    old = record()
    del old["train"]["loss"]
    check_training_record(folder, old)
    check_training_record(folder, record(train={"loss": "row"}))
    with pytest.raises(MemorylabError, match="train.loss was 'token', now 'row'"):
        check_training_record(tmp_path / "other", record())
        check_training_record(tmp_path / "other", record(train={"loss": "row"}))


def test_a_second_stage_carries_the_record_of_the_model_it_started_from(tmp_path):
    base = tmp_path / "models" / "generator"
    check_training_record(base, record())
    (base / "final").mkdir()
    stage = training_record(ModelSpec(), TrainConfig(loss="row"), 0, DOCS, start_from=base / "final")
    assert stage["start_from"] == record()
    check_training_record(tmp_path / "models" / "reader", stage)
    # The base retrained with other settings: the second stage no longer matches what it was trained from.
    (base / RECORD).write_text(json.dumps(record(seed=3)))
    again = training_record(ModelSpec(), TrainConfig(loss="row"), 0, DOCS, start_from=base / "final")
    with pytest.raises(MemorylabError, match="start_from.seed was 0, now 3"):
        check_training_record(tmp_path / "models" / "reader", again)
