"""`POST .../memories` with `"async": true` over HTTP (issue 19): 202 with an event id once the add is durably
queued, applied in order per agent, its status and results at GET .../events/{event_id}, refused at once when
the add itself would be; and every queued add applied after the replica is killed with adds still queued."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import ray
from served_app import Served, agent_id
from test_serve_durability import wait_for, writer_replicas


def add_async(client: httpx.Client, agent: str, *texts: str) -> httpx.Response:
    return client.post(f"/v1/agents/{agent}/memories",
                       json={"messages": [{"role": "user", "content": t} for t in texts], "async": True})


def finished(client: httpx.Client, agent: str, event_id: str, timeout_s: float = 60) -> dict:
    reply: dict = {}

    def done() -> bool:
        nonlocal reply
        got = client.get(f"/v1/agents/{agent}/events/{event_id}")
        reply = got.json() if got.status_code == 200 else {}
        return reply.get("status") in ("applied", "failed")

    wait_for(f"event {event_id}", done, timeout_s)
    return reply


def test_an_async_add_is_acknowledged_queued_then_applied_in_order(acme: httpx.Client):
    agent = agent_id("async")
    replies = [add_async(acme, agent, "Ann Quay lives in Oslo."),
               add_async(acme, agent, "Actually, Ann Quay lives in Rome."),
               add_async(acme, agent, "Actually, Ann Quay lives in Lima.", "Bo Quay works as a baker.")]
    assert [r.status_code for r in replies] == [202] * 3, [r.text for r in replies]
    assert all(r.json()["status"] == "queued" and len(r.json()["event_id"]) == 32 for r in replies)
    events = [finished(acme, agent, r.json()["event_id"]) for r in replies]
    assert [e["status"] for e in events] == ["applied"] * 3
    assert [r["event"] for r in events[0]["results"]] == ["ADD"]
    assert [(r["event"], r["memory"]) for r in events[2]["results"]] == [
        ("UPDATE", "Ann Quay lives in Lima."), ("ADD", "Bo Quay works as a baker.")]
    assert events[2]["finished_at"] >= events[0]["finished_at"] >= events[0]["created_at"]
    memories = acme.get(f"/v1/agents/{agent}/memories").json()["results"]
    assert sorted(m["memory"] for m in memories) == ["Ann Quay lives in Lima.", "Bo Quay works as a baker."]
    hit = acme.post(f"/v1/agents/{agent}/search", json={"query": "Where does Ann Quay live?", "top_k": 1}).json()
    assert hit["results"][0]["memory"] == "Ann Quay lives in Lima."


def test_async_add_refusals(acme: httpx.Client, globex: httpx.Client):
    agent = agent_id("async")
    too_many = add_async(acme, agent, " ".join(f"Cy Num{i} lives in Town{i}." for i in range(65)))
    assert too_many.status_code == 422 and too_many.json()["detail"][0]["loc"] == ["body", "messages"], too_many.text
    event_id = add_async(acme, agent, "Di Quay lives in Pune.").json()["event_id"]
    assert finished(acme, agent, event_id)["status"] == "applied"
    # Events are the tenant's: another tenant (or another agent of the same) learns nothing of them.
    assert globex.get(f"/v1/agents/{agent}/events/{event_id}").status_code == 404
    assert acme.get(f"/v1/agents/{agent_id('other')}/events/{event_id}").status_code == 404
    assert acme.get(f"/v1/agents/{agent}/events/{'0' * 32}").status_code == 404
    assert acme.get(f"/v1/agents/{agent}/events/not-an-id").status_code == 422


def test_adds_queued_when_the_replica_dies_are_all_applied_after_restart(served: Served):
    agent = agent_id("async-durable")
    before = writer_replicas()
    assert len(before) == 1, f"expected one Ingress replica, found {before}"
    # Adds of 20 facts each: slow enough to apply that some are still queued when the replica is killed.
    adds = [[f"Eve{i:02d}x{j:02d} Quay lives in Port{i:02d}x{j:02d}." for j in range(20)] for i in range(16)]
    with served.client("acme", timeout=30) as client, ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda texts: add_async(client, agent, *texts), adds))
        killed_at = time.time()
        ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
    assert [r.status_code for r in replies] == [202] * len(adds), [r.text for r in replies if r.status_code != 202]
    wait_for("a new Ingress replica", lambda: writer_replicas() not in ([], before), 90)
    with served.client("acme", timeout=30) as client:
        wait_for("/healthz", lambda: client.get("/healthz").status_code == 200, 60)
        events = [finished(client, agent, r.json()["event_id"], timeout_s=120) for r in replies]
        assert [e["status"] for e in events] == ["applied"] * len(adds)
        after_kill = sum(time.mktime(time.strptime(e["finished_at"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
                         >= int(killed_at) for e in events)
        assert after_kill >= 1, "every add was applied before the kill: the test did not test a restart"
        listed = client.get(f"/v1/agents/{agent}/memories", params={"limit": 1000}).json()["results"]
    texts = sorted(m["memory"] for m in listed)
    assert texts == sorted(t for texts in adds for t in texts)  # each fact once: none lost, none applied twice
    print(f"async durability: {after_kill} of {len(adds)} queued adds applied by the new replica")
