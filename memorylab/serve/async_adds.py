"""Acknowledge now, apply later: `POST .../memories` with `"async": true`. The request is queued durably
(memory/add_queue.py) and answered 202 with an event id; one worker per agent applies that agent's queued adds
in order of arrival, through the same per-agent write path as synchronous writes (so the two interleave in
order, one at a time), and records the results, which `GET .../events/{event_id}` returns.

Both ends group their commits, as a database log does. Adds that arrive while the queue is committing others
are queued together in the next commit (no add waits for a timer; under load, one commit serves many). A worker
applies the adds waiting for its agent together, up to APPLY_BATCH, in one commit of the memory table, then
marks them applied in one commit of the queue: two commits per batch rather than two per add. A batch that
fails (a generator that is down, for one of them) is applied again one add at a time, so one add's failure is
its own.

A replica that starts finds the adds still queued and applies them. One whose memories were committed before
the process died, but whose event was not yet marked applied, is recognised by the source its memories carry
(add_queue.event_source) and marked applied from their history instead of being applied twice.

A generator that fails (infer: true, its server down: a 5xx) is retried with backoff before the event fails;
a request the writer refuses (4xx) fails at once with the reason."""

from __future__ import annotations

import asyncio
import json
import logging
from collections import Counter, deque
from typing import Any, Awaitable, Callable, Optional

from memorylab.memory.add_queue import AddQueue, event_source
from memorylab.serve.refusal import Refusal

log = logging.getLogger("memorylab.serve")

RETRIES = 3  # of an add whose generator failed (5xx), with backoff from RETRY_S
RETRY_S = 1.0
APPLY_BATCH = 32  # queued adds of one agent applied in one commit
PRUNE_EVERY = 256  # finished events between prunings of the queue's table

# (tenant, agent, [(request, source)]) -> the results of each, applied in one commit; or the batch's Refusal
Apply = Callable[[str, str, list], Awaitable[Any]]


class AsyncAdds:
    def __init__(self, queue: AddQueue, apply: Apply, recovered: Callable[[str, str, str], Optional[list]],
                 max_queued: int, retention_s: float) -> None:
        """`apply`: the synchronous adds. `recovered(tenant, agent, source)`: the results of an add whose
        memories carry `source` (it was applied before a restart), or None. `max_queued`: adds one tenant may
        have waiting."""
        self.queue = queue
        self._apply = apply
        self._recovered = recovered
        self.max_queued = max_queued
        self.retention_s = retention_s
        self._waiting: dict[tuple[str, str], deque] = {}
        self._workers: dict[tuple[str, str], asyncio.Task] = {}
        self._per_tenant: Counter = Counter()
        self._to_queue: list[tuple[tuple, asyncio.Future]] = []  # submits for the next group commit
        self._committing = False
        self._committer: Optional[asyncio.Task] = None
        self._finished = 0

    def resume(self) -> int:
        """Schedules the adds a previous process left queued (call on the event loop); returns how many."""
        events = self.queue.queued()
        for event in events:
            self._schedule(event, recovering=True)
        if events:
            log.info("resuming %d queued adds", len(events))
        return len(events)

    async def submit(self, tenant: str, agent: str, request: dict) -> Any:
        """The queued event ({event_id, status}) once durable, or a 429 Refusal past the tenant's bound."""
        if self._per_tenant[tenant] >= self.max_queued:
            return Refusal(429, f"{self.max_queued} adds of this tenant are queued already (serve.max_queued_adds):"
                                " wait for some to be applied")
        self._per_tenant[tenant] += 1  # counted before the await, so concurrent submits cannot overshoot
        done = asyncio.get_running_loop().create_future()
        self._to_queue.append(((tenant, agent, request), done))
        if not self._committing:
            # Held: the event loop keeps only weak references to tasks.
            self._committer = asyncio.get_running_loop().create_task(self._commit_queued())
            self._committing = True
        # Shielded: a client that goes away does not take its add out of a commit already under way.
        event = await asyncio.shield(done)
        return {"event_id": event["event_id"], "status": "queued"}

    async def status(self, tenant: str, agent: str, event_id: str) -> Any:
        event = await asyncio.to_thread(self.queue.get, tenant, agent, event_id)
        if event is None:
            return Refusal(404, f"event '{event_id}' not found")
        return {"event_id": event["event_id"], "status": event["status"], "created_at": event["created_at"],
                "finished_at": event["finished_at"],
                "results": json.loads(event["results"]) if event["results"] else None, "error": event["error"]}

    def pending(self) -> int:
        return sum(self._per_tenant.values())

    # -- queueing --------------------------------------------------------------------------------------------
    async def _commit_queued(self) -> None:
        """Commits every submit waiting, again until none is (submits arriving meanwhile join the next)."""
        try:
            while self._to_queue:
                group, self._to_queue = self._to_queue, []
                try:
                    events = await asyncio.to_thread(self.queue.put_many, [adds for adds, _ in group])
                except Exception as e:
                    for (tenant, _, _), done in group:
                        self._per_tenant[tenant] -= 1
                        done.set_exception(e)
                    continue
                for event, (_, done) in zip(events, group):
                    self._schedule(event)
                    done.set_result(event)
        finally:
            self._committing = False

    # -- the workers -----------------------------------------------------------------------------------------
    def _schedule(self, event: dict, recovering: bool = False) -> None:
        key = (event["tenant"], event["agent"])
        if recovering:
            self._per_tenant[key[0]] += 1
        self._waiting.setdefault(key, deque()).append((event, recovering))
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(self._drain(key))

    async def _drain(self, key: tuple[str, str]) -> None:
        waiting = self._waiting[key]
        try:
            while waiting:
                batch = [waiting[i] for i in range(min(APPLY_BATCH, len(waiting)))]
                try:
                    await self._run(key, batch)
                except Exception:  # never leave the agent's queue stuck behind a batch
                    log.exception("async adds %s failed", [event["event_id"] for event, _ in batch])
                for _ in batch:
                    waiting.popleft()
                self._per_tenant[key[0]] -= len(batch)
        finally:
            del self._workers[key]
            if not waiting:
                del self._waiting[key]

    async def _run(self, key: tuple[str, str], batch: list[tuple[dict, bool]]) -> None:
        tenant, agent = key
        done: list[tuple[dict, str, Optional[list], Optional[str]]] = []
        todo = []
        for event, recovering in batch:
            applied = None
            if recovering:  # only an add queued before this process started can have been applied already
                applied = await asyncio.to_thread(self._recovered, tenant, agent, event_source(event["event_id"]))
            if applied is not None:
                done.append((event, "applied", applied, None))
            else:
                todo.append(event)
        results = await self._apply(tenant, agent, [_item(e) for e in todo]) if len(todo) > 1 else None
        if isinstance(results, list):
            done += [(event, "applied", result, None) for event, result in zip(todo, results)]
        else:  # one add, or a batch that failed: each add on its own, with its own retries
            for event in todo:
                done.append(await self._run_one(tenant, agent, event))
        await asyncio.to_thread(self.queue.finish, done)
        self._finished += len(done)
        if self._finished // PRUNE_EVERY != (self._finished - len(done)) // PRUNE_EVERY:
            await asyncio.to_thread(self.queue.prune, self.retention_s)

    async def _run_one(self, tenant: str, agent: str, event: dict) -> tuple[dict, str, Optional[list], Optional[str]]:
        for attempt in range(RETRIES + 1):
            result = await self._apply(tenant, agent, [_item(event)])
            if not isinstance(result, Refusal):
                return event, "applied", result[0], None
            if result.status < 500 or attempt == RETRIES:
                detail = result.detail if isinstance(result.detail, str) else json.dumps(result.detail)
                return event, "failed", None, f"{result.status}: {detail}"
            await asyncio.sleep(RETRY_S * 2 ** attempt)
        raise AssertionError("unreachable")


def _item(event: dict) -> tuple[dict, str]:
    return json.loads(event["request"]), event_source(event["event_id"])
