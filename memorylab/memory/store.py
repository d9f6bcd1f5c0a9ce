"""The memory store: one LanceDB table under a folder (the durable copy) and an in-memory mirror (the fast one).

Layout: table `memories`, one row per memory ever written, keyed by `key` = JSON [tenant, agent, id], so
the same id under two agents can never collide and no where-clause needs a quoted value at all (writes are
merge-inserts joined on `key`). A row carries the record, its vector, `deleted` and its whole history as a
JSON list. Deleting a memory rewrites its row as a tombstone (deleted = true, history ending in DELETE)
rather than dropping it, so the history of a deleted memory survives, and an add, update or delete is one
LanceDB commit: a crash leaves either the old row or the new one, never a record without its history.

Every write returns only after LanceDB committed it, so a process killed right after a successful call loses
nothing; opening the folder again rebuilds the mirror from the table.

Reads never touch LanceDB: per (tenant, agent) the mirror holds the live records, a float32 matrix of their
unit vectors (search is one matrix-vector product, cheap even over many thousands of memories) and the
(created_at, id) order that `list` pages through.

One process owns a folder: a second MemoryStore on the same folder in another process would not see the
first one's writes in its mirror. Writes are serialized by a lock (LanceDB commit, then mirror, then the
listeners, in that order); the mirror has its own short lock so a search never waits for a disk write.
"""

from __future__ import annotations

import bisect
import json
import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Optional, Protocol, Sequence

import numpy as np
import pyarrow as pa

from memorylab.errors import MemorylabError
from memorylab.memory.erasure import SharedErasure
from memorylab.memory.lance_files import erase_deleted_rows
from memorylab.memory.records import HistoryEntry, MemoryRecord
from memorylab.memory.store_commit import OneCommit
from memorylab.memory.store_mirror import Partition, similarities
from memorylab.memory.writer_lock import hold_writer_lock
from memorylab.memory.store_rows import (  # noqa: F401  (MemoryNotFound, MemoryQueryError: part of this API)
    MemoryNotFound,
    MemoryQueryError,
    check_metadata,
    check_names,
    compile_filters,
    decode_cursor,
    encode_cursor,
    row_key,
    table_schema,
)

log = logging.getLogger(__name__)

TABLE = "memories"
# A replica being replaced (a redeploy) lets go of the store when it exits: Serve gives it 20 s by default.
WRITER_WAIT_S = 60.0
COMPACT_EVERY = 256  # writes between LanceDB compactions: each single-row write adds a small data file


class StoreListener(Protocol):
    def on_upsert(self, record: MemoryRecord) -> None: ...  # after an add or update became durable

    def on_delete(self, record: MemoryRecord) -> None: ...


class MemoryStore(OneCommit):
    def __init__(self, path: str | Path, dim: int = 384, writer_wait_s: float = WRITER_WAIT_S) -> None:
        """`writer_wait_s`: how long to wait for another process writing this folder to let go
        (memory/writer_lock.py) before refusing to open it."""
        import lancedb

        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        hold_writer_lock(self.path, writer_wait_s)
        self.dim = dim
        self._schema = table_schema(dim)
        self._db = lancedb.connect(str(self.path))
        self._table = self._db.create_table(TABLE, schema=self._schema, exist_ok=True)
        if self._table.schema.field("vector").type != self._schema.field("vector").type:
            raise MemorylabError(f"the memory table under {self.path} holds vectors of another size than dim={dim}")
        self._write_lock = threading.RLock()
        self._mirror_lock = threading.Lock()
        self._partitions: dict[tuple[str, str], Partition] = {}
        self._history: dict[str, list[HistoryEntry]] = {}  # key -> history, deleted memories included
        self._tombstones: set[str] = set()  # keys of deleted memories: re-adding one must replace its row
        self._listeners: list[StoreListener] = []
        self._writes = 0
        self._erasure = SharedErasure(self._erase_old_versions)
        self._staging = threading.local()  # what one_commit() stages, per thread (store_commit.py)
        self._load()

    # -- open --------------------------------------------------------------------------------------------
    def _load(self) -> None:
        self._load_rows(self._table.to_arrow())

    def _load_rows(self, data: pa.Table) -> None:
        if data.num_rows == 0:
            return
        vectors = data.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False)
        vectors = vectors.reshape(data.num_rows, self.dim).astype(np.float32, copy=False)
        for i, row in enumerate(data.drop_columns(["vector"]).to_pylist()):
            record = MemoryRecord(id=row["id"], tenant=row["tenant"], agent=row["agent"], text=row["text"],
                                  created_at=row["created_at"], updated_at=row["updated_at"],
                                  source=row["source"] or "",
                                  subject=row["subject"], attribute=row["attribute"],
                                  metadata=json.loads(row["metadata"] or "{}"))
            self._history[row["key"]] = [HistoryEntry(**h) for h in json.loads(row["history"])]
            if row["deleted"]:
                self._tombstones.add(row["key"])
            else:
                self._partition(record.tenant, record.agent).put(record, vectors[i])

    # -- listeners -----------------------------------------------------------------------------------------
    def add_listener(self, listener: StoreListener) -> None:
        """Registers `listener` and replays on_upsert for every live record first, so it starts in step."""
        with self._write_lock:
            with self._mirror_lock:
                live = [r for p in self._partitions.values() for r in p.records.values()]
            for record in sorted(live, key=lambda r: (r.created_at, r.id)):
                listener.on_upsert(record)
            self._listeners.append(listener)

    def _notify(self, event: str, records: Iterable[MemoryRecord]) -> None:
        # The write is durable already: a failing listener (an index) is logged, not raised, so the caller
        # is not told a write failed that in fact happened.
        for listener in self._listeners:
            for record in records:
                try:
                    getattr(listener, event)(record)
                except Exception:
                    log.exception("memory store listener %r failed on %s of %s", listener, event, record.id)

    # -- writes --------------------------------------------------------------------------------------------
    def add(self, record: MemoryRecord, vector: np.ndarray) -> MemoryRecord:
        return self.add_many([record], np.asarray(vector, dtype=np.float32).reshape(1, -1))[0]

    def add_many(self, records: Sequence[MemoryRecord], vectors: np.ndarray) -> list[MemoryRecord]:
        """Stores new memories in one LanceDB commit. An empty id gets a uuid4 hex; created_at/updated_at of 0
        become now. Reusing the id of a deleted memory brings it back, its history continuing."""
        vectors = self._unit_rows(vectors, len(records)) if records else np.zeros((0, self.dim), np.float32)
        if not records:
            return []
        now = time.time()
        ready = []
        for r in records:
            check_names(r.tenant, r.agent, r.id)
            if not isinstance(r.text, str) or not r.text.strip():
                raise MemoryQueryError(f"memory {r.id!r} has an empty text")
            check_metadata(r.metadata)
            created = r.created_at or now
            ready.append(replace(r, id=r.id or uuid.uuid4().hex, created_at=created, updated_at=r.updated_at or created,
                                 metadata=dict(r.metadata)))
        with self._write_lock:
            keys = [row_key(r.tenant, r.agent, r.id) for r in ready]
            if len(set(keys)) != len(keys):
                raise MemoryQueryError("add_many got the same memory id twice for one agent")
            with self._mirror_lock:
                for r in ready:
                    p = self._partitions.get((r.tenant, r.agent))
                    if p is not None and r.id in p.records:
                        raise MemoryQueryError(f"memory id {r.id!r} already exists for agent {r.agent!r}")
            histories = [self._history.get(k, []) + [HistoryEntry(r.id, "ADD", None, r.text, r.created_at, r.source)]
                         for k, r in zip(keys, ready)]
            rows = self._rows(ready, vectors, histories, deleted=False)
            # A plain append (no join: the fast path of a bulk load) unless a tombstone row has that key.
            self._write(rows, append=not any(k in self._tombstones for k in keys))
            for k, r, h in zip(keys, ready, histories):
                self._history[k] = h
                self._tombstones.discard(k)
            with self._mirror_lock:
                for r, v in zip(ready, vectors):
                    self._partition(r.tenant, r.agent).put(r, v)
            self._after_write()
            self._notify_later("on_upsert", ready)
        return ready

    def update(self, tenant: str, agent: str, memory_id: str, text: str, vector: np.ndarray, *, source: str = "",
               subject: Optional[str] = None, attribute: Optional[str] = None,
               metadata: Optional[dict[str, Any]] = None) -> tuple[MemoryRecord, MemoryRecord]:
        """(old, new). None for subject, attribute or metadata keeps the old value, an empty source too; a
        given metadata dict replaces the old one."""
        if not isinstance(text, str) or not text.strip():
            raise MemoryQueryError(f"the new text of memory {memory_id!r} is empty")
        vector = self._unit_rows(vector, 1)
        if metadata is not None:
            check_metadata(metadata)
        with self._write_lock:
            old = self._live(tenant, agent, memory_id)
            now = max(time.time(), old.updated_at)
            new = replace(old, text=text, updated_at=now, source=source or old.source,
                          subject=old.subject if subject is None else subject,
                          attribute=old.attribute if attribute is None else attribute,
                          metadata=dict(old.metadata if metadata is None else metadata))
            key = row_key(tenant, agent, memory_id)
            history = self._history[key] + [HistoryEntry(memory_id, "UPDATE", old.text, text, now, source)]
            self._write(self._rows([new], vector, [history], deleted=False), append=False)
            self._history[key] = history
            with self._mirror_lock:
                self._partitions[(tenant, agent)].put(new, vector[0])
            self._after_write()
            self._notify_later("on_upsert", [new])
        return old, new

    def delete(self, tenant: str, agent: str, memory_id: str, *, source: str = "") -> MemoryRecord:
        """Tombstones the memory and returns it as it was; its history ends with DELETE."""
        with self._write_lock:
            old = self._live(tenant, agent, memory_id)
            key = row_key(tenant, agent, memory_id)
            with self._mirror_lock:
                vector = self._partitions[(tenant, agent)].vector(memory_id)
            history = self._history[key] + [HistoryEntry(memory_id, "DELETE", old.text, None, time.time(), source)]
            self._write(self._rows([old], vector[None, :], [history], deleted=True), append=False)
            self._history[key] = history
            self._tombstones.add(key)
            with self._mirror_lock:
                self._partitions[(tenant, agent)].remove(memory_id)
            self._after_write()
            self._notify_later("on_delete", [old])
        return old

    def purge(self, tenant: str, agent: str, memory_id: str, *, source: str = "purge") -> Optional[MemoryRecord]:
        """Erases a memory, live or already deleted: its text, vector and metadata, and every text in its
        history, from the table and from disk (the table's older versions, which still hold them, are
        compacted away). What remains is that the memory existed and when each event happened. Returns the
        memory as it was when it was still live, else None. For deletion requests that must leave nothing."""
        key = row_key(tenant, agent, memory_id)
        if self._staged is not None:  # a programming error, not a request's: the erasure needs a commit first
            raise RuntimeError("purge compacts the table; call it outside one_commit()")
        with self._write_lock:
            history = self._history.get(key)
            if history is None:
                raise MemoryNotFound(f"no memory with id {memory_id!r} for agent {agent!r}")
            live = self.get(tenant, agent, memory_id)
            if live is None and _purged(history):
                return None  # purged before: nothing is left to erase, so nothing is written
            now = time.time()
            erased = [replace(h, old_text=None, new_text=None) for h in history]
            erased.append(HistoryEntry(memory_id, "DELETE", None, None, now, source))
            blank = MemoryRecord(id=memory_id, tenant=tenant, agent=agent, text="",
                                 created_at=live.created_at if live else now, updated_at=now)
            self._merge(self._rows([blank], np.zeros((1, self.dim), np.float32), [erased], deleted=True))
            self._history[key] = erased
            self._tombstones.add(key)
            if live is not None:
                with self._mirror_lock:
                    self._partitions[(tenant, agent)].remove(memory_id)
                self._notify("on_delete", [live])
        # Every earlier version of the table still holds the text: compact, then drop all but the newest
        # (this store is the table's only user, so no reader is on an older version), once for all the purges
        # committed meanwhile (memory/erasure.py).
        self._erasure.erase()
        return live

    def _erase_old_versions(self) -> None:
        with self._write_lock:
            erase_deleted_rows(self._table)

    def _merge(self, rows: pa.Table) -> None:
        (self._table.merge_insert("key").when_matched_update_all().when_not_matched_insert_all().execute(rows))

    def _after_write(self) -> None:
        # Compaction merges the small files single-row writes leave behind; without it every later
        # merge-insert and every open reads one more file per write ever made.
        self._writes += 1
        if self._writes % COMPACT_EVERY == 0:
            try:
                self._table.optimize()
            except Exception:  # an optimization, never a reason to fail a write that is already durable
                log.exception("compacting the memory table under %s failed", self.path)

    # -- reads ---------------------------------------------------------------------------------------------
    def get(self, tenant: str, agent: str, memory_id: str) -> Optional[MemoryRecord]:
        with self._mirror_lock:
            p = self._partitions.get((tenant, agent))
            return p.records.get(memory_id) if p else None

    def current(self, tenant: str, agent: str, ids: list[str],
                filters: Optional[dict[str, Any]] = None) -> dict[str, MemoryRecord]:
        """The live memories among `ids` as they are now, by id, those that pass `filters` (checked as a search
        checks them): hits scored earlier, read again in one look."""
        with self._mirror_lock:
            p = self._partitions.get((tenant, agent))
            keep = compile_filters(filters, p.metadata_keys if p else Counter())
            found = (p.records.get(i) for i in ids) if p else ()
            return {r.id: r for r in found if r is not None and (keep is None or keep(r))}

    def records(self, tenant: str, agent: str) -> list[MemoryRecord]:
        """Every live memory of the agent in list order (created_at, id)."""
        with self._mirror_lock:
            p = self._partitions.get((tenant, agent))
            return [p.records[i] for _, i in p.order] if p else []

    def list(self, tenant: str, agent: str, limit: int = 100,
             cursor: Optional[str] = None) -> tuple[list[MemoryRecord], Optional[str]]:
        """One page in (created_at, id) order and the cursor of the next page (None after the last). The cursor
        is a position, not an offset: memories added or deleted meanwhile neither repeat nor skip others."""
        if not isinstance(limit, int) or limit < 1:
            raise MemoryQueryError(f"limit must be a positive integer, got {limit!r}")
        after = decode_cursor(cursor) if cursor else None
        with self._mirror_lock:
            p = self._partitions.get((tenant, agent))
            if p is None:
                return [], None
            start = bisect.bisect_right(p.order, after) if after else 0
            page = [p.records[i] for _, i in p.order[start: start + limit]]
            more = start + limit < len(p.order)
        return page, (encode_cursor(page[-1]) if more else None)

    def history(self, tenant: str, agent: str, memory_id: str) -> list[HistoryEntry]:
        """Oldest first, for live and deleted memories; MemoryNotFound if the agent never had that id."""
        history = self._history.get(row_key(tenant, agent, memory_id))
        if history is None:
            raise MemoryNotFound(f"no memory with id {memory_id!r} for agent {agent!r}")
        return list(history)

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
        with self._mirror_lock:
            p = self._partitions.get((tenant, agent))
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
                best = np.argpartition(-row, k - 1)[:k] if k < n else np.arange(n)
                best = best[np.argsort(-row[best], kind="stable")][:k]
                out.append([(p.records[p.ids[r]], float(row[r])) for r in best])
            return out

    def count(self, tenant: Optional[str] = None, agent: Optional[str] = None) -> int:
        with self._mirror_lock:
            return sum(len(p.records) for (t, a), p in self._partitions.items()
                       if (tenant is None or t == tenant) and (agent is None or a == agent))

    # -- helpers -------------------------------------------------------------------------------------------
    def _partition(self, tenant: str, agent: str) -> Partition:
        p = self._partitions.get((tenant, agent))
        if p is None:
            p = self._partitions[(tenant, agent)] = Partition(self.dim)
        return p

    def _live(self, tenant: str, agent: str, memory_id: str) -> MemoryRecord:
        record = self.get(tenant, agent, memory_id)
        if record is None:
            raise MemoryNotFound(f"no memory with id {memory_id!r} for agent {agent!r}")
        return record

    def _unit_rows(self, vectors: Any, n: int) -> np.ndarray:
        v = np.asarray(vectors, dtype=np.float32)
        if v.ndim == 1:
            v = v[None, :]
        if v.shape != (n, self.dim):
            raise MemoryQueryError(f"expected {n} vector(s) of size {self.dim}, got an array of shape {v.shape}")
        norms = np.linalg.norm(v, axis=1, keepdims=True)
        if not np.all(np.isfinite(v)) or np.any(norms == 0):
            raise MemoryQueryError("a vector is zero or not finite, so it has no direction to compare")
        return v / norms  # unit rows: a dot product is the cosine, whatever the caller's embedder did

    def _rows(self, records: Sequence[MemoryRecord], vectors: np.ndarray, histories: Sequence[list[HistoryEntry]],
              deleted: bool) -> pa.Table:
        columns: dict[str, Any] = {
            "key": [row_key(r.tenant, r.agent, r.id) for r in records], "id": [r.id for r in records],
            "tenant": [r.tenant for r in records], "agent": [r.agent for r in records],
            "text": [r.text for r in records],
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(np.ascontiguousarray(vectors).ravel()), self.dim),
            "created_at": [r.created_at for r in records], "updated_at": [r.updated_at for r in records],
            "source": [r.source for r in records], "subject": [r.subject for r in records],
            "attribute": [r.attribute for r in records],
            "metadata": [json.dumps(r.metadata, sort_keys=True) for r in records],
            "deleted": [deleted] * len(records),
            "history": [json.dumps([h.to_dict() for h in hs]) for hs in histories],
        }
        return pa.table(columns, schema=self._schema)


def _purged(history: list[HistoryEntry]) -> bool:
    """Whether a memory's history is what a purge leaves: no text in any event, ending in a purge's DELETE."""
    return bool(history) and history[-1].event == "DELETE" and all(
        h.old_text is None and h.new_text is None for h in history)
