"""Locks per key (an agent: tenant and id) that exist only while someone holds or waits for them, so that
writes of different agents never wait for each other and the number of locks is bounded by the writes in
flight, not by every agent ever written to."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import AsyncIterator, Hashable, Iterator


class KeyedLocks:
    """Thread locks by key, for code running in worker threads."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[Hashable, list] = {}  # key -> [lock, holders and waiters]

    @contextlib.contextmanager
    def hold(self, key: Hashable) -> Iterator[None]:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        try:
            with entry[0]:
                yield
        finally:
            with self._guard:
                entry[1] -= 1
                if entry[1] == 0:
                    del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)


class AsyncKeyedLocks:
    """asyncio locks by key, for coroutines of one event loop (so no guard is needed around the table)."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, list] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        entry = self._locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    def __len__(self) -> int:
        return len(self._locks)
