"""Issue 19 defect 10: per-agent state in memory is bounded (LRU under a byte budget), and an agent dropped from
memory is read back from the table on use exactly as it was: records, vectors, history, tombstones and its
BM25 index."""

from __future__ import annotations

import random
import threading

import pytest

from memorylab.memory.fulltext import FullTextIndex
from memorylab.memory.records import MemoryRecord
from memorylab.memory.retrieval import HybridRetriever
from memorylab.memory.store import MemoryStore
from tests.memory.test_retrieval import HashingEmbedder

WORDS = "heron lantern copper violin orchard glacier harbor meadow pepper saddle thimble walnut".split()
AGENTS = 30
PER_AGENT = 12


def text(agent: int, i: int) -> str:
    rng = random.Random(agent * 1000 + i)
    return f"agent {agent} note {i}: " + " ".join(rng.choice(WORDS) for _ in range(6))


def open_store(path, budget: int) -> tuple[MemoryStore, FullTextIndex, HybridRetriever]:
    store = MemoryStore(path, resident_bytes=budget)
    index = FullTextIndex()
    store.add_listener(index)
    return store, index, HybridRetriever(store, HashingEmbedder(), index)


def fill(store: MemoryStore, embedder: HashingEmbedder) -> None:
    for a in range(AGENTS):
        texts = [text(a, i) for i in range(PER_AGENT)]
        records = [MemoryRecord(id=f"m{i}", tenant="t", agent=f"a{a}", text=t, created_at=1000.0 + i, updated_at=0.0)
                   for i, t in enumerate(texts)]
        store.add_many(records, embedder.embed(texts))
        store.delete("t", f"a{a}", "m0")


def snapshot(store: MemoryStore, retriever: HybridRetriever, a: int) -> dict:
    agent = f"a{a}"
    return {"list": [r.text for r in store.records("t", agent)],
            "history": [(h.event, h.new_text) for h in store.history("t", agent, "m0")],
            **{mode: [(r.id, round(s, 5)) for r, s in retriever.search("t", agent, "copper violin heron", 5,
                                                                        mode=mode)]
               for mode in ("dense", "bm25", "hybrid")}}


def test_idle_agents_are_evicted_and_read_back_the_same(tmp_path):
    embedder = HashingEmbedder()
    big, _, big_retriever = open_store(tmp_path / "unbounded", 1 << 40)
    fill(big, embedder)
    expected = {a: snapshot(big, big_retriever, a) for a in range(AGENTS)}
    one_agent = big.resident_agents()[1] // AGENTS

    store, index, retriever = open_store(tmp_path / "bounded", 4 * one_agent)
    fill(store, embedder)
    for rounds in range(2):  # the second round reads every agent back from the table
        for a in random.Random(rounds).sample(range(AGENTS), AGENTS):
            assert snapshot(store, retriever, a) == expected[a]
            resident, nbytes = store.resident_agents()
            assert resident <= 5 and nbytes <= 5 * one_agent
            assert len(index._parts) <= resident  # the BM25 index drops what the store drops
    assert store._resident.evictions >= AGENTS


def test_writes_to_an_evicted_agent_continue_its_history(tmp_path):
    embedder = HashingEmbedder()
    store, _, retriever = open_store(tmp_path / "m", 1)  # a budget below one agent: only the one in use stays
    fill(store, embedder)
    assert store.resident_agents()[0] <= 1
    # a1 was evicted: re-adding its deleted m0 must replace the tombstone row and continue the history
    store.add(MemoryRecord(id="m0", tenant="t", agent="a1", text="agent 1 is back", created_at=0.0, updated_at=0.0),
              embedder.embed(["agent 1 is back"])[0])
    store.update("t", "a2", "m3", "agent 2 rewritten walnut", embedder.embed(["agent 2 rewritten walnut"])[0])
    store.purge("t", "a3", "m4")
    assert [h.event for h in store.history("t", "a1", "m0")] == ["ADD", "DELETE", "ADD"]
    assert retriever.search("t", "a2", "walnut rewritten", 1, mode="bm25")[0][0].id == "m3"
    reopened, _, again = open_store(tmp_path / "m", 1 << 30)
    for a in (1, 2, 3):
        assert snapshot(reopened, again, a) == snapshot(store, retriever, a)
    assert reopened.get("t", "a3", "m4") is None and reopened.count() == AGENTS * (PER_AGENT - 1) - 1 + 1


def test_reads_of_agents_without_rows_hold_nothing(tmp_path):
    store, index, retriever = open_store(tmp_path / "m", 1 << 30)
    for i in range(200):  # a tenant probing ids: nothing is read from disk or kept for any of them
        assert store.records("t", f"ghost{i}") == [] and retriever.search("t", f"ghost{i}", "heron", 3) == []
        assert store.list("t", f"ghost{i}") == ([], None) and store.count("t", f"ghost{i}") == 0
    assert store.resident_agents() == (0, 0) and len(index._parts) == 0


def test_concurrent_writes_and_searches_under_a_tiny_budget_stay_consistent(tmp_path):
    embedder = HashingEmbedder()
    store, index, retriever = open_store(tmp_path / "m", 2000)
    errors = []

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for step in range(40):
                a = f"a{rng.randrange(8)}"
                if rng.random() < 0.5:
                    t = f"{a} fact {seed}-{step} " + rng.choice(WORDS)
                    store.add(MemoryRecord(id=f"s{seed}x{step}", tenant="t", agent=a, text=t, created_at=0.0,
                                           updated_at=0.0), embedder.embed([t])[0])
                else:
                    retriever.search("t", a, rng.choice(WORDS), 3)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=work, args=(s,)) for s in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    reopened, _, fresh = open_store(tmp_path / "m", 1 << 30)
    for a in range(8):
        for word in WORDS:
            assert retriever.search("t", f"a{a}", word, 50, mode="bm25") == fresh.search("t", f"a{a}", word, 50,
                                                                                        mode="bm25")
        assert store.records("t", f"a{a}") == reopened.records("t", f"a{a}")


def test_memory_settings_bound_the_served_store(tmp_path):
    from memorylab.schema.memory_agent import MemorySettings
    from memorylab.serve.retriever import MemoryService

    service = MemoryService(tmp_path, MemorySettings(resident_mb=3))
    assert service.store._resident.budget_bytes == 3 << 20
    with pytest.raises(ValueError, match="resident_mb"):
        MemorySettings(resident_mb=0)


def test_a_state_dropped_while_in_use_leaves_its_successor_unpinned(tmp_path):
    store, _, _ = open_store(tmp_path / "m", 1 << 30)
    fill(store, HashingEmbedder())
    with store._writing([("t", "a1")]) as states:  # a write in flight on a1 ...
        store._drop_agent("t", "a1")  # ... whose commit failed: a1 is read back on next use
        assert store.records("t", "a1") and store._resident.get(("t", "a1")) is not states[("t", "a1")]
    assert store._resident.get(("t", "a1")).pins == 0  # so it can be evicted again
    assert states[("t", "a1")].pins == 0
