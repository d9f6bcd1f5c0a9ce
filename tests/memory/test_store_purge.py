"""Purging a memory erases its texts from the store and from the files on disk, and keeps only its events."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from memorylab.memory.records import MemoryRecord
from memorylab.memory.store import MemoryNotFound, MemoryStore

SECRET, NEWER = "Ana Ruiz keeps the spare key under blue-heron-7781", "Ana Ruiz moved the key to zebra-quartz-4419"


def unit(seed: int) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=384).astype(np.float32)
    return v / np.linalg.norm(v)


def on_disk(folder: Path, text: str) -> bool:
    needle = text.split()[-1].encode()
    return any(needle in f.read_bytes() for f in folder.rglob("*") if f.is_file())


def record(text: str) -> MemoryRecord:
    return MemoryRecord(id="", tenant="t", agent="a", text=text, created_at=0.0, updated_at=0.0, source="test")


@pytest.mark.parametrize("deleted_first", [False, True])
def test_purge_leaves_no_text_anywhere(tmp_path, deleted_first):
    store = MemoryStore(tmp_path)
    kept = store.add(record("Ana Ruiz was born in Quito"), unit(0))
    memory = store.add(record(SECRET), unit(1))
    store.update("t", "a", memory.id, NEWER, unit(2))
    if deleted_first:
        store.delete("t", "a", memory.id)
    assert on_disk(tmp_path, SECRET) and on_disk(tmp_path, NEWER)  # history and old versions hold both

    returned = store.purge("t", "a", memory.id)
    assert (returned is None) == deleted_first
    assert store.get("t", "a", memory.id) is None
    events = store.history("t", "a", memory.id)
    assert [e.event for e in events][-1] == "DELETE"
    assert all(e.old_text is None and e.new_text is None for e in events)
    assert not on_disk(tmp_path, SECRET) and not on_disk(tmp_path, NEWER)
    assert [r.id for r, _ in store.dense_search("t", "a", unit(2), 5)] == [kept.id]

    reopened = MemoryStore(tmp_path)  # the erasure is what is on disk, not just in this process
    assert reopened.get("t", "a", memory.id) is None and reopened.get("t", "a", kept.id) == kept
    assert all(e.old_text is None and e.new_text is None for e in reopened.history("t", "a", memory.id))


def test_purge_of_an_unknown_memory_is_not_found(tmp_path):
    with pytest.raises(MemoryNotFound):
        MemoryStore(tmp_path).purge("t", "a", "nope")


def test_a_second_purge_writes_nothing(tmp_path):
    # Each purge appended a history entry and compacted the whole table again: a client retrying a purge (or
    # a hostile one repeating it) could make the store rewrite itself without end.
    store = MemoryStore(tmp_path)
    memory = store.add(record(SECRET), unit(1))
    store.purge("t", "a", memory.id)
    events, version = store.history("t", "a", memory.id), store._table.version
    files = sorted(str(p) for p in tmp_path.rglob("*") if p.is_file())
    for _ in range(3):
        assert store.purge("t", "a", memory.id) is None
    assert store.history("t", "a", memory.id) == events and store._table.version == version
    assert sorted(str(p) for p in tmp_path.rglob("*") if p.is_file()) == files


def test_purges_at_once_share_their_compactions(tmp_path, monkeypatch):
    # Each purge compacted the whole table: sixteen purges, sixteen rewrites of everything. Purges committed
    # while a compaction runs are erased by the next one, together, and none returns before its text is gone.
    import threading
    import time

    from memorylab.memory import store as store_module

    store = MemoryStore(tmp_path)
    memories = [store.add(record(f"Secret number {i} is zebra-{i:04d}"), unit(i)) for i in range(16)]
    real = store_module.erase_deleted_rows

    def slow(table):
        time.sleep(0.2)
        real(table)

    monkeypatch.setattr(store_module, "erase_deleted_rows", slow)
    gone = []

    def purge(memory):
        store.purge("t", "a", memory.id)
        gone.append(not on_disk(tmp_path, memory.text))

    threads = [threading.Thread(target=purge, args=(m,)) for m in memories]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert gone == [True] * 16
    assert store._erasure.compactions <= 6  # not one each: those committed during a compaction share the next
