"""The arm loop in-process: probes ride on exactly their steps, batches keep their size, the LR follows the
schedule, measurements land where planned, and the same seed gives the same numbers."""

from __future__ import annotations

import pytest

from memorylab.continual import loop
from memorylab.continual.data import continual_data
from memorylab.continual.loop import measurement_steps, train_arm
from memorylab.continual.schedules import lr_curve
from memorylab.models.tiny import build_tiny_model
from memorylab.models.tokenizer import train_bpe_tokenizer
from memorylab.schema.common import TinyModelConfig
from memorylab.schema.continual import ContinualScenario

SMALL = {"name": "c", "kind": "continual", "world": {"num_people": 12, "forget": 2, "holdout": 2, "canaries": 0,
                                                      "paraphrases": 1},
         "eval": {"knowmem_max_new_tokens": 4, "knowmem_shots": 1},
         "new_data": {"people": 3, "paraphrases": 1},
         "continual": {"steps": 6, "batch_size": 4, "seq_len": 64, "eval_every": 3, "eval_questions": 4,
                       "eval_documents": 4},
         "arms": [{"name": "a", "replay": 0.25, "max_lr": 1e-3, "warmup_steps": 2}],
         "retention": {"probes": 2, "insert_at": 1, "repeats": [1, 3], "spacing": 2}}


@pytest.fixture(scope="module")
def setup():
    s = ContinualScenario.model_validate(SMALL)
    data = continual_data(s)
    tokenizer = train_bpe_tokenizer(data.old_docs, vocab_size=300)
    return s, data, tokenizer


def run_arm(setup, monkeypatch=None, seen=None):
    s, data, tokenizer = setup
    model = build_tiny_model(TinyModelConfig(hidden_size=32, num_layers=1, num_heads=2, intermediate_size=64,
                                             max_position_embeddings=128, vocab_size=300), tokenizer, seed=0)
    if monkeypatch is not None:
        def spy(rows, pad_id):
            seen.append([list(r) for r in rows])
            return collate(rows, pad_id)
        collate = loop.collate
        monkeypatch.setattr(loop, "collate", spy)
    return train_arm(model, tokenizer, s.arms[0], s.continual, data, s.eval, s.seed, show_progress=False)


def test_probes_are_inserted_at_their_steps_only(setup, monkeypatch):
    s, data, tokenizer = setup
    seen: list[list[list[int]]] = []
    result = run_arm(setup, monkeypatch, seen)
    assert len(seen) == 6
    groups = {g.name: g for g in data.probes.groups}
    assert groups["x1"].steps == (1,) and groups["x3"].steps == (1, 3, 5)

    def carries(step, docs):
        tokens = [t for row in seen[step] for t in row]
        ids = [tokenizer(d, add_special_tokens=False)["input_ids"] for d in docs]
        return all(any(tokens[i:i + len(x)] == x for i in range(len(tokens))) for x in ids)

    for step in range(6):
        assert carries(step, groups["x3"].docs) == (step in (1, 3, 5))
        assert carries(step, groups["x1"].docs) == (step == 1)
        assert not carries(step, data.probes.control_docs)
        assert (len(seen[step]) > 4) == (step in (1, 3, 5))  # probe rows ride on top of the 4-row batch
    assert result.lrs == pytest.approx(lr_curve(s.arms[0], 6))
    # Before the insertion (1), each group's peak right after its last insertion (x1: 2, x3: 6), every 3 steps.
    assert [p["step"] for p in result.points] == measurement_steps(6, 3, data.probes) == [0, 1, 2, 3, 6]
    assert set(result.points[0]["probes"]) == {"x1", "x3"}


def test_same_seed_same_numbers(setup):
    first, second = run_arm(setup), run_arm(setup)
    assert first.losses == second.losses and first.points == second.points
