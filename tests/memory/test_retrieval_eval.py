"""LoCoMo retrieval evaluation: a tiny hand-checked conversation, then a reduced LoCoMo with MiniLM."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from memorylab.data.locomo import Conversation, Probe, Turn, default_locomo_path, load_locomo, memory_text
from memorylab.errors import MemorylabError
from memorylab.memory.fulltext import tokenize
from memorylab.memory.retrieval_eval import evaluate_retrievers, format_table, turn_records
from memorylab.memory.store import MemoryStore

DATE = "1:56 pm on 8 May, 2023"


class HashingEmbedder:
    """Hashed bag of words, unit vectors: an instant, deterministic stand-in for MiniLM."""

    dim = 384

    def embed(self, texts):
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            for token in tokenize(text):
                out[row, sum(map(ord, token)) * 7919 % self.dim] += 1.0
            out[row, -1] += 1e-3
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def turn(dia_id, speaker, text, caption=None):
    return Turn(dia_id, speaker, text, int(dia_id[1]), DATE, caption)


TINY = Conversation(
    sample_id="tiny", speaker_a="Ann", speaker_b="Bob",
    turns=(turn("D1:1", "Ann", "I adopted a puppy called Biscuit."),
           turn("D1:2", "Bob", "Congratulations on the puppy!"),
           turn("D1:3", "Ann", "Biscuit chewed my sneakers."),
           turn("D2:1", "Bob", "I started violin lessons."),
           turn("D2:2", "Ann", "Pottery class was relaxing.", caption="a photo of a clay bowl")),
    probes=(Probe("Which sneakers did Biscuit chew?", "hers", 4, ("D1:3",)),
            Probe("When did Bob start violin lessons?", "May 2023", 4, ("D2:1",)),
            Probe("What does Ann do with her time?", "dog, pottery", 1, ("D1:1", "D1:3", "D2:2")),
            Probe("Would Ann like cats?", "maybe", 3, ()),  # no evidence: skipped and counted
            Probe("Does Bob take a pottery class?", "no", 5, ("D2:2",), adversarial_answer="yes")),
)
EVIDENCE = {p.question: set(p.evidence) for p in TINY.probes}


def oracle(query, records):
    return sorted(records, key=lambda r: r.source not in EVIDENCE[query])


class AntiOracle:  # an object with a `rerank` method works as well as a bare callable
    def rerank(self, query, records, top_k=None):
        return sorted(records, key=lambda r: r.source in EVIDENCE[query])


def test_memory_text_and_records():
    records = turn_records(TINY)
    assert [r.source for r in records] == [t.dia_id for t in TINY.turns]
    assert records[0].text == "Ann: I adopted a puppy called Biscuit."
    assert records[4].text == "Ann: Pottery class was relaxing. [shared a photo of a clay bowl]"
    assert memory_text(TINY.turns[4]) == records[4].text
    assert records[0].metadata == {"speaker": "Ann", "session": 1, "session_date_time": DATE}
    assert records[1].created_at == records[0].created_at + 1  # the conversation's order survives in the store


def test_tiny_conversation_by_hand(tmp_path):
    results = evaluate_retrievers([TINY], embedder=HashingEmbedder(), store=MemoryStore(tmp_path / "s"),
                                  rerankers={"oracle": oracle, "anti": AntiOracle()}, ks=(1, 2), progress=False)
    assert list(results) == ["dense", "bm25", "hybrid", "hybrid+oracle", "hybrid+anti"]
    for res in results.values():
        assert res["questions"] == 4 and res["skipped_no_evidence"] == 1
        assert {c: v["questions"] for c, v in res["by_category"].items()} == {
            "multi-hop": 1, "single-hop": 2, "adversarial": 1}
        for value in [res["recall@1"], res["recall@2"]] + [v[m] for v in res["by_category"].values()
                                                           for m in ("recall@1", "recall@2")]:
            assert 0.0 <= value <= 1.0
    # BM25 by hand: "sneakers", "violin lessons" and "pottery class" each name one turn, found first; for the
    # multi-hop question only "ann" matches, in all three evidence turns, the shortest (D2:2) first.
    bm25 = results["bm25"]
    assert bm25["by_category"]["single-hop"]["recall@1"] == 1.0
    assert bm25["by_category"]["adversarial"]["recall@1"] == 1.0
    assert bm25["by_category"]["multi-hop"]["recall@1"] == pytest.approx(1 / 3)
    assert bm25["by_category"]["multi-hop"]["recall@2"] == pytest.approx(2 / 3)
    assert bm25["recall@1"] == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)
    # The pool holds all five turns: the oracle puts the evidence first, the anti-oracle last.
    assert results["hybrid+oracle"]["recall@1"] == pytest.approx((1 + 1 + 1 / 3 + 1) / 4)
    assert results["hybrid+oracle"]["recall@2"] == pytest.approx((1 + 1 + 2 / 3 + 1) / 4)
    assert results["hybrid+anti"]["recall@1"] == results["hybrid+anti"]["recall@2"] == 0.0
    assert "hybrid+oracle" in format_table(results, ks=(1, 2))


def test_a_store_already_holding_the_agent_is_refused(tmp_path):
    store = MemoryStore(tmp_path / "s")
    evaluate_retrievers([TINY], embedder=HashingEmbedder(), store=store, modes=("bm25",), progress=False)
    with pytest.raises(MemorylabError, match="already holds memories of agent 'locomo-tiny'"):
        evaluate_retrievers([TINY], embedder=HashingEmbedder(), store=store, progress=False)
    again = evaluate_retrievers([TINY], embedder=HashingEmbedder(), store=store, tenant="other", progress=False)
    assert again["bm25"]["questions"] == 4


def test_bad_arguments(tmp_path):
    with pytest.raises(MemorylabError, match="unknown retrieval mode 'sparse'"):
        evaluate_retrievers([TINY], embedder=HashingEmbedder(), modes=("sparse",), progress=False)
    with pytest.raises(MemorylabError, match="ks must be positive"):
        evaluate_retrievers([TINY], embedder=HashingEmbedder(), ks=(0,), progress=False)
    with pytest.raises(TypeError, match="reranker"):
        evaluate_retrievers([TINY], embedder=HashingEmbedder(), rerankers={"x": 3}, progress=False)


def test_reduced_locomo_with_minilm(embedder, tmp_path):
    try:
        path = default_locomo_path()
    except MemorylabError as exc:
        pytest.skip(f"LoCoMo data not available: {exc}")
    # conv-26 cut to its first four sessions (76 turns) and the first 40 questions whose evidence lies there:
    # the whole conversation would take a minute to embed on two cores.
    first = load_locomo(path)[0]
    turns = tuple(t for t in first.turns if t.session <= 4)
    kept = {t.dia_id for t in turns}
    probes = tuple(p for p in first.probes if p.evidence and set(p.evidence) <= kept)[:40]
    reduced = dataclasses.replace(first, turns=turns, probes=probes)
    assert len(turns) == 76 and len(probes) == 40
    results = evaluate_retrievers([reduced], embedder=embedder, store=MemoryStore(tmp_path / "s"),
                                  rerankers={"reverse": lambda q, records: list(records)[::-1]}, progress=False)
    answerable = sum(1 for p in reduced.probes if p.evidence)
    assert set(results) == {"dense", "bm25", "hybrid", "hybrid+reverse"}
    for name, res in results.items():
        assert res["questions"] == answerable
        assert sum(v["questions"] for v in res["by_category"].values()) == answerable
        for value in [res["recall@5"], res["recall@10"]] + [v[m] for v in res["by_category"].values()
                                                           for m in ("recall@5", "recall@10")]:
            assert 0.0 <= value <= 1.0, name
    for name in ("dense", "bm25"):  # one ranking cut at 5 and at 10
        assert results[name]["recall@10"] >= results[name]["recall@5"]
    # Real retrievers find evidence; the reversed 50-deep pool puts its weakest memories first.
    assert min(results[n]["recall@10"] for n in ("dense", "bm25", "hybrid")) > 0.2
    assert results["hybrid+reverse"]["recall@10"] < results["hybrid"]["recall@10"]
