"""The retriever's write locks: one agent's writes run one at a time, and a lock outlives a cancelled
request (its write goes on in a thread; Serve cancels the request of a client that disconnects); other
agents' writes (another tenant's above all) do not wait for it; locks exist only while used."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from memorylab.memory.keyed_locks import AsyncKeyedLocks, KeyedLocks
from memorylab.serve.retriever import Retriever

write = Retriever._write  # the class as written; the deployment wraps it


def test_a_cancelled_write_keeps_the_lock_until_its_thread_ends():
    events: list[str] = []
    started = threading.Event()

    def slow(tenant: str, agent: str) -> str:
        started.set()
        events.append("first begins")
        time.sleep(0.3)
        events.append("first ends")
        return "first"

    def quick(tenant: str, agent: str) -> str:
        events.append("second")
        return "second"

    async def scenario() -> None:
        replica = SimpleNamespace(_write_locks=AsyncKeyedLocks())
        first = asyncio.create_task(write(replica, slow, "t", "a"))
        while not started.is_set():
            await asyncio.sleep(0.01)
        first.cancel()  # the client went away mid-write
        assert await write(replica, quick, "t", "a") == "second"
        with pytest.raises(asyncio.CancelledError):
            await first
        assert len(replica._write_locks) == 0

    asyncio.run(scenario())
    assert events == ["first begins", "first ends", "second"]


def test_other_agents_writes_do_not_wait():
    # One lock served every tenant's writes: an add that took seconds (infer: true with a slow generator, a
    # large store) held every other tenant's adds behind it.
    release = threading.Event()
    events: list[str] = []

    def slow(tenant: str, agent: str) -> str:
        release.wait(5)
        events.append(f"{tenant}/{agent}")
        return "slow"

    def quick(tenant: str, agent: str) -> str:
        events.append(f"{tenant}/{agent}")
        release.set()
        return "quick"

    async def scenario() -> None:
        replica = SimpleNamespace(_write_locks=AsyncKeyedLocks())
        first = asyncio.create_task(write(replica, slow, "acme", "a"))
        await asyncio.sleep(0.05)
        began = time.perf_counter()
        assert await write(replica, quick, "globex", "a") == "quick"  # same agent id, another tenant
        assert time.perf_counter() - began < 1
        assert await first == "slow"

    asyncio.run(scenario())
    assert events == ["globex/a", "acme/a"]


def test_thread_locks_by_key_are_dropped_when_free():
    locks = KeyedLocks()
    with locks.hold(("t", "a")):
        with locks.hold(("t", "b")):
            assert len(locks) == 2
    assert len(locks) == 0
