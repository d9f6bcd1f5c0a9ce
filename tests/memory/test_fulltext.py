"""The incremental BM25 index: bm25s's scores on a small corpus, incremental writes, isolation, speed."""

from __future__ import annotations

import time

import bm25s
import numpy as np
import pytest

from memorylab.memory.fulltext import FullTextIndex, tokenize
from memorylab.memory.records import MemoryRecord

CORPUS = [
    "Caroline went to the LGBTQ support group yesterday and it was powerful.",
    "Melanie painted a sunrise over the lake last year.",
    "The kids and I went camping in the mountains; the kids loved the campfire.",
    "Caroline is researching adoption agencies because she wants to be a mom.",
    "Melanie ran a charity race for mental health on Saturday.",
    "I painted the lake again, this time at sunset, with my kids.",
    "Pottery class was fun: I made a black and white bowl.",
    "Counseling and mental health jobs are what Caroline wants to pursue.",
]
QUERIES = [
    "When did Caroline go to the LGBTQ support group?",
    "What did Melanie paint?",
    "kids camping lake",
    "mental health mental health",  # a repeated query token counts twice, as in bm25s
    "adoption",
    "nothing matches zzz",
]


def rec(i: int, text: str, tenant: str = "t", agent: str = "a") -> MemoryRecord:
    return MemoryRecord(id=f"m{i}", tenant=tenant, agent=agent, text=text, created_at=0.0, updated_at=0.0)


def build(texts, **kw) -> FullTextIndex:
    index = FullTextIndex()
    for i, text in enumerate(texts):
        index.on_upsert(rec(i, text, **kw))
    return index


def reference_scores(texts, query) -> np.ndarray:
    """bm25s's default BM25 ("lucene", k1=1.5, b=0.75) in float64, over the same tokens."""
    retriever = bm25s.BM25(dtype="float64")
    corpus_tokens = bm25s.tokenize(list(texts), stopwords="en", show_progress=False)
    retriever.index(corpus_tokens, show_progress=False)
    query_tokens = [t for t in tokenize(query) if t in corpus_tokens.vocab]
    if not query_tokens:
        return np.zeros(len(texts))
    return retriever.get_scores(query_tokens)


def as_array(scored: dict[str, float], n: int) -> np.ndarray:
    out = np.zeros(n)
    for memory_id, score in scored.items():
        out[int(memory_id[1:])] = score
    return out


def test_tokens_are_bm25s_tokens():
    tokenized = bm25s.tokenize(CORPUS, stopwords="en", show_progress=False)
    vocab = {v: k for k, v in tokenized.vocab.items()}
    assert [[vocab[i] for i in ids] for ids in tokenized.ids] == [tokenize(t) for t in CORPUS]
    assert tokenize("The Kids AND I, a b c") == ["kids"]  # lowercase, stopwords and 1-letter words gone


@pytest.mark.parametrize("query", QUERIES)
def test_scores_equal_bm25s(query):
    index = build(CORPUS)
    np.testing.assert_allclose(as_array(index.scores("t", "a", query), len(CORPUS)),
                               reference_scores(CORPUS, query), rtol=0, atol=1e-9)


def test_search_is_best_first_and_only_matches():
    index = build(CORPUS)
    hits = index.search("t", "a", "Melanie painted the lake", top_k=3)
    assert [h[0] for h in hits][:1] == ["m1"]
    assert [s for _, s in hits] == sorted((s for _, s in hits), reverse=True)
    assert index.search("t", "a", "zzz qqq", top_k=3) == []
    assert index.search("t", "a", "the and", top_k=3) == []  # stopwords only
    assert len(index.search("t", "a", "kids", top_k=10)) == 2  # only the two memories with "kids"


def test_incremental_writes_match_a_fresh_index():
    # Upsert everything, then update one memory and delete another: the scores must be those of an index
    # built from the final texts, i.e. N, df and avgdl all follow the writes.
    index = build(CORPUS)
    index.on_upsert(rec(2, "We went hiking by the lake with the dog."))  # UPDATE of m2
    index.on_delete(rec(5, CORPUS[5]))
    index.on_upsert(rec(8, "A new memory about the lake and pottery."))
    final = {f"m{i}": t for i, t in enumerate(CORPUS)}
    final["m2"] = "We went hiking by the lake with the dog."
    del final["m5"]
    final["m8"] = "A new memory about the lake and pottery."
    ids, texts = list(final), list(final.values())
    for query in QUERIES + ["lake pottery dog"]:
        got = index.scores("t", "a", query)
        ref = reference_scores(texts, query)
        want = {ids[i]: float(s) for i, s in enumerate(ref) if s > 0}
        assert got.keys() == want.keys()
        for memory_id, score in want.items():
            assert got[memory_id] == pytest.approx(score, rel=1e-12, abs=1e-12)
    assert index.count("t", "a") == len(final)


def test_deleting_everything_empties_the_partition_and_slots_are_reused():
    index = build(CORPUS[:3])
    for i in range(3):
        index.on_delete(rec(i, CORPUS[i]))
    assert index.count("t", "a") == 0 and len(index) == 0
    assert index.search("t", "a", "Caroline", 5) == []
    index.on_delete(rec(0, CORPUS[0]))  # deleting twice is a no-op, not an error
    index.on_upsert(rec(0, CORPUS[0]))
    assert [h[0] for h in index.search("t", "a", "Caroline", 5)] == ["m0"]


def test_ties_go_to_the_earlier_memory_before_and_after_a_restart():
    # Ties used to go to the lower slot; slots are reused after a delete, and a restart replays memories in
    # created_at order, so the same query over the same memories ranked differently after a restart.
    def coffee(i, created_at):
        return MemoryRecord(id=f"m{i}", tenant="t", agent="a", text=f"Person{i} likes coffee",
                            created_at=created_at, updated_at=created_at)

    live = FullTextIndex()
    for i in range(6):
        live.on_upsert(coffee(i, float(i)))
    live.on_delete(coffee(0, 0.0))
    live.on_delete(coffee(1, 1.0))
    live.on_upsert(coffee(6, 6.0))  # takes a freed slot
    live.on_upsert(coffee(7, 3.0))  # same created_at as m3: the id decides
    restarted = FullTextIndex()
    for record in sorted([coffee(i, float(i)) for i in range(2, 7)] + [coffee(7, 3.0)],
                         key=lambda r: (r.created_at, r.id)):
        restarted.on_upsert(record)
    for top_k in (1, 2, 3, 6):  # ties at the cut too: the earliest of them are kept
        want = ["m2", "m3", "m7", "m4", "m5", "m6"][:top_k]
        for index in (live, restarted):
            assert [i for i, _ in index.search("t", "a", "coffee", top_k)] == want, top_k


def test_tenants_and_agents_are_isolated():
    index = FullTextIndex()
    index.on_upsert(rec(0, "the secret code is blue", tenant="t1", agent="a"))
    index.on_upsert(rec(1, "the secret code is red", tenant="t2", agent="a"))
    index.on_upsert(rec(2, "the secret code is green", tenant="t1", agent="b"))
    assert [h[0] for h in index.search("t1", "a", "secret code", 10)] == ["m0"]
    assert [h[0] for h in index.search("t2", "a", "secret code", 10)] == ["m1"]
    assert [h[0] for h in index.search("t1", "b", "secret code", 10)] == ["m2"]
    assert index.search("t3", "a", "secret code", 10) == []
    # Each partition has its own statistics: one memory, so the same score everywhere.
    assert index.scores("t1", "a", "secret")["m0"] == pytest.approx(index.scores("t2", "a", "secret")["m1"])


def test_ids_restrict_before_the_cut():
    index = build(CORPUS)
    everything = index.search("t", "a", "Caroline", 10)
    assert len(everything) == 3
    last = everything[-1][0]
    assert index.search("t", "a", "Caroline", 1, ids={last}) == [everything[-1]]
    assert index.search("t", "a", "Caroline", 5, ids={"m1", "nope"}) == []


def test_search_on_10k_documents_takes_milliseconds():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(3000)]
    index = FullTextIndex()
    for i in range(10_000):
        index.on_upsert(rec(i, " ".join(rng.choice(words, size=20))))
    queries = [" ".join(rng.choice(words, size=6)) for _ in range(50)]
    index.search("t", "a", queries[0], 10)  # builds the per-term arrays once
    started = time.perf_counter()
    for q in queries:
        assert len(index.search("t", "a", q, 10)) == 10
    per_query = (time.perf_counter() - started) / len(queries)
    assert per_query < 0.01, f"{per_query * 1e3:.2f} ms per query"
