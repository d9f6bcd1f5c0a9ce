"""A write is durable before its HTTP reply: the Ingress replica (it holds the store: the only writer) is killed while a client
keeps adding memories; once Serve has replaced it, every memory whose add returned 200 is there.

It shares the session's app: it writes under its own agent and waits for the replacement replica to serve
before it ends, so the modules after it see a healthy app. Requests that fail during the outage are fine.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import ray
from served_app import Served, agent_id

APP = "memorylab"


def writer_replicas() -> list[str]:
    """Names of the live Ingress replica actors (the writer) (Serve names them SERVE_REPLICA::<app>#<deployment>#<id>)."""
    return sorted(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                  if a["namespace"] == "serve" and a["name"].startswith(f"SERVE_REPLICA::{APP}#Ingress#"))


def wait_for(what: str, condition, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")
        time.sleep(0.25)


class Writer(threading.Thread):
    """Adds one new fact per request, as fast as the server answers, and records what was acknowledged."""

    def __init__(self, served: Served, agent: str) -> None:
        super().__init__(daemon=True)
        self.served, self.agent = served, agent
        self.stop = threading.Event()
        self.acked: dict[str, str] = {}  # memory id -> text, for every add that returned 200
        self.acked_at: list[float] = []
        self.failed: list[str] = []
        self.unexpected: list[str] = []

    def run(self) -> None:
        with self.served.client("acme", timeout=20) as client:
            i = 0
            while not self.stop.is_set():
                text = f"Zed{i:04d} Quill lives in Town{i:04d}."
                i += 1
                try:
                    reply = client.post(f"/v1/agents/{self.agent}/memories",
                                        json={"messages": [{"role": "user", "content": text}]})
                except httpx.HTTPError as e:
                    self.failed.append(type(e).__name__)
                    time.sleep(0.1)
                    continue
                if reply.status_code != 200:
                    self.failed.append(str(reply.status_code))
                    time.sleep(0.1)
                    continue
                results = reply.json()["results"]
                if [(r["event"], r["memory"]) for r in results] != [("ADD", text)]:
                    self.unexpected.append(f"{text}: {results}")
                for r in results:
                    self.acked[r["id"]] = r["memory"]
                self.acked_at.append(time.monotonic())


def test_acknowledged_adds_survive_a_writer_crash(served: Served):
    agent = agent_id("durable")
    before = writer_replicas()
    assert len(before) == 1, f"expected one Ingress replica, found {before}"

    writer = Writer(served, agent)
    writer.start()
    try:
        wait_for("5 acknowledged adds", lambda: len(writer.acked) >= 5, 60)
        ray.kill(ray.get_actor(before[0], namespace="serve"), no_restart=True)
        killed_at = time.monotonic()
        acked_before_kill = len(writer.acked)
        # Serve notices the dead replica and starts another, which reopens the store from LanceDB.
        wait_for("a new Ingress replica", lambda: writer_replicas() not in ([], before), 90)
        wait_for("5 adds acknowledged by the new replica",
                 lambda: sum(t > killed_at for t in writer.acked_at) >= 5, 90)
    finally:
        writer.stop.set()
        writer.join(timeout=30)
    assert not writer.is_alive(), "the writer thread did not stop"
    assert not writer.unexpected, f"each add of a new fact must be one ADD: {writer.unexpected[:3]}"
    after = writer_replicas()
    assert after and after != before, f"the Ingress replica was not replaced: {before} -> {after}"

    with served.client("acme", timeout=30) as client:
        wait_for("/healthz", lambda: client.get("/healthz").status_code == 200, 60)
        missing = [(i, t) for i, t in writer.acked.items()
                   if client.get(f"/v1/agents/{agent}/memories/{i}").status_code != 200]
        assert not missing, (f"{len(missing)} of {len(writer.acked)} acknowledged memories are gone after the "
                             f"crash, e.g. {missing[:3]}")
        for memory_id, text in list(writer.acked.items())[:3]:
            got = client.get(f"/v1/agents/{agent}/memories/{memory_id}").json()
            assert got["memory"] == text, got

        listed, cursor = {}, None
        while True:
            page = client.get(f"/v1/agents/{agent}/memories",
                              params={"limit": 1000, **({"cursor": cursor} if cursor else {})}).json()
            listed.update({m["id"]: m["memory"] for m in page["results"]})
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert set(writer.acked) <= set(listed), f"missing from the list: {sorted(set(writer.acked) - set(listed))[:3]}"
        # A memory whose reply was lost in the crash may exist too; nothing else may.
        assert all(t.endswith(".") and t.startswith("Zed") for t in listed.values())

        hits = client.post(f"/v1/agents/{agent}/search", json={"query": "Zed0000 Quill", "top_k": 1, "mode": "bm25"})
        assert hits.status_code == 200 and hits.json()["results"][0]["memory"] == "Zed0000 Quill lives in Town0000.", \
            hits.text
    print(f"durability: {acked_before_kill} adds acknowledged before the kill, {len(writer.acked)} in all, "
          f"{len(writer.failed)} failed during the outage ({sorted(set(writer.failed))})")
