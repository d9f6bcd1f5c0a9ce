"""Answering with memory, step by step, in the Ingress replica: decide (MemoryAgent), retrieve (here, in
process), rerank and answer (MemoryAgent). Each step returns a Refusal instead of raising when the request
cannot be served (unknown agent, bad filter, unavailable reranker)."""

from __future__ import annotations

import time
from typing import Any, Optional

from memorylab.memory.reorder import reorder_for_context
from memorylab.serve.prompts import question_of
from memorylab.serve.refusal import Refusal

ENTROPY_DEPTH = 50  # memories whose similarities the entropy router weighs


def _ms(since: float) -> float:
    return round((time.perf_counter() - since) * 1000, 3)


async def _similarities(ingress: Any, tenant: str, agent: str, question: str) -> Any:
    """For the entropy router: how sharply the query matches single memories (turns) and the sessions they
    came from (the best memory of each session)."""
    hits = await ingress.retriever.search(tenant, agent, question, ENTROPY_DEPTH, "dense", None)
    if isinstance(hits, Refusal):
        return hits
    sessions: dict[str, float] = {}
    for record, score in hits:
        key = record.source.split(",")[0]
        sessions[key] = max(score, sessions.get(key, -1.0))
    return {"turn": [s for _, s in hits], "session": list(sessions.values())}


async def decide(ingress: Any, tenant: str, agent: str, question: str) -> Any:
    if (refusal := ingress.retriever.check_agent(tenant, agent)) is not None:
        return refusal  # another tenant's agent is 404 whatever the policy would decide
    similarities = None
    if ingress.config.memory.adaptive.policy == "entropy":
        similarities = await _similarities(ingress, tenant, agent, question)
        if isinstance(similarities, Refusal):
            return similarities
    return await ingress.agent.decide.remote(question, similarities)


async def retrieve(ingress: Any, tenant: str, agent: str, query: str, top_k: int, filters: Optional[dict],
                   rerank: Optional[str], mode: Optional[str]) -> Any:
    """(hits, timings): the hybrid top_k, or the top rerank_depth reordered by the reranker and cut to top_k."""
    settings = ingress.config.memory
    replicas = ingress.config.serve.generator_replicas
    rerank = rerank or settings.reranker.name
    if rerank == "listwise_first" and replicas > 1:
        # Its generator session (a KV cache) is begun by one call and ended by another, and Serve routes each
        # call on its own: across replicas the end could miss the replica holding the cache, which would leak.
        # The scenario refuses it as the default reranker; a request naming it is refused here.
        return Refusal(400, f"rerank: 'listwise_first' keeps a session on one generator replica, and this agent "
                            f"has {replicas} (serve.generator_replicas); ask for another reranker")
    depth = max(top_k, settings.retrieval.rerank_depth) if rerank != "none" else top_k
    t = time.perf_counter()
    hits = await ingress.retriever.search(tenant, agent, query, depth, mode, filters)
    if isinstance(hits, Refusal):
        return hits
    timings = {"retrieve": _ms(t)}
    if rerank != "none" and hits:
        t = time.perf_counter()
        score = {r.id: s for r, s in hits}
        ranked = await ingress.agent.rerank.remote(rerank, query, [r for r, _ in hits], top_k)
        if isinstance(ranked, Refusal):
            return ranked
        hits = [(r, score[r.id]) for r in ranked]
        timings["rerank"] = _ms(t)
    return hits[:top_k], timings


async def search(ingress: Any, tenant: str, agent: str, query: str, top_k: int, filters: Optional[dict],
                 rerank: Optional[str], mode: Optional[str], adaptive: bool) -> Any:
    timings: dict[str, float] = {}
    if adaptive:
        t = time.perf_counter()
        decision = await decide(ingress, tenant, agent, query)
        if isinstance(decision, Refusal):
            return decision
        timings["decide"] = _ms(t)
        if not decision["retrieve"]:
            return {"results": [], "retrieved": False, "timings_ms": timings}
    found = await retrieve(ingress, tenant, agent, query, top_k, filters, rerank, mode)
    if isinstance(found, Refusal):
        return found
    hits, more = found
    return {"results": [{"id": r.id, "memory": r.text, "score": s} for r, s in hits], "retrieved": True,
            "timings_ms": {**timings, **more}}


async def chat(ingress: Any, tenant: str, agent: str, messages: list[dict], max_tokens: Optional[int]) -> Any:
    try:
        question = question_of(messages)
    except ValueError as e:  # the request models validate this (422); other callers get the same answer
        return Refusal(422, str(e))
    decision = await decide(ingress, tenant, agent, question)
    if isinstance(decision, Refusal):
        return decision
    records = []
    if decision["retrieve"]:
        retrieval = ingress.config.memory.retrieval
        found = await retrieve(ingress, tenant, agent, question, retrieval.top_k, None, None, None)
        if isinstance(found, Refusal):
            return found
        records = [r for r, _ in found[0]]
        if retrieval.reorder:
            records = reorder_for_context(records)
    reply = await ingress.agent.answer.remote(question, records, max_tokens)
    if isinstance(reply, Refusal):
        return reply
    return {**reply, "retrieved": decision["retrieve"], "decision": decision}
