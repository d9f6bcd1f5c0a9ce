"""The store's in-memory mirror of one (tenant, agent): its live records, a float32 matrix of their unit
vectors and their (created_at, id) order. `MemoryStore` (store.py) keeps one `Partition` per (tenant, agent) and
answers every read from it; LanceDB holds the durable copy."""

from __future__ import annotations

import bisect
import json
from collections import Counter
from typing import Optional

import numpy as np

from memorylab.memory.records import MemoryRecord


def similarities(vectors: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """(queries, memories) dot products of unit rows.

    One query: einsum, not `@`: a matrix-vector product through multi-threaded OpenBLAS is many times slower
    on a few busy cores (its threads contend with LanceDB's and the server's); einsum's own loop is
    single-threaded and as fast as BLAS on one thread. Several: one matrix product through torch, which keeps
    to the process's torch threads (one in a served replica) and reads the agent's vectors once for all the
    queries rather than once per query (and the reading is what suffers most when other processes share the
    caches)."""
    if len(queries) == 1:
        return np.einsum("ij,j->i", vectors, queries[0])[None]
    import torch

    return (torch.from_numpy(queries) @ torch.from_numpy(vectors).T).numpy()


class Partition:
    """The live memories of one (tenant, agent). Rows of `vectors` are appended; an update or delete kills
    its row (ids[row] = None) and the matrix is compacted when dead rows outnumber live ones."""

    def __init__(self, dim: int) -> None:
        self.vectors = np.zeros((16, dim), dtype=np.float32)
        self.alive = np.zeros(16, dtype=bool)  # row -> live, so an unfiltered search needs no Python loop
        self.ids: list[Optional[str]] = []  # row -> id, None for a dead row
        self.row: dict[str, int] = {}
        self.records: dict[str, MemoryRecord] = {}
        self.order: list[tuple[float, str]] = []  # sorted (created_at, id): list order and cursor positions
        self.metadata_keys: Counter = Counter()
        self.text_bytes = 0  # the records' texts and metadata, for the store's memory budget (resident.py)

    def put(self, record: MemoryRecord, vector: np.ndarray) -> None:
        if record.id in self.records:
            self.remove(record.id)
        n = len(self.ids)
        if n == len(self.vectors):
            self.vectors = np.concatenate([self.vectors, np.zeros_like(self.vectors)])
            self.alive = np.concatenate([self.alive, np.zeros_like(self.alive)])
        self.vectors[n] = vector
        self.alive[n] = True
        self.ids.append(record.id)
        self.row[record.id] = n
        self.records[record.id] = record
        bisect.insort(self.order, (record.created_at, record.id))
        self.metadata_keys.update(record.metadata.keys())
        self.text_bytes += _text_size(record)

    def remove(self, memory_id: str) -> None:
        record = self.records.pop(memory_id)
        row = self.row.pop(memory_id)
        self.ids[row] = None
        self.alive[row] = False
        del self.order[bisect.bisect_left(self.order, (record.created_at, record.id))]
        self.metadata_keys.subtract(record.metadata.keys())
        self.text_bytes -= _text_size(record)
        if len(self.ids) > 64 and len(self.records) < len(self.ids) // 2:
            self._compact()

    def vector(self, memory_id: str) -> np.ndarray:
        return self.vectors[self.row[memory_id]].copy()

    def _compact(self) -> None:
        live = [(i, m) for i, m in enumerate(self.ids) if m is not None]
        vectors = np.zeros((max(16, 2 * len(live)), self.vectors.shape[1]), dtype=np.float32)
        vectors[: len(live)] = self.vectors[[i for i, _ in live]]
        alive = np.zeros(len(vectors), dtype=bool)
        alive[: len(live)] = True
        self.vectors, self.alive, self.ids = vectors, alive, [m for _, m in live]
        self.row = {m: r for r, m in enumerate(self.ids)}


def _text_size(record: MemoryRecord) -> int:
    return len(record.text) + len(record.source) + (len(json.dumps(record.metadata)) if record.metadata else 0)
