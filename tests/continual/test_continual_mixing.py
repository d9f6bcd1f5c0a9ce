"""Replay mixing: the replayed fraction of each batch, aligned new-data batches across arms, determinism."""

from __future__ import annotations

import itertools

import pytest

from memorylab.continual.mixing import mixed_batches, replay_rows

NEW = [[100 + i, 100 + i, 100 + i] for i in range(40)]  # token 100+ marks a new document
OLD = [[1 + i, 1 + i] for i in range(30)]  # tokens below 100 an old one


def batches(replay, seed=0, n=6):
    return list(itertools.islice(mixed_batches(NEW, OLD, batch_size=8, replay=replay, seq_len=6, seed=seed), n))


def is_old(row):
    return all(t < 100 for t in row)


@pytest.mark.parametrize("replay, rows", [(0.0, 0), (0.25, 2), (0.5, 4), (1.0, 8)])
def test_replay_rows_replace_that_fraction_of_every_batch(replay, rows):
    assert replay_rows(8, replay) == rows
    for batch in batches(replay):
        assert len(batch) == 8
        assert sum(is_old(r) for r in batch) == rows
        assert all(is_old(r) for r in batch[8 - rows:])  # new rows first, replay last


def test_every_arm_sees_a_prefix_of_the_same_new_batch():
    whole = batches(0.0)
    for replay in (0.25, 0.5):
        for full, mixed in zip(whole, batches(replay)):
            k = replay_rows(8, replay)
            assert mixed[: 8 - k] == full[: 8 - k]


def test_same_seed_same_batches_other_seed_others():
    assert batches(0.25) == batches(0.25)
    assert batches(0.25, seed=1) != batches(0.25)


def test_bad_replay_is_refused():
    with pytest.raises(ValueError, match="replay must be a fraction"):
        replay_rows(8, 1.5)
    with pytest.raises(ValueError, match="old corpus is empty"):
        next(mixed_batches(NEW, [], batch_size=4, replay=0.5, seq_len=6, seed=0))
