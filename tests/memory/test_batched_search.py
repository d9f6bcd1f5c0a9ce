"""Concurrent searches scored together: the same hits as one at a time, each search's errors its own."""

from __future__ import annotations

import numpy as np
import pytest

from memorylab.memory.records import MemoryRecord
from memorylab.schema.memory_agent import MemorySettings
from memorylab.serve.refusal import Refusal
from memorylab.serve.retriever import DenseQuery, MemoryService
from tests.memory.test_retrieval import HashingEmbedder, memory, retriever_for

TEXTS = ["the cat sat on the mat", "stock prices fell sharply", "a kitten on a rug", "bonds rallied today",
         "dogs chase cats", "the market closed higher", "a mat for the kitten", "prices of rugs rose"]


@pytest.fixture
def filled(tmp_path):
    from memorylab.memory.store import MemoryStore

    store = MemoryStore(tmp_path / "store")
    embedder = HashingEmbedder()
    records = [memory(i, t, source="chat" if i % 2 else "doc", metadata={"topic": "pets" if i % 3 else "money"})
               for i, t in enumerate(TEXTS)]
    store.add_many(records, embedder.embed(TEXTS))
    return store, embedder


@pytest.mark.parametrize("filters", [None, {"source": "chat"}, {"metadata.topic": "pets"}])
def test_many_queries_give_each_query_its_own_hits(filled, filters):
    store, embedder = filled
    queries = embedder.embed(["cat on a mat", "stock market prices", "kitten rug", "bonds"])
    together = store.dense_search_many("t", "a", queries, 3, filters)
    assert together == [store.dense_search("t", "a", q, 3, filters) for q in queries]
    assert store.dense_search_many("t", "a", queries, 0) == [[], [], [], []]
    assert store.dense_search_many("t", "nobody", queries, 3) == [[], [], [], []]


def test_a_deleted_memory_leaves_the_given_dense_hits(filled):
    store, embedder = filled
    retriever = retriever_for(store, embedder)
    vector = embedder.embed(["kitten rug"])[0]
    hits = store.dense_search("t", "a", vector, 3)
    store.delete("t", "a", hits[0][0].id)  # between the batch's scoring and this search's fusion
    for mode in ("dense", "hybrid"):
        found = retriever.search("t", "a", "kitten rug", 3, mode=mode, dense_hits=hits)
        assert hits[0][0].id not in [r.id for r, _ in found]
    assert retriever.search("t", "a", "kitten rug", 2, mode="dense", dense_hits=hits[1:]) == hits[1:3]


def test_a_memory_updated_out_of_the_filters_leaves_the_given_dense_hits(filled):
    store, embedder = filled
    retriever = retriever_for(store, embedder)
    filters = {"metadata.topic": "pets"}
    vector = embedder.embed(["kitten rug"])[0]
    hits = store.dense_search("t", "a", vector, 3, filters)
    moved = hits[0][0]
    store.update("t", "a", moved.id, moved.text, vector, metadata={"topic": "money"})  # after the batch scored
    for mode in ("dense", "hybrid"):
        found = retriever.search("t", "a", "kitten rug", 3, mode=mode, filters=filters, dense_hits=hits)
        assert moved.id not in [r.id for r, _ in found], mode
        assert all(r.metadata["topic"] == "pets" for r, _ in found), mode


def test_an_agent_with_no_memories_checks_filter_keys_in_every_mode(filled):
    from memorylab.memory.store_rows import MemoryQueryError

    store, embedder = filled
    retriever = retriever_for(store, embedder)
    for mode in ("dense", "bm25", "hybrid"):
        with pytest.raises(MemoryQueryError, match="unknown filter key 'colour'"):
            retriever.search("t", "nobody", "kitten", 3, mode=mode, filters={"colour": "red"})
        assert retriever.search("t", "nobody", "kitten", 3, mode=mode, filters={"metadata.colour": "red"}) == []


class _Service(MemoryService):
    """MemoryService over a prepared store and the hashing embedder (no MiniLM, no LanceDB of its own)."""

    def __init__(self, store, embedder) -> None:
        self.store, self.embedder = store, embedder
        self.settings = MemorySettings().model_dump()


def test_the_dense_arm_groups_searches_and_keeps_refusals_apart(filled, tmp_path):
    store, embedder = filled
    other = [MemoryRecord(id="x0", tenant="u", agent="b", text="cats and mats", created_at=1.0, updated_at=0.0)]
    store.add_many(other, embedder.embed(["cats and mats"]))
    service = _Service(store, embedder)
    queries = [DenseQuery("t", "a", "cat on a mat", 3), DenseQuery("u", "b", "cat on a mat", 3),
               DenseQuery("t", "a", "stock prices", 2, {"source": "chat"}),
               DenseQuery("t", "a", "kitten", 5), DenseQuery("t", "a", "kitten", 2, {"no_such_key": 1})]
    out = service.dense_arm(queries)
    vectors = embedder.embed([q.query for q in queries])
    assert out[0] == store.dense_search("t", "a", vectors[0], 3)
    assert [r.id for r, _ in out[1]] == ["x0"]  # another tenant's agent: its own memories only
    assert out[2] == store.dense_search("t", "a", vectors[2], 2, {"source": "chat"})
    assert out[3] == store.dense_search("t", "a", vectors[3], 5)
    assert isinstance(out[4], Refusal) and out[4].status == 400 and "no_such_key" in out[4].detail


def test_the_embedder_gives_encodes_vectors_bit_for_bit(embedder):
    texts = ["short", "a somewhat longer sentence about a cat on a mat", "", "x" * 300, "Where was Ada born?"] * 3
    small = type(embedder).__new__(type(embedder))
    small.__dict__.update(embedder.__dict__, batch_size=4)  # several chunks, sorted by length across them
    want = embedder.model.encode(texts, batch_size=4, normalize_embeddings=True, convert_to_numpy=True,
                                 show_progress_bar=False)
    assert embedder._lean
    assert np.array_equal(small.embed(texts), want)
