"""The retriever: the embedder and the LanceDB memory store, held by the Ingress replica, the only writer.

Every write (the ADD/UPDATE/DELETE/NOOP policy included) happens here, so the in-memory mirror and the
full-text index of the store are consistent with the table without any cross-replica protocol; a restarted
replica rebuilds both from LanceDB, where every write is durable before its reply. The dense arms of
concurrent searches run together (@serve.batch): their queries are embedded in one batch (on a CPU core
MiniLM embeds a batch for far less per query than it embeds queries one by one), and those of one agent are
scored in one pass over its vectors.

It lives in the Ingress replica rather than in a deployment of its own: a Serve hop costs CPU per request on
both sides, and on a small machine that CPU is what the searches themselves need.
"""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional

import numpy as np
from ray import serve

from memorylab.errors import GeneratorUnavailable, MemorylabError, TooManyFacts
from memorylab.memory.add_queue import AddQueue
from memorylab.memory.embedder import Embedder
from memorylab.memory.facts import parse_fact
from memorylab.memory.fulltext import FullTextIndex
from memorylab.memory.keyed_locks import AsyncKeyedLocks
from memorylab.memory.ops import MemoryWriter
from memorylab.memory.records import MemoryRecord
from memorylab.memory.retrieval import HybridRetriever
from memorylab.memory.store import MemoryNotFound, MemoryStore
from memorylab.models.protocol import TextGenerator
from memorylab.schema.memory_agent import MemorySettings, ServeSettings
from memorylab.serve.async_adds import AsyncAdds
from memorylab.serve.refusal import Refusal

log = logging.getLogger("memorylab.serve")


@dataclass(frozen=True)
class DenseQuery:
    """One search's dense arm, as the replica batches it."""

    tenant: str
    agent: str
    query: str
    depth: int
    filters: Optional[dict] = None


class MemoryService:
    """Store + embedder + full-text index + hybrid search + write policy, in one process.

    Retriever below adds batching and write ordering; the serving benchmark uses it directly as its
    in-process baseline.
    """

    def __init__(self, folder: str | Path, memory: MemorySettings, *, generator: Any = None,
                 device: str = "cpu") -> None:
        self.settings = memory
        self.store = MemoryStore(Path(folder) / "memory", resident_bytes=memory.resident_mb << 20)
        self.embedder = Embedder(device=device, quantize=memory.retrieval.quantize_embedder)
        same_embedder(self.store.path, self.embedder.name, bool(self.store.count()))
        self.fulltext = FullTextIndex()
        self.store.add_listener(self.fulltext)
        self.retriever = HybridRetriever(self.store, self.embedder, self.fulltext, rrf_k=memory.retrieval.rrf_k)
        self.writer = MemoryWriter(self.store, self.embedder, memory.policy, generator=generator)

    def search_settings(self, mode: Optional[str], candidates: Optional[int]) -> tuple[str, int]:
        """A request's retrieval mode and fusion depth, the store's settings where the request gives none."""
        retrieval = self.settings.retrieval
        return mode or retrieval.mode, candidates or retrieval.candidates

    def search(self, tenant: str, agent: str, query: str, top_k: int, *, mode: Optional[str] = None,
               filters: Optional[dict] = None, query_vector: Optional[np.ndarray] = None,
               candidates: Optional[int] = None,
               dense_hits: Optional[list[tuple[MemoryRecord, float]]] = None) -> list[tuple[MemoryRecord, float]]:
        mode, candidates = self.search_settings(mode, candidates)
        return self.retriever.search(tenant, agent, query, top_k, mode=mode, filters=filters or None,
                                     candidates=candidates, query_vector=query_vector, dense_hits=dense_hits)

    def dense_arm(self, queries: list[DenseQuery]) -> list[Any]:
        """The dense arm of several searches at once: every query embedded in one batch, and the queries of
        one agent (with the same filters) scored in one pass over its vectors. Each search gets its hits or,
        when its filters are refused, its Refusal."""
        vectors = self.embedder.embed([q.query for q in queries])
        groups: dict[tuple, list[int]] = {}
        for i, q in enumerate(queries):
            key = json.dumps(q.filters, sort_keys=True) if q.filters else None
            groups.setdefault((q.tenant, q.agent, key), []).append(i)
        out: list[Any] = [None] * len(queries)
        for (tenant, agent, _), members in groups.items():
            depth = max(queries[i].depth for i in members)
            found = refused(self.store.dense_search_many, tenant, agent, np.stack([vectors[i] for i in members]),
                            depth, queries[members[0]].filters)
            for j, i in enumerate(members):
                out[i] = found if isinstance(found, Refusal) else found[j][: queries[i].depth]
        return out

    def add_messages(self, tenant: str, agent: str, messages: list[dict], *, infer: bool,
                     metadata: Optional[dict], source: str = "api") -> list[dict]:
        results = self.writer.add_messages(tenant, agent, messages, infer=infer, metadata=metadata, source=source)
        return [asdict(r) for r in results]

    def add_batch(self, tenant: str, agent: str, items: list[tuple[dict, str]]) -> list[list[dict]]:
        """Adds (request, source) one after the other, each decided against the ones before, all in one commit
        (queued async adds: serve/async_adds.py)."""
        with self.store.one_commit(tenant, agent):
            return [self.add_messages(tenant, agent, request["messages"], infer=request["infer"],
                                      metadata=request["metadata"], source=source) for request, source in items]

    def applied_add(self, tenant: str, agent: str, source: str) -> Optional[list[dict]]:
        """The results of an add whose memories were written with `source` (serve/async_adds.py), from their
        history; None when no memory carries it."""
        found = self.store.written_by(tenant, agent, source)
        if not found:
            return None
        return [{"id": h.memory_id, "memory": h.new_text or h.old_text or "", "event": h.event,
                 "previous_memory": h.old_text if h.event == "UPDATE" else None} for h in found]

    def get(self, tenant: str, agent: str, memory_id: str) -> MemoryRecord:
        record = self.store.get(tenant, agent, memory_id)
        if record is None:
            raise MemoryNotFound(f"memory '{memory_id}' not found")
        return record

    def update(self, tenant: str, agent: str, memory_id: str, text: str, metadata: Optional[dict]) -> MemoryRecord:
        vector = self.embedder.embed([text])[0]
        # The (subject, attribute) key follows the new text: a memory rewritten to another fact but keeping its
        # old key would be overwritten by the next fact of that key. "" clears a key the new text lacks (None
        # would keep the old one).
        fact = parse_fact(text)
        _, new = self.store.update(tenant, agent, memory_id, text, vector, source="api",
                                   subject=fact.subject or "", attribute=fact.attribute or "", metadata=metadata)
        return new

    def delete(self, tenant: str, agent: str, memory_id: str, purge: bool = False) -> Optional[MemoryRecord]:
        """Tombstone (history kept), or with purge erase every text of the memory, also from disk."""
        if purge:
            return self.store.purge(tenant, agent, memory_id, source="api purge")
        return self.store.delete(tenant, agent, memory_id, source="api")

    def list(self, tenant: str, agent: str, limit: int, cursor: Optional[str]):
        return self.store.list(tenant, agent, limit=limit, cursor=cursor)

    def history(self, tenant: str, agent: str, memory_id: str):
        entries = self.store.history(tenant, agent, memory_id)
        if not entries:
            raise MemoryNotFound(f"memory '{memory_id}' not found")
        return entries


def same_embedder(folder: Path, name: str, has_memories: bool) -> None:
    """Records which embedder writes the store (embedder.json beside its table), and refuses to open a store
    another one wrote: its vectors and the queries' would not be comparable. A store written before the record
    existed was written in float32 (the default then)."""
    record = folder / "embedder.json"
    if record.exists():
        written = json.loads(record.read_text())["embedder"]
    elif has_memories:
        written = "all-MiniLM-L6-v2 float32"
    else:
        written = name
    if written != name:
        raise MemorylabError(f"{record}: the memories here were embedded by {written}, not {name}: set "
                             f"memory.retrieval.quantize_embedder to {str('int8' in written).lower()} (or use "
                             f"another folder)")
    if not record.exists():
        record.write_text(json.dumps({"embedder": name}) + "\n")


def refused(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except MemoryNotFound as e:
        return Refusal(404, str(e))
    except GeneratorUnavailable as e:  # infer: true, and the generator's server failed: nothing was written
        return Refusal(e.status, f"generator: {e}")
    except TooManyFacts as e:  # in FastAPI's shape for a request body it refuses, as the schema documents it
        return Refusal(422, [{"loc": ["body", "messages"], "msg": str(e), "type": "value_error"}])
    except MemorylabError as e:
        return Refusal(400, str(e))


class Retriever:
    def __init__(self, folder: str, memory: MemorySettings, batch_size: int = 16, batch_wait_ms: float = 6.0,
                 generator: Optional[TextGenerator] = None, device: str = "cpu",
                 serve_settings: ServeSettings = ServeSettings()) -> None:
        self.service = MemoryService(folder, memory, generator=generator, device=device)
        self.adds = AsyncAdds(AddQueue(self.service.store.path), self._apply_adds, self.service.applied_add,
                              serve_settings.max_queued_adds, serve_settings.event_retention_s)
        try:
            asyncio.get_running_loop()
        except RuntimeError:  # not in a replica (a test building it by hand): nothing can apply queued adds
            pass
        else:  # Serve runs the constructor on the replica's event loop
            self.adds.resume()
        self._dense_arm.set_max_batch_size(batch_size)
        self._dense_arm.set_batch_wait_timeout_s(batch_wait_ms / 1000)
        # An agent's writes run one at a time in a worker thread: the policy reads then writes, and two adds of
        # the same fact racing each other would otherwise both see "new" and store it twice. Other agents'
        # writes (another tenant's above all) run beside them.
        self._write_locks = AsyncKeyedLocks()

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.006)
    async def _dense_arm(self, queries: list[DenseQuery]) -> list[Any]:
        # Inline, on the replica's event loop, on purpose: while a batch embeds, new requests queue up and
        # form the next batch. Handed to a thread (even a one-thread executor), the work would leave the loop
        # free to take requests one by one, and batches would stay at size 1. Scoring the batch together
        # matters as much as embedding it together: one query at a time, the passes over an agent's vectors
        # take a large share of the replica's time.
        return self.service.dense_arm(queries)

    async def search(self, tenant: str, agent: str, query: str, top_k: int, mode: Optional[str] = None,
                     filters: Optional[dict] = None, candidates: Optional[int] = None) -> Any:
        mode, candidates = self.service.search_settings(mode, candidates)
        dense = None
        if mode != "bm25" and top_k > 0:
            depth = HybridRetriever.dense_depth(mode, top_k, candidates)
            dense = await self._dense_arm(DenseQuery(tenant, agent, query, depth, filters or None))
            if isinstance(dense, Refusal):
                return dense
        return refused(self.service.search, tenant, agent, query, top_k, mode=mode, filters=filters,
                       candidates=candidates, dense_hits=dense)

    async def _write(self, fn: Callable[..., Any], tenant: str, agent: str, *args: Any, **kwargs: Any) -> Any:
        async with self._write_locks.hold((tenant, agent)):
            # Serve cancels a request whose client went away, but the write in its thread goes on: the lock
            # stays held until that write ends (shielded), or the next write would run beside it.
            work = asyncio.ensure_future(asyncio.to_thread(refused, fn, tenant, agent, *args, **kwargs))
            cancelled = False
            while True:
                try:
                    result = await asyncio.shield(work)
                    break
                except asyncio.CancelledError:
                    if work.cancelled():
                        raise
                    cancelled = True
            if cancelled:
                raise asyncio.CancelledError
            return result

    async def add_messages(self, tenant: str, agent: str, messages: list[dict], infer: bool = False,
                           metadata: Optional[dict] = None) -> Any:
        return await self._write(self.service.add_messages, tenant, agent, messages, infer=infer, metadata=metadata)

    async def queue_add(self, tenant: str, agent: str, messages: list[dict], infer: bool = False,
                        metadata: Optional[dict] = None) -> Any:
        """`"async": true`: refused now if the add would be (too many facts), else queued durably."""
        checked = refused(self.service.writer.check, messages, metadata)
        if isinstance(checked, Refusal):
            return checked
        return await self.adds.submit(tenant, agent, {"messages": messages, "infer": infer, "metadata": metadata})

    async def _apply_adds(self, tenant: str, agent: str, items: list[tuple[dict, str]]) -> Any:
        return await self._write(self.service.add_batch, tenant, agent, items)

    async def add_event(self, tenant: str, agent: str, event_id: str) -> Any:
        return await self.adds.status(tenant, agent, event_id)

    async def update(self, tenant: str, agent: str, memory_id: str, text: str, metadata: Optional[dict] = None) -> Any:
        return await self._write(self.service.update, tenant, agent, memory_id, text, metadata)

    async def delete(self, tenant: str, agent: str, memory_id: str, purge: bool = False) -> Any:
        return await self._write(self.service.delete, tenant, agent, memory_id, purge)

    def get(self, tenant: str, agent: str, memory_id: str) -> Any:
        return refused(self.service.get, tenant, agent, memory_id)

    def list(self, tenant: str, agent: str, limit: int, cursor: Optional[str]) -> Any:
        return refused(self.service.list, tenant, agent, limit, cursor)

    def history(self, tenant: str, agent: str, memory_id: str) -> Any:
        return refused(self.service.history, tenant, agent, memory_id)

    def count(self) -> int:
        return self.service.store.count()
