"""The memory store's reads: every one is answered from the agent's in-memory state (resident.py), read back
from the table first when the agent is not resident, never from LanceDB per request."""

from __future__ import annotations

import bisect
from collections import Counter
from typing import Any, Optional

import numpy as np

from memorylab.memory.records import HistoryEntry, MemoryRecord
from memorylab.memory.store_mirror import similarities
from memorylab.memory.store_rows import MemoryNotFound, MemoryQueryError, compile_filters, decode_cursor, encode_cursor


class StoreReads:
    """Mixed into MemoryStore, which provides `_state` (the agent's state or None, loaded if need be),
    `_mirror_lock`, `_table` and `_unit_rows`."""

    def get(self, tenant: str, agent: str, memory_id: str) -> Optional[MemoryRecord]:
        state = self._state(tenant, agent)
        with self._mirror_lock:
            return state.partition.records.get(memory_id) if state else None

    def current(self, tenant: str, agent: str, ids: list[str],
                filters: Optional[dict[str, Any]] = None) -> dict[str, MemoryRecord]:
        """The live memories among `ids` as they are now, by id, those that pass `filters` (checked as a search
        checks them): hits scored earlier, read again in one look."""
        state = self._state(tenant, agent)
        with self._mirror_lock:
            p = state.partition if state else None
            keep = compile_filters(filters, p.metadata_keys if p else Counter())
            found = (p.records.get(i) for i in ids) if p else ()
            return {r.id: r for r in found if r is not None and (keep is None or keep(r))}

    def records(self, tenant: str, agent: str) -> list[MemoryRecord]:
        """Every live memory of the agent in list order (created_at, id)."""
        state = self._state(tenant, agent)
        with self._mirror_lock:
            p = state.partition if state else None
            return [p.records[i] for _, i in p.order] if p else []

    def list(self, tenant: str, agent: str, limit: int = 100,
             cursor: Optional[str] = None) -> tuple[list[MemoryRecord], Optional[str]]:
        """One page in (created_at, id) order and the cursor of the next page (None after the last). The cursor
        is a position, not an offset: memories added or deleted meanwhile neither repeat nor skip others."""
        if not isinstance(limit, int) or limit < 1:
            raise MemoryQueryError(f"limit must be a positive integer, got {limit!r}")
        after = decode_cursor(cursor) if cursor else None
        state = self._state(tenant, agent)
        if state is None:
            return [], None
        with self._mirror_lock:
            p = state.partition
            start = bisect.bisect_right(p.order, after) if after else 0
            page = [p.records[i] for _, i in p.order[start: start + limit]]
            more = start + limit < len(p.order)
        return page, (encode_cursor(page[-1]) if more else None)

    def history(self, tenant: str, agent: str, memory_id: str) -> list[HistoryEntry]:
        """Oldest first, for live and deleted memories; MemoryNotFound if the agent never had that id."""
        state = self._state(tenant, agent)
        with self._mirror_lock:
            history = state.history.get(memory_id) if state else None
        if history is None:
            raise MemoryNotFound(f"no memory with id {memory_id!r} for agent {agent!r}")
        return list(history)

    def written_by(self, tenant: str, agent: str, source: str) -> list[HistoryEntry]:
        """Every history entry of the agent's memories written with `source`, oldest first."""
        state = self._state(tenant, agent)
        with self._mirror_lock:
            found = [h for entries in state.history.values() for h in entries if h.source == source] if state else []
        return sorted(found, key=lambda h: h.at)

    def dense_search(self, tenant: str, agent: str, vector: np.ndarray, top_k: int,
                     filters: Optional[dict[str, Any]] = None) -> list[tuple[MemoryRecord, float]]:
        """The top_k live memories by cosine similarity, best first. Filters are equalities on source, subject,
        attribute and metadata keys ("metadata.<key>" or a bare key some memory of the agent has)."""
        return self.dense_search_many(tenant, agent, np.asarray(vector)[None], top_k, filters)[0]

    def dense_search_many(self, tenant: str, agent: str, vectors: np.ndarray, top_k: int,
                          filters: Optional[dict[str, Any]] = None) -> list[list[tuple[MemoryRecord, float]]]:
        """dense_search for several query vectors (rows) of one agent at once: the agent's vectors are read
        once for all of them (a served replica batches concurrent searches so)."""
        queries = self._unit_rows(vectors, len(vectors))
        if top_k < 1:
            return [[] for _ in queries]
        state = self._state(tenant, agent)
        with self._mirror_lock:
            p = state.partition if state else None
            if p is None or not p.records:
                compile_filters(filters, Counter())
                return [[] for _ in queries]
            keep = compile_filters(filters, p.metadata_keys)
            n = len(p.ids)
            scores = similarities(p.vectors[:n], queries)
            alive = p.alive[:n].copy()
            if keep is not None:
                alive[[p.row[m] for m, r in p.records.items() if not keep(r)]] = False
            scores[:, ~alive] = -np.inf
            k = min(top_k, int(alive.sum()))
            if k == 0:
                return [[] for _ in queries]
            out = []
            for row in scores:
                # Every row scoring at least the k-th best (ties at the cut included: argpartition alone would
                # pick among them arbitrarily), then ties broken by (created_at, id), as the BM25 index breaks
                # them: the same order whichever way the agent's rows were read into memory.
                best = np.flatnonzero(row >= np.partition(row, n - k)[n - k]) if k < n else np.flatnonzero(alive)
                ranked = sorted(best.tolist(), key=lambda r: (-row[r], p.records[p.ids[r]].created_at, p.ids[r]))
                out.append([(p.records[p.ids[r]], float(row[r])) for r in ranked[:k]])
            return out

    def count(self, tenant: Optional[str] = None, agent: Optional[str] = None) -> int:
        """Live memories of one agent, of a tenant, of every agent with that id, or in the whole store (the
        last three counted in the table, so no agent is read into memory for them)."""
        if tenant is not None and agent is not None:
            state = self._state(tenant, agent)
            with self._mirror_lock:
                return len(state.partition.records) if state else 0
        where = ["deleted = false"] + [f"{column} = {sql_literal(value)}"
                                       for column, value in (("tenant", tenant), ("agent", agent)) if value is not None]
        return self._table.count_rows(" AND ".join(where))


def sql_literal(value: str) -> str:
    """A string as a LanceDB (DataFusion) SQL literal: quotes doubled, nothing else is special in one."""
    return "'" + value.replace("'", "''") + "'"
