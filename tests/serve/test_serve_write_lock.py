"""The retriever's write lock outlives a cancelled request: its write goes on in a thread, and the next write
must wait for it (Serve cancels the request of a client that disconnects)."""

from __future__ import annotations

import asyncio
import threading
import time
from types import SimpleNamespace

import pytest

from memorylab.serve.retriever import Retriever


def test_a_cancelled_write_keeps_the_lock_until_its_thread_ends():
    write = Retriever._write  # the class as written; the deployment wraps it
    events: list[str] = []
    started = threading.Event()

    def slow() -> str:
        started.set()
        events.append("first begins")
        time.sleep(0.3)
        events.append("first ends")
        return "first"

    def quick() -> str:
        events.append("second")
        return "second"

    async def scenario() -> None:
        replica = SimpleNamespace(_write_lock=asyncio.Lock())
        first = asyncio.create_task(write(replica, slow))
        while not started.is_set():
            await asyncio.sleep(0.01)
        first.cancel()  # the client went away mid-write
        assert await write(replica, quick) == "second"
        with pytest.raises(asyncio.CancelledError):
            await first

    asyncio.run(scenario())
    assert events == ["first begins", "first ends", "second"]
