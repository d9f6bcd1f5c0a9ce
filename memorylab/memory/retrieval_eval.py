"""Evidence recall of memory retrievers on LoCoMo: dense, BM25, hybrid and hybrid + rerankers.

Each conversation becomes one agent's memory, one memory per turn (source = the turn's dia_id), in a
MemoryStore; every question is asked of its conversation's agent, and recall@k is the fraction of the
question's evidence turns among the first k memories retrieved. Questions whose evidence names no turn of
the conversation cannot be scored and are skipped and counted, not scored as 0.

What a memory's text holds follows LoCoMo's own RAG baseline (snap-research/locomo, task_eval/rag_utils.py):
the turn as spoken, plus the caption of a shared image (the words alone are often just "look at this!");
the session date stays out of the text, in metadata and created_at, for the reader that renders retrieved
memories next to their date, as that baseline does. A date prefix in every text would raise all three
retrievers' recall here, probably by softening BM25's length normalisation and pulling "When ...?" questions
toward dated texts; but adopting it would be picking a memory format by scoring on the benchmark's answers,
so the benchmark's protocol is kept.

Run the full comparison:  python -m memorylab.memory.retrieval_eval [path/to/locomo.json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from typing import Any, Callable, Mapping, Optional, Sequence, Union

import numpy as np

from memorylab.data.locomo import CATEGORIES, Conversation, load_locomo, memory_text
from memorylab.errors import MemorylabError
from memorylab.memory.fulltext import FullTextIndex
from memorylab.memory.records import MemoryRecord
from memorylab.memory.retrieval import MODES, HybridRetriever, TextEmbedder
from memorylab.progress import progress_bar

KS = (5, 10)
TENANT = "locomo"
# A reranker: a callable rerank(query, records) -> records, or an object with such a `rerank` method.
Rerank = Union[Callable[[str, Sequence[MemoryRecord]], Sequence[MemoryRecord]], Any]


def agent_name(conversation: Conversation) -> str:
    return f"locomo-{conversation.sample_id}"


def turn_records(conversation: Conversation, tenant: str = TENANT) -> list[MemoryRecord]:
    """One memory per turn. created_at is the session's date plus the turn's index in seconds, so the
    store's (created_at, id) order is the conversation's order; 0 (store: now) if the date does not parse."""
    records = []
    for i, turn in enumerate(conversation.turns):
        at = turn.session_timestamp
        records.append(MemoryRecord(
            id="", tenant=tenant, agent=agent_name(conversation), text=memory_text(turn),
            created_at=(at + i) if at is not None else 0.0, updated_at=0.0, source=turn.dia_id,
            metadata={"speaker": turn.speaker, "session": turn.session,
                      "session_date_time": turn.session_date_time}))
    return records


def recall(retrieved_sources: Sequence[str], evidence: Sequence[str], k: int) -> float:
    """The fraction of `evidence` among the first k retrieved sources."""
    return len(set(retrieved_sources[:k]) & set(evidence)) / len(evidence)


def _as_rerank(reranker: Rerank) -> Callable[[str, Sequence[MemoryRecord]], Sequence[MemoryRecord]]:
    if hasattr(reranker, "rerank"):
        return reranker.rerank
    if callable(reranker):
        return reranker
    raise TypeError(f"a reranker must be callable or have a rerank method, got {type(reranker).__name__}")


def _load(store: Any, embedder: TextEmbedder, conversations: Sequence[Conversation], tenant: str) -> None:
    for conv in conversations:
        if store.records(tenant, agent_name(conv)):
            raise MemorylabError(f"the store already holds memories of agent {agent_name(conv)!r} "
                                 f"(tenant {tenant!r}); pass an empty store or another tenant.")
    per_conv = [turn_records(c, tenant) for c in conversations]
    flat = [r for recs in per_conv for r in recs]
    vectors = embedder.embed([r.text for r in flat])  # one batch: the embedder sizes its own mini-batches
    start = 0
    for recs in per_conv:
        store.add_many(recs, vectors[start:start + len(recs)])  # one durable commit per conversation
        start += len(recs)


def _summary(scores: dict[str, list[list[float]]], ks: Sequence[int], skipped: int) -> dict[str, Any]:
    """scores: category name -> one [recall@k for k in ks] row per question."""
    every = [row for rows in scores.values() for row in rows]
    out: dict[str, Any] = {f"recall@{k}": float(np.mean([r[j] for r in every])) if every else 0.0
                           for j, k in enumerate(ks)}
    out["questions"] = len(every)
    out["skipped_no_evidence"] = skipped
    out["by_category"] = {
        name: {**{f"recall@{k}": float(np.mean([r[j] for r in rows])) for j, k in enumerate(ks)},
               "questions": len(rows)}
        for name in CATEGORIES.values() if (rows := scores.get(name))}
    return out


def evaluate_retrievers(conversations: Optional[Sequence[Conversation]] = None, *,
                        embedder: Optional[TextEmbedder] = None, store: Any = None,
                        rerankers: Optional[Mapping[str, Rerank]] = None, modes: Sequence[str] = MODES,
                        ks: Sequence[int] = KS, candidates: int = 50, fusion_depth: Optional[int] = None,
                        tenant: str = TENANT, progress: bool = True,
                        read: Optional[Callable[[Any, list[MemoryRecord]], None]] = None,
                        read_top_k: int = 5) -> dict[str, dict[str, Any]]:
    """Evidence recall@k of each retriever, overall and per category.

    conversations: LoCoMo conversations (default: the shared locomo5_dev.json). embedder: default the MiniLM
    Embedder. store: a MemoryStore (default: a fresh one in a temporary folder, removed afterwards).
    rerankers: name -> reranker, scored as "hybrid+<name>" on the hybrid top `candidates`.
    fusion_depth: how deep each arm goes for the "hybrid" row (None: the retriever's default, as deep as the
    k of each recall@k); 50 reproduces the fixed-depth fusion that ranks below BM25 (see retrieval.py).
    read: called with each scored question's probe and its hybrid top `read_top_k` memories (retrieval order),
    where a caller answers from them (the memory_agent_eval runner's `answer: true`).
    Returns {name: {"recall@5", "recall@10", "questions", "skipped_no_evidence",
    "by_category": {category: {"recall@5", "recall@10", "questions"}}}}.
    """
    for mode in modes:
        if mode not in MODES:
            raise MemorylabError(f"unknown retrieval mode {mode!r}; choose from {', '.join(MODES)}.")
    if not ks or min(ks) < 1:
        raise MemorylabError(f"ks must be positive cut-offs, got {tuple(ks)}.")
    reranks = {f"hybrid+{name}": _as_rerank(r) for name, r in (rerankers or {}).items()}  # fail before embedding
    conversations = list(conversations) if conversations is not None else load_locomo()
    if embedder is None:
        from memorylab.memory.embedder import Embedder

        embedder = Embedder()
    if store is None:
        from memorylab.memory.store import MemoryStore

        with tempfile.TemporaryDirectory(prefix="memorylab-locomo-") as folder:
            return evaluate_retrievers(conversations, embedder=embedder, store=MemoryStore(folder),
                                       rerankers=rerankers, modes=modes, ks=ks, candidates=candidates,
                                       fusion_depth=fusion_depth, tenant=tenant, progress=progress, read=read,
                                       read_top_k=read_top_k)
    _load(store, embedder, conversations, tenant)
    fulltext = FullTextIndex()
    store.add_listener(fulltext)  # replays the memories just written
    retriever = HybridRetriever(store, embedder, fulltext)
    names = [*modes, *reranks]
    scores: dict[str, dict[str, list[list[float]]]] = {name: {} for name in names}

    asked = [(conv, probe) for conv in conversations for probe in conv.probes if probe.evidence]
    skipped = sum(len(conv.probes) for conv in conversations) - len(asked)
    query_vectors = embedder.embed([probe.question for _, probe in asked])
    depth = max(ks)
    with progress_bar(len(asked), "LoCoMo retrieval recall", enabled=progress) as bar:
        for (conv, probe), vector in zip(asked, query_vectors):
            agent = agent_name(conv)
            rows: dict[str, list[float]] = {}
            for mode in modes:
                # One search per k, as a caller asking for k memories would make: a hybrid top 5 is not the
                # first 5 of a hybrid top 10, since each arm goes as deep as the results asked for.
                rows[mode] = [recall([r.source for r, _ in retriever.search(
                    tenant, agent, probe.question, k, mode=mode, query_vector=vector, candidates=fusion_depth)],
                    probe.evidence, k) for k in ks]
            if reranks:
                pool = [r for r, _ in retriever.search(tenant, agent, probe.question, max(candidates, depth),
                                                        mode="hybrid", candidates=candidates, query_vector=vector)]
                for name, rerank in reranks.items():
                    ranked = [r.source for r in rerank(probe.question, pool)]
                    rows[name] = [recall(ranked, probe.evidence, k) for k in ks]
            if read is not None:
                read(probe, [r for r, _ in retriever.search(tenant, agent, probe.question, read_top_k, mode="hybrid",
                                                            query_vector=vector)])
            for name in names:
                scores[name].setdefault(probe.category_name, []).append(rows[name])
            bar.update()
    return {name: _summary(scores[name], ks, skipped) for name in names}


def format_table(results: Mapping[str, Mapping[str, Any]], ks: Sequence[int] = KS) -> str:
    """A Markdown table: one row per retriever, overall then per category recall@k."""
    header = ["retriever", *[f"R@{k}" for k in ks], *[f"{c} R@{k}" for c in CATEGORIES.values() for k in ks]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, res in results.items():
        cells = [name, *[f"{res[f'recall@{k}']:.3f}" for k in ks]]
        for cat in CATEGORIES.values():
            by = res["by_category"].get(cat)
            cells += [f"{by[f'recall@{k}']:.3f}" if by else "-" for k in ks]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description="Evidence recall@k of dense, BM25 and hybrid retrieval on LoCoMo.")
    parser.add_argument("path", nargs="?", help="a LoCoMo JSON file (default: the shared locomo5_dev.json)")
    parser.add_argument("--fusion-depth", type=int, default=None,
                        help="candidates per arm for hybrid (default: as many as the largest k)")
    args = parser.parse_args(argv)
    try:
        started = time.perf_counter()
        results = evaluate_retrievers(load_locomo(args.path) if args.path else None, fusion_depth=args.fusion_depth)
    except MemorylabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(format_table(results))
    print(json.dumps({"results": results, "seconds": round(time.perf_counter() - started, 1)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
