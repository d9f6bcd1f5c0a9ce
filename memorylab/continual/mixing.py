"""Replay: each continual batch mixes rows of the new corpus with rows replayed from the old one.

"Same compute" across arms means the same number of optimizer steps of the same batch size, so replay rows
*replace* new rows instead of being added. The new rows of step s are a prefix of one seeded batch that every
arm draws alike (a pure function of the seed and s): an arm with replay sees the first rows of exactly the
batch an arm without replay sees whole, so what differs between arms is the replay, never the luck of which
new documents came up.
"""

from __future__ import annotations

from typing import Iterator

from memorylab.models.trainer import packed_rows

REPLAY_STREAM = 1  # the old stream's seed is seed + this, so the two streams never coincide


def replay_rows(batch_size: int, replay: float) -> int:
    """How many rows of a batch are replayed: the fraction rounded to whole rows."""
    if not 0 <= replay <= 1:
        raise ValueError(f"replay must be a fraction in [0, 1], got {replay}")
    return round(replay * batch_size)


def mixed_batches(new_docs: list[list[int]], old_docs: list[list[int]], batch_size: int, replay: float,
                  seq_len: int, seed: int) -> Iterator[list[list[int]]]:
    """An endless stream of batches (lists of token rows): new rows first, then the replayed rows."""
    k = replay_rows(batch_size, replay)
    if k and not old_docs:
        raise ValueError("replay needs old documents, but the old corpus is empty")
    new_rows = packed_rows(new_docs, seq_len, seed)
    old_rows = packed_rows(old_docs, seq_len, seed + REPLAY_STREAM) if k else None
    while True:
        fresh = [next(new_rows) for _ in range(batch_size)]  # drawn whole in every arm: the streams stay aligned
        yield fresh[: batch_size - k] + [next(old_rows) for _ in range(k)]  # type: ignore[arg-type]
