"""An incremental Okapi BM25 index per (tenant, agent), kept in step with the memory store as its listener.

Scoring is bm25s's default ("lucene" variant, Kamphuis et al. 2020), so bm25s is the reference in tests:

    score(q, d) = sum over query tokens t of  idf(t) * tf / (tf + k1 * (1 - b + b * |d| / avgdl))
    idf(t)      = log(1 + (N - df + 0.5) / (df + 0.5))

with k1 = 1.5, b = 0.75. Lucene's idf is never negative, unlike Robertson's, so a term found in more than half
of an agent's memories still counts a little instead of pushing those memories down. A query token that
appears twice counts twice (as in bm25s). Tokens: lowercase, words of two or more word characters
(scikit-learn's and bm25s's pattern), bm25s's English stopwords removed, no stemming.

bm25s itself builds a static sparse matrix: every write would re-index the whole agent. Here each term keeps
its postings (slot -> tf) and N, df and avgdl are read at query time, so an upsert or delete costs the size
of one memory and a query costs the postings of its terms (numpy over cached per-term arrays).
"""

from __future__ import annotations

import math
import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import Collection, Optional

import numpy as np
from bm25s.stopwords import STOPWORDS_EN

from memorylab.memory.records import MemoryRecord

K1 = 1.5
B = 0.75
_WORD = re.compile(r"(?u)\b\w\w+\b")
STOPWORDS = frozenset(STOPWORDS_EN)


def tokenize(text: str) -> list[str]:
    """Lowercase words of 2+ characters, English stopwords removed: the same tokens bm25s.tokenize gives."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


@dataclass
class _Partition:
    """The index of one (tenant, agent). Slots are dense integers so scores live in one numpy array."""

    ids: list[Optional[str]] = field(default_factory=list)  # slot -> memory id (None: free slot)
    slot_of: dict[str, int] = field(default_factory=dict)
    # slot -> (created_at, id): what ties are broken on. Slots are reused after deletes and a restart replays
    # memories in created_at order, so a tie broken by slot would rank differently before and after a restart.
    order_key: dict[int, tuple[float, str]] = field(default_factory=dict)
    terms_of: dict[int, tuple[str, ...]] = field(default_factory=dict)  # slot -> its distinct terms
    free: list[int] = field(default_factory=list)
    doc_len: np.ndarray = field(default_factory=lambda: np.zeros(64, dtype=np.float64))
    total_len: float = 0.0
    postings: dict[str, dict[int, int]] = field(default_factory=dict)  # term -> {slot: tf}
    # term -> (slots, tfs) arrays, rebuilt on the first query after that term's postings change.
    arrays: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def add(self, memory_id: str, tokens: list[str], created_at: float = 0.0) -> None:
        if self.free:
            slot = self.free.pop()
        else:
            slot = len(self.ids)
            self.ids.append(None)
            if slot >= len(self.doc_len):
                self.doc_len = np.concatenate([self.doc_len, np.zeros(len(self.doc_len), dtype=np.float64)])
        self.ids[slot] = memory_id
        self.slot_of[memory_id] = slot
        self.order_key[slot] = (created_at, memory_id)
        self.doc_len[slot] = len(tokens)
        self.total_len += len(tokens)
        counts = Counter(tokens)
        self.terms_of[slot] = tuple(counts)
        for term, tf in counts.items():
            self.postings.setdefault(term, {})[slot] = tf
            self.arrays.pop(term, None)

    def remove(self, memory_id: str) -> None:
        slot = self.slot_of.pop(memory_id, None)
        if slot is None:
            return
        for term in self.terms_of.pop(slot):
            posting = self.postings[term]
            del posting[slot]
            if not posting:
                del self.postings[term]
            self.arrays.pop(term, None)
        self.total_len -= self.doc_len[slot]
        self.doc_len[slot] = 0.0
        self.ids[slot] = None
        del self.order_key[slot]
        self.free.append(slot)

    def term_arrays(self, term: str) -> tuple[np.ndarray, np.ndarray]:
        cached = self.arrays.get(term)
        if cached is None:
            posting = self.postings[term]
            cached = (np.fromiter(posting.keys(), dtype=np.int64, count=len(posting)),
                      np.fromiter(posting.values(), dtype=np.float64, count=len(posting)))
            self.arrays[term] = cached
        return cached


class FullTextIndex:
    """BM25 over memory texts, one partition per (tenant, agent); a StoreListener (on_upsert / on_delete).

    Register it with `store.add_listener(index)`: the store replays every live record, then reports each
    write, so the index never needs its own persistence.
    """

    def __init__(self, k1: float = K1, b: float = B) -> None:
        self.k1, self.b = k1, b
        self._parts: dict[tuple[str, str], _Partition] = {}
        # Serve replicas run requests on threads: a write must not interleave with a query's reads.
        self._lock = threading.Lock()

    # -- StoreListener ---------------------------------------------------------------------------------
    def on_upsert(self, record: MemoryRecord) -> None:
        tokens = tokenize(record.text)  # outside the lock: the regex is the slow part
        with self._lock:
            part = self._parts.setdefault((record.tenant, record.agent), _Partition())
            part.remove(record.id)  # an UPDATE replaces the old text's postings
            part.add(record.id, tokens, record.created_at)

    def on_delete(self, record: MemoryRecord) -> None:
        with self._lock:
            part = self._parts.get((record.tenant, record.agent))
            if part is not None:
                part.remove(record.id)
                if not part.slot_of:
                    del self._parts[(record.tenant, record.agent)]

    def on_evict(self, tenant: str, agent: str) -> None:
        """The store dropped the agent from memory: so does the index (the store replays it when read back)."""
        with self._lock:
            self._parts.pop((tenant, agent), None)

    # -- queries ---------------------------------------------------------------------------------------
    def __len__(self) -> int:
        return sum(len(p.slot_of) for p in self._parts.values())

    def count(self, tenant: str, agent: str) -> int:
        part = self._parts.get((tenant, agent))
        return len(part.slot_of) if part else 0

    def scores(self, tenant: str, agent: str, query: str) -> dict[str, float]:
        """Every memory sharing a token with the query -> its BM25 score (others score 0)."""
        with self._lock:
            part = self._parts.get((tenant, agent))
            if part is None:
                return {}
            scores, slots = self._score(part, query)
            return {part.ids[s]: float(scores[s]) for s in slots}

    def search(self, tenant: str, agent: str, query: str, top_k: int,
               ids: Optional[Collection[str]] = None) -> list[tuple[str, float]]:
        """The top_k (memory id, score) of one agent, best first; only memories sharing a token with the query.

        `ids`, when given, restricts the results to those memories (how a caller applies filters before
        the cut, so a filter never empties a top-k that has matches further down). Ties go to the
        earlier memory (created_at, then id), so the order is the same after a restart.
        """
        if top_k <= 0:
            return []
        with self._lock:
            part = self._parts.get((tenant, agent))
            if part is None:
                return []
            scores, slots = self._score(part, query)
            if ids is not None:
                allowed = np.fromiter((part.slot_of[i] for i in ids if i in part.slot_of), dtype=np.int64)
                slots = np.intersect1d(slots, allowed, assume_unique=True)
            if len(slots) > top_k:
                # O(matches): the k-th best score, then every slot scoring at least that, ties at the cut
                # included (argpartition alone would pick among them arbitrarily); only those are sorted.
                kth = np.partition(scores[slots], len(slots) - top_k)[len(slots) - top_k]
                slots = slots[scores[slots] >= kth]
            order = sorted(slots.tolist(), key=lambda s: (-scores[s], part.order_key[s]))[:top_k]
            return [(part.ids[s], float(scores[s])) for s in order]

    def _score(self, part: _Partition, query: str) -> tuple[np.ndarray, np.ndarray]:
        n_docs = len(part.slot_of)
        scores = np.zeros(len(part.ids), dtype=np.float64)
        terms = Counter(t for t in tokenize(query) if t in part.postings)
        if not terms or n_docs == 0:
            return scores, np.zeros(0, dtype=np.int64)
        avg_len = part.total_len / n_docs
        hit = []
        for term, query_tf in terms.items():
            slots, tfs = part.term_arrays(term)
            df = len(slots)
            idf = math.log(1.0 + (n_docs - df + 0.5) / (df + 0.5))
            norm = self.k1 * (1.0 - self.b + self.b * part.doc_len[slots] / avg_len)
            # Slots are unique within one term, so a fancy-indexed += is safe here.
            scores[slots] += query_tf * idf * tfs / (tfs + norm)
            hit.append(slots)
        return scores, np.unique(np.concatenate(hit))

