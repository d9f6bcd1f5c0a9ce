"""Retrieval over the memory store: dense (MiniLM cosine), BM25, and their reciprocal rank fusion.

Hybrid search asks each arm for its top `candidates` and fuses the two rankings with RRF (Cormack, Clarke
and Buettcher, SIGIR 2009): ranks, not scores, are combined, so a cosine in [-1, 1] and an unbounded BM25
score need no calibration against each other. Filters apply to both arms *before* their cut, so a filter
never leaves an arm with fewer hits than it has matches.

How deep each arm goes matters more than it seems. With k = 60 a memory at rank 62 of *both* arms ties one
at rank 1 of a single arm, so fusing 50-deep lists ranks nearly every memory found by both arms above every
memory found by one. On LoCoMo such "deep in both" memories fill nearly all of the fused top 5, and hybrid
recalls less than BM25 alone. So by default each arm contributes as many candidates as results are asked
for, as Elasticsearch's RRF retriever (rank_window_size defaults to size) and LanceDB's hybrid query do:
every fused result is then in some arm's own top_k, and hybrid recalls more than either arm alone. k stays
the paper's 60. A caller that wants a deep pool, e.g. for a reranker, asks for top_k = candidates = 50 and
gets the best of both 50-deep lists.
`python -m memorylab.memory.retrieval_eval [--fusion-depth 50]` measures both.
"""

from __future__ import annotations

from typing import Any, ContextManager, Literal, Mapping, Optional, Protocol, Sequence

import numpy as np

from memorylab.memory.embedder import EMBED_DIM
from memorylab.memory.fulltext import FullTextIndex
from memorylab.memory.records import MemoryRecord

Mode = Literal["dense", "bm25", "hybrid"]
MODES = ("dense", "bm25", "hybrid")
RRF_K = 60  # the paper's constant: it damps the head of each ranking so one arm cannot dominate


class Store(Protocol):
    def dense_search(self, tenant: str, agent: str, vector: Any, top_k: int,
                     filters: Optional[Mapping[str, Any]] = None) -> list[tuple[MemoryRecord, float]]: ...
    def records(self, tenant: str, agent: str) -> list[MemoryRecord]: ...
    def get(self, tenant: str, agent: str, memory_id: str) -> Optional[MemoryRecord]: ...
    def resident(self, tenant: str, agent: str) -> ContextManager[None]: ...  # keeps the agent in memory


class TextEmbedder(Protocol):
    def embed(self, texts: Sequence[str]) -> np.ndarray: ...


def reciprocal_rank_fusion(rankings: Sequence[Sequence[str]], k: int = RRF_K,
                           weights: Optional[Sequence[float]] = None) -> list[tuple[str, float]]:
    """Fuse rankings (ids, best first) into (id, sum over rankings of weight / (k + rank)), best first.

    Ranks start at 1. An id missing from a ranking gets nothing from it. Equal fused scores keep the order
    in which the ids were first met reading rank 1 of every ranking, then rank 2, ...: a tie goes to the
    better rank, and at equal ranks to the ranking listed first (dense, in HybridRetriever).
    """
    if k < 0:
        raise ValueError(f"reciprocal_rank_fusion: k must be >= 0, got {k}.")
    if weights is None:
        weights = [1.0] * len(rankings)
    elif len(weights) != len(rankings):
        raise ValueError(f"reciprocal_rank_fusion: {len(weights)} weights for {len(rankings)} rankings.")
    fused: dict[str, float] = {}
    first_seen: dict[str, int] = {}
    depth = max((len(r) for r in rankings), default=0)
    for rank in range(depth):
        for ranking, weight in zip(rankings, weights):
            if rank < len(ranking):
                doc = ranking[rank]
                first_seen.setdefault(doc, len(first_seen))
                fused[doc] = fused.get(doc, 0.0) + weight / (k + rank + 1)
    return sorted(fused.items(), key=lambda item: (-item[1], first_seen[item[0]]))


class HybridRetriever:
    """Dense, BM25 or hybrid (RRF) search over one store; the FullTextIndex must listen to that store."""

    def __init__(self, store: Store, embedder: Optional[TextEmbedder], fulltext: FullTextIndex,
                 rrf_k: int = RRF_K, weights: Optional[Sequence[float]] = None) -> None:
        self.store, self.embedder, self.fulltext = store, embedder, fulltext
        self.rrf_k = rrf_k
        self.weights = weights  # (dense, bm25); None: equal

    def search(self, tenant: str, agent: str, query: str, top_k: int, *, mode: Mode = "hybrid",
               filters: Optional[Mapping[str, Any]] = None, candidates: Optional[int] = None,
               query_vector: Optional[np.ndarray] = None,
               dense_hits: Optional[list[tuple[MemoryRecord, float]]] = None) -> list[tuple[MemoryRecord, float]]:
        """The top_k memories with their score (cosine, BM25 or fused RRF score by mode), best first.

        `candidates`: how deep each arm goes before fusion (hybrid only); None means top_k (see the module
        docstring for why not a fixed 50). `query_vector`: the query's embedding when the caller has it;
        `dense_hits`: the dense arm's result (dense_depth deep) when the caller has that already (a served
        replica scores concurrent queries together); a memory deleted since is left out, one updated since
        comes as it is now, or not at all when it no longer passes the filters.
        """
        if mode not in MODES:
            raise ValueError(f"HybridRetriever.search: mode must be one of {', '.join(MODES)}, got {mode!r}.")
        if top_k <= 0:
            return []
        # The store and the BM25 index are read one after the other: the agent stays in memory meanwhile.
        with self.store.resident(tenant, agent):
            return self._search(tenant, agent, query, top_k, mode, filters, candidates, query_vector, dense_hits)

    def _search(self, tenant: str, agent: str, query: str, top_k: int, mode: Mode,
                filters: Optional[Mapping[str, Any]], candidates: Optional[int], query_vector: Optional[np.ndarray],
                dense_hits: Optional[list[tuple[MemoryRecord, float]]]) -> list[tuple[MemoryRecord, float]]:
        if dense_hits is not None:
            now = self.store.current(tenant, agent, [r.id for r, _ in dense_hits], dict(filters) if filters else None)
            dense_hits = [(now[r.id], s) for r, s in dense_hits if r.id in now]
        depth = self.dense_depth(mode, top_k, candidates)
        if mode == "dense":
            return dense_hits if dense_hits is not None else self._dense(tenant, agent, query, depth, filters,
                                                                         query_vector)
        if mode == "bm25":
            return self._bm25(tenant, agent, query, top_k, filters)
        dense = dense_hits if dense_hits is not None else self._dense(tenant, agent, query, depth, filters,
                                                                      query_vector)
        sparse = self._bm25(tenant, agent, query, depth, filters)
        by_id = {r.id: r for r, _ in dense}
        by_id.update((r.id, r) for r, _ in sparse)
        fused = reciprocal_rank_fusion([[r.id for r, _ in dense], [r.id for r, _ in sparse]],
                                       k=self.rrf_k, weights=self.weights)
        return [(by_id[i], score) for i, score in fused[:top_k]]

    @staticmethod
    def dense_depth(mode: Mode, top_k: int, candidates: Optional[int]) -> int:
        """How many memories the dense arm returns: top_k in dense mode, the fusion's depth in hybrid."""
        return top_k if mode == "dense" or candidates is None else max(candidates, top_k)

    def _dense(self, tenant: str, agent: str, query: str, top_k: int, filters: Optional[Mapping[str, Any]],
               query_vector: Optional[np.ndarray]) -> list[tuple[MemoryRecord, float]]:
        if query_vector is None:
            if self.embedder is None:
                raise ValueError("HybridRetriever: dense search needs an embedder or a query_vector.")
            query_vector = self.embedder.embed([query])[0]
        return self.store.dense_search(tenant, agent, np.asarray(query_vector, dtype=np.float32), top_k,
                                       filters=dict(filters) if filters else None)

    def _bm25(self, tenant: str, agent: str, query: str, top_k: int, filters: Optional[Mapping[str, Any]],
              ) -> list[tuple[MemoryRecord, float]]:
        allowed = self._filtered_ids(tenant, agent, filters) if filters else None
        if allowed is not None and not allowed:
            return []
        hits = self.fulltext.search(tenant, agent, query, top_k, ids=allowed)
        out = []
        for memory_id, score in hits:
            record = self.store.get(tenant, agent, memory_id)
            if record is not None:  # deleted between the index read and this one: skip, do not fail
                out.append((record, score))
        return out

    def _filtered_ids(self, tenant: str, agent: str, filters: Mapping[str, Any]) -> set[str]:
        # The store is the one authority on what a filter means (which keys exist, metadata.<key>, errors for
        # unknown keys): a dense search as deep as the agent's memory returns every memory passing the
        # filters, whatever the query vector, so the BM25 arm filters exactly as the dense arm does.
        # One matrix-vector product: cheap even for an agent with many thousands of memories.
        # At least 1 deep: an agent with no memories still has its filter keys checked, as a dense search's are.
        n = max(1, len(self.store.records(tenant, agent)))
        probe = np.zeros(self._dim(), dtype=np.float32)
        probe[0] = 1.0
        return {r.id for r, _ in self.store.dense_search(tenant, agent, probe, n, filters=dict(filters))}

    def _dim(self) -> int:
        return int(getattr(self.store, "dim", None) or getattr(self.embedder, "dim", None) or EMBED_DIM)
