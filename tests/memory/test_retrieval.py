"""Retrieval: RRF on a hand-computed case, dense / BM25 / hybrid modes, filters on both arms, isolation."""

from __future__ import annotations

import numpy as np
import pytest

from memorylab.memory.fulltext import FullTextIndex, tokenize
from memorylab.memory.records import MemoryRecord
from memorylab.memory.retrieval import HybridRetriever, reciprocal_rank_fusion
from memorylab.memory.store import MemoryQueryError, MemoryStore

DIM = 384


class HashingEmbedder:
    """A test double for the MiniLM embedder: hashed bag of words, unit vectors. Deterministic and instant."""

    dim = DIM

    def embed(self, texts):
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenize(text):
                out[row, sum(map(ord, token)) * 7919 % DIM] += 1.0
            out[row, DIM - 1] += 1e-3  # no zero vector, even for a text of stopwords only
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def unit(i: int) -> np.ndarray:
    v = np.full(DIM, 1e-3, dtype=np.float32)
    v[i] = 1.0
    return v / np.linalg.norm(v)


def memory(i, text, *, tenant="t", agent="a", source="", metadata=None) -> MemoryRecord:
    return MemoryRecord(id=f"m{i}", tenant=tenant, agent=agent, text=text, created_at=1000.0 + i, updated_at=0.0,
                        source=source, metadata=metadata or {})


@pytest.fixture
def store(tmp_path):
    return MemoryStore(tmp_path / "store")


def retriever_for(store, embedder=None) -> HybridRetriever:
    index = FullTextIndex()
    store.add_listener(index)
    return HybridRetriever(store, embedder, index)


# -- RRF ----------------------------------------------------------------------------------------------------

def test_rrf_hand_computed():
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d", "a"]], k=60)
    expected = {"a": 1 / 61 + 1 / 63, "b": 1 / 62 + 1 / 61, "c": 1 / 63, "d": 1 / 62}
    assert [i for i, _ in fused] == ["b", "a", "d", "c"]
    for doc, score in fused:
        assert score == pytest.approx(expected[doc], rel=1e-12)


def test_rrf_weights_and_k():
    # Dense weighted 2: a (2/61 + 1/63 = 0.04866) now edges out b (2/62 + 1/61 = 0.04865).
    fused = reciprocal_rank_fusion([["a", "b", "c"], ["b", "d", "a"]], k=60, weights=[2.0, 1.0])
    assert [i for i, _ in fused] == ["a", "b", "c", "d"]
    assert dict(fused)["c"] == pytest.approx(2 / 63)
    assert reciprocal_rank_fusion([["a", "b"]], k=0) == [("a", 1.0), ("b", 0.5)]
    with pytest.raises(ValueError, match="weights"):
        reciprocal_rank_fusion([["a"], ["b"]], weights=[1.0])
    with pytest.raises(ValueError, match="k must be"):
        reciprocal_rank_fusion([["a"]], k=-1)


def test_rrf_ties_and_edges():
    assert [i for i, _ in reciprocal_rank_fusion([["x"], ["y"]])] == ["x", "y"]  # equal: first ranking first
    assert [i for i, _ in reciprocal_rank_fusion([["y"], ["x"]])] == ["y", "x"]
    assert reciprocal_rank_fusion([]) == [] and reciprocal_rank_fusion([[], []]) == []
    assert [i for i, _ in reciprocal_rank_fusion([["a", "b"], []])] == ["a", "b"]


# -- modes ----------------------------------------------------------------------------------------------

def test_dense_bm25_and_hybrid(store):
    # m0 is the dense arm's answer (its vector is the query's), m1 the BM25 arm's (it shares the rare word).
    store.add_many([memory(0, "We talked about the weather."), memory(1, "My passport number ends in zebra."),
                    memory(2, "Lunch was pasta with friends."), memory(3, "Zebra crossing near the school.")],
                   np.stack([unit(0), unit(1), unit(2), unit(3)]))
    retriever = retriever_for(store)
    query, vector = "where is my passport, zebra", unit(0)

    dense = retriever.search("t", "a", query, 2, mode="dense", query_vector=vector)
    assert dense == store.dense_search("t", "a", vector, 2)
    assert dense[0][0].id == "m0"

    bm25 = retriever.search("t", "a", query, 2, mode="bm25")
    assert [r.id for r, _ in bm25] == ["m1", "m3"]
    assert [s for _, s in bm25] == [s for _, s in retriever.fulltext.search("t", "a", query, 2)]

    hybrid = retriever.search("t", "a", query, 2, query_vector=vector)
    want = reciprocal_rank_fusion([[r.id for r, _ in dense], [r.id for r, _ in bm25]])
    assert [(r.id, s) for r, s in hybrid] == want[:2]
    assert {r.id for r, _ in hybrid} == {"m0", "m1"}  # each arm's best, which neither arm has alone


def test_candidates_set_each_arms_depth(store):
    texts = [f"note {i} about apples" for i in range(8)]
    store.add_many([memory(i, t) for i, t in enumerate(texts)], np.stack([unit(i) for i in range(8)]))
    retriever = retriever_for(store)
    calls = []
    real = store.dense_search
    store.dense_search = lambda *a, **kw: calls.append(a[3]) or real(*a, **kw)
    retriever.search("t", "a", "apples", 3, query_vector=unit(0))
    retriever.search("t", "a", "apples", 3, query_vector=unit(0), candidates=6)
    assert calls == [3, 6]  # default: as deep as top_k; the fused list is still cut to top_k
    assert len(retriever.search("t", "a", "apples", 3, query_vector=unit(0), candidates=6)) == 3


def test_the_embedder_is_used_unless_a_vector_is_given(store):
    embedder = HashingEmbedder()
    texts = ["the cat sat on the mat", "stock prices fell sharply", "a kitten on a rug"]
    store.add_many([memory(i, t) for i, t in enumerate(texts)], embedder.embed(texts))
    retriever = retriever_for(store, embedder)
    assert retriever.search("t", "a", "stock prices", 1, mode="dense")[0][0].id == "m1"
    # A given vector wins over the embedder: the caller's batched embedding is what is searched.
    given = embedder.embed(["a kitten on a rug"])[0]
    assert retriever.search("t", "a", "stock prices", 1, mode="dense", query_vector=given)[0][0].id == "m2"
    with pytest.raises(ValueError, match="embedder or a query_vector"):
        retriever_for(store).search("t", "a", "cat", 1, mode="dense")
    assert retriever_for(store).search("t", "a", "cat", 1, mode="bm25")[0][0].id == "m0"  # BM25 needs no vector
    with pytest.raises(ValueError, match="mode"):
        retriever.search("t", "a", "cat", 1, mode="sparse")
    assert retriever.search("t", "a", "cat", 0) == []


def test_filters_apply_to_both_arms_before_the_cut(store):
    # Five strong matches from session 1, one weak match from session 2: a filter on session 2 must still
    # find it in both arms, not filter an already-cut top 1 down to nothing.
    records = [memory(i, "apples apples apples", source="s1", metadata={"session": 1}) for i in range(5)]
    records.append(memory(5, "I once ate an apples pie and other things at the fair", source="s2",
                          metadata={"session": 2}))
    store.add_many(records, np.stack([unit(0)] * 5 + [unit(9)]))
    retriever = retriever_for(store)
    for mode in ("dense", "bm25", "hybrid"):
        for filters in ({"source": "s2"}, {"session": 2}, {"metadata.session": 2}):
            hits = retriever.search("t", "a", "apples", 1, mode=mode, filters=filters, query_vector=unit(0))
            assert [r.id for r, _ in hits] == ["m5"], (mode, filters)
        assert retriever.search("t", "a", "apples", 3, mode=mode, filters={"source": "s9"},
                                query_vector=unit(0)) == []
    # The store decides what a filter means, for both arms: an unknown key is an error in BM25 mode too.
    for mode in ("dense", "bm25", "hybrid"):
        with pytest.raises(MemoryQueryError, match="unknown filter key"):
            retriever.search("t", "a", "apples", 1, mode=mode, filters={"colour": "red"}, query_vector=unit(0))


def test_tenants_and_agents_are_isolated(store):
    store.add_many([memory(0, "the vault code is 1234", tenant="t1", agent="a"),
                    memory(1, "the vault code is 9876", tenant="t2", agent="a"),
                    memory(2, "the vault code is 5555", tenant="t1", agent="b")], np.stack([unit(0)] * 3))
    retriever = retriever_for(store)
    for mode in ("dense", "bm25", "hybrid"):
        for tenant, agent, text in (("t1", "a", "1234"), ("t2", "a", "9876"), ("t1", "b", "5555")):
            hits = retriever.search(tenant, agent, "vault code", 5, mode=mode, query_vector=unit(0))
            assert [r.text for r, _ in hits] == [f"the vault code is {text}"], (mode, tenant, agent)
        assert retriever.search("t3", "a", "vault code", 5, mode=mode, query_vector=unit(0)) == []


def test_updates_and_deletes_reach_every_arm(store):
    store.add_many([memory(0, "I live in Paris"), memory(1, "I work as a baker")], np.stack([unit(0), unit(1)]))
    retriever = retriever_for(store)
    store.update("t", "a", "m0", "I moved to Lisbon", unit(0))
    store.delete("t", "a", "m1")
    assert retriever.search("t", "a", "baker Paris", 5, mode="bm25") == []  # old words and deleted memory gone
    assert [r.id for r, _ in retriever.search("t", "a", "baker", 5, mode="dense", query_vector=unit(1))] == ["m0"]
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search("t", "a", "Lisbon", 5, mode=mode, query_vector=unit(0))
        assert [(r.id, r.text) for r, _ in hits] == [("m0", "I moved to Lisbon")]
