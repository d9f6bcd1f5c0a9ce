"""Which agents the memory store keeps in memory: a least-recently-used set of per-agent states under a byte
budget. An agent's state (its live records and their vectors, every memory's history, its tombstones) is read
from the LanceDB table the first time it is used and dropped when others need the room; the table always
holds everything, so dropping loses nothing and the next use reads it back.

A store serving many tenants would otherwise keep every agent it ever served in memory for as long as the
process lives, and a tenant creating agents in a loop could grow it without bound.

Sizes are estimates (the texts, the vector matrix, and a fixed allowance per record and per history entry
for the Python objects around them and the BM25 postings); they bound memory to within a small factor, which
is what a budget needs. An agent in use (pinned: a write or a search in flight) is never evicted, and neither
is the agent just loaded, so one agent larger than the whole budget still works."""

from __future__ import annotations

import json
from collections import OrderedDict
from typing import Hashable, Optional

import numpy as np
import pyarrow as pa

from memorylab.memory.records import HistoryEntry, MemoryRecord
from memorylab.memory.store_mirror import Partition

RECORD_OVERHEAD = 1024  # bytes a live record costs beyond its text: objects, dict and order entries, postings
HISTORY_OVERHEAD = 160  # bytes per history entry beyond its texts


class AgentState:
    """Everything the store keeps in memory about one (tenant, agent)."""

    def __init__(self, dim: int) -> None:
        self.partition = Partition(dim)
        self.history: dict[str, list[HistoryEntry]] = {}  # memory id -> history, deleted memories included
        self.tombstones: set[str] = set()  # ids of deleted memories: re-adding one must replace its row
        self.pins = 0  # writes and searches in flight on this state
        self._history_bytes = 0

    def set_history(self, memory_id: str, entries: list[HistoryEntry]) -> None:
        old = self.history.get(memory_id)
        if old is not None:
            self._history_bytes -= _history_size(old)
        self.history[memory_id] = entries
        self._history_bytes += _history_size(entries)

    @property
    def nbytes(self) -> int:
        p = self.partition
        return int(p.vectors.nbytes + p.alive.nbytes + p.text_bytes + RECORD_OVERHEAD * len(p.records)
                   + self._history_bytes)

    @classmethod
    def from_rows(cls, data: pa.Table, dim: int) -> "AgentState":
        """The state of one agent from its table rows (live and deleted), in the table's layout (store_rows.py)."""
        state = cls(dim)
        if data.num_rows == 0:
            return state
        vectors = data.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vectors = vectors.reshape(data.num_rows, dim).astype(np.float32, copy=False)
        for i, row in enumerate(data.drop_columns(["vector"]).to_pylist()):
            state.set_history(row["id"], [HistoryEntry(**h) for h in json.loads(row["history"])])
            if row["deleted"]:
                state.tombstones.add(row["id"])
                continue
            record = MemoryRecord(id=row["id"], tenant=row["tenant"], agent=row["agent"], text=row["text"],
                                  created_at=row["created_at"], updated_at=row["updated_at"],
                                  source=row["source"] or "", subject=row["subject"], attribute=row["attribute"],
                                  metadata=json.loads(row["metadata"] or "{}"))
            state.partition.put(record, vectors[i])
        return state


def _history_size(entries: list[HistoryEntry]) -> int:
    return sum(HISTORY_OVERHEAD + len(h.old_text or "") + len(h.new_text or "") + len(h.source) for h in entries)


class ResidentAgents:
    """The LRU of agent states. Not thread-safe: the store calls it under its mirror lock."""

    def __init__(self, budget_bytes: int) -> None:
        self.budget_bytes = budget_bytes
        self._states: OrderedDict[Hashable, AgentState] = OrderedDict()
        self._sizes: dict[Hashable, int] = {}  # as last measured (on load and after each write)
        self.total_bytes = 0
        self.evictions = 0

    def get(self, key: Hashable) -> Optional[AgentState]:
        state = self._states.get(key)
        if state is not None:
            self._states.move_to_end(key)
        return state

    def put(self, key: Hashable, state: AgentState) -> None:
        self.pop(key)
        self._states[key] = state
        self._sizes[key] = state.nbytes
        self.total_bytes += self._sizes[key]

    def pop(self, key: Hashable) -> Optional[AgentState]:
        state = self._states.pop(key, None)
        if state is not None:
            self.total_bytes -= self._sizes.pop(key)
        return state

    def measure(self, key: Hashable) -> None:
        """Take the size of `key`'s state again (after a write changed it)."""
        state = self._states.get(key)
        if state is not None:
            size = state.nbytes
            self.total_bytes += size - self._sizes[key]
            self._sizes[key] = size

    def evict(self, keep: Hashable = None) -> list[Hashable]:
        """Drop least recently used states, none pinned and not `keep`, until the total fits the budget."""
        victims: list[Hashable] = []
        if self.total_bytes <= self.budget_bytes:  # the common case, on every search: no copy of the keys
            return victims
        for key in list(self._states):
            if self.total_bytes <= self.budget_bytes:
                break
            if key != keep and self._states[key].pins == 0:
                self.pop(key)
                victims.append(key)
        self.evictions += len(victims)
        return victims

    def items(self) -> list[tuple[Hashable, AgentState]]:
        return list(self._states.items())

    def __len__(self) -> int:
        return len(self._states)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._states
