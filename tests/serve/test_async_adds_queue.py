"""The async add worker (serve/async_adds.py) on its own: order per agent, the per-tenant bound, retries of
a failing generator, and recovery of an add applied before a restart but not marked so."""

from __future__ import annotations

import asyncio

from memorylab.memory.add_queue import AddQueue, event_source
from memorylab.serve import async_adds
from memorylab.serve.async_adds import AsyncAdds
from memorylab.serve.refusal import Refusal


def request(text: str) -> dict:
    return {"messages": [{"role": "user", "content": text}], "infer": False, "metadata": None}


async def settle(adds: AsyncAdds) -> None:
    while adds.pending():
        await asyncio.sleep(0.01)


def test_adds_apply_in_order_per_agent_and_agents_run_side_by_side(tmp_path):
    applied: list[tuple[str, str]] = []
    running = set()
    overlap = []

    async def apply(tenant, agent, items):
        running.add(agent)
        overlap.append(len(running))
        await asyncio.sleep(0.01)
        running.discard(agent)
        applied.extend((agent, req["messages"][0]["content"]) for req, _ in items)
        return [[{"id": "x", "memory": req["messages"][0]["content"], "event": "ADD"}] for req, _ in items]

    async def main():
        adds = AsyncAdds(AddQueue(tmp_path), apply, lambda *a: None, max_queued=100, retention_s=60)
        events = [await adds.submit("t", f"a{i % 2}", request(f"fact {i}")) for i in range(10)]
        await settle(adds)
        return adds, events

    adds, events = asyncio.run(main())
    assert [t for a, t in applied if a == "a0"] == [f"fact {i}" for i in range(0, 10, 2)]
    assert [t for a, t in applied if a == "a1"] == [f"fact {i}" for i in range(1, 10, 2)]
    assert max(overlap) == 2  # the two agents' workers ran concurrently; one agent's adds never did
    done = asyncio.run(adds.status("t", "a1", events[3]["event_id"]))
    assert done["status"] == "applied" and done["results"][0]["memory"] == "fact 3"
    assert isinstance(asyncio.run(adds.status("other", "a1", events[3]["event_id"])), Refusal)  # tenant-scoped


def test_a_tenant_past_its_bound_gets_429_and_others_do_not(tmp_path):
    gate = asyncio.Event

    async def main():
        release = gate()

        async def apply(tenant, agent, items):
            await release.wait()
            return [[] for _ in items]

        adds = AsyncAdds(AddQueue(tmp_path), apply, lambda *a: None, max_queued=3, retention_s=60)
        first = [await adds.submit("greedy", f"a{i}", request(f"f{i}")) for i in range(4)]
        other = await adds.submit("polite", "a", request("f"))
        release.set()
        await settle(adds)
        again = await adds.submit("greedy", "a0", request("later"))
        await settle(adds)
        return first, other, again

    first, other, again = asyncio.run(main())
    assert [isinstance(x, Refusal) for x in first] == [False, False, False, True]
    assert first[3].status == 429 and "serve.max_queued_adds" in first[3].detail
    assert other["status"] == "queued" and again["status"] == "queued"


def test_a_failing_generator_is_retried_then_the_event_fails_with_the_reason(tmp_path, monkeypatch):
    monkeypatch.setattr(async_adds, "RETRY_S", 0.001)
    calls = []

    async def apply(tenant, agent, items):  # a batch fails as a whole when one of its adds does
        texts = [req["messages"][0]["content"] for req, _ in items]
        calls.extend(texts)
        if "flaky" in texts and calls.count("flaky") < 3:
            return Refusal(503, "generator: connection refused")
        if "bad" in texts:
            return Refusal(422, [{"loc": ["body", "messages"], "msg": "too many facts", "type": "value_error"}])
        if "down" in texts:
            return Refusal(502, "generator: upstream 500")
        return [[{"id": "m", "memory": "ok", "event": "ADD"}] for _ in items]

    async def main():
        queue = AddQueue(tmp_path)  # queued together, so the worker takes the three as one batch
        ids = [e["event_id"] for e in queue.put_many([("t", "a", request(t)) for t in ("flaky", "bad", "down")])]
        adds = AsyncAdds(queue, apply, lambda *a: None, max_queued=10, retention_s=60)
        adds.resume()
        await settle(adds)
        return [await adds.status("t", "a", i) for i in ids]

    flaky, bad, down = asyncio.run(main())
    assert flaky["status"] == "applied" and calls.count("flaky") == 3  # in the batch, then alone with a retry
    assert bad["status"] == "failed" and "too many facts" in bad["error"] and calls.count("bad") == 2
    assert down["status"] == "failed" and down["error"] == "502: generator: upstream 500"
    assert calls.count("down") == 1 + async_adds.RETRIES + 1


def test_a_restart_applies_what_was_queued_and_does_not_apply_twice(tmp_path):
    queue = AddQueue(tmp_path)
    first = queue.put("t", "a", request("was applied before the crash"))
    second = queue.put("t", "a", request("was still queued"))
    applied = []

    async def apply(tenant, agent, items):
        applied.extend((req["messages"][0]["content"], source) for req, source in items)
        return [[{"id": "n", "memory": req["messages"][0]["content"], "event": "ADD"}] for req, _ in items]

    def recovered(tenant, agent, source):  # the memories of the first add carry its source
        if source == event_source(first["event_id"]):
            return [{"id": "m", "memory": "was applied before the crash", "event": "ADD"}]
        return None

    async def main():
        adds = AsyncAdds(AddQueue(tmp_path), apply, recovered, max_queued=10, retention_s=60)
        assert adds.resume() == 2
        await settle(adds)
        return [await adds.status("t", "a", e["event_id"]) for e in (first, second)]

    one, two = asyncio.run(main())
    assert applied == [("was still queued", event_source(second["event_id"]))]
    assert one["status"] == two["status"] == "applied" and one["results"][0]["id"] == "m"
    assert AddQueue(tmp_path).queued() == []


def test_finished_events_are_pruned_after_their_retention(tmp_path):
    queue = AddQueue(tmp_path)
    old = queue.put("t", "a", request("old"))
    queue.finish([(old, "applied", [], None)])
    waiting = queue.put("t", "a", request("waiting"))
    queue.prune(retention_s=0.0)
    assert queue.get("t", "a", old["event_id"]) is None
    assert queue.get("t", "a", waiting["event_id"])["status"] == "queued"


def test_concurrent_submits_share_commits_and_a_worker_applies_a_backlog_in_batches(tmp_path, monkeypatch):
    batches, commits = [], []

    async def apply(tenant, agent, items):
        batches.append(len(items))
        return [[] for _ in items]

    async def main():
        queue = AddQueue(tmp_path)
        put_many = queue.put_many
        monkeypatch.setattr(queue, "put_many", lambda adds: commits.append(len(adds)) or put_many(adds))
        adds = AsyncAdds(queue, apply, lambda *a: None, max_queued=1000, retention_s=60)
        replies = await asyncio.gather(*(adds.submit("t", "a", request(f"f{i}")) for i in range(100)))
        await settle(adds)
        return replies

    replies = asyncio.run(main())
    assert len({r["event_id"] for r in replies}) == 100 and sum(commits) == 100
    assert len(commits) <= 3, commits  # the first alone, the rest while it committed
    assert sum(batches) == 100 and max(batches) == async_adds.APPLY_BATCH
