"""The memory store: one LanceDB table under a folder (the durable copy) and in-memory states of the agents in
use (the fast one).

Layout: table `memories`, one row per memory ever written, keyed by `key` = JSON [tenant, agent, id], so
the same id under two agents can never collide and no where-clause needs a quoted value at all (writes are
merge-inserts joined on `key`). A row carries the record, its vector, `deleted` and its whole history as a
JSON list. Deleting a memory rewrites its row as a tombstone (deleted = true, history ending in DELETE)
rather than dropping it, so the history of a deleted memory survives, and an add, update or delete is one
LanceDB commit: a crash leaves either the old row or the new one, never a record without its history.

Every write returns only after LanceDB committed it, so a process killed right after a successful call loses
nothing; opening the folder again reads agents back from the table as they are used.

Reads never touch LanceDB per request: per (tenant, agent) a state (resident.py) holds the live records, a
float32 matrix of their unit vectors (search is one matrix-vector product, cheap even over many thousands of
memories), the (created_at, id) order that `list` pages through and every memory's history. States are read
from the table on first use and evicted, least recently used first, when they outgrow `resident_bytes`;
an agent the table has no row of costs nothing until something is written to it.

One process owns a folder (writer_lock.py). Writes are serialized by a lock (LanceDB commit, then state,
then the listeners, in that order); the states have their own short lock so a search never waits for a disk
write.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any, Iterable, Iterator, Optional, Protocol, Sequence

import numpy as np
import pyarrow as pa

from memorylab.errors import MemorylabError
from memorylab.memory.erasure import SharedErasure
from memorylab.memory.keyed_locks import KeyedLocks
from memorylab.memory.lance_files import ensure_scalar_index, erase_deleted_rows
from memorylab.memory.records import HistoryEntry, MemoryRecord
from memorylab.memory.resident import AgentState, ResidentAgents
from memorylab.memory.store_commit import OneCommit
from memorylab.memory.store_reads import StoreReads, sql_literal
from memorylab.memory.writer_lock import hold_writer_lock, release_writer_lock
from memorylab.memory.store_rows import (  # noqa: F401  (MemoryNotFound, MemoryQueryError: part of this API)
    MemoryNotFound,
    MemoryQueryError,
    check_metadata,
    check_names,
    row_key,
    table_schema,
)

log = logging.getLogger(__name__)

TABLE = "memories"
# A replica being replaced (a redeploy) lets go of the store when it exits: Serve gives it 20 s by default.
WRITER_WAIT_S = 60.0
COMPACT_EVERY = 256  # writes between LanceDB compactions: each single-row write adds a small data file
RESIDENT_BYTES = 1 << 30  # agents' in-memory states beyond this are evicted, least recently used first


class StoreListener(Protocol):
    """A derived index kept in step with the store (the BM25 index). on_upsert also replays an agent's live
    records when the store reads the agent back into memory; on_evict (optional) drops what it holds of an
    agent the store evicted."""

    def on_upsert(self, record: MemoryRecord) -> None: ...  # after an add or update became durable

    def on_delete(self, record: MemoryRecord) -> None: ...


class MemoryStore(OneCommit, StoreReads):
    def __init__(self, path: str | Path, dim: int = 384, writer_wait_s: float = WRITER_WAIT_S,
                 resident_bytes: int = RESIDENT_BYTES) -> None:
        """`writer_wait_s`: how long to wait for another process writing this folder to let go
        (memory/writer_lock.py) before refusing to open it. `resident_bytes`: the budget of agents' states
        kept in memory (estimated, resident.py)."""
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
        ensure_scalar_index(self._table, "agent")  # an agent read back from the table reads its rows only
        self._closed = False
        self._write_lock = threading.RLock()
        self._mirror_lock = threading.Lock()
        self._resident = ResidentAgents(resident_bytes)
        self._loading = KeyedLocks()  # one reader of an agent's rows at a time, per agent
        self._known = self._agents_in_table()  # (tenant, agent) pairs with rows: others need no read
        self._listeners: list[StoreListener] = []
        self._writes = 0
        self._erasure = SharedErasure(self._erase_old_versions)
        self._staging = threading.local()  # what one_commit() stages, per thread (store_commit.py)

    def close(self) -> None:
        """Stop being the folder's writer, so another process may open it; this store must not be used after."""
        with self._write_lock:
            self._closed = True  # a later write fails at once rather than racing the next writer
            release_writer_lock(self.path)

    # -- agents in memory ------------------------------------------------------------------------------------
    def _agents_in_table(self) -> set[tuple[str, str]]:
        pairs = self._table.search().select(["tenant", "agent"]).limit(None).to_arrow()
        return {(p["tenant"], p["agent"]) for p in pairs.group_by(["tenant", "agent"]).aggregate([]).to_pylist()}

    def _state(self, tenant: str, agent: str, *, create: bool = False, pin: bool = False) -> Optional[AgentState]:
        """The agent's state, read from the table if it is not in memory; None for an agent without rows
        unless `create` (a write). `pin`: the state cannot be evicted until _unpin()."""
        key = (tenant, agent)
        with self._mirror_lock:
            state = self._resident.get(key)
            if state is not None:
                state.pins += pin
                return state
            if key not in self._known and not create:
                return None
        with self._loading.hold(key):
            with self._mirror_lock:
                state = self._resident.get(key)
                if state is not None:
                    state.pins += pin
                    return state
                known = key in self._known
            state = self._read_agent(tenant, agent) if known else AgentState(self.dim)
            # The listeners catch up before the state is visible, so no search sees it without its BM25 index.
            live = sorted(state.partition.records.values(), key=lambda r: (r.created_at, r.id))
            self._notify("on_upsert", live)
            with self._mirror_lock:
                state.pins += pin
                self._resident.put(key, state)
                self._known.add(key)
                self._evict(keep=key)
            return state

    def _read_agent(self, tenant: str, agent: str) -> AgentState:
        where = f"tenant = {sql_literal(tenant)} AND agent = {sql_literal(agent)}"
        return AgentState.from_rows(self._table.search().where(where).limit(None).to_arrow(), self.dim)

    def _evict(self, keep: Any = None) -> None:
        """Under the mirror lock, so the listeners drop an agent in the same step as the store (a reload of it
        cannot come in between)."""
        for tenant, agent in self._resident.evict(keep):
            self._tell_evicted(tenant, agent)

    def _tell_evicted(self, tenant: str, agent: str) -> None:
        for listener in self._listeners:
            drop = getattr(listener, "on_evict", None)
            if drop is not None:
                drop(tenant, agent)

    def _drop_agent(self, tenant: str, agent: str) -> None:
        """Forget the agent's state (it is read from the table on next use): after a commit that failed."""
        with self._loading.hold((tenant, agent)), self._mirror_lock:
            if self._resident.pop((tenant, agent)) is not None:
                self._tell_evicted(tenant, agent)

    def _unpin(self, states: dict[tuple[str, str], Optional[AgentState]]) -> None:
        with self._mirror_lock:
            for key, state in states.items():
                if state is None:
                    continue
                state.pins -= 1  # this very state: the agent may have been dropped and read back meanwhile
                if self._resident.get(key) is state:
                    self._resident.measure(key)
            self._evict()

    @contextlib.contextmanager
    def _writing(self, keys: Iterable[tuple[str, str]], create: bool = False) -> Iterator[dict]:
        """The states of the agents a write touches, pinned while it runs (None for an agent without rows
        unless `create`)."""
        states = {k: self._state(*k, create=create, pin=True) for k in dict.fromkeys(keys)}
        try:
            yield states
        finally:
            self._unpin(states)

    @contextlib.contextmanager
    def resident(self, tenant: str, agent: str) -> Iterator[None]:
        """Keeps the agent in memory (and in the listeners) while the block runs: a search reading the store and
        the BM25 index one after the other sees both."""
        with self._writing([(tenant, agent)]):
            yield

    def resident_agents(self) -> tuple[int, int]:
        """(agents in memory, their estimated bytes)."""
        with self._mirror_lock:
            return len(self._resident), self._resident.total_bytes

    # -- listeners -----------------------------------------------------------------------------------------
    def add_listener(self, listener: StoreListener) -> None:
        """Registers `listener` and replays on_upsert for every live record in memory first, so it starts in
        step (agents read back later are replayed to it as they are read)."""
        with self._write_lock:
            with self._mirror_lock:
                live = [r for _, s in self._resident.items() for r in s.partition.records.values()]
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
        keys = [row_key(r.tenant, r.agent, r.id) for r in ready]
        if len(set(keys)) != len(keys):
            raise MemoryQueryError("add_many got the same memory id twice for one agent")
        with self._writing([(r.tenant, r.agent) for r in ready], create=True) as states, self._write_lock:
            mine = [states[(r.tenant, r.agent)] for r in ready]
            with self._mirror_lock:
                for r, state in zip(ready, mine):
                    if r.id in state.partition.records:
                        raise MemoryQueryError(f"memory id {r.id!r} already exists for agent {r.agent!r}")
            histories = [state.history.get(r.id, []) + [HistoryEntry(r.id, "ADD", None, r.text, r.created_at, r.source)]
                         for r, state in zip(ready, mine)]
            rows = self._rows(ready, vectors, histories, deleted=False)
            # A plain append (no join: the fast path of a bulk load) unless a tombstone row has that key.
            self._write(rows, append=not any(r.id in state.tombstones for r, state in zip(ready, mine)))
            with self._mirror_lock:
                for r, v, h, state in zip(ready, vectors, histories, mine):
                    state.set_history(r.id, h)
                    state.tombstones.discard(r.id)
                    state.partition.put(r, v)
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
        with self._writing([(tenant, agent)]) as states, self._write_lock:
            state, old = self._live(states, tenant, agent, memory_id)
            now = max(time.time(), old.updated_at)
            new = replace(old, text=text, updated_at=now, source=source or old.source,
                          subject=old.subject if subject is None else subject,
                          attribute=old.attribute if attribute is None else attribute,
                          metadata=dict(old.metadata if metadata is None else metadata))
            history = state.history[memory_id] + [HistoryEntry(memory_id, "UPDATE", old.text, text, now, source)]
            self._write(self._rows([new], vector, [history], deleted=False), append=False)
            with self._mirror_lock:
                state.set_history(memory_id, history)
                state.partition.put(new, vector[0])
            self._after_write()
            self._notify_later("on_upsert", [new])
        return old, new

    def delete(self, tenant: str, agent: str, memory_id: str, *, source: str = "") -> MemoryRecord:
        """Tombstones the memory and returns it as it was; its history ends with DELETE."""
        with self._writing([(tenant, agent)]) as states, self._write_lock:
            state, old = self._live(states, tenant, agent, memory_id)
            with self._mirror_lock:
                vector = state.partition.vector(memory_id)
            history = state.history[memory_id] + [HistoryEntry(memory_id, "DELETE", old.text, None, time.time(),
                                                               source)]
            self._write(self._rows([old], vector[None, :], [history], deleted=True), append=False)
            with self._mirror_lock:
                state.set_history(memory_id, history)
                state.tombstones.add(memory_id)
                state.partition.remove(memory_id)
            self._after_write()
            self._notify_later("on_delete", [old])
        return old

    def purge(self, tenant: str, agent: str, memory_id: str, *, source: str = "purge") -> Optional[MemoryRecord]:
        """Erases a memory, live or already deleted: its text, vector and metadata, and every text in its
        history, from the table and from disk (the table's older versions, which still hold them, are
        compacted away). What remains is that the memory existed and when each event happened. Returns the
        memory as it was when it was still live, else None. For deletion requests that must leave nothing."""
        if self._staged is not None:  # a programming error, not a request's: the erasure needs a commit first
            raise RuntimeError("purge compacts the table; call it outside one_commit()")
        with self._writing([(tenant, agent)]) as states, self._write_lock:
            state = states[(tenant, agent)]
            history = state.history.get(memory_id) if state else None
            if history is None:
                raise MemoryNotFound(f"no memory with id {memory_id!r} for agent {agent!r}")
            live = state.partition.records.get(memory_id)
            if live is None and _purged(history):
                return None  # purged before: nothing is left to erase, so nothing is written
            now = time.time()
            erased = [replace(h, old_text=None, new_text=None) for h in history]
            erased.append(HistoryEntry(memory_id, "DELETE", None, None, now, source))
            blank = MemoryRecord(id=memory_id, tenant=tenant, agent=agent, text="",
                                 created_at=live.created_at if live else now, updated_at=now)
            self._merge(self._rows([blank], np.zeros((1, self.dim), np.float32), [erased], deleted=True))
            with self._mirror_lock:
                state.set_history(memory_id, erased)
                state.tombstones.add(memory_id)
                if live is not None:
                    state.partition.remove(memory_id)
            if live is not None:
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
        self._check_open()
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

    def _check_open(self) -> None:
        if self._closed:
            raise MemorylabError(f"the memory store under {self.path} was closed: another process may write it now")

    # -- helpers -------------------------------------------------------------------------------------------
    def _live(self, states: dict, tenant: str, agent: str, memory_id: str) -> tuple[AgentState, MemoryRecord]:
        state = states[(tenant, agent)]
        with self._mirror_lock:
            record = state.partition.records.get(memory_id) if state else None
        if record is None:
            raise MemoryNotFound(f"no memory with id {memory_id!r} for agent {agent!r}")
        return state, record
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
